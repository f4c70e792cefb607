"""Settings of the minutes service (the public record), beside the shared `Settings`.

Environment variables (prefix FORUM_):

- `FORUM_LEDGER_KEY_FILE`: the Ed25519 signing key of the public record, as a C2SP signer key
  string (`PRIVATE+KEY+<origin>+<key id>+<base64>`). Created with mode 0600 at first start if
  absent; default `<data_dir>/ledger.key`. Every replica of the minutes service must use the same
  file. Losing it means starting a new log under a new key; leaking it lets anyone sign forged
  checkpoints. It is never logged.
- `FORUM_LEDGER_ORIGIN`: the checkpoint origin line, also the key name (C2SP: a schema-less URL
  naming this log, unique to it). Default `forum-ouvert.local/registre`; set it to the public host,
  e.g. `forum-ouvert.cese.fr/registre`, before the first start: changing it later needs a new key.
- `FORUM_LEDGER_CHECKPOINT_INTERVAL`: at most one checkpoint per this many seconds (default 0.5);
  a checkpoint covering new leaves is signed as soon as the interval allows.
"""
from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ORIGIN = "forum-ouvert.local/registre"


class MinutesSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FORUM_", extra="ignore")

    data_dir: Path = Field(Path(".forum-data"), description="Same as the shared setting FORUM_DATA_DIR.")
    ledger_key_file: Path | None = Field(None, description="Signing key of the public record "
                                         "(default <data_dir>/ledger.key, created 0600 at first start).")
    ledger_origin: str = Field(DEFAULT_ORIGIN, description="Checkpoint origin = note key name of the public record.")
    ledger_checkpoint_interval: float = Field(0.5, description="Minimum seconds between two signed checkpoints.")
    ledger_checkpoint_poll: float = Field(5.0, description="Seconds between checks for leaves appended by "
                                          "other replicas (a local append wakes the signer at once).")

    @property
    def key_path(self) -> Path:
        return self.ledger_key_file or self.data_dir / "ledger.key"
