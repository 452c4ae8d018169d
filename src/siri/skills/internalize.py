"""Internalization: distil beneficial skill-guided actions into the plain-prompt policy.

A skill-augmented rollout step chose its response while the prompt showed skills. We re-score those
response tokens under the *plain* prompt (skills block removed) and raise their log-probability,
weighted per step by

    w = 1[skill used] * 1[U(skill) > 0] * clip(A, 0, c)            (mode "advantage", the default)

where U is the paired utility of the skill(s) shown and A the step's GiGPO advantage (computed with
plain and skill rollouts in the same group). Ablations: mode "utility" drops the advantage factor
(w = 1[used] * 1[U > 0]); mode "uniform" keeps every used-skill step (w = 1[used]). The loss itself,
``L_int = - sum_{b,t} w_b * rho_bt * logp_bt * mask_bt / normalizer``, lives beside the other losses
(``siri.rl.losses.internalization_loss``); this module decides the weights and what they weigh.

Only valid actions of skills that are active with U > 0 get a weight (``SiriPipeline.internalization``);
a skill step is always scored under its plain prompt, and one without it is an error, never a silent
re-score under the skill prompt.

What the plain prompt conditions on: the re-scored sequence is ``plain prompt + the whole sampled
response``, and only the action tokens carry loss. In ``choose`` mode the response *is* the action.
In ``generate`` mode the action tokens are scored after the ``<think>`` text that was sampled while the
skill was visible, so that reasoning (which may quote the skill) is part of the context being
distilled: the policy learns "after this reasoning, take this action" under the plain prompt, not
"take this action from the plain prompt alone". ``action_tokens_only=False`` (ablation) distils the
reasoning tokens as well, which teaches the policy to produce such reasoning itself.
``siri.distill_context=action`` (``without_reasoning``) drops the skill-time reasoning instead: the
response is cut to start at ``<action>``, so the plain prompt alone must predict the action.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from siri.rollout.collector import decoded_ends
from siri.rollout.types import StepRecord

WEIGHT_MODES = ("advantage", "utility", "uniform")


def skill_utility(skill_ids: Sequence[str], utilities: Mapping[str, float]) -> float:
    """Utility of a step's skills: the mean U of the skills shown (0.0 for a plain step)."""
    if not skill_ids:
        return 0.0
    missing = [s for s in skill_ids if s not in utilities]
    if missing:
        raise KeyError(
            f"no utility for skills {missing}; pass every shown skill's utility (SkillBank.utility)"
        )
    return sum(utilities[s] for s in skill_ids) / len(skill_ids)


def internalization_weights(
    used: torch.Tensor,
    utility: torch.Tensor,
    advantages: torch.Tensor,
    clip_c: float = 1.0,
    mode: str = "advantage",
) -> torch.Tensor:
    """Per-step weights w (shape [B]) from per-step ``used`` (bool), skill ``utility`` and ``advantages``."""
    if mode not in WEIGHT_MODES:
        raise ValueError(f"unknown weighting mode {mode!r}; expected one of {WEIGHT_MODES}")
    if clip_c <= 0:
        raise ValueError(f"clip_c must be > 0, got {clip_c}")
    if not (used.shape == utility.shape == advantages.shape) or used.dim() != 1:
        raise ValueError(
            f"used, utility, advantages must be 1-D of equal length, got shapes "
            f"{tuple(used.shape)}, {tuple(utility.shape)}, {tuple(advantages.shape)}"
        )
    w = used.to(advantages.dtype)
    if mode in ("advantage", "utility"):
        w = w * (utility > 0).to(w.dtype)
    if mode == "advantage":
        w = w * advantages.detach().clamp(0.0, clip_c)
    return w


def step_weights(
    steps: Sequence[StepRecord],
    advantages: Sequence[float],
    utilities: Mapping[str, float],
    clip_c: float = 1.0,
    mode: str = "advantage",
) -> torch.Tensor:
    """``internalization_weights`` for a list of step records (one advantage per step).

    ``utilities`` maps every skill id shown in ``steps`` to its current utility (``SkillBank.utility``);
    a step's utility is the mean over the skills its prompt showed.
    """
    if len(advantages) != len(steps):
        raise ValueError(f"got {len(advantages)} advantages for {len(steps)} steps")
    used = torch.tensor([s.uses_skills for s in steps], dtype=torch.bool)
    utility = torch.tensor([skill_utility(s.skill_ids, utilities) for s in steps], dtype=torch.float32)
    return internalization_weights(
        used, utility, torch.tensor(list(advantages), dtype=torch.float32), clip_c, mode
    )


def without_reasoning(record: StepRecord, tokenizer: Any) -> StepRecord:
    """``record`` with its response cut to start at the token where ``<action>`` begins.

    The first kept token may carry a few characters before the tag (a BPE token such as " <"); the ids
    stay the sampled ones, so nothing is re-tokenized. A response without reasoning before its action
    tag (choose mode, or no tag at all) is returned unchanged.
    """
    ids = list(record.response_ids)
    text, ends = decoded_ends(tokenizer, ids)
    open_at = text.find("<action>")
    if open_at <= 0:
        return record
    start = next(k for k in range(len(ids)) if ends[k + 1] > open_at)
    if start == 0:
        return record
    return dataclasses.replace(record, response_ids=ids[start:], old_logprobs=list(record.old_logprobs[start:]),
                               action_mask=list(record.action_mask[start:]))


def lambda_schedule(k: int, k0: int, ramp_iters: int, lambda_max: float) -> float:
    """lambda(k): 0 before iteration ``k0``, then rising linearly to ``lambda_max``.

    lambda(k) = lambda_max * min(1, (k - k0 + 1) / ramp_iters) for k >= k0, so the first
    internalization iteration already trains (with lambda_max / ramp_iters) and lambda_max is reached
    at k0 + ramp_iters - 1; ``ramp_iters <= 1`` jumps straight to lambda_max.
    """
    if lambda_max < 0 or not math.isfinite(lambda_max):
        raise ValueError(f"lambda_max must be a finite number >= 0, got {lambda_max}")
    if k < k0:
        return 0.0
    if ramp_iters <= 1:
        return float(lambda_max)
    return float(lambda_max) * min(1.0, (k - k0 + 1) / ramp_iters)
