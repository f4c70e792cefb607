"""Database engine and transactions (async SQLAlchemy over SQLModel tables).

Each service owns its own database (SQLite file locally, its own PostgreSQL database or schema in
deployment). `Database.transaction()` is the unit of work: state changes and the outbox rows they
emit commit together or not at all.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from typing import Any

from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def dialect_insert(tx: AsyncSession, table: Any) -> Any:
    """INSERT for the database `tx` runs on (SQLite or PostgreSQL), with `on_conflict_do_nothing/update`."""
    return (pg_insert if tx.get_bind().dialect.name == "postgresql" else sqlite_insert)(table)


def sync_url(url: str) -> str:
    """The same database for synchronous tools (Alembic)."""
    return url.replace("sqlite+aiosqlite", "sqlite")


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
    # WAL lets readers run beside the single writer; busy_timeout queues writers instead of failing.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    if is_sqlite(url):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    # Bounded: four services x (pool + overflow) must stay well under PostgreSQL's max_connections (100 by
    # default); handlers beyond the pool wait for a connection instead of failing with "too many clients".
    # No ping before each checkout: it was one more round trip on every transaction (a third of a page's
    # queries). A connection that died (PostgreSQL restarted) fails the one request that meets it, and
    # SQLAlchemy then drops every older connection of the pool, so the next requests get new ones.
    return create_async_engine(url, pool_size=pool_size, max_overflow=2, pool_timeout=60, pool_recycle=1800)


class Database:
    """A service's database: reads, and transactions that commit or roll back as one."""

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size)
        self.sqlite = is_sqlite(url)
        self._sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)
        # Reads on PostgreSQL run in autocommit: at READ COMMITTED each statement sees its own snapshot
        # anyway, so a BEGIN … ROLLBACK around them only costs two round trips, and each ROLLBACK makes
        # psycopg forget the statements it had prepared.
        self._reads = self._sessions if is_sqlite(url) else async_sessionmaker(
            self.engine.execution_options(isolation_level="AUTOCOMMIT"), class_=AsyncSession,
            expire_on_commit=False)
        import asyncio

        # SQLite allows one writer at a time; a process-wide lock avoids "database is locked" storms
        # and makes `BEGIN` behave like PostgreSQL's row locks for our read-modify-write commands.
        self._write_lock = asyncio.Lock() if self.sqlite else None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only scope: never write in it (on PostgreSQL each statement commits on its own)."""
        async with self._reads() as tx:
            yield tx

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """Commit on success, roll back on any exception."""
        if self._write_lock is not None:
            async with self._write_lock:
                async with self._tx() as tx:
                    yield tx
        else:
            async with self._tx() as tx:
                yield tx

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as tx:
            async with tx.begin():
                yield tx

    @asynccontextmanager
    async def held_connection(self) -> AsyncIterator[HeldConnection]:
        """One connection kept for a stream of short Core transactions (a job's bookkeeping): no pool
        checkout, session and liveness ping per transaction."""
        async with self.engine.connect() as conn:
            yield HeldConnection(conn, self._write_lock)

    async def ping(self) -> bool:
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True

    async def dispose(self) -> None:
        await self.engine.dispose()


class HeldConnection:
    """See `Database.held_connection`: `async with held.transaction() as conn:` commits or rolls back."""

    def __init__(self, conn: AsyncConnection, write_lock: Any) -> None:
        self.conn = conn
        self._write_lock = write_lock

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        if self._write_lock is not None:  # SQLite: one writer at a time in this process
            async with self._write_lock, self.conn.begin():
                yield self.conn
        else:
            async with self.conn.begin():
                yield self.conn
