"""Skill-following warm start (issue 20): the demonstrator acts on the placement skill its prompt shows, the
skills shown vary in content, and with the option off the warm-start data is exactly what it was before."""

from __future__ import annotations

import dataclasses
import hashlib
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from siri.envs import Observation, make
from siri.envs.household import placements, world
from siri.models.policy import ModelError
from siri.models.tokenizer import corpus_pieces
from siri.rollout.prompts import TEMPLATE_VOCAB_TEXT
from siri.sft.config import WarmStartConfig
from siri.sft.demonstrator import (
    SearchMemory,
    delivery_twin,
    draw_placement_skill,
    is_placement_skill,
    noisy_episode,
    placement_skill_text,
    places_named,
    room_places,
    search_target,
    skill_decides,
    skill_for,
)
from siri.sft.tiny import HOUSEHOLD_LITE, default_config, resolve_tiny
from siri.sft.warm_start import warm_start_examples
from siri.skills.prompts import MINING_VOCAB_TEXT


class ByteTokenizer:
    """Bytes as token ids: every character counts, so equal ids mean equal prompts and targets."""

    eos_token_id = 0

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": list(text.encode())}

    def apply_chat_template(self, messages: list[dict[str, str]], tokenize: bool = False,
                            add_generation_prompt: bool = True) -> str:
        return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages) + "<assistant>"


def digest(config: WarmStartConfig) -> tuple[str, int]:
    examples = warm_start_examples(config, ByteTokenizer(), lambda m: None).examples
    return hashlib.sha256(repr(examples).encode()).hexdigest()[:16], len(examples)


def decode(ids: list[int]) -> str:
    return bytes(ids).decode()


# --- places_named -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "places"), [
    ("WHEN you need a mug THEN look in the cabinet, the coffeemachine and the countertop first",
     ["cabinet", "coffeemachine", "countertop"]),
    ("WHEN you need an apple THEN look in the fridge first", ["fridge"]),
    ("WHEN you need a mug THEN go to the shelf or the cabinet first", ["shelf", "cabinet"]),  # legacy wording
    ("WHEN you need a desk THEN look in the sinkbasin 2, the Drawer and the sinkbasin first",
     ["sinkbasin", "drawer"]),
    ("WHEN the cabinet is closed THEN open it before you take from it", []),  # before THEN: not a place
    ("look in the cabinet first", []),  # no THEN
    ("WHEN you need a mug THEN look in the countertops first", []),  # whole words only
])
def test_places_named_reads_the_receptacle_words_after_then_in_order(text: str, places: list[str]) -> None:
    assert places_named(text) == places


def test_placement_skill_text_is_the_shared_sentence_and_reads_back() -> None:
    assert placement_skill_text("mug", ["cabinet", "shelf", "desk"]) == (
        "WHEN you need a mug THEN look in the cabinet, the shelf and the desk first")
    assert placement_skill_text("apple", ["fridge"]) == "WHEN you need an apple THEN look in the fridge first"
    assert placement_skill_text("egg", ["fridge", "countertop"]) == (
        "WHEN you need an egg THEN look in the fridge and the countertop first")
    for obj in world.OBJECT_NAMES:
        places = random.Random(obj).sample(sorted(world.RECEPTACLE_NAMES), 3)
        text = placement_skill_text(obj, places)
        assert places_named(text) == places and is_placement_skill(text)
    # The tiny model's word-level tokenizer knows the sentence's fixed words (object and place words come
    # from the observations).
    known = corpus_pieces(MINING_VOCAB_TEXT) | corpus_pieces(TEMPLATE_VOCAB_TEXT)
    assert corpus_pieces("WHEN you need a an THEN look in the , and first") <= known


# --- the demonstrator follows the skill ------------------------------------------------------------------

FORK_SKILL = "WHEN you need a fork THEN look in the fridge, the countertop and the drawer first"


