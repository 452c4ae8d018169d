"""The trace miner: skills abstracted from successful trajectories by fixed rules, no model involved.

It is the ``trace`` ablation miner (``miners.TraceMiner``) and the teacher of the tiny model's mining
warm start (``siri.sft.warm_start``). Its rules are per environment, because what a step means depends
on the world: household and ALFWorld commands become subgoal plans (take, heat/cool/clean/slice, use,
move), shop clicks become the search-item-options-buy plan, TextWorld and ScienceWorld commands become
verb plans whose objects are kept where the episodes agree, and any other environment gets its most common
instance-free action sequence. The command plans and the generic sequences keep the first
``MAX_PLAN_STEPS`` (12) steps of an episode, repeats merged, and drop the rest. The caller names the
environment (``env``); the rules never guess the world from the look of the actions.

Every word it writes comes from the trajectories or from the trace template words listed with the
mining prompt's vocabulary (``prompts.MINING_VOCAB_TEXT``), so the tiny word-level tokenizer knows them.

Two styles (``TRACE_STYLES``). "sentences" (the miner's default) writes skills that read as sentences:
distinct alternatives in proper lists ("the apple, the egg or the tomato"), "a"/"an" by the word, one
"first ..., then ..." plan, and placement knowledge in the shared form "WHEN you need an apple THEN look in
the countertop, the fridge and the diningtable first". "legacy" reproduces the texts of the tiny models
built before it ("a apple or a egg", "go to the fridge or the countertop first"): the warm start keeps it
by default (``WarmStartConfig.trace_style``) so that a published tiny model's data stays what its key names.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from siri.rollout.types import Trajectory
from siri.skills.prompts import parse_skills, successes, task_type_phrase

_NUMBER_RE = re.compile(r"\s+\d+\b")
_TRANSFORMS = ("heat", "cool", "clean", "slice")
_SHOP_DETAILS = {"description", "features", "reviews", "attributes"}
TRACE_STYLES = ("sentences", "legacy")
MAX_ALTERNATIVES = 3  # more distinct values than this in a slot become its role word ("an object")
MAX_PLAN_STEPS = 12  # command plans and generic sequences keep this many steps of an episode


def strip_instance(name: str) -> str:
    """``countertop 1`` -> ``countertop``: the type of an ALFWorld instance."""
    return " ".join(_NUMBER_RE.sub("", " " + name).split())


@dataclass(frozen=True)
class Event:
    """One parsed household action: a kind and its instance arguments ("apple 1", "fridge 1")."""

    kind: str
    obj: str = ""
    place: str = ""

    @property
    def obj_type(self) -> str:
        return strip_instance(self.obj)

    @property
    def place_type(self) -> str:
        return strip_instance(self.place)


def household_event(action: str) -> Event | None:
    """Parse one ALFWorld-style command into an ``Event`` (``None``: not a household command)."""
    a = " ".join(action.lower().split())
    patterns = [
        (r"^go to (?P<place>.+)$", "go"),
        (r"^take (?P<obj>.+?) from (?P<place>.+)$", "take"),
        (r"^(?:move|put) (?P<obj>.+?) (?:to|in|on|in/on) (?P<place>.+)$", "move"),
        (r"^open (?P<place>.+)$", "open"),
        (r"^close (?P<place>.+)$", "close"),
        (r"^(?P<verb>heat|cool|clean|slice) (?P<obj>.+?) with (?P<place>.+)$", "transform"),
        (r"^use (?P<place>.+)$", "use"),
        (r"^examine (?P<obj>.+)$", "examine"),
        (r"^(?:look|inventory)$", "look"),
    ]
    for pattern, kind in patterns:
        m = re.match(pattern, a)
        if m is None:
            continue
        groups = m.groupdict()
        if kind == "transform":
            kind = groups["verb"]
        return Event(kind, groups.get("obj") or "", groups.get("place") or "")
    return None


def task_events(events: Sequence[Event]) -> list[Event]:
    """The events that solved the task, with detours (and noise from exploration) dropped.

    Work back from the end: the destination is the place of the last move; each instance of the
    last-moved object type whose final move goes there contributes its last take, the transforms
    (heat/cool/clean/slice) applied to it, and that final move. Without moves, the last ``use`` (a
    lamp) with the object held then. Instance ids keep different objects of one type apart.
    """
    moves = [i for i, e in enumerate(events) if e.kind == "move"]
    if moves:
        dest, target_type = events[moves[-1]].place, events[moves[-1]].obj_type
        out: list[Event] = []
        for i in moves:
            e = events[i]
            later = events[i + 1 :]
            if e.place != dest or e.obj_type != target_type:
                continue
            if any(f.kind in ("take", "move") and f.obj == e.obj for f in later):
                continue  # not this instance's final move
            takes = [j for j in range(i) if events[j].kind == "take" and events[j].obj == e.obj]
            if not takes:
                continue
            block = [events[takes[-1]]]
            for j in range(i):
                f = events[j]
                if f.kind in _TRANSFORMS and f.obj == e.obj and all(g.kind != f.kind for g in block):
                    block.append(f)
            out.extend([*block, e])
        return out
    uses = [i for i, e in enumerate(events) if e.kind == "use"]
    if not uses:
        return []
    u = uses[-1]
    held: Event | None = None
    for e in events[:u]:
        if e.kind == "take":
            held = e
        elif e.kind == "move" and held is not None and e.obj == held.obj:
            held = None
    return [held, events[u]] if held is not None else [events[u]]


def _valid_actions(traj: Trajectory) -> list[str]:
    return [" ".join(s.action.split()) for s in traj.steps if s.valid and s.action.strip()]


def _alternatives(values: Counter[str], article: str, role: str) -> str:
    """``the apple`` / ``the apple or the tomato`` / ``the object``: a slot filled across episodes."""
    ranked = sorted(values, key=lambda v: (-values[v], v))
    if not ranked or len(ranked) > 3:
        return f"{article} {role}"
    return " or ".join(f"{article} {v}" for v in ranked)


def _household_plan(shape: tuple[str, ...], episodes: list[list[Event]]) -> str:
    """One plan skill for all episodes that share a shape; slots keep the literal when it is shared."""
    objs = [Counter(ep[i].obj_type for ep in episodes) for i in range(len(shape))]
    places = [Counter(ep[i].place_type for ep in episodes) for i in range(len(shape))]
    steps: list[str] = []
    cond: list[str] = []
    holding = False
    n_moves = shape.count("move")
    first_obj = next((objs[i] for i, k in enumerate(shape) if k in ("take", "examine")), Counter())
    for i, kind in enumerate(shape):
        the_obj = _alternatives(objs[i], "the", "object")
        the_place = _alternatives(places[i], "the", "receptacle")
        if kind == "take":
            steps.append(f"find and take {the_obj}")
            holding = True
        elif kind in _TRANSFORMS:
            steps.append(
                f"go to {the_place} and {kind} it" if holding else f"{kind} {the_obj} with {the_place}"
            )
            cond.append(f"{kind} {_alternatives(objs[i], 'a', 'object')}")
        elif kind == "use":
            steps.append(f"go to {the_place} and use it")
            if not any(c.startswith("look at") for c in cond):
                cond.append(f"look at {_alternatives(first_obj, 'a', 'object')} under {the_place}")
        elif kind == "examine":
            steps.append(f"examine {the_obj}")
        elif kind == "move":
            steps.append(f"go to {the_place} and move it there")
            holding = False
    move_places = Counter(ep[i].place_type for ep in episodes for i, k in enumerate(shape) if k == "move")
    move_objs = Counter(ep[i].obj_type for ep in episodes for i, k in enumerate(shape) if k == "move")
    if n_moves >= 2:
        obj_words = _alternatives(move_objs, "", "object").replace("  ", " ").strip()
        cond.append(f"put two {obj_words} in {_alternatives(move_places, 'the', 'receptacle')}")
    elif n_moves == 1:
        what = "it" if cond else _alternatives(move_objs, "a", "object")
        cond.append(f"put {what} in {_alternatives(move_places, 'the', 'receptacle')}")
    condition = "the task is to " + " and ".join(cond) if cond else "the task is " + " , ".join(shape)
    return f"WHEN {condition} THEN " + ", then ".join(steps)


# --- sentences ("sentences" style) ------------------------------------------------------------------------


def article(word: str) -> str:
    """``an`` before a vowel ("an apple", "an egg"), else ``a``: household words have no silent letters."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def _with(det: str, word: str) -> str:
    """``det`` in front of ``word``; ``a`` picks ``a``/``an`` by the word."""
    return f"{article(word) if det == 'a' else det} {word}"


