"""Pages that know where they stand, at HTTP level against the fake forum of `test_web_record` (a real
ledger, no NATS): the ends of the public record and of the paginated lists lead nowhere that does not exist,
a decision's record status never contradicts its verified proof, and its quorum says what it counted and
when. The same things seen in a browser, on the demo forum, are in browser/test_time_and_counts.py."""
from __future__ import annotations

import re
import uuid

import httpx
import pytest

from shared.contracts.registry import College
from tests.web.test_web_record import FakeForum, decision, voted, web  # noqa: F401 - `web` is a fixture



@pytest.fixture
def forum() -> FakeForum:
    return FakeForum()


def _links(page: str) -> list[str]:
    return re.findall(r'href="(/registre/\d+)"[^>]*>Enregistrement (?:précédent|suivant)', page)


# ---------------------------------------------------------------- the public record's ends
async def test_record_navigation_stops_at_both_ends(web: httpx.AsyncClient, forum: FakeForum) -> None:
    forum.add(decision(1))
    forum.ledger.sign()
    last = len(forum.ledger.leaves) - 1
    first, middle, end = (await web.get("/registre/0")).text, (await web.get("/registre/1")).text, \
        (await web.get(f"/registre/{last}")).text
    assert "Enregistrement précédent" not in first and _links(first) == ["/registre/1"]
    assert _links(middle) == ["/registre/0", "/registre/2"]
    # The last record: « suivant » would be a 404; the page says it is the last one instead.
    assert "Enregistrement suivant" not in end and 'id="dernier-enregistrement"' in end
    for link in [*_links(first), *_links(middle), *_links(end)]:
        assert (await web.get(link)).status_code == 200, link
    # A record appended after the last checkpoint is in the log: « suivant » leads to it.
    forum.ledger.append("member.approved", str(uuid.uuid4()), {"public_id": "x", "college": "citizen"})
    end = (await web.get(f"/registre/{last}")).text
    assert _links(end)[-1] == f"/registre/{last + 1}" and (await web.get(f"/registre/{last + 1}")).status_code == 200


async def test_decision_register_past_its_last_page_is_a_french_404(web: httpx.AsyncClient,
                                                                     forum: FakeForum) -> None:
    for n in range(1, 22):
        forum.add(decision(n), in_log=False)
    assert (await web.get("/decisions?page=2")).status_code == 200
    gone = await web.get("/decisions?page=3")
    assert gone.status_code == 404 and "Page introuvable" in gone.text and 'href="/decisions"' in gone.text
    first = (await web.get("/decisions")).text  # « précédent » on page 1 leads nowhere
    assert 'href="/decisions?page=0"' not in first and "page=0" not in first


# ---------------------------------------------------------------- a decision's record status
def _status(page: str) -> str:
    m = re.search(r'id="statut-registre" data-record-status="(\w+)"(.*?)</div>', page, re.S)
    assert m, "no record status on the decision page"
    return m.group(1) + " " + re.sub(r"<[^>]+>|\s+", " ", m.group(2))


async def test_record_status_follows_the_log(web: httpx.AsyncClient, forum: FakeForum) -> None:
    d = forum.add(decision(1), in_log=False)
    forum.ledger.sign()
    page = (await web.get(f"/decisions/{d.decision.decision_id}")).text
    assert _status(page).startswith("pending ") and "En cours d'inscription au registre public" in _status(page)
    assert "Inscrite au registre public" not in page and "Preuve vérifiée" not in page

    # In the log, not yet under a signed checkpoint: still « en cours », the record number known.
    d2 = forum.add(decision(2))
    page = (await web.get(f"/decisions/{d2.decision.decision_id}")).text
    assert _status(page).startswith("pending_checkpoint ") and "Preuve vérifiée" not in page
    assert f"enregistrement n° {forum.located[d2.event_id]}" in _status(page)

    # Signed: « Inscrite au registre public le … », beside the verified proof, and never « en cours ».
    forum.ledger.sign()
    page = (await web.get(f"/decisions/{d2.decision.decision_id}")).text
    status = _status(page)
    assert status.startswith("ok ") and "Inscrite au registre public le" in status and "en cours" not in status
    assert 'data-server-verification="ok"' in page and "Preuve vérifiée" in page
    assert "En cours d'inscription" not in page


# ---------------------------------------------------------------- what a quorum counted, and when
async def test_quorum_of_a_vote_counts_voters_and_says_so(web: httpx.AsyncClient, forum: FakeForum) -> None:
    d = forum.add(voted())
    forum.ledger.sign()
    forum.present = [College.PUBLIC_ACTOR] * 4 + [College.CITIZEN, None]
    page = (await web.get(f"/decisions/{d.decision.decision_id}")).text
    table = page.split('id="table-quorum"', 1)[1].split("</table>", 1)[0]
    assert "<th scope=\"col\">Votants</th>" in table and ">Présents<" not in table
    assert "membres ayant voté" in page and "le quorum compte les membres qui ont voté" in page
    # Beside it, the session's check-in sheet today, from the forum's one attendance count.
    assert re.search(r'id="presents-seance">6</strong> présents', page)
    assert "acteurs publics : 4" in page and "citoyennes et citoyens : 1" in page and "secrétariat : 1" in page


async def test_quorum_of_a_show_of_hands_is_the_sheet_when_recorded(web: httpx.AsyncClient,
                                                                    forum: FakeForum) -> None:
    d = forum.add(decision(1))
    forum.ledger.sign()
    page = (await web.get(f"/decisions/{d.decision.decision_id}")).text
    table = page.split('id="table-quorum"', 1)[1].split("</table>", 1)[0]
    assert ">Présents<" in table and "Votants" not in table
    assert "au moment où la décision a été enregistrée" in page
    assert re.search(r'id="presents-seance">3</strong> présents', page)
