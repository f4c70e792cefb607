"""`forum-ouvert up --demo`: fills an empty forum through the same commands the web front sends.

Nothing is written into tables directly: registrations go through the registry's request/reply
commands, verification links are read from the caught e-mails, so every event, e-mail and (later)
public record flows exactly as it would for real people.
"""
from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from faststream.nats import NatsBroker

from services.launcher import Stack
from services.mailcatcher import read_messages
from shared.contracts.registry import (
    ApproveMember, College, ListMembers, MemberList, MemberView, Register, Registered, RejectMember, VerifyEmail,
)
from shared.contracts.common import ErrorCode
from shared.contracts.forum import (
    AnswerRsvp, AttendanceView, CancelSession, CheckIn, CreateSession, RsvpView, SessionView,
)
from shared.clock import PARIS
from shared.rpc_client import RpcClient, RpcError

SECRETARIAT_EMAIL = "secretariat@forum-ouvert.example"
PUBLIC, CIVIL, CITIZEN = College.PUBLIC_ACTOR, College.CIVIL_SOCIETY, College.CITIZEN
# (name, organisation, college) — fictitious people, real kinds of organisations of the forum.
PEOPLE = [
    ("Claire Dubois", "Direction interministérielle de la transformation publique", PUBLIC),
    ("Thomas Bernard", "Direction interministérielle du numérique", PUBLIC),
    ("Sophie Lefèvre", "Ministère de la Transition écologique", PUBLIC),
    ("Karim Haddad", "Ministère de l'Éducation nationale", PUBLIC),
    ("Isabelle Moreau", "Haute Autorité pour la transparence de la vie publique", PUBLIC),
    ("Julien Petit", "Conseil économique, social et environnemental", PUBLIC),
    ("Nadia Benali", "Ville de Montreuil", PUBLIC),
    ("Antoine Girard", "Open Knowledge France", CIVIL),
    ("Léa Fontaine", "Transparency International France", CIVIL),
    ("Mathieu Roux", "Regards Citoyens", CIVIL),
    ("Aïcha Diallo", "Démocratie ouverte", CIVIL),
    ("Pierre Lambert", "Association des maires ruraux", CIVIL),
    ("Émilie Garnier", "Fédération des centres sociaux", CIVIL),
    ("Hugo Mercier", "Data For Good", CIVIL),
    ("Camille Rousseau", "", CITIZEN),
    ("Yannick Le Gall", "", CITIZEN),
    ("Fatou Ndiaye", "", CITIZEN),
    ("Bruno Caron", "", CITIZEN),
    ("Inès Morel", "", CITIZEN),
    ("Olivier Chevalier", "", CITIZEN),
]


def _email(name: str) -> str:
    import unicodedata

    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z]+", ".", ascii_name).strip(".") + "@demo.forum-ouvert.example"


