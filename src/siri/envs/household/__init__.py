"""household: ALFWorld's text household world, pure Python, verified step by step against the real engine.

``HouseholdEnv`` (``sim``) is the environment; ``world`` holds the vocabulary (``OBJECT_NAMES``,
``RECEPTACLE_NAMES``, ``TASK_TYPES``) and rules tables; ``scene`` the seeded generator and splits;
``placements`` where each object kind usually starts (the ``placements="typical"`` option);
``state`` an episode's mutable true state; ``expert`` the replanning expert; ``export`` writes scenes
as ALFWorld game files and ``parity`` plays them through the real engine.
"""

from __future__ import annotations

from siri.envs.household.scene import SPLIT_SIZES, SPLITS, Scene, generate_scene
from siri.envs.household.sim import HouseholdEnv
from siri.envs.household.state import State
from siri.envs.household.world import OBJECT_NAMES, RECEPTACLE_NAMES, ROOM_KINDS, TASK_TYPES

__all__ = [
    "OBJECT_NAMES",
    "RECEPTACLE_NAMES",
    "ROOM_KINDS",
    "SPLITS",
    "SPLIT_SIZES",
    "TASK_TYPES",
    "HouseholdEnv",
    "Scene",
    "State",
    "generate_scene",
]
