"""`forum-ouvert backup` / `restore`: a forum with content (the demo), backed up while one of its events
is still on its way (notifications is down when a person registers), restored into a new forum (new
data folder, new databases, new nats-server) shows the same public site, its public record verifies with
the verifier key from before, the event in transit is delivered once, and nothing is sent again.
Then the archive itself: it round-trips between SQLite and PostgreSQL, each service is read as of one
moment, a target that holds data is refused (not a freshly started one), and so is a damaged archive."""
from __future__ import annotations

import asyncio
import difflib
import io
import json
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import nats
import pytest
from faststream.nats import NatsBroker
from sqlalchemy import Select, create_engine, func, inspect, select, text
from typer.testing import CliRunner

import forum_ouvert.backup as backup_module
from forum_ouvert.backup import backup, database_urls as service_urls, restore
from forum_ouvert.cli import cli
from forum_ouvert.demo import fill
from forum_ouvert.launcher import Stack
from forum_ouvert.verify import verify_async
from shared.contracts.registry import College, Register
from shared.db import sync_url
from shared.migrations import upgrade
from shared.rpc import RpcClient
from shared.settings import SERVICES, Settings
from tests.support import caught, caught_mail, database_urls, drop_schemas, postgres_base_url

pytestmark = pytest.mark.integration
NEWCOMER = "arrivee.pendant.la.sauvegarde@exemple.fr"
ENV = {"FORUM_RATE_LIMIT_PER_MINUTE": "100000", "FORUM_OUTBOX_POLL_INTERVAL": "0.5", "FORUM_REMINDER_INTERVAL": "1"}


# ---------------------------------------------------------------- helpers
def _scalar(url: str, sql: str | Select) -> int:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as c:
            return c.execute(text(sql) if isinstance(sql, str) else sql).scalar_one()
    finally:
        engine.dispose()


def _reminders_due() -> Select:
    from services.notifications.models import NoticeSession
    from services.notifications.session_notices import REMINDER_BEFORE

    now = datetime.now(UTC)
    t = NoticeSession.__table__
    return select(func.count()).select_from(t).where(
        t.c.cancelled.is_(False), t.c.reminded_at.is_(None), t.c.starts_at > now,
        t.c.starts_at <= now + REMINDER_BEFORE)


async def _jetstream_idle(nats_url: str, services: tuple[str, ...]) -> bool:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for stream in await js.streams_info():
            for c in await js.consumers_info(stream.config.name):
                if c.name.split("--", 1)[0] in services and (c.num_pending or c.num_ack_pending):
                    return False
        return True
    finally:
        await nc.close()


UNSIGNED_LEAVES = ("SELECT count(*) FROM ledger_entry "
                   "WHERE leaf_index >= (SELECT coalesce(max(tree_size), 0) FROM ledger_checkpoint)")


def wait_quiet(stack: Stack, services: tuple[str, ...] = SERVICES, timeout: float = 60) -> None:
    """Until every event was published and handled, every leaf signed and no e-mail waits to leave."""
    deadline = time.monotonic() + timeout
    while True:
        busy = [s for s in services if _scalar(stack.database_urls[s],
                                               "SELECT count(*) FROM outbox WHERE published_at IS NULL")]
        if "notifications" in services and _scalar(stack.database_urls["notifications"], "SELECT count(*) FROM "
                                                   "delivery WHERE status IN ('queued', 'sending', 'deferred')"):
            busy.append("delivery")
        if "notifications" in services and _scalar(stack.database_urls["notifications"], _reminders_due()):
            busy.append("reminders")
        if "minutes" in services and _scalar(stack.database_urls["minutes"], UNSIGNED_LEAVES):
            busy.append("checkpoint")  # the pages show the last signed checkpoint: it must cover every leaf
        if not busy and asyncio.run(_jetstream_idle(stack.nats_url, services)):
            return
        assert time.monotonic() < deadline, f"still busy: {busy}"
        time.sleep(0.3)


def public_pages(base: str) -> dict[str, str]:
    """The public site as anyone reads it (the forum's own address and the export's date left out)."""
    with httpx.Client(base_url=base, timeout=20) as client:
        def get(path: str) -> str:
            r = client.get(path)
            assert r.status_code == 200, (path, r.status_code)
            return re.sub(r'"genere_le": "[^"]*"', "", r.text.replace(base, "<forum>"))

        pages = {p: get(p) for p in (
            "/", "/seances", "/seances/passees", "/decisions", "/decisions.json", "/registre", "/comptes-rendus",
            "/votes", "/annonces", "/recherche?q=sant%C3%A9", "/recherche?q=groupes+de+travail", "/flux/tout.atom",
            "/ledger/checkpoint")}
        for listing, prefix in (("/decisions", "/decisions"), ("/comptes-rendus", "/comptes-rendus"),
                                ("/seances/passees", "/seances")):
            for path in sorted(set(re.findall(rf'href="({prefix}/[0-9a-f-]{{36}})"', pages[listing])))[:4]:
                pages[path] = get(path)
        pages["/comptes-rendus (json)"] = "\n".join(
            get(p) for p in sorted(set(re.findall(r'href="(/comptes-rendus/[0-9a-f-]{36}/v\d+\.json)"',
                                                  "".join(pages.values())))))
        return pages


