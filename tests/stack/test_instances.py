"""Several processes of one service on one stack (`Stack.add_instance`), as the scale-out benchmark runs
them: an extra service process joins the first one's NATS queue group (it answers when the first is
gone), an extra web front listens on a port of its own, the supervisor restarts an extra process that
dies like any other, and `stop()` ends them all.
"""
from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import httpx
import pytest

from forum_ouvert.launcher import WEB, RestartPolicy, Stack
from tests.support import database_urls, drop_schemas

pytestmark = pytest.mark.integration


def test_extra_instances_share_the_queue_group_have_their_own_ports_and_stop_with_the_stack(tmp_path: Path) -> None:
    urls = database_urls(tmp_path, f"inst_{uuid.uuid4().hex[:6]}")
    # registry alone: the web front's health page (which wants every service) answers 503, which is enough here
    stack = Stack(tmp_path, database_urls=urls, log_dir=tmp_path / "logs", services=("registry",), web=False)
    try:
        stack.start()
        second = stack.add_instance("registry")
        assert second == "registry-2" and stack.instances("registry") == ["registry", "registry-2"]
        stack.wait_instance(second)
        assert "service started" in (tmp_path / "logs" / "registry-2.log").read_text()

        # the first one gone, the second answers the service's requests: they share the queue group
        stack.kill("registry")
        assert stack.service_health("registry") == "ok"

        stack.start_service(WEB)
        web2 = stack.add_instance(WEB)
        stack.wait_instance(web2)
        deadline = time.monotonic() + 60  # the first front was started without waiting: it may come second
        while not stack.answers(WEB):
            assert time.monotonic() < deadline, "the first web front never answered"
            time.sleep(0.1)
        ports = stack.web_ports
        assert len(set(ports)) == 2 and ports[1] == stack.instance_ports[web2]
        for port in ports:  # each front answers on its own port (503: the other services are not running)
            assert httpx.get(f"http://127.0.0.1:{port}/sante", timeout=10).status_code in (200, 503)

        # supervised, an extra instance that dies is restarted, and counts as started once it logs so again
        lines: list[str] = []
        supervisor = stack.supervise(RestartPolicy(first_delay=0.05, probe_every=0.05), say=lines.append)
        first_pid = stack.procs[second].pid
        os.killpg(first_pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while not (stack.procs[second].pid != first_pid and second in supervisor._answered):
            assert time.monotonic() < deadline, lines
            supervisor.check()
            time.sleep(0.05)
        assert lines == ["Le service registry-2 s'est arrêté (signal SIGKILL) ; redémarrage dans 0,05 s…"]
        assert stack.service_health("registry") == "ok"
        pids = [p.pid for p in stack.procs.values()]
    finally:
        stack.stop()
        drop_schemas(urls)
    assert stack.procs == {}
    for pid in pids:  # every process ended, the extra ones included
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
