"""GRPO / GiGPO / RLOO advantages: hand-computed cases, degenerate cases, and a slow reference."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rapidfuzz import fuzz

from siri.rl.advantages import Advantages, compute_gigpo, compute_grpo, compute_rloo

SQRT_HALF = math.sqrt(0.5)


# ----------------------------------------------------------------------------- slow reference


def ref_advantages(steps, algo="gigpo", gamma=0.95, omega=1.0, norm="mean_std", episode_stats="trajectory",
                   eps=1e-6, similarity=None):
    """Obviously-correct loops over dicts. ``steps``: list of (group, traj, t, reward, anchor)."""
    by_traj: dict = {}
    for i, (g, tr, t, r, a) in enumerate(steps):
        by_traj.setdefault(tr, []).append((t, i, g, r, a))
    for tr in by_traj:
        by_traj[tr].sort()

    ret = {tr: sum(r for (_, _, _, r, _) in rows) for tr, rows in by_traj.items()}
    group_of = {tr: rows[0][2] for tr, rows in by_traj.items()}

    def normalize(value, population):
        if len(population) < 2:
            return 0.0
        mean = statistics.fmean(population)
        if norm == "mean":
            return value - mean
        return (value - mean) / (statistics.stdev(population) + eps)

    a_e = [0.0] * len(steps)
    for tr, rows in by_traj.items():
        g = group_of[tr]
        members = [u for u in by_traj if group_of[u] == g]
        if len(members) == 1:
            value = 0.0
        elif algo == "rloo":
            others = [ret[u] for u in members if u != tr]
            value = ret[tr] - sum(others) / len(others)
        elif episode_stats == "trajectory":
            value = normalize(ret[tr], [ret[u] for u in members])
        else:  # every step row contributes its trajectory's return
            value = normalize(ret[tr], [ret[u] for u in members for _ in by_traj[u]])
        for _, i, _, _, _ in rows:
            a_e[i] = value
    if algo != "gigpo":
        return a_e, [0.0] * len(steps)

    g_t = [0.0] * len(steps)
    for rows in by_traj.values():
        running = 0.0
        for _, i, _, r, _ in reversed(rows):
            running = r + gamma * running
            g_t[i] = running

    cluster_of = {}
    if similarity is None:
        for i, (g, _, _, _, a) in enumerate(steps):
            cluster_of[i] = (g, a)
    else:
        for g in {s[0] for s in steps}:
            reps: list[str] = []
            for text in sorted({s[4] for s in steps if s[0] == g}):
                scores = [fuzz.ratio(text, rep) / 100.0 for rep in reps]
                best = max(range(len(reps)), key=lambda k: (scores[k], -k), default=None)
                if best is None or scores[best] < similarity:
                    reps.append(text)
                    best = len(reps) - 1
                for i, s in enumerate(steps):
                    if s[0] == g and s[4] == text:
                        cluster_of[i] = (g, best)
    a_s = [0.0] * len(steps)
    for i in range(len(steps)):
        population = [g_t[j] for j in range(len(steps)) if cluster_of[j] == cluster_of[i]]
        a_s[i] = normalize(g_t[i], population)
    return [e + omega * s for e, s in zip(a_e, a_s, strict=True)], a_s


def columns(steps):
    g, tr, t, r, a = zip(*steps, strict=True)
    return list(g), list(tr), list(t), list(r), list(a)


# ----------------------------------------------------------------------------- hand cases


def test_gigpo_hand_case():
    # One group, two trajectories; anchors a -> b -> c and a -> b.
    #   traj 0: rewards 0, 0, 1     R0 = 1
    #   traj 1: rewards 0, -0.1     R1 = -0.1 (invalid action penalty on its last step)
    # A_E: mean = 0.45, sample std = |1 - (-0.1)| / sqrt(2) = 1.1 / sqrt(2); (R0 - mean) / std = 0.55 * sqrt(2)
    #   / 1.1 = 1/sqrt(2) (minus the eps effect), traj 1 gets -1/sqrt(2).
    # G (gamma 0.95): traj 0: 0.9025, 0.95, 1.0; traj 1: -0.095, -0.1.
    # Step groups: 'a' = {0.9025, -0.095} -> +-1/sqrt(2); 'b' = {0.95, -0.1} -> +-1/sqrt(2); 'c' alone -> 0.
    steps = [(0, 0, 0, 0.0, "a"), (0, 0, 1, 0.0, "b"), (0, 0, 2, 1.0, "c"), (0, 1, 0, 0.0, "a"), (0, 1, 1, -0.1, "b")]
    parts = compute_gigpo(*columns(steps), return_parts=True)
    assert isinstance(parts, Advantages)
    np.testing.assert_allclose(parts.step_return, [0.9025, 0.95, 1.0, -0.095, -0.1], rtol=1e-12)
    np.testing.assert_allclose(parts.episode, [SQRT_HALF] * 3 + [-SQRT_HALF] * 2, rtol=1e-5)
    np.testing.assert_allclose(parts.step, [SQRT_HALF, SQRT_HALF, 0.0, -SQRT_HALF, -SQRT_HALF], rtol=1e-5)
    np.testing.assert_allclose(parts.total, [2 * SQRT_HALF, 2 * SQRT_HALF, SQRT_HALF, -2 * SQRT_HALF, -2 * SQRT_HALF],
                               rtol=1e-5)
    assert parts.step[2] == 0.0
    assert parts.step_group_size.tolist() == [2, 2, 1, 2, 2]
    # omega scales the step part only; norm="mean" removes the division:
    # A_E = R - 0.45 = 0.55 / -0.55; A_S('a') = 0.9025 - 0.40375 = 0.49875, A_S('b') = 0.95 - 0.425 = 0.525.
    mean = compute_gigpo(*columns(steps), omega=0.5, norm="mean")
    np.testing.assert_allclose(mean, [0.55 + 0.5 * 0.49875, 0.55 + 0.5 * 0.525, 0.55,
                                      -0.55 - 0.5 * 0.49875, -0.55 - 0.5 * 0.525], rtol=1e-12)


def test_grpo_and_rloo_hand_case():
    # Group 0: returns 1, 0, 0 (one step each). mean 1/3, sample std = sqrt(((2/3)^2 + 2 (1/3)^2) / 2) = sqrt(1/3).
    #   GRPO: (2/3) / sqrt(1/3) = 2/sqrt(3) = 1.1547; -(1/3)/sqrt(1/3) = -1/sqrt(3) = -0.57735.
    #   RLOO: 1 - mean(0, 0) = 1; 0 - mean(1, 0) = -0.5.
    # Group 7: returns 2 (two steps of 1) and 0 -> GRPO +-1/sqrt(2); RLOO +-2.
    steps = [(0, 10, 0, 1.0, 0), (0, 11, 0, 0.0, 0), (0, 12, 0, 0.0, 0),
             (7, 3, 0, 1.0, 0), (7, 3, 1, 1.0, 0), (7, 4, 0, 0.0, 0)]
    g, tr, t, r, _ = columns(steps)
    s3 = math.sqrt(3)
    np.testing.assert_allclose(compute_grpo(g, tr, t, r), [2 / s3, -1 / s3, -1 / s3, SQRT_HALF, SQRT_HALF, -SQRT_HALF],
                               rtol=1e-5)
    np.testing.assert_allclose(compute_rloo(g, tr, t, r), [1.0, -0.5, -0.5, 2.0, 2.0, -2.0], rtol=1e-12)
    np.testing.assert_allclose(compute_grpo(g, tr, t, r, norm="mean"), [2 / 3, -1 / 3, -1 / 3, 1, 1, -1], rtol=1e-12)


def test_episode_stats_step_weights_long_trajectories():
    # Traj 0: one step, R = 1. Traj 1: three steps, R = 0.
    # "trajectory": population [1, 0]: mean 0.5, std 1/sqrt(2) -> +-1/sqrt(2); with norm="mean" +-0.5.
    # "step" (verl-agent): population [1, 0, 0, 0]: mean 0.25, sample var = (0.75^2 + 3 * 0.25^2) / 3 = 0.25,
    #   std 0.5 -> traj 0: 0.75 / 0.5 = 1.5, traj 1: -0.25 / 0.5 = -0.5; with norm="mean": 0.75, -0.25.
    steps = [(0, 0, 0, 1.0, "x"), (0, 1, 0, 0.0, "y"), (0, 1, 1, 0.0, "y"), (0, 1, 2, 0.0, "y")]
    g, tr, t, r, a = columns(steps)
    np.testing.assert_allclose(compute_grpo(g, tr, t, r), [SQRT_HALF, -SQRT_HALF, -SQRT_HALF, -SQRT_HALF], rtol=1e-5)
    np.testing.assert_allclose(compute_grpo(g, tr, t, r, episode_stats="step"), [1.5, -0.5, -0.5, -0.5], rtol=1e-5)
    np.testing.assert_allclose(compute_grpo(g, tr, t, r, norm="mean", episode_stats="step"),
                               [0.75, -0.25, -0.25, -0.25], rtol=1e-12)
    # Same in GiGPO's episode part; anchors differ so the step part is 0 except 'y', whose step group is
    # traj 1's own three steps with G = 0 -> all equal -> 0.
    parts = compute_gigpo(g, tr, t, r, a, episode_stats="step", return_parts=True)
    np.testing.assert_allclose(parts.episode, [1.5, -0.5, -0.5, -0.5], rtol=1e-5)
    assert parts.step.tolist() == [0.0, 0.0, 0.0, 0.0]


# ----------------------------------------------------------------------------- degenerate cases


def test_lone_trajectory_and_equal_returns_give_exact_zero():
    # Group 0 has one trajectory; group 1 has three trajectories with equal returns 0.1 + 0.2 (= 0.30000000000000004)
    # in different step orders, so the mean is not exactly representable: zero must still be exact.
    steps = [(0, 0, 0, 5.0, "s"), (0, 0, 1, -3.0, "s2"),
             (1, 1, 0, 0.1, "a"), (1, 1, 1, 0.2, "b"),
             (1, 2, 0, 0.1, "a"), (1, 2, 1, 0.2, "b"),
             (1, 3, 0, 0.1, "a"), (1, 3, 1, 0.2, "b")]
    for norm in ("mean_std", "mean"):
        for stats in ("trajectory", "step"):
            parts = compute_gigpo(*columns(steps), norm=norm, episode_stats=stats, return_parts=True)
            assert parts.total.tolist() == [0.0] * len(steps)
            assert np.all(np.isfinite(parts.total))
    g, tr, t, r, _ = columns(steps)
    assert compute_grpo(g, tr, t, r).tolist() == [0.0] * len(steps)
    assert compute_rloo(g, tr, t, r).tolist() == [0.0] * len(steps)


def test_zero_eps_and_zero_std_stays_finite():
    steps = [(0, 0, 0, 1.0, "a"), (0, 1, 0, 1.0, "a"), (1, 2, 0, 0.0, "a"), (1, 3, 0, 1.0, "a")]
    out = compute_gigpo(*columns(steps), eps=0.0)
    assert np.all(np.isfinite(out))
    # Group 0: equal -> 0. Group 1: returns 0, 1 -> -+1/sqrt(2) exactly (eps 0) in both parts.
    np.testing.assert_allclose(out, [0, 0, -2 * SQRT_HALF, 2 * SQRT_HALF], rtol=1e-12)


def test_empty_batch():
    assert compute_gigpo([], [], [], [], []).shape == (0,)
    assert compute_grpo([], [], [], []).shape == (0,)
    assert compute_rloo([], [], [], []).shape == (0,)


def test_anchor_kinds_and_input_order():
    # Tuples, numpy arrays of ints and plain ints all key step groups by equality.
    steps = [(0, 0, 1, 1.0, (1, "x")), (0, 0, 0, 0.0, (0, "x")), (0, 1, 0, 0.0, (0, "x")), (0, 1, 1, 0.0, (1, "x"))]
    parts = compute_gigpo(*columns(steps), return_parts=True)
    assert parts.step_group_size.tolist() == [2, 2, 2, 2]
    g, tr, t, r, _ = columns(steps)
    as_ints = compute_gigpo(g, tr, t, r, np.array([1, 0, 0, 1]))
    np.testing.assert_array_equal(parts.total, as_ints)
    # Ids may be strings and need not be dense.
    as_str = compute_gigpo(["g"] * 4, ["u", "u", "v", "v"], t, r, [1, 0, 0, 1])
    np.testing.assert_array_equal(parts.total, as_str)
    as_bool = compute_gigpo(np.array([True] * 4), tr, t, r, np.array([True, False, False, True]))
    np.testing.assert_array_equal(parts.total, as_bool)
    summary = parts.summary()
    assert summary["adv/step_groups"] == 2 and summary["adv/step_singleton_frac"] == 0.0


def test_similarity_groups_near_duplicate_texts():
    # Two trajectories; the first observations differ by one character (ratio ~0.98), the second ones are
    # unrelated. With threshold 0.9 the first steps share a step group; with exact anchors they don't.
    texts = ["You arrive at countertop 1. On it you see a mug 1.",
             "You arrive at countertop 1. On it you see a mug 2.",
             "Nothing happens.", "The microwave 1 is open."]
    steps = [(0, 0, 0, 0.0, texts[0]), (0, 0, 1, 1.0, texts[2]), (0, 1, 0, 0.0, texts[1]), (0, 1, 1, 0.0, texts[3])]
    g, tr, t, r, a = columns(steps)
    exact = compute_gigpo(g, tr, t, r, a, return_parts=True)
    assert exact.step.tolist() == [0.0, 0.0, 0.0, 0.0]
    sim = compute_gigpo(g, tr, t, r, a, similarity=0.9, return_parts=True)
    # First steps: G = 0.95 vs 0 -> +-1/sqrt(2); second steps are singletons.
    np.testing.assert_allclose(sim.step, [SQRT_HALF, 0, -SQRT_HALF, 0], rtol=1e-5)
    # texts= overrides the anchors for grouping; threshold 1.0 means exact text equality.
    same = compute_gigpo(g, tr, t, r, [0, 1, 2, 3], similarity=0.9, texts=a, return_parts=True)
    np.testing.assert_array_equal(sim.total, same.total)
    strict = compute_gigpo(g, tr, t, r, a, similarity=1.0, return_parts=True)
    np.testing.assert_array_equal(strict.total, exact.total)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.__setitem__(0, [0, 1, 0]), "appears in more than one group"),
        (lambda c: c.__setitem__(2, [0, 2, 0]), r"outside 0\.\.1"),
        (lambda c: c.__setitem__(2, [1, 1, 0]), "has step t=1 more than once"),
        (lambda c: c.__setitem__(3, [0.0, float("nan"), 1.0]), "reward must be finite"),
        (lambda c: c.__setitem__(1, [0, 0]), "'traj' has 2 entries"),
        (lambda c: c.__setitem__(2, [0.5, 1, 0]), "integer step indices"),
    ],
)
def test_bad_input_is_named(mutate, message):
    cols = [[0, 0, 0], [0, 0, 1], [0, 1, 0], [0.0, 1.0, 1.0], ["a", "b", "a"]]
    mutate(cols)
    with pytest.raises(ValueError, match=message):
        compute_gigpo(*cols)


def test_bad_options_are_named():
    cols = [[0], [0], [0], [1.0], ["a"]]
    with pytest.raises(ValueError, match="valid: 'mean_std', 'mean'"):
        compute_gigpo(*cols, norm="std")
    with pytest.raises(ValueError, match="valid: 'trajectory', 'step'"):
        compute_gigpo(*cols, episode_stats="steps")
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\]"):
        compute_gigpo(*cols, gamma=1.5)
    with pytest.raises(ValueError, match=r"similarity threshold must be in \(0, 1\]"):
        compute_gigpo(*cols, similarity=0.0)
    with pytest.raises(TypeError, match="anchors must be hashable"):
        compute_gigpo(*cols[:4], [["a"]])
    with pytest.raises(ValueError, match="'anchor' has 2 entries"):
        compute_gigpo(*cols[:4], ["a", "b"])


# ----------------------------------------------------------------------------- random vs reference

REWARDS = st.sampled_from([0.0, 0.0, 1.0, -0.1, 0.5, 2.0, 0.3])


@st.composite
def batches(draw, text_anchors=False):
    """Random groups of random trajectories with repeated anchors, in shuffled step order."""
    anchor_pool = (["room", "room.", "You see a mug.", "You see a mug!", "Nothing happens."] if text_anchors
                   else [0, 1, 2, "a", ("k", 1)])
    steps = []
    traj_ids = draw(st.lists(st.integers(0, 10_000), min_size=12, max_size=12, unique=True))
    next_traj = 0
    for g in draw(st.lists(st.integers(-5, 50), min_size=1, max_size=3, unique=True)):
        for _ in range(draw(st.integers(1, 4))):
            tr = traj_ids[next_traj]
            next_traj += 1
            for t in range(draw(st.integers(1, 5))):
                steps.append((g, tr, t, draw(REWARDS), draw(st.sampled_from(anchor_pool))))
    return draw(st.permutations(steps))


@settings(max_examples=150, deadline=None)
@given(steps=batches(), gamma=st.sampled_from([0.0, 0.5, 0.95, 1.0]), omega=st.sampled_from([1.0, 0.3]),
       norm=st.sampled_from(["mean_std", "mean"]), stats=st.sampled_from(["trajectory", "step"]))
def test_gigpo_matches_reference(steps, gamma, omega, norm, stats):
    parts = compute_gigpo(*columns(steps), gamma=gamma, omega=omega, norm=norm, episode_stats=stats,
                          return_parts=True)
    total, a_s = ref_advantages(steps, "gigpo", gamma, omega, norm, stats)
    np.testing.assert_allclose(parts.total, total, rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(parts.step, a_s, rtol=1e-9, atol=1e-7)
    assert np.all(np.isfinite(parts.total))


@settings(max_examples=60, deadline=None)
@given(steps=batches(text_anchors=True), threshold=st.sampled_from([0.5, 0.9, 1.0]))
def test_similarity_gigpo_matches_reference(steps, threshold):
    out = compute_gigpo(*columns(steps), similarity=threshold)
    total, _ = ref_advantages(steps, "gigpo", similarity=threshold)
    np.testing.assert_allclose(out, total, rtol=1e-9, atol=1e-7)


@settings(max_examples=80, deadline=None)
@given(steps=batches(), norm=st.sampled_from(["mean_std", "mean"]), stats=st.sampled_from(["trajectory", "step"]))
def test_grpo_and_rloo_match_reference(steps, norm, stats):
    g, tr, t, r, _ = columns(steps)
    np.testing.assert_allclose(compute_grpo(g, tr, t, r, norm=norm, episode_stats=stats),
                               ref_advantages(steps, "grpo", norm=norm, episode_stats=stats)[0], rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(compute_rloo(g, tr, t, r), ref_advantages(steps, "rloo")[0], rtol=1e-9, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(steps=batches(), seed=st.integers(0, 2**31))
def test_step_order_does_not_matter(steps, seed):
    perm = np.random.default_rng(seed).permutation(len(steps))
    shuffled = [steps[i] for i in perm]
    a = compute_gigpo(*columns(steps))
    b = compute_gigpo(*columns(shuffled))
    np.testing.assert_allclose(b, a[perm], rtol=1e-9, atol=1e-9)


def test_long_trajectory_returns_match_recursion():
    # The doubling scan must equal the backward recursion for lengths that are not powers of two.
    rng = np.random.default_rng(0)
    for length in (1, 2, 3, 7, 64, 100, 1000):
        r = rng.normal(size=length)
        parts = compute_gigpo(np.zeros(length, int), np.zeros(length, int), np.arange(length), r,
                              np.arange(length), gamma=0.97, return_parts=True)
        expected, running = np.empty(length), 0.0
        for i in range(length - 1, -1, -1):
            running = r[i] + 0.97 * running
            expected[i] = running
        np.testing.assert_allclose(parts.step_return, expected, rtol=1e-10, atol=1e-12)
