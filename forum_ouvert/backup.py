"""`forum-ouvert backup` and `forum-ouvert restore`: every service's database and the forum's keys, in
one archive that restores into an empty forum — on SQLite or PostgreSQL, whichever it was taken from.

The archive is a gzip'd tar, written with mode 0600 (it holds personal data and the public record's
signing key):

    manifest.json                  format version, date, software version; per service its database
                                   dialect, Alembic revision, snapshot time and tables (columns with their
                                   kinds, row counts); the keys; the SHA-256 and size of every other member
    data/<service>/<table>.jsonl   one JSON array per row, columns in the manifest's order
    keys/<name>                    the key files: the public record's signing key, the site's secret key,
                                   the notice links' key, any other secret generated into the data folder

Database-neutral: tables are read with SQLAlchemy Core and their values written by kind (datetimes as
UTC ISO 8601, bytes as base64, decimals as strings, JSON as JSON). The search index's search column is
the one thing that differs between the databases (a PostgreSQL `tsvector`, an SQLite FTS5 table): the
archive keeps the indexed documents and a restore recomputes it as the minutes service does.

Consistent per service: each database is read in one transaction (PostgreSQL: REPEATABLE READ, READ
ONLY; SQLite: one read transaction, a snapshot of its WAL), so a service's outbox agrees with its state
and its inbox with its projections. The services are not frozen together; what one had published and
another not yet handled is settled at restore (below).

Restore refuses a target that holds data (unless `force`), checks every member's hash before writing
anything, then for each service: brings its database to the archive's revision (migrating a new
database up, or an empty one of a newer version down), deletes and loads every table in one transaction
(foreign-key order), resets PostgreSQL sequences, and migrates on to the code's head (a backup taken by
an older version restores into a newer one). Keys are written back with mode 0600.

JetStream is transport, not the source of truth: its streams are not in the archive; the restored forum
runs on a fresh JetStream (new nats-server store, or the streams deleted). Outbox rows stay marked as
published, inbox rows come back with the data, and so does the delivery log (nothing sent is sent
again). What a live JetStream would still have delivered — events a producer had published but some
consumer had not yet recorded in its inbox when the snapshots were taken — is marked unpublished again,
so the outbox relay publishes it anew and each consumer that had not handled it does; those that had
skip it (their inbox).
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib
import json
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from importlib import metadata
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from sqlalchemy import (
    JSON, Boolean, Connection, Date, DateTime, Engine, Float, Integer, Interval, LargeBinary, MetaData, Numeric,
    String, Table, Text, create_engine, event, select, text, update,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool
from sqlalchemy.types import Time, TypeEngine

from shared.db import sync_url
from shared.settings import SERVICES, Settings
from shared.streams import MAX_AGE_S

FORMAT = "forum-ouvert-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BATCH = 1000
SEARCH_TABLE = "minutes_search"
# What a started, empty forum writes by itself: the signed checkpoint of the empty log. A target holding
# only that still counts as empty.
NOT_CONTENT = {"ledger_checkpoint": "tree_size = 0"}
_MEMBER_NAME = re.compile(r"^(data/[a-z]+/[a-z0-9_]+\.jsonl|keys/[A-Za-z0-9_.-]+)$")


class BackupError(Exception):
    """A backup or restore that cannot go on; the message (French) says why and what to do."""


# ====================================================================== where the forum keeps things
@dataclass(frozen=True)
class KeyFile:
    name: str    # its name in the archive
    label: str   # what it is, for people
    path: Path   # where this forum keeps it


def key_files(settings: Settings) -> list[KeyFile]:
    """The forum's keys: the public record's signing key wherever it is, and every secret generated into
    the data folder (`shared.secret_files.generated_secret`: the site's key, the notice links' key...)."""
    data = Path(settings.data_dir)
    keys = [KeyFile("ledger.key", "clé de signature du registre public", Path(settings.ledger_key_path)),
            KeyFile("secret.key", "clé secrète du site, qui signe les cookies", data / "secret.key"),
            KeyFile("notice-links.key", "clé des liens d'abonnement", data / "notice-links.key")]
    known = {k.path.resolve() for k in keys}
    others = sorted(p for p in data.glob("*.key") if p.is_file() and p.resolve() not in known) if data.is_dir() else []
    return keys + [KeyFile(p.name, "autre secret généré", p) for p in others]


def from_environment(settings: Settings) -> list[str]:
    """Secrets the environment gives (not files, so not in the archive: they belong with the configuration)."""
    return [name for name, value in (("FORUM_SECRET_KEY", settings.secret_key),
                                     ("FORUM_NOTICE_LINK_KEY", settings.notice_link_key)) if value]


def database_urls(settings: Settings, given: list[str] | None = None) -> dict[str, str]:
    """Each service's database: `SERVICE=URL` items, else the settings' (the SQLite files of the data folder).
    FORUM_DATABASE_URL names one service's database, so with it every service must be given."""
    urls: dict[str, str] = {}
    for item in given or []:
        service, sep, url = item.partition("=")
        if not sep or service not in SERVICES or not url:
            raise BackupError(f"--database-url attend SERVICE=URL, SERVICE parmi {', '.join(SERVICES)} : {item!r}")
        urls[service] = url
    missing = [s for s in SERVICES if s not in urls]
    if missing and settings.database_url:
        raise BackupError("FORUM_DATABASE_URL désigne la base d'un seul service : donnez celle de chaque service "
                          f"avec --database-url SERVICE=URL (manquent : {', '.join(missing)}).")
    for s in missing:
        urls[s] = settings.service_database_url(s)
    if len(set(urls.values())) < len(urls):
        # A restore empties the tables of each database it loads: one shared database would lose services.
        raise BackupError("chaque service a sa propre base de données : deux services ne peuvent pas avoir la même URL")
    return urls


