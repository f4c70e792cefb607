"""`forum-ouvert`: run, serve, migrate and administer the forum."""
from __future__ import annotations

import asyncio
import importlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from forum_ouvert.backup import backup_command, restore_command
from forum_ouvert.verify import verify_command
from shared.settings import SERVICES, get_settings

if TYPE_CHECKING:
    from shared.service import ServiceDef

cli = typer.Typer(help="Forum ouvert — le forum permanent du Partenariat pour un gouvernement ouvert.",
                  no_args_is_help=True, add_completion=False)
SERVABLE = (*SERVICES, "web", "mailcatcher")
ROOT = Path(__file__).resolve().parent.parent
DOCS_DIR = ROOT / "docs" / "asyncapi"
cli.command("verify")(verify_command)
cli.command("backup")(backup_command)
cli.command("restore")(restore_command)


def service_definition(name: str) -> ServiceDef:
    """The `SERVICE` declared in services/<name>/service.py."""
    return importlib.import_module(f"services.{name}.service").SERVICE


@cli.command()
def up(demo: Annotated[bool, typer.Option(help="Fill an empty forum with demo content.")] = False,
       port: Annotated[int, typer.Option(help="Web port (another free one is used if taken).")] = 8000,
       data_dir: Annotated[Path, typer.Option(help="Where the local forum keeps its data.")] = Path(".forum-data"),
       ) -> None:
    """Start the whole forum locally: nats-server, every service on SQLite, a mail catcher, the web front.
    A process that dies is restarted (after 0.5 s, then up to 30 s); one that keeps dying as soon as it
    starts stops the forum."""
    from forum_ouvert.launcher import GaveUp, Stack

    private_files()
    stack = Stack(data_dir, web_port=port, log_dir=data_dir / "logs")
    supervisor = stack.supervise(say=typer.echo)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    typer.echo("Démarrage du forum ouvert… (journaux dans " + str(data_dir / "logs") + ")")
    gave_up = False
    try:
        stack.start(timeout=300)  # a loaded machine starts slowly; one that keeps dying is given up sooner
        if demo:
            from forum_ouvert.demo import fill

            typer.echo("Remplissage avec des données de démonstration…")
            typer.echo(fill(stack))
        typer.echo(f"""
Forum ouvert prêt : {stack.web_url}
  courriels reçus (local) : {stack.web_url}/dev/mail
  NATS                    : {stack.nats_url}
Premier compte du secrétariat :
  .venv/bin/forum-ouvert create-secretariat secretariat@example.org --data-dir {data_dir}
  puis « Se connecter » avec cette adresse ; le lien arrive dans {stack.web_url}/dev/mail
Ctrl-C pour arrêter.""")
        supervisor.watch()
    except KeyboardInterrupt:
        typer.echo("\nArrêt…")
    except GaveUp as exc:
        typer.echo(str(exc), err=True)
        gave_up = True
    finally:
        stack.stop()
    if gave_up:
        raise typer.Exit(1)


def private_files() -> None:
    """Files this process (and the processes it starts) creates are readable by their owner only: the
    data folder holds databases, keys and e-mail."""
    import os

    from forum_ouvert.launcher import PRIVATE_UMASK

    os.umask(PRIVATE_UMASK)


@cli.command()
def health(process: Annotated[str, typer.Argument(help="registry, forum, minutes, notifications or web.")],
           timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 4.0) -> None:
    """Is this process healthy? Exit 0 if so, 1 if not, with one line saying why (container health checks)."""
    from forum_ouvert.health import BACK_END, check

    if process not in (*BACK_END, "web"):
        raise typer.BadParameter(f"unknown process {process!r}; one of {', '.join((*BACK_END, 'web'))}")
    settings = get_settings()
    ok, why = check(process, settings.nats_url, settings.web_port, timeout)
    typer.echo(why)
    raise typer.Exit(0 if ok else 1)