def test_demonstrator_searches_the_named_kinds_in_order_first() -> None:
    """Seed 22 (uniform placements): a kitchen with a fridge 1, countertops 1-2 and drawers 1-4, forks in
    drawers 1 and 2. The skill's order is followed: the fridge (closed: opened), both countertops, then
    drawer 1, opened, where a fork is: taken. Without the skill the search goes elsewhere."""
    env = make("household", split="train", clutter=0.0, task_types=["pick_and_place_simple"], placements="uniform")
    episode = noisy_episode(env, 22, random.Random(0), 0.0, 1.0, 0.0, skill=lambda obs, goal: FORK_SKILL)
    assert episode.goal_object == "fork" and episode.skill == FORK_SKILL
    assert episode.actions[:7] == ["go to fridge 1", "open fridge 1", "go to countertop 1",
                                   "go to countertop 2", "go to drawer 1", "open drawer 1",
                                   "take fork 2 from drawer 1"]
    assert episode.won and episode.expert_actions[:7] == episode.actions[:7]  # searches are imitated as taken
    reordered = "WHEN you need a fork THEN look in the drawer, the fridge and the countertop first"
    episode = noisy_episode(env, 22, random.Random(0), 0.0, 1.0, 0.0, skill=lambda obs, goal: reordered)
    assert episode.actions[:3] == ["go to drawer 1", "open drawer 1", "take fork 2 from drawer 1"]
    plain = noisy_episode(env, 22, random.Random(0), 0.0, 1.0, 0.0)
    assert plain.skill is None and plain.actions[0] != "go to fridge 1"


def test_guided_search_visits_named_kinds_in_order_until_the_first_take() -> None:
    """Over many scenes: before the object is taken, the places gone to are the named kinds' instances, kind
    by kind in the skill's order and lowest number first; other places only once those are all searched."""
    env = make("household", split="train", clutter=0.0, placements="typical",
               task_types=list(HOUSEHOLD_LITE["task_types"]))
    rng = random.Random(3)
    guided = 0
    for seed in range(60):
        def draw(obs: Any, goal: str | None) -> str | None:
            drawn = draw_placement_skill(goal or "", room_places(obs), rng)
            return drawn[1] if drawn else None

        episode = noisy_episode(env, 500 + seed, random.Random(seed), 0.0, 1.0, 0.0, skill=draw)
        assert episode.skill is not None
        places = places_named(episode.skill)
        first = episode.observations[0].admissible_actions
        expected = [a[6:] for kind in places for a in sorted(
            (a for a in first if a.startswith("go to ") and a.rsplit(" ", 1)[0][6:] == kind),
            key=lambda a: int(a.rsplit(" ", 1)[1]))]
        take = next(i for i, a in enumerate(episode.actions) if a.startswith("take "))
        gone = [a[6:] for a in episode.actions[:take] if a.startswith("go to ")]
        if len(gone) > len(expected):  # every named place searched, then elsewhere
            assert gone[: len(expected)] == expected, (episode.skill, episode.actions)
        else:  # found at a named place: only named places, in order, each opened if closed
            assert gone == expected[: len(gone)], (episode.skill, episode.actions)
            assert all(a.startswith(("go to ", "open ")) for a in episode.actions[:take])
            opened = [a[5:].rsplit(" ", 1)[0] for a in episode.actions[:take] if a.startswith("open ")]
            assert set(opened) <= set(places)
            guided += 1
    assert guided >= 20  # typical scenes: the object is often at a named place


def test_after_a_look_at_pickup_the_lamp_skill_s_places_come_first() -> None:
    """Look-at episodes with lamp_skill: after the pickup the places gone to are the lamp skill's kinds'
    instances, kind by kind in its order, skipping only those gone to since the pickup (the place of the pickup
    included), until the lamp is used; without lamp_skill no lamp skill is drawn."""
    env = make("household", split="train", clutter=0.0, placements="typical", task_types=["look_at_obj_in_light"])
    rng = random.Random(5)
    followed = 0
    for seed in range(40):
        def draw(obs: Any, goal: str | None) -> str | None:
            drawn = draw_placement_skill(goal or "", room_places(obs), rng)
            return drawn[1] if drawn else None

        episode = noisy_episode(env, 700 + seed, random.Random(seed), 0.0, 1.0, 0.0, skill=draw, lamp_skill=True)
        assert episode.goal_lamp in ("desklamp", "floorlamp") and episode.lamp_skill is not None
        assert episode.skills == [episode.skill, episode.lamp_skill]
        assert episode.lamp_skill.startswith(f"WHEN you need a {episode.goal_lamp} THEN look in the ")
        take = next(i for i, a in enumerate(episode.actions) if a.startswith("take "))
        use = next(i for i, a in enumerate(episode.actions) if a.startswith("use "))
        here = next(a[6:] for a in reversed(episode.actions[:take]) if a.startswith("go to "))
        room = episode.observations[0].admissible_actions
        expected = [a[6:] for kind in places_named(episode.lamp_skill) for a in sorted(
            (a for a in room if a.startswith("go to ") and a.rsplit(" ", 1)[0][6:] == kind),
            key=lambda a: int(a.rsplit(" ", 1)[1])) if a[6:] != here]
        gone = [a[6:] for a in episode.actions[take + 1 : use] if a.startswith("go to ")]
        if len(gone) > len(expected):
            assert gone[: len(expected)] == expected, (episode.lamp_skill, episode.actions)
        else:
            assert gone == expected[: len(gone)], (episode.lamp_skill, episode.actions)
            followed += 1
    assert followed >= 20  # typical scenes: the lamp mostly stands on a named kind
    plain = noisy_episode(env, 700, random.Random(0), 0.0, 1.0, 0.0, skill=lambda obs, goal: None, lamp_skill=True)
    assert plain.skills == [] and plain.goal_lamp is not None
    no_lamp = noisy_episode(env, 700, random.Random(0), 0.0, 1.0, 0.0, skill=lambda obs, goal: FORK_SKILL)
    assert no_lamp.lamp_skill is None


