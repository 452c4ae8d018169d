"""Paired-rollout validation of candidate skills: who sees which skill, the utility estimate, the decision.

Within one group every rollout starts from the same initial state (same seed), so the difference
between the rollouts that saw a skill and those that did not is a paired treatment effect with the
task's difficulty cancelled out. One *evaluation* of skill ``g`` is one group that had both arms:

    d = mean R(rollouts of the group shown g alone) - mean R(plain rollouts of the group)

The utility ``U(g)`` is the mean of ``d`` over all evaluations so far. Its uncertainty comes from the
spread of the ``d`` themselves (sample standard deviation ``s`` over ``n`` evaluations):

    LCB = U - z * s / sqrt(n),   UCB = U + z * s / sqrt(n)

a normal-approximation interval (default ``z = 1.645``: one-sided 95%). No decision is taken before
``min_evals`` evaluations (``s`` is meaningless for tiny ``n``). A candidate is promoted when
``LCB > promote_lcb``, retired when ``UCB <= retire_ucb`` (reliably no better than the threshold), and
retired as inconclusive after ``max_evals`` evaluations without promotion. An active skill whose
``UCB`` falls to ``retire_ucb`` or below is retired too. ``gate=False`` (ablation) makes every
candidate active at once and never retires on utility.
"""

from __future__ import annotations

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

    def half_width(self, z: float) -> float:
        """``z * s / sqrt(n)``; infinite before two evaluations (nothing is known yet)."""
        return z * self.std / math.sqrt(self.n) if self.n > 1 else math.inf

    def bounds(self, z: float) -> tuple[float, float]:
        """(LCB, UCB) of the utility."""
        h = self.half_width(z)
        return self.mean - h, self.mean + h


def paired_difference(with_returns: Sequence[float], without_returns: Sequence[float]) -> float:
    """``mean(with) - mean(without)`` of one group; both arms must be non-empty."""
    if not with_returns or not without_returns:
        raise ValueError(
            "a paired evaluation needs at least one rollout with the skill and one without; "
            f"got {len(with_returns)} with and {len(without_returns)} without"
        )
    return sum(with_returns) / len(with_returns) - sum(without_returns) / len(without_returns)


def decide(
    status: str,
    stats: UtilityStats,
    *,
    promote_lcb: float = 0.0,
    retire_ucb: float = 0.0,
    min_evals: int = 4,
    max_evals: int = 16,
    z: float = 1.645,
    gate: bool = True,
) -> tuple[str, str]:
    """The next status of one skill and the reason ("" when unchanged). See the module docstring."""
    if min_evals < 2 or max_evals < min_evals:
        raise ValueError(
            f"need 2 <= min_evals <= max_evals, got min_evals={min_evals}, max_evals={max_evals}"
        )
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; expected one of {STATUSES}")
    if status == RETIRED:
        return RETIRED, ""
    if not gate:
        return (
            (ACTIVE, "validation gate off: every candidate is active")
            if status == CANDIDATE
            else (status, "")
        )
    if stats.n < min_evals:
        return status, ""
    lcb, ucb = stats.bounds(z)
    summary = f"U={stats.mean:+.3f}, CI=[{lcb:+.3f}, {ucb:+.3f}] over {stats.n} evaluations"
    if ucb <= retire_ucb:
        return RETIRED, f"UCB <= {retire_ucb:g}: reliably not useful ({summary})"
    if status == CANDIDATE and lcb > promote_lcb:
        return ACTIVE, f"LCB > {promote_lcb:g}: reliably useful ({summary})"
    if status == CANDIDATE and stats.n >= max_evals:
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
) -> list[list[str | None]]:
    """Which rollout of each group shows which candidate skill (``None``: the plain prompt).

    ``groups`` holds the size N of each group. In each group ``round(share * N)`` rollouts (at least
    one, and at least one plain rollout left) show a candidate, the rest are plain; the shown rollouts
    are split evenly over up to ``per_group`` candidates, so each candidate of the group is paired with
    the same plain arm. Candidates are dealt to groups round-robin in the given order (put the least
    evaluated first, e.g. ``SkillBank.validation_queue()``), so with fewer group slots than candidates
    the first ones are tested. With ``group_types`` (the task type of each group) and
    ``candidate_types`` (skill id -> task type), a group only gets candidates of its own task type or
    "general". Which positions of a group show skills is shuffled with ``random.Random(seed)``: the
    plan is a pure function of its arguments. Groups of size < 2 stay plain (no pair possible).
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
        eligible = list(candidates)
        if group_types is not None and candidate_types is not None:
            eligible = [c for c in candidates if candidate_types[c] in (key, "general")]
        n_shown = min(max(round(share * size), 1), size - 1) if share > 0 else 0
        if eligible and size >= 2 and n_shown > 0:
            k = min(per_group, n_shown, len(eligible))
            start = next_index.get(key, 0)
            chosen = [eligible[(start + j) % len(eligible)] for j in range(k)]
            next_index[key] = (start + k) % len(eligible)
            positions = rng.sample(range(size), n_shown)
            for j, pos in enumerate(positions):
                row[pos] = chosen[j % k]
        plan.append(row)
    return plan


def trajectory_return(traj: Trajectory) -> float:
    """The default outcome of a rollout for utility: its return (rewards with invalid-action penalties)."""
    return traj.ret


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
