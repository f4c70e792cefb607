"""`forum-ouvert up --demo`: fills an empty forum through the same commands the web front sends.

Nothing is written into tables directly: registrations go through the registry's request/reply
commands, verification links are read from the caught e-mails, so every event, e-mail and (later)
public record flows exactly as it would for real people.
"""
from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from faststream.nats import NatsBroker

from forum_ouvert.launcher import Stack
from forum_ouvert.mailcatcher import read_messages
from forumlib.majority_judgment import Grade
from shared.clock import PARIS
from shared.contracts.common import ErrorCode
from shared.contracts.decisions import (
    CastBallot, CloseVote, DecisionView, FollowUpStatus, HandCount, Method, OpenVote, Outcome, RecordDecision, Rule,
    SaveCommitment, SetRule, UpdateFollowUp,
)
from shared.contracts.forum import (
    AnswerRsvp, CancelSession, CheckIn, CreateSession, GetSession, SessionView, UpdateSession, WithdrawRsvp,
)
from shared.contracts.minutes import (
    AdoptionKind, AnswerMinutesComment, CommentKind, CommentMinutes, CorrectMinutes, MinutesView, OpenMinutesDraft,
    OpenMinutesReview, PublishMinutes,
)
from shared.contracts.notifications import (
    AnnouncementAction, ConfirmSubscription, ControlAnnouncement, RequestManageLink, SaveAnnouncement,
    SendAnnouncementTest, Subscribe,
)
from shared.contracts.registry import (
    ApproveMember, College, ListMembers, MemberStatus, MemberView, Register, RejectMember, RequestSignIn, Role,
    VerifyEmail,
)
from shared.rpc import RpcClient, RpcError

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
                m = re.search(re.escape(path) + r"\?token=([\w.-]+)", body.get_content() if body else "")
                if m:
                    return m.group(1)
        time.sleep(0.2)
    raise TimeoutError(f"no e-mail with {path} for {to}")


async def _fill(stack: Stack) -> str:
    from forum_ouvert.cli import _create_secretariat

    secretariat: MemberView = await _create_secretariat(SECRETARIAT_EMAIL, "Secrétariat du forum ouvert",
                                                        stack.database_urls["registry"])
    async with NatsBroker(stack.nats_url) as broker:
        rpc = RpcClient(broker, timeout=10)
        existing = await rpc(ListMembers(actor_id=secretariat.member_id))
        if [m for m in existing.members if m.role != "secretariat"]:
            return "Le forum contient déjà des données : rien n'a été ajouté."
        ids: dict[str, str] = {}
        for name, org, college in PEOPLE:
            r = await rpc(Register(full_name=name, email=_email(name), organisation=org, college=college,
                                   charter_accepted=True))
            ids[name] = r.member_id
        pending = {"Olivier Chevalier", "Inès Morel"}
        rejected = {"Bruno Caron"}
        for name, _, _ in PEOPLE[:-1]:  # the last one has not clicked the link yet
            token = await asyncio.to_thread(_token_for, stack.mail_dir, _email(name), "/inscription/verifier")
            await rpc(VerifyEmail(token=token))
        for name, _, _ in PEOPLE[:-1]:
            if name in pending:
                continue
            if name in rejected:
                await rpc(RejectMember(
                    actor_id=secretariat.member_id, member_id=ids[name],
                    reason="Inscription en double : vous êtes déjà inscrit au titre de votre association."))
            else:
                await rpc(ApproveMember(actor_id=secretariat.member_id, member_id=ids[name]))
        subscribers = await _subscribers(rpc, stack.mail_dir)
        sessions = await _sessions(rpc, secretariat.member_id,
                                   [ids[n] for n, _, _ in PEOPLE[:-1] if n not in pending | rejected])
        announcement = await _announcement(rpc, secretariat.member_id)
        await rpc(RequestSignIn(email=_email(PEOPLE[7][0])))  # a sign-in link waits in the caught e-mails
        members = await _members_summary(rpc, secretariat.member_id)
    return (f"{sessions}\n{subscribers}\n{announcement}\n{members}\n"
            f"  Se connecter comme secrétariat : {SECRETARIAT_EMAIL}\n"
            f"  Se connecter comme membre      : {_email(PEOPLE[7][0])}\n"
            f"  (page « Se connecter », puis ouvrir le lien reçu dans {stack.web_url}/dev/mail)")


