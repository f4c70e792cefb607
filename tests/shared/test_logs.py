"""What the processes write to their logs: the real forum left quiet for a while and asked a few pages
logs one line per request and per handled message and nothing else (no tracebacks, no FastStream task
chatter, every line in the same format); a handler's error, and a library's warning on the way, carry
the correlation id of the user action."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import structlog
from faststream.nats import NatsBroker
from pydantic import BaseModel

from forum_ouvert.launcher import Stack
from shared.contracts.common import ErrorCode, Request
from shared.contracts.envelope import make_event
from shared.contracts.registry import MemberApproved
from shared.logging import configure_logging, library_logger
from shared.migrations import upgrade
from shared.rpc import RpcClient, RpcError
from shared.settings import Settings
from shared.streams import ensure_streams
from tests.support import database_urls, drop_schemas, nats_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CONSOLE_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z \[(\w+)\s*\] ")
SERVICE_LOGS = ("registry", "forum", "minutes", "notifications", "web")


# Every periodic job at least once a second (pull consumers' fetches time out after 1 s too), so that a few
# quiet seconds see each one go round several times.
QUIET_ENV = {"FORUM_OUTBOX_POLL_INTERVAL": "0.5", "FORUM_REMINDER_INTERVAL": "1", "FORUM_VOTE_CLOSE_INTERVAL": "1",
             "FORUM_LEDGER_CHECKPOINT_POLL": "1"}


def test_a_quiet_forum_logs_its_requests_once_and_nothing_else(tmp_path: Path) -> None:
    urls = database_urls(tmp_path)
    request_ids = {path: str(uuid.uuid4()) for path in ("/", "/seances", "/decisions", "/page-inconnue")}
    try:
        with nats_server() as url, Stack(tmp_path / "forum", nats_url=url, database_urls=urls,
                                         log_dir=tmp_path / "logs", env=QUIET_ENV) as stack:
            for path, request_id in request_ids.items():
                httpx.get(stack.web_url + path, headers={"X-Request-ID": request_id}, timeout=30)
            time.sleep(3.5)  # quiet: pull consumers wait on empty streams, jobs go round and sleep
    finally:
        drop_schemas(urls)
    logs = {name: (tmp_path / "logs" / f"{name}.log").read_text() for name in SERVICE_LOGS}

    for name, text in logs.items():
        assert "Traceback" not in text, f"{name}.log:\n{text}"
        assert "callback for Task" not in text, f"{name}.log:\n{text}"
        for line in text.splitlines():  # libraries' records too go through the same renderer
            found = CONSOLE_LINE.match(line)
            assert found, f"{name}.log, a line not in the common format: {line!r}"
            assert found.group(1) == "info", f"{name}.log, not expected in a quiet run: {line!r}"
    for path, request_id in request_ids.items():
        lines = [line for line in logs["web"].splitlines() if request_id in line]
        assert len(lines) == 1 and "[info     ] request " in lines[0] and f"path={path} " in lines[0], lines
    # The services log each request/reply message they answer, under the web request's id.
    [listed] = [line for line in logs["forum"].splitlines() if request_ids["/seances"] in line]
    assert "request handled" in listed and "handler=list_sessions" in listed and "outcome=ok" in listed


# A service whose operation fails and whose consumer fails at its first attempt, run as `serve` runs one.
FAILING_SERVICE = """
import asyncio, logging
from pydantic import BaseModel
from shared.contracts.common import Request
from shared.contracts.envelope import Envelope
from shared.contracts.registry import MemberApproved
from shared.outbox import UnitOfWork
from shared.service import HandlerContext, ServiceDef
from shared.settings import Settings

class Nothing(BaseModel):
    pass

class Explode(Request[Nothing], op="forum.test-explode"):
    pass

async def explode(req: Explode, ctx: HandlerContext) -> Nothing:
    logging.getLogger("a.library").warning("a library complains")
    raise RuntimeError("the handler broke")

failed = set()

async def on_approved(event: Envelope[MemberApproved], uow: UnitOfWork) -> None:
    if event.data.member_id not in failed:
        failed.add(event.data.member_id)
        raise RuntimeError("first attempt fails")

