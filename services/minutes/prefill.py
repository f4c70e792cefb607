"""The first draft of a session's minutes, in French Markdown, written from what the forum recorded:
title, date and place, agenda, attendance per college and the organisations present, every decision
and closed vote with links to its page and to its entry in the public record. The clerk then writes
the debates around it.

Each decision and each vote is a paragraph of its own, so each has its own anchor: a decision's page
links to the very paragraph that records it. Texts typed by people (titles, agenda items, names of
organisations) are escaped, so they read as typed and never turn into links or formatting.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from forumlib.majority_judgment import GRADE_LABELS, Grade
from services.minutes.models import DecisionFact, SessionFact, VoteFact
from shared.clock import paris_span
from shared.contracts.decisions import ELIGIBILITY_LABELS, METHOD_LABELS, OUTCOME_LABELS, Eligibility, Method, Outcome
from shared.contracts.forum import KIND_LABELS, THEME_LABELS
from shared.contracts.registry import COLLEGE_LABELS, College

_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+|!~])")


def escape(text: str) -> str:
    """Markdown-inert text: its special characters backslash-escaped, its line breaks spaces."""
    return _SPECIAL.sub(r"\\\1", " ".join(text.split()))


def session_page(session_id: str) -> str:
    return f"/seances/{session_id}"


def decision_page(decision_id: str) -> str:
    return f"/decisions/{decision_id}"


def vote_page(vote_id: str) -> str:
    return f"/votes/{vote_id}"


def record_entry(index: int) -> str:
    return f"/registre/{index}"


@dataclass(frozen=True)
class SessionRecord:
    """What the forum told the minutes service about one session."""

    session: SessionFact
    agenda: Sequence[str]
    present: Mapping[College | None, int]  # members checked in, per college (None: without a college)
    organisations: Sequence[str]           # represented by members present, sorted
    decisions: Sequence[DecisionFact]
    votes: Sequence[VoteFact]
    numbers: Mapping[str, str]             # decision_id -> number, for « remplacée par … »
    leaves: Mapping[str, int]              # event id -> leaf index in the public record


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n <= 1 else many}"


def _entry_link(leaves: Mapping[str, int], event_id: str | None) -> str:
    index = leaves.get(event_id or "")
    return "" if index is None else f" · [Registre public, enregistrement n° {index}]({record_entry(index)})"


def _heading(r: SessionRecord) -> list[str]:
    s = r.session
    what = KIND_LABELS[s.kind] + (f" — {THEME_LABELS[s.theme]}" if s.theme else "")
    where = escape(s.place) if s.place else "en ligne"
    return [f"# Compte rendu — {escape(s.title)}", "",
            f"{what}, {paris_span(s.starts_at, s.ends_at)}, {where}. "
            f"[Page de la séance]({session_page(s.session_id)})"]


def _agenda(r: SessionRecord) -> list[str]:
    if not r.agenda:
        return ["## Ordre du jour", "", "Aucun point n'était inscrit à l'ordre du jour."]
    return ["## Ordre du jour", "", *[f"{i}. {escape(text)}" for i, text in enumerate(r.agenda, start=1)]]


def _attendance(r: SessionRecord) -> list[str]:
    out = ["## Présences", ""]
    total = sum(r.present.values())
    if not total:
        return [*out, "Aucune présence n'a été enregistrée."]
    out.append(f"{_plural(total, 'membre présent', 'membres présents')} :")
    out.append("")
    out += [f"- {COLLEGE_LABELS[c]} : {r.present[c]}" for c in College if r.present.get(c)]
    if r.present.get(None):
        out.append(f"- Sans collège : {r.present[None]}")
    out.append("")
    if r.organisations:
        names = [escape(o) for o in r.organisations]
        listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} et {names[-1]}"
        out.append(f"Organisations représentées : {listed}.")
    else:
        out.append("Aucune organisation représentée n'a été enregistrée.")
    return out


def decision_paragraph(d: DecisionFact, r: SessionRecord) -> str:
    outcome = OUTCOME_LABELS[Outcome(d.outcome)].lower()
    text = (f"**Décision n° {d.number} — {escape(d.title)}** (point {d.agenda_position} : {escape(d.agenda_text)}) : "
            f"{outcome}, {METHOD_LABELS[Method(d.method)].lower()}.")
    if d.commitment_code:
        text += f" Engagement {escape(d.commitment_code)} du plan d'action : {escape(d.commitment_title or '')}."
    if d.superseded_by:
        text += f" Remplacée depuis par la décision n° {r.numbers.get(d.superseded_by, '…')}."
    return text + f" [Voir la décision]({decision_page(d.decision_id)})" + _entry_link(r.leaves, d.event_id)


def _decisions(r: SessionRecord) -> list[str]:
    if not r.decisions:
        return ["## Décisions", "", "Aucune décision n'a été enregistrée au cours de cette séance."]
    out = ["## Décisions"]
    for d in r.decisions:
        out += ["", decision_paragraph(d, r)]
    return out


def vote_paragraph(v: VoteFact, r: SessionRecord) -> str:
    if v.ballots == 0:
        result = "aucun bulletin"
    elif v.winner_label:
        grade = f" (mention majoritaire : {GRADE_LABELS[Grade(v.winner_grade)].lower()})" if v.winner_grade else ""
        result = (f"{_plural(v.ballots, 'bulletin', 'bulletins')} pour {_plural(v.eligible, 'électeur', 'électeurs')}"
                  f" ; option retenue : « {escape(v.winner_label)} »{grade}")
    else:
        result = (f"{_plural(v.ballots, 'bulletin', 'bulletins')} pour {_plural(v.eligible, 'électeur', 'électeurs')}"
                  " ; égalité parfaite en tête")
    who = ELIGIBILITY_LABELS[Eligibility(v.eligibility)].lower()
    return (f"**Vote en ligne — {escape(v.question)}** (point {v.agenda_position} : {escape(v.agenda_text)} ; "
            f"{who}) : {result}. [Voir le vote]({vote_page(v.vote_id)})" + _entry_link(r.leaves, v.event_id))


def _votes(r: SessionRecord) -> list[str]:
    if not r.votes:
        return []
    out = ["## Votes en ligne"]
    for v in r.votes:
        out += ["", vote_paragraph(v, r)]
    return out


def draft_markdown(r: SessionRecord) -> str:
    """The pre-filled draft: every fact the forum recorded, then room for the debates."""
    parts = [_heading(r), _agenda(r), _attendance(r), _decisions(r), _votes(r),
             ["## Débats", "", "_Résumé des échanges à compléter par le secrétariat._"]]
    return "\n\n".join("\n".join(p) for p in parts if p) + "\n"
