"""Secrets generated once into the data folder when the settings give none (the local run)."""
from __future__ import annotations

import secrets
from pathlib import Path


def generated_secret(path: Path) -> str:
    """The secret kept in `path`, created (random, mode 0600, written atomically) on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_urlsafe(48))
        tmp.chmod(0o600)
        tmp.replace(path)
    return path.read_text().strip()
