"""The facts of ALFWorld's household world: object and receptacle kinds, what fits where, rooms, tasks.

Types are spelled as ALFWorld spells them (CamelCase, e.g. ``CounterTop``); what the agent reads is the
lower-cased type plus an instance number ("countertop 1"). The compatibility table ``CAN_CONTAIN`` and the
property sets (heatable, coolable, cleanable, toggleable) follow ALFWorld's own tables, restricted to the
object kinds the generator uses. Everything here is plain data so that other modules (the tokenizer, the
exporter) can enumerate it.
"""

from __future__ import annotations

from dataclasses import dataclass

TASK_TYPES: tuple[str, ...] = (
    "pick_and_place_simple",
    "look_at_obj_in_light",
    "pick_clean_then_place_in_recep",
    "pick_heat_then_place_in_recep",
    "pick_cool_then_place_in_recep",
    "pick_two_obj_and_place",
)

# Goal sentences per task type, ALFWorld's wording ({obj}, {recep}, {toggle} are lower-cased types).
GOAL_TEMPLATES: dict[str, tuple[str, str]] = {
    "pick_and_place_simple": ("put a {obj} in {recep}", "put some {obj} on {recep}"),
    "look_at_obj_in_light": ("look at {obj} under the {toggle}", "examine the {obj} with the {toggle}"),
    "pick_clean_then_place_in_recep": (
        "put a clean {obj} in {recep}",
        "clean some {obj} and put it in {recep}",
    ),
    "pick_heat_then_place_in_recep": ("put a hot {obj} in {recep}", "heat some {obj} and put it in {recep}"),
    "pick_cool_then_place_in_recep": ("put a cool {obj} in {recep}", "cool some {obj} and put it in {recep}"),
    "pick_two_obj_and_place": ("put two {obj} in {recep}", "find two {obj} and put them in {recep}"),
}

# The receptacle type that performs each state change (the command verb is the key's middle word).
APPLIANCE: dict[str, str] = {
    "pick_clean_then_place_in_recep": "SinkBasin",
    "pick_heat_then_place_in_recep": "Microwave",
    "pick_cool_then_place_in_recep": "Fridge",
}
VERB: dict[str, str] = {"SinkBasin": "clean", "Microwave": "heat", "Fridge": "cool"}

HEATABLE = frozenset({"Apple", "Bread", "Cup", "Egg", "Mug", "Plate", "Potato", "Tomato"})
COOLABLE = frozenset(
    {
        "Apple",
        "Bowl",
        "Bread",
        "Cup",
        "Egg",
        "Lettuce",
        "Mug",
        "Pan",
        "Plate",
        "Pot",
        "Potato",
        "Tomato",
        "WineBottle",
    }
)
CLEANABLE = frozenset(
    {
        "Apple", "Bowl", "ButterKnife", "Cloth", "Cup", "DishSponge", "Egg", "Fork", "Kettle", "Knife", "Ladle",
        "Lettuce", "Mug", "Pan", "Plate", "Pot", "Potato", "SoapBar", "Spatula", "Spoon", "Tomato",
    }
)  # fmt: skip
LAMPS: tuple[str, ...] = ("DeskLamp", "FloorLamp")
# Objects that are themselves containers in ALFWorld (examining one held says "This is a normal mug 1. ...").
RECEPTACLE_OBJECTS = frozenset({"Bowl", "Box", "Cup", "Mug", "Pan", "Plate", "Pot"})
OPENABLE = frozenset({"Cabinet", "Drawer", "Fridge", "Microwave", "Safe"})

