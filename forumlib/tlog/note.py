"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys.

Wire- and key-compatible with ``golang.org/x/mod/sumdb/note``, so the
forum's checkpoints can be checked with the Go ecosystem's tools and
witnesses:

* signed note: note text (ending in ``\\n``), a blank line, then one or more
  lines ``"— <key name> <base64(4-byte key ID || signature)>\\n"``;
* key ID: first 4 bytes (big-endian) of
  ``SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)``;
* verifier key: ``"<name>+<key ID as 8 hex digits>+<base64(0x01 || public key)>"``;
* signer key: ``"PRIVATE+KEY+<name>+<key ID hex>+<base64(0x01 || 32-byte seed)>"``.

Base64 is decoded strictly (padding required, canonical encoding only), so
one signature has exactly one textual form. Every signature from a known key
is verified; a note with a bad signature from a known key is rejected as a
whole, as the spec recommends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ALG_ED25519 = 0x01
"""Signature type identifier of Ed25519 in C2SP signed-note."""

MAX_SIGNATURES = 100
"""Most signature lines accepted in one note (the spec requires at least 16; Go uses 100)."""

_SIG_PREFIX = "\u2014 "  # em dash, space
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_B64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# ASCII control characters other than newline, and lone surrogates (not encodable as UTF-8).
_FORBIDDEN_IN_NOTE = re.compile("[\x00-\x09\x0b-\x1f\ud800-\udfff]")

# Unicode White_Space, i.e. what Go's unicode.IsSpace rejects in key names.
_SPACES = frozenset(
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


class NoteError(ValueError):
    """Base class: a signed note or a note key could not be accepted."""


class MalformedNoteError(NoteError):
    """The note does not follow the signed-note syntax (or its text cannot be signed)."""


class KeyFormatError(NoteError):
    """A signer/verifier key string, key name or raw key is malformed or inconsistent."""


class InvalidSignatureError(NoteError):
    """A signature from a known key does not verify: the note was altered or forged."""

    def __init__(self, name: str, key_id: int) -> None:
        self.name = name
        self.key_id = key_id
        super().__init__(f"invalid signature for key {name}+{key_id:08x}")


class UnverifiedNoteError(NoteError):
    """The note parsed, but carries no signature from any known key.

    ``note`` holds the parsed, *untrusted* note (text and unverified
    signatures) for diagnostics only.
    """

    def __init__(self, note: Note) -> None:
        self.note = note
        seen = ", ".join(f"{s.name}+{s.key_id:08x}" for s in note.unverified) or "none"
        super().__init__(f"note has no signature from a known key (signatures present from: {seen})")


def is_valid_key_name(name: str) -> bool:
    """A key name is non-empty, has no Unicode space, no '+' and no control character.

    (Spaces and '+' are the spec's rule; control characters are refused too
    because a signed note may not contain them.)
    """
    if not isinstance(name, str) or not name or "+" in name:
        return False
    for ch in name:
        if ch in _SPACES or ch < " " or "\ud800" <= ch <= "\udfff":
            return False
    return True


def _check_name(name: str) -> None:
    if not is_valid_key_name(name):
        raise KeyFormatError(f"invalid key name {name!r}: must be non-empty, without spaces, '+' or control characters")


def _b64decode(text: str) -> bytes | None:
    """Strict standard base64: padded, canonical; ``None`` if not."""
    if not text or len(text) % 4 or not _B64.fullmatch(text):
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def _b64encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def key_id(name: str, public_key: bytes) -> int:
    """The 32-bit key ID of an Ed25519 key: SHA-256(name || 0x0A || 0x01 || key)[:4], big-endian."""
    _check_name(name)
    if len(public_key) != 32:
        raise KeyFormatError(f"an Ed25519 public key is 32 bytes, got {len(public_key)}")
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + bytes(public_key)).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class Verifier:
    """A named Ed25519 public key that can check note signatures."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise KeyFormatError("an Ed25519 public key is 32 bytes")
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError as exc:
            raise KeyFormatError(f"not a usable Ed25519 public key: {exc}") from None
        object.__setattr__(self, "key_id", key_id(self.name, self.public_key))

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (raw, without key ID) is a valid Ed25519 signature of ``message``."""
        if len(signature) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(bytes(signature), bytes(message))
        except (InvalidSignature, ValueError):
            return False
        return True

    def encode(self) -> str:
        """The verifier key string ``<name>+<key ID hex>+<base64(0x01 || public key)>``."""
        return f"{self.name}+{self.key_id:08x}+{_b64encode(bytes([ALG_ED25519]) + self.public_key)}"