def test_search_target_and_skill_decides_by_hand() -> None:
    """Holding the mug at the desk 1 of a look-at task: the lamp is searched for, and a lamp skill decides the
    move while a named place is left; with the lamp in view, or before the pickup with the mug in view, none."""
    holding = ("examine mug 1", "examine desk 1", "go to desk 2", "go to sidetable 1", "move mug 1 to desk 1")
    obs = Observation(text="You pick up the mug 1 from the desk 1.", task="look at mug under the desklamp.",
                      task_type="look_at_obj_in_light", admissible_actions=holding, anchor=0)
    lamp_skill = placement_skill_text("desklamp", ["desk", "sidetable"])
    mug_skill = placement_skill_text("mug", ["desk"])
    memory = SearchMemory(visited={"desk 1"}, since_pickup={"desk 1"}, here="desk 1", holding=True)
    assert search_target(obs, "mug", "desklamp") == "desklamp" and search_target(obs, "mug") is None
    assert skill_for([mug_skill, lamp_skill], "desklamp") == lamp_skill and skill_for([mug_skill], "desklamp") is None
    assert skill_decides(obs, "mug", "desklamp", [mug_skill, lamp_skill], memory)
    assert not skill_decides(obs, "mug", "desklamp", [mug_skill], memory)  # no lamp skill shown
    searched = SearchMemory(visited=set(), since_pickup={"desk 1", "desk 2", "sidetable 1"}, holding=True)
    assert not skill_decides(obs, "mug", "desklamp", [lamp_skill], searched)  # every named place searched
    lit = dataclasses.replace(obs, admissible_actions=(*holding, "use desklamp 1"))
    assert search_target(lit, "mug", "desklamp") is None
    in_view = dataclasses.replace(obs, admissible_actions=("take mug 1 from desk 1", "go to desk 2"))
    assert search_target(in_view, "mug", "desklamp") is None
    memory = SearchMemory()
    memory.update("go to desk 1", True)
    memory.update("go to desk 9", False)  # shown in the history, never reached
    memory.update("take mug 1 from desk 1", True)
    assert (memory.visited, memory.since_pickup, memory.here, memory.holding) == (
        {"desk 1", "desk 9"}, {"desk 1"}, "desk 1", True)
    memory.update("go to sidetable 1", True)
    assert memory.since_pickup == {"desk 1", "sidetable 1"}


