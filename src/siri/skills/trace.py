"""The trace miner: skills abstracted from successful trajectories by fixed rules, no model involved.

It is the ``trace`` ablation miner (``miners.TraceMiner``) and the teacher of the tiny model's mining
warm start (``siri.sft.warm_start``). Its rules are per environment, because what a step means depends
on the world: household and ALFWorld commands become subgoal plans (take, heat/cool/clean/slice, use,
move), shop clicks become the search-item-options-buy plan, and any other environment gets its most
common instance-free action sequence. The caller names the environment (``env``); the rules never
guess the world from the look of the actions.

Every word it writes comes from the trajectories or from the trace template words listed with the
mining prompt's vocabulary (``prompts.MINING_VOCAB_TEXT``), so the tiny word-level tokenizer knows them.
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


def _household_skills(task_type: str, trajectories: list[Trajectory]) -> list[tuple[int, str]]:
    """(support, skill) pairs: plans per shape, where objects were found, which receptacles to open."""
    by_shape: dict[tuple[str, ...], list[list[Event]]] = {}
    found_at: dict[str, Counter[str]] = {}
    opened: Counter[str] = Counter()
    for traj in trajectories:
        events = [e for e in (household_event(a) for a in _valid_actions(traj)) if e is not None]
        key = task_events(events)
        if not key:
            continue
        by_shape.setdefault(tuple(e.kind for e in key), []).append(key)
        for e in key:
            if e.kind == "take":
                found_at.setdefault(e.obj_type, Counter())[e.place_type] += 1
            if e.kind in ("take", "move"):
                last = max(i for i, f in enumerate(events) if f == e)
                if any(f.kind == "open" and f.place == e.place for f in events[:last]):
                    opened[e.place_type] += 1
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


def _shop_skills(task_type: str, trajectories: list[Trajectory]) -> list[tuple[int, str]]:
    """(support, skill) pairs: the search-item-options-buy plans, and hints for options and paging.

    If any episode has a valid action that is not ``search[...]``/``click[...]``, the whole batch gets
    the generic rule. The shop's own valid actions always have that form; the warm start's demonstrator
    episodes may not (``siri.sft.demonstrator.to_trajectory`` marks inadmissible actions valid), and the
    tiny model's shop warm start has always been taught the generic skills there.
    """
    parsed = [shop_events(_valid_actions(t)) for t in trajectories]
    if any(kinds is None for kinds in parsed):
        return _generic_skills(task_type, trajectories)
    episodes = [kinds for kinds in parsed if kinds is not None]
    phrase = task_type_phrase(task_type)
    plans: Counter[tuple[str, ...]] = Counter()
    for kinds in episodes:
        core = tuple(k for k in kinds if k in ("search", "item", "option", "buy"))
        plans[tuple(k for i, k in enumerate(core) if i == 0 or k != core[i - 1])] += 1
    words = {
        "search": "search with the key words of the instruction",
        "item": "click a item that matches",
        "option": "click the options the instruction asks for",
        "buy": "click buy now",
    }
    out: list[tuple[int, str]] = []
    for plan, count in plans.items():
        cond = f"the task is to buy a {phrase} item" if phrase else "the task is to buy a item"
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


def _generic_skills(task_type: str, trajectories: list[Trajectory]) -> list[tuple[int, str]]:
    """Any other environment: the most common instance-free action sequence (consecutive repeats merged)."""
    plans: Counter[tuple[str, ...]] = Counter()
    for traj in trajectories:
        acts = [strip_instance(a.lower()) for a in _valid_actions(traj)]
        acts = [a for i, a in enumerate(acts) if i == 0 or a != acts[i - 1]][:12]
        if acts:
            plans[tuple(acts)] += 1
    return [
        (count * 1000, f"WHEN the task type is {task_type_phrase(task_type)} THEN " + ", then ".join(plan))
        for plan, count in plans.items()
    ]


Rules = Callable[[str, list[Trajectory]], list[tuple[int, str]]]

RULES: dict[str, Rules] = {"household": _household_skills, "alfworld": _household_skills, "shop": _shop_skills}
"""The rules of each environment (``siri.envs`` names); any other environment gets ``_generic_skills``."""


def trace_skills(
    env: str,
    task_type: str,
    trajectories: Sequence[Trajectory],
    max_skills: int | None = None,
    min_score: float | None = None,
) -> list[str]:
    """Deterministic skills abstracted from the successes (``successes``) of ``task_type`` (no LLM).

    ``env`` (an environment name) picks the rules (``RULES``). Household and ALFWorld episodes give a
    plan per distinct order of subgoals (take, heat/cool/clean, use, move), where each object was
    found, and which receptacles had to be opened; shop episodes give the search-item-options-buy plan
    and hints for options and paging; other environments give the most common instance-free action
    sequence. Slots shared by all episodes of a plan keep the literal ("the microwave"); up to three
    alternatives are joined with "or"; more become a role word ("the object"). Skills are ordered by
    how many episodes support them. ``task_type == "general"`` uses every trajectory.
    """
    won = successes(trajectories, task_type, min_score)
    if not won:
        return []
    scored = RULES.get(env, _generic_skills)(task_type, won)
    ordered = [s for _, s in sorted(scored, key=lambda x: -x[0])]
    skills = parse_skills("\n".join(ordered), max_skills=len(ordered) + 1, max_words=10_000)
    return skills if max_skills is None else skills[:max_skills]
