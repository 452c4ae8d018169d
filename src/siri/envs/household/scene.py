"""Seeded scene generator: a room of numbered receptacles and objects plus one task, per (split, seed).

Determinism: every random choice comes from ``random.Random(<string key>)``, which hashes the key with
SHA-512, so a scene depends only on (split, seed, task types, clutter, placements) and never on Python's
hash randomization.

Splits:
- ``train``: any seed >= 0, task type drawn per seed.
- ``eval_id``: 140 fixed scenes from the training distribution (task types in round robin).
- ``eval_ood``: 140 fixed scenes whose goals are held out of the other splits: goal (object, receptacle)
  pairs in ``world.OOD_PLACE_PAIRS`` and (object, lamp) pairs in ``world.OOD_LOOK_PAIRS``.

Instance names follow the ALFWorld engine: each instance has a PDDL id (``Cabinet_bar_98``) and the
engine numbers the instances of a kind in *descending* order of their ids and lists things in ascending
id order (hence ALFWorld's familiar "a cabinet 3, a cabinet 2, a cabinet 1"). We choose ids so that the
instance we call "cabinet k" gets number k from the engine's demangler, and keep every tuple here sorted
by id, so listing order is simply index order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from siri.envs.base import EnvError
from siri.envs.household import world
from siri.envs.household.placements import DEFAULT_PLACEMENTS, LAMP_PLACEMENTS, PLACEMENTS, check_placements

SPLITS: tuple[str, ...] = ("train", "eval_id", "eval_ood")
EVAL_SIZE = 140
SPLIT_SIZES: dict[str, int | None] = {"train": None, "eval_id": EVAL_SIZE, "eval_ood": EVAL_SIZE}
MAX_INSTANCES = 3  # at most this many instances of one object kind (ALFWorld's limit)


@dataclass(frozen=True)
class Receptacle:
    kind: str  # ALFWorld type, e.g. "CounterTop"
    name: str  # what the agent reads, e.g. "countertop 1"
    pddl_id: str
    openable: bool


@dataclass(frozen=True)
class Thing:
    """A movable object (or a lamp, which is toggleable but not pickupable)."""

    kind: str
    name: str
    pddl_id: str
    pickupable: bool
    heatable: bool
    coolable: bool
    cleanable: bool
    toggleable: bool
    container: bool  # an ALFWorld receptacle object (mug, bowl, ...): changes its "examine" text


@dataclass(frozen=True)
class Scene:
    """One episode's initial state and task. Receptacles and things are sorted by PDDL id."""

    split: str
    seed: int
    room: str
    task_type: str
    object_kind: str  # goal object type
    receptacle_kind: str  # goal receptacle type ("" for look_at_obj_in_light)
    lamp_kind: str  # goal lamp type ("" unless look_at_obj_in_light)
    goal: str  # goal sentence without the final period
    receptacles: tuple[Receptacle, ...]
    things: tuple[Thing, ...]
    start: tuple[int, ...]  # receptacle index of each thing

    @property
    def task(self) -> str:
        return self.goal + "."


def _pddl_id(kind: str, number: int) -> str:
    # Descending codes for ascending numbers, same width, so sorting ids reverses the numbers like ALFWorld.
    code = f"{100 - number:02d}"
    if kind in ("SinkBasin", "BathtubBasin"):  # ALFWorld names a basin after its parent: Sink|...|SinkBasin
        return f"{kind[: -len('Basin')]}_bar_{code}_bar_{kind}"
    return f"{kind}_bar_{code}"


