"""Where things usually are: per object kind, a distribution over the receptacle kinds that can hold it.

Why: with objects spread uniformly over every compatible receptacle, "where do mugs usually sit?" has no
answer in our scenes, so skills have no placement knowledge to carry. ALFWorld's AI2-THOR rooms do have
one (mugs in cabinets and coffee machines, keys on dressers and side tables, soap by the sink). This table
models it; ``scene.generate_scene(..., placements="typical")`` draws starting places from it.

Basis: common sense about AI2-THOR scene layouts (its default object positions: food in the fridge and on
countertops, cutlery in drawers, pans on stove burners, books on shelves and desks, pillows on beds and
sofas, towels on their holders...). These are not frequencies measured on ALFWorld's games.

Shape: ``_TYPICAL`` names 1-4 typical kinds per object with explicit weights (about 0.8 in all); every
other kind in ``world.CAN_CONTAIN`` that holds the object shares the rest evenly, so no compatible place
is impossible. Kinds are spelled as in ``world.CAN_CONTAIN`` ("CounterTop"); ``receptacle_word`` gives the
word observations print ("countertop"). Lamps have their own table (``LAMP_PLACEMENTS``) over the kinds a lamp
stands on (``world.LAMP_HOSTS``): a look-at task's second search, for the lamp, then has knowledge to use too.
"""

from __future__ import annotations

from collections.abc import Collection

from siri.envs.base import EnvError
from siri.envs.household import world

PLACEMENT_MODES: tuple[str, ...] = ("uniform", "typical")
# "uniform": the scenes of every published number. "typical" becomes the default together with a default tiny
# model that acts on placement skills (issue 20; benchmarks/RESULTS.md).
DEFAULT_PLACEMENTS = "uniform"

