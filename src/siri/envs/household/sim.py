"""The household simulator: ALFWorld's rules and wording on a ``Scene``, in plain Python.

Rules and texts are those of the ALFWorld 0.4.2 engine (``alfred.pddl`` + ``alfred.twl2`` played by
TextWorld), measured by playing exported scenes through it (see ``parity.py``):

- admissible commands are sorted strings; ``help``, ``inventory`` and ``look`` are always admissible;
  "go to X" for every receptacle except the one the agent stands at;
- a closed receptacle must be opened to see, take from, or put into it; heat/cool/clean need only the
  agent at the microwave/fridge/sinkbasin holding a heatable/coolable/cleanable object;
- "examine <object>" is admissible only for the held object (the engine never grounds the other case);
- a lamp is "used" where it stands; once used it counts as on for good (the engine's ``isToggled``);
- any other string gets "Nothing happens." and changes nothing.

The state (``state.State``) is a handful of small lists mutated in place; ``anchor`` packs it into a tuple.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable

from siri.envs.base import EnvError, EpisodeTracker, Observation, Step, malformed_action
from siri.envs.household import expert, world
from siri.envs.household.placements import DEFAULT_PLACEMENTS, check_placements
from siri.envs.household.scene import SPLIT_SIZES, Scene, check_clutter, check_task_types, generate_scene
from siri.envs.household.state import State

# Scenes are immutable and GiGPO resets every seed once per group member: keep recent ones.
cached_scene = functools.lru_cache(maxsize=4096)(generate_scene)
MAX_ACTION_CHARS = 200  # longer strings are invalid without being looked at
NOTHING = "Nothing happens."

# op codes of admissible actions
GOTO, OPEN, CLOSE, TAKE, MOVE, HEAT, COOL, CLEAN, USE, EXAMINE_R, EXAMINE_O, LOOK, INVENTORY, HELP = range(14)
_APPLIANCE_OP = {"Microwave": HEAT, "Fridge": COOL, "SinkBasin": CLEAN}


def join_list(items: list[str]) -> str:
    """TextWorld's list rendering: "nothing", "a x", "a x, and a y", "a x, a y, and a z"."""
    if not items:
        return "nothing"
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + ", and " + items[-1]


def is_won(scene: Scene, st: State) -> bool:
    """ALFWorld's goal of the scene's task type, evaluated on the whole state (the slow reference;
    ``HouseholdEnv`` checks only what the last action could have changed)."""
    kind, things, recs = scene.object_kind, scene.things, scene.receptacles
    tt = scene.task_type
    if tt == "look_at_obj_in_light":
        if st.held < 0 or things[st.held].kind != kind or st.loc < 0:
            return False
        return any(things[t].kind == scene.lamp_kind and st.toggled[t] for t in st.contents[st.loc])
    flag = {
        "pick_clean_then_place_in_recep": st.clean,
        "pick_heat_then_place_in_recep": st.hot,
        "pick_cool_then_place_in_recep": st.cool,
    }.get(tt)
    need = 2 if tt == "pick_two_obj_and_place" else 1
    for r, rec in enumerate(recs):
        if rec.kind != scene.receptacle_kind:
            continue
        n = sum(1 for t in st.contents[r] if things[t].kind == kind and (flag is None or flag[t]))
        if n >= need:
            return True
    return False


