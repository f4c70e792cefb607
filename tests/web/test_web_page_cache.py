"""Public pages kept a moment for anonymous visitors (`services/web/page_cache.py`), against the running
forum: a second web front with `FORUM_PAGE_CACHE_SECONDS`, real services, NATS and databases.

A decision recorded over RPC (behind this front's back) reaches anonymous readers once the page's time is
up; a visitor with a cookie sees it at once; a form posted to this front makes every page anew."""
from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from forum_ouvert.launcher import WEB, Stack
from shared.rpc import RpcClient
from tests.web.test_web_decisions import record, started_session

pytestmark = pytest.mark.integration
SECONDS = 60.0  # longer than the test: what it reads anonymously is the kept page (the unit tests time it out)


@pytest.fixture
def cached_front(forum: Stack) -> Iterator[str]:
    name = forum.add_instance(WEB, env={"FORUM_PAGE_CACHE_SECONDS": str(SECONDS)})
    try:
        forum.wait_instance(name)
        yield f"http://127.0.0.1:{forum.instance_ports[name]}"
    finally:
        forum.remove_instance(name)


async def test_anonymous_pages_are_kept_and_forgotten_when_a_form_is_posted(
        cached_front: str, rpc: RpcClient, secretariat: str) -> None:
    session = await started_session(rpc, secretariat, "Plénière du cache des pages")
    async with httpx.AsyncClient(base_url=cached_front, timeout=20) as anonymous, \
            httpx.AsyncClient(base_url=cached_front, timeout=20) as visitor:
        first = await record(rpc, secretariat, session.session_id, title="Première décision du cache")
        assert first.decision.title in (await anonymous.get("/decisions")).text
        assert not anonymous.cookies  # reading public pages leaves no state
        assert (await visitor.get("/connexion")).cookies  # a visitor with a cookie (a CSRF token)

        second = await record(rpc, secretariat, session.session_id, agenda_position=2,
                              title="Deuxième décision du cache")
        page = await anonymous.get("/decisions")
        assert page.status_code == 200 and second.decision.title not in page.text  # the kept page
        assert page.headers["cache-control"] == "no-store" and page.headers["content-security-policy"]
        assert page.headers["x-request-id"] != (await anonymous.get("/decisions")).headers["x-request-id"]
        assert second.decision.title in (await anonymous.get("/decisions?page=1")).text  # another address
        assert second.decision.title in (await visitor.get("/decisions")).text  # a visitor with state: at once

        # Any form posted to this front, even one it refuses, makes every page anew.
        assert (await anonymous.post("/abonnements", data={"email": "x@example.org"})).status_code == 403
        assert second.decision.title in (await anonymous.get("/decisions")).text
