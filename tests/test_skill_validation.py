"""Paired utility, the validation gate (levels, bounds, decisions, simulated error rates), the planner."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from siri.config import TrainConfig, preset_path
from siri.rollout.types import Trajectory
from siri.skills.gate_sim import GateSetting, gate_decision, preset_settings, run_gate, simulate_differences
from siri.skills.validation import (
    Gate,
    UtilityStats,
    assign_validation,
    collect_paired,
    decide,
    paired_difference,
    t_quantile,
    t_sf,
)
from siri.utils.config import ConfigError

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
    # half width for a critical value of 1.645 = 1.645 * 0.2041241 / 2 = 0.1678921
    lcb, ucb = stats.bounds(1.645)
    assert lcb == pytest.approx(0.3321079, abs=1e-6) and ucb == pytest.approx(0.6678921, abs=1e-6)
    assert stats.last_update == 3
    # four evaluations are before the default gate's first look (10): nothing is decided yet
    assert decide("candidate", stats) == ("candidate", "")
    assert Gate().bounds(stats) == (-math.inf, math.inf)


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


GOOD = [0.5, 0.25, 0.75, 0.5, 0.5, 0.25, 0.75, 0.5, 0.5, 0.25]  # mean 0.475, s 0.1844: t = 8.1 at n = 10
BAD = [-0.5, 0.0, -0.25, -0.25, -0.5, 0.0, -0.25, -0.25, -0.5, -0.25]


def test_decisions() -> None:
    good, bad, noisy = _stats(GOOD), _stats(BAD), _stats([1, -1] * 5)
    assert decide("candidate", _stats(GOOD[:9])) == ("candidate", "")  # before the first look (10)
    assert decide("candidate", good)[0] == "active"
    assert decide("candidate", good)[1].startswith("LCB > 0: reliably useful (U=+0.475")
    assert decide("candidate", bad)[0] == "retired" and "UCB <= 0" in decide("candidate", bad)[1]
    assert decide("candidate", noisy) == ("candidate", "")
    assert decide("candidate", _stats([1, -1] * 8))[1].startswith("no significant benefit after 16")
    assert decide("active", bad)[0] == "retired"  # an active skill that turns out harmful
    assert decide("active", _stats([1, -1] * 8)) == ("active", "")
    assert decide("retired", good) == ("retired", "")
    # threshold: promote only when reliably above 0.4 (LCB = 0.475 - 3.81 * 0.1844 / sqrt(10) = 0.253)
    assert decide("candidate", good, Gate(promote_lcb=0.4)) == ("candidate", "")
    # all-zero differences: the skill changes nothing, UCB = 0 -> retired at the first look
    assert decide("candidate", _stats([0.0] * 9)) == ("candidate", "")
    assert decide("candidate", _stats([0.0] * 10))[0] == "retired"
    # gate off: every candidate becomes active at once, nothing is retired on utility
    assert decide("candidate", UtilityStats(), Gate(enabled=False))[0] == "active"
    assert decide("active", bad, Gate(enabled=False)) == ("active", "")
    with pytest.raises(ValueError, match="min_evals"):
        decide("candidate", good, Gate(min_evals=1))
    with pytest.raises(ValueError, match="status"):
        decide("bogus", good)
    with pytest.raises(ValueError, match=r"max_evals=4 is too few for gate_alpha=0.05.*max_evals >= 5"):
        decide("candidate", good, Gate(min_evals=2, max_evals=4))


def test_a_candidate_past_max_evals_has_its_last_look_at_the_level_of_max_evals() -> None:
    """Several evaluations in one iteration can carry a candidate past max_evals: that look is its last, at
    the level of max_evals; an active skill's later looks spend a second budget, alpha * M / (n (n - 1))."""
    gate = Gate(0.05, 4, 16)
    assert gate.level(20, candidate=True) == gate.level(16)
    assert gate.level(20) == pytest.approx(0.05 * 16 / (20 * 19))
    assert decide("candidate", _stats(GOOD * 2))[0] == "active"  # n = 20: promoted, not retired unseen
    assert decide("candidate", _stats([1, -1] * 10))[1].startswith("no significant benefit after 16")


# --- the gate: its levels and bounds against independent references ------------------------------------


