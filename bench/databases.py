"""Which database a benchmark runs on, and its scratch PostgreSQL schemas (one per service, dropped after).

PostgreSQL when FORUM_BENCH_DATABASE_URL (or else FORUM_TEST_DATABASE_URL) is set, else one SQLite file
per service, as in the one-command local run.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from shared.settings import SERVICES


def base_url() -> str | None:
    return os.environ.get("FORUM_BENCH_DATABASE_URL") or os.environ.get("FORUM_TEST_DATABASE_URL")


def plain_url(url: str) -> str:
    """postgresql://… for psycopg itself (no SQLAlchemy driver suffix)."""
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)


def schema_urls(url: str, label: str, names: tuple[str, ...] = SERVICES) -> dict[str, str]:
    """A fresh schema `t_<label>_<name>` for each name; SQLAlchemy URLs with that search_path."""
    import psycopg

    sa = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", url)
    sep = "&" if "?" in sa else "?"
    out = {}
    with psycopg.connect(plain_url(url), autocommit=True) as conn:
        for name in names:
            schema = f"t_{label}_{name}"
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{schema}"')
            out[name] = f"{sa}{sep}options=-csearch_path%3D{schema}"
    return out


def drop_schemas(url: str, urls: dict[str, str]) -> None:
    import psycopg

    with psycopg.connect(plain_url(url), autocommit=True) as conn:
        for u in urls.values():
            conn.execute(f'DROP SCHEMA IF EXISTS "{u.rsplit("%3D", 1)[-1]}" CASCADE')


@dataclass
class DatabaseChoice:
    kind: str  # "postgresql" | "sqlite"
    urls: dict[str, str] | None  # None: the Stack's own SQLite files
    base_url: str | None = None
    description: str = ""

    @property
    def port(self) -> int | None:
        """The PostgreSQL server's port, if it is on this machine (its backends' CPU is then counted)."""
        if self.kind != "postgresql" or not self.base_url:
            return None
        from sqlalchemy.engine import make_url

        u = make_url(plain_url(self.base_url))
        return (u.port or 5432) if u.host in (None, "", "127.0.0.1", "localhost", "::1") else None

    def cleanup(self) -> None:
        if self.kind == "postgresql" and self.urls and self.base_url:
            drop_schemas(self.base_url, self.urls)


def choose_database(wanted: str, data_dir: Path, label: str) -> DatabaseChoice:
    url = base_url()
    if wanted == "postgresql" and not url:
        raise SystemExit("--db postgresql needs FORUM_BENCH_DATABASE_URL (or FORUM_TEST_DATABASE_URL), "
                         "e.g. postgresql://postgres@127.0.0.1:5432/test")
    if wanted == "sqlite" or (wanted == "auto" and not url):
        return DatabaseChoice("sqlite", None, description=f"SQLite files in {data_dir}")
    assert url is not None
    shown = re.sub(r"://([^:@/]+):[^@/]*@", r"://\1:***@", url)
    return DatabaseChoice("postgresql", schema_urls(url, label), base_url=url,
                          description=f"PostgreSQL {shown}, schemas t_{label}_<service>")
