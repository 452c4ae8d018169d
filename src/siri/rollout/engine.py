"""Generation engines: batched sampling that also returns the sampling policy's per-token log-probs.

One interface (``GenerationEngine.generate``) so that a vLLM backend can sit next to the Hugging Face
one. ``HFEngine`` runs any transformers causal LM: prompts left-padded into one batch, a KV cache,
temperature / top-p sampling (greedy at temperature 0), stop at ``</action>`` or the end-of-turn token,
and ``choose`` mode (a token trie per row, see ``choose.py``).

Sampling is per row: row ``i`` draws from its own random stream, seeded by ``seeds[i]`` (or, given one
``seed``, by ``row_seed(seed, i)``) and advanced only by that row's draws. A row's tokens therefore
depend only on its prompt, its seed and the model, not on the rest of the batch or its place in it,
which is what lets a rank that collects a share of the episodes sample exactly what a single process
would (up to float rounding from padding).

Log-probs are those of the tempered distribution (``logits / T``, renormalized over the allowed set in
``choose`` mode), *before* top-p truncation — the same quantity ``scoring.py`` recomputes at training
time, so old and new log-probs are comparable. At temperature 0 they are reported at ``T = 1``.
The loop is hand-written rather than ``model.generate`` so these log-probs come out without keeping
every step's full-vocabulary logits, and the trie constraint is applied exactly where it is measured.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from siri.rollout.choose import TokenTrie
from siri.rollout.parsing import CLOSE


@dataclass
class Generation:
    """One sampled response: its token ids, their log-probs, and why it stopped."""

    response_ids: list[int]
    logprobs: list[float]
    stop: str  # "action" (</action>), "eos", "choice" (choose mode, complete), "length"


class GenerationEngine(Protocol):
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        choices: Sequence[Sequence[Sequence[int]]] | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 64,
        seed: int | None = None,
        seeds: Sequence[int] | None = None,
    ) -> list[Generation]: ...


def row_seed(seed: int, row: int) -> int:
    """The sampling seed of one row: fixed by (seed, row), independent of the rest of the batch.

    ``(seed * 1_000_003 + row * 7_919 + 1) mod (2**31 - 1)``: for a fixed ``seed`` distinct rows get
    distinct seeds (7_919 is invertible modulo the prime), and every seed fits the 32 bits that
    torch's CPU generator (and vLLM's per-request seed) use.
    """
    return (int(seed) * 1_000_003 + int(row) * 7_919 + 1) % (2**31 - 1)


def row_seeds(n: int, seed: int | None, seeds: Sequence[int] | None) -> list[int] | None:
    """Per-row seeds of an ``n``-row call: ``seeds`` as given, else derived from ``seed`` (None: unseeded)."""
    if seeds is not None:
        if len(seeds) != n:
            raise ValueError(f"{len(seeds)} seeds for {n} prompts")
        return [int(s) for s in seeds]
    return None if seed is None else [row_seed(seed, i) for i in range(n)]


def stop_token_ids(tokenizer: Any, model: Any = None) -> set[int]:
    """End-of-turn ids: the tokenizer's eos plus the model's generation-config eos ids."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    gen_cfg = getattr(model, "generation_config", None)
    eos = getattr(gen_cfg, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif isinstance(eos, (list, tuple)):
        ids.update(int(e) for e in eos)
    return ids


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device: Any) -> tuple[Any, Any, Any]:
    """(input_ids, attention_mask, position_ids) for left-padded prompts; positions start at 0 per row."""
    import torch

    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        if p:
            ids[i, width - len(p) :] = torch.tensor(list(p), dtype=torch.long)
            mask[i, width - len(p) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), positions.to(device)


def _top_p_filter(probs: Any, top_p: float) -> Any:
    import torch

    if top_p >= 1.0:
        return probs
    sorted_p, order = probs.sort(dim=-1, descending=True)
    cumulative = sorted_p.cumsum(-1)
    drop = cumulative - sorted_p > top_p  # keep the smallest prefix whose mass reaches top_p
    sorted_p = sorted_p.masked_fill(drop, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_p)


