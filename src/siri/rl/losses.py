"""Per-token losses of the update: PPO clip, low-variance KL, entropy, token log-probs, internalization.

Shapes: every per-token tensor is ``[B, T]`` (batch of sequences, response positions) with a float
``mask`` that is 1 on the tokens that are trained (response tokens; prompt and padding are 0).
Advantages may be ``[B, T]`` or ``[B]`` (one value per step, broadcast over its tokens).

Aggregation (``agg``), which must not change under micro-batching:

- ``"token-mean"``: ``sum(loss * mask) / N`` with ``N`` the number of masked tokens in the *whole*
  batch (GiGPO/DAPO-style; every token weighs the same).
- ``"seq-mean-token-mean"``: the mean over sequences of each sequence's token mean; ``N`` is the
  number of sequences with at least one masked token in the whole batch.

With gradient accumulation, compute ``normalizer = loss_normalizer([mb.mask for mb in micro_batches],
agg)`` once and pass it to every micro-batch call: each micro-batch then returns its *share* of the
full-batch loss (its sum divided by the whole batch's ``N``), and the accumulated gradient equals
the full-batch gradient exactly. Without ``normalizer`` a call normalizes by its own count.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

Agg = Literal["token-mean", "seq-mean-token-mean"]
AGGS = ("token-mean", "seq-mean-token-mean")

# Log-ratios are clamped before exp() (as verl does) so one wild token cannot give inf/NaN.
_MAX_LOG_RATIO = 20.0


def _masked(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x * mask`` where values outside the mask (padding may hold inf/NaN) are dropped, not multiplied."""
    return torch.where(mask > 0, x, torch.zeros((), dtype=x.dtype, device=x.device)) * mask


