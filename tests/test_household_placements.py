"""Typical placements: the table's shape, and the household's ``placements`` scene option."""

from __future__ import annotations

import math

import pytest

from siri.envs import EnvError, make
from siri.envs.household import HouseholdEnv, generate_scene, world
from siri.envs.household.placements import (
    LAMP_PLACEMENTS,
    PLACEMENTS,
    atypical_receptacles,
    compatible_receptacles,
    receptacle_word,
    typical_receptacles,
)


def test_every_table_covers_exactly_the_compatible_kinds_and_sums_to_one():
    generated = {o for room in world.ROOMS.values() for o in room.objects}
    assert generated <= set(PLACEMENTS) == set(world.PICKUPABLE)
    for obj, table in PLACEMENTS.items():
        assert set(table) == {r for r, held in world.CAN_CONTAIN.items() if obj in held}, obj
        assert list(table) != [] and set(table) == set(compatible_receptacles(obj))
        assert all(w > 0 for w in table.values()), obj  # every compatible place stays possible
        assert math.isclose(sum(table.values()), 1.0), obj
        assert list(table.values()) == sorted(table.values(), reverse=True), obj  # most likely first
        typical = typical_receptacles(obj, k=len(table))
        assert 1 <= len(typical) <= 4 and sum(table[r] for r in typical) >= 0.75 - 1e-9, obj
        assert typical[:3] == typical_receptacles(obj)
        decoys = atypical_receptacles(obj, k=len(table))
        assert set(decoys).isdisjoint(typical) and set(decoys) | set(typical) == set(table), obj
        assert all(table[d] < table[t] for d in decoys for t in typical), obj
        assert decoys[:3] == atypical_receptacles(obj)


def test_lamps_have_a_table_over_the_kinds_they_stand_on():
    assert set(LAMP_PLACEMENTS) == set(world.LAMPS)
    for lamp, table in LAMP_PLACEMENTS.items():
        assert set(table) == set(world.LAMP_HOSTS) and all(w > 0 for w in table.values()), lamp
        assert math.isclose(sum(table.values()), 1.0), lamp
        typical, decoys = typical_receptacles(lamp, k=9), atypical_receptacles(lamp, k=9)
        assert set(typical).isdisjoint(decoys) and set(typical) | set(decoys) == set(table), lamp
        assert sum(table[r] for r in typical) >= 0.75 - 1e-9
    assert typical_receptacles("DeskLamp") == ["Desk", "SideTable"]
    assert typical_receptacles("FloorLamp", among={"CoffeeTable", "Dresser"}) == ["CoffeeTable"]


def test_typical_scenes_stand_lamps_where_they_usually_are():
    """Look-at scenes: the lamp's host kind is typical far more often with typical placements; uniform scenes
    stay what they were (the draw of every published number)."""
    typical_share = {}
    for mode in ("uniform", "typical"):
        hits = n = 0
        for seed in range(300):
            scene = generate_scene("train", seed, placements=mode)
            if scene.task_type != "look_at_obj_in_light":
                continue
            (host,) = [scene.receptacles[r].kind for t, r in zip(scene.things, scene.start, strict=True)
                       if t.kind == scene.lamp_kind]
            assert host in world.LAMP_HOSTS
            hits += host in typical_receptacles(scene.lamp_kind)
            n += 1
        typical_share[mode] = hits / n
    assert n >= 20 and typical_share["typical"] > typical_share["uniform"] + 0.2, typical_share


def test_table_says_what_alfworld_rooms_show_and_words_match_observations():
    assert typical_receptacles("Mug")[:2] == ["Cabinet", "CoffeeMachine"]
    assert {"Dresser", "SideTable"} <= set(typical_receptacles("KeyChain"))
    assert typical_receptacles("SoapBar")[0] == "SinkBasin"
    assert typical_receptacles("Apple")[0] == "Fridge" and typical_receptacles("Pan")[0] == "StoveBurner"
    assert typical_receptacles("Towel") == ["TowelHolder"] and atypical_receptacles("Towel") == []
    assert typical_receptacles("Mug", among={"SideTable", "Desk", "Shelf"}) == ["SideTable"]
    assert set(atypical_receptacles("Mug", k=20, among={"Desk", "Cabinet"})) == {"Desk"}
    assert receptacle_word("CoffeeMachine") == "coffeemachine"
    assert {receptacle_word(r) for t in PLACEMENTS.values() for r in t} <= set(world.RECEPTACLE_NAMES)
    with pytest.raises(KeyError, match="no placement table"):
        typical_receptacles("Dragon")


def _start_kinds(scene, targets: bool) -> list[tuple[str, str]]:
    """(object kind, receptacle kind) of the task's objects (``targets``) or of the distractors."""
    return [
        (t.kind, scene.receptacles[r].kind)
        for t, r in zip(scene.things, scene.start, strict=True)
        if t.kind not in world.LAMPS and (t.kind == scene.object_kind) == targets
    ]


def test_typical_option_keeps_the_goal_and_moves_objects_to_typical_places():
    share: dict[tuple[str, bool], float] = {}
    for mode in ("uniform", "typical"):
        for targets in (True, False):
            pairs = []
            for seed in range(200):
                scene = generate_scene("train", seed, placements=mode)
                pairs += _start_kinds(scene, targets)
            share[mode, targets] = sum(r in typical_receptacles(o) for o, r in pairs) / len(pairs)
    for targets in (True, False):  # targets and distractors alike
        assert share["typical", targets] > share["uniform", targets] + 0.2, share
    for seed in range(60):
        uniform = generate_scene("train", seed)
        assert generate_scene("train", seed, placements="uniform") == uniform  # the default is today's scene
        typical = generate_scene("train", seed, placements="typical")
        assert (typical.task_type, typical.object_kind, typical.receptacle_kind, typical.room) == (
            uniform.task_type,
            uniform.object_kind,
            uniform.receptacle_kind,
            uniform.room,
        )
        assert [r.name for r in typical.receptacles] == [r.name for r in uniform.receptacles]
        for obj, recep in _start_kinds(typical, True) + _start_kinds(typical, False):
            assert obj in world.CAN_CONTAIN[recep]
        assert all(r != typical.receptacle_kind for _, r in _start_kinds(typical, True))


def test_placements_option_reaches_the_env_and_the_scene_cache():
    uniform, typical = make("household", placements="uniform"), make("household", placements="typical")
    differ = 0
    for seed in range(10):
        typical.reset(seed)
        uniform.reset(seed)  # same (split, seed, task types, clutter): only the cache key's placements differ
        assert typical.scene == generate_scene("train", seed, placements="typical")
        assert uniform.scene == generate_scene("train", seed)
        differ += typical.scene != uniform.scene
    assert differ >= 8
    assert HouseholdEnv().placements == "uniform"
    for bad in ("random", "", None, 1):
        with pytest.raises(EnvError, match="uniform, typical"):
            HouseholdEnv(placements=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("split", ["train", "eval_id", "eval_ood"])
def test_expert_solves_typical_scenes(split):
    env = HouseholdEnv(split=split, placements="typical")
    for seed in range(60):
        env.reset(seed)
        while True:
            step = env.step(env.expert_action())
            assert step.valid, (seed, step.reason)
            if step.done:
                assert step.won, seed
                break