def word_list(items: Sequence[str], conj: str) -> str:
    """``x`` / ``x or y`` / ``x, y or z``: an English list of distinct items ("" for none)."""
    items = list(dict.fromkeys(items))
    return ", ".join(items[:-1]) + f" {conj} {items[-1]}" if len(items) > 1 else "".join(items)


def ranked_types(values: Counter[str]) -> list[str]:
    """The distinct non-empty types among ``values`` (instance numbers stripped, so "mug 1" and "mug 2" are one),
    most frequent first, ties alphabetical."""
    merged: Counter[str] = Counter()
    for value, n in values.items():
        kind = strip_instance(value.lower())
        if kind:
            merged[kind] += n
    return sorted(merged, key=lambda v: (-merged[v], v))


def _slot(values: Counter[str], det: str, role: str, role_det: str | None = None) -> str:
    """A slot filled across episodes: ``the apple`` / ``the apple or the egg`` / ``the apple, the egg or the
    tomato``; none or more than ``MAX_ALTERNATIVES`` distinct values give the role word (``role_det`` + role)."""
    ranked = ranked_types(values)
    if not ranked or len(ranked) > MAX_ALTERNATIVES:
        return _with(role_det or det, role)
    return word_list([_with(det, v) for v in ranked], "or")


def _household_plan_sentence(task_type: str, shape: tuple[str, ...], episodes: list[list[Event]]) -> str:
    """``_household_plan`` as one sentence: "WHEN the task is to heat an apple and put it in the fridge THEN
    first find and take the apple, then go to the microwave and heat it, then go to the fridge and move it there".

    The condition names each subgoal once; a plan that repeats its first half (two objects) says "then do the
    same for the next one" instead of repeating it.
    """
    objs = [Counter(ep[i].obj_type for ep in episodes) for i in range(len(shape))]
    places = [Counter(ep[i].place_type for ep in episodes) for i in range(len(shape))]
    steps: list[str] = []
    cond: list[str] = []
    holding = False
    first_obj = next((objs[i] for i, k in enumerate(shape) if k in ("take", "examine")), Counter())
    for i, kind in enumerate(shape):
        the_obj = _slot(objs[i], "the", "object")
        the_place = _slot(places[i], "the", "receptacle")
        if kind == "take":
            steps.append(f"find and take {the_obj}")
            holding = True
        elif kind in _TRANSFORMS:
            steps.append(f"go to {the_place} and {kind} it" if holding else f"{kind} {the_obj} with {the_place}")
            cond.append(f"{kind} {_slot(objs[i], 'a', 'object')}")
        elif kind == "use":
            steps.append(f"go to {the_place} and use it")
            cond.append(f"look at {_slot(first_obj, 'a', 'object')} under {_slot(places[i], 'the', 'receptacle', 'a')}")
        elif kind == "examine":
            steps.append(f"examine {the_obj}")
        elif kind == "move":
            steps.append(f"go to {the_place} and move it there")
            holding = False
    moves = [i for i, k in enumerate(shape) if k == "move"]
    move_places = Counter(ep[i].place_type for ep in episodes for i in moves)
    move_objs = Counter(ep[i].obj_type for ep in episodes for i in moves)
    where = _slot(move_places, "the", "receptacle", "a")
    if len(moves) >= 2:
        kinds = ranked_types(move_objs)
        what = word_list([f"two {k}" for k in kinds], "or") if 0 < len(kinds) <= MAX_ALTERNATIVES else (
            "two of the same object")
        cond.append(f"put {what} in {where}")
    elif moves:
        cond.append(f"put {'it' if cond else _slot(move_objs, 'a', 'object')} in {where}")
    cond = list(dict.fromkeys(cond))  # a subgoal done twice (two objects) is named once
    condition = "the task is to " + " and ".join(cond) if cond else f"the task type is {task_type_phrase(task_type)}"
    half = len(steps) // 2
    if half and steps[:half] == steps[half:]:
        steps = [*steps[:half], "do the same for the next one"]
    plan = steps[0] if len(steps) == 1 else "first " + ", then ".join(steps)
    return f"WHEN {condition} THEN {plan}"