class HFEngine:
    """Batched sampling with a Hugging Face causal LM (full or peft-wrapped)."""

    def __init__(self, model: Any, tokenizer: Any, max_batch: int = 64) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
        self.eos_ids = stop_token_ids(tokenizer, model)
        close = tokenizer(CLOSE, add_special_tokens=False)["input_ids"]
        self.close_id: int | None = int(close[0]) if len(close) == 1 else None
        self.close_len = len(close)

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        choices: Sequence[Sequence[Sequence[int]]] | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 64,
        seed: int | None = None,
        seeds: Sequence[int] | None = None,
    ) -> list[Generation]:
        """Sample one response per prompt; ``choices[i]`` constrains row ``i`` (choose mode).

        Row ``i`` samples with ``seeds[i]`` if given, else with ``row_seed(seed, i)`` (``seed`` None: 0).
        """
        import torch

        if choices is not None and len(choices) != len(prompts):
            raise ValueError(f"{len(choices)} choice lists for {len(prompts)} prompts")
        if temperature < 0 or not 0 < top_p <= 1:
            raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature}, {top_p}")
        per_row = row_seeds(len(prompts), 0 if seed is None else seed, seeds) or []
        generators = []
        for s in per_row:
            generator = torch.Generator(device="cpu")
            generator.manual_seed(s)
            generators.append(generator)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        results: list[Generation | None] = [None] * len(prompts)
        for start in range(0, len(order), self.max_batch):
            chunk = order[start : start + self.max_batch]
            outs = self._generate_batch(
                [prompts[i] for i in chunk],
                None if choices is None else [choices[i] for i in chunk],
                temperature,
                top_p,
                max_new_tokens,
                [generators[i] for i in chunk],
            )
            for i, out in zip(chunk, outs, strict=True):
                results[i] = out
        return [r for r in results if r is not None]

    def _stopped_on_close(self, response: list[int]) -> bool:
        if self.close_id is not None:
            return response[-1] == self.close_id
        tail = self.tokenizer.decode(response[-(self.close_len + 2) :], skip_special_tokens=False)
        return CLOSE in tail

    def _generate_batch(
        self,
        prompts: list[Sequence[int]],
        choices: list[Sequence[Sequence[int]]] | None,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        generators: list[Any],
    ) -> list[Generation]:
        import torch

        model = self.model
        was_training = model.training
        model.eval()
        n = len(prompts)
        tries = None if choices is None else [TokenTrie(c) for c in choices]
        responses: list[list[int]] = [[] for _ in range(n)]
        logprobs: list[list[float]] = [[] for _ in range(n)]
        stops = ["length"] * n
        active = [True] * n
        scale = temperature if temperature > 0 else 1.0
        try:
            with torch.no_grad():
                # Rows with the same prompt share one prefill (every rollout of a group at its first step,
                # rollouts that took the same actions so far): the cache is then copied out to every row.
                unique: dict[tuple[int, ...], int] = {}
                source = [unique.setdefault(tuple(p), len(unique)) for p in prompts]
                ids, mask, positions = left_pad(list(unique), self.pad_id, self.device)
                out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
                past = out.cache  # transformers >= 5.24 (`past_key_values` is deprecated, gone in 5.40)
                logits = out.logits[:, -1, :]
                if len(unique) < n:
                    rows = torch.tensor(source, device=ids.device)
                    past.reorder_cache(rows)
                    logits, mask, positions = logits[rows], mask[rows], positions[rows]
                next_pos = positions[:, -1:] + 1
                for _ in range(max_new_tokens):
                    scaled = logits.float() / scale
                    if tries is not None:
                        allowed_mask = torch.zeros_like(scaled, dtype=torch.bool)
                        for i in range(n):
                            if active[i]:
                                allowed_mask[i, tries[i].allowed(responses[i])] = True
                            else:
                                allowed_mask[i, self.pad_id] = True
                        scaled = scaled.masked_fill(~allowed_mask, float("-inf"))
                    logp = torch.log_softmax(scaled, dim=-1)
                    if temperature > 0:
                        probs = _top_p_filter(logp.exp(), top_p).cpu()
                        tokens = torch.full((n,), self.pad_id, dtype=torch.long)
                        for i in range(n):  # one draw from each active row's own stream
                            if active[i]:
                                tokens[i] = torch.multinomial(probs[i], 1, generator=generators[i])[0]
                    else:
                        tokens = logp.argmax(dim=-1).cpu()
                    token_logp = logp.gather(1, tokens.to(logp.device).view(-1, 1)).squeeze(1).cpu()
                    for i in range(n):
                        if not active[i]:
                            continue
                        tok = int(tokens[i])
                        responses[i].append(tok)
                        logprobs[i].append(float(token_logp[i]))
                        if tries is not None:
                            if tries[i].complete(responses[i]):
                                active[i], stops[i] = False, "choice"
                        elif tok in self.eos_ids:
                            active[i], stops[i] = False, "eos"
                        elif self._stopped_on_close(responses[i]):
                            active[i], stops[i] = False, "action"
                    if not any(active):
                        break
                    feed = torch.tensor(
                        [responses[i][-1] if responses[i] else self.pad_id for i in range(n)], dtype=torch.long
                    ).view(-1, 1)
                    mask = torch.cat([mask, torch.ones((n, 1), dtype=mask.dtype, device=mask.device)], dim=1)
                    out = model(
                        input_ids=feed.to(self.device),
                        attention_mask=mask,
                        position_ids=next_pos,
                        cache=past,
                        use_cache=True,
                    )
                    past = out.cache
                    logits = out.logits[:, -1, :]
                    next_pos = next_pos + 1
        finally:
            model.train(was_training)
        return [Generation(responses[i], logprobs[i], stops[i]) for i in range(n)]