# ====================================================================== databases
def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_file(url: str) -> Path | None:
    name = make_url(sync_url(url)).database
    return Path(name) if name and name != ":memory:" else None


def _engine(url: str) -> Engine:
    engine = create_engine(sync_url(url), poolclass=NullPool)
    if _is_sqlite(url):
        @event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _record) -> None:  # noqa: ANN001 - DB-API connection
            # The driver would start transactions itself, and only before writes: a backup's SELECTs
            # would each see the latest state. Transactions are begun explicitly instead.
            dbapi_conn.isolation_level = None
            # As the services open it (shared.db): WAL, so that a backup's long read never blocks their writes.
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA busy_timeout=30000")
            dbapi_conn.execute("PRAGMA foreign_keys=ON")
    return engine


@contextlib.contextmanager
def _connection(url: str) -> Iterator[Connection]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _data_tables(conn: Connection) -> list[Table]:
    """The service's tables in foreign-key order: not Alembic's, nor SQLite's own or its virtual tables
    (the search index's FTS5 table, rebuilt at restore) and their shadow tables."""
    skipped_prefixes = ["sqlite_", *_virtual_tables(conn)]
    metadata = MetaData()
    metadata.reflect(conn, only=lambda name, _meta: name != "alembic_version"
                     and not any(name.startswith(p) for p in skipped_prefixes))
    return list(metadata.sorted_tables)


