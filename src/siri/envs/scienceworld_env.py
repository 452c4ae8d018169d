"""ScienceWorld (Wang et al., 2022: 30 elementary-science tasks in a simulated house) behind the common Env
interface, on the ``scienceworld`` package's Java engine.

Tasks and splits: ``tasks`` (task names such as ``boil`` or ids such as ``1-1``; default all 30) times the
engine's own variation sets: split ``train``/``dev``/``test`` plays the variations the engine lists for it
(``getVariationsTrain/Dev/Test``), so splits never share a variation. ``max_variations`` keeps the first N
of each task's list (a quick evaluation set). Episodes interleave the tasks (seed 0 is the first task's
first variation, seed 1 the second task's first, ...), so the first seeds of a split cover every task;
seed ``i`` plays episode ``i mod split_size()`` (``split_seed``). The task type is the task name.

Score and reward: the engine scores 0..100 (partial credit per subgoal); ``score`` is that over 100 and
``reward`` the step's change in it, so an episode's rewards add up to its final score. A negative engine
score means the task failed (focusing on the wrong object, say): the episode ends with score 0 (the reward
takes back what was earned) and ``info["failed"]``. ``won`` is a score of 100.

Actions: ``admissible_actions`` is the engine's list of valid action-object combinations (thousands in a
furnished room), filtered and capped so that a ``choose`` policy can read it (``filter_actions``):

- dropped: actions naming an object the engine's parser cannot name now (neither in its referent table nor
  directly in the inventory: the engine lists "move bee 2 to outside" for a bee its parser does not know,
  then refuses it);
  ``reset task`` (it would wipe the episode's progress; refused as free text too) and ``task`` (the task is
  in the prompt); connect/disconnect outside the electricity tasks, and between objects
  without electrical terminals; ``go to`` anything but a room (the engine also lists its doors);
  ``move``/``pour``/``dunk``/``use`` unless the first object is in the inventory; ``pick up`` of what cannot
  be moved (tables, cupboards); ``mix`` on non-containers;
  any other action on a room, a door (other than open/close) or the agent itself;
- ordered: look around, inventory and waiting; moving (go to, open, close); taking and putting down;
  devices and held objects (activate, move, pour, use, connect...); focus on; looking at, reading, eating,
  mixing; within each, actions naming a word of the task first, then alphabetically;
- capped at ``max_actions`` (default 60; 0: no cap); ``info["actions_listed"]`` says how many passed the
  filter before the cap.

Should the engine refuse an action it listed anyway, the step is invalid (nothing changes) and the action is
left out of the lists for the rest of the episode (only that episode's: a reset lists it again, so that an
episode's lists are a function of the episode alone, whatever ran before it in the process).

Free text: the engine's own action templates are the observation's ``action_templates`` ("focus on <OBJ>",
"move <OBJ to OBJ>"), so a free-text agent may write any command; the engine judges it. Input it cannot
parse is an invalid step that changes nothing (the engine does not count it). An ambiguous command
executes the engine's first reading (the "0" answer its own gold paths rely on).

Anchor: the engine's object tree (every object, where it is, its properties: open, on, state of matter,
life stage, connections...) without object ids and temperatures, hashed, with the score. Temperatures drift
every tick and their last digits depend on the engine's history in its JVM, so two identical episodes would
otherwise never share a state; a change of state of matter still changes the anchor.

Expert: the engine's gold action sequence for the variation (generated once per process, on first
``expert_action()``, on a simulation of its own taken from the pool, never the episode's; without its "0"
answers to ambiguous requests, which this env gives itself), followed in order. The engine's path generator
is random and now and then writes a path that fails (Mendelian genetics): each path is played through once
on raw engine steps (about a second at most) and, if it does not reach 100, generated again, up to
``GOLD_ATTEMPTS`` times (the best is kept). A gold command the engine refuses (the run that generated the
path was a tick ahead: the tin had already melted) is retried after ``wait1``, up to three times, then
skipped. It is open loop: after a detour it carries on from where it was, which a detour that moved things
can defeat. Its actions are free text, often phrased differently from the valid-action list (``focus on
thermometer in inventory``), so in ``choose`` mode a policy cannot always pick them.

Java: one JVM per process (started with the first environment, about 1 s), one simulation in it per
environment (independent worlds; a new one takes about 0.25 s). ``close()`` hands the simulation to a pool
that the next environment reuses, so the trainer's fresh environments per collection cost nothing; a reset
reloads the variation and builds the first observation (about 0.1 s, docs/scienceworld.md). The JVM exits at
interpreter exit or with ``shutdown_engines()``, and also when its Python process dies (py4j's
``die_on_exit``).
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

from siri.envs.base import EnvError, EpisodeTracker, Observation, Step, malformed_action, split_seed
from siri.utils.io import atomic_write_json, cache_root

SPLITS = ("train", "dev", "test")
INSTALL = "pip install 'siri-rl[scienceworld]'"
MAX_ACTION_CHARS = 300
DEFAULT_MAX_ACTIONS = 60
NO_MATCH = "No known action matches that input."
AMBIGUOUS = "Ambiguous request"
REFUSED = {"reset task": "reset task is refused: it would wipe the episode's progress"}
ELECTRICAL = ("power-component", "conductivity")
SIMPLIFICATIONS = ("teleportAction", "openDoors", "openContainers", "selfWateringFlowerPots",
                   "noElectricalAction")
# What the engine makes of "easy" (AgentInterface): these, less noElectricalAction for the electrical tasks.
EASY = ("teleportAction", "noElectricalAction", "openDoors", "selfWateringFlowerPots")
TASK_PREFIX = "Your task is to "
MAX_IDLE_ENGINES = 64
GOLD_RETRIES = 3  # the expert retries a refused gold command this often, a tick later each time
GOLD_ATTEMPTS = 3  # gold paths generated per variation until one reaches a score of 100 (else the best)

# The engine's action template ids (``get_possible_actions_with_IDs``) by what the filter does with them.
T_OPEN, T_CLOSE, T_GO, T_LOOK_AROUND, T_LOOK_AT, T_LOOK_IN = 0, 1, 2, 3, 4, 5
T_ACTIVATE, T_DEACTIVATE, T_EAT, T_MOVE, T_POUR, T_FOCUS, T_RESET, T_USE, T_READ, T_FLUSH = (
    6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
T_CONNECT, T_DISCONNECT, T_WAIT1, T_WAIT, T_INVENTORY, T_PICK_UP, T_PUT_DOWN, T_MIX, T_TASK, T_DUNK = (
    16, 17, 18, 19, 20, 21, 22, 23, 24, 26)
HELD_FIRST = {T_MOVE, T_POUR, T_DUNK, T_USE}
# Lower tiers are listed first (and survive the cap).
TIERS = {
    T_LOOK_AROUND: 0, T_INVENTORY: 0, T_WAIT1: 0, T_WAIT: 0,
    T_GO: 1, T_OPEN: 1, T_CLOSE: 1,
    T_PICK_UP: 2, T_PUT_DOWN: 2,
    T_ACTIVATE: 3, T_DEACTIVATE: 3, T_MOVE: 3, T_POUR: 3, T_USE: 3, T_DUNK: 3, T_CONNECT: 3, T_DISCONNECT: 3,
    T_FOCUS: 4,
    T_LOOK_AT: 5, T_LOOK_IN: 5, T_READ: 5, T_EAT: 5, T_MIX: 5, T_FLUSH: 5,
}
_STOPWORDS = frozenset({"a", "an", "the", "to", "of", "in", "on", "and", "or", "for", "is", "it", "its",
                        "your", "you", "then", "first", "this", "that", "with", "into", "from", "task",
                        "focus", "when", "are", "be", "by", "at", "as", "do", "done"})


def _package() -> Any:
    """The ``scienceworld`` package, or the error that names the extra to install."""
    try:
        import scienceworld
        import scienceworld.constants
    except ImportError as e:
        raise EnvError(f"the scienceworld environment needs the ScienceWorld engine ({e}); "
                       f"install: {INSTALL}") from e
    return scienceworld


def task_names() -> list[str]:
    """The engine's 30 task names, in its own order (from the package's task list; no JVM needed)."""
    return list(dict.fromkeys(_package().constants.ID2TASK.values()))


def is_electrical(task: str) -> bool:
    """Whether ``task`` needs electrical actions (connect, disconnect): the engine's own test, by name."""
    return any(word in task.lower() for word in ELECTRICAL)


