"""Recompute per-token log-probs of recorded responses with a (training) model.

The update (``siri.rl.update``) calls this for the old, reference and new log-probs. Sequences are
``prompt + response``, left-padded so that every response ends at the last column; the model then only
projects the last ``max_response + 1`` hidden states onto the vocabulary (``logits_to_keep``), which keeps
memory small for long prompts and big vocabularies. ``choose``-mode steps (``record.choices`` set) are scored under
the same trie constraint they were sampled under, so the importance ratio is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from siri.rl.losses import token_logprobs
from siri.rollout.choose import allowed_sets, constrained_logprobs
from siri.rollout.engine import left_pad
from siri.rollout.types import StepRecord


def _entropy(logits: torch.Tensor) -> torch.Tensor:
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -(logp.exp() * logp).sum(-1)


def response_logprobs(
    model: Any,
    records: Sequence[StepRecord],
    *,
    pad_id: int,
    temperature: float = 1.0,
    plain: bool = False,
    with_entropy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Log-probs of every response token of ``records`` under ``model``, keeping the graph.

    Returns ``(logprobs, mask, entropy)``: float tensors [B, R] (responses left-aligned, R the longest
    response), the 0/1 response mask, and per-token entropy (``None`` unless ``with_entropy``).
    ``plain=True`` scores skill-augmented steps under their plain prompt (internalization).
    ``temperature`` must be the sampling temperature (1.0 for greedy collection).
    """
    if not records:
        raise ValueError("no records to score")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 to score log-probs, got {temperature}")
    if plain:
        unpaired = [i for i, r in enumerate(records) if r.uses_skills and r.plain_prompt_ids is None]
        if unpaired:  # scoring them under the skill prompt would distil nothing: say so instead
            raise ValueError(f"{len(unpaired)} skill-prompt step(s) (first: record {unpaired[0]}) carry no "
                             "plain_prompt_ids; internalization must score them under the plain prompt")
    prompts = [r.plain_prompt_ids if plain and r.plain_prompt_ids is not None else r.prompt_ids for r in records]
    lengths = [len(r.response_ids) for r in records]
    if min(lengths) == 0:
        raise ValueError("a record has an empty response; nothing to score")
    width = max(lengths)
    device = next(model.parameters()).device
    ids, mask, positions = left_pad([list(p) + list(r.response_ids) for p, r in zip(prompts, records, strict=True)], pad_id, device)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=width + 1)
    logits = out.logits  # [B, width + 1, V]; column k predicts the token at column k + 1
    rows: list[Any] = []
    entropies: list[Any] = []
    keep = logits.shape[1]
    for b, record in enumerate(records):
        n = lengths[b]
        start = keep - n - 1
        row_logits = logits[b, start : start + n]
        labels = torch.tensor(record.response_ids, dtype=torch.long, device=device)
        if record.choices is not None:
            allowed = allowed_sets(record.choices, record.response_ids)
            row = constrained_logprobs(row_logits, labels, allowed, temperature)
            if with_entropy:
                masked = torch.full_like(row_logits, float("-inf"), dtype=torch.float32)
                for p, a in enumerate(allowed):
                    masked[p, a] = row_logits[p, a].float() / temperature
                entropies.append(_entropy(masked.nan_to_num(neginf=-1e30)))
        else:
            scaled = row_logits.float() / temperature
            row = token_logprobs(scaled.unsqueeze(0), labels.unsqueeze(0)).squeeze(0)
            if with_entropy:
                entropies.append(_entropy(scaled))
        rows.append(row)
    def padded(values: list[Any]) -> Any:
        return torch.stack([torch.nn.functional.pad(v.float(), (0, width - v.shape[0])) for v in values])

    logprobs = padded(rows)
    response_mask = padded([torch.ones(n, device=device) for n in lengths])
    entropy = padded(entropies) if with_entropy else None
    return logprobs, response_mask, entropy


def score_records(
    model: Any,
    records: Sequence[StepRecord],
    *,
    pad_id: int,
    temperature: float = 1.0,
    plain: bool = False,
    micro_batch: int = 8,
) -> list[list[float]]:
    """Per-token log-probs (no gradient) of every record, micro-batched; for old and reference log-probs."""
    was_training = model.training
    model.eval()
    results: list[list[float]] = []
    try:
        with torch.no_grad():
            for start in range(0, len(records), micro_batch):
                chunk = records[start : start + micro_batch]
                logprobs, _, _ = response_logprobs(model, chunk, pad_id=pad_id, temperature=temperature, plain=plain)
                for b, record in enumerate(chunk):
                    results.append(logprobs[b, : len(record.response_ids)].tolist())
    finally:
        model.train(was_training)
    return results
