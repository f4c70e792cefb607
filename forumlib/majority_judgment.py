"""Majority judgment (jugement majoritaire, Balinski & Laraki): plain functions, no I/O.

Shared by the forum (which tallies a closed vote), the web front (which shows the result) and
anyone who wants to recompute a published result from its merit profiles:

- an option's *merit profile* is how many voters gave it each grade;
- its *majority grade* is the lower median of its grades (with an even number of ballots, the
  worse of the two middle grades);
- options are ranked by majority grade; between tied options, one median grade is removed from
  each and the majority grades compared again, until they differ. Comparing the *median
  sequences* (the successive majority grades as medians are removed one at a time) is exactly
  that procedure; two options with identical profiles are an exact tie.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from enum import StrEnum
from typing import TypeVar


class Grade(StrEnum):
    """The grade scale, best first (the order is the scale)."""

    EXCELLENT = "excellent"
    TRES_BIEN = "tres_bien"
    BIEN = "bien"
    ASSEZ_BIEN = "assez_bien"
    PASSABLE = "passable"
    INSUFFISANT = "insuffisant"
    A_REJETER = "a_rejeter"


GRADES: tuple[Grade, ...] = tuple(Grade)  # best first
GRADE_LABELS = {
    Grade.EXCELLENT: "Excellent",
    Grade.TRES_BIEN: "Très bien",
    Grade.BIEN: "Bien",
    Grade.ASSEZ_BIEN: "Assez bien",
    Grade.PASSABLE: "Passable",
    Grade.INSUFFISANT: "Insuffisant",
    Grade.A_REJETER: "À rejeter",
}
RANK = {g: i for i, g in enumerate(GRADES)}  # 0 = best

K = TypeVar("K", bound=Hashable)
Profile = Mapping[Grade, int]


def merit_profile(grades: Iterable[Grade]) -> dict[Grade, int]:
    """Counts per grade, every grade present, best first."""
    out = {g: 0 for g in GRADES}
    for g in grades:
        out[Grade(g)] += 1
    return out


def _sorted_grades(profile: Profile) -> list[int]:
    """Every ballot's grade as its rank (0 = best), best first."""
    out: list[int] = []
    for g in GRADES:
        n = profile.get(g, 0)
        if n < 0:
            raise ValueError(f"negative count for {g}")
        out.extend([RANK[g]] * n)
    return out


def _lower_median_index(n: int) -> int:
    """Index, in a best-first list of n grades, of the lower median (the worse middle one)."""
    return n // 2


def majority_grade(profile: Profile) -> Grade | None:
    """The lower median grade; None when nobody graded."""
    ranks = _sorted_grades(profile)
    return GRADES[ranks[_lower_median_index(len(ranks))]] if ranks else None


def median_sequence(profile: Profile) -> list[Grade]:
    """The successive majority grades as the median grade is removed one at a time."""
    ranks = _sorted_grades(profile)
    out: list[Grade] = []
    while ranks:
        out.append(GRADES[ranks.pop(_lower_median_index(len(ranks)))])
    return out


def _key(profile: Profile) -> tuple[int, ...]:
    # Smaller is better, element by element: the tie-break of majority judgment.
    return tuple(RANK[g] for g in median_sequence(profile))


def rank(profiles: Mapping[K, Profile]) -> list[tuple[K, int]]:
    """Options best first with their rank (1 = best; exact ties share a rank, competition style).
    Every option must have the same number of grades (every ballot grades every option). Ties keep
    the given order."""
    sizes = {sum(p.values()) for p in profiles.values()}
    if len(sizes) > 1:
        raise ValueError("every option must have the same number of grades")
    keyed = sorted(((k, _key(p)) for k, p in profiles.items()), key=lambda kv: kv[1])
    out: list[tuple[K, int]] = []
    for i, (k, key) in enumerate(keyed):
        out.append((k, out[-1][1] if i and keyed[i - 1][1] == key else i + 1))
    return out


def winner(profiles: Mapping[K, Profile]) -> K | None:
    """The single best option; None without ballots or when the top is an exact tie."""
    ranked = rank(profiles)
    if not ranked or not sum(next(iter(profiles.values())).values()):
        return None
    if len(ranked) > 1 and ranked[1][1] == 1:
        return None
    return ranked[0][0]
