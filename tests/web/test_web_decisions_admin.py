"""The secretariat's decision pages through the web front, against the running forum (every service a real
process, real NATS, the real database): commitments of the action plan, the adoption rules (quorum per
college, double majority), recording a decision on an agenda item (consensus, show of hands per college),
correcting it by a new decision that supersedes it, its follow-up. And every bad input: the rule not met
for « adoptée » (with its summary, next to the outcome), invalid counts, missing choices, an unknown agenda
item or commitment, a session not started yet, a non-secretariat member — each a clear French page with
what was typed kept and nothing recorded (checked through the forum's own queries).
"""
from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
import pytest

from shared.contracts.decisions import (
    DecisionList, DecisionView, GetDecision, GetRules, ListCommitments, ListDecisions,
)
from shared.contracts.registry import College
from shared.rpc import RpcClient
from tests.web.test_web_bad_input import field_error, h1, text
from tests.web.test_web_sessions import (  # noqa: F401 - fixtures
    Crowd, WebMember, admin, create_session, crowd,
)

pytestmark = pytest.mark.integration
AGENDA = "Accueil\nDonnées de la commande publique\nQuestions diverses"
COLLEGES = ("public_actor", "civil_society", "citizen")


# ================================================================ helpers
def hands(**counts: tuple[int, int, int]) -> dict[str, str]:
    """hands(public_actor=(for, against, abstain), …) as the form's fields."""
    out = {}
    for college in COLLEGES:
        for key, n in zip(("in_favour", "against", "abstain"), counts.get(college, (0, 0, 0)), strict=True):
            out[f"hands_{college}_{key}"] = str(n)
    return out


def decision_form(**fields: str) -> dict[str, str]:
    data = {"agenda_position": "2", "title": f"Ouvrir les données de la commande publique {uuid.uuid4().hex[:6]}",
            "text": "Le forum **recommande** la publication des données :\n\n- des marchés ;\n- des avenants.",
            "method": "show_of_hands", "outcome": "adopted", "commitment_code": "", **hands()}
    data.update(fields)
    return data


async def past_session(admin: WebMember, **kw: str) -> str:
    return await create_session(admin, start=-timedelta(hours=3), opens=-timedelta(hours=5),
                                closes=-timedelta(hours=4), agenda=AGENDA, **kw)


async def decisions_of(rpc: RpcClient, sid: str) -> DecisionList:
    return await rpc(ListDecisions(session_id=sid))


async def get_decision(rpc: RpcClient, decision_id: str) -> DecisionView:
    return await rpc(GetDecision(decision_id=decision_id))


def decision_id(r: httpx.Response) -> str:
    assert r.status_code == 303, text(r)
    m = re.fullmatch(r"/decisions/([0-9a-f-]{36})", r.headers["location"])
    assert m, r.headers["location"]
    return m.group(1)


# ================================================================ commitments
async def test_commitments_add_and_edit(admin: WebMember, rpc: RpcClient) -> None:
    code = f"9.{uuid.uuid4().hex[:4]}"
    r = await admin.get("/secretariat/engagements")
    assert r.status_code == 200 and h1(r) == "Secrétariat : engagements du plan d'action"
    r = await admin.post("/secretariat/engagements", {"code": code, "title": "Ouvrir les algorithmes publics",
                                                      "plan": "2024-2026"})
    assert r.status_code == 303 and r.headers["location"] == "/secretariat/engagements", text(r)
    page = await admin.get("/secretariat/engagements")
    assert f"L'engagement {code} « Ouvrir les algorithmes publics » est enregistré." in text(page)
    assert re.search(rf'<tr id="engagement-{re.escape(code)}">', page.text)

    edit = await admin.get("/secretariat/engagements", params={"code": code})
    assert f'value="{code}"' in edit.text and 'value="Ouvrir les algorithmes publics"' in edit.text
    assert f"Modifier l'engagement {code}" in text(edit)
    r = await admin.post("/secretariat/engagements", {"code": code, "title": "Ouvrir les codes sources publics",
                                                      "plan": "2024-2026", "editing": "1"})
    assert r.status_code == 303
    listed = await rpc(ListCommitments())
    [mine] = [c for c in listed.commitments if c.code == code]
    assert mine.title == "Ouvrir les codes sources publics"

    before = len(listed.commitments)
    r = await admin.post("/secretariat/engagements", {"code": "7 bis !", "title": "Un engagement", "plan": "2024-2026"})
    assert r.status_code == 422 and field_error(r, "code").startswith("Le code de l'engagement : 1 à 12 caractères")
    assert 'value="7 bis !"' in r.text and 'value="Un engagement"' in r.text
    r = await admin.post("/secretariat/engagements", {"code": "99", "title": "ab", "plan": "2024-2026"})
    assert r.status_code == 422 and field_error(r, "title") == "Ce champ doit contenir au moins 3 caractères."
    r = await admin.get("/secretariat/engagements", params={"code": "inconnu"})
    assert r.status_code == 404
    assert len((await rpc(ListCommitments())).commitments) == before