def _household_skills(task_type: str, trajectories: list[Trajectory], style: str) -> list[tuple[int, str]]:
    """(support, skill) pairs: plans per shape, where objects were found, which receptacles to open."""
    by_shape: dict[tuple[str, ...], list[list[Event]]] = {}
    found_at: dict[str, Counter[str]] = {}
    needed: Counter[str] = Counter()  # "sentences": episodes that took each object type
    opened: Counter[str] = Counter()
    for traj in trajectories:
        events = [e for e in (household_event(a) for a in _valid_actions(traj)) if e is not None]
        key = task_events(events)
        if not key:
            continue
        by_shape.setdefault(tuple(e.kind for e in key), []).append(key)
        if style == "sentences":  # each episode counts once per place it found an object type (or lamp) at
            found = {(e.obj_type, e.place_type) for e in key if e.kind == "take" and e.obj_type and e.place_type}
            found |= _lamps_found(key, events)
            for obj, place in found:
                found_at.setdefault(obj, Counter())[place] += 1
            needed.update({obj for obj, _ in found})
        for e in key:
            if e.kind == "take" and style != "sentences":
                found_at.setdefault(e.obj_type, Counter())[e.place_type] += 1
            if e.kind in ("take", "move"):
                last = max(i for i, f in enumerate(events) if f == e)
                if any(f.kind == "open" and f.place == e.place for f in events[:last]):
                    opened[e.place_type] += 1
    if style == "sentences":
        return _household_sentences(task_type, by_shape, found_at, needed, opened)
    out: list[tuple[int, str]] = []
    for shape, episodes in by_shape.items():
        out.append((len(episodes) * 1000, _household_plan(shape, episodes)))
    for obj, places in found_at.items():
        ranked = sorted(places, key=lambda p: (-places[p], p))[:3]
        where = " or ".join(f"the {p}" for p in ranked)
        out.append((sum(places.values()) * 10, f"WHEN you need a {obj} THEN go to {where} first"))
    if opened:
        ranked = sorted(opened, key=lambda p: (-opened[p], p))[:3]
        which = " or ".join(f"the {p}" for p in ranked)
        skill = f"WHEN {which} is closed THEN open it before you take from it or put in it"
        out.append((sum(opened.values()) * 10 + 5, skill))  # ahead of where-to-find skills of equal support
    return out


