"""Secrets generated once into the data folder when the settings give none (the local run)."""
from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path


def generated_secret(path: Path) -> str:
    """The secret kept in `path`, created (random, mode 0600, written atomically) on first use.

    The file is 0600 from its creation (never readable by others, not even for a moment), and two
    processes starting together end up with the same secret: the first link wins."""
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)  # mkstemp: mode 0600
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)  # atomic, and never replaces a secret another process just created
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()