# ================================================================ rules, recording, correcting, follow-up
async def test_rule_decides_adopted_then_correct_and_follow_up(admin: WebMember, crowd: Crowd,
                                                               rpc: RpcClient) -> None:
    # The rule for working groups: one public actor present, and a double majority.
    page = await admin.get("/secretariat/regles")
    assert page.status_code == 200 and h1(page) == "Secrétariat : règles d'adoption des décisions"
    assert "Double majorité" in text(page) and "une majorité dans la société civile" in text(page)
    r = await admin.post("/secretariat/regles", {"kind": "working_group", "quorum_public_actor": "1",
                                                 "quorum_civil_society": "0", "quorum_citizen": "",
                                                 "double_majority": "1"})
    assert r.status_code == 303 and r.headers["location"] == "/secretariat/regles", text(r)
    page = await admin.get("/secretariat/regles")
    assert "La règle des séances de type « groupe de travail » est enregistrée." in text(page)
    section = re.search(r'id="regle-working_group">(.*?)</section>', page.text, re.S)
    assert section and re.search(r'id="working_group-quorum_public_actor" name="quorum_public_actor"\s+value="1"',
                                 section.group(1))
    assert 'id="working_group-double_majority" name="double_majority" value="1" checked' in section.group(1)
    rules = await rpc(GetRules())
    [wg] = [x.rule for x in rules.rules if x.rule.kind == "working_group"]
    assert wg.quorum == {College.PUBLIC_ACTOR: 1} and wg.double_majority

    try:
        sid = await past_session(admin, kind="working_group", theme="open_data")
        form = await admin.get(f"/secretariat/decisions/nouvelle?seance={sid}")
        assert form.status_code == 200 and h1(form) == "Enregistrer une décision"
        assert "Format Markdown" in text(form) and "2. Données de la commande publique</option>" in form.text
        assert "Quorum : 1 présent au moins chez les acteurs publics" in text(form)

        # Nobody present: « adoptée » is refused, with the rule's summary, next to the outcome; input kept.
        data = decision_form(**hands(public_actor=(2, 0, 0), civil_society=(5, 1, 1)))
        r = await admin.post(f"/secretariat/decisions/nouvelle?seance={sid}", data)
        assert r.status_code == 409, text(r)
        message = field_error(r, "outcome")
        assert message.startswith("La règle du forum n'est pas remplie : la décision ne peut pas être adoptée.")
        assert "Quorum non atteint (0 présent" in message and "chez les acteurs publics" in message
        assert f'value="{data["title"]}"' in r.text
        assert re.search(r'name="hands_civil_society_in_favour"\s+value="5"', r.text)
        assert 'value="show_of_hands" checked' in r.text and 'value="adopted" checked' in r.text
        assert (await decisions_of(rpc, sid)).total == 0

        # A public actor checks in: now the quorum is met.
        [official] = await crowd.members(1, colleges=(College.PUBLIC_ACTOR,))
        r = await admin.post(f"/secretariat/seances/{sid}/emargement",
                             {"member_id": official.member_id, "present": "1", "walk_in": "1"})
        assert r.status_code == 303, text(r)
        # Overall majority, but not among the public actors: no double majority.
        r = await admin.post(f"/secretariat/decisions/nouvelle?seance={sid}",
                             decision_form(**hands(public_actor=(0, 2, 0), civil_society=(10, 0, 0))))
        assert r.status_code == 409 and "double majorité non atteinte" in field_error(r, "outcome")
        # A show of hands that met the rule cannot be recorded as rejected.
        r = await admin.post(f"/secretariat/decisions/nouvelle?seance={sid}", {**data, "outcome": "rejected"})
        assert r.status_code == 409 and field_error(r, "outcome").startswith(
            "Le vote à main levée remplit la règle du forum : la décision ne peut pas être rejetée.")
        assert (await decisions_of(rpc, sid)).total == 0

        first = decision_id(await admin.post(f"/secretariat/decisions/nouvelle?seance={sid}", data))
        view = await get_decision(rpc, first)
        d = view.decision
        assert d.title == data["title"] and d.outcome == "adopted" and d.method == "show_of_hands"
        assert d.agenda_position == 2 and d.agenda_text == "Données de la commande publique"
        assert d.hands and d.hands[College.CIVIL_SOCIETY].in_favour == 5 and d.hands[College.CITIZEN].against == 0
        assert d.rule_check.met and d.rule_check.summary.startswith("Quorum atteint")
        listing = await admin.get("/secretariat/decisions")
        assert listing.status_code == 200, text(listing)
        row = re.search(rf'<tr id="decision-{first}">(.*?)</tr>', listing.text, re.S)
        assert row and "Adoptée" in row.group(1) and f'href="/decisions/{first}"' in row.group(1)

        # Correction: a new decision, prefilled, that supersedes the first.
        edit = await admin.get(f"/secretariat/decisions/{first}/corriger")
        assert edit.status_code == 200 and h1(edit) == f"Corriger la décision n° {d.number}"
        assert f'name="supersedes" value="{first}"' in edit.text and f'value="{d.title}"' in edit.text
        assert 'value="show_of_hands" checked' in edit.text
        assert re.search(r'name="hands_civil_society_in_favour"\s+value="5"', edit.text)
        corrected = {**data, "title": "Ouvrir les données de la commande publique (corrigée)", "outcome": "deferred"}
        second = decision_id(await admin.post(f"/secretariat/decisions/{first}/corriger", corrected))
        assert (await get_decision(rpc, first)).superseded_by == second
        assert (await get_decision(rpc, second)).decision.supersedes == first
        r = await admin.get(f"/secretariat/decisions/{first}/corriger")
        assert r.status_code == 409 and "Cette décision a déjà été corrigée" in text(r)
        r = await admin.post(f"/secretariat/decisions/{first}/corriger", corrected)
        assert r.status_code == 409 and (await decisions_of(rpc, sid)).total == 2

        # Follow-up: a dated, public update.
        page = await admin.get(f"/secretariat/decisions/{second}/suivi")
        number = (await get_decision(rpc, second)).decision.number
        assert page.status_code == 200 and h1(page) == f"Suivi de la décision n° {number}"
        r = await admin.post(f"/secretariat/decisions/{second}/suivi", {"status": "fini", "note": "x"})
        assert r.status_code == 422 and field_error(r, "status") == "Choisissez le statut du suivi."
        r = await admin.post(f"/secretariat/decisions/{second}/suivi", {"status": "done", "note": "x" * 2001})
        assert r.status_code == 422 and field_error(r, "note") == "Ce champ ne doit pas dépasser 2000 caractères."
        assert (await get_decision(rpc, second)).follow_ups == []
        r = await admin.post(f"/secretariat/decisions/{second}/suivi",
                             {"status": "in_progress", "note": "Premier jeu de données publié."})
        assert r.status_code == 303 and r.headers["location"] == f"/decisions/{second}", text(r)
        after = await get_decision(rpc, second)
        assert after.follow_up == "in_progress" and after.follow_ups[-1].note == "Premier jeu de données publié."
        page = await admin.get(f"/secretariat/decisions/{second}/suivi")
        assert "Premier jeu de données publié." in text(page) and "En cours" in text(page)
    finally:
        r = await admin.post("/secretariat/regles", {"kind": "working_group", "quorum_public_actor": "0",
                                                     "quorum_civil_society": "0", "quorum_citizen": "0"})
        assert r.status_code == 303