def _lamps_found(key: Sequence[Event], events: Sequence[Event]) -> set[tuple[str, str]]:
    """(lamp type, place type) of each lamp the task used, found where the agent last went before using it."""
    found: set[tuple[str, str]] = set()
    for e in key:
        if e.kind != "use":
            continue
        used = max(i for i, f in enumerate(events) if f == e)
        place = next((f.place_type for f in reversed(events[:used]) if f.kind == "go"), "")
        if e.place_type and place and place != e.place_type:  # not a lamp gone to by its own name
            found.add((e.place_type, place))
    return found


def _household_sentences(task_type: str, by_shape: dict[tuple[str, ...], list[list[Event]]],
                         found_at: dict[str, Counter[str]], needed: Counter[str],
                         opened: Counter[str]) -> list[tuple[int, str]]:
    """The "sentences" style of ``_household_skills``: the same plans, placements and opening rule.

    Placement knowledge takes the shared form "WHEN you need a <object> THEN look in the <place>, the <place>
    and the <place> first": the places where most successful episodes found the object (ties alphabetical),
    at most ``MAX_ALTERNATIVES``; a look-at task's lamp gets one too, from where the episodes used it.
    """
    out = [(len(episodes) * 1000, _household_plan_sentence(task_type, shape, episodes))
           for shape, episodes in by_shape.items()]
    for obj, places in found_at.items():
        where = word_list([f"the {p}" for p in ranked_types(places)[:MAX_ALTERNATIVES]], "and")
        out.append((needed[obj] * 10, f"WHEN you need {_with('a', obj)} THEN look in {where} first"))
    ranked = ranked_types(opened)[:MAX_ALTERNATIVES]
    if ranked:
        which = word_list([f"the {p}" for p in ranked], "or")
        skill = f"WHEN {which} is closed THEN open it before you take from it or put in it"
        out.append((sum(opened.values()) * 10 + 5, skill))  # ahead of where-to-find skills of equal support
    return out


