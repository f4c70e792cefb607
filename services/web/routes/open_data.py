"""Open data: `/donnees` lists the forum's public datasets (sessions, attendance counts per college,
decisions, closed votes' results, comptes rendus) under Licence Ouverte / Etalab 2.0, each with a short data dictionary,
and serves every one as CSV (`/donnees/<jeu>.csv`) and JSON (`/donnees/<jeu>.json`).

The exports stream: the forum is asked one page at a time and each row is written out as soon as it is
read, so the web front holds one page (and one small output buffer) whatever the size of the export.
They carry aggregates and public facts only — never a member's id, name or e-mail address.

A little over 400 lines on purpose: each dataset's dictionary is declared beside the rows it describes,
and the page and the files are built from that one declaration, so they cannot drift apart.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from fastapi import APIRouter
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel
from starlette.requests import Request

from forumlib.majority_judgment import GRADE_LABELS, GRADES
from shared import clock
from shared.contracts.common import Request as ServiceRequest
from shared.contracts.decisions import ListDecisions, ListVotes, VoteStatus
from shared.contracts.forum import KIND_LABELS, THEME_LABELS, ListSessions, SessionPeriod
from shared.contracts.minutes import ListMinutes
from shared.contracts.registry import COLLEGE_LABELS, College
from shared.rpc import RpcClient
from services.web.pages import render, rpc, web
from services.web.routes._common import csv_cell, not_found
from services.web.routes.decisions import LICENCE, LICENCE_URL, OPEN_DATA_HEADERS, open_data_row

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 200      # rows asked of the forum per request
CHUNK = 64 * 1024    # characters gathered before they are sent
NO_COLLEGE = "none"  # the attendance counts' key for accounts without a college
NO_COLLEGE_LABEL = "Sans collège"

Row = dict[str, Any]
Rows = Callable[[RpcClient, str, int], AsyncIterator[Row]]  # (forum, public address, page size) -> rows
T = TypeVar("T", bound=BaseModel)
X = TypeVar("X")

UTC_TIME = "date et heure UTC (ISO 8601)"


def utc_iso(value: datetime | None) -> str | None:
    """« 2030-07-14T12:05:00Z »: what every spreadsheet and language reads without guessing a time zone."""
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if value else None


async def paged(client: RpcClient, ask: Callable[[int], ServiceRequest[T]],
                items: Callable[[T], tuple[list[X], int]], page_size: int) -> AsyncIterator[X]:
    """Every item of a paginated list operation (`ask(offset)` asks for a page, `items(reply)` reads its
    items and the total), asking for the next page only once this one is used up.

    Pages are read by offset: a row added or removed while an export runs may shift a later page by one
    (a row seen twice or missed). Remembering what was sent would make memory grow with the export."""
    offset = 0
    while True:
        batch, total = items(await client(ask(offset)))
        for item in batch:
            yield item
        offset += len(batch)
        if len(batch) < page_size or offset >= total:
            return


# ---------------------------------------------------------------- the datasets
async def session_rows(client: RpcClient, base: str, page_size: int) -> AsyncIterator[Row]:
    async for s in paged(client, lambda offset: ListSessions(when=SessionPeriod.ALL, limit=page_size, offset=offset),
                         lambda reply: (reply.sessions, reply.total), page_size):
        yield {
            "identifiant": s.session_id,
            "titre": s.title,
            "type": s.kind.value,
            "type_libelle": KIND_LABELS[s.kind],
            "theme": s.theme.value if s.theme else None,
            "theme_libelle": THEME_LABELS[s.theme] if s.theme else None,
            "description": s.description,
            "debut": utc_iso(s.starts_at),
            "fin": utc_iso(s.ends_at),
            "lieu": s.place,
            "lien_en_ligne": s.online_url,
            "ordre_du_jour": [item.text for item in s.agenda],
            "statut": s.status.value,
            "motif_annulation": s.cancel_reason,
            "deroulement": s.phase.value,
            "capacite": s.capacity,
            "places_confirmees": s.confirmed_count,
            "liste_attente": s.waitlist_count,
            "places_restantes": s.seats_left,
            "ouverture_reponses": utc_iso(s.rsvp_opens_at),
            "cloture_reponses": utc_iso(s.rsvp_closes_at),
            "presents": s.attendance.total if s.attendance else None,
            "revision": s.revision,
            "mise_a_jour": utc_iso(s.updated_at),
            "url": f"{base}/seances/{s.session_id}",
        }


async def attendance_rows(client: RpcClient, base: str, page_size: int) -> AsyncIterator[Row]:
    def ask(offset: int) -> ListSessions:
        return ListSessions(when=SessionPeriod.PAST, include_cancelled=False, limit=page_size, offset=offset)

    # Ended sessions carry their counts per college in the list itself: no call per session.
    async for s in paged(client, ask, lambda reply: (reply.sessions, reply.total), page_size):
        if s.attendance is None:
            continue
        for college, count in s.attendance.by_college.items():
            yield {
                "seance_id": s.session_id,
                "seance_titre": s.title,
                "seance_type": s.kind.value,
                "debut": utc_iso(s.starts_at),
                "college": college,
                "college_libelle": COLLEGE_LABELS[College(college)] if college != NO_COLLEGE else NO_COLLEGE_LABEL,
                "presents": count,
                "presents_total_seance": s.attendance.total,
                "url": f"{base}/seances/{s.session_id}",
            }


async def decision_rows(client: RpcClient, base: str, page_size: int) -> AsyncIterator[Row]:
    # The same rows as the register's own exports (`/decisions.csv`, `/decisions.json`).
    async for d in paged(client, lambda offset: ListDecisions(limit=page_size, offset=offset),
                         lambda reply: (reply.decisions, reply.total), page_size):
        yield open_data_row(d, base)


async def vote_rows(client: RpcClient, base: str, page_size: int) -> AsyncIterator[Row]:
    async for v in paged(client, lambda offset: ListVotes(status=VoteStatus.CLOSED, limit=page_size, offset=offset),
                         lambda reply: (reply.votes, reply.total), page_size):
        r = v.result
        if r is None:  # past its closing time but not tallied yet (the forum does it within seconds)
            continue
        for o in r.options:
            counts = {g.grade: g.count for g in o.profile}
            yield {
                "vote_id": v.vote.vote_id,
                "seance_id": v.vote.session_id,
                "seance_titre": v.session_title,
                "point_ordre_du_jour": v.vote.agenda_position,
                "point_ordre_du_jour_texte": v.vote.agenda_text,
                "question": v.vote.question,
                "electorat": v.vote.eligibility.value,
                "ouverture": utc_iso(v.vote.opens_at),
                "cloture": utc_iso(v.closed_at or v.vote.closes_at),
                "inscrits": r.eligible,
                "bulletins": r.ballots,
                "option_id": o.option_id,
                "option": o.label,
                "rang": o.rank,
                "mention_majoritaire": o.majority_grade.value if o.majority_grade else None,
                "mention_majoritaire_libelle": GRADE_LABELS[o.majority_grade] if o.majority_grade else None,
                "gagnante": o.option_id == r.winner_option_id,
                "egalite": r.tie,
                **{f"nb_{g.value}": counts.get(g, 0) for g in GRADES},
                "decision_id": v.decision_id,
                "url": f"{base}/votes/{v.vote.vote_id}",
            }


async def minutes_rows(client: RpcClient, base: str, page_size: int) -> AsyncIterator[Row]:
    async for m in paged(client, lambda offset: ListMinutes(limit=page_size, offset=offset),
                         lambda reply: (reply.minutes, reply.total), page_size):
        a = m.adoption
        yield {
            "identifiant": m.minutes_id,
            "seance_id": m.session.session_id,
            "seance_titre": m.session.title,
            "seance_type": m.session.kind.value,
            "seance_debut": utc_iso(m.session.starts_at),
            "etat": m.state.value,
            "etat_libelle": m.state_label,
            "version": m.latest_version,
            "premiere_publication": utc_iso(m.first_published_at),
            "derniere_publication": utc_iso(m.latest_published_at),
            "adoption": a.kind.value if a else None,
            "adoption_decision": a.decision_number if a else None,
            "adoption_vote_id": a.vote_id if a else None,
            "relu": a.reviewed if a else None,
            "url": f"{base}/comptes-rendus/{m.minutes_id}",
            "document_json": f"{base}/comptes-rendus/{m.minutes_id}/v{m.latest_version}.json",
        }


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    meaning: str


@dataclass(frozen=True)
class Dataset:
    slug: str
    title: str
    description: str
    columns: tuple[Column, ...]
    rows: Rows

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


TEXT, INT, BOOL, ID = "texte", "entier", "booléen (oui/non en CSV)", "identifiant (UUID)"
AGENDA = (Column("point_ordre_du_jour", INT, "Rang du point de l'ordre du jour (1 pour le premier)"),
          Column("point_ordre_du_jour_texte", TEXT, "Intitulé de ce point de l'ordre du jour"))
DATASETS: dict[str, Dataset] = {d.slug: d for d in (
    Dataset("seances", "Séances du forum", "Une ligne par séance (plénière ou groupe de travail), annulées "
            "comprises, de la plus ancienne à la plus récente.", (
                Column("identifiant", ID, "Identifiant stable de la séance"),
                Column("titre", TEXT, "Titre de la séance"),
                Column("type", TEXT, "« plenary » (séance plénière) ou « working_group » (groupe de travail)"),
                Column("type_libelle", TEXT, "Type de séance, en toutes lettres"),
                Column("theme", TEXT, "Code du thème (vide pour une plénière sans thème)"),
                Column("theme_libelle", TEXT, "Thème, en toutes lettres"),
                Column("description", TEXT, "Présentation de la séance"),
                Column("debut", UTC_TIME, "Début de la séance"),
                Column("fin", UTC_TIME, "Fin de la séance"),
                Column("lieu", TEXT, "Adresse de la séance (vide si elle n'a lieu qu'en ligne)"),
                Column("lien_en_ligne", TEXT, "Adresse de participation en ligne, s'il y en a une"),
                Column("ordre_du_jour", "liste de textes (en CSV : un point par ligne de la cellule)",
                       "Points de l'ordre du jour, dans l'ordre"),
                Column("statut", TEXT, "« scheduled » (programmée) ou « cancelled » (annulée)"),
                Column("motif_annulation", TEXT, "Motif de l'annulation, le cas échéant"),
                Column("deroulement", TEXT, "Au moment de l'export : « upcoming » (à venir), « ongoing » (en cours) "
                       "ou « past » (passée)"),
                Column("capacite", INT, "Nombre de places"),
                Column("places_confirmees", INT, "Places attribuées au moment de l'export"),
                Column("liste_attente", INT, "Personnes en liste d'attente au moment de l'export"),
                Column("places_restantes", INT, "Places encore libres au moment de l'export"),
                Column("ouverture_reponses", UTC_TIME, "Ouverture des inscriptions"),
                Column("cloture_reponses", UTC_TIME, "Clôture des inscriptions"),
                Column("presents", INT, "Nombre de présents (vide tant que la séance n'est pas terminée)"),
                Column("revision", INT, "Nombre de modifications de la séance depuis sa création"),
                Column("mise_a_jour", UTC_TIME, "Dernière modification"),
                Column("url", TEXT, "Page de la séance"),
            ), session_rows),
    Dataset("presences", "Présences par collège", "Pour chaque séance terminée et non annulée, une ligne par "
            "collège avec le nombre de membres présents, de la plus récente à la plus ancienne. Des nombres "
            "seulement, jamais les personnes.", (
                Column("seance_id", ID, "Identifiant de la séance (voir le jeu « seances »)"),
                Column("seance_titre", TEXT, "Titre de la séance"),
                Column("seance_type", TEXT, "« plenary » ou « working_group »"),
                Column("debut", UTC_TIME, "Début de la séance"),
                Column("college", TEXT, "« public_actor » (acteurs publics), « civil_society » (organisations de la "
                       "société civile), « citizen » (citoyennes et citoyens) ou « none » (comptes sans collège)"),
                Column("college_libelle", TEXT, "Collège, en toutes lettres"),
                Column("presents", INT, "Membres de ce collège présents à la séance"),
                Column("presents_total_seance", INT, "Membres présents à la séance, tous collèges confondus"),
                Column("url", TEXT, "Page de la séance"),
            ), attendance_rows),
    Dataset("decisions", "Décisions", "Une ligne par décision, de la plus récente à la plus ancienne, corrigées "
            "comprises (le registre des décisions propose aussi ces fichiers filtrés).", (
                Column("numero", TEXT, "Numéro de la décision : année d'enregistrement, puis rang dans l'année"),
                Column("identifiant", ID, "Identifiant stable de la décision"),
                Column("titre", TEXT, "Titre de la décision"),
                Column("date", "date et heure ISO 8601, heure de Paris avec son décalage",
                       "Enregistrement de la décision"),
                Column("seance_id", ID, "Séance où elle a été prise (voir le jeu « seances »)"),
                Column("seance", TEXT, "Titre de cette séance"),
                *AGENDA,
                Column("issue", TEXT, "« adopted » (adoptée), « rejected » (rejetée) ou « deferred » (reportée)"),
                Column("issue_libelle", TEXT, "Issue, en toutes lettres"),
                Column("methode", TEXT, "« consensus », « show_of_hands » (vote à main levée) ou « online_vote » "
                       "(vote en ligne au jugement majoritaire)"),
                Column("regle_respectee", BOOL, "Le quorum et la majorité exigés par les règles du forum étaient "
                       "atteints"),
                Column("regle_resume", TEXT, "Le contrôle de la règle, en une phrase"),
                Column("engagement_code", TEXT, "Code de l'engagement du plan d'action concerné, s'il y en a un"),
                Column("engagement_titre", TEXT, "Intitulé de cet engagement"),
                Column("suivi", TEXT, "« todo » (à faire), « in_progress » (en cours), « done » (réalisée) ou "
                       "« abandoned » (abandonnée)"),
                Column("suivi_libelle", TEXT, "État du suivi, en toutes lettres"),
                Column("corrige", ID, "Décision que celle-ci corrige, le cas échéant"),
                Column("corrigee_par", ID, "Décision qui corrige celle-ci, le cas échéant"),
                Column("vote_id", ID, "Vote en ligne dont elle est issue (voir le jeu « votes »)"),
                Column("texte", "texte (Markdown)", "Texte de la décision"),
                Column("url", TEXT, "Page de la décision, avec sa preuve d'inscription au registre public"),
            ), decision_rows),
    Dataset("votes", "Résultats des votes", "Pour chaque vote en ligne clos, une ligne par option : sa mention "
            "majoritaire, son rang et le nombre de mentions reçues à chaque échelon (les bulletins, eux, sont "
            "supprimés à la clôture). Du plus récent au plus ancien.", (
                Column("vote_id", ID, "Identifiant du vote"),
                Column("seance_id", ID, "Séance à laquelle le vote se rattache"),
                Column("seance_titre", TEXT, "Titre de cette séance"),
                *AGENDA,
                Column("question", TEXT, "Question posée"),
                Column("electorat", TEXT, "« approved_members » (tous les membres validés) ou « attendees » (les "
                       "présents à la séance)"),
                Column("ouverture", UTC_TIME, "Ouverture du vote"),
                Column("cloture", UTC_TIME, "Clôture du vote"),
                Column("inscrits", INT, "Membres appelés à voter"),
                Column("bulletins", INT, "Bulletins déposés"),
                Column("option_id", INT, "Rang de l'option dans le bulletin (1 pour la première)"),
                Column("option", TEXT, "Libellé de l'option"),
                Column("rang", INT, "Classement de l'option (1 : en tête ; rangs égaux : égalité parfaite)"),
                Column("mention_majoritaire", TEXT, "Code de la mention majoritaire (médiane inférieure ; vide sans "
                       "bulletin)"),
                Column("mention_majoritaire_libelle", TEXT, "Mention majoritaire, en toutes lettres"),
                Column("gagnante", BOOL, "L'option l'emporte"),
                Column("egalite", BOOL, "Égalité parfaite en tête : aucune option ne l'emporte"),
                *(Column(f"nb_{g.value}", INT, f"Nombre de mentions « {GRADE_LABELS[g]} » reçues par l'option")
                  for g in GRADES),
                Column("decision_id", ID, "Décision issue du vote (voir le jeu « decisions »)"),
                Column("url", TEXT, "Page du vote"),
            ), vote_rows),
    Dataset("comptes-rendus", "Comptes rendus", "Une ligne par compte rendu publié, de la séance la plus récente à "
            "la plus ancienne : son état, sa dernière version et comment il a été adopté. Chaque version se "
            "télécharge en HTML, PDF et JSON depuis sa page ; l'empreinte SHA-256 du JSON figure au registre "
            "public.", (
                Column("identifiant", ID, "Identifiant stable du compte rendu"),
                Column("seance_id", ID, "Séance dont il rend compte (voir le jeu « seances »)"),
                Column("seance_titre", TEXT, "Titre de cette séance"),
                Column("seance_type", TEXT, "« plenary » ou « working_group »"),
                Column("seance_debut", UTC_TIME, "Début de la séance"),
                Column("etat", TEXT, "« published » (publié), « adopted » (adopté) ou « corrected » (corrigé)"),
                Column("etat_libelle", TEXT, "État, en toutes lettres"),
                Column("version", INT, "Numéro de la dernière version (1 pour la première publication)"),
                Column("premiere_publication", UTC_TIME, "Publication de la version 1"),
                Column("derniere_publication", UTC_TIME, "Publication de la dernière version"),
                Column("adoption", TEXT, "« decision » (adopté par une décision d'une séance ultérieure), « vote » "
                       "(par un vote des présents) ou « none » (publié sans adoption)"),
                Column("adoption_decision", TEXT, "Numéro de la décision d'adoption, le cas échéant"),
                Column("adoption_vote_id", ID, "Vote d'adoption, le cas échéant (voir le jeu « votes »)"),
                Column("relu", BOOL, "Les présents ont relu le projet avant sa publication"),
                Column("url", TEXT, "Page du compte rendu, avec toutes ses versions"),
                Column("document_json", TEXT, "Document canonique de la dernière version (son SHA-256 est au "
                       "registre public)"),
            ), minutes_rows),
)}


# ---------------------------------------------------------------- writing, a chunk at a time
def _csv_value(value: Any) -> str:
    if isinstance(value, bool):
        return "oui" if value else "non"
    if isinstance(value, list):
        value = "\n".join(str(v) for v in value)
    return csv_cell(value) if isinstance(value, str) or value is None else str(value)


async def csv_chunks(columns: list[str], rows: AsyncIterator[Row]) -> AsyncIterator[bytes]:
    """UTF-8 with a BOM and `;` separators (what French spreadsheets open as is); formula-safe cells."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    out.write("\ufeff")
    writer.writerow(columns)
    async for row in rows:
        writer.writerow([_csv_value(row[c]) for c in columns])
        if out.tell() >= CHUNK:
            yield out.getvalue().encode("utf-8")
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode("utf-8")


