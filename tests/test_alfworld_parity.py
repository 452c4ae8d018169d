"""The household simulator against the real ALFWorld 0.4.2 engine, on exported scenes.

Needs the ``alfworld`` package (skipped with a reason otherwise). The engine costs ~0.7 s per game
load and ~70 ms per step, so the scene set is chosen to cover every task type in about a minute.
"""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from pathlib import Path

import pytest

from siri.envs import EnvError, make
from siri.envs.household import TASK_TYPES, generate_scene
from siri.envs.household.export import export_scene

pytestmark = [
    pytest.mark.alfworld,
    pytest.mark.skipif(
        importlib.util.find_spec("alfworld") is None,
        reason="the alfworld engine is not installed (siri-rl[alfworld])",
    ),
]

# 12 eval_id scenes (task types round robin: two of each), 6 eval_ood and 6 train scenes.
SCENES = (
    [("eval_id", s) for s in range(12)]
    + [("eval_ood", s) for s in range(6)]
    + [("train", s) for s in range(6)]
)


@pytest.fixture(scope="module")
def parity_results(tmp_path_factory):
    from siri.envs.household.parity import run_parity

    out = tmp_path_factory.mktemp("parity")
    results = []
    for split in ("eval_id", "eval_ood", "train"):
        seeds = [s for sp, s in SCENES if sp == split]
        results += run_parity(seeds, split, out / split, random_steps=8)
    return results


def test_parity_on_exported_scenes(parity_results):
    assert len(parity_results) >= 20
    assert {r.task_type for r in parity_results} == set(TASK_TYPES)
    bad = [(r.split, r.seed, r.task_type, r.mismatches) for r in parity_results if not r.ok]
    assert not bad, bad
    verbs = Counter(v for r in parity_results for v in r.verbs)
    # the walks really exercised the rules, not only navigation
    assert {
        "go",
        "open",
        "take",
        "move",
        "heat",
        "cool",
        "clean",
        "use",
        "examine",
        "look",
        "inventory",
    } <= set(verbs)


def test_parity_on_typical_placement_scenes(tmp_path):
    """Scenes drawn with placements="typical" export as genuine ALFWorld games the engine plays alike."""
    from siri.envs.household.parity import run_parity

    results = run_parity(list(range(6)), "eval_id", tmp_path, random_steps=8, placements="typical")
    results += run_parity([0, 1, 2], "train", tmp_path / "train", random_steps=8, placements="typical")
    assert {r.task_type for r in results} == set(TASK_TYPES)
    bad = [(r.split, r.seed, r.task_type, r.mismatches) for r in results if not r.ok]
    assert not bad, bad
    game = next(tmp_path.glob("*-eval_id-00000/traj_data.json"))
    assert json.loads(game.read_text())["siri_scene"]["placements"] == "typical"
    assert generate_scene("eval_id", 0, placements="typical") != generate_scene("eval_id", 0)


def test_parity_on_a_scripted_state_change_walk(tmp_path):
    """Heat, clean and cool one object and examine it between steps: every examine wording, both engines."""
    from siri.envs.alfworld_env import AlfworldEnv
    from siri.envs.household.parity import compare_scene

    split, seed = "eval_id", 3  # a heat task in a kitchen
    scene = generate_scene(split, seed)
    assert scene.task_type == "pick_heat_then_place_in_recep"
    names = {r.kind: r.name for r in scene.receptacles}
    t = next(i for i, th in enumerate(scene.things) if th.heatable and th.cleanable and th.coolable)
    thing, where = scene.things[t], scene.receptacles[scene.start[t]]
    actions = [f"go to {where.name}"] + ([f"open {where.name}"] if where.openable else [])
    actions += [f"take {thing.name} from {where.name}", f"examine {thing.name}"]
    for kind, verb in (
        ("Microwave", "heat"),
        ("SinkBasin", "clean"),
        ("Fridge", "cool"),
        ("Microwave", "heat"),
    ):
        actions += [
            f"go to {names[kind]}",
            f"{verb} {thing.name} with {names[kind]}",
            f"examine {thing.name}",
        ]
    actions += ["inventory", "look", "help", f"examine {names['Fridge']}"]
    game = export_scene(seed, split, tmp_path)
    engine = AlfworldEnv(games=str(game))
    try:
        result = compare_scene(split, seed, game, engine, actions=actions)
    finally:
        engine.close()
    assert result.ok, result.mismatches
    assert {"heat", "clean", "cool", "examine"} <= result.verbs


