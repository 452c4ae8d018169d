"""The internalization gap: a probe set's skill-guided actions scored under the plain and the skill prompt.

For each probe step (``siri.skills.probe``: the first valid skill-rollout steps of a SIRI run) the log-
probabilities of its action tokens (``action_mask``) are summed, once after the plain prompt and once after
the skill prompt, each followed by the response as it was sampled; then

    int_gap = mean over steps of log p(action | plain) - mean over steps of log p(action | skill).

It starts negative where a skill moved the policy to an action it would not take unprompted, and rises
toward 0 (or past it) as the plain policy absorbs what the skills say. Scoring is in eval mode, without
gradient, at the temperature the update scores at (``rollout.temperature``, 1 for greedy collection), and
changes no state: no random draw, no weight. Every rank of a ``torchrun`` job holds the same probe and
weights and computes the same numbers; only rank 0 logs them.

``siri probe`` scores a saved probe on the checkpoints of any run (a GiGPO run's, for the comparison), with
the weights loaded onto the run's base model as ``Trainer.resume`` does (``siri.rl.trainer.checkpoint_policies``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from siri.config import TrainConfig
from siri.rollout.types import StepRecord

GAP = "siri/int_gap"
LOGP_PLAIN = "siri/int_logp_plain"
LOGP_SKILL = "siri/int_logp_skill"
STEPS = "siri/int_probe_steps"


def action_logprobs(model: Any, records: Sequence[StepRecord], *, pad_id: int, plain: bool,
                    temperature: float = 1.0, micro_batch: int = 8) -> list[float]:
    """Per record: the summed log-prob of its action tokens, after its plain (``plain``) or its skill prompt."""
    from siri.rl.scoring import score_records

    rows = score_records(model, records, pad_id=pad_id, temperature=temperature, plain=plain, micro_batch=micro_batch)
    return [float(sum(lp for lp, m in zip(row, r.action_mask, strict=True) if m))
            for row, r in zip(rows, records, strict=True)]


def internalization_gap(model: Any, records: Sequence[StepRecord], *, pad_id: int, temperature: float = 1.0,
                        micro_batch: int = 8) -> dict[str, float]:
    """The gap metrics of ``records`` under ``model``: ``siri/int_gap``, ``siri/int_logp_plain``,
    ``siri/int_logp_skill`` (means over steps of the summed action log-probs) and ``siri/int_probe_steps``."""
    if not records:
        raise ValueError("an empty probe has no internalization gap")
    kwargs = {"pad_id": pad_id, "temperature": temperature, "micro_batch": micro_batch}
    plain = action_logprobs(model, records, plain=True, **kwargs)
    skill = action_logprobs(model, records, plain=False, **kwargs)
    mean_plain, mean_skill = sum(plain) / len(plain), sum(skill) / len(skill)
    return {GAP: mean_plain - mean_skill, LOGP_PLAIN: mean_plain, LOGP_SKILL: mean_skill, STEPS: len(records)}


def scoring_temperature(cfg: TrainConfig) -> float:
    """The temperature the update scores log-probs at (``siri.rl.update``), so the gap is on the same scale."""
    return cfg.rollout.temperature if cfg.rollout.temperature > 0 else 1.0