def task_simplifications(simplifications: str, task: str) -> list[str]:
    """The simplifications ``task`` is loaded with: ``easy`` expanded into its parts as the engine expands it
    (``EASY``, without noElectricalAction for an electrical task), duplicates dropped. Every check sees the
    parts, and the engine gets them too: it expands ``easy`` only when it comes alone, and silently drops
    every simplification of a list that names it."""
    parts: list[str] = []
    for item in (s.strip() for s in str(simplifications or "").split(",")):
        if item == "easy":
            parts += [s for s in EASY if not (s == "noElectricalAction" and is_electrical(task))]
        elif item:
            parts.append(item)
    return list(dict.fromkeys(parts))


def resolve_tasks(tasks: str | Sequence[str] | None) -> list[str]:
    """Task names from names or ids ("boil", "1-1"); unknown ones name the valid choices."""
    names = task_names()
    if tasks is None:
        return names
    if isinstance(tasks, str):
        tasks = [t for t in tasks.split(",") if t.strip()]
    by_id = _package().constants.ID2TASK
    out: list[str] = []
    for task in tasks:
        key = str(task).strip()
        name = by_id.get(key, key)
        if name not in names:
            raise EnvError(f"scienceworld: unknown task {key!r}; choose names or ids of: {', '.join(names)}")
        if name not in out:
            out.append(name)
    if not out:
        raise EnvError(f"scienceworld: no tasks given; choose among: {', '.join(names)}")
    return out