def test_export_files_follow_alfworld_layout(tmp_path):
    game = export_scene(5, "eval_id", tmp_path)
    folder = game.parent
    assert folder.name == "pick_two_obj_and_place-Watch-None-Drawer-eval_id-00005"
    data = json.loads(game.read_text())
    assert data["solvable"] is True and data["walkthrough"]
    assert "Your task is to: " + generate_scene("eval_id", 5).goal + "." in data["grammar"]
    assert data["pddl_problem"] == (folder / "problem.pddl").read_text()
    assert "(:domain alfred)" in data["pddl_problem"] and "(:goal" in data["pddl_problem"]
    traj = json.loads((folder / "traj_data.json").read_text())
    assert traj["task_type"] == "pick_two_obj_and_place"
    assert (
        traj["pddl_params"]["object_target"] == "Watch" and traj["pddl_params"]["parent_target"] == "Drawer"
    )


def test_adapter_plays_the_walkthrough_and_handles_bad_input(tmp_path):
    game = export_scene(1, "eval_id", tmp_path)  # look_at_obj_in_light
    walkthrough = json.loads(game.read_text())["walkthrough"]
    env = make("alfworld", games=str(tmp_path), max_steps=30)
    assert env.split_size() == 1
    with pytest.raises(EnvError, match="before reset"):
        env.step("look")
    obs = env.reset(0)
    assert obs.task_type == "look_at_obj_in_light" and obs.task == generate_scene("eval_id", 1).task
    for bad in ["", "fly away", "y" * 5000, None]:
        step = env.step(bad)  # type: ignore[arg-type]
        assert not step.valid and step.observation.text == "Nothing happens." and step.reason
        assert step.observation.anchor == obs.anchor  # the engine's state did not move
    # "Nothing happens." in two different true states gives two different anchors
    first = walkthrough[0]
    moved = env.step(first).observation
    assert moved.anchor != obs.anchor
    assert env.step("fly away").observation.anchor == moved.anchor
    for action in walkthrough[1:]:
        step = env.step(action)
        assert step.valid
    assert step.won and step.done and step.reward == 1.0
    with pytest.raises(EnvError, match="after the episode ended"):
        env.step("look")
    with pytest.raises(EnvError, match="seed must be"):
        env.reset(1)
    env.close()


def test_engine_planner_expert_agrees_it_can_solve(tmp_path):
    export_scene(4, "eval_id", tmp_path)  # pick_cool_then_place_in_recep
    env = make("alfworld", games=str(tmp_path))
    env.reset(0)
    for _ in range(30):
        step = env.step(env.expert_action())
        if step.done:
            break
    assert step.won
    env.close()


def test_alfworld_adapter_errors_are_clear(tmp_path, monkeypatch):
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    with pytest.raises(EnvError, match="ALFWORLD_DATA"):
        make("alfworld")
    with pytest.raises(EnvError, match="no such game"):
        make("alfworld", games=str(tmp_path / "missing"))
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "game.tw-pddl").write_text("{not json")
    (tmp_path / "g" / "traj_data.json").write_text("{}")
    with pytest.raises(EnvError, match="corrupt game file"):
        make("alfworld", games=str(tmp_path))
    assert Path(tmp_path / "g" / "game.tw-pddl").read_text() == "{not json"  # reported, never replaced