async def _members_summary(rpc: RpcClient, sec: str) -> str:
    """The members line, counted by the registry with the query the secretariat's list runs (never worked out
    from the script's own lists, which can count one person twice: not yet confirmed *and* awaiting approval)."""
    listed = (await rpc(ListMembers(actor_id=sec))).members
    people = [m for m in listed if m.role != Role.SECRETARIAT]
    n = Counter(m.status for m in people)
    accounts = len(listed) - len(people)
    def s(k: int) -> str:
        return "s" if k > 1 else ""

    ok, waiting = n[MemberStatus.APPROVED], n[MemberStatus.PENDING_APPROVAL]
    refused, unconfirmed = n[MemberStatus.REJECTED], n[MemberStatus.PENDING_VERIFICATION]
    return (f"{len(people)} membres de démonstration inscrits dans les trois collèges ({ok} validé{s(ok)}, "
            f"{waiting} en attente de validation, {refused} refusé{s(refused)}, {unconfirmed} adresse{s(unconfirmed)} "
            f"non confirmée{s(unconfirmed)}), et {accounts} compte{s(accounts)} du secrétariat.")


SUBSCRIBERS = [  # people who follow the forum without an account
    ("journaliste@presse.example", ["minutes", "decisions"]),
    ("veille@association.example", ["sessions", "announcements", "theme:health"]),
    ("citoyen@exemple.fr", ["minutes", "announcements"]),
]


async def _subscribers(rpc: RpcClient, mail_dir: Path) -> str:
    """Confirmed subscribers (from the link in their caught e-mail, as a person would), and one who has
    not confirmed yet: they will receive the notices of what the demo does next."""
    for email, topics in SUBSCRIBERS:
        await rpc(Subscribe(email=email, topics=topics))
        token = await asyncio.to_thread(_token_for, mail_dir, email, "/abonnements/confirmer")
        await rpc(ConfirmSubscription(token=token))
    await rpc(Subscribe(email="pas-encore-confirme@exemple.fr", topics=["sessions"]))
    # The journalist asks again (already subscribed: told, nothing changes) and asks for a manage link.
    await rpc(Subscribe(email=SUBSCRIBERS[0][0], topics=["sessions"]))
    await rpc(RequestManageLink(email=SUBSCRIBERS[0][0]))
    return (f"{len(SUBSCRIBERS)} abonnés confirmés aux avis par courriel (et 1 demande non confirmée) : "
            "ils reçoivent les avis des séances, décisions, comptes rendus et annonces qui suivent.")


async def _announcement(rpc: RpcClient, sec: str) -> str:
    """A sent announcement, and a draft."""
    sent = await _retry(lambda: rpc(SaveAnnouncement(
        actor_id=sec, title="Ouverture des inscriptions au forum ouvert", topic="announcements",
        body="Le **forum ouvert** du Partenariat pour un gouvernement ouvert est ouvert à toutes et à tous.\n\n"
             "- Les séances plénières et les groupes de travail sont annoncés sur le site ;\n"
             "- les comptes rendus, les décisions et leurs suites y sont publiés.\n\n"
             "Inscrivez-vous pour participer, ou abonnez-vous pour suivre nos travaux.")))
    await rpc(SendAnnouncementTest(actor_id=sec, announcement_id=sent.announcement_id))
    await rpc(ControlAnnouncement(actor_id=sec, announcement_id=sent.announcement_id, action=AnnouncementAction.SEND))
    await rpc(SaveAnnouncement(actor_id=sec, title="Appel à contributions : feuille de route 2027", topic="announcements",
                               body="Brouillon : à relire avant l'envoi."))
    return "2 annonces du secrétariat : une envoyée aux abonnés, un brouillon."


async def _retry(call, attempts: int = 100, waiting_for: tuple[ErrorCode, ...] = (ErrorCode.FORBIDDEN,)):  # noqa: ANN001, ANN202
    """Services learn members, sessions and decisions from each other's events: give them a moment."""
    for i in range(attempts):
        try:
            return await call()
        except RpcError as exc:
            if exc.code not in waiting_for or i == attempts - 1:
                raise
            await asyncio.sleep(0.2)
    return None


