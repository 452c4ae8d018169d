"""The household simulator: rules and wording on hand-built scenes, splits, determinism, invalid input."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from siri.envs import EnvError, make
from siri.envs.household import OBJECT_NAMES, RECEPTACLE_NAMES, TASK_TYPES, HouseholdEnv, generate_scene
from siri.envs.household.scene import build_scene
from siri.envs.household.sim import is_won, join_list
from siri.envs.household.world import LAMPS, OOD_LOOK_PAIRS, OOD_PLACE_PAIRS

ROOT = Path(__file__).resolve().parents[1]


def kitchen(task_type: str = "pick_heat_then_place_in_recep", obj: str = "Apple", recep: str = "CounterTop"):
    """countertop 1 (apple 1, mug 1), fridge 1 (apple 2), microwave 1, sinkbasin 1, cabinet 1 and 2 (empty)."""
    receptacles = [
        ("CounterTop", 1),
        ("Fridge", 1),
        ("Microwave", 1),
        ("SinkBasin", 1),
        ("Cabinet", 1),
        ("Cabinet", 2),
    ]
    things = [("Apple", 1, 0), ("Mug", 1, 0), ("Apple", 2, 1)]
    return build_scene(task_type, obj, recep, "", receptacles, things)


def play(env: HouseholdEnv, actions: list[str]):
    step = None
    for a in actions:
        step = env.step(a)
        assert step.valid, (a, step.reason, step.observation.admissible_actions)
    return step


def test_list_rendering_matches_textworld():
    assert join_list([]) == "nothing"
    assert join_list(["a x"]) == "a x"
    assert join_list(["a x", "a y"]) == "a x, and a y"
    assert join_list(["a x", "a y", "a z"]) == "a x, a y, and a z"


def test_intro_lists_receptacles_in_engine_order_and_task():
    env = HouseholdEnv()
    obs = env.reset_to(kitchen())
    # ids sort ascending, numbers descend within a kind: "a cabinet 2, a cabinet 1"
    assert obs.text == (
        "-= Welcome to TextWorld, ALFRED! =-\n\nYou are in the middle of a room. Looking quickly around you, "
        "you see a cabinet 2, a cabinet 1, a countertop 1, a fridge 1, a microwave 1, and a sinkbasin 1.\n\n"
        "Your task is to: put a hot apple in countertop."
    )
    assert obs.task == "put a hot apple in countertop."
    assert obs.admissible_actions == (
        "go to cabinet 1",
        "go to cabinet 2",
        "go to countertop 1",
        "go to fridge 1",
        "go to microwave 1",
        "go to sinkbasin 1",
        "help",
        "inventory",
        "look",
    )
    # "look" before moving: the engine binds the location and finds no receptacle there
    step = env.step("look")
    assert (
        step.observation.text
        == "You are in the middle of a room. Looking quickly around you, you see nothing."
    )


def test_closed_receptacle_hides_contents_until_opened():
    env = HouseholdEnv()
    env.reset_to(kitchen())
    obs = env.step("go to fridge 1").observation
    assert obs.text == "You arrive at fridge 1. The fridge 1 is closed."
    assert "take apple 2 from fridge 1" not in obs.admissible_actions
    assert "open fridge 1" in obs.admissible_actions and "go to fridge 1" not in obs.admissible_actions
    obs = env.step("open fridge 1").observation
    assert obs.text == "You open the fridge 1. The fridge 1 is open. In it, you see a apple 2."
    assert (
        "take apple 2 from fridge 1" in obs.admissible_actions and "close fridge 1" in obs.admissible_actions
    )
    assert env.step("close fridge 1").observation.text == "You close the fridge 1."
    assert env.step("examine fridge 1").observation.text == "The fridge 1 is closed."


def test_one_object_in_hand_and_put_needs_compatibility():
    env = HouseholdEnv()
    env.reset_to(kitchen())
    obs = play(env, ["go to countertop 1"]).observation
    assert obs.text == "You arrive at countertop 1. On the countertop 1, you see a apple 1, and a mug 1."
    obs = play(env, ["take apple 1 from countertop 1"]).observation
    assert obs.text == "You pick up the apple 1 from the countertop 1."
    assert not any(a.startswith("take ") for a in obs.admissible_actions)  # hands are full
    assert (
        "examine apple 1" in obs.admissible_actions
        and "move apple 1 to countertop 1" in obs.admissible_actions
    )
    assert play(env, ["inventory"]).observation.text == "You are carrying: a apple 1."
    # a cabinet cannot hold an apple (ALFWorld's table), even when open
    obs = play(env, ["go to cabinet 1", "open cabinet 1"]).observation
    assert obs.text == "You open the cabinet 1. The cabinet 1 is open. In it, you see nothing."
    assert not any(a.startswith("move ") for a in obs.admissible_actions)
    obs = play(env, ["go to countertop 1", "move apple 1 to countertop 1"]).observation
    assert obs.text == "You move the apple 1 to the countertop 1."
    assert play(env, ["inventory"]).observation.text == "You are not carrying anything."


def test_heat_cool_clean_and_examine_wording():
    env = HouseholdEnv()
    env.reset_to(kitchen())
    play(env, ["go to countertop 1", "take apple 1 from countertop 1"])
    assert play(env, ["examine apple 1"]).observation.text == "There's nothing special about apple 1."
    obs = play(env, ["go to microwave 1"]).observation
    assert "heat apple 1 with microwave 1" in obs.admissible_actions  # no need to open the microwave
    assert (
        play(env, ["heat apple 1 with microwave 1"]).observation.text
        == "You heat the apple 1 using the microwave 1."
    )
    assert play(env, ["examine apple 1"]).observation.text == "This is a hot apple 1."
    play(env, ["go to sinkbasin 1", "clean apple 1 with sinkbasin 1"])
    assert play(env, ["examine apple 1"]).observation.text == "This is a hot and clean apple 1."
    assert play(env, ["go to fridge 1", "cool apple 1 with fridge 1"]).observation.text == (
        "You cool the apple 1 using the fridge 1."
    )
    assert (
        play(env, ["examine apple 1"]).observation.text == "This is a cool and clean apple 1."
    )  # cooling un-heats
    play(env, ["go to countertop 1", "move apple 1 to countertop 1", "take mug 1 from countertop 1"])
    assert play(env, ["examine mug 1"]).observation.text == "This is a normal mug 1. In it, you see nothing."
    assert (
        play(env, ["look"]).observation.text
        == "You are facing the countertop 1. Next to it, you see nothing."
    )
    assert play(env, ["help"]).observation.text.startswith("Available commands:\n  look:")


@pytest.mark.parametrize(
    ("task_type", "obj", "recep", "plan"),
    [
        ("pick_and_place_simple", "Apple", "SinkBasin", ["go to countertop 1", "take apple 1 from countertop 1",
                                                         "go to sinkbasin 1", "move apple 1 to sinkbasin 1"]),
        ("pick_heat_then_place_in_recep", "Apple", "CounterTop", ["go to countertop 1", "take apple 1 from countertop 1",
         "go to microwave 1", "heat apple 1 with microwave 1", "go to countertop 1", "move apple 1 to countertop 1"]),
        ("pick_cool_then_place_in_recep", "Mug", "Cabinet", ["go to countertop 1", "take mug 1 from countertop 1",
         "go to fridge 1", "cool mug 1 with fridge 1", "go to cabinet 2", "open cabinet 2", "move mug 1 to cabinet 2"]),
        ("pick_clean_then_place_in_recep", "Mug", "CounterTop", ["go to countertop 1", "take mug 1 from countertop 1",
         "go to sinkbasin 1", "clean mug 1 with sinkbasin 1", "go to countertop 1", "move mug 1 to countertop 1"]),
        ("pick_two_obj_and_place", "Apple", "SinkBasin", ["go to countertop 1", "take apple 1 from countertop 1",
         "go to sinkbasin 1", "move apple 1 to sinkbasin 1", "go to fridge 1", "open fridge 1",
         "take apple 2 from fridge 1", "go to sinkbasin 1", "move apple 2 to sinkbasin 1"]),
    ],
)  # fmt: skip
def test_goal_reached_exactly_at_the_last_step_of_a_hand_plan(task_type, obj, recep, plan):
    env = HouseholdEnv(success_reward=2.5)
    env.reset_to(kitchen(task_type, obj, recep))
    for i, action in enumerate(plan):
        step = env.step(action)
        assert step.valid, (action, step.reason)
        last = i == len(plan) - 1
        assert step.won is last and step.done is last
        assert step.reward == (2.5 if last else 0.0) and step.score == (1.0 if last else 0.0)


def test_put_in_wrong_state_or_place_does_not_win():
    env = HouseholdEnv()
    env.reset_to(kitchen("pick_heat_then_place_in_recep", "Apple", "CounterTop"))
    step = play(env, ["go to countertop 1", "take apple 1 from countertop 1", "move apple 1 to countertop 1"])
    assert not step.won  # not hot
    env.reset_to(kitchen("pick_two_obj_and_place", "Apple", "CounterTop"))
    # apple 1 is already on the countertop; one more apple on *another* receptacle kind does not count
    step = play(env, ["go to fridge 1", "open fridge 1", "take apple 2 from fridge 1", "go to sinkbasin 1"])
    step = play(env, ["move apple 2 to sinkbasin 1"])
    assert not step.won


def test_look_at_obj_in_light_needs_lamp_on_where_the_agent_stands():
    scene = build_scene(
        "look_at_obj_in_light", "Book", "", "DeskLamp",
        receptacles=[("Desk", 1), ("Bed", 1)],
        things=[("DeskLamp", 1, 0), ("Book", 1, 1)],
    )  # fmt: skip
    assert scene.task == "look at book under the desklamp."
    env = HouseholdEnv()
    env.reset_to(scene)
    obs = play(env, ["go to desk 1"]).observation
    assert obs.text == "You arrive at desk 1. On the desk 1, you see a desklamp 1."
    assert (
        "use desklamp 1" in obs.admissible_actions
        and "take desklamp 1 from desk 1" not in obs.admissible_actions
    )
    assert play(env, ["use desklamp 1"]).observation.text == "You turn on the desklamp 1."
    assert (
        play(env, ["use desklamp 1"]).observation.text == "You turn on the desklamp 1."
    )  # the engine's wording
    step = play(env, ["go to bed 1", "take book 1 from bed 1"])
    assert not step.won  # lamp is on, but at the desk
    step = play(env, ["go to desk 1"])
    assert step.won and step.done


def test_invalid_actions_change_nothing_but_cost_a_step():
    env = HouseholdEnv(max_steps=10)
    obs = env.reset_to(kitchen())
    for bad in [
        "take apple 1 from countertop 1",
        "go to moon",
        "",
        "   ",
        "x" * 100_000,
        "GO TO FRIDGE 1",
        None,
        7,
    ]:
        step = env.step(bad)  # type: ignore[arg-type]
        assert not step.valid and step.reason
        assert step.observation.text == "Nothing happens."
        assert step.observation.anchor == obs.anchor
        assert step.observation.admissible_actions == obs.admissible_actions
        assert step.reward == 0.0 and not step.won
    assert step.observation.step == 8
    assert env.step("  go to fridge 1 ").valid  # surrounding spaces are stripped, like the engine


def test_episode_bookkeeping_errors_and_truncation():
    env = HouseholdEnv(max_steps=3)
    with pytest.raises(EnvError, match="before reset"):
        env.step("look")
    env.reset(0)
    steps = [env.step("look") for _ in range(3)]
    assert [s.done for s in steps] == [False, False, True] and steps[-1].truncated and not steps[-1].won
    with pytest.raises(EnvError, match="after the episode ended"):
        env.step("look")


def test_anchor_is_the_true_state_not_the_text():
    env = HouseholdEnv()
    obs0 = env.reset_to(kitchen())
    a_look = env.step("look").observation.anchor
    assert a_look == obs0.anchor  # looking changes nothing and the anchor has no step counter
    after_go = env.step("go to fridge 1").observation
    nothing_at_fridge = env.step("dance").observation
    env.step("open fridge 1")
    env.step("close fridge 1")
    assert env.observation.anchor == after_go.anchor  # same state again
    env.step("go to countertop 1")
    nothing_at_counter = env.step("dance").observation
    assert nothing_at_fridge.text == nothing_at_counter.text == "Nothing happens."
    assert nothing_at_fridge.anchor != nothing_at_counter.anchor
    hash(nothing_at_counter.anchor)


def _digest(n: int) -> str:
    h = hashlib.sha256()
    for split in ("train", "eval_id", "eval_ood"):
        env = HouseholdEnv(split=split)
        for seed in range(n):
            obs = env.reset(seed)
            h.update(repr((obs.text, obs.admissible_actions, obs.anchor, env.scene)).encode())
    return h.hexdigest()


def test_same_seed_same_scene_across_processes_and_hash_seeds():
    code = "from tests.test_household import _digest; print(_digest(15))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code], env={"PYTHONHASHSEED": hs, "PYTHONPATH": str(ROOT)},
            cwd=ROOT, capture_output=True,
            text=True, check=True,
        ).stdout.strip()
        for hs in ("1", "2")
    }  # fmt: skip
    assert outs == {_digest(15)}


def test_splits_sizes_and_seed_errors():
    assert HouseholdEnv("train").split_size() is None
    assert HouseholdEnv("eval_id").split_size() == 140 and HouseholdEnv("eval_ood").split_size() == 140
    with pytest.raises(EnvError, match="140 scenes"):
        HouseholdEnv("eval_id").reset(140)
    with pytest.raises(EnvError, match="non-negative"):
        HouseholdEnv().reset(-1)
    with pytest.raises(EnvError, match="unknown household split"):
        HouseholdEnv("test")
    with pytest.raises(EnvError, match="unknown task type"):
        HouseholdEnv(task_types=["pick_and_fly"])


def _goal_pair(scene):
    if scene.task_type == "look_at_obj_in_light":
        return (scene.object_kind, scene.lamp_kind) in OOD_LOOK_PAIRS
    return (scene.object_kind, scene.receptacle_kind) in OOD_PLACE_PAIRS


def test_ood_goals_are_held_out_of_train_and_eval_id():
    assert not any(_goal_pair(generate_scene("train", s)) for s in range(600))
    assert not any(_goal_pair(generate_scene("eval_id", s)) for s in range(140))
    ood = [generate_scene("eval_ood", s) for s in range(140)]
    assert all(_goal_pair(s) for s in ood)
    assert {s.task_type for s in ood} == set(TASK_TYPES)
    assert {s.goal for s in ood}.isdisjoint({generate_scene("eval_id", s).goal for s in range(140)})


def test_scenes_start_unsolved_and_use_the_vocabulary():
    env = HouseholdEnv()
    for seed in range(300):
        env.reset(seed)
        sc = env.scene
        assert not is_won(sc, env.state)
        assert {t.name.rsplit(" ", 1)[0] for t in sc.things} <= set(OBJECT_NAMES)
        assert {r.name.rsplit(" ", 1)[0] for r in sc.receptacles} <= set(RECEPTACLE_NAMES)


def test_task_type_filter_and_registry_options():
    env = make("household", split="eval_id", task_types=["pick_two_obj_and_place"], max_steps=20)
    assert {env.reset(s).task_type for s in range(10)} == {"pick_two_obj_and_place"}
    with pytest.raises(EnvError, match="unknown option"):
        make("household", colour="red")


def _expert_episode(env: HouseholdEnv, seed: int) -> tuple[bool, int, str]:
    obs = env.reset(seed)
    while True:
        step = env.step(env.expert_action())
        assert step.valid, (seed, step.reason)
        if step.done:
            return step.won, step.observation.step, obs.task_type


@pytest.mark.parametrize(("split", "n"), [("train", 300), ("eval_id", 140), ("eval_ood", 140)])
def test_expert_solves_every_task_type(split, n):
    env = HouseholdEnv(split=split, max_steps=50)
    results = [_expert_episode(env, s) for s in range(n)]
    assert all(won for won, _, _ in results)
    assert {tt for _, _, tt in results} == set(TASK_TYPES)
    assert max(steps for _, steps, _ in results) <= 15


def test_noisy_expert_recovers_from_random_detours():
    import random

    rng = random.Random(0)
    env = HouseholdEnv()
    for seed in range(200):  # 30% random actions along the way
        obs = env.reset(seed)
        while True:
            step = env.step(rng.choice(obs.admissible_actions) if rng.random() < 0.3 else env.expert_action())
            obs = step.observation
            if step.done:
                break
        assert step.won, seed
    for seed in range(100):  # 20 random actions first, then the expert replans from wherever that led
        obs = env.reset(seed)
        done = False
        for _ in range(20):
            step = env.step(rng.choice(obs.admissible_actions))
            obs, done = step.observation, step.done
            if done:
                break
        while not done:
            step = env.step(env.expert_action())
            done = step.done
        assert step.won, seed


def test_expert_says_when_it_uses_hidden_state():
    """Walking to where the object hides is a search; taking what is in view and delivering are not."""
    env = make("household", task_types=["pick_and_place_simple"])
    for seed in range(10):
        env.reset(seed)
        assert env.expert_searching()  # nothing seen yet: the first move can only come from hidden state
        while True:
            action = env.expert_action()
            if action.startswith("take "):
                assert not env.expert_searching()  # the object is in view
            step = env.step(action)
            if step.done:
                break
            if env.state.held >= 0:
                assert not env.expert_searching()  # carrying it to the receptacle the task names
        assert step.won


def test_incremental_goal_check_agrees_with_full_reference():
    import random

    rng = random.Random(1)
    env = HouseholdEnv(max_steps=400)
    wins = 0
    for seed in range(150):
        obs = env.reset(seed)
        while True:
            # bias towards the expert so that wins happen, with plenty of random state changes around them
            step = env.step(env.expert_action() if rng.random() < 0.2 else rng.choice(obs.admissible_actions))
            obs = step.observation
            assert step.won == is_won(env.scene, env.state), (seed, obs.step)
            if step.done:
                wins += step.won
                break
    assert wins >= 140


def test_clutter_scales_distractors_and_leaves_default_scenes_alone():
    for seed in range(40):
        full = generate_scene("train", seed)
        assert generate_scene("train", seed, clutter=1.0) == full
        bare = generate_scene("train", seed, clutter=0.0)
        # same task (its wording may differ) and room; without distractors only the task's objects remain
        assert (bare.task_type, bare.object_kind, bare.receptacle_kind, bare.room) == (
            full.task_type, full.object_kind, full.receptacle_kind, full.room)
        lamps = {t.kind for t in full.things if t.kind in LAMPS}  # rooms keep their lamp
        assert {t.kind for t in bare.things} <= {bare.object_kind} | lamps
        half = generate_scene("train", seed, clutter=0.5)
        assert len(bare.things) <= len(half.things) <= len(full.things)
    env = make("household", split="eval_id", clutter=0.0)
    assert env.reset(3).task == generate_scene("eval_id", 3, clutter=0.0).task
    for bad in (-0.1, 1.5, "lots", True):
        with pytest.raises(EnvError, match="clutter"):
            HouseholdEnv(clutter=bad)
