"""Turning successful trajectories into skills: rendering, the mining prompt, parsing, and the trace miner.

A skill is one line ``WHEN <condition> THEN <strategy>``. Three pieces live here:

- ``render_trajectory`` / ``mining_messages``: the compact text a miner (the policy itself, or an
  external model) reads. Kept to actions only by default so that several episodes fit the tiny
  model's context (~512-1024 tokens).
- ``parse_skills``: turns any model output into clean skill lines; never raises.
- ``trace_skills``: a deterministic abstraction of successful trajectories into skills, no LLM. It is
  the ``trace`` ablation miner and the teaching signal for the tiny model's mining warm start.

The tiny model's tokenizer is word-level over the environments' vocabulary, so every word this module
writes comes either from the environments' own texts (actions, task text, task type) or from the fixed
template text in ``MINING_VOCAB_TEXT``. ``mining_words`` splits text the same way the tests check it.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from siri.rollout.types import Trajectory


def successes(trajectories: Sequence[Trajectory], task_type: str, min_score: float | None = None) -> list[Trajectory]:
    """The episodes of ``task_type`` (every type for "general") that miners learn from: the won ones
    and, when ``min_score`` is set, those whose score reaches it.

    Shop-like tasks pay partial credit, and a weak policy may buy many close matches before it buys an
    exact one; ``min_score`` lets SIRI mine from those good purchases instead of waiting for a win.
    """
    return [t for t in trajectories if (task_type == "general" or t.task_type == task_type) and is_success(t, min_score)]


def is_success(traj: Trajectory, min_score: float | None = None) -> bool:
    """Won, or (with ``min_score``) scored at least ``min_score``."""
    return traj.won or (min_score is not None and traj.score >= min_score)


# --- the fixed text of the mining prompt ------------------------------------------------------------

MINING_SYSTEM_PROMPT = (
    "You write skills for an agent. A skill is one line of the form WHEN <condition> THEN <strategy>. "
    "Read the successful episodes and write general skills that would help the agent solve new tasks "
    "of the same type."
)
MINING_USER_TEMPLATE = (
    "task type: {task_type}\n\n{episodes}\n\n"
    "Write up to {max_skills} skills, one per line, each in the form WHEN <condition> THEN <strategy>."
)
EPISODE_HEADER = "episode {index}:"
OMITTED_STEPS = "> ..."

# Words trace_skills may add on top of the environments' own words (kept in one place on purpose).
_TRACE_TEMPLATE_TEXT = (
    "WHEN THEN the task is to a an and or it in on there then first find take go heat cool clean slice "
    "use examine look at under put two move object receptacle you need open before from closed "
    "type search with key words of instruction click item that matches options asks for buy now "
    "next page results do not match each option has - , ."
)

MINING_VOCAB_TEXT = "\n".join(
    [
        MINING_SYSTEM_PROMPT,
        MINING_USER_TEMPLATE.replace("{task_type}", "").replace("{episodes}", "").replace("{max_skills}", ""),
        EPISODE_HEADER.replace("{index}", ""),
        "task: " + OMITTED_STEPS,
        _TRACE_TEMPLATE_TEXT,
        "0 1 2 3 4 5 6 7 8 9 10",
    ]
)
"""Every fixed word the mining prompt and the trace miner use; add it to a word-level tokenizer's corpus."""

_WORD_RE = re.compile(r"\w+|[^\w\s]")


def mining_words(text: str) -> list[str]:
    """Split text into words and punctuation marks (the granularity of a word-level tokenizer)."""
    return _WORD_RE.findall(text)


MINING_TEMPLATE_WORDS: frozenset[str] = frozenset(mining_words(MINING_VOCAB_TEXT))


def task_type_phrase(task_type: str) -> str:
    """``pick_heat_then_place`` -> ``pick heat then place``: task types as plain words."""
    return " ".join(task_type.replace("_", " ").replace("-", " ").split())


# --- rendering and the prompt -------------------------------------------------------------------------