async def test_decision_form_bad_input(admin: WebMember, rpc: RpcClient) -> None:
    sid = await past_session(admin)
    tag = uuid.uuid4().hex[:8]

    async def post(status: int = 422, **fields: str) -> httpx.Response:
        r = await admin.post(f"/secretariat/decisions/nouvelle?seance={sid}",
                             decision_form(title=f"Décision {tag}", **fields))
        assert r.status_code == status, text(r)
        assert f'value="Décision {tag}"' in r.text and "<title>Erreur : " in r.text
        return r

    r = await post(hands_citizen_in_favour="-3")
    assert field_error(r, "hands_citizen_in_favour") == "Indiquez un nombre entier de voix, 0 ou plus."
    assert 'value="-3"' in r.text
    r = await post(hands_public_actor_against="douze")
    assert field_error(r, "hands_public_actor_against") == "Indiquez un nombre entier de voix, 0 ou plus."
    r = await post(hands_civil_society_abstain="1000001")
    assert field_error(r, "hands_civil_society_abstain") == ("Indiquez au plus 6 chiffres : ce nombre ne peut pas "
                                                             "dépasser 100 000 voix.")
    r = await post()  # a show of hands with no count at all
    assert field_error(r, "hands") == "Indiquez les voix pour, contre et les abstentions d'au moins un collège."
    r = await post(method="")
    assert field_error(r, "method") == "Choisissez le mode de décision : consensus ou vote à main levée."
    r = await post(method="online_vote")  # forged: an online vote becomes a decision only when it closes
    assert field_error(r, "method") == "Choisissez le mode de décision : consensus ou vote à main levée."
    r = await post(outcome="", method="consensus")
    assert field_error(r, "outcome") == "Choisissez l'issue : adoptée, rejetée ou reportée."
    r = await post(agenda_position="", method="consensus")
    assert field_error(r, "agenda_position") == "Choisissez le point de l'ordre du jour sur lequel porte la décision."
    r = await post(text="   ", method="consensus")
    assert field_error(r, "text") == "Écrivez le texte de la décision."
    r = await admin.post(f"/secretariat/decisions/nouvelle?seance={sid}", decision_form(title="ab", method="consensus"))
    assert r.status_code == 422 and field_error(r, "title") == "Ce champ doit contenir au moins 3 caractères."
    # Refused by the forum service, shown next to the field it names.
    r = await post(status=404, agenda_position="9", method="consensus")
    assert field_error(r, "agenda_position") == "La séance n'a pas de point n° 9 à son ordre du jour."
    r = await post(status=404, commitment_code="ZZ9", method="consensus")
    assert field_error(r, "commitment_code").startswith("Aucun engagement du plan d'action ne porte le code « ZZ9 »")
    assert (await decisions_of(rpc, sid)).total == 0

    # A session that has not started yet: nothing to decide.
    later = await create_session(admin, agenda=AGENDA)
    r = await admin.post(f"/secretariat/decisions/nouvelle?seance={later}", decision_form(method="consensus"))
    assert r.status_code == 409 and "Cette séance n'a pas encore commencé" in text(r)
    assert (await decisions_of(rpc, later)).total == 0

    # Consensus: counts typed by mistake are ignored; no quorum by default, so « adoptée » is recorded.
    did = decision_id(await admin.post(f"/secretariat/decisions/nouvelle?seance={sid}", decision_form(
        method="consensus", **hands(citizen=(3, 0, 0)))))
    d = (await get_decision(rpc, did)).decision
    assert d.method == "consensus" and d.hands is None and d.rule_check.met

    r = await admin.get(f"/secretariat/decisions/nouvelle?seance={uuid.uuid4()}")
    assert r.status_code == 404 and h1(r) == "Séance introuvable"
    r = await admin.get("/secretariat/decisions/nouvelle")
    assert r.status_code == 400
    r = await admin.get(f"/secretariat/decisions/{uuid.uuid4()}/suivi")
    assert r.status_code == 404 and h1(r) == "Décision introuvable"

    # Rules: counts only.
    r = await admin.post("/secretariat/regles", {"kind": "plenary", "quorum_public_actor": "deux",
                                                 "quorum_civil_society": "-1", "quorum_citizen": "0"})
    assert r.status_code == 422
    assert field_error(r, "plenary-quorum_public_actor").startswith("Indiquez un nombre entier de membres présents")
    assert field_error(r, "plenary-quorum_civil_society").startswith("Indiquez un nombre entier")
    assert 'value="deux"' in r.text
    r = await admin.post("/secretariat/regles", {"kind": "assemblee", "quorum_public_actor": "1"})
    assert r.status_code == 400
    rules = await rpc(GetRules())
    assert [x.rule.quorum for x in rules.rules if x.rule.kind == "plenary"] == [{}]


