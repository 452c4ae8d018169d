"""Environments behind one interface: ``siri.envs.make(name, **options)``, ``env_splits(name)``.

The folder owns the env interface (``base``), this registry, the built-in worlds (``household/``,
``shop/``), the third-party engine adapters (``alfworld_env``, ``textworld_env``, ``scienceworld_env``) and
the Ray env workers (``ray_workers``).

Each entry names a factory by import path so that importing ``siri.envs`` stays cheap and an
optional engine (``alfworld``, ``textworld``, ``scienceworld``) is imported only when it is asked for. An env
module may expose ``SPLITS`` (its split names, training split first); ``env_splits`` reads it.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from siri.envs.base import BatchEnv, Env, EnvError, EpisodeTracker, Observation, Step, split_seed

__all__ = ["ENVIRONMENTS", "BatchEnv", "Env", "EnvError", "EpisodeTracker", "Observation", "Step", "env_splits",
           "make", "split_seed"]

# name -> ("module:factory", one-line description)
ENVIRONMENTS: dict[str, tuple[str, str]] = {
    "household": ("siri.envs.household:HouseholdEnv", "ALFWorld's household world, pure Python (built in)"),
    "alfworld": ("siri.envs.alfworld_env:AlfworldEnv", "the real ALFWorld engine on game files (needs siri-rl[alfworld])"),
    "shop": ("siri.envs.shop:ShopEnv", "WebShop's site as text over a shipped catalog (built in)"),
    "textworld": ("siri.envs.textworld_env:TextWorldEnv",
                  "TextWorld games made by tw-make, generated and cached (needs siri-rl[textworld])"),
    "scienceworld": ("siri.envs.scienceworld_env:ScienceWorldEnv",
                     "ScienceWorld's 30 science tasks, Java engine (needs siri-rl[scienceworld])"),
}


def _module(name: str) -> Any:
    """The module that defines environment ``name`` (imported on first use)."""
    if name not in ENVIRONMENTS:
        raise EnvError(f"unknown environment {name!r}; choose one of: {', '.join(sorted(ENVIRONMENTS))}")
    module_name = ENVIRONMENTS[name][0].split(":")[0]
    try:
        return importlib.import_module(module_name)
    except ImportError as e:
        raise EnvError(f"environment {name!r} could not be imported ({e}); {ENVIRONMENTS[name][1]}") from e


def _factory(name: str) -> Any:
    return getattr(_module(name), ENVIRONMENTS[name][0].split(":")[1])


def env_splits(name: str) -> tuple[str, ...]:
    """The split names of environment ``name``: its module's ``SPLITS``, else just ``("train",)``."""
    return tuple(getattr(_module(name), "SPLITS", ("train",)))


def make(name: str, **options: Any) -> Env:
    """Build environment ``name``; unknown options are rejected with the list of valid ones."""
    factory = _factory(name)
    params = inspect.signature(factory).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    if not accepts_any:
        valid = [p for p in params if p != "self"]
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise EnvError(
                f"unknown option(s) {', '.join(unknown)} for environment {name!r}; valid options: {', '.join(valid)}"
            )
    return factory(**options)


def make_batch(name: str, n: int, **options: Any) -> BatchEnv:
    """``n`` independent copies of environment ``name`` stepped together."""
    return BatchEnv([make(name, **options) for _ in range(n)])