async def _sessions(rpc: RpcClient, sec: str, approved: list[str]) -> str:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)

    def at(days: float, hour: int) -> datetime:
        day = (now + timedelta(days=days)).astimezone(PARIS).replace(hour=hour)
        return day.astimezone(UTC)

    async def create(**fields: object) -> SessionView:
        return await _retry(lambda: rpc(CreateSession(actor_id=sec, **fields)))

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
    await rpc(CancelSession(actor_id=sec, session_id=education.session_id,
                            reason="Reportée à une date ultérieure : salle indisponible."))
    for m in approved[:8]:
        await _retry(lambda m=m: rpc(AnswerRsvp(actor_id=m, session_id=plenary.session_id, answer="attend")))
    await rpc(AnswerRsvp(actor_id=approved[8], session_id=plenary.session_id, answer="decline"))
    for m in approved[3:8]:
        await rpc(AnswerRsvp(actor_id=m, session_id=health.session_id, answer="attend"))
    # A member gives back a seat at the full health group: the first on the waitlist is promoted.
    await rpc(WithdrawRsvp(actor_id=approved[3], session_id=health.session_id))
    # Tomorrow's session (its 48-hour reminder goes out), whose room then changes (its members are told).
    justice = dict(title="Groupe de travail Justice : accès au droit en ligne", kind="working_group",
                   theme="justice", starts_at=at(1, 15), ends_at=at(1, 17), place="CESE, salle 118", capacity=30,
                   rsvp_opens_at=at(-2, 9), rsvp_closes_at=at(1, 9),
                   agenda=["Les démarches en ligne des justiciables", "Propositions du groupe"])
    tomorrow = await create(**justice)
    for m in approved[:4]:
        await _retry(lambda m=m: rpc(AnswerRsvp(actor_id=m, session_id=tomorrow.session_id, answer="attend")))
    await rpc(UpdateSession(actor_id=sec, session_id=tomorrow.session_id, expected_revision=tomorrow.revision,
                            **{**justice, "place": "CESE, salle 221 (changement de salle)"}))
    for m in approved[:11]:
        await rpc(CheckIn(actor_id=sec, session_id=past.session_id, member_id=m))
    groups = []  # working groups already held, each with a few members checked in
    for days, title, theme in ((-6, "Groupe de travail Santé : réunion de lancement", "health"),
                               (-5, "Groupe de travail Transition écologique : premiers travaux",
                                "ecological_transition"),
                               (-2, "Groupe de travail Éducation : la fresque de la démocratie", "education"),
                               (-1, "Groupe de travail Santé : priorités d'ouverture des données", "health")):
        group = await create(
            title=title, kind="working_group", theme=theme, starts_at=at(days, 10), ends_at=at(days, 12),
            place="CESE, salle 221", capacity=20, rsvp_opens_at=at(days - 14, 9), rsvp_closes_at=at(days - 1, 18),
            agenda=["Tour de table", "Méthode de travail du groupe", "Prochaines étapes"])
        for m in approved[:5]:
            await rpc(CheckIn(actor_id=sec, session_id=group.session_id, member_id=m))
        groups.append(group)
    decisions = await _decisions(rpc, sec, past.session_id, plenary.session_id, approved[:11])
    minutes = await _minutes(rpc, sec, past.session_id, [g.session_id for g in groups], approved[:5])
    return ("10 séances : une plénière et quatre groupes de travail passés avec émargement, une plénière et un "
            "groupe de travail à venir (complet, avec liste d'attente et une promotion), un groupe demain (rappel "
            "envoyé, salle changée), un groupe dont les réponses ne sont pas encore ouvertes, une séance annulée.\n"
            f"{decisions}\n{minutes}")


# The seven main measures of the 2024-2026 national action plan (the plan counts 17 commitments;
# the secretariat adds the others from its own list).
COMMITMENTS = [
    ("1", "Réaliser un état des lieux des démarches de participation et d'innovation démocratique"),
    ("2", "Former les agents publics aux méthodes de l'intelligence collective et à la participation citoyenne"),
    ("3", "Mettre en place et animer dans la durée un forum ouvert entre acteurs publics et société civile"),
    ("4", "Définir un cadre pour un statut du citoyen participant, en collaboration avec le CESE"),
    ("5", "Concevoir une « fresque de la démocratie » pour les établissements scolaires"),
    ("6", "Déployer le baromètre de l'action publique auprès de tous les Français"),
    ("7", "Développer et massifier les consultations citoyennes avec l'application Agora"),
]
VOTE_OPTIONS = ["Participation citoyenne dans les territoires", "Transparence de la commande publique",
                "Données ouvertes de santé"]