# Pickupable object kinds the generator uses.
PICKUPABLE: tuple[str, ...] = (
    "AlarmClock", "Apple", "BaseballBat", "BasketBall", "Book", "Bowl", "Box", "Bread", "ButterKnife", "CD",
    "Candle", "CellPhone", "Cloth", "CreditCard", "Cup", "DishSponge", "Egg", "Fork", "Glassbottle", "HandTowel",
    "Kettle", "KeyChain", "Knife", "Ladle", "Laptop", "Lettuce", "Mug", "Newspaper", "Pan", "Pen", "Pencil",
    "PepperShaker", "Pillow", "Plate", "Plunger", "Pot", "Potato", "RemoteControl", "SaltShaker", "SoapBar",
    "SoapBottle", "Spatula", "Spoon", "SprayBottle", "Statue", "TennisRacket", "TissueBox", "ToiletPaper",
    "Tomato", "Towel", "Vase", "Watch", "WateringCan", "WineBottle",
)  # fmt: skip
OBJECT_TYPES: tuple[str, ...] = tuple(sorted((*PICKUPABLE, *LAMPS)))


def _set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Table-like surfaces take everything except a few bulky or fixture-bound kinds.
_SURFACE = frozenset(PICKUPABLE) - {"Pillow", "Plunger", "Towel"}
_SEAT = _set("BasketBall Book Box CellPhone Cloth CreditCard KeyChain Laptop Newspaper Pillow RemoteControl")
_DESK = _set(
    "AlarmClock BasketBall Book Bowl Box CD Candle CellPhone Cloth CreditCard Cup Glassbottle KeyChain Laptop Mug "
    "Newspaper Pen Pencil Plate RemoteControl SoapBottle SprayBottle Statue TennisRacket TissueBox ToiletPaper "
    "Vase Watch WateringCan WineBottle"
)

CAN_CONTAIN: dict[str, frozenset[str]] = {
    "ArmChair": _SEAT,
    "BathtubBasin": _set("Cloth DishSponge HandTowel SoapBar"),
    "Bed": _set("BaseballBat BasketBall Book CellPhone Laptop Newspaper Pillow TennisRacket"),
    "Cabinet": _set(
        "Book Bowl Box CD Candle Cloth Cup DishSponge Glassbottle HandTowel Kettle Ladle Mug Newspaper Pan "
        "PepperShaker Plate Plunger Pot SaltShaker SoapBar SoapBottle SprayBottle TissueBox ToiletPaper Vase "
        "WateringCan WineBottle"
    ),
    "CoffeeMachine": _set("Mug"),
    "CoffeeTable": _SURFACE,
    "CounterTop": _SURFACE,
    "Desk": _DESK,
    "DiningTable": _SURFACE,
    "Drawer": _set(
        "Book ButterKnife CD Candle CellPhone Cloth CreditCard DishSponge Fork HandTowel KeyChain Knife Ladle "
        "Newspaper Pen Pencil PepperShaker RemoteControl SaltShaker SoapBar SoapBottle Spatula Spoon SprayBottle "
        "TissueBox ToiletPaper Watch WateringCan"
    ),
    "Dresser": _DESK - {"SoapBottle"},
    "Fridge": _set("Apple Bowl Bread Cup Egg Glassbottle Lettuce Mug Pan Plate Pot Potato Tomato WineBottle"),
    "GarbageCan": _set(
        "Apple Bread CD Cloth DishSponge Egg HandTowel Lettuce Newspaper Pen Pencil Potato SoapBar SoapBottle "
        "SprayBottle TissueBox ToiletPaper Tomato WineBottle"
    ),
    "HandTowelHolder": _set("HandTowel"),
    "LaundryHamper": _set("Cloth"),
    "Microwave": _set("Apple Bowl Bread Cup Egg Glassbottle Mug Plate Potato Tomato"),
    "Ottoman": _SEAT,
    "Safe": _set("CD CellPhone CreditCard KeyChain Statue Vase Watch"),
    "Shelf": _set(
        "AlarmClock Book Bowl Box CD Candle CellPhone Cloth CreditCard Cup DishSponge Glassbottle HandTowel Kettle "
        "KeyChain Mug Newspaper Pen Pencil PepperShaker Plate Pot RemoteControl SaltShaker SoapBar SoapBottle "
        "SprayBottle Statue TissueBox ToiletPaper Vase Watch WateringCan WineBottle"
    ),
    "SideTable": _SURFACE,
    "SinkBasin": _set(
        "Apple Bowl ButterKnife Cloth Cup DishSponge Egg Fork Glassbottle HandTowel Kettle Knife Ladle Lettuce Mug "
        "Pan Plate Pot Potato SoapBar Spatula Spoon Tomato"
    ),
    "Sofa": _SEAT,
    "StoveBurner": _set("Kettle Pan Pot"),
    "TVStand": _set("TissueBox"),
    "Toaster": frozenset(),
    "Toilet": _set(
        "Candle Cloth DishSponge HandTowel Newspaper SoapBar SoapBottle SprayBottle TissueBox ToiletPaper"
    ),
    "ToiletPaperHanger": _set("ToiletPaper"),
    "TowelHolder": _set("Towel"),
}
RECEPTACLE_TYPES: tuple[str, ...] = tuple(sorted(CAN_CONTAIN))