# object kind -> {typical receptacle kind: weight}; the rest goes evenly to the other compatible kinds.
_TYPICAL: dict[str, dict[str, float]] = {
    # kitchen
    "Apple": {"Fridge": 0.35, "CounterTop": 0.3, "DiningTable": 0.15},
    "Bowl": {"Cabinet": 0.35, "CounterTop": 0.25, "SideTable": 0.2},
    "Bread": {"CounterTop": 0.45, "DiningTable": 0.2, "Fridge": 0.15},
    "ButterKnife": {"Drawer": 0.45, "CounterTop": 0.25, "DiningTable": 0.1},
    "Cup": {"Cabinet": 0.35, "CounterTop": 0.3, "DiningTable": 0.15},
    "DishSponge": {"SinkBasin": 0.35, "CounterTop": 0.25, "Cabinet": 0.2},
    "Egg": {"Fridge": 0.45, "CounterTop": 0.25, "DiningTable": 0.1},
    "Fork": {"Drawer": 0.45, "CounterTop": 0.2, "DiningTable": 0.15},
    "Glassbottle": {"Cabinet": 0.3, "CounterTop": 0.3, "Fridge": 0.2},
    "Kettle": {"StoveBurner": 0.4, "CounterTop": 0.25, "Cabinet": 0.15},
    "Knife": {"Drawer": 0.4, "CounterTop": 0.3, "DiningTable": 0.1},
    "Ladle": {"Drawer": 0.4, "Cabinet": 0.2, "CounterTop": 0.2},
    "Lettuce": {"Fridge": 0.5, "CounterTop": 0.2, "DiningTable": 0.1},
    "Mug": {"Cabinet": 0.3, "CoffeeMachine": 0.25, "SideTable": 0.15, "CounterTop": 0.1},
    "Pan": {"StoveBurner": 0.4, "Cabinet": 0.25, "CounterTop": 0.15},
    "PepperShaker": {"CounterTop": 0.35, "Cabinet": 0.25, "DiningTable": 0.2},
    "Plate": {"Cabinet": 0.3, "DiningTable": 0.25, "CounterTop": 0.2, "CoffeeTable": 0.05},
    "Pot": {"StoveBurner": 0.4, "Cabinet": 0.25, "CounterTop": 0.15},
    "Potato": {"Fridge": 0.35, "CounterTop": 0.3, "DiningTable": 0.15},
    "SaltShaker": {"CounterTop": 0.35, "Cabinet": 0.25, "DiningTable": 0.2},
    "SoapBottle": {"CounterTop": 0.4, "Cabinet": 0.25, "Toilet": 0.15},
    "Spatula": {"Drawer": 0.4, "CounterTop": 0.3, "DiningTable": 0.1},
    "Spoon": {"Drawer": 0.45, "CounterTop": 0.2, "DiningTable": 0.15},
    "Tomato": {"Fridge": 0.35, "CounterTop": 0.3, "DiningTable": 0.15},
    "WineBottle": {"CounterTop": 0.3, "Fridge": 0.25, "Cabinet": 0.25},
    # living room and bedroom
    "AlarmClock": {"SideTable": 0.4, "Desk": 0.25, "Dresser": 0.15},
    "BaseballBat": {"Bed": 0.5, "SideTable": 0.3},
    "BasketBall": {"Bed": 0.5, "SideTable": 0.15, "ArmChair": 0.15},
    "Book": {"Shelf": 0.3, "Bed": 0.2, "CoffeeTable": 0.2, "Desk": 0.1},
    "Box": {"Shelf": 0.3, "Dresser": 0.25, "CoffeeTable": 0.25},
    "CD": {"Desk": 0.3, "Shelf": 0.25, "Drawer": 0.25},
    "CellPhone": {"SideTable": 0.3, "Bed": 0.2, "Dresser": 0.15, "Sofa": 0.15},
    "CreditCard": {"SideTable": 0.3, "Dresser": 0.2, "Desk": 0.15, "CoffeeTable": 0.15},
    "KeyChain": {"Dresser": 0.3, "SideTable": 0.3, "CoffeeTable": 0.2},
    "Laptop": {"Bed": 0.3, "Sofa": 0.25, "Desk": 0.15, "CoffeeTable": 0.1},
    "Newspaper": {"CoffeeTable": 0.35, "Sofa": 0.3, "SideTable": 0.15},
    "Pen": {"Desk": 0.4, "Drawer": 0.2, "SideTable": 0.2},
    "Pencil": {"Desk": 0.4, "Drawer": 0.2, "Shelf": 0.2},
    "Pillow": {"Bed": 0.4, "Sofa": 0.4},
    "RemoteControl": {"CoffeeTable": 0.35, "Sofa": 0.25, "SideTable": 0.2},
    "Statue": {"Shelf": 0.35, "SideTable": 0.25, "CoffeeTable": 0.2},
    "TennisRacket": {"Bed": 0.5, "Desk": 0.15, "Dresser": 0.15},
    "Vase": {"Shelf": 0.3, "CoffeeTable": 0.25, "SideTable": 0.25},
    "Watch": {"Dresser": 0.3, "SideTable": 0.3, "CoffeeTable": 0.2},
    "WateringCan": {"Shelf": 0.35, "SideTable": 0.25, "CoffeeTable": 0.2},
    # bathroom (and the bedroom's cloth)
    "Candle": {"CounterTop": 0.35, "Toilet": 0.25, "Shelf": 0.2},
    "Cloth": {"Cabinet": 0.3, "Drawer": 0.25, "CounterTop": 0.15, "LaundryHamper": 0.1},
    "HandTowel": {"HandTowelHolder": 0.6, "CounterTop": 0.1, "Cabinet": 0.1},
    "Plunger": {"Cabinet": 1.0},
    "SoapBar": {"SinkBasin": 0.3, "CounterTop": 0.25, "Toilet": 0.15, "BathtubBasin": 0.1},
    "SprayBottle": {"Toilet": 0.3, "Cabinet": 0.3, "CounterTop": 0.2},
    "TissueBox": {"SideTable": 0.25, "CoffeeTable": 0.2, "Toilet": 0.2, "CounterTop": 0.15},
    "ToiletPaper": {"ToiletPaperHanger": 0.45, "Toilet": 0.2, "Cabinet": 0.15},
    "Towel": {"TowelHolder": 1.0},
}

