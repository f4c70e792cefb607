"""The public record's signing key: an Ed25519 C2SP note key in a file, created at first start.

The file holds one line, the signer key string `PRIVATE+KEY+<origin>+<key id>+<base64(0x01||seed)>`
(the format of golang.org/x/mod/sumdb/note, so Go tools can use it too). It is created atomically
with mode 0600 (two processes starting together end up with the same key) and never logged. A process
reads it once (`signer`); the service checks it at start, so an unusable file stops it there.
"""
from __future__ import annotations

import os
import stat
import tempfile
from functools import lru_cache
from pathlib import Path

from forumlib.tlog import KeyFormatError, Signer, generate_key, parse_signer_key
from shared.logging import get_logger
from shared.settings import Settings

log = get_logger(__name__)


class KeyFileError(RuntimeError):
    """The key file exists but cannot be used for this log (unreadable, malformed, other origin)."""


def signer(settings: Settings) -> Signer:
    """The public record's signing key for these settings, read (or created) on first use."""
    return load_signer(settings.ledger_key_path, settings.ledger_origin)


@lru_cache(maxsize=8)  # keyed by (path, origin): tests and benchmarks run several logs in one process
def load_signer(path: Path, origin: str) -> Signer:
    """`load_or_create_signer`, once per process for each (path, origin); a failure is not cached."""
    return load_or_create_signer(path, origin)


def load_or_create_signer(path: Path, origin: str) -> Signer:
    """The signer stored at `path`, created there (0600) if the file does not exist yet."""
    path = Path(path)
    if not path.exists():
        _create(path, origin)
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the ledger key file {path}: {type(exc).__name__}") from None
    try:
        signer = parse_signer_key(text)
    except KeyFormatError:
        raise KeyFileError(f"the ledger key file {path} does not hold a valid signer key") from None
    if signer.name != origin:
        raise KeyFileError(f"the ledger key file {path} is for origin {signer.name!r}, but the configured "
                           f"origin is {origin!r}: a log keeps its origin; use another key file for a new log")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("ledger key file is readable by other users; chmod 600 it", path=str(path), mode=oct(mode))
    return signer


def _create(path: Path, origin: str) -> None:
    skey, vkey = generate_key(origin)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # a new folder: owner only
    fd, tmp = tempfile.mkstemp(prefix=".ledger-key-", dir=path.parent)  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(skey + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic and refuses to replace: a concurrent first start keeps one key
        except FileExistsError:
            return
    finally:
        os.unlink(tmp)
    log.info("ledger signing key created", path=str(path), verifier_key=vkey)