def cli_run(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "forum_ouvert.cli", *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def url_options(urls: dict[str, str]) -> list[str]:
    return [a for s, u in urls.items() for a in ("--database-url", f"{s}={u}")]


def archive_rows(archive: Path) -> dict[tuple[str, str], list[str]]:
    """Every row of every table in the archive, as sorted canonical JSON objects."""
    out = {}
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        for service, entry in manifest["services"].items():
            for t in entry["tables"]:
                names = [c["name"] for c in t["columns"]]
                lines = tar.extractfile(t["file"]).read().decode().splitlines()  # type: ignore[union-attr]
                out[(service, t["name"])] = sorted(json.dumps(dict(zip(names, json.loads(x), strict=True)),
                                                              sort_keys=True) for x in lines)
    return out


@dataclass
class Source:
    nats_url: str
    archive: Path
    pages: dict[str, str]
    verifier_key: str
    state: Path
    ledger_key: bytes


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    data = tmp_path_factory.mktemp("backup-source")
    urls = database_urls(data, f"bk_src_{uuid.uuid4().hex[:6]}")
    stack = Stack(data, database_urls=urls, log_dir=data / "logs", env=ENV)  # its own nats-server
    try:
        stack.start()
        fill(stack)
        wait_quiet(stack)
        pages = public_pages(stack.web_url)
        # A person registers while notifications is down: the registry has published the event, no
        # consumer of notifications has it yet — what the backup must not lose.
        stack.kill("notifications", signal.SIGTERM)

        async def register() -> None:
            async with NatsBroker(stack.nats_url) as broker:
                await RpcClient(broker, timeout=10)(Register(
                    full_name="Dominique Arrivée", email=NEWCOMER, college=College.CITIZEN, charter_accepted=True))

        asyncio.run(register())
        wait_quiet(stack, ("registry", "forum", "minutes"))
        key = (data / "ledger.key").read_text().strip()
        from forumlib.tlog import parse_signer_key

        vkey = parse_signer_key(key).verifier.encode()
        state = data / "verify-state.json"
        first = asyncio.run(verify_async(stack.web_url, vkey, state))
        assert first.ok and first.size, first.message
        archive = data / "forum.tar.gz"
        out = cli_run("backup", str(archive), "--data-dir", str(data), *url_options(urls))
        assert vkey in out and archive.stat().st_mode & 0o777 == 0o600
        stack.stop()  # the tests need its archive, not its processes (their CPU goes to the restored forum)
        yield Source(stack.nats_url, archive, pages, vkey, state, (data / "ledger.key").read_bytes())
    finally:
        stack.stop()
        drop_schemas(urls)


def assert_same_pages(base: str, expected: dict[str, str], timeout: float = 30) -> None:
    """The restored site reads like the old one once it has caught up (it republishes what was in transit at
    backup time); if it never does, the failure shows what differs."""
    deadline = time.monotonic() + timeout
    while (pages := public_pages(base)) != expected and time.monotonic() < deadline:
        time.sleep(1)
    differing = [p for p in expected if pages.get(p) != expected[p]]
    assert not differing, "\n".join(
        "".join(difflib.unified_diff(expected[p].splitlines(True), pages.get(p, "").splitlines(True), p, p, n=1))
        for p in differing)


# ---------------------------------------------------------------- the whole forum
def test_restored_forum_shows_the_same_site_and_record_and_sends_nothing_twice(source: Source,
                                                                               tmp_path: Path) -> None:
    target = tmp_path / "restored"
    urls = database_urls(tmp_path, f"bk_dst_{uuid.uuid4().hex[:6]}")
    try:
        out = cli_run("restore", str(source.archive), "--data-dir", str(target), *url_options(urls))
        assert source.verifier_key in out
        # Only what was in transit is published again: the events of the newcomer's registration.
        in_transit = sum(NEWCOMER in r for r in archive_rows(source.archive)[("registry", "outbox")])
        assert in_transit and re.search(rf"événements à republier .*: {in_transit}\n", out), out
        assert (target / "ledger.key").read_bytes() == source.ledger_key
        for name in ("ledger.key", "secret.key", "notice-links.key"):
            assert (target / name).stat().st_mode & 0o777 == 0o600, name
        stack = Stack(target, database_urls=urls, log_dir=target / "logs", env=ENV)  # a new nats-server too
        assert stack.nats_url != source.nats_url
        with stack:
            assert_same_pages(stack.web_url, source.pages)
            state = tmp_path / "verify-state.json"
            shutil.copyfile(source.state, state)  # what an auditor accepted from the forum before
            result = asyncio.run(verify_async(stack.web_url, source.verifier_key, state))
            assert result.ok and result.size == result.previous_size, result.message
            # The event in transit at backup time reaches notifications: one verification e-mail...
            assert caught_mail(stack.mail_dir, NEWCOMER, timeout=30)
            wait_quiet(stack)
            # ...and nothing the old forum had already sent leaves again.
            mails = caught(stack.mail_dir)
            assert [str(m["To"]) for m in mails] == [NEWCOMER]
    finally:
        drop_schemas(urls)


# ---------------------------------------------------------------- the archive
def other_databases(tmp: Path, postgresql: bool) -> dict[str, str]:
    if postgresql:
        return database_urls(tmp, f"bk_x_{uuid.uuid4().hex[:6]}")
    return {s: f"sqlite+aiosqlite:///{tmp / f'{s}.db'}" for s in SERVICES}


def test_archive_round_trips_between_sqlite_and_postgresql(source: Source, tmp_path: Path) -> None:
    """Restored into the other kind of database and backed up again, every row comes back the same
    (datetimes, bytes, booleans, the search index); and back again into the first kind."""
    # PostgreSQL -> SQLite -> PostgreSQL where CI gives a PostgreSQL server, else SQLite -> SQLite.
    chain = [False, True] if postgres_base_url() else [False]
    archive, expected, created = source.archive, archive_rows(source.archive), []
    # The one difference a restore makes: the events in transit are to be published again.
    expected[("registry", "outbox")] = sorted(
        json.dumps({**row, "published_at": None}, sort_keys=True) if NEWCOMER in r else r
        for r in expected[("registry", "outbox")] for row in [json.loads(r)])
    try:
        for i, postgresql in enumerate(chain):
            where = tmp_path / f"step{i}"
            urls = other_databases(where, postgresql)
            created.append(urls)
            settings = Settings(data_dir=where)
            restore(archive, settings, urls)
            archive = where / "again.tar.gz"
            backup(archive, settings, urls)
            assert archive_rows(archive) == expected, f"step {i} ({'PostgreSQL' if postgresql else 'SQLite'})"
    finally:
        for urls in created:
            drop_schemas(urls)


def test_an_archive_of_an_older_version_restores_into_a_newer_forum(source: Source, tmp_path: Path) -> None:
    """The forum service's schema one revision back when the archive was taken; the target already at head
    (a new version, installed and migrated): it is taken back to the archive's revision, loaded, migrated on."""
    from alembic import command

    from forum_ouvert.backup import _revisions
    from shared.migrations import alembic_config

    old_urls = database_urls(tmp_path / "old", f"bk_o_{uuid.uuid4().hex[:6]}")
    new_urls = database_urls(tmp_path / "new", f"bk_n_{uuid.uuid4().hex[:6]}")
    try:
        old = Settings(data_dir=tmp_path / "old")
        restore(source.archive, old, old_urls)
        command.downgrade(alembic_config("forum", old_urls["forum"]), "-1")
        archive = tmp_path / "old.tar.gz"
        manifest = backup(archive, old, old_urls)
        revisions = _revisions("forum", new_urls["forum"])
        assert manifest["services"]["forum"]["revision"] == revisions[-2]
        (tmp_path / "new").mkdir()
        for s in SERVICES:
            upgrade(s, new_urls[s])
        restore(archive, Settings(data_dir=tmp_path / "new"), new_urls)
        assert _scalar(new_urls["forum"], "SELECT version_num FROM alembic_version") == revisions[-1]
        for table in ("forum_decision", "forum_session", "forum_rsvp"):
            assert _scalar(new_urls["forum"], f"SELECT count(*) FROM {table}") == len(
                archive_rows(source.archive)[("forum", table)]), table
    finally:
        drop_schemas(old_urls)
        drop_schemas(new_urls)


def test_each_service_is_read_as_of_one_moment(source: Source, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    urls = database_urls(tmp_path, f"bk_c_{uuid.uuid4().hex[:6]}")
    try:
        settings = Settings(data_dir=tmp_path / "data")
        restore(source.archive, settings, urls)
        registry = urls["registry"]
        before = _scalar(registry, "SELECT count(*) FROM inbox") + _scalar(registry, "SELECT count(*) FROM member")
        writes = []

        class WriterThatInterferes(backup_module._HashingWriter):
            """While the registry's first table is being written, another process commits a row to two others."""

            def __init__(self, f) -> None:  # noqa: ANN001
                super().__init__(f)
                if "/registry/" in f.name and not writes:
                    engine = create_engine(sync_url(registry))
                    with engine.begin() as c:
                        c.execute(text("INSERT INTO inbox (consumer, event_id, processed_at) "
                                       "VALUES ('test', :e, :t)"), {"e": str(uuid.uuid4()),
                                                                      "t": f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S}"})
                        c.execute(text("UPDATE member SET full_name = 'changé' "
                                       "WHERE id = (SELECT min(id) FROM member)"))
                    engine.dispose()
                    writes.append(f.name)

        monkeypatch.setattr(backup_module, "_HashingWriter", WriterThatInterferes)
        archive = tmp_path / "during-writes.tar.gz"
        backup(archive, settings, urls)
        assert writes
        rows = archive_rows(archive)
        assert len(rows[("registry", "inbox")]) + len(rows[("registry", "member")]) == before
        assert not any("changé" in r for r in rows[("registry", "member")])
        assert _scalar(registry, "SELECT count(*) FROM inbox") + _scalar(registry, "SELECT count(*) FROM member") \
            == before + 1
    finally:
        drop_schemas(urls)


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def test_a_forum_that_holds_data_is_refused_but_not_a_freshly_started_one(source: Source, tmp_path: Path) -> None:
    from services.minutes.models import CheckpointRow

    urls = database_urls(tmp_path, f"bk_r_{uuid.uuid4().hex[:6]}")
    data = tmp_path / "data"
    try:
        # A forum started once and never used: schemas at head, the signed checkpoint of the empty log, keys.
        for s in SERVICES:
            upgrade(s, urls[s])
        engine = create_engine(sync_url(urls["minutes"]))
        with engine.begin() as c:
            c.execute(CheckpointRow.__table__.insert().values(tree_size=0, root=b"\0" * 32, note="empty",
                                                              created_at=datetime.now(UTC)))
        engine.dispose()
        data.mkdir()
        (data / "ledger.key").write_text("the key of the empty log\n")
        code, output = _invoke("restore", str(source.archive), "--data-dir", str(data), *url_options(urls))
        assert code == 0, output
        assert (data / "ledger.key").read_bytes() == source.ledger_key
        assert [p.read_text() for p in data.glob("ledger.key.replaced-*")] == ["the key of the empty log\n"]
        members = _scalar(urls["registry"], "SELECT count(*) FROM member")

        code, output = _invoke("restore", str(source.archive), "--data-dir", str(data), *url_options(urls))
        assert code == 1 and "n'est pas vide" in output and "--force" in output and "registry" in output, output
        code, output = _invoke("restore", str(source.archive), "--force", "--data-dir", str(data), *url_options(urls))
        assert code == 0, output
        assert _scalar(urls["registry"], "SELECT count(*) FROM member") == members
    finally:
        drop_schemas(urls)


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]


def _pack(members: dict[str, bytes], archive: Path) -> None:
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_a_damaged_archive_is_refused_before_anything_is_written(source: Source, tmp_path: Path) -> None:
    urls = database_urls(tmp_path, f"bk_d_{uuid.uuid4().hex[:6]}")
    data = tmp_path / "data"
    try:
        code, output = _invoke("restore", str(source.archive), "--check")
        assert code == 0 and "Archive intacte" in output, output

        members = _members(source.archive)
        decisions = "data/forum/forum_decision.jsonl"
        members[decisions] = members[decisions].replace("Adoption".encode(), "Adoptiun".encode(), 1)
        altered = tmp_path / "altered.tar.gz"
        _pack(members, altered)
        code, output = _invoke("restore", str(altered), "--data-dir", str(data), *url_options(urls))
        assert code == 1 and decisions in output and "SHA-256" in output and "rien n'a été restauré" in output, output

        truncated = tmp_path / "truncated.tar.gz"
        truncated.write_bytes(source.archive.read_bytes()[: source.archive.stat().st_size // 2])
        code, output = _invoke("restore", str(truncated), "--data-dir", str(data), *url_options(urls))
        assert code == 1 and "illisible ou tronquée" in output, output

        assert not data.exists()
        for url in urls.values():
            if url.startswith("sqlite"):
                assert not Path(url.split("///", 1)[1]).exists()
            else:
                engine = create_engine(sync_url(url))
                assert inspect(engine).get_table_names() == []
                engine.dispose()
    finally:
        drop_schemas(urls)


def test_one_database_url_for_every_service_is_refused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://forum@db/forum")
    with pytest.raises(backup_module.BackupError, match="--database-url"):
        service_urls(settings)
    given = [f"{s}=sqlite+aiosqlite:///{tmp_path / s}.db" for s in SERVICES]
    assert service_urls(settings, given)["minutes"].endswith("/minutes.db")
