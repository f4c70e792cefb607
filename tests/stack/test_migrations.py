"""Each service's Alembic history builds exactly the tables its models describe, and its tables carry
its prefix (services share a PostgreSQL server in deployment: a name clash would be silent)."""
import importlib
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect
from sqlmodel import SQLModel

from shared.migrations import upgrade

PREFIXES = {"forum": ("forum_",), "minutes": ("ledger_", "minutes_")}


@pytest.mark.parametrize("service", sorted(PREFIXES))
def test_migrations_match_the_models(service: str, tmp_path: Path) -> None:
    models = importlib.import_module(f"services.{service}.models")
    upgrade(service, f"sqlite+aiosqlite:///{tmp_path / f'{service}.db'}")
    engine = create_engine(f"sqlite:///{tmp_path / f'{service}.db'}")
    owned = set(models.OWNED_TABLES) | {"outbox", "inbox", "command_reply"}
    with engine.connect() as conn:
        assert owned <= set(inspect(conn).get_table_names())
        ctx = MigrationContext.configure(conn, opts={
            "include_object": lambda obj, name, type_, *_: type_ != "table" or name in owned,
            "compare_type": True})
        assert compare_metadata(ctx, SQLModel.metadata) == []
    engine.dispose()


@pytest.mark.parametrize("service", sorted(PREFIXES))
def test_every_table_carries_its_service_prefix(service: str) -> None:
    models = importlib.import_module(f"services.{service}.models")
    assert all(t.startswith(PREFIXES[service]) for t in models.OWNED_TABLES)
