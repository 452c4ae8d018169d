"""Paired utility, confidence bounds, status decisions and the validation planner."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siri.rollout.types import Trajectory
from siri.skills.validation import (
    UtilityStats,
    assign_validation,
    collect_paired,
    decide,
    paired_difference,
)

# Four paired evaluations, each (with-skill returns, plain returns) of one group.
TOY = [
    ([1.0, 1.0], [1.0, 0.0]),  # 1.0 - 0.5 = 0.5
    ([0.5, 0.5], [0.25, 0.25]),  # 0.5 - 0.25 = 0.25
    ([1.0], [0.5, 0.0, 0.25, 0.25]),  # 1.0 - 0.25 = 0.75
    ([1.0, 0.0], [0.0, 0.0]),  # 0.5 - 0.0 = 0.5
]


def test_toy_utility_and_bounds_by_hand() -> None:
    stats = UtilityStats()
    diffs = [paired_difference(w, wo) for w, wo in TOY]
    assert diffs == [0.5, 0.25, 0.75, 0.5]
    for it, d in enumerate(diffs):
        stats.add(d, it)
    # mean 0.5; squared deviations 0 + 1/16 + 1/16 + 0 = 0.125; sample var 0.125/3; s = 0.2041241
    assert stats.n == 4 and stats.mean == pytest.approx(0.5) and stats.m2 == pytest.approx(0.125)
    assert stats.std == pytest.approx(math.sqrt(0.125 / 3))
    # half width = 1.645 * 0.2041241 / 2 = 0.1678921
    lcb, ucb = stats.bounds(1.645)
    assert lcb == pytest.approx(0.3321079, abs=1e-6) and ucb == pytest.approx(0.6678921, abs=1e-6)
    assert stats.last_update == 3
    assert decide("candidate", stats) == ("active", decide("candidate", stats)[1])
    assert decide("candidate", stats)[1].startswith("LCB > 0")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(min_value=-5, max_value=5, allow_nan=False), min_size=2, max_size=40))
def test_welford_matches_statistics_module(diffs: list[float]) -> None:
    stats = UtilityStats()
    for d in diffs:
        stats.add(d, 0)
    assert stats.mean == pytest.approx(statistics.fmean(diffs), abs=1e-9)
    assert stats.std == pytest.approx(statistics.stdev(diffs), abs=1e-7)
    z = 1.96
    half = z * statistics.stdev(diffs) / math.sqrt(len(diffs))
    lcb, ucb = stats.bounds(z)
    assert lcb == pytest.approx(statistics.fmean(diffs) - half, abs=1e-7)
    assert ucb == pytest.approx(statistics.fmean(diffs) + half, abs=1e-7)


def test_bounds_before_two_evaluations_are_unknown() -> None:
    stats = UtilityStats()
    assert stats.bounds(1.645) == (-math.inf, math.inf)
    stats.add(1.0, 0)
    assert stats.bounds(1.645) == (-math.inf, math.inf)
    with pytest.raises(ValueError, match="finite"):
        stats.add(math.nan, 0)


def _stats(diffs: list[float]) -> UtilityStats:
    s = UtilityStats()
    for d in diffs:
        s.add(d, 0)
    return s


def test_decisions() -> None:
    good, bad, noisy = (
        _stats([0.5, 0.25, 0.75, 0.5]),
        _stats([-0.5, 0.0, -0.25, -0.25]),
        _stats([1, -1, 1, -1]),
    )
    assert decide("candidate", _stats([1.0, 1.0, 1.0])) == ("candidate", "")  # below min_evals=4
    assert decide("candidate", bad)[0] == "retired"
    assert decide("candidate", noisy) == ("candidate", "")
    assert decide("candidate", _stats([1, -1] * 8))[1].startswith("no significant benefit after 16")
    assert decide("active", bad)[0] == "retired"  # an active skill that turns out harmful
    assert decide("active", _stats([1, -1] * 8)) == ("active", "")
    assert decide("retired", good) == ("retired", "")
    # threshold: promote only when reliably above 0.4
    assert decide("candidate", good, promote_lcb=0.4) == ("candidate", "")
    # all-zero differences: the skill changes nothing, UCB = 0 -> retired
    assert decide("candidate", _stats([0.0] * 4))[0] == "retired"
    # gate off: every candidate becomes active at once, nothing is retired on utility
    assert decide("candidate", UtilityStats(), gate=False)[0] == "active"
    assert decide("active", bad, gate=False) == ("active", "")
    with pytest.raises(ValueError, match="min_evals"):
        decide("candidate", good, min_evals=1)
    with pytest.raises(ValueError, match="status"):
        decide("bogus", good)


def test_paired_difference_needs_both_arms() -> None:
    with pytest.raises(ValueError, match="0 with and 2 without"):
        paired_difference([], [1.0, 0.0])


def test_assign_validation_plan() -> None:
    plan = assign_validation([8, 8, 8], ["s1", "s2"], share=0.5, seed=3)
    assert plan == assign_validation([8, 8, 8], ["s1", "s2"], share=0.5, seed=3)  # deterministic
    assert [sorted(x for x in row if x) for row in plan] == [["s1"] * 4, ["s2"] * 4, ["s1"] * 4]
    assert all(row.count(None) == 4 for row in plan)
    assert plan != assign_validation([8, 8, 8], ["s1", "s2"], share=0.5, seed=4)  # positions shuffled
    # two candidates per group share one plain arm
    row = assign_validation([8], ["s1", "s2", "s3"], share=0.5, seed=0, per_group=2)[0]
    assert sorted(x for x in row if x) == ["s1", "s1", "s2", "s2"] and row.count(None) == 4
    # at least one shown and one plain rollout; tiny groups and share 0 stay plain
    assert [len([x for x in r if x]) for r in assign_validation([2, 4, 1, 0], ["s1"], share=0.9)] == [
        1,
        3,
        0,
        0,
    ]
    assert assign_validation([4], ["s1"], share=0.0) == [[None] * 4]
    assert assign_validation([4], [], share=0.5) == [[None] * 4]
    with pytest.raises(ValueError, match="share"):
        assign_validation([4], ["s1"], share=1.5)
    with pytest.raises(ValueError, match="distinct"):
        assign_validation([4], ["s1", "s1"])


def _traj(group: int, traj: int, won: bool, skills: tuple[str, ...] = ()) -> Trajectory:
    return Trajectory(group=group, traj=traj, seed=group, task="t", task_type="x", won=won,
                      score=float(won), skill_ids=skills)  # fmt: skip


def test_collect_paired_groups_arms() -> None:
    trajs = [
        _traj(0, 0, True, ("s1",)), _traj(0, 1, False, ("s1",)), _traj(0, 2, False), _traj(0, 3, False),
        _traj(0, 4, True, ("s2",)), _traj(0, 5, True, ("s1", "s2")),  # two skills: confounded, skipped
        _traj(1, 6, True, ("s1",)), _traj(1, 7, True, ("s1",)),  # no plain arm: no evaluation
        _traj(2, 8, True), _traj(2, 9, False, ("s2",)),
    ]  # fmt: skip
    pairs = collect_paired(trajs, value=lambda t: t.score)
    assert pairs == {
        "s1": [([1.0, 0.0], [0.0, 0.0])],
        "s2": [([1.0], [0.0, 0.0]), ([0.0], [1.0])],
    }
    # default outcome is the return (sum of step rewards); these trajectories have no steps
    assert collect_paired(trajs)["s2"] == [([0.0], [0.0, 0.0]), ([0.0], [0.0])]


def test_assign_validation_respects_task_types() -> None:
    types = {"s1": "heat", "s2": "cool", "s3": "general", "s4": "heat"}
    plan = assign_validation(
        [4, 4, 4, 4, 4], ["s1", "s2", "s3", "s4"], share=0.25, seed=0,
        group_types=["heat", "cool", "heat", "clean", "heat"], candidate_types=types,
    )  # fmt: skip
    shown = [next(x for x in row if x) for row in plan]
    # heat groups rotate over s1, s3, s4; cool over s2, s3; clean only gets the general s3
    assert shown == ["s1", "s2", "s3", "s3", "s4"]
    with pytest.raises(ValueError, match="missing \\['s4'\\]"):
        assign_validation([4], ["s4"], group_types=["heat"], candidate_types={})
