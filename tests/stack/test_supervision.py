"""`forum-ouvert up` keeps the forum running: its supervisor restarts any process that dies (nats-server,
the mail catcher, the web front, every service) with exponential backoff, and gives up, stopping
everything with a clear message, only on a process that keeps dying as soon as it starts.

- The policy on stand-in processes (fast): the delay doubles up to its cap, starts over once a process
  answered long enough, and the supervisor gives up after five deaths in a row before answering,
  however long each lived (a slow machine is not a broken process).
- The whole forum (SQLite, or PostgreSQL with FORUM_TEST_DATABASE_URL) under a little traffic: each
  kind of process is killed with SIGKILL once, is restarted by the supervisor, and the forum answers
  again afterwards (web /sante 200, every service healthy, a registration's e-mail arrives). Then
  every file the forum wrote in its data folder is readable by its owner only.
- `forum-ouvert up` itself with a service that cannot start: it gives up, says so, exits 1 and leaves
  no process behind.
"""
from __future__ import annotations

import asyncio
import os
import re
import signal
import stat
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from faststream.nats import NatsBroker

from forum_ouvert.launcher import MAILCATCHER, NATS, WEB, GaveUp, RestartPolicy, Stack, free_port, port_open
from shared.contracts.registry import Register
from shared.rpc import RpcClient, RpcError
from shared.settings import SERVICES
from tests.support import caught_mail

ROOT = Path(__file__).resolve().parents[2]
KINDS = (NATS, MAILCATCHER, WEB, *SERVICES)


# ============================================================================ the policy, on stand-ins
class Watched:
    """A supervised stack holding only stand-in processes (no forum), checked by hand."""

    def __init__(self, tmp: Path, policy: RestartPolicy, answers: bool) -> None:
        self.stack = Stack(tmp, services=(), web=False, log_dir=tmp / "logs")
        self.lines: list[str] = []
        self.supervisor = self.stack.supervise(policy, say=self.lines.append, answers=lambda name: answers)

    def spawn(self, name: str, code: str) -> None:
        self.stack._spawn(name, [sys.executable, "-c", code], dict(os.environ))

    def run_until(self, done, timeout: float = 30) -> None:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, self.lines
            self.supervisor.check()
            time.sleep(0.02)


def test_backoff_doubles_and_gives_up_on_a_process_that_dies_at_start(tmp_path: Path) -> None:
    w = Watched(tmp_path, RestartPolicy(first_delay=0.05, max_delay=0.2, give_up_after=5), answers=False)
    w.spawn("registry", "import sys; sys.exit(3)")
    with pytest.raises(GaveUp) as exc:
        w.run_until(lambda: False)  # gives up
    assert w.supervisor.restarts == {"registry": 4}
    assert w.lines == [f"Le service registry s'est arrêté (code 3) ; redémarrage dans {d}…"
                       for d in ("0,05 s", "0,1 s", "0,2 s", "0,2 s")]  # doubled, capped
    message = str(exc.value)
    assert message.startswith("Le service registry s'arrête dès son démarrage (5 fois de suite sans avoir "
                              "répondu, dernière fois : code 3) ; abandon, arrêt du forum.")
    assert str(tmp_path / "logs" / "registry.log") in message
    w.stack.stop()


def test_a_process_that_answered_is_never_given_up_and_starts_again_from_the_first_delay(tmp_path: Path) -> None:
    """Dies after answering for longer than `stable_after`: the wait starts over, and however often it
    dies, it did not die at start."""
    w = Watched(tmp_path, RestartPolicy(first_delay=0.05, max_delay=10, stable_after=0.3, give_up_after=2,
                                        probe_every=0.01), answers=True)
    w.spawn("forum", "import time, sys; time.sleep(0.6); sys.exit(1)")
    w.run_until(lambda: w.supervisor.restarts.get("forum", 0) >= 4)
    assert set(w.lines) == {"Le service forum s'est arrêté (code 1) ; redémarrage dans 0,05 s…"}
    w.stack.stop()


def test_a_process_that_never_answered_is_given_up_however_long_it_lived(tmp_path: Path) -> None:
    """A slow machine is no excuse: dying before answering is dying at start."""
    w = Watched(tmp_path, RestartPolicy(first_delay=0.01, stable_after=0.1, give_up_after=3), answers=False)
    w.spawn("minutes", "import time, sys; time.sleep(0.3); sys.exit(1)")
    with pytest.raises(GaveUp, match="minutes s'arrête dès son démarrage .3 fois de suite"):
        w.run_until(lambda: False)
    w.stack.stop()


