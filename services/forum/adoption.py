"""What "adopted" means: the forum's rule (quorum per college, optional double majority) checked
against attendance and tallies. Plain functions over plain values, no I/O.

- Quorum: for each college the rule names, at least that many members present (checked-in at the
  session; for an online vote, members who voted).
- Majority (show of hands): more votes for than against, abstentions not counted; with the double
  majority, also within the public actors *and* within civil society (organisations + citizens).
- Consensus: only the quorum is checked. Online vote: the quorum, and a single winner.
"""
from __future__ import annotations

from collections.abc import Mapping

from shared.contracts.decisions import (
    SIDE_OF, HandCount, MajorityLine, Method, Outcome, QuorumLine, Rule, RuleCheck, Side,
)
from shared.contracts.forum import SessionKind
from shared.contracts.registry import COLLEGE_LABELS, College
from shared.errors import Conflict


def default_rule(kind: SessionKind) -> Rule:
    """Until the secretariat sets one: no quorum, a simple majority."""
    return Rule(kind=kind)


def quorum_lines(rule: Rule, present: Mapping[College, int]) -> list[QuorumLine]:
    return [QuorumLine(college=c, required=rule.quorum.get(c, 0), present=present.get(c, 0),
                       met=present.get(c, 0) >= rule.quorum.get(c, 0))
            for c in College if rule.quorum.get(c, 0) > 0]


def _line(side: Side | None, counts: list[HandCount]) -> MajorityLine:
    yes, no = sum(c.in_favour for c in counts), sum(c.against for c in counts)
    return MajorityLine(side=side, in_favour=yes, against=no, abstain=sum(c.abstain for c in counts), met=yes > no)


def majority_lines(rule: Rule, hands: Mapping[College, HandCount]) -> list[MajorityLine]:
    """Overall first; then each side when the rule asks for a double majority."""
    lines = [_line(None, list(hands.values()))]
    if rule.double_majority:
        for side in Side:
            lines.append(_line(side, [h for c, h in hands.items() if SIDE_OF[c] == side]))
    return lines


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n > 1 else ''}"


def check_rule(rule: Rule, method: Method, present: Mapping[College, int],
               hands: Mapping[College, HandCount] | None = None, single_winner: bool = True) -> RuleCheck:
    """The rule checked for one decision. `present`: members present per college (voters per
    college for an online vote); `hands`: the show of hands; `single_winner`: the online vote
    produced one winner (not a tie, not empty)."""
    quorum = quorum_lines(rule, present)
    quorum_met = all(q.met for q in quorum)
    short = [f"{_plural(q.present, 'présent')} sur {q.required} requis chez les {COLLEGE_LABELS[q.college].lower()}"
             for q in quorum if not q.met]
    parts = [("Quorum atteint" if quorum_met else f"Quorum non atteint ({', '.join(short)})") if quorum
             else "Pas de quorum requis"]
    majority: list[MajorityLine] = []
    majority_met: bool | None = None
    if method == Method.SHOW_OF_HANDS:
        majority = majority_lines(rule, hands or {})
        majority_met = all(m.met for m in majority)
        overall = majority[0]
        parts.append(f"{overall.in_favour} voix pour, {overall.against} contre, "
                     f"{_plural(overall.abstain, 'abstention')}")
        if rule.double_majority:
            parts.append("double majorité atteinte" if majority_met else "double majorité non atteinte")
        else:
            parts.append("majorité atteinte" if majority_met else "majorité non atteinte")
    elif method == Method.ONLINE_VOTE:
        majority_met = None
        if not single_winner:
            parts.append("pas de gagnant unique")
    met = quorum_met and (majority_met is not False) and (method != Method.ONLINE_VOTE or single_winner)
    return RuleCheck(rule=rule, quorum=quorum, quorum_met=quorum_met, majority=majority, majority_met=majority_met,
                     met=met, summary=" ; ".join(parts) + ".")


def check_outcome(method: Method, outcome: Outcome, check: RuleCheck) -> None:
    """Refuse an outcome the rule contradicts: « adopted » needs the rule met; a show of hands
    that met it cannot be recorded as « rejected ». « Deferred » is always possible."""
    if outcome == Outcome.ADOPTED and not check.met:
        raise Conflict(f"La règle du forum n'est pas remplie : la décision ne peut pas être adoptée. {check.summary}",
                       field="outcome")
    if outcome == Outcome.REJECTED and method == Method.SHOW_OF_HANDS and check.met:
        raise Conflict(f"Le vote à main levée remplit la règle du forum : la décision ne peut pas être "
                       f"rejetée. {check.summary}", field="outcome")


def vote_outcome(check: RuleCheck) -> Outcome:
    """A closed online vote: adopted (its winner) when the rule is met, else deferred."""
    return Outcome.ADOPTED if check.met else Outcome.DEFERRED