def _virtual_tables(conn: Connection) -> list[str]:
    if conn.dialect.name != "sqlite":
        return []
    return [r[0] for r in conn.exec_driver_sql(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL TABLE%'")]


def _revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def _content_rows(conn: Connection) -> dict[str, int]:
    """Rows of each table that holds some (what a started, empty forum writes by itself aside)."""
    out = {}
    for t in _data_tables(conn):
        where = f" WHERE NOT ({NOT_CONTENT[t.name]})" if t.name in NOT_CONTENT else ""
        n = conn.exec_driver_sql(f"SELECT count(*) FROM {_quote(conn, t.name)}{where}").scalar_one()
        if n:
            out[t.name] = n
    return out


# ====================================================================== values, database-neutral
def _kind(t: TypeEngine[Any]) -> str | None:
    """How a column's values are written; None for a derived column (not kept)."""
    if isinstance(t, TSVECTOR):
        return None
    for cls, kind in ((Boolean, "bool"), (Interval, "interval"), (DateTime, "datetime"), (Date, "date"),
                      (Time, "time"), (LargeBinary, "bytes"), (JSON, "json"), (Float, "float"),
                      (Numeric, "decimal"), (Integer, "int"), (String, "text"), (Text, "text")):
        if isinstance(t, cls):
            return kind
    raise BackupError(f"type de colonne non pris en charge par la sauvegarde : {t!r}")


def _utc(value: datetime) -> datetime:
    # Storage is UTC everywhere: a naive value (SQLite) is UTC.
    return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)


def _encoder(kind: str) -> Any:
    """The function that writes a value of this kind as JSON, or None when it is JSON already."""
    match kind:
        case "datetime":
            return lambda v: _utc(v).isoformat()
        case "date" | "time":
            return lambda v: v.isoformat()
        case "interval":
            return lambda v: v.total_seconds()
        case "bytes":
            return lambda v: base64.b64encode(bytes(v)).decode("ascii")
        case "decimal":
            return str
        case "bool":
            return bool
        case _:
            return None


def _decoder(kind: str, target: TypeEngine[Any]) -> Any:
    aware = getattr(target, "timezone", False)
    match kind:
        case "datetime":
            return lambda v: _utc(datetime.fromisoformat(v)) if aware else _utc(
                datetime.fromisoformat(v)).replace(tzinfo=None)
        case "date":
            return date.fromisoformat
        case "time":
            return time.fromisoformat
        case "interval":
            return lambda v: timedelta(seconds=v)
        case "bytes":
            return base64.b64decode
        case "decimal":
            return Decimal
        case _:
            return None


# ====================================================================== backup
def _now() -> str:
    return datetime.now(UTC).isoformat()


class _HashingWriter:
    def __init__(self, f: IO[bytes]) -> None:
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def write(self, data: bytes) -> None:
        self.f.write(data)
        self.sha.update(data)
        self.size += len(data)


def _dump_service(service: str, url: str, out: Path, files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    sqlite = _is_sqlite(url)
    if sqlite and not ((path := _sqlite_file(url)) and path.exists()):
        raise BackupError(f"{service} : pas de base de données à {path} (mauvais dossier de données ?)")
    with _connection(url) as conn:
        # One read transaction: every table as of one moment.
        conn.exec_driver_sql("BEGIN" if sqlite else "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        revision = _revision(conn)
        snapshot_at = _now()
        if revision is None:
            raise BackupError(f"{service} : cette base n'a pas de migrations appliquées ; ce n'est pas celle "
                              "d'un forum ouvert")
        tables = []
        for t in _data_tables(conn):
            columns = [(c, kind) for c in t.columns if (kind := _kind(c.type)) is not None]
            name = f"data/{service}/{t.name}.jsonl"
            rows = 0
            with (out / name).open("wb") as f:
                w = _HashingWriter(f)
                stmt = select(*[c for c, _ in columns]).order_by(*t.primary_key.columns)
                encoders = [_encoder(kind) for _, kind in columns]
                for row in conn.execute(stmt.execution_options(yield_per=BATCH)):
                    values = [v if e is None or v is None else e(v) for e, v in zip(encoders, row, strict=True)]
                    w.write(json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
                    rows += 1
            files[name] = {"sha256": w.sha.hexdigest(), "bytes": w.size}
            tables.append({"name": t.name, "file": name, "rows": rows,
                           "columns": [{"name": c.name, "kind": kind} for c, kind in columns]})
        conn.rollback()
    return {"dialect": "sqlite" if sqlite else "postgresql", "revision": revision, "snapshot_at": snapshot_at,
            "tables": tables}


def _ledger_key_info(path: Path) -> dict[str, str]:
    from forumlib.tlog import KeyFormatError, parse_signer_key

    try:
        signer = parse_signer_key(path.read_text(encoding="ascii").strip())
    except (KeyFormatError, UnicodeDecodeError) as exc:
        raise BackupError(f"la clé de signature du registre public {path} est illisible : {exc}") from None
    return {"origin": signer.name, "verifier_key": signer.verifier.encode()}


def backup(archive: Path, settings: Settings, urls: dict[str, str]) -> dict[str, Any]:
    """Write the archive (atomically, mode 0600); returns its manifest."""
    archive = Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    files: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix=".forum-backup-", dir=archive.parent) as tmp:
        work = Path(tmp)
        os.chmod(work, 0o700)
        services = {}
        for service in SERVICES:
            (work / "data" / service).mkdir(parents=True)
            services[service] = _dump_service(service, urls[service], work, files)
        (work / "keys").mkdir()
        keys = []
        for k in key_files(settings):
            if not k.path.is_file():
                continue
            name = f"keys/{k.name}"
            shutil.copyfile(k.path, work / name)
            files[name] = {"sha256": _sha256(work / name), "bytes": (work / name).stat().st_size}
            entry = {"name": k.name, "label": k.label, "file": name}
            if k.name == "ledger.key":
                entry.update(_ledger_key_info(k.path))
            keys.append(entry)
        if not any(k["name"] == "ledger.key" for k in keys):
            raise BackupError(f"pas de clé de signature du registre public à {settings.ledger_key_path} : sans "
                              "elle, le registre restauré ne pourrait plus être signé (réglez FORUM_LEDGER_KEY_FILE "
                              "ou --data-dir)")
        manifest = {"format": FORMAT, "version": FORMAT_VERSION, "created_at": _now(),
                    "software": f"forum-ouvert {_software_version()}", "services": services, "keys": keys,
                    "from_environment": from_environment(settings), "files": files}
        (work / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1) + "\n")
        partial = work / "archive.tar.gz"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", compresslevel=6) as tar:
                for name in [MANIFEST, *files]:
                    tar.add(work / name, arcname=name, recursive=False, filter=_plain_member)
            raw.flush()
            os.fsync(raw.fileno())
        partial.replace(archive)
    return manifest


def _plain_member(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o600
    return info


def _sha256(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def _software_version() -> str:
    try:
        return metadata.version("forum-ouvert")
    except metadata.PackageNotFoundError:
        return "?"


# ====================================================================== reading an archive
def open_archive(archive: Path, into: Path) -> dict[str, Any]:
    """Unpack `archive` into the folder `into`, checking it is a forum ouvert backup whose every member is
    there, intact (SHA-256) and expected; returns its manifest. Nothing is written elsewhere."""
    damaged = f"archive illisible ou tronquée : {archive}"
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            manifest = None
            seen: dict[str, tuple[str, int]] = {}
            for info in tar:
                if info.name == MANIFEST and info.isfile():
                    manifest = _read_manifest(tar.extractfile(info), archive)
                    continue
                if not (info.isfile() and _MEMBER_NAME.match(info.name)) or info.name in seen:
                    raise BackupError(f"{archive} : membre inattendu « {info.name} » : ce n'est pas une "
                                      "sauvegarde du forum ouvert")
                dest = into / info.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(info)
                assert src is not None
                with dest.open("wb") as out:
                    w = _HashingWriter(out)
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        w.write(chunk)
                seen[info.name] = (w.sha.hexdigest(), w.size)
    except FileNotFoundError:
        raise BackupError(f"pas d'archive à {archive}") from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise BackupError(f"{damaged} ({type(exc).__name__}: {exc})") from None
    if manifest is None:
        raise BackupError(f"{archive} : pas de {MANIFEST} : ce n'est pas une sauvegarde du forum ouvert")
    listed = manifest["files"]
    for name, expected in listed.items():
        if name not in seen:
            raise BackupError(f"{archive} : « {name} » manque à l'archive ({damaged})")
        if seen[name][0] != expected["sha256"] or seen[name][1] != expected["bytes"]:
            raise BackupError(f"{archive} : « {name} » a été modifié ou abîmé (son SHA-256 ne correspond pas à "
                              "celui du manifeste) : l'archive est refusée, rien n'a été restauré")
    if extra := sorted(set(seen) - set(listed)):
        raise BackupError(f"{archive} : « {extra[0]} » n'est pas dans le manifeste : l'archive est refusée")
    return manifest


def _read_manifest(f: IO[bytes] | None, archive: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(f.read() if f else b"")
    except (ValueError, UnicodeDecodeError):
        raise BackupError(f"{archive} : {MANIFEST} illisible") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(f"{archive} : ce n'est pas une sauvegarde du forum ouvert")
    if manifest.get("version") != FORMAT_VERSION:
        raise BackupError(f"{archive} : format de sauvegarde {manifest.get('version')} inconnu de cette version "
                          f"(qui lit le format {FORMAT_VERSION}) : restaurez avec la version qui l'a écrite")
    return manifest


# ====================================================================== restore
@dataclass
class _Plan:
    service: str
    url: str
    revision: str               # the archive's
    content: dict[str, int]
    ahead: bool = False         # the target's schema is newer than the archive's


def _revisions(service: str, url: str) -> list[str]:
    from alembic.script import ScriptDirectory

    from shared.migrations import alembic_config

    script = ScriptDirectory.from_config(alembic_config(service, url))
    return [r.revision for r in reversed(list(script.walk_revisions()))]  # base first


def _plan(service: str, url: str, entry: dict[str, Any]) -> _Plan:
    known = _revisions(service, url)
    revision = entry["revision"]
    if revision not in known:
        raise BackupError(f"{service} : l'archive vient d'une version plus récente du forum ouvert (révision "
                          f"{revision} inconnue ici) : mettez le logiciel à jour avant de restaurer")
    if _is_sqlite(url) and not ((path := _sqlite_file(url)) and path.exists()):
        return _Plan(service, url, revision, {})  # a new file: the restore creates it
    with _connection(url) as conn:
        current = _revision(conn)
        content = _content_rows(conn)
    if current is not None and current not in known:
        raise BackupError(f"{service} : la base cible est à une révision inconnue ici ({current})")
    ahead = current is not None and known.index(current) > known.index(revision)
    return _Plan(service, url, revision, content, ahead)


def _rows(path: Path, decoders: list[Any], names: list[str]) -> Iterator[list[dict[str, Any]]]:
    batch = []
    with path.open("rb") as f:
        for line in f:
            values = json.loads(line)
            batch.append({n: (d(v) if d is not None and v is not None else v)
                          for n, d, v in zip(names, decoders, values, strict=True)})
            if len(batch) == BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


def _load_service(plan: _Plan, entry: dict[str, Any], work: Path) -> int:
    from services.minutes.search import _FTS_INSERT, _PG_TERMS  # how the index itself writes
    from forumlib.french_search import index_terms, index_words

    from shared.migrations import upgrade

    if _is_sqlite(plan.url) and (path := _sqlite_file(plan.url)) is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    if plan.ahead:
        # A forum of a newer version (e.g. just installed, its migrations applied): its schema goes back to
        # the archive's, whose rows then go through the later migrations like any forum's.
        from alembic import command

        from shared.migrations import alembic_config

        command.downgrade(alembic_config(plan.service, plan.url), plan.revision)
    upgrade(plan.service, plan.url, plan.revision)
    loaded = 0
    with _connection(plan.url) as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        tables = {t.name: t for t in _data_tables(conn)}
        wanted = {t["name"]: t for t in entry["tables"]}
        if unknown := sorted(set(wanted) - set(tables)):
            raise BackupError(f"{plan.service} : la table {unknown[0]} de l'archive n'existe pas dans la base cible")
        for t in reversed(list(tables.values())):
            conn.execute(t.delete())
        for name in _virtual_tables(conn):
            conn.exec_driver_sql(f"DELETE FROM {_quote(conn, name)}")
        for t in tables.values():
            if t.name not in wanted:
                continue
            spec = wanted[t.name]
            names = [c["name"] for c in spec["columns"]]
            if missing := [n for n in names if n not in t.c]:
                raise BackupError(f"{plan.service} : la colonne {t.name}.{missing[0]} de l'archive n'existe pas "
                                  "dans la base cible")
            decoders = [_decoder(c["kind"], t.c[c["name"]].type) for c in spec["columns"]]
            search_pg = t.name == SEARCH_TABLE and not sqlite and "terms" in t.c and "terms" not in names
            if search_pg:
                stmt = text(f"INSERT INTO {SEARCH_TABLE} ({', '.join(names)}, terms) "
                            f"VALUES ({', '.join(':' + n for n in names)}, {_PG_TERMS})")
            else:
                stmt = t.insert()
            count = 0
            for batch in _rows(work / spec["file"], decoders, names):
                if search_pg:
                    batch = [{**r, "title_words": index_words(r["title"]), "body_words": index_words(r["body"])}
                             for r in batch]
                conn.execute(stmt, batch)
                if t.name == SEARCH_TABLE and sqlite:
                    conn.execute(_FTS_INSERT, [{"id": r["id"], "title": index_terms(r["title"]),
                                                "body": index_terms(r["body"])} for r in batch])
                count += len(batch)
            if count != spec["rows"]:
                raise BackupError(f"{plan.service} : {t.name} : {count} lignes lues, {spec['rows']} annoncées")
            loaded += count
        if not sqlite:
            _reset_sequences(conn, list(tables.values()))
        conn.commit()
    upgrade(plan.service, plan.url)
    return loaded


def _reset_sequences(conn: Connection, tables: list[Table]) -> None:
    """After rows were inserted with their ids, the next id a sequence gives must follow them."""
    for t in tables:
        for c in t.columns:
            if not isinstance(c.type, Integer):
                continue
            seq = conn.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                               {"t": _quote(conn, t.name), "c": c.name}).scalar()
            if seq:
                conn.execute(text(f"SELECT setval(CAST(:seq AS regclass), COALESCE((SELECT max({_quote(conn, c.name)}) "
                                  f"FROM {_quote(conn, t.name)}), 0) + 1, false)"), {"seq": seq})


def _consumers() -> dict[str, list[tuple[str, str]]]:
    """For each event type, the (service, durable) that consume it."""
    from shared.service import Consumer, consumer

    by_type: dict[str, list[tuple[str, str]]] = {}
    for service in SERVICES:
        definition = importlib.import_module(f"services.{service}.service").SERVICE
        for c in definition.consumers:
            c = c if isinstance(c, Consumer) else consumer(c)
            by_type.setdefault(c.event.TYPE, []).append((service, c.durable(service)))
    return by_type


def _replay_undelivered(urls: dict[str, str], manifest: dict[str, Any]) -> int:
    """Mark unpublished again the events some consumer had not recorded when the archive was taken (and that
    a live JetStream would still hold): the outbox relay publishes them to the fresh JetStream."""
    from shared.outbox import InboxMessage, OutboxMessage

    by_type = _consumers()
    handled: dict[str, set[tuple[str, str]]] = {}
    for service in SERVICES:
        with _connection(urls[service]) as conn:
            inbox = InboxMessage.__table__
            handled[service] = {(c, e) for c, e in conn.execute(select(inbox.c.consumer, inbox.c.event_id))}
    replayed = 0
    for producer in SERVICES:
        since = datetime.fromisoformat(manifest["services"][producer]["snapshot_at"]) - timedelta(seconds=MAX_AGE_S)
        outbox = OutboxMessage.__table__
        with _connection(urls[producer]) as conn:
            if conn.dialect.name == "sqlite":
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            rows = conn.execute(select(outbox.c.id, outbox.c.event_id, outbox.c.subject).where(
                outbox.c.published_at.is_not(None), outbox.c.published_at >= since,
                outbox.c.subject.in_(list(by_type)))).all()
            pending = [r.id for r in rows
                       if any((durable, r.event_id) not in handled[s] for s, durable in by_type[r.subject])]
            for i in range(0, len(pending), BATCH):
                conn.execute(update(outbox).where(outbox.c.id.in_(pending[i:i + BATCH])).values(published_at=None))
            conn.commit()
        replayed += len(pending)
    return replayed


def _write_key(path: Path, data: bytes) -> Path | None:
    """Write a key file atomically with mode 0600; a different key already there is kept beside it (its
    path is returned)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    kept = None
    if path.exists():
        if path.read_bytes() == data:
            os.chmod(path, 0o600)
            return None
        kept = path.with_name(f"{path.name}.replaced-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
        os.replace(path, kept)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return kept


@dataclass
class RestoreReport:
    manifest: dict[str, Any]
    rows: dict[str, int]
    keys: list[str]
    kept_keys: list[str]
    replayed: int

    @property
    def verifier_key(self) -> str:
        return next((k["verifier_key"] for k in self.manifest["keys"] if k["name"] == "ledger.key"), "")


def restore(archive: Path, settings: Settings, urls: dict[str, str], *, force: bool = False) -> RestoreReport:
    """Restore the archive into the forum that `settings` and `urls` describe (its services stopped)."""
    with tempfile.TemporaryDirectory(prefix="forum-restore-") as tmp:
        work = Path(tmp)
        manifest = open_archive(Path(archive), work)
        ledger = next((k for k in manifest["keys"] if k["name"] == "ledger.key"), None)
        if ledger and ledger["origin"] != settings.ledger_origin:
            raise BackupError(f"le registre public de l'archive s'appelle « {ledger['origin']} », ce forum est "
                              f"réglé sur « {settings.ledger_origin} » : réglez FORUM_LEDGER_ORIGIN="
                              f"{ledger['origin']} (l'origine fait partie de la clé)")
        plans = [_plan(s, urls[s], manifest["services"][s]) for s in SERVICES]
        if not force and (full := [p for p in plans if p.content]):
            detail = "; ".join(f"{p.service} ({', '.join(f'{t} : {n}' for t, n in list(p.content.items())[:3])}"
                               f"{', …' if len(p.content) > 3 else ''})" for p in full)
            raise BackupError(f"la cible n'est pas vide — {detail}. La restauration remplacerait ces données : "
                              "restaurez dans un forum neuf, ou ajoutez --force pour les remplacer")
        rows = {p.service: _load_service(p, manifest["services"][p.service], work) for p in plans}
        replayed = _replay_undelivered(urls, manifest)
        written, kept = [], []
        targets = {k.name: k.path for k in key_files(settings)}
        for k in manifest["keys"]:
            path = targets.get(k["name"], Path(settings.data_dir) / k["name"])
            try:
                old = _write_key(path, (work / k["file"]).read_bytes())
            except OSError as exc:
                raise BackupError(f"les bases sont restaurées, mais la clé {path} n'a pas pu être écrite "
                                  f"({exc.strerror}) : copiez-la depuis l'archive (keys/{k['name']}, mode 0600)"
                                  ) from None
            if old is not None:
                kept.append(str(old))
            written.append(str(path))
    return RestoreReport(manifest, rows, written, kept, replayed)


# ====================================================================== the commands
DataDir = Annotated[Path | None, typer.Option(help="The forum's data folder (SQLite files, keys); default "
                                              "FORUM_DATA_DIR or .forum-data.")]
DatabaseUrls = Annotated[list[str] | None, typer.Option(
    "--database-url", metavar="SERVICE=URL",
    help="A service's database (repeat for each service); default: the SQLite files of the data folder.")]


def _settings(data_dir: Path | None) -> Settings:
    return Settings(data_dir=data_dir) if data_dir is not None else Settings()


def _fail(exc: Exception) -> typer.Exit:
    if isinstance(exc, SQLAlchemyError):
        exc = BackupError(f"base de données : {getattr(exc, 'orig', None) or exc}")
    typer.echo(f"Erreur : {exc}", err=True)
    return typer.Exit(1)


def backup_command(
        archive: Annotated[Path | None, typer.Argument(help="The archive to write (.tar.gz); default "
                                                       "forum-ouvert-<date>.tar.gz here.")] = None,
        data_dir: DataDir = None, database_url: DatabaseUrls = None) -> None:
    """Back up every service's database and the forum's keys into one archive (mode 0600)."""
    settings = _settings(data_dir)
    archive = archive or Path(f"forum-ouvert-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.tar.gz")
    try:
        manifest = backup(archive, settings, database_urls(settings, database_url))
    except (BackupError, SQLAlchemyError) as exc:
        raise _fail(exc) from None
    typer.echo(f"Sauvegarde écrite : {archive} ({archive.stat().st_size} octets, mode 0600 : elle contient des "
               "données personnelles et la clé de signature du registre public)")
    for service, entry in manifest["services"].items():
        rows = sum(t["rows"] for t in entry["tables"])
        typer.echo(f"  {service:<14} {rows:>8} lignes, {len(entry['tables'])} tables, révision {entry['revision']}")
    for k in manifest["keys"]:
        typer.echo(f"  clé : {k['name']} ({k['label']})")
    for name in manifest["from_environment"]:
        typer.echo(f"  {name} vient de l'environnement : sauvegardez-le avec la configuration")
    if vkey := next((k.get("verifier_key") for k in manifest["keys"] if k["name"] == "ledger.key"), None):
        typer.echo(f"Clé de vérification du registre public : {vkey}")


def restore_command(
        archive: Annotated[Path, typer.Argument(help="The archive written by `forum-ouvert backup`.")],
        force: Annotated[bool, typer.Option(help="Replace the data of a forum that is not empty.")] = False,
        check: Annotated[bool, typer.Option(help="Only check the archive (every member's SHA-256).")] = False,
        data_dir: DataDir = None, database_url: DatabaseUrls = None) -> None:
    """Restore an archive into a forum whose services are stopped (a new one, or with --force, this one)."""
    settings = _settings(data_dir)
    try:
        if check:
            with tempfile.TemporaryDirectory(prefix="forum-restore-") as tmp:
                manifest = open_archive(archive, Path(tmp))
            typer.echo(f"Archive intacte : {archive}, écrite le {manifest['created_at']} par {manifest['software']}")
            return
        report = restore(archive, settings, database_urls(settings, database_url), force=force)
    except (BackupError, SQLAlchemyError) as exc:
        raise _fail(exc) from None
    typer.echo(f"Restauré depuis {archive} (sauvegarde du {report.manifest['created_at']}) :")
    for service, n in report.rows.items():
        typer.echo(f"  {service:<14} {n:>8} lignes")
    for path in report.keys:
        typer.echo(f"  clé écrite (0600) : {path}")
    for path in report.kept_keys:
        typer.echo(f"  l'ancienne clé, différente, est gardée dans : {path}")
    for name in report.manifest["from_environment"]:
        typer.echo(f"  {name} venait de l'environnement : redonnez-le au forum restauré")
    typer.echo(f"  événements à republier (pas encore traités par tous leurs destinataires) : {report.replayed}")
    typer.echo(f"Clé de vérification du registre public : {report.verifier_key}\n"
               "Démarrez le forum sur un JetStream neuf, puis : forum-ouvert verify URL --key CLÉ")