def masked_sum(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return _masked(x, mask).sum()


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over ``mask == 1`` (over all elements, or along ``dim``); 0 where the mask is empty."""
    if dim is None:
        return _masked(x, mask).sum() / mask.sum().clamp(min=1.0)
    return _masked(x, mask).sum(dim) / mask.sum(dim).clamp(min=1.0)


def loss_normalizer(masks: Sequence[torch.Tensor] | torch.Tensor, agg: Agg = "token-mean") -> float:
    """The whole batch's ``N`` for ``agg`` from the masks of all its micro-batches (see module doc)."""
    if agg not in AGGS:
        raise ValueError(f"unknown agg {agg!r}; valid: {', '.join(AGGS)}")
    masks = [masks] if isinstance(masks, torch.Tensor) else list(masks)
    if agg == "token-mean":
        total = sum(float(m.sum()) for m in masks)
    else:
        total = sum(float((m.sum(-1) > 0).sum()) for m in masks)
    return max(total, 1.0)


def aggregate(loss_tok: torch.Tensor, mask: torch.Tensor, agg: Agg = "token-mean",
              normalizer: float | None = None) -> torch.Tensor:
    """Reduce a per-token loss ``[B, T]`` to a scalar by ``agg`` (see module doc)."""
    if agg == "token-mean":
        total = masked_sum(loss_tok, mask)
    elif agg == "seq-mean-token-mean":
        total = masked_mean(loss_tok, mask, dim=-1).sum()
    else:
        raise ValueError(f"unknown agg {agg!r}; valid: {', '.join(AGGS)}")
    if normalizer is None:
        normalizer = loss_normalizer(mask, agg)
    return total / normalizer


def _check_shapes(mask: torch.Tensor, **tensors: torch.Tensor) -> None:
    for name, x in tensors.items():
        if x.shape != mask.shape:
            raise ValueError(f"'{name}' has shape {tuple(x.shape)} but mask has {tuple(mask.shape)}; "
                             "per-token tensors must be [B, T] like the mask")


def ppo_clip_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                  mask: torch.Tensor, clip_low: float = 0.2, clip_high: float | None = None,
                  agg: Agg = "token-mean", normalizer: float | None = None,
                  ) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO's clipped surrogate: ``max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high))`` per token.

    ``r = exp(logprobs - old_logprobs)``. ``clip_high`` defaults to ``clip_low`` (symmetric); a
    larger ``clip_high`` ("clip-higher") lets low-probability tokens grow faster. Tokens where the
    clipped term is the larger one get no gradient.

    Returns the loss and detached statistics over this call's masked tokens: ``clip_frac`` (tokens
    whose loss is clipped), ``clip_frac_low``/``clip_frac_high`` (by side), ``approx_kl`` (k3
    estimate of KL(old || new)), ``ratio_mean``, ``ratio_max``.
    """
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1).expand_as(mask)
    _check_shapes(mask, logprobs=logprobs, old_logprobs=old_logprobs, advantages=advantages)
    clip_high = clip_low if clip_high is None else clip_high
    if clip_low < 0 or clip_high < 0:
        raise ValueError(f"clip ranges must be >= 0, got clip_low={clip_low}, clip_high={clip_high}")
    mask = mask.to(logprobs.dtype)
    advantages = advantages.to(logprobs.dtype).detach()
    # Zero the log-ratio off the mask *before* exp: padding may hold -inf log-probs, and a NaN there
    # would leak into the gradient even through a later mask.
    valid = mask > 0
    log_ratio = torch.where(valid, logprobs - old_logprobs.detach(), 0.0).clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)
    advantages = torch.where(valid, advantages, 0.0)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)
    loss_tok = torch.maximum(unclipped, clipped)
    loss = aggregate(loss_tok, mask, agg, normalizer)

    with torch.no_grad():
        is_clipped = (clipped > unclipped).to(mask.dtype)
        n = mask.sum().clamp(min=1.0)
        r = ratio.detach()
        stats = {
            "clip_frac": float((is_clipped * mask).sum() / n),
            "clip_frac_low": float((is_clipped * (r < 1.0) * mask).sum() / n),
            "clip_frac_high": float((is_clipped * (r > 1.0) * mask).sum() / n),
            "approx_kl": float(masked_mean((r - 1.0) - log_ratio.detach(), mask)),
            "ratio_mean": float(masked_mean(r, mask)),
            "ratio_max": float(torch.where(mask > 0, r, torch.zeros_like(r)).max()) if mask.numel() else 0.0,
        }
    return loss, stats


def kl_low_var(logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-token k3 estimator of KL(policy || ref): ``exp(ref - lp) - (ref - lp) - 1`` (>= 0).

    Unbiased for samples drawn from the policy, with lower variance than ``lp - ref``. As in verl's
    ``low_var_kl``: the log-ratio is clamped to [-20, 20] before exp, and the result to at most 10
    (k3 is never negative, so only the upper clamp acts); a token past the clamp (roughly
    ``ref - lp > 2.4`` or ``< -11``) contributes 10 and no gradient. With ``mask``, positions off the
    mask give 0 (and no NaN gradient even if their log-probs are infinite).
    """
    kl = ref_logprobs.detach() - logprobs
    if mask is not None:
        kl = torch.where(mask > 0, kl, 0.0)
    kl = kl.clamp(-_MAX_LOG_RATIO, _MAX_LOG_RATIO)
    return (torch.exp(kl) - kl - 1.0).clamp(min=-10.0, max=10.0)


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0,
                   ignore_index: int = -100) -> torch.Tensor:
    """``log p(labels)`` per position, ``[B, T, V], [B, T] -> [B, T]``, via fused cross-entropy.

    ``F.cross_entropy(reduction="none")`` avoids keeping a separate full ``log_softmax`` tensor
    alongside the gather (see notes/models-offline.md). Positions equal to ``ignore_index`` give 0.
    Half-precision logits are upcast to float32, since PPO ratios need accurate log-probs.
    ``temperature`` divides the logits, matching a sampler that used that temperature.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} disagree; "
                         "expected [B, T, V] and [B, T]")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    if temperature != 1.0:
        logits = logits / temperature
    vocab = logits.shape[-1]
    nll = F.cross_entropy(logits.reshape(-1, vocab), labels.reshape(-1), reduction="none",
                          ignore_index=ignore_index)
    return -nll.view(labels.shape)


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    logits = logits.float()
    log_z = torch.logsumexp(logits, dim=-1)
    probs = torch.softmax(logits, dim=-1)
    return log_z - (probs * logits).sum(-1)


def entropy_from_logits(logits: torch.Tensor, chunk_size: int = 1024) -> torch.Tensor:
    """Entropy of the softmax at every position, ``[..., V] -> [...]``, in float32.

    Works through ``chunk_size`` positions at a time so the ``[chunk, V]`` softmax temporaries stay
    small; with gradients enabled each chunk is checkpointed (recomputed in backward), so the
    entropy bonus costs no ``[B, T, V]`` activations beyond the logits themselves.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    lead = logits.shape[:-1]
    flat = logits.reshape(-1, logits.shape[-1])
    if flat.shape[0] <= chunk_size and not (torch.is_grad_enabled() and logits.requires_grad):
        return _entropy(flat).view(lead)
    grad = torch.is_grad_enabled() and logits.requires_grad
    parts = [
        checkpoint(_entropy, chunk, use_reentrant=False) if grad else _entropy(chunk)
        for chunk in flat.split(chunk_size)
    ]
    return torch.cat(parts).view(lead)


