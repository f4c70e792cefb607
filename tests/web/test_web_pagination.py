"""The lists that grow with the years are read a page at a time, with the DSFR pagination: the
secretariat's members list (50 a page, latest registrations first) and the closed votes (20 a page).
A page past the last one is a French « page introuvable », never an empty list or a 500."""
from __future__ import annotations

import asyncio
import re
import uuid

import pytest

from shared.contracts.registry import Register
from shared.rpc import RpcClient
from tests.web.test_web_bad_input import h1
from tests.web.test_web_sessions import WebMember, admin, crowd  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration

NAV = re.compile(r'<nav role="navigation" class="fr-pagination" aria-label="Pagination">(.*?)</nav>', re.S)


async def test_members_list_is_paginated(admin: WebMember, rpc: RpcClient) -> None:  # noqa: F811 - fixture
    run = uuid.uuid4().hex[:8]
    emails = [f"page-{run}-{i}@example.org" for i in range(51)]
    for chunk in (emails[i:i + 10] for i in range(0, len(emails), 10)):
        await asyncio.gather(*(rpc(Register(full_name="Camille Page", email=e, college="citizen",
                                            charter_accepted=True)) for e in chunk))
    first = await admin.get("/secretariat/membres", params={"statut": "pending_verification"})
    assert first.status_code == 200 and emails[-1] in first.text  # latest registration first
    nav = NAV.search(first.text)
    assert nav, "no pagination on a list of more than 50 members"
    assert 'href="/secretariat/membres?statut=pending_verification&amp;page=2">Page suivante</a>' in nav.group(1)
    assert 'aria-current="page"' in nav.group(1) and 'aria-disabled="true" role="link">Page précédente' in nav.group(1)
    assert first.text.count('<tr id="membre-') == 50
    pages = int(re.findall(r'title="Page (\d+)"', nav.group(1))[-1])
    last = await admin.get("/secretariat/membres", params={"statut": "pending_verification", "page": str(pages)})
    tail = NAV.search(last.text)
    assert last.status_code == 200 and tail and 'aria-disabled="true" role="link">Page suivante' in tail.group(1)
    beyond = await admin.get("/secretariat/membres", params={"statut": "pending_verification", "page": str(pages + 1)})
    assert beyond.status_code == 404 and h1(beyond) == "Page introuvable"
    for bad in ("0", "deux", "9" * 30):
        r = await admin.get("/secretariat/membres", params={"page": bad})
        assert 400 <= r.status_code < 500 and "<html lang=\"fr\"" in r.text


async def test_votes_page_past_the_last_is_not_found(admin: WebMember) -> None:  # noqa: F811 - fixture
    assert (await admin.get("/votes")).status_code == 200
    r = await admin.get("/votes", params={"page": "10000"})
    assert r.status_code == 404 and h1(r) == "Page introuvable"
    assert (await admin.get("/votes", params={"page": "x"})).status_code in (400, 422)
