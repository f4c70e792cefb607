"""Online majority-judgment votes through the web front, against the running forum (every service a real
process, real NATS, the real database): the secretariat opens a vote with its form and closes it early;
members grade every option on the ballot page (and change their ballot); the public list and page; the
result (merit profiles, majority grades, ranking, winner, the decision it became). And every bad input
for votes — a ballot on a closed or not-yet-open vote, a skipped option, a forged grade, a
non-eligible member, a non-secretariat member on the secretariat's pages, a bad opening form — each a clear
French page with nothing written (checked through the forum's own `get-vote`).
"""
from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared.contracts.decisions import GetVote, ListVotes, VoteView
from forumlib.majority_judgment import GRADE_LABELS, Grade
from shared.rpc import RpcClient
from tests.web.test_web_bad_input import field_error, h1, text
from tests.web.test_web_sessions import (  # noqa: F401 - fixtures
    Crowd, WebMember, admin, create_session, crowd, local,
)

pytestmark = pytest.mark.integration
AGENDA = "Accueil\nJeux de données prioritaires\nCalendrier"


# ================================================================ helpers
def vote_form(**fields: str) -> dict[str, str]:
    now = datetime.now(UTC)
    data = {"agenda_position": "2", "question": f"Quel jeu de données ouvrir en priorité ? {uuid.uuid4().hex[:6]}",
            "options": "Commande publique\nQualité de l'air\nHoraires des transports",
            "eligibility": "approved_members", "opens_at": local(now), "closes_at": local(now + timedelta(days=2))}
    data.update(fields)
    return data


async def past_session(admin: WebMember, **kw: str) -> str:
    return await create_session(admin, start=-timedelta(hours=3), opens=-timedelta(hours=5),
                                closes=-timedelta(hours=4), agenda=AGENDA, **kw)


async def open_vote(admin: WebMember, sid: str, **fields: str) -> str:
    r = await admin.post(f"/secretariat/votes/nouveau?seance={sid}", vote_form(**fields))
    assert r.status_code == 303, text(r)
    m = re.fullmatch(r"/votes/([0-9a-f-]{36})", r.headers["location"])
    assert m, r.headers["location"]
    return m.group(1)


def ballot(grades: dict[int, str]) -> dict[str, str]:
    return {f"grade-{k}": v for k, v in grades.items()}


async def vote_view(rpc: RpcClient, vote_id: str, actor_id: str | None = None) -> VoteView:
    return await rpc(GetVote(vote_id=vote_id, actor_id=actor_id))


def checked(page: httpx.Response, option_id: int) -> str | None:
    """The grade preselected for an option on the ballot page."""
    m = re.search(rf'name="grade-{option_id}" value="([a-z_]+)" checked', page.text)
    return m.group(1) if m else None


def alert(page: httpx.Response) -> str:
    m = re.search(r'id="erreur-vote">(.*?)</div>', page.text, re.S)
    assert m, "no error shown"
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", m.group(1)))).strip()


