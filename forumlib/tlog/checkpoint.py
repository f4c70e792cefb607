"""C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint): the signed tree head.

Body::

    <origin>\\n
    <tree size, ASCII decimal, no leading zeros>\\n
    <base64 (standard, padded) of the 32-byte RFC 9162 root hash>\\n
    [<non-empty extension line>\\n ...]

Signed as a C2SP note (see ``note``). Parsing is strict so that a given
checkpoint has exactly one textual form.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass

from forumlib.tlog.hashing import HASH_SIZE
from forumlib.tlog.note import Note, Signer, Verifier, open_note, sign_note

MAX_TREE_SIZE = 2**64 - 1
"""Tree sizes are uint64 in every other implementation; refuse anything larger."""

_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# Control characters (newline included: one field per line) and lone surrogates.
_FORBIDDEN_IN_LINE = re.compile("[\x00-\x1f\ud800-\udfff]")


class CheckpointError(ValueError):
    """A checkpoint body is malformed, or is not the checkpoint the caller expected."""


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: origin, tree size, root hash, optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()


def _check_line(what: str, line: str) -> None:
    if not isinstance(line, str):
        raise CheckpointError(f"{what} must be a str, not {type(line).__name__}")
    if not line:
        raise CheckpointError(f"{what} must not be empty")
    bad = _FORBIDDEN_IN_LINE.search(line)
    if bad is not None:
        raise CheckpointError(f"{what} contains forbidden character U+{ord(bad.group()):04X}")


def format_checkpoint(checkpoint: Checkpoint) -> str:
    """The checkpoint's note text (ends with a newline), ready for ``sign_note``."""
    _check_line("origin", checkpoint.origin)
    size = checkpoint.size
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_TREE_SIZE:
        raise CheckpointError(f"tree size must be an int in [0, 2**64), got {size!r}")
    root = checkpoint.root_hash
    if not isinstance(root, (bytes, bytearray)) or len(root) != HASH_SIZE:
        raise CheckpointError(f"root hash must be {HASH_SIZE} bytes")
    for ext in checkpoint.extensions:
        _check_line("extension line", ext)
    lines = [checkpoint.origin, str(size), base64.b64encode(bytes(root)).decode("ascii"), *checkpoint.extensions]
    return "".join(line + "\n" for line in lines)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint note text (as returned in ``Note.text``)."""
    if not isinstance(text, str):
        raise CheckpointError(f"checkpoint text must be a str, not {type(text).__name__}")
    if not text.endswith("\n"):
        raise CheckpointError("checkpoint text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError(f"checkpoint needs at least 3 lines (origin, size, root hash), got {len(lines)}")
    origin, size_text, root_text, *extensions = lines
    _check_line("origin", origin)
    if not _DECIMAL.fullmatch(size_text):
        raise CheckpointError(f"tree size {size_text!r} is not a decimal number without leading zeros")
    size = int(size_text)
    if size > MAX_TREE_SIZE:
        raise CheckpointError(f"tree size {size_text} does not fit in 64 bits")
    root = None
    if len(root_text) % 4 == 0 and _B64.fullmatch(root_text):
        try:
            root = base64.b64decode(root_text, validate=True)
        except (binascii.Error, ValueError):
            root = None
    if root is None or base64.b64encode(root).decode("ascii") != root_text:
        raise CheckpointError(f"root hash {root_text!r} is not canonical standard base64")
    if len(root) != HASH_SIZE:
        raise CheckpointError(f"root hash must be {HASH_SIZE} bytes, got {len(root)}")
    for ext in extensions:
        _check_line("extension line", ext)
    return Checkpoint(origin=origin, size=size, root_hash=root, extensions=tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, *signers: Signer) -> str:
    """Format and sign a checkpoint; the result is a C2SP signed note."""
    return sign_note(format_checkpoint(checkpoint), *signers)


def open_checkpoint(
    message: str | bytes, verifiers: Iterable[Verifier], origin: str
) -> tuple[Checkpoint, Note]:
    """Verify a signed checkpoint and parse it; its origin must be ``origin``.

    The origin check stops a checkpoint of another log, signed with the same
    key, from being accepted for this one. Raises the ``note.NoteError``
    family for signature problems and ``CheckpointError`` for the body.
    """
    note = open_note(message, verifiers)
    checkpoint = parse_checkpoint(note.text)
    if checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint is for origin {checkpoint.origin!r}, expected {origin!r}")
    return checkpoint, note