def test_lamp_skill_twins_vary_the_lamp_skill_at_the_step_after_the_pickup() -> None:
    config = dataclasses.replace(FOLLOW, sft_episodes=30, skill_twins=4, lamp_skills=True,
                                 env_options={**LITE, "placements": "typical", "task_types": ["look_at_obj_in_light"]})
    data = warm_start_examples(config, ByteTokenizer(), lambda m: None)
    (skill_decided,) = data.focus
    lamp_steps = by_lamp_state = 0
    states: dict[str, set[str]] = {}
    for i in skill_decided:
        prompt, target = (decode(ids) for ids in data.examples[i])
        if "You pick up the " not in prompt.split("Admissible actions:")[0].rsplit("Before this step", 1)[-1]:
            continue  # a first step
        lamp_steps += 1
        block = [line[2:] for line in prompt.split("\n") if line.startswith("- WHEN ")]
        lamp_skills = [b for b in block if b.startswith(("WHEN you need a desklamp", "WHEN you need a floorlamp"))]
        assert len(lamp_skills) == 1, block
        label = target.removeprefix("<action>").removesuffix("</action>")
        states.setdefault(skill_block_removed(prompt), set()).add(label)
        by_lamp_state += label.startswith("go to ") and label[6:].rsplit(" ", 1)[0] in places_named(lamp_skills[0])
    assert lamp_steps >= 40 and by_lamp_state >= 0.85 * lamp_steps, (lamp_steps, by_lamp_state)
    assert max(len(labels) for labels in states.values()) >= 2  # one state, several lamp skills, several moves
    with pytest.raises(ValueError, match="lamp_skills needs follow_skills"):
        warm_start_examples(dataclasses.replace(config, follow_skills=False, skill_twins=0), ByteTokenizer(),
                            lambda m: None)


def test_lamp_stage_moves_the_lamp_steps_into_a_focus_stage_of_their_own() -> None:
    config = dataclasses.replace(FOLLOW, sft_episodes=30, skill_twins=4, lamp_skills=True, focus_steps=10,
                                 env_options={**LITE, "placements": "typical", "task_types": ["look_at_obj_in_light"]})
    shared = warm_start_examples(config, ByteTokenizer(), lambda m: None)
    staged = warm_start_examples(dataclasses.replace(config, lamp_stage=True), ByteTokenizer(), lambda m: None)
    assert staged.examples == shared.examples  # the same examples, only the stages differ
    (together,) = shared.focus
    objects, with_lamps = staged.focus
    assert with_lamps[: len(objects)] == objects and sorted(with_lamps) == sorted(together)
    lamp_only = set(with_lamps) - set(objects)
    assert len(lamp_only) >= 40
    for i in objects:  # the first stage: first steps alone, nothing held
        assert "Before this step" not in decode(staged.examples[i][0])
    for i in lamp_only:  # the second adds the steps after the pickup
        assert "You pick up the " in decode(staged.examples[i][0])
    with pytest.raises(ValueError, match="lamp_stage needs lamp_skills"):
        warm_start_examples(dataclasses.replace(config, lamp_stage=True, lamp_skills=False), ByteTokenizer(),
                            lambda m: None)


def test_the_skills_shown_vary_typical_atypical_and_random() -> None:
    env = make("household", split="train", clutter=0.0, placements="typical")
    rng = random.Random(0)
    sources: Counter[str] = Counter()
    texts = set()
    for seed in range(200):
        obs = env.reset(seed)
        kind = env.scene.object_kind
        source, text = draw_placement_skill(env.goal_object(), room_places(obs), rng)
        sources[source] += 1
        texts.add(text)
        named = places_named(text)
        room = set(room_places(obs))
        assert 1 <= len(named) <= 3 and set(named) <= room
        kinds = {k for k in world.RECEPTACLE_TYPES if placements.receptacle_word(k) in named}
        assert all(env.scene.object_kind in world.CAN_CONTAIN[k] for k in kinds)  # compatible places only
        in_room = {k for k in world.RECEPTACLE_TYPES if placements.receptacle_word(k) in room}
        if source == "typical":
            assert kinds == set(placements.typical_receptacles(kind, 3, among=in_room))
        elif source == "atypical":
            assert kinds == set(placements.atypical_receptacles(kind, 3, among=in_room))
    assert min(sources[s] for s in ("typical", "atypical", "random")) >= 20, sources
    assert len(texts) > 100  # the order is shuffled too


# --- the warm-start data ----------------------------------------------------------------------------------

LITE = {"clutter": 0.0, "task_types": ["look_at_obj_in_light", "pick_and_place_simple"]}
UNIFORM = {"placements": "uniform"}  # the scenes before typical placements became the default


def test_default_examples_are_exactly_those_before_follow_skills() -> None:
    """Digests of the examples the code gave before follow_skills existed (bytes as token ids), on the
    scenes of that time."""
    assert digest(WarmStartConfig(env="household", seed=7, sft_episodes=30, mining_examples=0, max_steps=20,
                                  env_options={**LITE, **UNIFORM})) == ("263dc4b4468e9a09", 413)
    assert digest(WarmStartConfig(env="household", seed=3, sft_episodes=20, mining_examples=0,
                                  matching_twins=0.5, env_options=UNIFORM)) == ("05f784862b3f7638", 446)
    assert digest(WarmStartConfig(env="household", seed=3, sft_episodes=20, mining_examples=6,
                                  env_options=UNIFORM)) == ("9fa0d0c4b1b9066c", 399)


