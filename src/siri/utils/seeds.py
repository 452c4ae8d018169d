"""Named random streams: every random draw of a run comes from ``(train.seed, iteration, stream)``.

Each consumer draws from its own stream, so adding draws to one (a new sampling option, a bigger
plan) never shifts another, and a resumed run redraws exactly what the uninterrupted one drew. The
numbers are part of every published result: never renumber a stream, only add new ones.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """The random streams of one iteration (the values are fixed forever, see the module docstring)."""

    TASKS = 0  # which tasks (group seeds) an iteration trains on
    SAMPLING = 1  # the training rollouts' sampling seeds
    UPDATE = 2  # the update's mini-batch order
    EVAL_SAMPLING = 3  # evaluation rollouts (drawn at iteration 0: every evaluation samples alike)
    VALIDATION_PLAN = 7  # which rollouts of a group show a skill
    SKILL_SERVICE = 8  # whether a group serves a candidate or an active skill
    EXTRA_GROUPS = 9  # dynamic sampling: the tasks and sampling seeds of groups drawn beyond the first round


def stream_rng(seed: int, iteration: int, stream: Stream) -> np.random.Generator:
    """The generator of ``stream`` in ``iteration`` of a run seeded ``seed``."""
    return np.random.default_rng([seed, iteration, int(stream)])


def stream_seed(seed: int, iteration: int, stream: Stream) -> int:
    """A 31-bit seed from ``stream`` (for APIs that take an int seed: samplers, ``default_rng``)."""
    return int(stream_rng(seed, iteration, stream).integers(0, 2**31 - 1))
