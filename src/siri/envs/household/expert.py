"""An omniscient expert that replans from the current state (so it finishes after any detour).

Every "go to" costs one step, so the plan is greedy over step costs: fetch the cheapest suitable object
(fewest of: walking there, opening its receptacle), process it if the task needs it, and put it in the
cheapest goal receptacle. A wrong object in hand is first put down where it fits. Plans take at most
~14 steps, well inside ALFWorld's 50.
"""

from __future__ import annotations

from collections.abc import Callable

from siri.envs.household import world
from siri.envs.household.scene import Scene
from siri.envs.household.state import State


def _reach_cost(scene: Scene, st: State, r: int) -> int:
    return (st.loc != r) + (scene.receptacles[r].openable and not st.opened[r])


def _go_open(scene: Scene, st: State, r: int) -> str | None:
    """The next step towards standing at an open/visible receptacle ``r``, or None when there."""
    rec = scene.receptacles[r]
    if st.loc != r:
        return f"go to {rec.name}"
    if rec.openable and not st.opened[r]:
        return f"open {rec.name}"
    return None


def _fetch(scene: Scene, st: State, t: int) -> str:
    r = st.where[t]
    return _go_open(scene, st, r) or f"take {scene.things[t].name} from {scene.receptacles[r].name}"


def _place(scene: Scene, st: State, r: int) -> str:
    return _go_open(scene, st, r) or f"move {scene.things[st.held].name} to {scene.receptacles[r].name}"


def _cheapest(scene: Scene, st: State, candidates: list[int]) -> int:
    return min(candidates, key=lambda r: (_reach_cost(scene, st, r), r))


def _drop(scene: Scene, st: State) -> str:
    """Put the held (unwanted) thing down where it fits (it started in such a place), cheapest first."""
    kind = scene.things[st.held].kind
    fits = [r for r, rec in enumerate(scene.receptacles) if kind in world.CAN_CONTAIN[rec.kind]]
    return _place(scene, st, _cheapest(scene, st, fits))


def _fetch_best(
    scene: Scene, st: State, targets: list[int], prefer: Callable[[int], tuple] | None = None
) -> str:
    t = min(targets, key=lambda t: (*(prefer(t) if prefer else ()), _reach_cost(scene, st, st.where[t]), t))
    return _fetch(scene, st, t)


def expert_action(scene: Scene, st: State) -> str:
    """The next action of a shortest-ish plan from ``st`` to the scene's goal."""
    things, recs = scene.things, scene.receptacles
    kind = scene.object_kind
    tt = scene.task_type
    held = st.held
    holding_target = held >= 0 and things[held].kind == kind
    if held >= 0 and not holding_target:
        return _drop(scene, st)

    if tt == "look_at_obj_in_light":
        if not holding_target:
            return _fetch_best(scene, st, [t for t, th in enumerate(things) if th.kind == kind])
        lamps = [t for t, th in enumerate(things) if th.kind == scene.lamp_kind]
        lamp = min(lamps, key=lambda t: (not st.toggled[t], st.loc != st.where[t], t))
        r = st.where[lamp]
        if st.loc != r:
            return f"go to {recs[r].name}"
        return f"use {things[lamp].name}"

    goal_recs = [r for r, rec in enumerate(recs) if rec.kind == scene.receptacle_kind]
    if tt == "pick_two_obj_and_place":

        def count(r: int) -> int:
            return sum(1 for t in st.contents[r] if things[t].kind == kind)

        dest = min(goal_recs, key=lambda r: (-count(r), _reach_cost(scene, st, r), r))
        if holding_target:
            return _place(scene, st, dest)
        return _fetch_best(
            scene, st, [t for t, th in enumerate(things) if th.kind == kind and st.where[t] != dest]
        )

    appliance_kind = world.APPLIANCE.get(tt)
    flag = {"SinkBasin": st.clean, "Microwave": st.hot, "Fridge": st.cool}.get(appliance_kind or "")
    if holding_target:
        if flag is not None and not flag[held]:
            apps = [r for r, rec in enumerate(recs) if rec.kind == appliance_kind]
            app = min(apps, key=lambda r: (st.loc != r, r))
            if st.loc != app:
                return f"go to {recs[app].name}"
            return f"{world.VERB[appliance_kind]} {things[held].name} with {recs[app].name}"
        return _place(scene, st, _cheapest(scene, st, goal_recs))
    targets = [t for t, th in enumerate(things) if th.kind == kind]
    if flag is not None:
        return _fetch_best(scene, st, targets, prefer=lambda t: (not flag[t],))
    return _fetch_best(scene, st, targets)


def is_searching(scene: Scene, st: State) -> bool:
    """Whether the expert's next step walks to (or opens) a place to find a thing there.

    Such a step uses what only the true state knows (where the thing is). A demonstrator for a policy
    that reads the prompt alone searches instead (``siri.sft.demonstrator``); every other step (taking what
    is in view, processing, delivering to the place the task names) follows from what the agent saw.
    """
    action = expert_action(scene, st)
    if not action.startswith(("go to ", "open ")):
        return False
    things = scene.things
    if st.held < 0:
        return True  # fetching (the first or, in pick_two, the second object)
    holding_target = things[st.held].kind == scene.object_kind
    return scene.task_type == "look_at_obj_in_light" and holding_target  # heading for the lamp