FOLLOW = WarmStartConfig(env="household", seed=2, sft_episodes=20, mining_examples=2, follow_skills=True,
                         skill_prompt_share=0.8, env_options={**LITE, "placements": "typical"},
                         trace_style="sentences", max_steps=20)


def test_skill_twins_off_leave_the_follow_skills_data_as_it_was() -> None:
    """The digest of FOLLOW's examples before skill twins existed; without twins nothing is skill-decided.
    (Since typical scenes place lamps typically and the trace miner writes lamp placement skills, session 13:
    ("7465f28d873fb0db", 259) before; the code of the twins and of the demonstrator gave it still.)"""
    assert digest(FOLLOW) == ("9c09970d861eb7ef", 281)
    assert warm_start_examples(FOLLOW, ByteTokenizer(), lambda m: None).focus == []


def test_skill_twins_show_the_same_state_under_other_skills_labelled_by_them() -> None:
    data = warm_start_examples(dataclasses.replace(FOLLOW, skill_twins=4), ByteTokenizer(), lambda m: None)
    plain = warm_start_examples(FOLLOW, ByteTokenizer(), lambda m: None)
    assert len(data.examples) > len(plain.examples) and data.focus
    by_state: dict[str, set[tuple[str, str]]] = {}
    first_steps = followed = 0
    (skill_decided,) = data.focus  # one stage: no delivery twins
    for i in skill_decided:
        prompt, target = (decode(ids) for ids in data.examples[i])
        skills = [line[2:] for line in prompt.split("\n") if line.startswith("- WHEN ")]
        assert len(skills) == 1 and is_placement_skill(skills[0]), skills  # one placement skill, no other
        assert "Before this step" not in prompt  # first steps only: the skill and the room decide the move
        label = target.removeprefix("<action>").removesuffix("</action>")
        first = places_named(skills[0])[0]  # the label: the first named kind's lowest instance
        admissible = prompt.split("Admissible actions:\n")[1].split("\nThink")[0].split("\n")
        instances = sorted((a for a in admissible if a.startswith(f"go to {first} ")),
                           key=lambda a: int(a.rsplit(" ", 1)[1]))
        first_steps += 1
        followed += bool(instances) and label == instances[0]
        state = skill_block_removed(prompt)
        by_state.setdefault(state, set()).add((skills[0], label))
    # Twins follow their skill; an original's label is a random move in 10% of the steps.
    assert followed >= 0.85 * first_steps and first_steps >= 40, (followed, first_steps)
    # Twins: one state, several skills, and different skills lead to different moves.
    assert max(len({label for _, label in pairs}) for pairs in by_state.values()) >= 2


def test_presence_twins_toggle_the_skill_block_where_no_skill_decides_the_move() -> None:
    """Each presence twin follows its original: the same state and label, the skill block toggled (a block
    removed, or a placement skill added); none at a first step that the shown skill decides."""
    config = dataclasses.replace(FOLLOW, sft_episodes=40)
    plain = warm_start_examples(config, ByteTokenizer(), lambda m: None).examples
    data = warm_start_examples(dataclasses.replace(config, presence_twins=True), ByteTokenizer(), lambda m: None)
    examples = data.examples
    assert data.focus == []  # presence twins are no focus examples
    k = removed = added = 0
    for i, example in enumerate(examples):
        if k < len(plain) and example == plain[k]:
            k += 1
            continue
        (prompt, target), (original, original_target) = (tuple(map(decode, examples[i])),
                                                          tuple(map(decode, examples[i - 1])))
        assert target == original_target and skill_block_removed(prompt) == skill_block_removed(original)
        shown = [line[2:] for line in prompt.split("\n") if line.startswith("- WHEN ")]
        before = [line[2:] for line in original.split("\n") if line.startswith("- WHEN ")]
        assert bool(shown) != bool(before), (shown, before)
        removed += bool(before)
        if shown:
            added += 1
            assert len(shown) == 1 and is_placement_skill(shown[0])
        if before and is_placement_skill(before[0]) and "Before this step" not in original:
            goal = before[0].split(" THEN")[0].split()[-1]  # a first step the skill did not decide: object in view
            assert f"\ntake {goal} " in original, original
    assert k == len(plain)  # every original example is still there, in order
    assert removed >= 50 and added >= 3, (removed, added)  # share 0.8: most prompts show a block
    with pytest.raises(ValueError, match="presence_twins needs follow_skills"):
        warm_start_examples(dataclasses.replace(FOLLOW, follow_skills=False, presence_twins=True), ByteTokenizer(),
                            lambda m: None)