# ------------------------------------------------------------------------------------------ engines


class Engine:
    """One ScienceWorld simulation: an instance of the engine's Python interface inside this process's JVM.

    Simulations in one JVM are independent (each loads its own task); the calls are the ones the
    ``scienceworld`` package's own wrapper makes, minus the extra round trips its ``step`` adds per move.
    """

    def __init__(self, server: Any, jvm: Any, tree_dir: Path) -> None:
        self.server, self.jvm, self.tree_dir = server, jvm, tree_dir

    def load(self, task: str, variation: int, simplifications: str, gold: bool = False) -> None:
        parts = task_simplifications(simplifications, task)
        if is_electrical(task) and "noElectricalAction" in parts:
            raise EnvError(f"scienceworld: task {task} needs electrical actions; drop noElectricalAction "
                           "from simplifications for it")
        self.server.load(task, int(variation), ",".join(parts), bool(gold))

    def object_tree(self) -> dict[str, Any]:
        message = self.server.getObjectTree(str(self.tree_dir))
        if message:
            raise EnvError(f"scienceworld: the engine could not export its state: {message}")
        return json.loads((self.tree_dir / "objectTree.json").read_text())

    def valid_combinations(self) -> list[dict[str, Any]]:
        return list(json.loads(self.server.getValidActionObjectCombinationsJSON())["validActions"])

    def referents(self) -> set[int]:
        """The objects the engine's parser can name now (those in view; the inventory's are not listed)."""
        return {int(k) for k in json.loads(self.server.getPossibleObjectReferentLUTJSON())}

    def templates(self) -> list[dict[str, Any]]:
        return list(json.loads(self.server.getPossibleActionsWithIDs()))

    def variations(self) -> dict[str, list[int]]:
        return {"train": [int(v) for v in self.server.getVariationsTrain()],
                "dev": [int(v) for v in self.server.getVariationsDev()],
                "test": [int(v) for v in self.server.getVariationsTest()]}

    def gold(self) -> list[str]:
        return [str(a) for a in self.server.getGoldActionSequence()]


# The package's ScienceWorldEnv that launched this process's JVM (kept: its __del__ stops it).
_JVM: Any = None
_IDLE: list[Engine] = []
_TREES: tempfile.TemporaryDirectory[str] | None = None
_COUNT = 0


def _running() -> bool:
    return _JVM is not None and _JVM._gateway.java_process.poll() is None


def _start_jvm() -> Any:
    global _JVM, _TREES
    package = _package()
    if shutil.which("java") is None:
        raise EnvError("scienceworld: its engine runs on Java and no `java` is on PATH; install a Java "
                       "runtime (17 works), e.g. apt-get install openjdk-17-jre-headless (or "
                       "default-jre-headless)")
    _IDLE.clear()
    try:
        _JVM = package.ScienceWorldEnv("", envStepLimit=10**9)
    except Exception as e:  # py4j reports a JVM that would not start as a bare Exception subclass
        raise EnvError(f"scienceworld: the Java engine did not start: {e}") from e
    if _TREES is None:
        _TREES = tempfile.TemporaryDirectory(prefix="siri-scienceworld-")
    return _JVM


def _take_engine() -> Engine:
    """An idle simulation of the running JVM, else a new one (the JVM starts with the first: about 1 s)."""
    global _COUNT
    if not _running():
        _start_jvm()
        fresh = _JVM.server  # the interface the package's wrapper made is the first simulation
    elif _IDLE:
        return _IDLE.pop()
    else:
        fresh = _JVM._gateway.jvm.scienceworld.runtime.pythonapi.PythonInterface()
    _COUNT += 1
    assert _TREES is not None
    folder = Path(_TREES.name) / f"engine-{_COUNT}"
    folder.mkdir(parents=True, exist_ok=True)
    return Engine(fresh, _JVM, folder)


