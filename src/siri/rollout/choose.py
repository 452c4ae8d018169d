"""``choose`` mode: decoding constrained to the admissible actions by a token trie.

Each admissible action ``a`` is one allowed response, the token ids of ``<action>a</action>``. At every
response position only the tokens that continue some allowed response may be sampled, and the
log-prob of a token is taken under the logits renormalized over that allowed set. The trainer
recomputes log-probs with the very same allowed sets (``allowed_sets``), so the PPO ratio is exact.
Positions with a single allowed token (the tags) get log-prob 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from siri.rollout.parsing import CLOSE, OPEN

_END = -1  # key marking "a complete response ends here"


class TokenTrie:
    """Prefix tree over token sequences; ``allowed(prefix)`` lists the tokens that may come next."""

    def __init__(self, sequences: Sequence[Sequence[int]]) -> None:
        if not sequences:
            raise ValueError("choose mode needs at least one admissible action")
        self.root: dict[int, Any] = {}
        for seq in sequences:
            if not seq:
                raise ValueError("an allowed response has no tokens")
            node = self.root
            for tok in seq:
                node = node.setdefault(int(tok), {})
            node[_END] = True

    def _node(self, prefix: Sequence[int]) -> dict[int, Any] | None:
        node = self.root
        for tok in prefix:
            node = node.get(int(tok))
            if node is None:
                return None
        return node

    def allowed(self, prefix: Sequence[int]) -> list[int]:
        """Tokens that may follow ``prefix`` (empty when ``prefix`` is complete or off the trie)."""
        node = self._node(prefix)
        if node is None:
            return []
        return [t for t in node if t != _END]

    def complete(self, prefix: Sequence[int]) -> bool:
        node = self._node(prefix)
        return node is not None and _END in node


def choice_ids(tokenizer: Any, admissible: Sequence[str]) -> list[list[int]]:
    """Token ids of ``<action>a</action>`` for every admissible action, in order."""
    return [list(tokenizer(OPEN + a + CLOSE, add_special_tokens=False)["input_ids"]) for a in admissible]


def allowed_sets(choices: Sequence[Sequence[int]], response_ids: Sequence[int]) -> list[list[int]]:
    """For every position of ``response_ids``, the allowed tokens given the tokens before it.

    Raises ``ValueError`` if the response leaves the trie (it was not produced under this constraint).
    """
    trie = TokenTrie(choices)
    out: list[list[int]] = []
    for i in range(len(response_ids)):
        allowed = trie.allowed(response_ids[:i])
        if int(response_ids[i]) not in allowed:
            raise ValueError(f"response token {int(response_ids[i])} at position {i} is outside the choose constraint")
        out.append(allowed)
    return out


def constrained_logprobs(logits: Any, tokens: Any, allowed: Sequence[Sequence[int]], temperature: float = 1.0) -> Any:
    """Log-prob of ``tokens[p]`` under ``logits[p] / temperature`` renormalized over ``allowed[p]``.

    ``logits``: float tensor [P, V]; ``tokens``: long tensor [P]; returns a float tensor [P] that keeps
    the graph (used for training as well as at collection).
    """
    import torch

    if len(allowed) != logits.shape[0]:
        raise ValueError(f"{len(allowed)} allowed sets for {logits.shape[0]} positions")
    width = max((len(a) for a in allowed), default=1)
    index = torch.zeros((len(allowed), max(width, 1)), dtype=torch.long, device=logits.device)
    valid = torch.zeros_like(index, dtype=torch.bool)
    for p, a in enumerate(allowed):
        if a:
            index[p, : len(a)] = torch.tensor(a, dtype=torch.long)
            valid[p, : len(a)] = True
    scaled = logits.float() / temperature
    picked = scaled.gather(1, index).masked_fill(~valid, float("-inf"))
    chosen = scaled.gather(1, tokens.view(-1, 1)).squeeze(1)
    return chosen - torch.logsumexp(picked, dim=1)