def test_t_quantiles_match_closed_forms_and_mpmath() -> None:
    # closed forms: df = 1 is Cauchy, t = tan(pi (q - 1/2)); df = 2: t = (2q - 1) / sqrt(2 q (1 - q))
    for q in (0.6, 0.95, 0.975, 0.999, 1 - 1e-6):
        assert t_quantile(q, 1) == pytest.approx(math.tan(math.pi * (q - 0.5)), rel=1e-9)
        assert t_quantile(q, 2) == pytest.approx((2 * q - 1) / math.sqrt(2 * q * (1 - q)), rel=1e-9)
    # textbook table values
    assert t_quantile(0.975, 10) == pytest.approx(2.228139, abs=1e-6)
    assert t_quantile(0.995, 3) == pytest.approx(5.840909, abs=1e-6)
    assert t_quantile(0.5, 7) == 0.0
    # a slow independent reference: mpmath's quadrature of the t density, solved for the quantile
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 30

    def reference(q: float, df: int) -> float:
        c = mp.gamma((df + 1) / mp.mpf(2)) / (mp.sqrt(df * mp.pi) * mp.gamma(df / mp.mpf(2)))

        def density(x: float) -> float:
            return c * (1 + x * x / df) ** (-(df + 1) / mp.mpf(2))

        def sf(t: float) -> float:
            return mp.quad(density, [t, mp.inf])

        return float(mp.findroot(lambda t: sf(t) - (1 - mp.mpf(q)), t_quantile(q, df)))

    for q, df in [(1 - 0.00206, 9), (0.99, 4), (1 - 1e-5, 15), (0.9, 30), (1 - 0.0303, 15)]:
        assert t_quantile(q, df) == pytest.approx(reference(q, df), rel=1e-8)
        assert t_sf(t_quantile(q, df), df) == pytest.approx(1 - q, rel=1e-8)


def test_gate_levels_and_bounds_by_hand() -> None:
    """alpha 0.05, looks 4..16 (the Qwen presets): a look at 9 would get 0.025 * 81 / 1292 = 0.00157 < 2**-9,
    so the looks start at 10: over 10..16 (sum of n**2 = 1211) half of alpha in proportion to n**2, the other
    half at 16."""
    gate = Gate(0.05, 4, 16)
    assert gate.first_look == 10
    assert [gate.level(n) for n in range(4, 10)] == [0.0] * 6
    assert gate.level(10) == pytest.approx(0.025 * 100 / 1211)
    assert gate.level(15) == pytest.approx(0.025 * 225 / 1211)
    assert gate.level(16) == pytest.approx(0.025 * 256 / 1211 + 0.025)
    assert sum(gate.level(n) for n in range(4, 17)) == pytest.approx(0.05)
    assert sum(gate.level(n) for n in range(17, 5000)) <= 0.05  # the active skills' second budget
    # each look's level is at least 2**-n: n same-signed differences could be significant there
    for g in (gate, Gate(0.05, 3, 12), Gate(0.05, 2, 8), Gate(0.001, 4, 16), Gate(0.5, 2, 5)):
        assert all(g.level(n) == 0.0 or g.level(n) >= 2.0**-n for n in range(2, 60))
        assert sum(g.level(n) for n in range(2, g.max_evals + 1)) == pytest.approx(g.alpha)
    assert (Gate(0.05, 3, 12).first_look, Gate(0.05, 2, 8).first_look) == (9, 7)
    # the bounds at n = 10 by hand: mean 0.475, s = sqrt(0.30625 / 9), t_9(1 - 0.0020644) = 3.8137 (mpmath)
    stats = _stats(GOOD)
    s = math.sqrt(sum((d - 0.475) ** 2 for d in GOOD) / 9)
    assert s == pytest.approx(0.18446, abs=1e-5)
    lcb, ucb = gate.bounds(stats)
    assert lcb == pytest.approx(0.475 - 3.81369 * s / math.sqrt(10), abs=1e-4)
    assert ucb == pytest.approx(0.475 + 3.81369 * s / math.sqrt(10), abs=1e-4)
    with pytest.raises(ValueError, match="gate_alpha must be in"):
        Gate(0.0)


def test_all_equal_positive_differences_do_not_promote_at_min_evals() -> None:
    """Four times +0.25 (s = 0): a t interval has zero width and the former gate promoted at once. With the
    differences symmetric under "no effect", 4 same-signed ones happen with probability 1/16: no look."""
    four = _stats([0.25] * 4)
    assert four.bounds(1.645) == (0.25, 0.25)  # the zero-width interval
    assert decide("candidate", four) == ("candidate", "")
    for setting in preset_settings():
        n = setting.min_evals
        stats = _stats([0.25] * n)
        assert decide("candidate", stats, Gate(setting.alpha, n, setting.max_evals)) == (
            "candidate",
            "",
        )
        # the same holds up to the gate's first look; there, n same-signed differences are significant
        first = Gate(setting.alpha, n, setting.max_evals).first_look
        assert first >= 7
        gate = Gate(setting.alpha, n, setting.max_evals)
        assert decide("candidate", _stats([0.25] * (first - 1)), gate)[0] == "candidate"
        assert decide("candidate", _stats([0.25] * first), gate)[0] == "active"


# --- the false-promotion rate of zero-effect skills, simulated at every preset's settings -------------


def _distinct_settings() -> dict[str, GateSetting]:
    """One setting per distinct gate configuration of the presets, named by all presets that share it."""
    groups: dict[tuple, list[GateSetting]] = {}
    for s in preset_settings():
        groups.setdefault(
            (s.arms, s.min_evals, s.max_evals, s.alpha, s.promote_lcb, s.retire_ucb), []
        ).append(s)
    return {"+".join(s.name for s in same): same[0] for same in groups.values()}


SETTINGS = _distinct_settings()