def actor_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
               mask: torch.Tensor, *, ref_logprobs: torch.Tensor | None = None, kl_coef: float = 0.0,
               entropy: torch.Tensor | None = None, entropy_coef: float = 0.0, clip_low: float = 0.2,
               clip_high: float | None = None, agg: Agg = "token-mean", normalizer: float | None = None,
               ) -> tuple[torch.Tensor, dict[str, float]]:
    """``L = L_clip + kl_coef * KL_k3(policy || ref) - entropy_coef * H``, all aggregated alike.

    ``ref_logprobs`` is required when ``kl_coef > 0``; ``entropy`` (per token, e.g. from
    :func:`entropy_from_logits`) when ``entropy_coef > 0``. Stats add ``pg_loss``, ``kl``,
    ``entropy`` (token means over this call's mask) to those of :func:`ppo_clip_loss`.
    """
    loss, stats = ppo_clip_loss(logprobs, old_logprobs, advantages, mask, clip_low, clip_high, agg, normalizer)
    stats["pg_loss"] = float(loss.detach())
    mask = mask.to(logprobs.dtype)
    if ref_logprobs is not None:
        _check_shapes(mask, ref_logprobs=ref_logprobs)
        kl_tok = kl_low_var(logprobs, ref_logprobs, mask)
        stats["kl"] = float(masked_mean(kl_tok.detach(), mask))
        if kl_coef:
            loss = loss + kl_coef * aggregate(kl_tok, mask, agg, normalizer)
    elif kl_coef:
        raise ValueError("kl_coef > 0 needs ref_logprobs (the reference policy's token log-probs)")
    if entropy is not None:
        _check_shapes(mask, entropy=entropy)
        stats["entropy"] = float(masked_mean(entropy.detach(), mask))
        if entropy_coef:
            loss = loss - entropy_coef * aggregate(entropy, mask, agg, normalizer)
    elif entropy_coef:
        raise ValueError("entropy_coef > 0 needs entropy (per-token, from entropy_from_logits)")
    return loss, stats


def internalization_loss(
    logp: torch.Tensor,
    mask: torch.Tensor,
    weights: torch.Tensor,
    old_logp: torch.Tensor | None = None,
    rho_max: float | None = None,
    normalizer: str | float = "weighted_tokens",
) -> torch.Tensor:
    """SIRI's L_int: raise the plain-prompt log-probs of skill-guided tokens, weighted per step.

        L_int = - sum_{b,t} w_b * rho_bt * logp_bt * mask_bt / normalizer

    The weights ``w`` and which tokens are distilled are SIRI's choice (``siri.skills.internalize``).
    ``rho`` is an optional per-token importance correction pi_theta(token | plain) / pi_old(token | skill
    prompt), clipped to [0, rho_max] and detached: the tokens were sampled under the skill prompt, and the
    correction damps tokens the plain policy already finds far likelier (rho <= rho_max) and keeps tokens it
    finds unlikely from dominating. The default normalizer ("weighted_tokens") is the number of masked
    tokens in steps with w > 0, so L_int is a weighted mean log-likelihood per internalized token,
    independent of how many skill steps happened to carry zero weight; "tokens" divides by every masked
    token of the batch; a number divides by that constant (use the global token count when one batch is
    split into micro-batches, so that the gradients add up to the full-batch gradient).

    Args:
        logp: [B, T] log-probs of the response tokens under the plain prompt (current policy, with grad).
        mask: [B, T] 1 for tokens to internalize (0 on padding).
        weights: [B] per-step weights from ``internalization_weights``.
        old_logp: [B, T] log-probs under the skill prompt at sampling time; with ``rho_max`` it enables
            the clipped importance correction.
        rho_max: upper clip of the importance ratio (``None``: no correction).
        normalizer: "weighted_tokens", "tokens", or a positive number (see above).

    Returns a scalar; 0 (still connected to ``logp``) when nothing is weighted.
    """
    if logp.dim() != 2 or mask.shape != logp.shape or weights.shape != logp.shape[:1]:
        raise ValueError(
            f"expected logp and mask [B, T] and weights [B], got {tuple(logp.shape)}, "
            f"{tuple(mask.shape)}, {tuple(weights.shape)}"
        )
    mask = mask.to(logp.dtype)
    token_w = weights.detach().to(logp.dtype)[:, None] * mask
    if rho_max is not None:
        if old_logp is None or old_logp.shape != logp.shape:
            raise ValueError("the importance correction needs old_logp with the same shape as logp")
        if rho_max <= 0:
            raise ValueError(f"rho_max must be > 0, got {rho_max}")
        rho = torch.exp(logp.detach() - old_logp.detach()).clamp(0.0, rho_max)
        token_w = token_w * rho
    if normalizer == "weighted_tokens":
        denom = (mask * (weights.detach() > 0).to(logp.dtype)[:, None]).sum()
    elif normalizer == "tokens":
        denom = mask.sum()
    elif isinstance(normalizer, (int, float)) and not isinstance(normalizer, bool) and normalizer > 0:
        denom = torch.tensor(float(normalizer), dtype=logp.dtype)
    else:
        raise ValueError(
            f"normalizer must be 'weighted_tokens', 'tokens' or a positive number, got {normalizer!r}"
        )
    total = -(token_w * logp).sum()
    return total / denom if float(denom) > 0 else total * 0.0