def _token_for(mail_dir: Path, to: str, path: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _, msg in read_messages(mail_dir):
            if to in str(msg["To"]):
                body = msg.get_body(preferencelist=("plain",))
                m = re.search(re.escape(path) + r"\?token=([\w-]+)", body.get_content() if body else "")
                if m:
                    return m.group(1)
        time.sleep(0.2)
    raise TimeoutError(f"no e-mail with {path} for {to}")


async def _fill(stack: Stack) -> str:
    from services.cli import _create_secretariat

    secretariat: MemberView = await _create_secretariat(SECRETARIAT_EMAIL, "Secrétariat du forum ouvert",
                                                        stack.database_urls["registry"])
    async with NatsBroker(stack.nats_url) as broker:
        rpc = RpcClient(broker, timeout=10)
        existing = await rpc.call("registry", "list-members", ListMembers(actor_id=secretariat.member_id), MemberList)
        if [m for m in existing.members if m.role != "secretariat"]:
            return "Le forum contient déjà des données : rien n'a été ajouté."
        ids: dict[str, str] = {}
        for name, org, college in PEOPLE:
            r = await rpc.call("registry", "register", Register(full_name=name, email=_email(name), organisation=org,
                                                                 college=college, charter_accepted=True), Registered)
            ids[name] = r.member_id
        pending = {"Olivier Chevalier", "Inès Morel"}
        rejected = {"Bruno Caron"}
        for name, _, _ in PEOPLE[:-1]:  # the last one has not clicked the link yet
            token = await asyncio.to_thread(_token_for, stack.mail_dir, _email(name), "/inscription/verifier")
            await rpc.call("registry", "verify-email", VerifyEmail(token=token), MemberView)
        for name, _, _ in PEOPLE[:-1]:
            if name in pending:
                continue
            if name in rejected:
                await rpc.call("registry", "reject-member", RejectMember(
                    actor_id=secretariat.member_id, member_id=ids[name],
                    reason="Inscription en double : vous êtes déjà inscrit au titre de votre association."),
                    MemberView)
            else:
                await rpc.call("registry", "approve-member", ApproveMember(actor_id=secretariat.member_id,
                                                                            member_id=ids[name]), MemberView)
        sessions = await _sessions(rpc, secretariat.member_id,
                                   [ids[n] for n, _, _ in PEOPLE[:-1] if n not in pending | rejected])
    return (f"{sessions}\n"
            f"{len(PEOPLE)} membres de démonstration inscrits dans les trois collèges "
            f"({len(PEOPLE) - len(pending) - len(rejected) - 1} validés, {len(pending)} en attente de validation, "
            f"{len(rejected)} refusé, 1 adresse non confirmée).\n"
            f"  Se connecter comme secrétariat : {SECRETARIAT_EMAIL}\n"
            f"  Se connecter comme membre      : {_email(PEOPLE[7][0])}\n"
            f"  (page « Se connecter », puis ouvrir le lien reçu dans {stack.web_url}/dev/mail)")


async def _retry(call, attempts: int = 50):  # noqa: ANN001, ANN202
    """Forum learns members from registry events: give them a moment to arrive."""
    for i in range(attempts):
        try:
            return await call()
        except RpcError as exc:
            if exc.code != ErrorCode.FORBIDDEN or i == attempts - 1:
                raise
            await asyncio.sleep(0.2)
    return None


async def _sessions(rpc: RpcClient, sec: str, approved: list[str]) -> str:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    def at(days: float, hour: int) -> datetime:
        day = (now + timedelta(days=days)).astimezone(PARIS).replace(hour=hour)
        return day.astimezone(UTC)

    async def create(**fields: object) -> SessionView:
        return await _retry(lambda: rpc.call("forum", "create-session", CreateSession(actor_id=sec, **fields),
                                             SessionView))

    past = await create(
        title="Plénière de lancement du forum ouvert", kind="plenary", starts_at=at(-3, 14), ends_at=at(-3, 17),
        place="CESE, Palais d'Iéna, 9 place d'Iéna, Paris 16e", capacity=120,
        rsvp_opens_at=at(-20, 9), rsvp_closes_at=at(-4, 18),
        description="Séance d'installation du forum ouvert permanent du plan d'action national 2024-2026.",
        agenda=["Mot d'accueil du président du CESE", "Présentation des 17 engagements du plan d'action national",
                "Règles de fonctionnement du forum", "Constitution des groupes de travail"])
    plenary = await create(
        title="Plénière : point d'étape sur le plan d'action national", kind="plenary",
        starts_at=at(10, 14), ends_at=at(10, 17), place="CESE, Palais d'Iéna, hémicycle", capacity=80,
        online_url="https://webinaire.example.org/forum-ouvert", rsvp_opens_at=at(-1, 9), rsvp_closes_at=at(9, 18),
        description="Revue de l'avancement des engagements et des contributions de la société civile.",
        agenda=["Avancement des engagements", "Retours des groupes de travail", "Questions diverses"])
    health = await create(
        title="Groupe de travail Santé : données de santé ouvertes", kind="working_group", theme="health",
        starts_at=at(5, 10), ends_at=at(5, 12), place="CESE, salle 221", capacity=3,
        rsvp_opens_at=at(-1, 9), rsvp_closes_at=at(4, 18),
        agenda=["Inventaire des jeux de données", "Priorités d'ouverture"])
    await create(
        title="Groupe de travail Transition écologique et planification", kind="working_group",
        theme="ecological_transition", starts_at=at(20, 14), ends_at=at(20, 16),
        online_url="https://webinaire.example.org/transition", capacity=40, rsvp_opens_at=at(3, 9),
        rsvp_closes_at=at(19, 18), agenda=["Participation du public aux décisions environnementales"])
    education = await create(
        title="Groupe de travail Éducation", kind="working_group", theme="education", starts_at=at(12, 10),
        ends_at=at(12, 12), place="CESE, salle 118", capacity=20, rsvp_opens_at=at(-1, 9), rsvp_closes_at=at(11, 18))
    await rpc.call("forum", "cancel-session", CancelSession(actor_id=sec, session_id=education.session_id,
                                                             reason="Reportée à une date ultérieure : salle indisponible."),
                   SessionView)
    for m in approved[:8]:
        await _retry(lambda m=m: rpc.call("forum", "rsvp", AnswerRsvp(actor_id=m, session_id=plenary.session_id,
                                                                      answer="attend"), RsvpView))
    await rpc.call("forum", "rsvp", AnswerRsvp(actor_id=approved[8], session_id=plenary.session_id,
                                               answer="decline"), RsvpView)
    for m in approved[3:8]:
        await rpc.call("forum", "rsvp", AnswerRsvp(actor_id=m, session_id=health.session_id, answer="attend"), RsvpView)
    for m in approved[:11]:
        await rpc.call("forum", "check-in", CheckIn(actor_id=sec, session_id=past.session_id, member_id=m),
                       AttendanceView)
    return ("5 séances : une plénière passée avec émargement, une plénière et un groupe de travail à venir "
            "(complet, avec liste d'attente), un groupe dont les réponses ne sont pas encore ouvertes, "
            "une séance annulée.")


def fill(stack: Stack) -> str:
    return asyncio.run(_fill(stack))