def _release_engine(engine: Engine) -> None:
    if engine.jvm is _JVM and _running() and len(_IDLE) < MAX_IDLE_ENGINES:
        _IDLE.append(engine)


def jvm_process() -> subprocess.Popen[bytes] | None:
    """This process's ScienceWorld JVM (None before the first environment starts it or after shutdown)."""
    return _JVM._gateway.java_process if _JVM is not None else None


def shutdown_engines() -> None:
    """Stop this process's JVM, forget its simulations (close the environments first: theirs die too) and
    remove the folder their state exports were written to."""
    global _JVM, _TREES
    if _TREES is not None:
        _TREES.cleanup()
        _TREES = None
    if _JVM is None:
        return
    jvm, _JVM = _JVM, None
    _IDLE.clear()
    process = jvm._gateway.java_process
    # a JVM that already died leaves a broken gateway: only its process matters
    with contextlib.suppress(Exception):
        jvm.close()
    jvm.close = lambda: None  # the package's __del__ closes again; once is enough
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


atexit.register(shutdown_engines)


def idle_engines() -> int:
    """How many simulations wait in this process's pool for the next environment."""
    return len(_IDLE)


# ------------------------------------------------------------------------------------------ variations


def _variations_file() -> Path:
    return cache_root() / "scienceworld" / f"variations-{_package().__version__}.json"


def task_variations(tasks: Sequence[str]) -> dict[str, dict[str, list[int]]]:
    """Each task's train/dev/test variation lists, from the engine (cached on disk per engine version)."""
    path = _variations_file()
    try:
        known: dict[str, dict[str, list[int]]] = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        known = {}
    missing = [t for t in tasks if t not in known]
    if missing:
        engine = _take_engine()
        try:
            for task in missing:
                engine.load(task, 0, "")
                known[task] = engine.variations()
        finally:
            _release_engine(engine)
        atomic_write_json(path, known)
    return {t: known[t] for t in tasks}


def interleave(per_task: dict[str, list[int]]) -> list[tuple[str, int]]:
    """(task, variation) pairs, round robin over the tasks in order, so the first seeds cover every task."""
    out: list[tuple[str, int]] = []
    longest = max((len(v) for v in per_task.values()), default=0)
    for r in range(longest):
        out += [(task, variations[r]) for task, variations in per_task.items() if r < len(variations)]
    return out


# ------------------------------------------------------------------------------------------ state


