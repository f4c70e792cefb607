"""Majority judgment (forumlib/majority_judgment.py) against a brute-force reference written here,
independently of the module, from the rule as the forum states it: "compare median grades; on a tie, remove
one median grade at a time from the tied options and compare again". The reference works on
explicit lists of grades (one per ballot), never on merit profiles or the module's helpers."""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from forumlib.majority_judgment import (
    GRADE_LABELS, GRADES, Grade, majority_grade, median_sequence, merit_profile, rank, winner,
)

# ---------------------------------------------------------------- the reference
SCALE = ["excellent", "tres_bien", "bien", "assez_bien", "passable", "insuffisant", "a_rejeter"]  # best first


def better(a: str, b: str) -> bool:
    return SCALE.index(a) < SCALE.index(b)


def ref_lower_median(grades: Sequence[str]) -> str:
    """The median grade; with an even number of grades, the worse of the two middle ones."""
    s = sorted(grades, key=SCALE.index)  # best first
    n = len(s)
    if n % 2 == 1:
        return s[(n - 1) // 2]
    left, right = s[n // 2 - 1], s[n // 2]
    return right if better(left, right) else left


def ref_medians_removed(grades: Sequence[str]) -> list[str]:
    """The successive median grades, removing one median grade at a time."""
    left, out = list(grades), []
    while left:
        m = ref_lower_median(left)
        out.append(m)
        left.remove(m)
    return out


def ref_compare(a: Sequence[str], b: Sequence[str]) -> int:
    """-1: a is ranked above b; 1: below; 0: exact tie. Compare the medians; on a tie, remove one
    median grade from each and compare again."""
    a, b = list(a), list(b)
    while a and b:
        ma, mb = ref_lower_median(a), ref_lower_median(b)
        if ma != mb:
            return -1 if better(ma, mb) else 1
        a.remove(ma)
        b.remove(mb)
    return 0


def ref_winner(options: Mapping[Hashable, Sequence[str]]) -> Hashable | None:
    """The literal procedure over all options at once: keep those with the best median grade; if
    several are tied, remove one median grade from each of the tied options and compare again."""
    tied = {k: list(v) for k, v in options.items()}
    while tied and all(tied.values()):
        medians = {k: ref_lower_median(v) for k, v in tied.items()}
        best = min(medians.values(), key=SCALE.index)
        tied = {k: v for k, v in tied.items() if medians[k] == best}
        if len(tied) == 1:
            return next(iter(tied))
        for v in tied.values():
            v.remove(best)
    return None  # no ballot, or tied all the way down


def ref_ranks(options: Mapping[Hashable, Sequence[str]]) -> dict[Hashable, int]:
    """1 + the number of options ranked strictly above (exact ties share a rank)."""
    return {k: 1 + sum(ref_compare(options[o], options[k]) == -1 for o in options if o != k) for k in options}


# ---------------------------------------------------------------- strategies
@st.composite
def votes(draw: st.DrawFn, min_options: int = 2, max_options: int = 6, max_ballots: int = 40
          ) -> dict[str, list[str]]:
    """{option: its grades, one per ballot}: every ballot grades every option. Grades are drawn from a
    random part of the scale (sometimes one or two grades only) so that ties are frequent."""
    n_options = draw(st.integers(min_options, max_options))
    n_ballots = draw(st.integers(0, max_ballots))
    scale = draw(st.lists(st.sampled_from(SCALE), min_size=1, max_size=7, unique=True))
    ballots = draw(st.lists(st.lists(st.sampled_from(scale), min_size=n_options, max_size=n_options),
                            min_size=n_ballots, max_size=n_ballots))
    return {f"opt{i}": [b[i] for b in ballots] for i in range(n_options)}


def profiles_of(options: Mapping[str, Sequence[str]]) -> dict[str, dict[Grade, int]]:
    return {k: merit_profile(Grade(g) for g in v) for k, v in options.items()}


SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- the module agrees with the reference
def test_the_reference_scale_is_the_modules() -> None:
    assert [g.value for g in GRADES] == SCALE
    assert [GRADE_LABELS[g] for g in GRADES] == ["Excellent", "Très bien", "Bien", "Assez bien", "Passable",
                                                  "Insuffisant", "À rejeter"]


@SETTINGS
@given(votes())
def test_winner_and_ranks_agree_with_the_reference(options: dict[str, list[str]]) -> None:
    profiles = profiles_of(options)
    assert winner(profiles) == ref_winner(options)
    ranked = rank(profiles)
    assert dict(ranked) == ref_ranks(options)
    assert [r for _, r in ranked] == sorted(r for _, r in ranked)  # best first
    assert sorted(k for k, _ in ranked) == sorted(options)


@SETTINGS
@given(st.lists(st.sampled_from(SCALE), max_size=41))
def test_majority_grade_is_the_lower_median(grades: list[str]) -> None:
    profile = merit_profile(Grade(g) for g in grades)
    mg = majority_grade(profile)
    if not grades:
        assert mg is None
        return
    assert mg == ref_lower_median(grades)
    # Equivalently: the best grade that a strict majority of ballots give or exceed.
    n = len(grades)
    assert mg == next(g for g in SCALE if sum(SCALE.index(x) <= SCALE.index(g) for x in grades) * 2 > n)
    assert median_sequence(profile) == ref_medians_removed(grades)


@SETTINGS
@given(votes(), st.randoms(use_true_random=False))
def test_ranking_is_invariant_under_permutation_of_ballots(options: dict[str, list[str]], rnd) -> None:  # noqa: ANN001
    n = len(next(iter(options.values())))
    order = list(range(n))
    rnd.shuffle(order)
    shuffled = {k: [v[i] for i in order] for k, v in options.items()}
    assert rank(profiles_of(shuffled)) == rank(profiles_of(options))
    assert winner(profiles_of(shuffled)) == winner(profiles_of(options))


@SETTINGS
@given(votes(), st.randoms(use_true_random=False))
def test_ranking_is_invariant_under_permutation_of_options(options: dict[str, list[str]], rnd) -> None:  # noqa: ANN001
    keys = list(options)
    rnd.shuffle(keys)
    before, after = rank(profiles_of(options)), rank(profiles_of({k: options[k] for k in keys}))
    assert dict(after) == dict(before)
    # The order changes only within exact ties, and there it follows the order given.
    assert [r for _, r in after] == [r for _, r in before]
    for r in {r for _, r in before}:
        assert [k for k, x in after if x == r] == [k for k in keys if dict(before)[k] == r]
    assert winner(profiles_of({k: options[k] for k in keys})) == winner(profiles_of(options))


@SETTINGS
@given(votes(), st.data())
def test_a_ballot_for_x_never_makes_x_lose_rank(options: dict[str, list[str]], data: st.DataObject) -> None:
    x = data.draw(st.sampled_from(sorted(options)))
    before = dict(rank(profiles_of(options)))
    more = {k: [*v, "excellent" if k == x else "a_rejeter"] for k, v in options.items()}
    after = dict(rank(profiles_of(more)))
    assert after[x] <= before[x]
    # And no option that was not above X gets above it.
    for k in options:
        if k != x and before[k] >= before[x]:
            assert after[k] >= after[x]
    if winner(profiles_of(options)) == x:
        assert winner(profiles_of(more)) == x


@SETTINGS
@given(votes(max_options=1, min_options=1, max_ballots=40), st.integers(2, 6))
def test_identical_profiles_tie(one: dict[str, list[str]], n: int) -> None:
    (grades,) = one.values()
    assume(grades)
    options = {f"o{i}": list(reversed(grades)) if i % 2 else list(grades) for i in range(n)}
    ranked = rank(profiles_of(options))
    assert [r for _, r in ranked] == [1] * n
    assert [k for k, _ in ranked] == list(options)  # ties keep the given order
    assert winner(profiles_of(options)) is None


@pytest.mark.parametrize("n", [2, 3, 6])
def test_empty_vote_has_no_winner(n: int) -> None:
    profiles = {i: merit_profile([]) for i in range(n)}
    assert winner(profiles) is None
    assert [r for _, r in rank(profiles)] == [1] * n
    assert all(majority_grade(p) is None for p in profiles.values())
    assert winner({}) is None and rank({}) == []


def test_every_option_needs_the_same_number_of_grades() -> None:
    with pytest.raises(ValueError):
        rank({"a": merit_profile([Grade.BIEN]), "b": merit_profile([Grade.BIEN, Grade.BIEN])})
    with pytest.raises(ValueError):
        majority_grade({Grade.BIEN: -1})


def test_merit_profile_lists_every_grade_best_first() -> None:
    p = merit_profile(["bien", Grade.BIEN, Grade.A_REJETER])
    assert list(p) == list(GRADES)
    assert p[Grade.BIEN] == 2 and p[Grade.A_REJETER] == 1 and sum(p.values()) == 3


# ---------------------------------------------------------------- hand-computed examples
def _profiles(**grades: str) -> dict[str, dict[Grade, int]]:
    """Options from space-separated grades, e.g. a="bien passable"."""
    return {k: merit_profile(Grade(g) for g in v.split()) for k, v in grades.items()}


def test_even_number_of_ballots_takes_the_lower_median() -> None:
    """4 ballots. A: Très bien, Très bien, Passable, Passable — the two middle grades are Très bien
    and Passable; the majority grade is the worse one, Passable (an upper median would make A win).
    B: Bien ×3, Assez bien — majority grade Bien. B wins."""
    p = _profiles(a="tres_bien tres_bien passable passable", b="bien bien bien assez_bien")
    assert majority_grade(p["a"]) == Grade.PASSABLE and majority_grade(p["b"]) == Grade.BIEN
    assert winner(p) == "b" and rank(p) == [("b", 1), ("a", 2)]


def test_tie_break_removes_median_grades_until_they_differ() -> None:
    """A: Excellent, Bien, Bien, Insuffisant; B: Très bien, Bien, Bien, Passable. Both medians are
    Bien; without one Bien each: A = {Excellent, Bien, Insuffisant}, B = {Très bien, Bien, Passable},
    medians Bien again; without it: A = {Excellent, Insuffisant} → Insuffisant, B = {Très bien,
    Passable} → Passable. Passable is better: B wins, although A has the only Excellent."""
    p = _profiles(a="excellent bien bien insuffisant", b="tres_bien bien bien passable")
    assert median_sequence(p["a"]) == [Grade.BIEN, Grade.BIEN, Grade.INSUFFISANT, Grade.EXCELLENT]
    assert median_sequence(p["b"]) == [Grade.BIEN, Grade.BIEN, Grade.PASSABLE, Grade.TRES_BIEN]
    assert winner(p) == "b"


def test_three_options_two_tied_at_the_top_and_a_third_below() -> None:
    """5 ballots. A and B both have median Bien; C has Passable. A: E, TB, B, P, R → after removing
    Bien: E, TB, P, R → lower median P. B: B, B, B, AB, AB → after removing Bien: B, B, AB, AB →
    AB. Assez bien beats Passable: B first, A second, C third."""
    p = _profiles(a="excellent tres_bien bien passable a_rejeter", b="bien bien bien assez_bien assez_bien",
                  c="passable passable passable excellent excellent")
    assert [majority_grade(p[k]) for k in "abc"] == [Grade.BIEN, Grade.BIEN, Grade.PASSABLE]
    assert rank(p) == [("b", 1), ("a", 2), ("c", 3)]


def test_tennessee_capital_example() -> None:
    """The "Tennessee capital" example of the voting-methods literature (used by the Wikipedia
    article on majority judgment): 100 voters in four blocks, each grading the four cities by
    proximity Excellent / Good / Fair / Poor (here Excellent / Bien / Passable / À rejeter):
    Memphis voters (42): Memphis E, Nashville G, Chattanooga F, Knoxville P; Nashville voters (26):
    Nashville E, Chattanooga G, Knoxville F, Memphis P; Chattanooga voters (15): Chattanooga E,
    Knoxville G, Nashville F, Memphis P; Knoxville voters (17): Knoxville E, Chattanooga G,
    Nashville F, Memphis P. Profiles: Nashville 26/42/32/0, Chattanooga 15/43/42/0, Knoxville
    17/15/26/42, Memphis 42/0/0/58. Nashville and Chattanooga share the median Good; Chattanooga
    has more grades below it (42 against 32), so Nashville wins; Knoxville (Fair) is third and
    Memphis (Poor) last."""
    e, g, f, p = Grade.EXCELLENT, Grade.BIEN, Grade.PASSABLE, Grade.A_REJETER
    blocks = [(42, {"memphis": e, "nashville": g, "chattanooga": f, "knoxville": p}),
              (26, {"nashville": e, "chattanooga": g, "knoxville": f, "memphis": p}),
              (15, {"chattanooga": e, "knoxville": g, "nashville": f, "memphis": p}),
              (17, {"knoxville": e, "chattanooga": g, "nashville": f, "memphis": p})]
    cities = ["memphis", "nashville", "chattanooga", "knoxville"]
    profiles = {c: merit_profile(ballot[c] for n, ballot in blocks for _ in range(n)) for c in cities}
    assert [profiles["nashville"][x] for x in (e, g, f, p)] == [26, 42, 32, 0]
    assert [profiles["chattanooga"][x] for x in (e, g, f, p)] == [15, 43, 42, 0]
    assert [profiles["knoxville"][x] for x in (e, g, f, p)] == [17, 15, 26, 42]
    assert [profiles["memphis"][x] for x in (e, g, f, p)] == [42, 0, 0, 58]
    assert {c: majority_grade(profiles[c]) for c in cities} == {"memphis": p, "nashville": g, "chattanooga": g,
                                                                 "knoxville": f}
    assert rank(profiles) == [("nashville", 1), ("chattanooga", 2), ("knoxville", 3), ("memphis", 4)]
    assert winner(profiles) == "nashville"
    # Memphis has the most Excellent grades (a plurality) yet comes last.
    assert max(cities, key=lambda c: profiles[c][e]) == "memphis"
    explicit = {c: [ballot[c].value for n, ballot in blocks for _ in range(n)] for c in cities}
    assert ref_winner(explicit) == "nashville"