# Grades the attendees give the three options (one ballot per attendee, in order).
BALLOTS = [
    ("tres_bien", "bien", "passable"), ("excellent", "assez_bien", "bien"), ("bien", "bien", "insuffisant"),
    ("tres_bien", "passable", "bien"), ("assez_bien", "tres_bien", "passable"), ("bien", "excellent", "a_rejeter"),
    ("tres_bien", "bien", "assez_bien"), ("passable", "assez_bien", "tres_bien"), ("bien", "insuffisant", "bien"),
    ("excellent", "bien", "passable"),
]


async def _decisions(rpc: RpcClient, sec: str, past_id: str, upcoming_id: str, attendees: list[str]) -> str:
    """The forum's rules, the plan's main commitments, decisions of the past plenary (one corrected,
    with follow-up), a closed majority-judgment vote, and a vote still open on the next plenary."""
    await rpc(SetRule(actor_id=sec, rule=Rule(kind="plenary", quorum={PUBLIC: 3, CIVIL: 3}, double_majority=True)))
    await rpc(SetRule(actor_id=sec, rule=Rule(kind="working_group", quorum={PUBLIC: 1, CIVIL: 1})))
    for code, title in COMMITMENTS:
        await rpc(SaveCommitment(actor_id=sec, code=code, title=title))

    async def record(**fields: object) -> DecisionView:
        return await rpc(RecordDecision(actor_id=sec, session_id=past_id, **fields))

    rules = await record(
        agenda_position=3, title="Adoption des règles de fonctionnement du forum ouvert", method=Method.SHOW_OF_HANDS,
        outcome=Outcome.ADOPTED, commitment_code="3",
        hands={PUBLIC: HandCount(in_favour=6, abstain=1), CIVIL: HandCount(in_favour=3, against=1)},
        text="Le forum ouvert adopte ses règles de fonctionnement :\n\n"
             "1. il se réunit en séance plénière au moins deux fois par an ;\n"
             "2. ses décisions en plénière requièrent un quorum de **trois membres** dans le collège des acteurs "
             "publics et dans celui des organisations de la société civile, et une *double majorité* ;\n"
             "3. ses comptes rendus sont publiés au registre public.")
    groups = await record(
        agenda_position=4, title="Constitution de trois groupes de travail thématiques", method=Method.CONSENSUS,
        outcome=Outcome.ADOPTED, commitment_code="3",
        text="Le forum constitue trois groupes de travail : **santé**, **transition écologique et planification**, "
             "**éducation**. Chaque groupe désigne deux co-animateurs, l'un acteur public, l'autre issu de la "
             "société civile.")
    corrected = await record(
        agenda_position=4, title="Constitution de quatre groupes de travail thématiques", method=Method.CONSENSUS,
        outcome=Outcome.ADOPTED, commitment_code="3", supersedes=groups.decision.decision_id,
        text="Correction du relevé de décision : le forum constitue **quatre** groupes de travail — santé, "
             "transition écologique et planification, éducation, et **données ouvertes et numérique**.")
    await record(
        agenda_position=2, title="Calendrier de l'état des lieux des démarches de participation",
        method=Method.CONSENSUS, outcome=Outcome.DEFERRED, commitment_code="1",
        text="Le calendrier sera arrêté à la prochaine plénière, après consultation des groupes de travail.")
    for status, note in ((FollowUpStatus.IN_PROGRESS, "Règlement intérieur en cours de rédaction par le secrétariat."),
                         (FollowUpStatus.DONE, "Règlement intérieur publié sur le site du forum.")):
        await rpc(UpdateFollowUp(actor_id=sec, decision_id=rules.decision.decision_id, status=status, note=note))
    await rpc(UpdateFollowUp(
        actor_id=sec, decision_id=corrected.decision.decision_id, status=FollowUpStatus.IN_PROGRESS,
        note="Les co-animateurs des quatre groupes sont en cours de désignation."))

    now = datetime.now(UTC)
    vote = await rpc(OpenVote(
        actor_id=sec, session_id=past_id, agenda_position=4, eligibility="attendees",
        question="Thème du prochain atelier ouvert du forum", options=VOTE_OPTIONS,
        opens_at=now, closes_at=now + timedelta(days=7)))
    for member, grades in zip(attendees, BALLOTS):
        await rpc(CastBallot(actor_id=member, vote_id=vote.vote.vote_id, grades={
            i: Grade(g) for i, g in enumerate(grades, start=1)}))
    closed = await rpc(CloseVote(actor_id=sec, vote_id=vote.vote.vote_id))
    plenary = await rpc(GetSession(session_id=upcoming_id))  # its vote closes at the end of the plenary, not before
    await rpc(OpenVote(
        actor_id=sec, session_id=upcoming_id, agenda_position=1, question="Priorité des engagements à suivre en 2027",
        options=[t for _, t in COMMITMENTS[:4]], opens_at=now, closes_at=plenary.ends_at))
    winner = next((o.label for o in (closed.result.options if closed.result else [])
                   if o.option_id == (closed.result.winner_option_id if closed.result else None)), "aucune")
    return (f"5 décisions (dont une corrigée), {len(COMMITMENTS)} engagements du plan d'action, les règles du forum ; "
            f"un vote clos au jugement majoritaire ({len(BALLOTS)} bulletins, option retenue : « {winner} ») et un "
            "vote ouvert sur la prochaine plénière.")