def _canonical(node: dict[str, Any]) -> dict[str, Any]:
    """A tree node without ids and temperatures, its contents in a fixed order."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "uuid":
            continue
        if key == "contents":
            out[key] = sorted(json.dumps(_canonical(child), sort_keys=True) for child in value.values())
        elif key == "propMaterial" and isinstance(value, dict):
            out[key] = {k: v for k, v in value.items() if k != "temperatureC"}
        else:
            out[key] = value
    return out


def tree_digest(tree: dict[str, Any]) -> str:
    """A short hash of the object tree's canonical form (see the module docstring's anchor)."""
    return hashlib.sha1(json.dumps(_canonical(tree), sort_keys=True).encode()).hexdigest()[:20]


def tree_roles(tree: dict[str, Any]) -> dict[str, set[int]]:
    """Object ids by role: rooms, doors, the agent (and its inventory), held (inside the inventory, at any
    depth), in_hand (directly in the inventory), containers, electrical (objects with terminals), movable."""
    roles: dict[str, set[int]] = {k: set() for k in ("rooms", "doors", "agent", "held", "in_hand",
                                                     "containers", "electrical", "movable")}
    roles["rooms"] = {int(room["uuid"]) for room in tree.get("contents", {}).values()}

    def walk(node: dict[str, Any], held: bool) -> None:
        uid = int(node["uuid"])
        if held:
            roles["held"].add(uid)
        if node.get("name") in ("agent", "inventory"):
            roles["agent"].add(uid)
        if node.get("propPortal"):
            roles["doors"].add(uid)
        container = node.get("propContainer") or {}
        if str(container.get("isContainer", "")).lower() == "true":
            roles["containers"].add(uid)
        if node.get("propElectricalConnection") is not None:
            roles["electrical"].add(uid)
        if (node.get("propMoveable") or {}).get("isMovable"):
            roles["movable"].add(uid)
        for child in node.get("contents", {}).values():
            if node.get("name") == "inventory":
                roles["in_hand"].add(int(child["uuid"]))
            walk(child, held or node.get("name") == "inventory")

    walk(tree, False)
    return roles


def filter_actions(valid: Sequence[dict[str, Any]], roles: dict[str, set[int]], task: str, task_name: str,
                   max_actions: int) -> tuple[list[str], int]:
    """The admissible list from the engine's valid combinations (module docstring); returns (list, how many
    passed the filter before the cap)."""
    electrical = is_electrical(task_name)
    task_words = {w for w in re.findall(r"[a-z]+", task.lower()) if w not in _STOPWORDS and len(w) > 2}
    ranked: list[tuple[int, int, str]] = []
    seen: set[str] = set()
    # what the parser can name: its referent table (what is in view) and, outside it, the agent, its inventory
    # and what is directly in it (not what those hold: the bees of a hive in hand are refused)
    nameable = roles.get("referents", set()) | roles["in_hand"] | roles["agent"]
    for combo in valid:
        template, action = int(combo["template_id"]), str(combo["action"])
        ids = [int(i) for i in combo["obj_ids"]]
        if template not in TIERS or action in seen:
            continue
        if "referents" in roles and any(i not in nameable for i in ids):
            continue  # an object the parser cannot name: the engine lists the action but refuses it
        if template in (T_CONNECT, T_DISCONNECT):
            if not electrical or any(i not in roles["electrical"] for i in ids):
                continue
        elif template == T_GO:
            if not ids or ids[0] not in roles["rooms"]:
                continue
        elif template not in (T_OPEN, T_CLOSE) and any(
                i in roles["rooms"] or i in roles["doors"] or i in roles["agent"] for i in ids):
            continue
        if template in HELD_FIRST and (not ids or ids[0] not in roles["held"]):
            continue
        if template == T_MIX and (not ids or ids[0] not in roles["containers"]):
            continue
        if template == T_PICK_UP and (not ids or ids[0] not in roles["movable"]):
            continue
        seen.add(action)
        relevant = 0 if task_words & set(re.findall(r"[a-z]+", action.lower())) else 1
        ranked.append((TIERS[template], relevant, action))
    ranked.sort()
    listed = [action for _, _, action in ranked]
    return (listed[:max_actions] if max_actions > 0 else listed), len(listed)


# The template ids above, as the engine spells them: checked once per task of an environment, since the filter
# relies on them.
TEMPLATE_TEXTS = {
    T_OPEN: "open OBJ", T_CLOSE: "close OBJ", T_GO: "go OBJ", T_LOOK_AROUND: "look around",
    T_LOOK_AT: "look at OBJ", T_LOOK_IN: "look in OBJ", T_ACTIVATE: "activate OBJ",
    T_DEACTIVATE: "deactivate OBJ", T_EAT: "eat OBJ", T_MOVE: "move OBJ to OBJ", T_POUR: "pour OBJ in OBJ",
    T_FOCUS: "focus on OBJ", T_RESET: "reset task", T_USE: "use OBJ on OBJ", T_READ: "read OBJ",
    T_FLUSH: "flush OBJ", T_CONNECT: "connect OBJ to OBJ", T_DISCONNECT: "disconnect OBJ", T_WAIT1: "wait1",
    T_WAIT: "wait", T_INVENTORY: "inventory", T_PICK_UP: "pick up OBJ", T_PUT_DOWN: "put down OBJ",
    T_MIX: "mix OBJ", T_TASK: "task", T_DUNK: "dunk OBJ in OBJ",
}


def action_templates(engine: Engine, simplifications: Sequence[str] = ()) -> tuple[str, ...]:
    """The engine's templates with objects as one ``<...>`` slot ("move <OBJ to OBJ>"), for free-text agents;
    an engine whose template ids differ from ``TEMPLATE_TEXTS`` is refused (the filter would misread it).

    ``simplifications`` are the loaded task's (``task_simplifications``): noElectricalAction takes connect
    and disconnect out of the engine's templates, teleportAction adds "teleport OBJ" under the go template's
    id."""
    entries = engine.templates()
    known: dict[int, set[str]] = {}
    for e in entries:
        known.setdefault(int(e["template_id"]), set()).add(str(e["action_example"]))
    removed = {T_CONNECT, T_DISCONNECT} if "noElectricalAction" in simplifications else set()
    wrong = {i: t for i, t in TEMPLATE_TEXTS.items() if t not in known.get(i, set())
             and not (i in removed and i not in known)}
    if wrong:
        raise EnvError(f"scienceworld: this engine's action templates differ from the ones siri-rl knows "
                       f"({wrong}); install the tested version: {INSTALL}")
    out = []
    for entry in entries:
        text, template = str(entry["action_example"]), int(entry["template_id"])
        if "OBJ" not in text or template in (T_RESET, T_TASK):
            continue
        if template == T_GO:  # the examples say "go OBJ", "teleport OBJ"; the actions and gold paths say "to"
            text = text.replace(" OBJ", " to OBJ", 1)
        start, end = text.index("OBJ"), text.rindex("OBJ") + 3
        out.append(f"{text[:start]}<{text[start:end]}>{text[end:]}")
    return tuple(sorted(out))


def play_gold(engine: Engine, gold: Sequence[str], limit: int = 1000) -> float:
    """The engine score (-1..1) a gold path reaches from the loaded start, played as the expert plays it: the
    engine's first reading of an ambiguous command, a refused command retried a tick later (``GOLD_RETRIES``
    times) then skipped. Raw engine steps (a few ms each): no observation is built."""
    server, k, misses, steps = engine.server, 0, 0, 0
    while k < len(gold) and steps < limit and not server.getCompleted():
        text, steps = str(server.step(gold[k])), steps + 1
        if text.startswith(NO_MATCH):
            misses += 1
            if misses > GOLD_RETRIES:
                k, misses = k + 1, 0
            else:
                server.step("wait1")
                steps += 1
            continue
        if text.startswith(AMBIGUOUS):
            server.step("0")
        k, misses = k + 1, 0
    return float(server.getScore())


# ------------------------------------------------------------------------------------------ the env

_GOLD: dict[tuple[str, int, str], list[str]] = {}


def _py4j_error() -> type[Exception]:
    """py4j's base error (imported once an engine runs: py4j comes with the scienceworld extra)."""
    from py4j.protocol import Py4JError

    return Py4JError