async def test_secretariat_decision_pages_are_reserved(admin: WebMember, crowd: Crowd, rpc: RpcClient) -> None:
    sid = await past_session(admin)
    did = decision_id(await admin.post(f"/secretariat/decisions/nouvelle?seance={sid}",
                                       decision_form(method="consensus")))
    [m] = await crowd.members(1)
    for path in ("/secretariat/decisions", f"/secretariat/decisions/nouvelle?seance={sid}",
                 f"/secretariat/decisions/{did}/corriger", f"/secretariat/decisions/{did}/suivi",
                 "/secretariat/engagements", "/secretariat/regles"):
        r = await m.get(path)
        assert r.status_code == 403 and "Cette page est réservée au secrétariat du forum." in text(r), path
        assert (await crowd.client().get(path)).headers.get("location") == "/connexion", path
    for path, data in ((f"/secretariat/decisions/nouvelle?seance={sid}", decision_form(method="consensus")),
                       (f"/secretariat/decisions/{did}/corriger", decision_form(method="consensus")),
                       (f"/secretariat/decisions/{did}/suivi", {"status": "done", "note": ""}),
                       ("/secretariat/engagements", {"code": "66", "title": "Pirate", "plan": "2024-2026"}),
                       ("/secretariat/regles", {"kind": "plenary", "quorum_citizen": "100"})):
        r = await m.post(path, data)
        assert r.status_code == 403, path
    assert (await decisions_of(rpc, sid)).total == 1
    view = await get_decision(rpc, did)
    assert view.superseded_by is None and view.follow_ups == []
    assert "66" not in {c.code for c in (await rpc(ListCommitments())).commitments}
    # The member's own session page has no secretariat tools.
    page = await m.get(f"/seances/{sid}")
    assert "Enregistrer une décision" not in page.text and "Ouvrir un vote" not in page.text