def test_every_siri_preset_is_simulated() -> None:
    names = {name for key in SETTINGS for name in key.split("+")}
    assert {
        "alfworld-qwen7b-siri",
        "webshop-qwen7b-siri",
        "household-tiny-siri",
        "shop-tiny-siri",
        "household-lite-smollm2-warm-siri",
    } <= names


@pytest.mark.parametrize("setting", list(SETTINGS.values()), ids=list(SETTINGS))
@pytest.mark.parametrize("model", ["bernoulli", "zeros", "penalties", "shop", "discounted"])
def test_zero_effect_skills_are_promoted_at_most_alpha_of_the_time(setting: GateSetting, model: str) -> None:
    """2,000 skills with no effect, a look after every evaluation (the most looks ``update_status`` can
    take), through the project's own ``decide``: promoted at most 5% of the time (the former gate: 8-39%)."""
    assert setting.alpha <= 0.05
    diffs = simulate_differences(model, setting.arms, 2000, setting.max_evals, 0.0, np.random.default_rng(18))
    if model == "zeros":
        assert (diffs == 0).mean() > 0.5  # like real runs: most paired evaluations are exactly 0
    if model == "discounted":
        assert (diffs == 0).mean() < (simulate_differences("bernoulli", setting.arms, 2000, setting.max_evals, 0.0,
                                                            np.random.default_rng(18)) == 0).mean()
    outcome = run_gate(diffs, gate_decision(setting))
    assert outcome.promoted <= 0.05
    assert outcome.promoted + outcome.retired + outcome.undecided == pytest.approx(1.0)


@pytest.mark.parametrize("setting", list(SETTINGS.values()), ids=list(SETTINGS))
def test_tied_differences_exactly(setting: GateSetting) -> None:
    """The adversarial model ``d = +h or -h`` (ties make s = 0 likely): its promotion probability computed
    exactly, over every path of the random walk of the number of positive differences."""
    h = 1.0 / setting.arms[0]
    next_status = gate_decision(setting)
    alive = {0: 1.0}  # number of positive differences so far -> probability, among undecided candidates
    promoted = 0.0
    for n in range(1, setting.max_evals + 1):
        step: dict[int, float] = {}
        for k, p in alive.items():
            for k2 in (k, k + 1):
                step[k2] = step.get(k2, 0.0) + p / 2
        alive = {}
        for k, p in step.items():
            mean = h * (2 * k - n) / n
            stats = UtilityStats(n=n, mean=mean, m2=max(n * h * h - n * mean * mean, 0.0))
            status = next_status("candidate", stats)
            if status == "active":
                promoted += p
            elif status == "candidate":
                alive[k] = p
    assert not alive
    assert promoted <= 0.05


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
    # applies(group, candidate) narrows the eligible ones further: s4 only where the group allows it
    narrowed = assign_validation(
        [4, 4, 4, 4, 4], ["s1", "s2", "s3", "s4"], share=0.25, seed=0,
        group_types=["heat", "cool", "heat", "clean", "heat"], candidate_types=types,
        applies=lambda g, c: c != "s1" and (c != "s4" or g == 4),
    )  # fmt: skip
    assert [next((x for x in row if x), None) for row in narrowed] == ["s3", "s2", "s3", "s3", "s4"]
    nothing = assign_validation([4, 4], ["s1"], group_types=["heat", "heat"], candidate_types=types,
                                applies=lambda g, c: False)
    assert nothing == [[None] * 4, [None] * 4]
    with pytest.raises(ValueError, match="missing \\['s4'\\]"):
        assign_validation([4], ["s4"], group_types=["heat"], candidate_types={})


# --- the gate's config -------------------------------------------------------------------------------------


def test_gate_config_is_checked_before_a_run_and_old_runs_get_a_clear_error(tmp_path: Path) -> None:
    cfg = TrainConfig.load(preset_path("alfworld-qwen7b-siri"))
    assert (cfg.siri.gate_alpha, cfg.siri.min_evals, cfg.siri.max_evals) == (0.05, 4, 16)
    # whether an alpha leaves the gate a look is the gate's rule, checked before a run starts
    from siri.skills.pipeline import SiriPipeline

    too_few = TrainConfig.load(None, ["siri.gate_alpha=0.001", "siri.max_evals=5"])
    with pytest.raises(ConfigError, match=r"max_evals=5 is too few for gate_alpha=0.001.*max_evals >= 10"):
        SiriPipeline.check_config(too_few)
    with pytest.raises(ConfigError, match=r"bad value for 'siri.gate_alpha'"):
        TrainConfig.load(None, ["siri.gate_alpha=0.6"])
    # the config.yaml of a run written before the change: a clear error naming the file and the new key
    old = tmp_path / "config.yaml"
    old.write_text(TrainConfig().to_yaml().replace("  gate_alpha: 0.05\n", "  confidence_z: 1.645\n"))
    with pytest.raises(ConfigError, match=r"confidence_z' was removed.*siri.gate_alpha") as err:
        TrainConfig.load(old)
    assert str(old) in str(err.value)
    with pytest.raises(ConfigError, match="confidence_z' was removed"):
        TrainConfig.load(None, ["siri.confidence_z=1.0"])