def render_trajectory(traj: Trajectory, task: str, max_steps: int = 24, obs_words: int = 0) -> str:
    """Compact text of one (successful) trajectory: the task, then one ``> action`` line per valid step.

    Invalid steps are dropped (they carry no strategy). Instance numbers are kept ("apple 1") because
    they tell which object went where. When the episode is longer than ``max_steps``, the first third
    and the last two thirds are kept around a ``> ...`` line (the end is where the task gets solved).
    ``obs_words > 0`` appends the first words of the observation that followed each action.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    steps = traj.steps
    lines: list[str] = []
    for i, step in enumerate(steps):
        if not step.valid:
            continue
        line = "> " + " ".join(step.action.split())
        if obs_words > 0 and i + 1 < len(steps):
            words = steps[i + 1].observation_text.split()[:obs_words]
            if words:
                line += "\n" + " ".join(words)
        lines.append(line)
    if len(lines) > max_steps:
        head = max_steps // 3
        tail = max_steps - head
        lines = [*lines[:head], OMITTED_STEPS, *lines[len(lines) - tail :]]
    return "\n".join(["task: " + " ".join(task.split()), *lines])


def mining_messages(task_type: str, rendered: Sequence[str], max_skills: int) -> list[dict[str, str]]:
    """The chat messages (system, user) that ask a model for up to ``max_skills`` skills."""
    if max_skills < 1:
        raise ValueError(f"max_skills must be >= 1, got {max_skills}")
    episodes = "\n\n".join(
        EPISODE_HEADER.format(index=i + 1) + "\n" + text.strip() for i, text in enumerate(rendered)
    )
    user = MINING_USER_TEMPLATE.format(
        task_type=task_type_phrase(task_type), episodes=episodes, max_skills=max_skills
    )
    return [{"role": "system", "content": MINING_SYSTEM_PROMPT}, {"role": "user", "content": user}]


# --- parsing ------------------------------------------------------------------------------------------

_SKILL_RE = re.compile(r"^when\s+(?P<cond>.+?)\s+then\s+(?P<strategy>.+)$", re.IGNORECASE | re.DOTALL)
_BULLET_RE = re.compile(r"^(?:[-*•]+|\d{1,3}[.)]|\(\d{1,3}\)|skill\s*\d*\s*:)\s*", re.IGNORECASE)
_SPLIT_BEFORE_WHEN = re.compile(r"(?=\bWHEN\b)")


def parse_skills(text: str, max_skills: int, max_words: int = 60) -> list[str]:
    """Extract up to ``max_skills`` skills ``WHEN <condition> THEN <strategy>`` from any model output.

    One skill per line; a line holding several upper-case ``WHEN`` starts is split there. Bullets and
    numbering are stripped, whitespace is normalized, the keywords are written upper-case, and exact
    duplicates (ignoring case) are dropped. Lines not in WHEN/THEN form, with an empty side, or longer
    than ``max_words`` words are dropped. Never raises on any string.
    """
    if not isinstance(text, str) or max_skills < 1:
        return []
    skills: list[str] = []
    seen: set[str] = set()
    for raw_line in text.splitlines():
        for piece in _SPLIT_BEFORE_WHEN.split(raw_line):
            line = " ".join(piece.split())
            line = _BULLET_RE.sub("", line).strip().strip("\"'`").strip()
            match = _SKILL_RE.match(line)
            if match is None:
                continue
            cond = match.group("cond").strip(" ,:;")
            strategy = match.group("strategy").strip(" ,:;")
            if not cond or not strategy:
                continue
            skill = f"WHEN {cond} THEN {strategy}"
            if len(skill.split()) > max_words:
                continue
            key = skill.lower()
            if key in seen:
                continue
            seen.add(key)
            skills.append(skill)
            if len(skills) >= max_skills:
                return skills
    return skills


# --- the trace miner ------------------------------------------------------------------------------------

_NUMBER_RE = re.compile(r"\s+\d+\b")
_TRANSFORMS = ("heat", "cool", "clean", "slice")
_SHOP_NAV = {"next >", "< prev", "back to search"}
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


def _shop_skills(task_type: str, episodes: list[list[str]]) -> list[tuple[int, str]]:
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


def trace_skills(
    task_type: str, trajectories: Sequence[Trajectory], max_skills: int | None = None, min_score: float | None = None
) -> list[str]:
    """Deterministic skills abstracted from the successes (``successes``) of ``task_type`` (no LLM).

    Household episodes give a plan per distinct order of subgoals (take, heat/cool/clean, use, move),
    where each object was found, and which receptacles had to be opened; shop episodes give the
    search-item-options-buy plan and hints for options and paging; other environments give the most
    common instance-free action sequence. Slots shared by all episodes of a plan keep the literal
    ("the microwave"); up to three alternatives are joined with "or"; more become a role word
    ("the object"). Skills are ordered by how many episodes support them. ``task_type == "general"``
    uses every trajectory.
    """
    won = successes(trajectories, task_type, min_score)
    if not won:
        return []
    shop = [shop_events(_valid_actions(t)) for t in won]
    if all(kinds is not None for kinds in shop):
        scored = _shop_skills(task_type, [k for k in shop if k is not None])
    elif any(any(household_event(a) for a in _valid_actions(t)) for t in won):
        scored = _household_skills(task_type, won)
    else:
        scored = _generic_skills(task_type, won)
    ordered = [s for _, s in sorted(scored, key=lambda x: -x[0])]
    skills = parse_skills("\n".join(ordered), max_skills=len(ordered) + 1, max_words=10_000)
    return skills if max_skills is None else skills[:max_skills]