def _check(split: str, seed: int) -> None:
    if split not in SPLITS:
        raise EnvError(f"unknown household split {split!r}; choose one of: {', '.join(SPLITS)}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise EnvError(f"household seed must be a non-negative int, got {seed!r}")
    size = SPLIT_SIZES[split]
    if size is not None and seed >= size:
        raise EnvError(f"household split {split!r} has {size} scenes (seeds 0..{size - 1}); got seed {seed}")


def check_task_types(task_types: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    if task_types is None:
        return world.TASK_TYPES
    if isinstance(task_types, str):
        task_types = [t for t in task_types.split(",") if t]
    unknown = [t for t in task_types if t not in world.TASK_TYPES]
    if unknown or not task_types:
        raise EnvError(
            f"unknown task type(s) {unknown or task_types!r}; choose from: {', '.join(world.TASK_TYPES)}"
        )
    return tuple(dict.fromkeys(task_types))


def check_clutter(clutter: object) -> float:
    """``clutter`` as a float, or an ``EnvError`` unless it is a number in [0, 1]."""
    if not isinstance(clutter, (int, float)) or isinstance(clutter, bool) or not 0.0 <= clutter <= 1.0:
        raise EnvError(f"household clutter must be a number in [0, 1] (share of the usual distractors), got {clutter!r}")
    return float(clutter)


def _goal_candidates(
    task_type: str, room: str, present: set[str], lamp: str, ood: bool
) -> list[tuple[str, str]]:
    """Goal (object, receptacle-or-lamp) pairs possible in this room, restricted to the split's side."""
    spec = world.ROOMS[room]
    pairs: list[tuple[str, str]] = []
    if task_type == "look_at_obj_in_light":
        if lamp:
            for obj in spec.objects:
                if any(obj in world.CAN_CONTAIN[r] for r in present):
                    pairs.append((obj, lamp))
        held_out = world.OOD_LOOK_PAIRS
    else:
        appliance = world.APPLIANCE.get(task_type)
        if appliance is not None and appliance not in present:
            return []
        need = {
            "pick_clean_then_place_in_recep": world.CLEANABLE,
            "pick_heat_then_place_in_recep": world.HEATABLE,
            "pick_cool_then_place_in_recep": world.COOLABLE,
        }.get(task_type)
        for obj in spec.objects:
            if need is not None and obj not in need:
                continue
            for recep in sorted(present):
                if recep == appliance or obj not in world.CAN_CONTAIN[recep]:
                    continue
                # the targets must start somewhere else than the goal receptacle kind
                if any(obj in world.CAN_CONTAIN[r] for r in present if r != recep):
                    pairs.append((obj, recep))
        held_out = world.OOD_PLACE_PAIRS
    return [p for p in pairs if (p in held_out) == ood]


def generate_scene(
    split: str,
    seed: int,
    task_types: list[str] | tuple[str, ...] | None = None,
    clutter: float = 1.0,
    placements: str = DEFAULT_PLACEMENTS,
) -> Scene:
    """The scene of ``seed`` in ``split``; ``task_types`` restricts which task types are posed.

    ``clutter`` scales the number of distractor objects (1.0: ALFWorld-like rooms; 0: only what the
    task needs). Fewer distractors make "is the task's object in view?" easier, a difficulty knob for
    small models; the default scenes do not change with it.

    ``placements`` says where objects start: "uniform" (every compatible receptacle instance alike, the
    scenes of before the option) or "typical" (``placements.PLACEMENTS``' weights, see ``_place``). Both
    draw the room, receptacles, goal and target count identically, so a seed poses the same goal in both
    (the goal sentence's wording may differ: it is drawn after the placements).
    """
    _check(split, seed)
    clutter = check_clutter(clutter)
    placements = check_placements(placements)
    allowed = check_task_types(task_types)
    if split == "train":
        task_type = random.Random(f"household/train/{seed}/task").choice(allowed)
    else:
        task_type = allowed[seed % len(allowed)]
    rng = random.Random(f"household/{split}/{seed}/{task_type}")
    for _ in range(1000):
        scene = _try_scene(rng, split, seed, task_type, clutter, placements)
        if scene is not None:
            return scene
    raise RuntimeError(f"could not generate a {task_type} scene for {split}/{seed}")  # pragma: no cover


def _place(rng: random.Random, kind: str, slots: list[int], recep_kinds: list[str]) -> int:
    """One receptacle slot for an object (or lamp) of ``kind`` among ``slots``, by the typical-placement table.

    A receptacle kind's weight is divided evenly among its instances in ``slots`` (one weighted draw; the
    same law as drawing the kind first, then an instance), so eight cabinets do not draw eight times the
    mugs of one coffee machine. Kinds of ``recep_kinds`` absent from ``slots`` drop out and the rest
    renormalize.
    """
    table = PLACEMENTS[kind] if kind in PLACEMENTS else LAMP_PLACEMENTS[kind]
    count: dict[str, int] = {}
    for i in slots:
        count[recep_kinds[i]] = count.get(recep_kinds[i], 0) + 1
    weights = [table[recep_kinds[i]] / count[recep_kinds[i]] for i in slots]
    return rng.choices(slots, weights=weights)[0]


def _try_scene(
    rng: random.Random, split: str, seed: int, task_type: str, clutter: float, placements: str = DEFAULT_PLACEMENTS
) -> Scene | None:
    room = rng.choice(world.TASK_ROOMS[task_type])
    spec = world.ROOMS[room]
    counts = {kind: rng.randint(lo, hi) for kind, lo, hi in spec.receptacles}
    present = {k for k, n in counts.items() if n > 0}
    lamp = rng.choice(spec.lamps) if spec.lamps else ""
    hosts = [k for k in world.LAMP_HOSTS if k in present]
    if lamp and not hosts:
        return None
    candidates = _goal_candidates(task_type, room, present, lamp, ood=split == "eval_ood")
    if not candidates:
        return None
    obj_kind, second = rng.choice(candidates)
    recep_kind = "" if task_type == "look_at_obj_in_light" else second

    # Receptacles: kind -> list of slots (one per instance).
    recep_kinds: list[str] = [k for k in sorted(counts) for _ in range(counts[k])]
    fits = {k: [i for i, rk in enumerate(recep_kinds) if k in world.CAN_CONTAIN[rk]] for k in spec.objects}

    placed: list[tuple[str, int]] = []  # (kind, receptacle slot)
    n_targets = rng.randint(2, MAX_INSTANCES) if task_type == "pick_two_obj_and_place" else rng.randint(1, 3)
    target_slots = [i for i in fits[obj_kind] if recep_kinds[i] != recep_kind]
    if not target_slots:
        return None
    if placements == "uniform":  # today's exact draws (the scenes of every existing number)
        placed += [(obj_kind, rng.choice(target_slots)) for _ in range(n_targets)]
    else:
        placed += [(obj_kind, _place(rng, obj_kind, target_slots, recep_kinds)) for _ in range(n_targets)]
    if lamp:
        host_slots = [i for i, rk in enumerate(recep_kinds) if rk in hosts]
        if placements == "uniform":
            placed.append((lamp, rng.choice(host_slots)))
        else:  # lamps too stand where they usually do (placements.LAMP_PLACEMENTS)
            placed.append((lamp, _place(rng, lamp, host_slots, recep_kinds)))
    per_kind = {obj_kind: n_targets}
    others = [k for k in spec.objects if k != obj_kind and fits[k]]
    for _ in range(round(rng.randint(*spec.clutter) * clutter)):
        kind = rng.choice(others)
        if per_kind.get(kind, 0) >= MAX_INSTANCES:
            continue
        per_kind[kind] = per_kind.get(kind, 0) + 1
        if placements == "uniform":
            placed.append((kind, rng.choice(fits[kind])))
        else:
            placed.append((kind, _place(rng, kind, fits[kind], recep_kinds)))

    # Numbering: shuffle which instance of a kind gets which number, then name by PDDL id.
    def numbered(kinds: list[str]) -> list[int]:
        numbers = [0] * len(kinds)
        for kind in sorted(set(kinds)):
            idx = [i for i, k in enumerate(kinds) if k == kind]
            order = list(range(1, len(idx) + 1))
            rng.shuffle(order)
            for i, n in zip(idx, order, strict=True):
                numbers[i] = n
        return numbers

    r_numbers = numbered(recep_kinds)
    t_numbers = numbered([k for k, _ in placed])
    template = rng.choice(world.GOAL_TEMPLATES[task_type])
    return build_scene(
        task_type,
        obj_kind,
        recep_kind,
        lamp if task_type == "look_at_obj_in_light" else "",
        receptacles=list(zip(recep_kinds, r_numbers, strict=True)),
        things=[(k, n, r) for (k, r), n in zip(placed, t_numbers, strict=True)],
        template=template,
        split=split,
        seed=seed,
        room=room,
    )


def build_scene(
    task_type: str,
    object_kind: str,
    receptacle_kind: str,
    lamp_kind: str,
    receptacles: list[tuple[str, int]],
    things: list[tuple[str, int, int]],
    template: str | None = None,
    split: str = "train",
    seed: int = 0,
    room: str = "custom",
) -> Scene:
    """A scene from explicit parts: receptacles as (kind, number), things as (kind, number, index of
    their receptacle in ``receptacles``). Sorts everything by PDDL id, as the engine lists them."""
    recs = [
        Receptacle(k, f"{world.display(k)} {n}", _pddl_id(k, n), k in world.OPENABLE) for k, n in receptacles
    ]
    items = [
        Thing(
            kind=k,
            name=f"{world.display(k)} {n}",
            pddl_id=_pddl_id(k, n),
            pickupable=k not in world.LAMPS,
            heatable=k in world.HEATABLE,
            coolable=k in world.COOLABLE,
            cleanable=k in world.CLEANABLE,
            toggleable=k in world.LAMPS,
            container=k in world.RECEPTACLE_OBJECTS,
        )
        for k, n, _ in things
    ]
    for group in (recs, items):
        ids = [x.pddl_id for x in group]
        if len(set(ids)) != len(ids):
            raise EnvError(
                f"duplicate instance numbers in scene: {sorted(i for i in ids if ids.count(i) > 1)}"
            )
    r_order = sorted(range(len(recs)), key=lambda i: recs[i].pddl_id.lower())
    r_new = {old: new for new, old in enumerate(r_order)}
    t_order = sorted(range(len(items)), key=lambda i: items[i].pddl_id.lower())
    template = template or world.GOAL_TEMPLATES[task_type][0]
    goal = template.format(
        obj=world.display(object_kind), recep=world.display(receptacle_kind), toggle=world.display(lamp_kind)
    )
    return Scene(
        split=split,
        seed=seed,
        room=room,
        task_type=task_type,
        object_kind=object_kind,
        receptacle_kind=receptacle_kind,
        lamp_kind=lamp_kind,
        goal=goal,
        receptacles=tuple(recs[i] for i in r_order),
        things=tuple(items[i] for i in t_order),
        start=tuple(r_new[things[i][2]] for i in t_order),
    )
