"""The policy update: PPO epochs over one iteration's steps, policy loss + lambda * internalization loss.

Read ``update_policy`` top to bottom:

1. The batch's two kinds of steps: plain-prompt steps get the PPO clipped loss (+ ``kl_coef`` * KL to the
   reference policy, - ``entropy_coef`` * entropy); weighted skill-prompt steps get ``lambda`` * the
   internalization loss, their sampled tokens scored under the plain prompt (SIRI).
2. Old log-probs (unless the update is on-policy) and reference log-probs (``kl_coef > 0``), no gradient.
3. ``ppo_epochs`` x ``mini_batches`` optimizer steps. Each mini-batch is cut into micro-batches of
   ``micro_batch_size`` steps of similar length; every loss is divided by the whole *mini-batch's* count
   (``normalizer``), so the micro-batch gradients add up exactly to the mini-batch gradient and
   micro-batching changes memory, never the numbers.
4. Statistics: losses summed over micro-batches and reported per mini-batch, the rest averaged.

Under torchrun every rank walks the same mini-batches (same seed) but forwards only the steps of the
groups it owns; one gradient all-reduce per optimizer step makes the sum the single-process gradient.
With ``train.strategy=fsdp`` (``sharding``) the old and reference log-probs are scored on the gathered
model, the epochs run sharded, and ranks pad their micro-batches to the same count with zero-gradient
passes; FSDP's reduce-scatter then does the sum (``siri.rl.fsdp``).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from siri.config import TrainConfig
from siri.models.policy import Policy
from siri.rl.distributed import Dist
from siri.rl.fsdp import ShardedModel, lockstep, zero_pass
from siri.rollout.types import StepRecord

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True, kw_only=True)
class UpdateBatch:
    """Everything one update trains on: an iteration's steps, which loss each gets, and the update's seed.

    Attributes:
        records: every step of the iteration (plain and skill rollouts alike), in collection order.
        advantages: [len(records)] one advantage per record (``siri.rl.advantages``).
        policy_steps: indices into ``records`` trained with the PPO loss: the plain-prompt steps.
        internalized: (index into ``records``, weight w >= 0) of the skill-prompt steps whose tokens are
            distilled under the plain prompt (``SiriPipeline.internalization``); empty without SIRI.
        lam: lambda(k), the internalization loss's coefficient; 0 leaves it out.
        seed: seeds the mini-batch permutations (the same on every rank).
    """

    records: Sequence[StepRecord]
    advantages: np.ndarray
    policy_steps: Sequence[int]
    internalized: Sequence[tuple[int, float]] = ()
    lam: float = 0.0
    seed: int


def update_policy(batch: UpdateBatch, cfg: TrainConfig, policy: Policy, optimizer: torch.optim.Optimizer,
                  dist: Dist, sharding: ShardedModel | None = None) -> dict[str, float]:
    """Run the PPO epochs of ``cfg.optim`` over ``batch``, stepping ``optimizer``; return the update's stats.

    ``sharding``: the policy's model is FSDP-sharded (``train.strategy=fsdp``); it is gathered on return."""
    import torch  # here, not at the top: importing the trainer (and the CLI) stays free of torch

    from siri.rl.losses import actor_loss, internalization_loss
    from siri.rl.scoring import response_logprobs

    algo, optim = cfg.algo, cfg.optim
    model = policy.model
    params = [p for group in optimizer.param_groups for p in group["params"]]  # (sharded: this rank's shards)
    pad = policy.pad_id
    temperature = cfg.rollout.temperature if cfg.rollout.temperature > 0 else 1.0
    mb_size = optim.micro_batch_size

    # 1. The two kinds of steps.
    policy_records = [batch.records[i] for i in batch.policy_steps]
    policy_adv = [float(batch.advantages[i]) for i in batch.policy_steps]
    int_records = [batch.records[i] for i, _ in batch.internalized]
    if cfg.siri.distill_context == "action" and cfg.model.action_mode == "generate":
        from siri.skills.internalize import without_reasoning

        int_records = [without_reasoning(r, policy.tokenizer) for r in int_records]
    int_weights = [w for _, w in batch.internalized]
    if not policy_records and not int_records:
        return {}
    # Under torchrun each rank scores and back-propagates only its own groups' steps; normalizers
    # and mini-batches are those of the whole batch, so the summed gradient is the single-process one.
    own_p = [dist.owns(r.group) for r in policy_records]
    own_i = [dist.owns(r.group) for r in int_records]
    # A step with advantage 0 has a policy loss of exactly 0 whatever its log-probs, so with no KL or
    # entropy term its forward/backward would add only zeros to the gradient: skip it, keep its tokens
    # in the normalizer. Sparse rewards make whole groups fail together, so this is often most steps.
    skip_zero = optim.skip_zero_advantage and algo.kl_coef == 0 and algo.entropy_coef == 0
    scored_p = [own and not (skip_zero and a == 0.0) for own, a in zip(own_p, policy_adv, strict=True)]

    # 2. Old log-probs: with one optimizer step per batch the update starts at the sampling policy, so
    # old = logp.detach() is exact and saves a forward pass; otherwise score before the first step.
    on_policy = optim.ppo_epochs * optim.mini_batches == 1
    old = [] if on_policy else _score_owned(model, policy_records, scored_p, pad_id=pad, temperature=temperature,
                                            micro_batch=mb_size)
    ref: list[list[float]] = []
    if algo.kl_coef > 0 and policy_records:
        with policy.reference() as reference:
            ref = _score_owned(reference, policy_records, own_p, pad_id=pad, temperature=temperature,
                               micro_batch=mb_size)

    # 3. The epochs, mini-batches (one optimizer step each) and micro-batches (one backward each).
    # Sharded (FSDP), every rank runs as many micro-batches as the busiest one: None stands for a zero pass.
    steps = sharding.sharded() if sharding is not None else contextlib.nullcontext()
    paced: Callable[[list[list[int]]], Sequence[list[int] | None]] = (
        (lambda chunks: lockstep(chunks, dist)) if sharding is not None else list)
    device = next(model.parameters()).device
    rng = np.random.default_rng(batch.seed)
    stats: dict[str, list[float]] = defaultdict(list)
    model.train()
    n_policy, n_int = len(policy_records), len(int_records)
    with steps:
        for _epoch in range(optim.ppo_epochs):
            order_p = rng.permutation(n_policy)
            order_i = rng.permutation(n_int)
            for mb in range(optim.mini_batches):
                pidx = order_p[mb::optim.mini_batches]  # this mini-batch's policy steps (all ranks')
                iidx = order_i[mb::optim.mini_batches]  # and internalized steps
                optimizer.zero_grad(set_to_none=True)
                p_norm = _normalizer([policy_records[i] for i in pidx], algo.agg)
                i_norm = max(1.0, float(sum(_int_mask_len(int_records[i], cfg) for i in iidx if int_weights[i] > 0)))
                owned = [i for i in pidx if own_p[i]]
                live = [i for i in owned if scored_p[i]]
                stats["scored_steps"].append(float(len(live)))
                if owned and not live:
                    stats["loss/policy"].append(0.0)  # every step skipped: the loss is exactly 0
                for chunk in paced(_chunks(by_length(live, policy_records), mb_size)):
                    if chunk is None:
                        zero_pass(model, pad, device)
                        continue
                    micro = [policy_records[i] for i in chunk]
                    # [b, T] each: b steps, T the longest response among them (responses left-aligned)
                    logp, mask, entropy = response_logprobs(model, micro, pad_id=pad, temperature=temperature,
                                                            with_entropy=algo.entropy_coef > 0)
                    old_t = logp.detach() if on_policy else _pad([old[i] for i in chunk], logp.shape[1])
                    ref_t = _pad([ref[i] for i in chunk], logp.shape[1]) if ref else None
                    adv_t = torch.tensor([policy_adv[i] for i in chunk], dtype=logp.dtype)  # [b]
                    loss, s = actor_loss(logp, old_t, adv_t, mask, ref_logprobs=ref_t, kl_coef=algo.kl_coef,
                                         entropy=entropy, entropy_coef=algo.entropy_coef, clip_low=algo.clip,
                                         clip_high=algo.clip_high, agg=algo.agg, normalizer=p_norm)
                    loss.backward()
                    stats["loss/policy"].append(float(loss.detach()))
                    for key in ("clip_frac", "kl", "entropy", "approx_kl", "ratio_max"):
                        if key in s:
                            stats[key].append(s[key])
                if batch.lam > 0:
                    # Internalization: the action tokens (default) or whole response (ablation) sampled
                    # under the skill prompt, scored under the plain prompt.
                    for chunk in paced(_chunks(by_length([i for i in iidx if own_i[i]], int_records), mb_size)):
                        if chunk is None:
                            zero_pass(model, pad, device)
                            continue
                        micro = [int_records[i] for i in chunk]
                        logp, rmask, _ = response_logprobs(model, micro, pad_id=pad, temperature=temperature, plain=True)
                        amask = _pad([[float(x) for x in r.action_mask] for r in micro], logp.shape[1])  # [b, T]
                        mask = rmask if not cfg.siri.action_tokens_only else amask * rmask
                        weights = torch.tensor([int_weights[i] for i in chunk], dtype=logp.dtype)  # [b]
                        loss = internalization_loss(logp, mask, weights, normalizer=i_norm)
                        (batch.lam * loss).backward()
                        stats["loss/int"].append(float(loss.detach()))
                skipped = len(owned) - len(live)
                if sharding is not None:  # every rank's gradients must be set alike (clipping is a collective)
                    skipped = dist.max_count(skipped)
                if skipped:
                    # The skipped steps' gradient: zeros, not None, so that AdamW steps exactly as it would
                    # have (momentum and weight decay act on zero gradients, but skip None ones).
                    for param in params:
                        if param.grad is None:
                            param.grad = torch.zeros_like(param)
                if sharding is None:
                    dist.all_reduce_grads(params)  # (sharded: FSDP's reduce-scatter has summed them)
                if optim.grad_clip > 0:
                    grad_norm = torch.nn.utils.clip_grad_norm_(params, optim.grad_clip)
                    stats["grad_norm"].append(float(grad_norm))
                optimizer.step()

    # 4. Statistics.
    if dist.enabled:  # every rank's micro-batch stats, as if one process had run them all
        merged: dict[str, list[float]] = defaultdict(list)
        for part in dist.all_gather([dict(stats)]):
            for k, v in part.items():
                merged[k].extend(v)
        stats = merged
    scored = float(np.sum(stats.pop("scored_steps", [])))
    out = {k: float(np.sum(v)) if k.startswith("loss/") else float(np.mean(v)) for k, v in stats.items()}
    # loss/* were summed over micro-batches (each is its share of the batch loss): report per mini-batch.
    for k in [k for k in out if k.startswith("loss/")]:
        out[k] /= optim.ppo_epochs * optim.mini_batches
    out["update/policy_steps"] = float(n_policy)
    out["update/scored_steps"] = scored  # policy steps run forward/backward (all ranks, all epochs)
    out["update/internalized_steps"] = float(sum(w > 0 for w in int_weights))
    return out