# Receptacles a lamp may stand on (never openable ones: a lamp is used where it stands).
LAMP_HOSTS: tuple[str, ...] = ("CoffeeTable", "Desk", "Dresser", "Shelf", "SideTable")


@dataclass(frozen=True)
class RoomKind:
    """A kind of room: receptacle kinds with (min, max) counts, the object pool, lamps, clutter size."""

    receptacles: tuple[tuple[str, int, int], ...]
    objects: tuple[str, ...]
    lamps: tuple[str, ...]
    clutter: tuple[int, int]  # (min, max) number of distractor objects


ROOMS: dict[str, RoomKind] = {
    "kitchen": RoomKind(
        receptacles=(
            ("Cabinet", 3, 8), ("CoffeeMachine", 1, 1), ("CounterTop", 1, 3), ("DiningTable", 0, 1), ("Drawer", 2, 5),
            ("Fridge", 1, 1), ("GarbageCan", 1, 1), ("Microwave", 1, 1), ("Shelf", 0, 2), ("SinkBasin", 1, 1),
            ("StoveBurner", 2, 4), ("Toaster", 1, 1),
        ),
        objects=(
            "Apple", "Bowl", "Bread", "ButterKnife", "Cup", "DishSponge", "Egg", "Fork", "Glassbottle", "Kettle",
            "Knife", "Ladle", "Lettuce", "Mug", "Pan", "PepperShaker", "Plate", "Pot", "Potato", "SaltShaker",
            "SoapBottle", "Spatula", "Spoon", "Tomato", "WineBottle",
        ),
        lamps=(),
        clutter=(10, 16),
    ),
    "livingroom": RoomKind(
        receptacles=(
            ("ArmChair", 0, 2), ("Cabinet", 0, 3), ("CoffeeTable", 1, 1), ("DiningTable", 0, 1), ("Drawer", 0, 3),
            ("Dresser", 0, 1), ("GarbageCan", 1, 1), ("Ottoman", 0, 1), ("Safe", 0, 1), ("Shelf", 0, 4),
            ("SideTable", 1, 2), ("Sofa", 1, 1), ("TVStand", 1, 1),
        ),
        objects=(
            "Book", "Bowl", "Box", "CellPhone", "CreditCard", "KeyChain", "Laptop", "Newspaper", "Pillow", "Plate",
            "RemoteControl", "Statue", "TissueBox", "Vase", "Watch", "WateringCan",
        ),
        lamps=("DeskLamp", "FloorLamp"),
        clutter=(8, 13),
    ),
    "bedroom": RoomKind(
        receptacles=(
            ("ArmChair", 0, 1), ("Bed", 1, 1), ("Desk", 0, 1), ("Drawer", 2, 5), ("Dresser", 1, 1),
            ("GarbageCan", 1, 1), ("LaundryHamper", 0, 1), ("Safe", 0, 1), ("Shelf", 0, 4), ("SideTable", 1, 2),
        ),
        objects=(
            "AlarmClock", "BaseballBat", "BasketBall", "Book", "Bowl", "Box", "CD", "CellPhone", "Cloth", "CreditCard",
            "KeyChain", "Laptop", "Mug", "Pen", "Pencil", "Pillow", "TennisRacket", "Watch",
        ),
        lamps=("DeskLamp",),
        clutter=(8, 13),
    ),
    "bathroom": RoomKind(
        receptacles=(
            ("BathtubBasin", 0, 1), ("Cabinet", 1, 4), ("CounterTop", 1, 1), ("Drawer", 0, 3), ("GarbageCan", 1, 1),
            ("HandTowelHolder", 0, 1), ("Shelf", 0, 2), ("SinkBasin", 1, 2), ("Toilet", 1, 1),
            ("ToiletPaperHanger", 1, 1), ("TowelHolder", 0, 1),
        ),
        objects=(
            "Candle", "Cloth", "DishSponge", "HandTowel", "Plunger", "SoapBar", "SoapBottle", "SprayBottle",
            "TissueBox", "ToiletPaper", "Towel",
        ),
        lamps=(),
        clutter=(8, 13),
    ),
}  # fmt: skip
ROOM_KINDS: tuple[str, ...] = tuple(ROOMS)