class HouseholdEnv:
    """ALFWorld's household world as a fast pure-Python environment (see the module docstring).

    Args:
        split: "train" (every seed is a new scene), "eval_id" or "eval_ood" (140 fixed scenes each).
        max_steps: the episode ends (truncated) after this many actions.
        success_reward: reward of the step that solves the task (all other steps give 0).
        task_types: pose only these task types (default: all six of ``world.TASK_TYPES``).
        clutter: share of the usual distractor objects in a room, in [0, 1] (1: ALFWorld-like). A
            difficulty knob: fewer distractors make finding the task's object among those in view easier.
        placements: where objects start: "uniform" (any compatible receptacle alike) or "typical" (where
            ALFWorld's rooms usually keep each kind, ``placements.PLACEMENTS``), so skills can carry
            placement knowledge. The same seed poses the same goal either way.
    """

    name = "household"

    def __init__(
        self,
        split: str = "train",
        max_steps: int = 50,
        success_reward: float = 1.0,
        task_types: list[str] | None = None,
        clutter: float = 1.0,
        placements: str = DEFAULT_PLACEMENTS,
    ) -> None:
        if split not in SPLIT_SIZES:
            raise EnvError(f"unknown household split {split!r}; choose one of: {', '.join(SPLIT_SIZES)}")
        self.split = split
        self.max_steps = int(max_steps)
        self.success_reward = float(success_reward)
        self.task_types = check_task_types(task_types)
        self.clutter = check_clutter(clutter)
        self.placements = check_placements(placements)
        self._tracker = EpisodeTracker(self.max_steps)
        self._scene: Scene | None = None
        self._st: State | None = None
        self._actions: dict[str, tuple[int, int, int]] = {}
        self._obs: Observation | None = None
        self._won = False

    # ---- Env protocol -------------------------------------------------------------------------
    def split_size(self) -> int | None:
        return SPLIT_SIZES[self.split]

    def reset(self, seed: int) -> Observation:
        return self.reset_to(cached_scene(self.split, seed, self.task_types, self.clutter, self.placements))

    def reset_to(self, scene: Scene) -> Observation:
        """Start an episode on a given scene (hand-built scenes in tests, scenes loaded from elsewhere)."""
        self._scene = scene
        self._prepare_scene()
        self._st = State(self._scene)
        self._won = False
        self._tracker.start()
        text = f"{world.WELCOME}\n\n{self._look_text(intro=True)}\n\nYour task is to: {self._scene.task}"
        self._obs = self._observe(text)
        return self._obs

    def step(self, action: str) -> Step:
        self._tracker.before_step(self.name)
        reason, op = malformed_action(action, MAX_ACTION_CHARS), None
        if not reason:
            key = action.strip()  # the engine strips commands too
            op = self._actions.get(key)
            if op is None:
                reason = "empty action" if not key else f"not an admissible action: {key[:80]!r}"
        if op is None:
            text = NOTHING
        else:
            text = self._apply(*op)
            self._won = self._goal_reached(*op)
        done, truncated = self._tracker.finish(self._won)
        self._obs = self._observe(text)
        won = self._won
        return Step(
            observation=self._obs,
            reward=self.success_reward if (won and not reason) else 0.0,
            done=done,
            won=won,
            valid=not reason,
            reason=reason,
            score=1.0 if won else 0.0,
            truncated=truncated,
        )

    def expert_action(self) -> str:
        if self._st is None or self._scene is None:
            raise EnvError("household: expert_action() before reset(seed); call reset(seed) first")
        return expert.expert_action(self._scene, self._st)

    def expert_searching(self) -> bool:
        """Whether ``expert_action()`` heads for a thing the agent has not seen (see ``expert.is_searching``)."""
        return expert.is_searching(self.scene, self.state)

    def goal_object(self) -> str:
        """The word of the object the task asks for ("dishsponge"), as the agent reads it in the task."""
        return world.display(self.scene.object_kind)

    def goal_lamp(self) -> str | None:
        """The word of the lamp a look-at task names ("desklamp"); None for other tasks."""
        return world.display(self.scene.lamp_kind) if self.scene.lamp_kind else None

    # ---- extras -------------------------------------------------------------------------------
    @property
    def scene(self) -> Scene:
        if self._scene is None:
            raise EnvError("household: no scene before reset(seed)")
        return self._scene

    @property
    def state(self) -> State:
        if self._st is None:
            raise EnvError("household: no state before reset(seed)")
        return self._st

    @property
    def observation(self) -> Observation:
        if self._obs is None:
            raise EnvError("household: no observation before reset(seed)")
        return self._obs

    def anchor(self) -> Hashable:
        return self.state.anchor()

    # ---- internals ----------------------------------------------------------------------------
    def _prepare_scene(self) -> None:
        """Per-scene string tables so that a step only concatenates and sorts short lists."""
        sc = self.scene
        rn = [r.name for r in sc.receptacles]
        self._rn = rn
        self._tn = [t.name for t in sc.things]
        self._a_tn = ["a " + n for n in self._tn]
        self._fits = [[t.kind in world.CAN_CONTAIN[r.kind] for t in sc.things] for r in sc.receptacles]
        self._app_op = [_APPLIANCE_OP.get(r.kind, -1) for r in sc.receptacles]
        gotos = [(f"go to {n}", (GOTO, r, -1)) for r, n in enumerate(rn)]
        self._goto = [[g for g in gotos if g[1][1] != loc] for loc in range(-1, len(rn))]

    def _goal_reached(self, op: int, a: int, b: int) -> bool:
        """The goal after action (op, a, b): only moving a thing into a goal receptacle can complete a
        placing task (heat/cool/clean act on the held thing), and only going somewhere, taking, or
        using a lamp can complete look_at_obj_in_light."""
        sc = self.scene
        if sc.task_type == "look_at_obj_in_light":
            return op in (GOTO, TAKE, USE) and is_won(sc, self.state)
        return op == MOVE and sc.receptacles[b].kind == sc.receptacle_kind and is_won(sc, self.state)

    def _observe(self, text: str) -> Observation:
        self._actions = self._admissible()
        return Observation(
            text=text,
            task=self.scene.task,
            task_type=self.scene.task_type,
            admissible_actions=tuple(sorted(self._actions)),
            anchor=self.state.anchor(),
            step=self._tracker.steps,
        )

    def _admissible(self) -> dict[str, tuple[int, int, int]]:
        st, sc = self.state, self.scene
        acts = dict(self._goto[st.loc + 1])
        acts["help"] = (HELP, -1, -1)
        acts["inventory"] = (INVENTORY, -1, -1)
        acts["look"] = (LOOK, -1, -1)
        h = st.held
        if h >= 0:
            acts[f"examine {self._tn[h]}"] = (EXAMINE_O, h, -1)
        r = st.loc
        if r < 0:
            return acts
        rname = self._rn[r]
        rec = sc.receptacles[r]
        acts[f"examine {rname}"] = (EXAMINE_R, r, -1)
        visible = not rec.openable or st.opened[r]
        if rec.openable:
            if st.opened[r]:
                acts[f"close {rname}"] = (CLOSE, r, -1)
            else:
                acts[f"open {rname}"] = (OPEN, r, -1)
        for t in st.contents[r]:
            thing = sc.things[t]
            if thing.toggleable:
                acts[f"use {self._tn[t]}"] = (USE, t, r)
            if h < 0 and visible and thing.pickupable:
                acts[f"take {self._tn[t]} from {rname}"] = (TAKE, t, r)
        if h >= 0:
            if visible and self._fits[r][h]:
                acts[f"move {self._tn[h]} to {rname}"] = (MOVE, h, r)
            op = self._app_op[r]
            held = sc.things[h]
            if op == HEAT and held.heatable:
                acts[f"heat {self._tn[h]} with {rname}"] = (HEAT, h, r)
            elif op == COOL and held.coolable:
                acts[f"cool {self._tn[h]} with {rname}"] = (COOL, h, r)
            elif op == CLEAN and held.cleanable:
                acts[f"clean {self._tn[h]} with {rname}"] = (CLEAN, h, r)
        return acts

    def _receptacle_text(self, r: int) -> str:
        st = self.state
        name = self._rn[r]
        if self.scene.receptacles[r].openable:
            if not st.opened[r]:
                return f"The {name} is closed."
            return f"The {name} is open. In it, you see {join_list([self._a_tn[t] for t in st.contents[r]])}."
        return f"On the {name}, you see {join_list([self._a_tn[t] for t in st.contents[r]])}."

    def _look_text(self, intro: bool = False) -> str:
        loc = self.state.loc
        if loc < 0:
            # The engine lists the receptacles "at the agent's location": all of them in the intro (no
            # location bound yet), none for a "look" command (bound to the middle of the room).
            seen = join_list(["a " + n for n in self._rn]) if intro else "nothing"
            return f"You are in the middle of a room. Looking quickly around you, you see {seen}."
        # "Next to it" lists objects at the location outside the receptacle: there never are any.
        return f"You are facing the {self._rn[loc]}. Next to it, you see nothing."

    def _object_text(self, t: int) -> str:
        st, thing, name = self.state, self.scene.things[t], self._tn[t]
        if thing.container:
            return f"This is a normal {name}. In it, you see nothing."
        clean, hot, cool = st.clean[t], st.hot[t], st.cool[t]
        if clean and hot:
            return f"This is a hot and clean {name}."
        if clean and cool:
            return f"This is a cool and clean {name}."
        if hot:
            return f"This is a hot {name}."
        if clean:
            return f"This is a clean {name}."
        if cool:
            return f"This is a cold {name}."
        return f"There's nothing special about {name}."

    def _apply(self, op: int, a: int, b: int) -> str:
        st = self.state
        if op == GOTO:
            st.loc = a
            return f"You arrive at {self._rn[a]}. {self._receptacle_text(a)}"
        if op == OPEN:
            st.opened[a] = True
            return f"You open the {self._rn[a]}. {self._receptacle_text(a)}"
        if op == CLOSE:
            st.opened[a] = False
            return f"You close the {self._rn[a]}."
        if op == TAKE:
            st.contents[b].remove(a)
            st.where[a] = -1
            st.held = a
            return f"You pick up the {self._tn[a]} from the {self._rn[b]}."
        if op == MOVE:
            items = st.contents[b]
            items.append(a)
            items.sort()
            st.where[a] = b
            st.held = -1
            return f"You move the {self._tn[a]} to the {self._rn[b]}."
        if op == HEAT:
            st.hot[a], st.cool[a] = True, False
            return f"You heat the {self._tn[a]} using the {self._rn[b]}."
        if op == COOL:
            st.cool[a], st.hot[a] = True, False
            return f"You cool the {self._tn[a]} using the {self._rn[b]}."
        if op == CLEAN:
            st.clean[a] = True
            return f"You clean the {self._tn[a]} using the {self._rn[b]}."
        if op == USE:
            st.toggled[a] = True
            return f"You turn on the {self._tn[a]}."
        if op == EXAMINE_R:
            return self._receptacle_text(a)
        if op == EXAMINE_O:
            return self._object_text(a)
        if op == LOOK:
            return self._look_text()
        if op == INVENTORY:
            if st.held >= 0:
                return f"You are carrying: {self._a_tn[st.held]}."
            return "You are not carrying anything."
        return world.HELP_TEXT