async def json_chunks(rows: AsyncIterator[Row]) -> AsyncIterator[bytes]:
    """A JSON array written as it goes: `[`, the objects separated by commas, `]`."""
    parts, size, separator = ["["], 1, "\n"
    async for row in rows:
        text = separator + json.dumps(row, ensure_ascii=False)
        parts.append(text)
        size, separator = size + len(text), ",\n"
        if size >= CHUNK:
            yield "".join(parts).encode("utf-8")
            parts, size = [], 0
    parts.append("\n]\n")
    yield "".join(parts).encode("utf-8")


async def first_page_asked(rows: AsyncIterator[Row]) -> AsyncIterator[Row]:
    """`rows`, with its first page already asked for: a forum that does not answer gets the usual French
    error page, before any byte is sent. A failure further on cuts the connection without the final chunk,
    so the download fails visibly instead of ending as a shorter file that looks whole."""
    first = await anext(rows, None)

    async def rest() -> AsyncIterator[Row]:
        if first is not None:
            yield first
            async for row in rows:
                yield row
    return rest()


# ---------------------------------------------------------------- pages
@router.get("/donnees")
async def open_data(request: Request) -> Response:
    return await render(request, "open_data.html", datasets=list(DATASETS.values()), licence=LICENCE,
                        licence_url=LICENCE_URL)


@router.get("/donnees/{filename}")
async def export(request: Request, filename: str) -> Response:
    slug, _, extension = filename.rpartition(".")
    dataset = DATASETS.get(slug)
    if dataset is None or extension not in ("csv", "json"):
        return await not_found(request, "Ce fichier", "Fichier introuvable",
                               [("/donnees", "Voir les données ouvertes"), ("/", "Retour à l'accueil")])
    base = web(request).settings.public_url.rstrip("/")
    rows = await first_page_asked(dataset.rows(rpc(request), base, PAGE_SIZE))
    name = f"forum-ouvert-{slug}-{clock.as_paris(clock.utcnow()).date().isoformat()}.{extension}"
    if extension == "csv":
        return StreamingResponse(csv_chunks(dataset.names, rows), media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"', **OPEN_DATA_HEADERS})
    return StreamingResponse(json_chunks(rows), media_type="application/json",
                             headers={"Content-Disposition": f'inline; filename="{name}"', **OPEN_DATA_HEADERS})