# ================================================================ the whole vote, through the forms
async def test_open_grade_change_and_close(admin: WebMember, crowd: Crowd, rpc: RpcClient) -> None:
    tag = uuid.uuid4().hex[:6]
    sid = await past_session(admin, title=f"Plénière des votes {tag}")
    page = await admin.get(f"/seances/{sid}")
    assert f'href="/secretariat/votes/nouveau?seance={sid}"' in page.text  # « Ouvrir un vote »
    assert f'href="/secretariat/decisions/nouvelle?seance={sid}"' in page.text

    form = await admin.get(f"/secretariat/votes/nouveau?seance={sid}")
    assert form.status_code == 200 and h1(form) == "Ouvrir un vote"
    assert "2. Jeux de données prioritaires</option>" in form.text
    question = f"Quel jeu de données ouvrir en priorité ? {tag}"
    vid = await open_vote(admin, sid, question=question)
    view = await vote_view(rpc, vid)
    assert view.status == "open" and [o.label for o in view.vote.options] == [
        "Commande publique", "Qualité de l'air", "Horaires des transports"]
    assert view.vote.agenda_text == "Jeux de données prioritaires"

    a, b, c = await crowd.members(3)
    page = await a.get(f"/votes/{vid}")
    assert page.status_code == 200 and h1(page) == question
    body = text(page)
    assert "Ouvert" in body and "Tous les membres validés du forum" in body and "(heure de Paris)" in body
    assert "les bulletins sont supprimés à la clôture du vote" in body
    # One fieldset per option, its legend the label, seven radios labelled with the scale.
    fieldsets = re.findall(r'<fieldset class="fr-fieldset forum-ballot[^"]*" id="option-(\d)".*?'
                           r'<legend[^>]*>(.*?)</legend>(.*?)</fieldset>', page.text, re.S)
    assert [(i, html.unescape(label)) for i, label, _ in fieldsets] == [
        ("1", "Commande publique"), ("2", "Qualité de l'air"), ("3", "Horaires des transports")]
    for _, _, radios in fieldsets:
        labels = [html.unescape(x).strip() for x in re.findall(r'<label class="fr-label"[^>]*>(.*?)</label>', radios)]
        assert labels == list(GRADE_LABELS.values())
    assert "Enregistrer mon vote" in page.text

    for m, grades in ((a, {1: "excellent", 2: "bien", 3: "a_rejeter"}),
                      (b, {1: "tres_bien", 2: "bien", 3: "passable"}),
                      (c, {1: "insuffisant", 2: "assez_bien", 3: "bien"})):
        r = await m.post(f"/votes/{vid}/bulletin", ballot(grades))
        assert r.status_code == 303 and r.headers["location"] == f"/votes/{vid}#mon-vote", text(r)
    page = await a.get(f"/votes/{vid}")
    assert "Votre vote est enregistré le" in text(page) and "J'ai voté" in text(page)
    assert [checked(page, i) for i in (1, 2, 3)] == ["excellent", "bien", "a_rejeter"]  # my ballot, preselected
    assert "3 bulletins déposés sur" in text(page)

    # Change of mind: the ballot is replaced, not added.
    r = await c.post(f"/votes/{vid}/bulletin", ballot({1: "passable", 2: "tres_bien", 3: "bien"}))
    assert r.status_code == 303
    page = await c.get(f"/votes/{vid}")
    assert "Votre vote est modifié le" in text(page)
    assert [checked(page, i) for i in (1, 2, 3)] == ["passable", "tres_bien", "bien"]
    assert (await vote_view(rpc, vid)).ballots == 3

    listing = await crowd.client().get("/votes")
    assert listing.status_code == 200 and h1(listing) == "Votes du forum"
    opened = re.search(r'<section[^>]*id="votes-open">(.*?)</section>', listing.text, re.S)
    assert opened and f'href="/votes/{vid}"' in opened.group(1)
    assert "J'ai voté" in (await a.get("/votes")).text

    # The secretariat's list: the open vote, with « Clôturer maintenant ».
    admin_list = await admin.get("/secretariat/decisions")
    row = re.search(rf'<tr id="vote-{vid}">(.*?)</tr>', admin_list.text, re.S)
    assert admin_list.status_code == 200 and row and "Clôturer maintenant" in row.group(1)
    assert "3 / " in row.group(1)

    # The secretariat closes it now: a confirmation page, then the POST.
    confirm = await admin.get(f"/secretariat/votes/{vid}/cloturer")
    assert confirm.status_code == 200 and h1(confirm) == f"Clôturer le vote « {question} »"
    assert "C'est définitif." in text(confirm)
    r = await admin.post(f"/secretariat/votes/{vid}/cloturer")
    assert r.status_code == 303 and r.headers["location"] == f"/votes/{vid}", text(r)
    page = await crowd.client().get(r.headers["location"])  # the public result
    body = text(page)
    closed = await vote_view(rpc, vid)
    assert closed.status == "closed" and closed.result is not None and closed.decision_id
    # Majority grades (lower median of three): Commande publique Très bien (excellent, très bien, passable),
    # Qualité de l'air Bien (très bien, bien, bien), Horaires des transports Passable (bien, passable, à rejeter).
    assert closed.result.winner_option_id == 1
    assert "Option retenue : Commande publique , avec la mention majoritaire « Très bien »." in body
    rows = re.findall(r'<tr id="profil-(\d)">\s*<td>(\d)</td>\s*<th scope="row">(.*?)</th>(.*?)</tr>', page.text, re.S)
    assert [(o, rank, html.unescape(label)) for o, rank, label, _ in rows] == [
        ("1", "1", "Commande publique"), ("2", "2", "Qualité de l'air"), ("3", "3", "Horaires des transports")]
    counts = [re.findall(r"<td>(\d+)</td>", cells) for _, _, _, cells in rows]
    assert counts[0] == ["1", "1", "0", "0", "1", "0", "0"]  # excellent, très bien, passable
    assert counts[1] == ["0", "1", "2", "0", "0", "0", "0"]
    assert "Profil de « Commande publique » : Excellent 1 (33,3 %) ; Très bien 1 (33,3 %) ; Bien 0 (0 %)" in body
    assert f'href="/decisions/{closed.decision_id}"' in page.text
    assert "Participation : 3 bulletins sur" in body
    assert 'name="grade-1"' not in page.text  # no ballot form any more
    admin_list = await admin.get("/secretariat/decisions")
    row = re.search(rf'<tr id="vote-{vid}">(.*?)</tr>', admin_list.text, re.S)
    assert row and f'href="/decisions/{closed.decision_id}"' in row.group(1) and "Clôturer" not in row.group(1)
    assert f'<tr id="decision-{closed.decision_id}">' in admin_list.text  # the decision the vote became
    public_list = (await crowd.client().get("/votes")).text
    closed_list = re.search(r'<section[^>]*id="votes-closed">(.*?)</section>', public_list, re.S)
    assert closed_list and f'href="/votes/{vid}"' in closed_list.group(1)