def shop_events(actions: list[str]) -> list[str] | None:
    """Abstract WebShop actions into kinds (search, item, option, details, page, back, buy).

    The page the agent is on decides what a click means: the first click on a results page opens an
    item, a click on an item page that is no button picks an option. ``None`` if not a shop episode.
    """
    kinds: list[str] = []
    page = "search"
    for action in actions:
        a = " ".join(action.lower().split())
        m = re.match(r"^(search|click)\[(.*)\]$", a)
        if m is None:
            return None
        verb, arg = m.group(1), m.group(2).strip()
        if verb == "search":
            kinds.append("search")
            page = "results"
        elif arg == "buy now":
            kinds.append("buy")
        elif arg in ("next >", "< prev") and page == "results":
            kinds.append("page")
        elif arg == "< prev":
            kinds.append("back")
            page = "item"
        elif arg == "back to search":
            kinds.append("back")
            page = "search"
        elif arg in _SHOP_DETAILS:
            kinds.append("details")
            page = "details"
        elif page == "results":
            kinds.append("item")
            page = "item"
        else:
            kinds.append("option")
    return kinds


def _shop_skills(task_type: str, trajectories: list[Trajectory], style: str) -> list[tuple[int, str]]:
    """(support, skill) pairs: the search-item-options-buy plans, and hints for options and paging.

    The "sentences" style only fixes the articles ("click an item", "buy an item"); the rest reads already.

    If any episode has a valid action that is not ``search[...]``/``click[...]``, the whole batch gets
    the generic rule. The shop's own valid actions always have that form; the warm start's demonstrator
    episodes may not (``siri.sft.demonstrator.to_trajectory`` marks inadmissible actions valid), and the
    tiny model's shop warm start has always been taught the generic skills there.
    """
    parsed = [shop_events(_valid_actions(t)) for t in trajectories]
    if any(kinds is None for kinds in parsed):
        return _generic_skills(task_type, trajectories, style)
    episodes = [kinds for kinds in parsed if kinds is not None]
    phrase = task_type_phrase(task_type)
    plans: Counter[tuple[str, ...]] = Counter()
    for kinds in episodes:
        core = tuple(k for k in kinds if k in ("search", "item", "option", "buy"))
        plans[tuple(k for i, k in enumerate(core) if i == 0 or k != core[i - 1])] += 1
    words = {
        "search": "search with the key words of the instruction",
        "item": "click an item that matches" if style == "sentences" else "click a item that matches",
        "option": "click the options the instruction asks for",
        "buy": "click buy now",
    }
    out: list[tuple[int, str]] = []
    for plan, count in plans.items():
        cond = f"the task is to buy a {phrase} item" if phrase else "the task is to buy a item"
        if style == "sentences":
            cond = f"the task is to buy {_with('a', phrase)} item" if phrase else "the task is to buy an item"
        out.append((count * 1000, f"WHEN {cond} THEN " + ", then ".join(words[k] for k in plan)))
    n_option = sum("option" in kinds for kinds in episodes)
    if n_option:
        out.append(
            (
                n_option * 10,
                "WHEN the item has options THEN click each option the instruction asks for before buy now",
            )
        )
    n_page = sum("page" in kinds for kinds in episodes)
    if n_page:
        out.append((n_page * 10, "WHEN the results do not match THEN click next > for the next page"))
    return out


def _generic_skills(task_type: str, trajectories: list[Trajectory], style: str) -> list[tuple[int, str]]:
    """Any other environment: the most common instance-free action sequence (consecutive repeats merged).

    Its words are the actions' own, so both styles write the same text.
    """
    plans: Counter[tuple[str, ...]] = Counter()
    for traj in trajectories:
        acts = [strip_instance(a.lower()) for a in _valid_actions(traj)]
        acts = [a for i, a in enumerate(acts) if i == 0 or a != acts[i - 1]][:MAX_PLAN_STEPS]
        if acts:
            plans[tuple(acts)] += 1
    return [
        (count * 1000, f"WHEN the task type is {task_type_phrase(task_type)} THEN " + ", then ".join(plan))
        for plan, count in plans.items()
    ]


# --- command plans (TextWorld, ScienceWorld) --------------------------------------------------------------

# Two-word verbs of the engines' command templates; any other command's verb is its first word.
_TWO_WORD_VERBS = frozenset({"go to", "pick up", "put down", "focus on", "look at", "look in", "look around",
                             "teleport to", "prepare meal", "eat meal"})
# Commands that only read the world: left out of a plan (the plan says what changes it). Reading a
# cookbook or a recipe stays in: the recipe is what the later steps follow.
_LOOKING = frozenset({"look", "look around", "look at", "look in", "inventory", "task"})
_QUALIFIER_RE = re.compile(r"\s+(?:in inventory|containing\s+.+?)(?=\s+(?:to|into|in|on|from|with)\s|$)")