@cli.command()
def serve(service: Annotated[str, typer.Argument(help=f"One of: {', '.join(SERVABLE)}")],
          migrate_first: Annotated[bool, typer.Option("--migrate", help="Apply migrations first.")] = False) -> None:
    """Run one service in the foreground (what each container runs)."""
    private_files()
    settings = get_settings()
    if service not in SERVABLE:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVABLE)}")
    if migrate_first and service in SERVICES:
        from shared.migrations import upgrade

        upgrade(service, settings.service_database_url(service))
    if service == "mailcatcher":
        from forum_ouvert.mailcatcher import serve as serve_mail

        serve_mail(settings.mail_folder, "127.0.0.1" if settings.web_host == "127.0.0.1" else "0.0.0.0",
                   settings.smtp_port)
        return
    if service == "web":
        import uvicorn

        # X-Forwarded-For is read by the web front itself, and only from `trusted_proxies`
        # (uvicorn's own reading would believe any local peer, whatever the settings say).
        uvicorn.run("services.web.app:create_served_app", factory=True, host=settings.web_host, port=settings.web_port,
                    log_level="warning", proxy_headers=False, access_log=False)
        return
    import uvloop

    from shared.gc_tuning import settle_after_start

    app = service_definition(service).build(settings).app
    app.after_startup(settle_after_start)  # the process is the service's own
    try:
        uvloop.run(app.run())
    except KeyboardInterrupt:
        pass


@cli.command()
def migrate(service: Annotated[str | None, typer.Argument(help="One service, or all.")] = None) -> None:
    """Apply database migrations (each service has its own database and history)."""
    from shared.migrations import upgrade

    private_files()
    settings = get_settings()
    for s in [service] if service else SERVICES:
        upgrade(s, settings.service_database_url(s))
        typer.echo(f"{s}: à jour")


@cli.command("new-migration")
def new_migration(service: str, message: str) -> None:
    """Autogenerate the next Alembic revision of SERVICE from its models (review it before committing)."""
    import tempfile

    from alembic import command

    from shared.migrations import alembic_config, upgrade

    versions = ROOT / "services" / service / "migrations" / "versions"
    rev_id = f"{len(list(versions.glob('[0-9]*.py'))) + 1:04d}"  # 0001, 0002…: readable history
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/scratch.db"
        upgrade(service, url)
        command.revision(alembic_config(service, url), message=message, autogenerate=True, rev_id=rev_id)


@cli.command("create-secretariat")
def create_secretariat(email: str,
                       name: Annotated[str, typer.Option(help="Display name.")] = "Secrétariat du forum",
                       data_dir: Annotated[Path | None, typer.Option(help="Local data folder (local run).")] = None,
                       ) -> None:
    """Create (or promote) a secretariat account. It then signs in by e-mailed link like everyone."""
    import os

    private_files()
    from pydantic import TypeAdapter, ValidationError
    from pydantic import EmailStr

    if data_dir is not None:
        os.environ["FORUM_DATA_DIR"] = str(data_dir)
        get_settings.cache_clear()
    try:
        TypeAdapter(EmailStr).validate_python(email)
    except ValidationError:
        raise typer.BadParameter(f"adresse électronique invalide : {email}") from None
    from shared.migrations import upgrade

    settings = get_settings()
    upgrade("registry", settings.service_database_url("registry"))
    view = asyncio.run(_create_secretariat(email, name))
    typer.echo(f"Compte du secrétariat prêt : {view.email} (id {view.member_id}). "
               "Connectez-vous avec cette adresse : un lien vous sera envoyé.")


async def _create_secretariat(email: str, name: str, database_url: str | None = None):  # noqa: ANN202
    from services.registry.members import create_secretariat
    from shared.db import Database
    from shared.outbox import unit_of_work

    db = Database(database_url or get_settings().service_database_url("registry"))
    try:
        async with unit_of_work(db, "registry") as uow:  # its events leave with the registry's outbox relay
            return await create_secretariat(uow, email, name)
    finally:
        await db.dispose()


def asyncapi_documents() -> dict[str, str]:
    """The AsyncAPI 3.0 document FastStream generates for each service, as stable JSON."""
    import json

    docs = {}
    for s in SERVICES:
        app = service_definition(s).build().app
        spec = json.loads(app.schema.to_specification().to_json())
        docs[s] = json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return docs


@cli.command()
def asyncapi(check: Annotated[bool, typer.Option(help="Fail if the committed documents are stale.")] = False) -> None:
    """Write (or check) docs/asyncapi/<service>.json from the code."""
    stale = []
    DOCS_DIR.mkdir(parents=True, exist_ok=True)
    for s, text in asyncapi_documents().items():
        path = DOCS_DIR / f"{s}.json"
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
            typer.echo(f"écrit : {path}")
    if stale:
        typer.echo("Documents AsyncAPI périmés (lancez `forum-ouvert asyncapi`) : " + ", ".join(stale), err=True)
        raise typer.Exit(1)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