def test_a_delivery_twin_names_another_receptacle_and_walks_to_it() -> None:
    """Hand case: holding mug 1 at countertop 1, the task says shelf; twins name a kind that can hold a mug,
    neither shelf nor the countertop here, and walk to its lowest-numbered instance."""
    admissible = ("examine countertop 1", "examine mug 1", "go to cabinet 2", "go to cabinet 1", "go to shelf 1",
                  "go to sidetable 1", "go to countertop 2", "go to garbagecan 1", "move mug 1 to countertop 1")
    obs = Observation(text="You pick up the mug 1 from the countertop 1.", task="put some mug on shelf.",
                      task_type="pick_and_place_simple", admissible_actions=admissible, anchor=0)
    assert "Mug" in world.CAN_CONTAIN["Cabinet"] and "Mug" not in world.CAN_CONTAIN["GarbageCan"]
    rng = random.Random(0)
    twins = {delivery_twin(obs, "go to shelf 1", "mug", rng) for _ in range(50)}
    assert twins == {("put some mug on cabinet.", "go to cabinet 1"),
                     ("put some mug on sidetable.", "go to sidetable 1")}, twins
    # Only the walk: not the put at the destination, not a random move, not with empty hands.
    at_shelf = dataclasses.replace(obs, admissible_actions=(*admissible[1:], "examine shelf 1"))
    assert delivery_twin(at_shelf, "move mug 1 to shelf 1", "mug", rng) is None
    assert delivery_twin(obs, "go to garbagecan 1", "mug", rng) is None
    empty_handed = dataclasses.replace(obs, admissible_actions=tuple(a for a in admissible if a != "examine mug 1"))
    assert delivery_twin(empty_handed, "go to shelf 1", "mug", rng) is None
    look = dataclasses.replace(obs, task="look at mug under the desklamp.", task_type="look_at_obj_in_light")
    assert delivery_twin(look, "go to desk 1", "mug", rng) is None


def test_delivery_twins_make_the_task_s_receptacle_decide_the_step_after_the_pickup() -> None:
    config = dataclasses.replace(FOLLOW, follow_skills=False, skill_prompt_share=0.2, trace_style="legacy",
                                 delivery_twins=3, env_options={**LITE, "task_types": ["pick_and_place_simple"]})
    data = warm_start_examples(config, ByteTokenizer(), lambda m: None)
    by_state: dict[str, set[str]] = {}
    (delivery_decided,) = data.focus  # one stage: no skill twins
    for i in delivery_decided:
        prompt, target = (decode(ids) for ids in data.examples[i])
        task = prompt.split("Your task is to: ")[1].split("\n")[0].rstrip(". ")
        label = target.removeprefix("<action>").removesuffix("</action>")
        assert label.startswith("go to "), label
        assert task.endswith(" " + label[6:].rsplit(" ", 1)[0]), (task, label)  # the label goes where the task says
        by_state.setdefault(prompt.replace(task, "<task>"), set()).add(label)
    assert len(by_state) >= 12 and sum(len(labels) >= 2 for labels in by_state.values()) >= 12
    with pytest.raises(ValueError, match="focus_steps needs"):
        warm_start_examples(dataclasses.replace(config, delivery_twins=0, focus_steps=10), ByteTokenizer(),
                            lambda m: None)
    with pytest.raises(ValueError, match="delivery_twins needs"):
        warm_start_examples(WarmStartConfig(env="shop", sft_episodes=1, mining_examples=0, delivery_twins=2),
                            ByteTokenizer(), lambda m: None)


def skill_block_removed(prompt: str) -> str:
    return "\n".join(line for line in prompt.split("\n") if not line.startswith("- WHEN ")
                     and line != "Skills learned from earlier successes:")