async def _minutes(rpc: RpcClient, sec: str, plenary_id: str, group_ids: list[str], attendees: list[str]) -> str:
    """Comptes rendus in every state: adopted by a decision of the later plenary, published and then
    corrected, published without review, under review with a member's rewording, and a draft."""
    lag = (ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND)  # minutes learns sessions and decisions from events

    async def draft(session_id: str) -> MinutesView:
        return await _retry(lambda: rpc(OpenMinutesDraft(actor_id=sec, session_id=session_id)), waiting_for=lag)

    async def publish(view: MinutesView, **adoption: object) -> MinutesView:
        return await _retry(lambda: rpc(PublishMinutes(actor_id=sec, minutes_id=view.minutes_id, **adoption)),
                            waiting_for=(*lag, ErrorCode.INVALID))

    adopted, corrected, published, in_review, _ = [await draft(s) for s in (*group_ids[:1], plenary_id,
                                                                            *group_ids[1:])]
    # The plenary, held after the first working group, adopted its minutes by a decision.
    decision = await rpc(RecordDecision(
        actor_id=sec, session_id=plenary_id, agenda_position=4, method=Method.CONSENSUS, outcome=Outcome.ADOPTED,
        title="Adoption du compte rendu de la réunion de lancement du groupe Santé",
        text="Le forum adopte le compte rendu de la réunion de lancement du groupe de travail Santé."))
    await publish(adopted, adoption=AdoptionKind.DECISION, decision_number=decision.decision.number)
    first = await publish(corrected, adoption=AdoptionKind.NONE)
    await rpc(CorrectMinutes(
        actor_id=sec, minutes_id=first.minutes_id, reason="Ajout de l'intervention du collège des citoyens, omise.",
        markdown=(first.markdown or "") + "\n\n## Complément\n\nLe collège des citoyens a demandé que les "
                 "comptes rendus des groupes de travail soient publiés sous quinze jours."))
    await publish(published, adoption=AdoptionKind.NONE)
    review = await rpc(OpenMinutesReview(actor_id=sec, minutes_id=in_review.minutes_id,
                                         until=datetime.now(UTC) + timedelta(days=10)))
    paragraph = next(p for p in review.paragraphs if p.kind == "paragraph")
    comment = await _retry(lambda: rpc(CommentMinutes(
        actor_id=attendees[1], minutes_id=review.minutes_id, anchor=paragraph.anchor, kind=CommentKind.REWORDING,
        text=paragraph.markdown + " Les participants ont salué la qualité des échanges.")), waiting_for=lag)
    await rpc(CommentMinutes(actor_id=attendees[2], minutes_id=review.minutes_id, anchor=paragraph.anchor,
                             text="Pourrait-on joindre la liste des ressources présentées ?"))
    await rpc(AnswerMinutesComment(actor_id=sec, comment_id=comment.comment_id, accepted=True,
                                   reason="Merci, la formulation est reprise."))
    return ("5 comptes rendus : un adopté par décision de la plénière, un publié puis corrigé, un publié sans "
            "relecture, un en relecture (avec une reformulation acceptée), un en préparation.")


def fill(stack: Stack) -> str:
    return asyncio.run(_fill(stack))
