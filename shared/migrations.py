"""Alembic, one migration history per service (services/<name>/migrations).

`upgrade(service, url)` is what `forum-ouvert migrate` and the test fixtures call; each service's
`env.py` is three lines that call `run_env` with the tables it owns.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import create_engine, pool
from sqlmodel import SQLModel

from shared import idempotency, outbox  # noqa: F401 - registers the shared tables
from shared.db import sync_url

SERVICES_DIR = Path(__file__).resolve().parent.parent / "services"


def alembic_config(service: str, url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    cfg.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return cfg


def upgrade(service: str, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, url), revision)


def run_env(tables: Iterable[str]) -> None:
    """Body of every service's env.py: migrate only the tables this service owns."""
    owned = set(tables) | {"outbox", "inbox", "command_reply"}
    url = context.config.get_main_option("sqlalchemy.url")
    assert url

    def include(obj, name, type_, reflected, compare_to):  # noqa: ANN001 - alembic hook signature
        return type_ != "table" or name in owned

    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=SQLModel.metadata, include_object=include,
                          render_as_batch=url.startswith("sqlite"), compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
