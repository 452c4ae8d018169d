"""Paired-rollout validation of candidate skills: who sees which skill, the utility estimate, the gate.

Within one group every rollout starts from the same initial state (same seed), so the difference
between the rollouts that saw a skill and those that did not is a paired treatment effect with the
task's difficulty cancelled out. One *evaluation* of skill ``g`` is one group that had both arms:

    d = mean R(rollouts of the group shown g alone) - mean R(plain rollouts of the group)

The utility ``U(g)`` is the mean of ``d`` over the ``n`` evaluations so far, ``s`` their sample
standard deviation.

The gate (``Gate``, ``decide``): a repeated Student-t test with Bonferroni alpha spending
-----------------------------------------------------------------------------------------
``SkillBank.update_status`` looks at every skill after every iteration, so a candidate is tested again
after each new evaluation, from ``min_evals`` up to ``max_evals``. A fixed-level interval re-tested
that often promotes a zero-effect skill far more often than its level says (the former normal-z gate:
18-22% at the Qwen presets' settings, 11-40% at the tiny ones'; docs/skill-gate.md). Here the look at ``n``
evaluations gets its own one-sided level ``alpha_n`` and the bounds are Student-t bounds

    LCB, UCB = U -/+ t_{n-1}(1 - alpha_n) * s / sqrt(n)

with the levels of all looks a candidate can have summing to ``alpha`` (``siri.gate_alpha``): half of
``alpha`` goes to the last look (``n = max_evals``, where the test has the most data), the other half
is spread over the earlier looks in proportion to ``n**2``. By the union bound a skill with zero
effect is then promoted with probability at most ``alpha``, whatever looks actually happen (several
evaluations per iteration skip looks; a candidate whose count jumps past ``max_evals`` is decided at
the level of ``max_evals``: it is its last look). Retirement (``UCB <= retire_ucb``) uses the same
bounds, so wrongly retiring a skill that is better than ``retire_ucb`` is bounded by ``alpha`` too
while it is a candidate; an active skill keeps being evaluated, and looks beyond ``max_evals`` get
``alpha * max_evals / (n * (n - 1))`` (a second budget of ``alpha`` over all later looks).

Why this test, on this data: ``d`` is a difference of means of a handful of rollouts whose returns
are mostly 0/1 successes (minus 0.1 per invalid action), or partial scores in [0, 1] on the shop;
more than half of real evaluations are exactly 0. Under "the skill changes nothing" the two arms of
a group are exchangeable, so ``d`` is symmetric about 0, and the t statistic of symmetric data is
well behaved even at small ``n``. The test needs only ``(n, mean, m2)``, gives the bounds that
``siri skills`` shows, and keeps most of the power these budgets allow: at the Qwen presets' settings
it promotes 68-90% of +0.2 skills (docs/skill-gate.md). Anytime-valid betting confidence sequences for
bounded means, an exact sign-flip test with the same spending and a Hoeffding-type self-normalised
bound were tried in prototypes and promoted very few +0.2 skills within 8-16 evaluations.

Its weaknesses, and the guard: the t distribution is exact only for normal ``d``; these ``d`` are
discrete, so its levels are approximate. The seeded simulation in tests/test_skill_validation.py
(``siri.skills.gate_sim``: Bernoulli tasks of spread difficulty, mostly-zero differences, invalid-
action penalties, shop-like partial scores, and an adversarial two-point ``d = +-h``) checks the
false-promotion rate at every preset's settings; benchmarks/bench_gate.py prints it with the power.
Discreteness also makes ``s = 0`` with all-equal positive ``d`` possible (four times +0.25), where a
t interval has zero width and would promote at once. No sound test can promote on that: when ``d``
is symmetric, all of ``n`` non-zero differences share a sign with probability ``2**-n``. So a look
only happens when ``2**-n <= alpha_n``: looks start at ``Gate.first_look`` (7-10 evaluations at the
presets' settings, never before ``min_evals``) and all ``alpha`` is spread over the looks from there
on; before it the bounds are infinite and nothing is decided. Near-ties at a look (e.g. eight times
+0.25 and one 0) can still narrow the t interval more than a sign-flip test would allow; the
adversarial case of the simulation keeps that in view. The Bonferroni sum ignores how strongly
successive looks are correlated, so the real rate stays below ``alpha`` (0.1-4.5% at 0.05 simulated),
at some cost in power; power is low anyway for small effects (+0.1) at these sample sizes.

A candidate is promoted when ``LCB > promote_lcb``, retired when ``UCB <= retire_ucb`` (reliably no
better than the threshold; all-zero differences give ``UCB = 0``: the skill changes nothing), and
retired as inconclusive at ``max_evals`` evaluations without promotion. An active skill whose UCB
falls to ``retire_ucb`` or below is retired too. ``gate=False`` (ablation) makes every candidate
active at once and never retires on utility.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from siri.rollout.types import Trajectory

CANDIDATE, ACTIVE, RETIRED = "candidate", "active", "retired"
STATUSES = (CANDIDATE, ACTIVE, RETIRED)


@dataclass
class UtilityStats:
    """Running mean and sum of squared deviations (Welford) of paired differences.

    Attributes:
        n: number of paired evaluations.
        mean: mean paired difference, the utility estimate U.
        m2: sum of squared deviations from the mean (sample variance = m2 / (n - 1)).
        last_update: iteration of the latest evaluation (-1: never evaluated).
    """

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    last_update: int = -1

    def add(self, diff: float, iteration: int) -> None:
        if not math.isfinite(diff):
            raise ValueError(f"paired difference must be finite, got {diff}")
        self.n += 1
        delta = diff - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (diff - self.mean)
        self.last_update = iteration

    @property
    def std(self) -> float:
        """Sample standard deviation of the paired differences (0 with fewer than two)."""
        return math.sqrt(max(self.m2, 0.0) / (self.n - 1)) if self.n > 1 else 0.0

    def half_width(self, critical: float) -> float:
        """``critical * s / sqrt(n)``; infinite before two evaluations or for an infinite ``critical``."""
        if self.n < 2 or math.isinf(critical):
            return math.inf
        return critical * self.std / math.sqrt(self.n)

    def bounds(self, critical: float) -> tuple[float, float]:
        """(LCB, UCB) of the utility for a critical value (the gate's: ``Gate.critical``)."""
        h = self.half_width(critical)
        return self.mean - h, self.mean + h


# --- Student-t tail and quantile (scipy.special) -------------------------------------------------------


def t_sf(t: float, df: int) -> float:
    """``P(T > t)`` for Student's t with ``df`` degrees of freedom."""
    from scipy.special import stdtr

    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    return float(stdtr(df, -t))


@functools.lru_cache(maxsize=4096)
def t_quantile(q: float, df: int) -> float:
    """The ``q`` quantile of Student's t (``q`` in [0.5, 1)): the ``t`` with ``P(T > t) = 1 - q``."""
    from scipy.special import stdtrit

    if not 0.5 <= q < 1.0:
        raise ValueError(f"q must be in [0.5, 1), got {q}")
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    return float(stdtrit(df, q))


# --- the gate ------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _window(alpha: float, min_evals: int, max_evals: int) -> tuple[int, tuple[float, ...]]:
    """(first look, levels of the looks first..max_evals): see the module docstring."""
    for first in range(min_evals, max_evals + 1):
        ns = range(first, max_evals + 1)
        total = sum(n * n for n in ns)
        levels = [0.5 * alpha * n * n / total for n in ns]
        levels[-1] += 0.5 * alpha
        if levels[0] >= 2.0**-first:  # 2**-n grows and levels[0] shrinks as `first` falls: a suffix works
            return first, tuple(levels)
    need = math.ceil(math.log2(1.0 / alpha))
    raise ValueError(
        f"max_evals={max_evals} is too few for gate_alpha={alpha:g}: with n paired differences the gate can "
        f"only be sure at level 2**-n (all n share a sign by chance with that probability), so no look could "
        f"ever promote; use max_evals >= {need} or a larger gate_alpha"
    )


@dataclass(frozen=True)
class Gate:
    """The validation rule, whole: its looks, their levels, the bounds and the thresholds they are held to.

    One object carries every setting of the decision (``SiriPipeline`` builds it from ``siri.*``), so
    the bank, the simulation and ``siri skills`` decide and display with exactly the same rule.

    Args:
        alpha: the false-promotion probability it guarantees (one-sided; ``siri.gate_alpha``).
        min_evals: no look before this many evaluations.
        max_evals: the last look of a candidate (retired as inconclusive there).
        promote_lcb: promote a candidate when its LCB exceeds this (``siri.promote_lcb``).
        retire_ucb: retire a skill when its UCB falls to this or below (``siri.retire_ucb``).
        enabled: ``False`` is the no-validation ablation: every candidate is active at once and nothing
            is retired on utility (``siri.validation_gate``).
    """

    alpha: float = 0.05
    min_evals: int = 4
    max_evals: int = 16
    promote_lcb: float = 0.0
    retire_ucb: float = 0.0
    enabled: bool = True

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 0.5:
            raise ValueError(f"gate_alpha must be in (0, 0.5] (a one-sided level), got {self.alpha}")
        if self.min_evals < 2 or self.max_evals < self.min_evals:
            raise ValueError(
                "need 2 <= min_evals <= max_evals, "
                f"got min_evals={self.min_evals}, max_evals={self.max_evals}"
            )
        _window(self.alpha, self.min_evals, self.max_evals)  # raises when no look could ever promote

    @property
    def first_look(self) -> int:
        """The smallest number of evaluations at which the gate decides anything."""
        return _window(self.alpha, self.min_evals, self.max_evals)[0]

    def level(self, n: int, *, candidate: bool = False) -> float:
        """One-sided error level spent at a look with ``n`` evaluations (0: no look, bounds infinite).

        ``candidate``: a candidate's look at ``n >= max_evals`` is its last one and gets the level of
        ``max_evals``; other skills' looks beyond ``max_evals`` get ``alpha * max_evals / (n * (n - 1))``.
        """
        first, levels = _window(self.alpha, self.min_evals, self.max_evals)
        if n < first:
            return 0.0
        if candidate or n <= self.max_evals:
            return levels[min(n, self.max_evals) - first]
        level = self.alpha * self.max_evals / (n * (n - 1))
        return level if level >= 2.0**-n else 0.0

    def critical(self, n: int, *, candidate: bool = False) -> float:
        """The t critical value of the look at ``n`` evaluations (infinite where there is no look)."""
        level = self.level(n, candidate=candidate)
        return t_quantile(1.0 - level, n - 1) if level > 0.0 else math.inf

    def bounds(self, stats: UtilityStats, *, candidate: bool = False) -> tuple[float, float]:
        """(LCB, UCB) of the utility at the current look; (-inf, inf) where nothing can be decided."""
        return stats.bounds(self.critical(stats.n, candidate=candidate))


def paired_difference(with_returns: Sequence[float], without_returns: Sequence[float]) -> float:
    """``mean(with) - mean(without)`` of one group; both arms must be non-empty."""
    if not with_returns or not without_returns:
        raise ValueError(
            "a paired evaluation needs at least one rollout with the skill and one without; "
            f"got {len(with_returns)} with and {len(without_returns)} without"
        )
    return sum(with_returns) / len(with_returns) - sum(without_returns) / len(without_returns)


def decide(status: str, stats: UtilityStats, gate: Gate | None = None) -> tuple[str, str]:
    """The next status of one skill under ``gate`` (default ``Gate()``) and the reason ("" when unchanged)."""
    test = gate or Gate()
    promote_lcb, retire_ucb, max_evals = test.promote_lcb, test.retire_ucb, test.max_evals
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; expected one of {STATUSES}")
    if status == RETIRED:
        return RETIRED, ""
    if not test.enabled:
        return (
            (ACTIVE, "validation gate off: every candidate is active")
            if status == CANDIDATE
            else (status, "")
        )
    candidate = status == CANDIDATE
    if stats.n < test.first_look:
        return status, ""
    lcb, ucb = test.bounds(stats, candidate=candidate)
    level = test.level(stats.n, candidate=candidate)
    summary = (
        f"U={stats.mean:+.3f}, bounds [{lcb:+.3f}, {ucb:+.3f}] at level {level:.2g} "
        f"over {stats.n} evaluations"
    )
    if ucb <= retire_ucb:
        return RETIRED, f"UCB <= {retire_ucb:g}: reliably not useful ({summary})"
    if candidate and lcb > promote_lcb:
        return ACTIVE, f"LCB > {promote_lcb:g}: reliably useful ({summary})"
    if candidate and stats.n >= max_evals:
        return RETIRED, f"no significant benefit after {max_evals} evaluations ({summary})"
    return status, ""


def assign_validation(
    groups: Sequence[int],
    candidates: Sequence[str],
    share: float = 0.5,
    seed: int = 0,
    per_group: int = 1,
    group_types: Sequence[str] | None = None,
    candidate_types: Mapping[str, str] | None = None,
    applies: Callable[[int, str], bool] | None = None,
) -> list[list[str | None]]:
    """Which rollout of each group shows which candidate skill (``None``: the plain prompt).

    ``groups`` holds the size N of each group. In each group ``round(share * N)`` rollouts (at least
    one, and at least one plain rollout left) show a candidate, the rest are plain; the shown rollouts
    are split evenly over up to ``per_group`` candidates, so each candidate of the group is paired with
    the same plain arm. Candidates are dealt to groups round-robin in the given order (put the least
    evaluated first, e.g. ``SkillBank.validation_queue()``), so with fewer group slots than candidates
    the first ones are tested. With ``group_types`` (the task type of each group) and
    ``candidate_types`` (skill id -> task type), a group only gets candidates of its own task type or
    "general". ``applies(group, candidate)`` narrows that further (a placement skill applies to tasks
    that name its object). Which positions of a group show skills is shuffled with ``random.Random(seed)``:
    the plan is a pure function of its arguments. Groups of size < 2 stay plain (no pair possible).
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    if per_group < 1:
        raise ValueError(f"per_group must be >= 1, got {per_group}")
    if len(set(candidates)) != len(candidates):
        raise ValueError("candidates must be distinct skill ids")
    if group_types is not None:
        if len(group_types) != len(groups):
            raise ValueError(f"got {len(group_types)} group_types for {len(groups)} groups")
        missing = [c for c in candidates if candidate_types is None or c not in candidate_types]
        if missing:
            raise ValueError(f"group_types needs candidate_types for every candidate; missing {missing}")
    rng = random.Random(seed)
    plan: list[list[str | None]] = []
    next_index: dict[str, int] = {}  # round-robin position per task type
    for g, size in enumerate(groups):
        if size < 0:
            raise ValueError(f"group sizes must be >= 0, got {size}")
        row: list[str | None] = [None] * size
        key = group_types[g] if group_types is not None else ""
        typed = list(candidates)
        if group_types is not None and candidate_types is not None:
            typed = [c for c in candidates if candidate_types[c] in (key, "general")]
        eligible = [c for c in typed if applies is None or applies(g, c)]
        n_shown = min(max(round(share * size), 1), size - 1) if share > 0 else 0
        if eligible and size >= 2 and n_shown > 0:
            k = min(per_group, n_shown, len(eligible))
            # The task type's rotation, skipping what does not apply here (with everything applying: plain
            # round-robin over the type's candidates).
            start = next_index.get(key, 0)
            chosen = [c for c in typed[start:] + typed[:start] if c in eligible][:k]
            next_index[key] = (typed.index(chosen[-1]) + 1) % len(typed)
            positions = rng.sample(range(size), n_shown)
            for j, pos in enumerate(positions):
                row[pos] = chosen[j % k]
        plan.append(row)
    return plan


def trajectory_return(traj: Trajectory) -> float:
    """The default outcome of a rollout for utility: its return (rewards with invalid-action penalties)."""
    return traj.ret


def discounted_return(traj: Trajectory, gamma: float) -> float:
    """``sum_t gamma**t r_t``: the outcome ``siri.utility=discounted`` pairs. A win in 6 steps is worth more
    than one in 16, so a skill that saves steps (a placement skill: the object found sooner) has a utility
    even where both arms win; with the plain return such pairs come out exactly 0."""
    return float(sum(gamma**t * step.reward for t, step in enumerate(traj.steps)))


def collect_paired(
    trajectories: Sequence[Trajectory],
    value: Callable[[Trajectory], float] = trajectory_return,
) -> dict[str, list[tuple[list[float], list[float]]]]:
    """Paired evaluations in a batch: ``{skill_id: [(with_returns, without_returns) per group]}``.

    A rollout counts for skill ``g`` when it was shown ``g`` alone (rollouts that saw several skills
    confound their effects and are skipped); the plain rollouts of the same group are the other arm.
    Groups missing either arm give no evaluation. Feed each pair to ``SkillBank.record_paired``.
    """
    by_group: dict[int, list[Trajectory]] = {}
    for traj in trajectories:
        by_group.setdefault(traj.group, []).append(traj)
    out: dict[str, list[tuple[list[float], list[float]]]] = {}
    for group in sorted(by_group):
        trajs = by_group[group]
        plain = [value(t) for t in trajs if not t.skill_ids]
        if not plain:
            continue
        shown: dict[str, list[float]] = {}
        for t in trajs:
            if len(t.skill_ids) == 1:
                shown.setdefault(t.skill_ids[0], []).append(value(t))
        for skill_id in sorted(shown):
            out.setdefault(skill_id, []).append((shown[skill_id], plain))
    return out