@dataclass(frozen=True)
class Signer:
    """A named Ed25519 private key (its 32-byte seed). Keep it secret: ``repr`` hides the seed."""

    name: str
    seed: bytes = field(repr=False)
    public_key: bytes = field(init=False, repr=False)
    key_id: int = field(init=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.seed, bytes) or len(self.seed) != 32:
            raise KeyFormatError("an Ed25519 private key seed is 32 bytes")
        public = Ed25519PrivateKey.from_private_bytes(self.seed).public_key().public_bytes_raw()
        object.__setattr__(self, "public_key", public)
        object.__setattr__(self, "key_id", key_id(self.name, public))

    @property
    def verifier(self) -> Verifier:
        """The matching public verifier."""
        return Verifier(self.name, self.public_key)

    def sign(self, message: bytes) -> bytes:
        """Raw 64-byte Ed25519 signature of ``message``."""
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(bytes(message))

    def encode(self) -> str:
        """The signer key string ``PRIVATE+KEY+<name>+<key ID hex>+<base64(0x01 || seed)>``."""
        return f"{_PRIVATE_PREFIX}{self.name}+{self.key_id:08x}+{_b64encode(bytes([ALG_ED25519]) + self.seed)}"


def generate_key(name: str) -> tuple[str, str]:
    """A fresh key pair for ``name``: ``(signer key string, verifier key string)``."""
    _check_name(name)
    seed = Ed25519PrivateKey.generate().private_bytes_raw()
    signer = Signer(name, seed)
    return signer.encode(), signer.verifier.encode()


def _split_key(text: str, what: str) -> tuple[str, int, bytes]:
    """Parse ``<name>+<hex8>+<base64 key data>``; return name, key ID, key data after the 0x01."""
    name, sep1, rest = text.partition("+")
    hex8, sep2, b64 = rest.partition("+")
    if not sep1 or not sep2:
        raise KeyFormatError(f"malformed {what} key: expected <name>+<key ID>+<key data>")
    _check_name(name)
    if not _HEX8.fullmatch(hex8):
        raise KeyFormatError(f"malformed {what} key: key ID must be 8 hexadecimal digits, got {hex8!r}")
    raw = _b64decode(b64)
    if raw is None:
        raise KeyFormatError(f"malformed {what} key: key data is not valid base64")
    if raw[0] != ALG_ED25519:
        raise KeyFormatError(f"unsupported {what} key algorithm {raw[0]:#04x} (only Ed25519, 0x01)")
    if len(raw) != 33:
        raise KeyFormatError(f"malformed {what} key: Ed25519 key data must be 32 bytes, got {len(raw) - 1}")
    return name, int(hex8, 16), raw[1:]


def parse_verifier_key(vkey: str) -> Verifier:
    """Parse a verifier key string; its key ID must match the name and public key."""
    if not isinstance(vkey, str):
        raise KeyFormatError("a verifier key must be a str")
    name, kid, public = _split_key(vkey, "verifier")
    verifier = Verifier(name, public)
    if verifier.key_id != kid:
        raise KeyFormatError(f"verifier key ID {kid:08x} does not match its name and public key")
    return verifier


