"""Models that a training recipe builds on first use, by name: ``siri.models.loading.resolve`` asks here.

Each entry names its builder by import path, like ``siri.envs.ENVIRONMENTS``: the recipes (``siri.sft``)
sit above ``models/``, so they are imported only when their model is asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

# family -> "module:function". A name is the family ("tiny") or "<family>-<variant>" ("tiny-shop"); the
# function is called as ``builder(name, env, build=..., log=...)`` and returns (model directory, the
# environment the model was built for).
MODELS: dict[str, str] = {
    "tiny": "siri.sft.tiny:resolve_tiny",
}

Builder = Callable[..., tuple[Path, str]]


def registered_builder(name: str) -> Builder | None:
    """The builder of model ``name``, or None when no recipe builds it (a file, SmolLM2 or a hub id)."""
    for family, target in MODELS.items():
        if name == family or name.startswith(family + "-"):
            module_name, attr = target.split(":")
            builder: Builder = getattr(importlib.import_module(module_name), attr)
            return builder
    return None