# Which rooms each task type is posed in (ALFWorld's own pairing).
TASK_ROOMS: dict[str, tuple[str, ...]] = {
    "pick_and_place_simple": ("kitchen", "livingroom", "bedroom", "bathroom"),
    "look_at_obj_in_light": ("livingroom", "bedroom"),
    "pick_clean_then_place_in_recep": ("kitchen", "bathroom"),
    "pick_heat_then_place_in_recep": ("kitchen",),
    "pick_cool_then_place_in_recep": ("kitchen",),
    "pick_two_obj_and_place": ("kitchen", "livingroom", "bedroom", "bathroom"),
}

# Held out of train and eval_id, posed only in eval_ood: goal (object, receptacle) pairs for the placing
# tasks, and (object, lamp) pairs for look_at_obj_in_light. Each task type has at least one such goal.
OOD_PLACE_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {
        ("Apple", "GarbageCan"),
        ("Mug", "CoffeeMachine"),
        ("Plate", "Cabinet"),
        ("Cloth", "Toilet"),
        ("CellPhone", "Bed"),
        ("KeyChain", "Sofa"),
        ("Pencil", "Desk"),
        ("RemoteControl", "ArmChair"),
        ("TissueBox", "Toilet"),
        ("Spatula", "Drawer"),
    }
)
OOD_LOOK_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {
        ("Statue", "FloorLamp"),
        ("CD", "DeskLamp"),
        ("Watch", "DeskLamp"),
        ("Vase", "FloorLamp"),
        ("Pillow", "DeskLamp"),
    }
)


def display(type_name: str) -> str:
    """The word the agent reads for a type: ALFWorld lower-cases the type name ("SinkBasin" -> "sinkbasin")."""
    return type_name.lower()


OBJECT_NAMES: tuple[str, ...] = tuple(display(t) for t in OBJECT_TYPES)
RECEPTACLE_NAMES: tuple[str, ...] = tuple(display(t) for t in RECEPTACLE_TYPES)

# ALFWorld's "help" feedback, word for word (the engine keeps the trailing newline).
HELP_TEXT = (
    "Available commands:\n"
    "  look:                             look around your current location\n"
    "  inventory:                        check your current inventory\n"
    "  go to (receptacle):               move to a receptacle\n"
    "  open (receptacle):                open a receptacle\n"
    "  close (receptacle):               close a receptacle\n"
    "  take (object) from (receptacle):  take an object from a receptacle\n"
    "  move (object) to (receptacle):  place an object in or on a receptacle\n"
    "  examine (something):              examine a receptacle or an object\n"
    "  use (object):                     use an object\n"
    "  heat (object) with (receptacle):  heat an object using a receptacle\n"
    "  clean (object) with (receptacle): clean an object using a receptacle\n"
    "  cool (object) with (receptacle):  cool an object using a receptacle\n"
    "  slice (object) with (object):     slice an object using a sharp object\n"
)
WELCOME = "-= Welcome to TextWorld, ALFRED! =-"