def _count_option(name: str, value: Any, least: int, hint: str, optional: bool = False) -> int | None:
    """An integer option of at least ``least`` (``None`` stays ``None`` where ``optional``), or the EnvError
    that names it."""
    if value is None and optional:
        return None
    try:
        number = int(value)
        if isinstance(value, bool) or number != float(value) or number < least:
            raise ValueError
    except (TypeError, ValueError):
        raise EnvError(f"scienceworld: {name} must be >= {least} ({hint}), a whole number; "
                       f"got {value!r}") from None
    return number


class ScienceWorldEnv:
    """ScienceWorld as an Env (see the module docstring).

    Args:
        split: "train", "dev" or "test" (the engine's variation sets).
        max_steps: the episode ends (truncated) after this many actions (the engine's own default limit: 100).
        tasks: task names or ids (list or comma string); default all 30.
        max_variations: keep the first N variations of each task in this split (default: all).
        simplifications: the engine's simplifications, comma-separated (teleportAction, openDoors,
            openContainers, selfWateringFlowerPots, noElectricalAction, or easy: teleportAction, openDoors,
            selfWateringFlowerPots and, but for the electrical tasks, noElectricalAction, as the engine reads
            it; ``task_simplifications``); default none.
        max_actions: cap of the admissible list (0: the whole filtered list).
    """

    name = "scienceworld"

    def __init__(
        self,
        split: str = "train",
        max_steps: int = 100,
        tasks: str | list[str] | None = None,
        max_variations: int | None = None,
        simplifications: str = "",
        max_actions: int = DEFAULT_MAX_ACTIONS,
    ) -> None:
        if split not in SPLITS:
            raise EnvError(f"unknown scienceworld split {split!r}; choose one of: {', '.join(SPLITS)}")
        n_variations = _count_option("max_variations", max_variations, 1, "or unset for all", optional=True)
        cap = _count_option("max_actions", max_actions, 0, "0: no cap")
        assert cap is not None
        self.split = split
        self.max_steps = int(max_steps)
        self.tasks = resolve_tasks(tasks)
        self.simplifications = self._check_simplifications(simplifications)
        self.max_actions = cap
        self._tracker = EpisodeTracker(self.max_steps)
        variations = task_variations(self.tasks)
        per_task = {t: v[split][:n_variations] if n_variations else v[split] for t, v in variations.items()}
        self.episodes = interleave(per_task)
        if not self.episodes:
            raise EnvError(f"scienceworld: the {split} split of {', '.join(self.tasks)} has no variations")
        self._engine: Engine | None = None
        self._templates: dict[str, tuple[str, ...]] = {}  # per task: the simplifications can change them
        self._obs: Observation | None = None
        self._episode: tuple[str, int] = ("", 0)
        self._task = ""
        self._score = 0.0
        self._executed: list[str] = []
        self._gold_next, self._gold_misses, self._gold_wait = 0, 0, False
        self._roles: dict[str, set[int]] = {}
        self._listed = 0
        # Listed actions the engine's own parser refused this episode ("focus on bee 0" among several bees):
        # per episode, so that an episode's lists depend on the episode alone, never on what ran before it.
        self._rejected: set[str] = set()

    @staticmethod
    def _check_simplifications(text: str) -> str:
        known = (*SIMPLIFICATIONS, "easy")
        items = [s.strip() for s in str(text or "").split(",") if s.strip()]
        bad = [s for s in items if s not in known]
        if bad:
            raise EnvError(f"scienceworld: unknown simplification(s) {', '.join(bad)}; "
                           f"choose among: {', '.join(known)}")
        return ",".join(items)

    # ------------------------------------------------------------------ interface

    def split_size(self) -> int:
        return len(self.episodes)

    def reset(self, seed: int) -> Observation:
        try:
            index = split_seed(seed, len(self.episodes))
        except EnvError as e:
            raise EnvError(f"scienceworld: {e}") from None
        task, variation = self.episodes[index]
        if self._engine is None or self._engine.jvm is not _JVM or not _running():
            self._engine = _take_engine()  # the first reset, or the JVM was shut down since
        self._engine.load(task, variation, self.simplifications)
        if task not in self._templates:  # the engine lists them once a task is loaded
            parts = task_simplifications(self.simplifications, task)
            self._templates[task] = action_templates(self._engine, parts)
        self._episode = (task, variation)
        server = self._engine.server
        task = " ".join(str(server.getTaskDescription()).split())
        self._task = task[len(TASK_PREFIX):] if task.startswith(TASK_PREFIX) else task  # the prompt says it
        self._score = 0.0
        self._executed = []
        self._rejected = set()
        self._gold_next, self._gold_misses, self._gold_wait = 0, 0, False
        self._tracker.start()
        # "look around" at no cost in time
        self._obs = self._observe(str(server.freeActionLook()).strip(), 0.0, {})
        return self._obs

    def step(self, action: str) -> Step:
        self._tracker.before_step(self.name)
        assert self._obs is not None and self._engine is not None
        reason, command, text = "", "", "Nothing happens."
        reason = malformed_action(action, MAX_ACTION_CHARS)
        if not reason:
            command = " ".join(action.split())
            if not command:
                reason = "empty action"
            elif command.lower() in REFUSED:
                reason = REFUSED[command.lower()]
        broken = False
        if not reason:
            try:
                text, answered = self._send(command)
            except _py4j_error() as e:  # the engine failed (a Java exception, a lost gateway): no crash here
                first = (str(e).strip().splitlines() or [""])[0][:200]
                reason = f"the engine failed on {command[:80]!r} ({type(e).__name__}: {first})"
                text, broken = "Nothing happens.", True
            else:
                self._after_send(command, text, answered)
                if text.startswith(NO_MATCH):
                    reason = self._refusal(command)
        # an engine that failed is not asked again: nothing is known to have changed
        raw = self._score if broken else float(self._engine.server.getScore())
        failed = raw < 0
        score = 0.0 if failed else min(raw, 1.0)
        won = not failed and round(100 * raw) >= 100
        over = won or failed or (not broken and bool(self._engine.server.getCompleted()))
        reward, self._score = score - self._score, score
        done, truncated = self._tracker.finish(over)
        info = {"failed": failed, "engine_score": round(100 * raw)}
        if reason:  # nothing changed: the same lists and anchor, the step counted
            info["actions_listed"] = self._listed
            listed = tuple(a for a in self._obs.admissible_actions if a not in self._rejected)
            self._obs = dataclasses.replace(self._obs, text=text, step=self._tracker.steps,
                                            admissible_actions=listed)
        else:
            self._obs = self._observe(text, score, info)
        return Step(observation=self._obs, reward=reward, done=done, won=won, valid=not reason, reason=reason,
                    score=score, truncated=truncated, info=info)

    def _send(self, command: str) -> tuple[str, bool]:
        """The engine's answer to ``command``, and whether it was ambiguous (then answered with the engine's
        first reading, "0")."""
        assert self._engine is not None
        server = self._engine.server
        text = str(server.step(command)).strip()
        if text.startswith(AMBIGUOUS):
            return str(server.step("0")).strip(), True
        return text, False

    def _after_send(self, command: str, text: str, answered: bool) -> None:
        """The episode's record of a command the engine answered: executed, and the expert's place in its
        path."""
        if text.startswith(NO_MATCH):  # the engine did not count the move
            self._gold_refused(command)
            return
        self._executed += [command, "0"] if answered else [command]
        gold = _GOLD.get(self._gold_key())
        if gold and self._gold_next < len(gold) and command == gold[self._gold_next]:
            self._gold_next += 1
            self._gold_misses = 0
        elif command == "wait1":
            self._gold_wait = False

    def _refusal(self, command: str) -> str:
        """Why the engine's parser refused ``command``; a listed one leaves this episode's lists."""
        assert self._obs is not None
        if command in self._obs.admissible_actions:  # listed by the engine, refused by its parser
            self._rejected.add(command)
            return (f"the engine listed {command[:80]!r} but its parser does not take it; it is left out of "
                    "this episode's lists from now on")
        return f"the engine knows no action {command[:80]!r}"

    def expert_action(self) -> str:
        if self._obs is None:
            raise EnvError("scienceworld: expert_action() before reset(seed); call reset(seed) first")
        gold = self.gold_actions()
        if self._gold_wait:
            return "wait1"
        return gold[self._gold_next] if self._gold_next < len(gold) else "look around"

    def _gold_refused(self, command: str) -> None:
        """The engine refused the gold path's next command: the run that wrote it was a tick ahead (a
        substance already melted); wait a tick and retry, up to ``GOLD_RETRIES`` times, then skip it."""
        gold = _GOLD.get(self._gold_key())
        if not gold or self._gold_next >= len(gold) or command != gold[self._gold_next]:
            return
        self._gold_misses += 1
        if self._gold_misses > GOLD_RETRIES:
            self._gold_next, self._gold_misses = self._gold_next + 1, 0
        else:
            self._gold_wait = True

    def gold_actions(self) -> list[str]:
        """The engine's gold action sequence for this episode's variation (generated on first use, then
        cached).

        It is generated and played through on a simulation of its own, taken from the pool and handed back
        after: the episode's simulation, its state and its observation are left as they are.
        """
        if self._obs is None:
            raise EnvError("scienceworld: gold_actions() before reset(seed); call reset(seed) first")
        key = self._gold_key()
        if key not in _GOLD:
            _GOLD[key] = self._generate_gold()
            self._gold_next, self._gold_misses, self._gold_wait = 0, 0, False
            gold = _GOLD[key]
            for command in self._executed:
                if self._gold_next < len(gold) and command == gold[self._gold_next]:
                    self._gold_next += 1
        return list(_GOLD[key])

    def _generate_gold(self) -> list[str]:
        """A gold path for this episode's variation that ``play_gold`` takes to 100, else the best of
        ``GOLD_ATTEMPTS`` (the engine's generator is random; its paths now and then fail), on a simulation
        other than the episode's."""
        task, variation = self._episode
        engine = _take_engine()
        try:
            best: tuple[float, list[str]] = (-2.0, [])
            for _ in range(GOLD_ATTEMPTS):
                engine.load(task, variation, self.simplifications, gold=True)
                # The gold paths answer the engine's "Ambiguous request" with "0"; this env answers it itself.
                gold = [" ".join(a.split()) for a in engine.gold()]
                gold = [a for a in gold if a and not a.isdigit()]
                engine.load(task, variation, self.simplifications)
                best = max(best, (play_gold(engine, gold), gold), key=lambda b: b[0])
                if best[0] >= 1.0:
                    break
        finally:
            _release_engine(engine)
        return best[1]

    def close(self) -> None:
        """Hand the engine back to this process's pool (``shutdown_engines`` stops the JVMs)."""
        if self._engine is not None:
            _release_engine(self._engine)
            self._engine = None

    # ------------------------------------------------------------------ helpers

    def _gold_key(self) -> tuple[str, int, str]:
        return (*self._episode, self.simplifications)

    def _observe(self, text: str, score: float, info: dict[str, Any]) -> Observation:
        assert self._engine is not None
        tree = self._engine.object_tree()
        self._roles = tree_roles(tree)
        self._roles["referents"] = self._engine.referents()
        valid = self._engine.valid_combinations()
        valid = [combo for combo in valid if combo["action"] not in self._rejected]
        listed, total = filter_actions(valid, self._roles, self._task, self._episode[0], self.max_actions)
        info["actions_listed"] = self._listed = total
        return Observation(
            text=text,
            task=self._task,
            task_type=self._episode[0],
            admissible_actions=tuple(listed),
            anchor=(round(100 * score), tree_digest(tree)),
            step=self._tracker.steps,
            action_templates=self._templates[self._episode[0]],
        )

    def anchor(self) -> Hashable:
        if self._obs is None:
            raise EnvError("scienceworld: anchor() before reset(seed); call reset(seed) first")
        return self._obs.anchor