def parse_signer_key(skey: str) -> Signer:
    """Parse a ``PRIVATE+KEY+...`` signer key string; its key ID must match the derived public key."""
    if not isinstance(skey, str) or not skey.startswith(_PRIVATE_PREFIX):
        raise KeyFormatError("malformed signer key: must start with 'PRIVATE+KEY+'")
    name, kid, seed = _split_key(skey[len(_PRIVATE_PREFIX) :], "signer")
    signer = Signer(name, seed)
    if signer.key_id != kid:
        raise KeyFormatError(f"signer key ID {kid:08x} does not match its name and public key")
    return signer


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key ID and raw signature bytes (without the key ID)."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        """The signature line as it appears in a note, newline included."""
        raw = struct.pack(">I", self.key_id) + self.signature
        return f"{_SIG_PREFIX}{self.name} {_b64encode(raw)}\n"


@dataclass(frozen=True)
class Note:
    """An opened note: its text and which signatures were verified."""

    text: str
    signatures: tuple[Signature, ...]
    """Signatures verified against a known key (one per key)."""
    unverified: tuple[Signature, ...] = ()
    """Signatures from keys the caller did not supply (ignored, as the spec requires)."""


def _check_text(text: str) -> None:
    bad = _FORBIDDEN_IN_NOTE.search(text)
    if bad is None:
        return
    if bad.group() >= "\ud800":
        raise MalformedNoteError("note is not valid Unicode (lone surrogate)")
    raise MalformedNoteError(f"note contains control character U+{ord(bad.group()):04X}")


def sign_note(text: str, *signers: Signer) -> str:
    """Sign ``text`` with each signer; return the signed note.

    The text must end in a newline and contain no control characters other
    than newline, so that the result opens again.
    """
    if not isinstance(text, str):
        raise MalformedNoteError("note text must be a str")
    if not text.endswith("\n"):
        raise MalformedNoteError("note text must end with a newline")
    _check_text(text)
    if not signers:
        raise NoteError("sign_note needs at least one signer")
    seen: set[tuple[str, int]] = set()
    lines = []
    message = text.encode("utf-8")
    for signer in signers:
        if not isinstance(signer, Signer):
            raise NoteError(f"expected a Signer, got {type(signer).__name__}")
        if (signer.name, signer.key_id) in seen:
            raise NoteError(f"key {signer.name}+{signer.key_id:08x} given twice")
        seen.add((signer.name, signer.key_id))
        lines.append(Signature(signer.name, signer.key_id, signer.sign(message)).line())
    return text + "\n" + "".join(lines)


def _verifier_map(verifiers: Iterable[Verifier]) -> dict[tuple[str, int], Verifier]:
    known: dict[tuple[str, int], Verifier] = {}
    for v in verifiers:
        if not isinstance(v, Verifier):
            raise NoteError(f"expected a Verifier, got {type(v).__name__} (use parse_verifier_key)")
        other = known.setdefault((v.name, v.key_id), v)
        if other.public_key != v.public_key:
            raise NoteError(f"ambiguous key {v.name}+{v.key_id:08x}: two different keys share name and ID")
    return known


def open_note(message: str | bytes, verifiers: Iterable[Verifier]) -> Note:
    """Parse a signed note and verify its signatures against ``verifiers``.

    Returns the note if at least one signature from a known key verifies and
    none from a known key fails. Raises ``MalformedNoteError`` for bad
    syntax, ``InvalidSignatureError`` for a bad signature from a known key,
    ``UnverifiedNoteError`` when no known key signed it (e.g. wrong key or
    unknown key name).
    """
    known = _verifier_map(verifiers)
    if isinstance(message, (bytes, bytearray, memoryview)):
        try:
            msg = bytes(message).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedNoteError("note is not valid UTF-8") from None
    elif isinstance(message, str):
        msg = message
    else:
        raise MalformedNoteError(f"a note must be str or bytes, not {type(message).__name__}")
    _check_text(msg)

    split = msg.rfind("\n\n")
    if split < 0:
        raise MalformedNoteError("note has no blank line separating its text from the signatures")
    text, block = msg[: split + 1], msg[split + 2 :]
    if not block:
        raise MalformedNoteError("note has no signature lines")
    if not block.endswith("\n"):
        raise MalformedNoteError("note does not end with a newline")

    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNoteError(f"note has {len(lines)} signatures, more than the limit of {MAX_SIGNATURES}")

    signed_bytes = text.encode("utf-8")
    verified: dict[tuple[str, int], Signature] = {}
    unverified: dict[str, Signature] = {}
    for number, line in enumerate(lines, start=1):
        if not line.startswith(_SIG_PREFIX):
            raise MalformedNoteError(f"signature line {number} does not start with an em dash and a space")
        name, sep, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not is_valid_key_name(name):
            raise MalformedNoteError(f"signature line {number} has an invalid key name")
        raw = _b64decode(b64)
        if raw is None:
            raise MalformedNoteError(f"signature line {number} is not valid base64")
        if len(raw) < 5:
            raise MalformedNoteError(f"signature line {number} is too short to hold a key ID and a signature")
        sig = Signature(name, struct.unpack(">I", raw[:4])[0], raw[4:])
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            unverified.setdefault(line, sig)
            continue
        if not verifier.verify(signed_bytes, sig.signature):
            raise InvalidSignatureError(sig.name, sig.key_id)
        verified.setdefault((sig.name, sig.key_id), sig)

    note = Note(text=text, signatures=tuple(verified.values()), unverified=tuple(unverified.values()))
    if not note.signatures:
        raise UnverifiedNoteError(note)
    return note
