"""Dynamic sampling (DAPO; verl-agent's ``gigpo_dynamic``): a batch made of groups that carry a signal.

A group whose advantages are all exactly zero (every GRPO rollout won, or every one failed) adds nothing
to the policy-gradient term, only to the KL and entropy terms, and shrinks the effective batch as the
policy gets good (or stays bad). With ``rollout.dynamic_sampling`` the trainer keeps collecting new groups
(new tasks) until ``num_groups`` informative ones are in hand, at most ``max_sampling_rounds`` collections
per iteration; a batch still short then is filled up with the first round's other groups, so the batch
never shrinks below what it would be without dynamic sampling.

Informative means: some advantage of the group, as the configured estimator computes it, is nonzero. For
GRPO and RLOO that is a group whose returns differ. For GiGPO it is wider: a group whose episodes all
return the same can still hold step groups (one anchor state, reached by episodes that then went on
differently) with different discounted returns, hence nonzero step advantages; such a group is kept, as
it carries GiGPO's step-level signal. Episode and step groups never span two groups, so a group's
advantages do not depend on the other groups of the batch: judging each round on its own and computing
the advantages again on the assembled batch gives the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from siri.rollout.types import StepRecord, Trajectory


def informative_groups(records: Sequence[StepRecord], advantages: np.ndarray) -> set[int]:
    """The group ids among ``records`` with at least one nonzero advantage (``advantages[i]`` is record i's)."""
    return {r.group for r, a in zip(records, advantages, strict=True) if a != 0.0}


def renumber(trajectories: Sequence[Trajectory], traj_offset: int) -> None:
    """Shift the trajectory ids of one collection (in place, steps too) past those of earlier collections:
    advantages group steps by trajectory id, which each collection numbers from 0."""
    for t in trajectories:
        t.traj += traj_offset
        for step in t.steps:
            step.traj += traj_offset


def assemble(rounds: Sequence[Sequence[Trajectory]], informative: Sequence[set[int]],
             target: int) -> tuple[list[Trajectory], dict[str, float]]:
    """The batch: the first ``target`` informative groups in the order collected, then, if fewer were found,
    the first round's other groups up to ``target``; and what happened, as metrics."""
    order = [list(dict.fromkeys(t.group for t in trajs)) for trajs in rounds]  # groups in collection order
    keep = [g for groups, found in zip(order, informative, strict=True) for g in groups if g in found][:target]
    filled = [g for g in order[0] if g not in informative[0]][: max(0, target - len(keep))]
    kept = set(keep) | set(filled)
    batch = [t for trajs in rounds for t in trajs if t.group in kept]
    collected = sum(len(groups) for groups in order)
    return batch, {"sampling/rounds": float(len(rounds)), "sampling/groups_collected": float(collected),
                   "sampling/informative_groups": float(len(keep)), "sampling/filled_groups": float(len(filled)),
                   "sampling/dropped_groups": float(collected - len(kept)),
                   "sampling/first_round_informative": float(len(informative[0]))}
