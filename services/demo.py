"""`forum-ouvert up --demo`: fills an empty forum through the same commands the web front sends.

Nothing is written into tables directly: registrations go through the registry's request/reply
commands, verification links are read from the caught e-mails, so every event, e-mail and (later)
public record flows exactly as it would for real people.
"""
from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from faststream.nats import NatsBroker

from services.launcher import Stack
from services.mailcatcher import read_messages
from shared.contracts.registry import (
    ApproveMember, College, ListMembers, MemberList, MemberView, Register, Registered, RejectMember, VerifyEmail,
)
from shared.rpc_client import RpcClient

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
    return (f"{len(PEOPLE)} membres de démonstration inscrits dans les trois collèges "
            f"({len(PEOPLE) - len(pending) - len(rejected) - 1} validés, {len(pending)} en attente de validation, "
            f"{len(rejected)} refusé, 1 adresse non confirmée).\n"
            f"  Se connecter comme secrétariat : {SECRETARIAT_EMAIL}\n"
            f"  Se connecter comme membre      : {_email(PEOPLE[7][0])}\n"
            f"  (page « Se connecter », puis ouvrir le lien reçu dans {stack.web_url}/dev/mail)")


def fill(stack: Stack) -> str:
    return asyncio.run(_fill(stack))