def by_length(indices: Sequence[int], records: Sequence[StepRecord]) -> list[int]:
    """Indices ordered by sequence length, so that micro-batches pad little (the sum is order-free)."""
    return sorted(indices, key=lambda i: len(records[i].prompt_ids) + len(records[i].response_ids))



def _score_owned(model: Any, records: Sequence[StepRecord], owned: Sequence[bool], **kwargs: Any) -> list[list[float]]:
    """``score_records`` on the records this rank owns; ``[]`` stands in for the others."""
    from siri.rl.scoring import score_records

    idx = by_length([i for i, own in enumerate(owned) if own], records)
    scored = score_records(model, [records[i] for i in idx], **kwargs) if idx else []
    out: list[list[float]] = [[] for _ in records]
    for i, row in zip(idx, scored, strict=True):
        out[i] = row
    return out


def _chunks(indices: Sequence[int] | np.ndarray, size: int) -> list[list[int]]:
    idx = [int(i) for i in indices]
    return [idx[k : k + size] for k in range(0, len(idx), size)]


def _pad(rows: Sequence[Sequence[float]], width: int) -> torch.Tensor:
    """Rows of per-token values as a zero-padded [len(rows), width] tensor."""
    import torch

    out = torch.zeros(len(rows), width)
    for b, row in enumerate(rows):
        out[b, : len(row)] = torch.tensor(row[:width], dtype=out.dtype)
    return out


def _normalizer(steps: Sequence[StepRecord], agg: str) -> float:
    """The whole mini-batch's token count (token-mean) or sequence count, for exact gradient accumulation."""
    if agg == "token-mean":
        return max(1.0, float(sum(len(r.response_ids) for r in steps)))
    return max(1.0, float(len(steps)))


def _int_mask_len(record: StepRecord, cfg: TrainConfig) -> int:
    """How many of ``record``'s tokens the internalization loss trains: its action tokens or whole response."""
    return sum(record.action_mask) if cfg.siri.action_tokens_only else len(record.response_ids)