definition = ServiceDef("forum", title="test", operations=[explode], consumers=[on_approved])
asyncio.run(definition.build(Settings()).app.run())
"""


class Nothing(BaseModel):
    pass


class Explode(Request[Nothing], op="forum.test-explode"):
    pass


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]  # every line is JSON


async def test_errors_carry_the_correlation_id_of_the_action(tmp_path: Path) -> None:
    urls = database_urls(tmp_path)
    upgrade("forum", urls["forum"])
    log_file = tmp_path / "forum.log"
    request_id, event_correlation = str(uuid.uuid4()), str(uuid.uuid4())
    with nats_server() as url, log_file.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", FAILING_SERVICE], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "FORUM_NATS_URL": url, "FORUM_DATABASE_URL": urls["forum"],
                 "FORUM_DATA_DIR": str(tmp_path), "FORUM_LOG_FORMAT": "json", "FORUM_CONSUMER_BACKOFF": "[0.2]"})
        try:
            async with NatsBroker(url) as broker:
                rpc = RpcClient(broker, timeout=10)
                deadline = time.monotonic() + 60
                while True:
                    try:
                        await rpc.health("forum", timeout=1)
                        break
                    except RpcError:
                        assert time.monotonic() < deadline and proc.poll() is None, log_file.read_text()
                        await asyncio.sleep(0.2)
                with structlog.contextvars.bound_contextvars(correlation_id=request_id):
                    with pytest.raises(RpcError) as failed:
                        await rpc(Explode())
                assert failed.value.code == ErrorCode.INTERNAL

            nc = await nats.connect(url)
            await ensure_streams(nc.jetstream())
            event = make_event(MemberApproved(member_id="m-1", public_id="p", college="citizen"), producer="registry",
                               correlation_id=event_correlation)
            await nc.jetstream().publish("registry.member.approved", event.model_dump_json().encode())
            await nc.close()
            deadline = time.monotonic() + 30
            while not any(line.get("event") == "event handled" for line in _lines(log_file)):
                assert time.monotonic() < deadline, log_file.read_text()
                await asyncio.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    drop_schemas(urls)

    lines = _lines(log_file)
    broke = [line for line in lines if line["event"] == "request handler failed"]
    assert len(broke) == 1 and broke[0]["level"] == "error" and broke[0]["correlation_id"] == request_id
    assert broke[0]["handler"] == "explode" and "RuntimeError: the handler broke" in broke[0]["exception"]
    [library] = [line for line in lines if line.get("logger") == "a.library"]  # a stdlib record
    assert library["level"] == "warning" and library["correlation_id"] == request_id
    [retry] = [line for line in lines if line["event"] == "event handler failed, will retry"]
    assert retry["level"] == "warning" and retry["correlation_id"] == event_correlation
    assert retry["handler"] == "on_approved" and retry["outcome"] == "retry"
    [handled] = [line for line in lines if line["event"] == "event handled"]
    assert handled["level"] == "info" and handled["correlation_id"] == event_correlation
    assert handled["outcome"] == "ok" and handled["deliveries"] == 2 and handled["subject"] == "registry.member.approved"
    assert not [line for line in lines if "callback for Task" in line["event"]]


def test_expected_library_trouble_is_one_line_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    """What FastStream reports when a JetStream pull times out on the builtin TimeoutError (it restarts
    its fetch loop), and when the NATS connection drops; a real error keeps its traceback."""
    configure_logging(Settings(log_format="json"), "test")
    try:
        faststream = library_logger("faststream")
        faststream.log(logging.ERROR, "Task-52 raised an exception, retrying...\nIf this behavior causes issues, "
                       "you can disable it...", exc_info=_raised(TimeoutError()))
        faststream.log(logging.WARNING, "Connection broken with UnexpectedEOF()",
                       exc_info=_raised(nats.errors.UnexpectedEOF()))
        faststream.log(logging.ERROR, "something unexpected", exc_info=_raised(ValueError("a bug")))
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        for handler in [h for h in logging.getLogger().handlers if h.get_name() == "forum-ouvert"]:
            logging.getLogger().removeHandler(handler)  # it writes to this test's captured stderr
    assert [(line["level"], line["event"].split(" (")[0]) for line in lines] == [
        ("warning", "Connection broken with UnexpectedEOF()"), ("error", "something unexpected")]
    assert "exception" not in lines[0] and "ValueError: a bug" in lines[1]["exception"]


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001 - a raised exception has its traceback
        return caught
