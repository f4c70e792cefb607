"""The minutes service's Alembic history builds exactly the tables its models describe."""
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlmodel import SQLModel

from services.minutes import models
from shared.migrations import upgrade


def test_migrations_match_the_models(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'minutes.db'}"
    upgrade("minutes", url)
    engine = create_engine(f"sqlite:///{tmp_path / 'minutes.db'}")
    owned = set(models.OWNED_TABLES) | {"outbox", "inbox"}
    with engine.connect() as conn:
        assert owned <= set(inspect(conn).get_table_names())
        ctx = MigrationContext.configure(conn, opts={
            "include_object": lambda obj, name, type_, *_: type_ != "table" or name in owned,
            "compare_type": True})
        assert compare_metadata(ctx, SQLModel.metadata) == []
    engine.dispose()


def test_every_minutes_table_is_prefixed() -> None:
    assert all(t.startswith("ledger_") for t in models.LEDGER_TABLES)
    assert all(t.startswith("minutes_") for t in models.MINUTES_TABLES)