def test_follow_skills_examples_show_the_followed_skill_alone() -> None:
    config = WarmStartConfig(env="household", seed=1, sft_episodes=40, mining_examples=4, follow_skills=True,
                             skill_prompt_share=0.5, env_options={**LITE, "placements": "typical"},
                             trace_style="sentences")
    examples = warm_start_examples(config, ByteTokenizer(), lambda m: None).examples
    shown: Counter[str] = Counter()
    plan_blocks = 0
    for prompt, _ in examples:
        text = decode(prompt)
        if "Admissible actions:" not in text:
            continue  # a mining example
        block = [line[2:] for line in text.split("\n") if line.startswith("- WHEN ")]
        placement = [skill for skill in block if is_placement_skill(skill)]
        if placement:
            assert block == placement and len(placement) == 1, block  # the followed skill, alone
            shown[placement[0]] += 1
        plan_blocks += bool(block) and not placement  # other episodes: trace skills without placement ones
    assert len(shown) >= 10 and plan_blocks > 0  # many episodes' skills, each at every step of its episode
    # The mining lessons teach writing placement skills in the same sentence form.
    mined = [decode(t[:-1]) for _, t in examples[-4:]]
    assert any("WHEN you need " in m and " THEN look in the " in m for m in mined), mined


def test_follow_skills_needs_an_env_that_names_the_object() -> None:
    config = WarmStartConfig(env="shop", sft_episodes=1, mining_examples=0, follow_skills=True)
    with pytest.raises(ValueError, match="follow_skills"):
        warm_start_examples(config, ByteTokenizer(), lambda m: None)


# --- the recipe -------------------------------------------------------------------------------------------


def test_default_tiny_keys_are_unchanged_and_the_skills_recipe_differs() -> None:
    assert default_config("household").key() == "a9e392525f"
    assert default_config("shop").key() == "0b59a259ec"
    skills = default_config("household", "skills")
    assert skills.follow_skills and skills.trace_style == "sentences" and skills.skill_prompt_share == 0.8
    assert skills.skill_twins == 8 and skills.focus_steps == 5000 and skills.train_steps == 3600
    assert skills.lamp_skills and skills.presence_twins and skills.delivery_puts and skills.delivery_twins == 4
    assert skills.env_options == {**HOUSEHOLD_LITE, "placements": "typical"}
    assert dataclasses.replace(skills, follow_skills=False, trace_style="legacy", skill_prompt_share=0.2,
                               skill_twins=0, focus_steps=0, focus_loss_target=0.0, delivery_twins=0,
                               delivery_puts=False, presence_twins=False, lamp_skills=False, train_steps=1800,
                               env_options=dict(HOUSEHOLD_LITE)) == default_config("household")
    # The delivery-puts build measured in benchmarks/RESULTS.md is this recipe without lamp skills.
    assert dataclasses.replace(skills, lamp_skills=False).key() == "684a5cabeb"
    assert skills.key() != default_config("household").key()
    with pytest.raises(ModelError, match="recipe"):
        default_config("shop", "skills")
    with pytest.raises(ModelError, match="recipe"):
        default_config("household", "fancy")


def test_tiny_household_skills_names_the_skills_recipe(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("siri.sft.tiny.models_cache", lambda: tmp_path)  # nothing built there
    monkeypatch.setattr("siri.sft.tiny.SHIPPED_DIR", tmp_path / "shipped")  # and nothing shipped
    with pytest.raises(ModelError, match="build-tiny --env household --recipe skills"):
        resolve_tiny("tiny-household-skills", "household", build=False)
    with pytest.raises(ModelError, match=r"build-tiny --env household$"):
        resolve_tiny("tiny", "alfworld", build=False)


def test_every_shipped_tiny_model_is_a_current_recipe_s_build_and_the_quickstart_s_is_shipped() -> None:
    """A recipe change without a new shipped build would ship a stale model: every shipped model must be the
    build of a current recipe (by its key), and the quickstart's model must be among them."""
    from siri.config import TrainConfig, preset_path
    from siri.sft.tiny import RECIPES, SHIPPED_DIR, is_built, shipped_tiny

    current = {f"tiny-{env}-{default_config(env, recipe).key()}" for recipe, envs in RECIPES.items() for env in envs}
    shipped = [path for path in SHIPPED_DIR.iterdir() if path.is_dir()]
    assert shipped and all(path.name in current and is_built(path) for path in shipped), shipped
    quickstart = TrainConfig.load(preset_path("household-tiny-quickstart"))
    assert quickstart.model.name_or_path == "tiny" and not quickstart.env.options.get("placements")
    assert shipped_tiny(default_config("household")) is not None
