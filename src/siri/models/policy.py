"""What a model is: a ``Policy`` (the model, its tokenizer and how it acts), saved and reloaded as a directory.

A ``Policy`` is the model, its tokenizer, whether LoRA is on, the default action mode, and access to
the reference policy for the KL term: with LoRA the base model with adapters disabled (no second
copy); without LoRA a frozen copy taken at load time. ``siri.models.loading.load_policy`` makes one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from siri.utils.io import atomic_dir, atomic_write_json

POLICY_FILE = "siri_policy.json"
TINY_REPORT_FILE = "siri_tiny.json"  # a tiny model build's report; its presence marks a tiny model


class ModelError(Exception):
    """A model could not be resolved or loaded; the message says what to do."""


@dataclass
class Policy:
    """A causal LM ready for rollouts and updates.

    Attributes:
        model: the transformers model (a peft model when ``lora``).
        tokenizer: its tokenizer, left padding, with a pad token and a chat template.
        name: what the user asked for ("tiny", "smollm2-135m", a path, a hub id).
        path: the local directory the weights came from (the base model's, with LoRA).
        lora: whether the trainable parameters are LoRA adapters.
        action_mode: the default action mode ("generate" or "choose").
        env: the environment a tiny model was built for ("" otherwise).
    """

    model: Any
    tokenizer: Any
    name: str
    path: str
    lora: bool = False
    action_mode: str = "generate"
    env: str = ""
    _frozen_reference: Any = None

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad or not trainable_only)

    @contextlib.contextmanager
    def reference(self) -> Iterator[Any]:
        """The reference policy for the KL term, as a model to call inside the ``with`` block."""
        if self.lora:
            with self.model.disable_adapter():
                yield self.model
        elif self._frozen_reference is not None:
            yield self._frozen_reference
        else:
            raise ModelError("this policy was loaded with reference=False; load it with reference=True for a KL term")

    def save(self, path: str | os.PathLike[str], extra_files: dict[str, Any] | None = None,
             state_dict: dict[str, Any] | None = None) -> None:
        """Save weights (or adapters), tokenizer and ``siri_policy.json``; ``load_policy(path)`` reloads it.

        ``extra_files`` (file name -> JSON-able) are written into the same directory, in the same atomic move.
        ``state_dict``: the weights to write instead of the model's own (an FSDP model's, consolidated).
        """
        with atomic_dir(path) as tmp:  # a sibling of ``path``, created with its parent: one filesystem
            self.model.save_pretrained(tmp, **({"state_dict": state_dict} if state_dict is not None else {}))
            self.tokenizer.save_pretrained(tmp)
            meta = {"format": 1, "name": self.name, "base": self.path, "lora": self.lora,
                    "action_mode": self.action_mode, "env": self.env}
            atomic_write_json(tmp / POLICY_FILE, meta)
            for name, content in (extra_files or {}).items():
                atomic_write_json(tmp / name, content)