# lamp kind -> {typical host kind: weight}; the rest goes evenly to the other ``world.LAMP_HOSTS``. A desk lamp
# stands on desks and bedside tables; a floor lamp stands by the sofa, which our rooms model as the side and
# coffee tables next to it.
_TYPICAL_LAMPS: dict[str, dict[str, float]] = {
    "DeskLamp": {"Desk": 0.45, "SideTable": 0.35},
    "FloorLamp": {"SideTable": 0.45, "CoffeeTable": 0.35},
}


def compatible_receptacles(obj_kind: str) -> list[str]:
    """Receptacle kinds that can hold ``obj_kind`` (``world.CAN_CONTAIN``), sorted by name."""
    return sorted(r for r, held in world.CAN_CONTAIN.items() if obj_kind in held)


def _weights(obj_kind: str, typical: dict[str, float], compatible: list[str]) -> dict[str, float]:
    unknown = sorted(set(typical) - set(compatible))
    if unknown:  # a typo or a CAN_CONTAIN change: fail at import, not with skewed scenes
        raise ValueError(f"placements: {obj_kind} cannot go in {unknown}")
    rest = [r for r in compatible if r not in typical]
    mass = sum(typical.values())
    out = {r: w / mass for r, w in typical.items()} if not rest else dict(typical)
    out.update({r: (1.0 - mass) / len(rest) for r in rest})
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))  # most likely first, ties by name


# object kind -> receptacle kind -> weight over exactly the compatible kinds, summing to 1, most likely first.
PLACEMENTS: dict[str, dict[str, float]] = {
    obj: _weights(obj, _TYPICAL[obj], compatible_receptacles(obj)) for obj in world.PICKUPABLE
}
# lamp kind -> host kind -> weight over exactly ``world.LAMP_HOSTS`` (scenes with typical placements).
LAMP_PLACEMENTS: dict[str, dict[str, float]] = {
    lamp: _weights(lamp, _TYPICAL_LAMPS[lamp], sorted(world.LAMP_HOSTS)) for lamp in world.LAMPS
}


def _typical(kind: str) -> dict[str, float]:
    return _TYPICAL_LAMPS[kind] if kind in _TYPICAL_LAMPS else _TYPICAL[kind]


def placement_table(obj_kind: str) -> dict[str, float]:
    """The placement table of an object or a lamp kind."""
    table = PLACEMENTS.get(obj_kind) or LAMP_PLACEMENTS.get(obj_kind)
    if table is None:
        raise KeyError(f"no placement table for object kind {obj_kind!r}; known: "
                       f"{', '.join([*PLACEMENTS, *LAMP_PLACEMENTS])}")
    return table


def typical_receptacles(obj_kind: str, k: int = 3, among: Collection[str] | None = None) -> list[str]:
    """Up to ``k`` of the table's typical kinds for ``obj_kind``, most likely first (ties by name).

    Only kinds the table names as typical, never the evenly weighted rest, so typical and atypical places
    never overlap (a pillow has two). ``among`` restricts the answer to these kinds (e.g. the kinds present
    in a scene's room)."""
    kinds = [r for r in placement_table(obj_kind) if r in _typical(obj_kind) and (among is None or r in among)]
    return kinds[:k]


def atypical_receptacles(obj_kind: str, k: int = 3, among: Collection[str] | None = None) -> list[str]:
    """Decoys: up to ``k`` compatible kinds of the lowest weight, never one of the table's typical kinds.

    Order is by weight, then name (deterministic). Fewer than ``k`` (possibly none) when the object fits
    few kinds: a towel has no atypical place. ``among`` restricts to these kinds, see ``typical_receptacles``.
    """
    table = placement_table(obj_kind)
    kinds = sorted(
        (r for r in table if r not in _typical(obj_kind) and (among is None or r in among)),
        key=lambda r: (table[r], r),
    )
    return kinds[:k]


def receptacle_word(kind: str) -> str:
    """The word observations and commands use for a receptacle kind ("CoffeeMachine" -> "coffeemachine")."""
    return world.display(kind)


def check_placements(placements: object) -> str:
    """``placements`` itself, or an ``EnvError`` naming the choices."""
    if placements not in PLACEMENT_MODES:
        raise EnvError(
            f"household placements must be one of: {', '.join(PLACEMENT_MODES)}; got {placements!r}"
        )
    return str(placements)
