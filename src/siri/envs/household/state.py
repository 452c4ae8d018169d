"""The mutable true state of one household episode, shared by the simulator and the expert.

The state is a handful of small lists mutated in place; ``anchor`` packs it into a tuple.
"""

from __future__ import annotations

from collections.abc import Hashable

from siri.envs.household.scene import Scene


class State:
    """The mutable true state of one episode. ``loc`` is a receptacle index or -1 (middle of the room)."""

    __slots__ = ("clean", "contents", "cool", "held", "hot", "loc", "opened", "toggled", "where")

    def __init__(self, scene: Scene) -> None:
        self.loc = -1
        self.held = -1
        self.where = list(scene.start)  # receptacle index of each thing, -1 while held
        self.opened = [False] * len(scene.receptacles)
        self.hot = [False] * len(scene.things)
        self.cool = [False] * len(scene.things)
        self.clean = [False] * len(scene.things)
        self.toggled = [False] * len(scene.things)
        self.contents: list[list[int]] = [[] for _ in scene.receptacles]
        for t, r in enumerate(scene.start):
            self.contents[r].append(t)  # things are sorted by id, so each list is sorted too

    def anchor(self) -> Hashable:
        """Everything that can differ between two states of one scene; no step counter, no text."""
        return (
            self.loc,
            self.held,
            tuple(self.where),
            tuple(self.opened),
            tuple(self.hot),
            tuple(self.cool),
            tuple(self.clean),
            tuple(self.toggled),
        )