def test_killed_processes_are_restarted_but_not_those_stopped_on_purpose(tmp_path: Path) -> None:
    w = Watched(tmp_path, RestartPolicy(first_delay=0.05), answers=True)
    w.spawn(NATS, "import time; time.sleep(60)")
    w.spawn("web", "import time; time.sleep(60)")
    first = w.stack.procs[NATS].pid
    os.killpg(first, signal.SIGKILL)
    w.run_until(lambda: w.stack.procs[NATS].pid != first and w.stack.procs[NATS].poll() is None)
    assert w.lines == ["Le service nats-server s'est arrêté (signal SIGKILL) ; redémarrage dans 0,05 s…"]
    w.stack.kill("web")  # a test (or Ctrl-C) stopping a process on purpose
    for _ in range(20):
        w.supervisor.check()
        time.sleep(0.02)
    assert "web" not in w.stack.procs and w.supervisor.restarts == {NATS: 1}
    w.stack.stop()
    w.supervisor.check()  # stopping: nothing is restarted any more
    assert w.stack.procs == {} and w.supervisor.restarts == {NATS: 1}


# ============================================================================ the whole forum
class Traffic:
    """Pages read through the web front and registrations over NATS, one after the other, until stopped;
    counts what was answered and what failed (failures are expected while a process is down)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.ok = 0
        self.failed = 0
        self.registered: list[str] = []
        self._stop = asyncio.Event()

    async def run(self) -> None:
        # One broker for the whole run: it reconnects by itself when nats-server comes back.
        async with NatsBroker(self.stack.nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2) as broker, \
                httpx.AsyncClient(base_url=self.stack.web_url, timeout=5) as web:
            rpc = RpcClient(broker, timeout=3)
            i = 0
            while not self._stop.is_set():
                i += 1
                try:
                    r = await web.get(("/", "/seances", "/decisions", "/registre")[i % 4])
                    ok = r.status_code == 200
                    if i % 2 == 0:
                        email = f"trafic-{uuid.uuid4().hex[:10]}@example.org"
                        await rpc(Register(full_name="Camille Trafic", email=email, organisation="Collectif test",
                                           college="citizen", charter_accepted=True))
                        self.registered.append(email)
                except (httpx.HTTPError, RpcError, OSError, TimeoutError):
                    ok = False
                self.ok += ok
                self.failed += not ok
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()


def alive_again(stack: Stack, kind: str, old_pid: int) -> bool:
    """`kind` runs in a new process and answers (port open, or healthy over NATS)."""
    proc = stack.procs.get(kind)
    if proc is None or proc.pid == old_pid or proc.poll() is not None:
        return False
    if kind == NATS:
        return port_open(stack.nats_port)
    if kind == MAILCATCHER:
        return port_open(stack.smtp_port)
    if kind == WEB:
        try:
            return httpx.get(f"{stack.web_url}/sante", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
    return stack.service_health(kind) == "ok"


async def until(check, what: str, timeout: float = 60) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"{what} after {timeout:.0f} s"
        await asyncio.sleep(0.2)


@pytest.mark.integration
async def test_every_kind_of_process_killed_is_restarted_and_the_forum_answers(
        supervised: tuple[Stack, list[str]]) -> None:
    stack, lines = supervised
    assert stack.supervisor is not None
    before = dict(stack.supervisor.restarts)  # a process that failed to start was restarted already
    said = len(lines)
    traffic = Traffic(stack)
    running = asyncio.create_task(traffic.run())
    try:
        await until(lambda: traffic.ok > 0, "no traffic answered before the kills", 30)
        for kind in KINDS:
            old = stack.procs[kind].pid
            os.killpg(old, signal.SIGKILL)
            await until(lambda kind=kind, old=old: alive_again(stack, kind, old), f"{kind} not restarted")
            served = traffic.ok  # some traffic in between
            await until(lambda served=served: traffic.ok > served, f"no traffic answered after {kind} came back", 30)
        # after the last restart the traffic goes through again
        served = traffic.ok
        await until(lambda: traffic.ok >= served + 6, "no traffic answered after the restarts", 30)
    finally:
        traffic.stop()
        await running

    restarted = {k: n - before.get(k, 0) for k, n in stack.supervisor.restarts.items() if n > before.get(k, 0)}
    assert restarted == dict.fromkeys(KINDS, 1), lines
    for kind in KINDS:
        label = "nats-server" if kind == NATS else kind
        said_it = re.compile(f"Le service {label} s'est arrêté \\(signal SIGKILL\\) ; redémarrage dans [0-9,]+ s…")
        assert any(said_it.fullmatch(ln) for ln in lines[said:]), lines
    r = httpx.get(f"{stack.web_url}/sante", timeout=10)
    assert r.status_code == 200 and set(r.json()["services"].values()) == {"ok"}, r.text
    for s in SERVICES:
        assert await asyncio.to_thread(stack.service_health, s) == "ok"
    # a registration made now goes all the way: registry -> JetStream -> notifications -> SMTP
    email = f"apres-{uuid.uuid4().hex[:8]}@example.org"
    async with NatsBroker(stack.nats_url) as broker:
        await RpcClient(broker, timeout=10)(Register(full_name="Camille Après", email=email, organisation="",
                                                     college="citizen", charter_accepted=True))
    assert await asyncio.to_thread(caught_mail, stack.mail_dir, email, "Confirmez", 60)
    assert traffic.registered, "no registration was answered during the kills"
    print(f"\nsupervision: {len(KINDS)} kills, {traffic.ok} requests answered, {traffic.failed} failed "
          f"while a process was down, {len(traffic.registered)} registrations")


@pytest.mark.integration
def test_files_in_the_data_folder_are_private(supervised: tuple[Stack, list[str]]) -> None:
    """Databases, keys, caught e-mail, the JetStream store and the logs: owner only."""
    stack, _ = supervised
    found, exposed = [], []
    for path in [stack.data_dir, *stack.data_dir.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        found.append(path.name)
        if mode & 0o077:
            exposed.append(f"{path.relative_to(stack.data_dir.parent)} {oct(mode)}")
    assert exposed == [], "\n".join(exposed)
    # the check saw what matters
    assert {"secret.key", "ledger.key", "registry.log"} <= set(found)
    if stack.database_urls["registry"].startswith("sqlite"):
        assert {f"{s}.db" for s in SERVICES} <= set(found)
    assert any(n.endswith(".eml") for n in found) and (stack.data_dir / "nats").is_dir()


# ============================================================================ forum-ouvert up
def processes_using(data_dir: Path) -> list[str]:
    """Processes of this user whose environment or command line names `data_dir`."""
    mine, needle = [], str(data_dir).encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            blob = Path(f"/proc/{pid}/environ").read_bytes() + Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if needle in blob and int(pid) != os.getpid():
            mine.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return mine


@pytest.mark.integration
def test_up_gives_up_on_a_service_that_cannot_start_and_stops_everything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    bad_key = tmp_path / "ledger.key"
    bad_key.write_text("not a key\n")  # minutes refuses to start with it
    env = {**os.environ, "FORUM_LEDGER_KEY_FILE": str(bad_key)}
    env.pop("FORUM_DATABASE_URL", None)
    up = subprocess.Popen([sys.executable, "-m", "forum_ouvert.cli", "up", "--port", str(free_port()),
                           "--data-dir", str(data)], env=env, cwd=ROOT, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stdout, stderr = up.communicate(timeout=600)
    except subprocess.TimeoutExpired:
        up.terminate()  # `up` stops its processes on SIGTERM
        stdout, stderr = up.communicate(timeout=60)
    r = subprocess.CompletedProcess(up.args, up.returncode, stdout, stderr)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    restarts = re.findall(r"Le service minutes s'est arrêté \(code \d+\) ; redémarrage dans ([\d,]+ s)…", r.stdout)
    assert restarts == ["0,5 s", "1 s", "2 s", "4 s"], out
    assert re.search(r"Le service minutes s'arrête dès son démarrage \(5 fois de suite sans avoir répondu, dernière "
                     r"fois : code \d+\) ; abandon, arrêt du forum\. Voir son journal : .*minutes\.log", r.stderr), out
    assert "Forum ouvert prêt" not in r.stdout
    assert "ledger key file" in (data / "logs" / "minutes.log").read_text()
    assert processes_using(data) == []