def command_step(action: str) -> tuple[str, str] | None:
    """``("pick up", "metal pot")`` for ``pick up metal pot``: a command's verb and its objects, without the
    inventory and contents qualifiers the engines add (``in inventory``, ``containing water``); ``None`` for a
    command that only looks."""
    words = " ".join(action.lower().split())
    two = " ".join(words.split()[:2])
    verb = two if two in _TWO_WORD_VERBS else words.split(" ", 1)[0]
    if verb in _LOOKING or words in _LOOKING:
        return None
    rest = words[len(verb):].strip()
    return verb, _QUALIFIER_RE.sub("", rest).strip()


def _command_skills(task_type: str, trajectories: list[Trajectory], style: str) -> list[tuple[int, str]]:
    """TextWorld and ScienceWorld: one plan per distinct sequence of verbs (repeats merged), whose objects
    keep the literal where every episode of the plan used the same one, up to three alternatives joined by
    "or", else the role word "an object" (template words, ``prompts.MINING_VOCAB_TEXT``); the first
    ``MAX_PLAN_STEPS`` steps of each episode, the rest dropped. Generated games and task variations change the
    objects, not the procedure, so the verbs carry what transfers ("examine the cookbook, then take, then
    prepare meal"); the words are the commands' own or template words, so both styles write the same text."""
    by_shape: dict[tuple[str, ...], list[list[tuple[str, str]]]] = {}
    for traj in trajectories:
        steps = [c for c in (command_step(a) for a in _valid_actions(traj)) if c is not None]
        merged = [c for i, c in enumerate(steps) if i == 0 or c != steps[i - 1]][:MAX_PLAN_STEPS]
        if merged:
            by_shape.setdefault(tuple(verb for verb, _ in merged), []).append(merged)
    out = []
    for shape, episodes in by_shape.items():
        parts = []
        for i, verb in enumerate(shape):
            values = Counter(ep[i][1] for ep in episodes if ep[i][1])
            ranked = sorted(values, key=lambda v: (-values[v], v))
            if not ranked:
                parts.append(verb)
            elif len(ranked) > MAX_ALTERNATIVES:
                parts.append(f"{verb} an object")
            else:
                parts.append(" or ".join(f"{verb} {v}" for v in ranked))
        plan = "first " + ", then ".join(parts)
        out.append((len(episodes) * 1000, f"WHEN the task type is {task_type_phrase(task_type)} THEN {plan}"))
    return out


Rules = Callable[[str, list[Trajectory], str], list[tuple[int, str]]]

RULES: dict[str, Rules] = {"household": _household_skills, "alfworld": _household_skills,
                           "shop": _shop_skills, "textworld": _command_skills, "scienceworld": _command_skills}
"""The rules of each environment (``siri.envs`` names); any other environment gets ``_generic_skills``."""


def trace_skills(
    env: str,
    task_type: str,
    trajectories: Sequence[Trajectory],
    max_skills: int | None = None,
    min_score: float | None = None,
    style: str = "sentences",
) -> list[str]:
    """Deterministic skills abstracted from the successes (``successes``) of ``task_type`` (no LLM).

    ``env`` (an environment name) picks the rules (``RULES``). Household and ALFWorld episodes give a
    plan per distinct order of subgoals (take, heat/cool/clean, use, move), where each object was
    found, and which receptacles had to be opened; shop episodes give the search-item-options-buy plan
    and hints for options and paging; TextWorld and ScienceWorld give verb plans (``_command_skills``);
    other environments give the most common instance-free action sequence. Slots shared by all episodes of a
    plan keep the literal ("the microwave"); up to three alternatives are joined with "or"; more become a
    role word ("the object"). Skills are ordered by
    how many episodes support them. ``task_type == "general"`` uses every trajectory. ``style`` is one of
    ``TRACE_STYLES`` (module docstring): "sentences", or "legacy" for the texts of earlier tiny models.
    """
    if style not in TRACE_STYLES:
        raise ValueError(f"unknown trace style {style!r}; expected one of {TRACE_STYLES}")
    won = successes(trajectories, task_type, min_score)
    if not won:
        return []
    scored = RULES.get(env, _generic_skills)(task_type, won, style)
    ordered = [s for _, s in sorted(scored, key=lambda x: -x[0])]
    skills = parse_skills("\n".join(ordered), max_skills=len(ordered) + 1, max_words=10_000)
    return skills if max_skills is None else skills[:max_skills]