# ================================================================ bad ballots: nothing recorded
async def test_ballot_bad_input(admin: WebMember, crowd: Crowd, rpc: RpcClient) -> None:
    sid = await past_session(admin)
    vid = await open_vote(admin, sid)
    [m] = await crowd.members(1)

    async def refused(data: dict[str, str], status: int) -> httpx.Response:
        r = await m.post(f"/votes/{vid}/bulletin", data)
        assert r.status_code == status, text(r)
        assert h1(r).startswith("Quel jeu de données")  # the vote's page, with the error on it
        assert (await vote_view(rpc, vid, m.member_id)).my_ballot is None
        return r

    # An option skipped: the error sits on its fieldset; the grades given are kept.
    r = await refused(ballot({1: "bien", 3: "passable"}), 422)
    assert field_error(r, "option-2") == ("Choisissez une mention pour « Qualité de l'air » : chaque option doit être "
                                          "évaluée.")
    assert checked(r, 1) == "bien" and checked(r, 3) == "passable"
    assert "Votre vote n'a pas été enregistré" in text(r)
    # A grade outside the scale (a forged form).
    r = await refused(ballot({1: "bien", 2: "parfait", 3: "passable"}), 422)
    assert field_error(r, "option-2") == ("La mention choisie pour « Qualité de l'air » ne fait pas partie de "
                                          "l'échelle du vote.")
    # An option the vote does not have.
    r = await refused({**ballot({1: "bien", 2: "bien", 3: "bien"}), "grade-9": "bien"}, 422)
    assert "une option qui ne fait pas partie du vote" in alert(r)
    # Nothing at all.
    r = await refused({}, 422)
    assert field_error(r, "option-1").startswith("Choisissez une mention pour « Commande publique »")
    assert (await vote_view(rpc, vid)).ballots == 0

    # Not eligible: a vote for the attendees only, and this member was not checked in.
    attendees = await open_vote(admin, sid, eligibility="attendees")
    page = await m.get(f"/votes/{attendees}")
    assert "réservé aux membres présents à la séance" in text(page) and 'name="grade-1"' not in page.text
    r = await m.post(f"/votes/{attendees}/bulletin", ballot({1: "bien", 2: "bien", 3: "bien"}))
    assert r.status_code == 403
    assert alert(r) == ("Votre vote n'a pas été enregistré Ce vote est réservé aux membres présents à la séance, et "
                        "votre présence n'y a pas été enregistrée.")
    assert (await vote_view(rpc, attendees)).ballots == 0
    # The secretariat does not vote.
    r = await admin.post(f"/votes/{vid}/bulletin", ballot({1: "bien", 2: "bien", 3: "bien"}))
    assert r.status_code == 403 and "Les comptes du secrétariat ne votent pas." in alert(r)

    # Not yet open.
    later = datetime.now(UTC) + timedelta(days=1)
    upcoming = await open_vote(admin, sid, opens_at=local(later), closes_at=local(later + timedelta(days=1)))
    page = await m.get(f"/votes/{upcoming}")
    assert "À venir" in text(page) and "Le vote n'est pas encore ouvert : il ouvrira le" in text(page)
    r = await m.post(f"/votes/{upcoming}/bulletin", ballot({1: "bien", 2: "bien", 3: "bien"}))
    assert r.status_code == 409 and "Le vote n'est pas encore ouvert" in alert(r)
    assert (await vote_view(rpc, upcoming)).ballots == 0
    listing = await m.get("/votes")
    soon = re.search(r'<section[^>]*id="votes-upcoming">(.*?)</section>', listing.text, re.S)
    assert soon and f'href="/votes/{upcoming}"' in soon.group(1)

    # Closed.
    assert (await admin.post(f"/secretariat/votes/{vid}/cloturer")).status_code == 303
    r = await m.post(f"/votes/{vid}/bulletin", ballot({1: "bien", 2: "bien", 3: "bien"}))
    assert r.status_code == 410 and "Le vote est clos depuis le" in alert(r)
    assert (await vote_view(rpc, vid)).result.ballots == 0  # type: ignore[union-attr]
    page = await m.get(f"/votes/{vid}")
    assert "Aucun bulletin : aucune option n'est retenue." in text(page)
    # Closing twice changes nothing.
    r = await admin.post(f"/secretariat/votes/{vid}/cloturer")
    assert r.status_code == 303 and "Ce vote est déjà clos : son résultat est publié." in text(
        await admin.get(r.headers["location"]))

    # Unknown votes.
    r = await m.get(f"/votes/{uuid.uuid4()}")
    assert r.status_code == 404 and h1(r) == "Vote introuvable"
    r = await m.get("/votes/pas%20un%20identifiant")
    assert r.status_code == 404


# ================================================================ the opening form
async def test_open_vote_form_errors(admin: WebMember, crowd: Crowd, rpc: RpcClient) -> None:
    sid = await past_session(admin)
    tag = uuid.uuid4().hex[:8]

    async def post(status: int = 422, **fields: str) -> httpx.Response:
        r = await admin.post(f"/secretariat/votes/nouveau?seance={sid}",
                             vote_form(question=f"Question {tag}", **fields))
        assert r.status_code == status, text(r)
        assert f'value="Question {tag}"' in r.text and "<title>Erreur : " in r.text
        return r

    r = await post(options="Une seule option")
    assert field_error(r, "options") == "Indiquez de 2 à 10 options, une par ligne (1 indiquée)."
    assert "Une seule option</textarea>" in r.text
    r = await post(options="\n".join(f"Option {i}" for i in range(11)))
    assert field_error(r, "options") == "Indiquez de 2 à 10 options, une par ligne (11 indiquées)."
    r = await post(options="Oui\nNon\noui")
    assert field_error(r, "options") == "Deux options portent le même libellé."
    r = await post(options="Oui\n" + "x" * 201)
    assert field_error(r, "options").startswith("Option 2 : Ce champ ne doit pas dépasser 200 caractères")
    now = datetime.now(UTC)
    r = await post(opens_at=local(now + timedelta(days=2)), closes_at=local(now + timedelta(days=1)))
    assert field_error(r, "closes_at") == "La clôture du vote doit être après son ouverture."
    r = await post(opens_at=local(now - timedelta(days=2)), closes_at=local(now - timedelta(days=1)))
    assert field_error(r, "closes_at") == "La clôture du vote doit être dans le futur."
    r = await post(closes_at="31/02/2031 12:00")
    assert field_error(r, "closes_at").startswith("Date et heure invalides")
    r = await post(agenda_position="")
    assert field_error(r, "agenda_position") == "Choisissez le point de l'ordre du jour sur lequel porte le vote."
    r = await post(status=404, agenda_position="9")
    assert field_error(r, "agenda_position") == "La séance n'a pas de point n° 9 à son ordre du jour."
    r = await post(eligibility="tout le monde")
    assert field_error(r, "eligibility") == "Choisissez qui peut voter."
    r = await admin.post(f"/secretariat/votes/nouveau?seance={sid}", vote_form(question="Q"))
    assert r.status_code == 422 and field_error(r, "question") == "Ce champ doit contenir au moins 3 caractères."
    listed = await rpc(ListVotes(session_id=sid))
    assert listed.total == 0  # nothing opened

    r = await admin.get(f"/secretariat/votes/nouveau?seance={uuid.uuid4()}")
    assert r.status_code == 404 and h1(r) == "Séance introuvable"
    r = await admin.get("/secretariat/votes/nouveau")
    assert r.status_code == 400

    # Reserved to the secretariat: a member sees a French refusal, and nothing is opened or closed.
    [m] = await crowd.members(1)
    for path in (f"/secretariat/votes/nouveau?seance={sid}",):
        r = await m.get(path)
        assert r.status_code == 403 and "Cette page est réservée au secrétariat du forum." in text(r)
    r = await m.post(f"/secretariat/votes/nouveau?seance={sid}", vote_form())
    assert r.status_code == 403
    vid = await open_vote(admin, sid)
    r = await m.get(f"/secretariat/votes/{vid}/cloturer")
    assert r.status_code == 403
    r = await m.post(f"/secretariat/votes/{vid}/cloturer")
    assert r.status_code == 403 and (await vote_view(rpc, vid)).status == "open"
    anonymous = crowd.client()
    r = await anonymous.get(f"/secretariat/votes/nouveau?seance={sid}")
    assert r.status_code == 303 and r.headers["location"] == "/connexion"
    page = await anonymous.get(f"/votes/{vid}")
    assert page.status_code == 200 and "Se connecter pour voter" in text(page)


def test_grade_labels_are_the_scale() -> None:
    assert [GRADE_LABELS[g] for g in Grade] == ["Excellent", "Très bien", "Bien", "Assez bien", "Passable",
                                                "Insuffisant", "À rejeter"]
