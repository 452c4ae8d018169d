"""Rendering, the mining prompt, skill parsing and the deterministic trace miner."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from siri.rollout.types import StepRecord, Trajectory
from siri.skills.prompts import (
    MINING_TEMPLATE_WORDS,
    mining_messages,
    mining_words,
    parse_skills,
    render_trajectory,
)
from siri.skills.trace import article, household_event, ranked_types, shop_events, trace_skills, word_list


def make_traj(
    actions: list[str],
    task: str,
    task_type: str,
    won: bool = True,
    traj: int = 0,
    invalid: tuple[int, ...] = (),
    observations: list[str] | None = None,
) -> Trajectory:
    steps = [
        StepRecord(
            group=0,
            traj=traj,
            t=t,
            seed=0,
            task_type=task_type,
            prompt_ids=[],
            response_ids=[],
            old_logprobs=[],
            action_mask=[],
            action=a,
            valid=t not in invalid,
            reward=0.0,
            done=t == len(actions) - 1,
            won=won and t == len(actions) - 1,
            anchor=t,
            observation_text=(observations or [""] * len(actions))[t],
        )
        for t, a in enumerate(actions)
    ]
    return Trajectory(
        group=0, traj=traj, seed=0, task=task, task_type=task_type, steps=steps, won=won, score=float(won)
    )


HEAT_APPLE = [
    "go to countertop 1",
    "take apple 1 from countertop 1",
    "go to microwave 1",
    "heat apple 1 with microwave 1",
    "go to fridge 1",
    "open fridge 1",
    "move apple 1 to fridge 1",
]
HEAT_EGG = [
    "go to cabinet 2",
    "open cabinet 2",
    "take egg 2 from cabinet 2",
    "go to microwave 1",
    "heat egg 2 with microwave 1",
    "go to countertop 3",
    "move egg 2 to countertop 3",
]

TWO_CDS = ["take cd 1 from desk 1", "move cd 1 to safe 1", "take cd 2 from shelf 1", "move cd 2 to safe 1"]


def test_render_drops_invalid_steps_and_keeps_instance_numbers() -> None:
    traj = make_traj(
        ["go to countertop 1", "jump", "take apple 1 from countertop 1"],
        "put a hot apple in fridge.",
        "pick_heat_then_place",
        invalid=(1,),
    )
    text = render_trajectory(traj, traj.task)
    assert text == "task: put a hot apple in fridge.\n> go to countertop 1\n> take apple 1 from countertop 1"


def test_render_truncates_long_episodes_keeping_the_end() -> None:
    actions = [f"go to drawer {i}" for i in range(1, 41)]
    text = render_trajectory(make_traj(actions, "t", "x"), "t", max_steps=9)
    lines = text.splitlines()
    assert lines[0] == "task: t"
    assert lines[1:4] == ["> go to drawer 1", "> go to drawer 2", "> go to drawer 3"]
    assert lines[4] == "> ..."
    assert lines[5:] == [f"> go to drawer {i}" for i in range(35, 41)]


def test_render_with_observations() -> None:
    traj = make_traj(
        ["go to desk 1", "take pen 1 from desk 1"],
        "t",
        "x",
        observations=["You are in the middle of a room.", "On the desk 1, you see a pen 1.", ""],
    )
    text = render_trajectory(traj, "t", obs_words=4)
    assert text == "task: t\n> go to desk 1\nOn the desk 1,\n> take pen 1 from desk 1"


def test_mining_messages_shape() -> None:
    msgs = mining_messages("pick_heat_then_place", ["task: a\n> go to x 1", "task: b"], max_skills=3)
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert "WHEN <condition> THEN <strategy>" in msgs[0]["content"]
    user = msgs[1]["content"]
    assert user.startswith(
        "task type: pick heat then place\n\nepisode 1:\ntask: a\n> go to x 1\n\nepisode 2:\ntask: b"
    )
    assert "up to 3 skills" in user


def test_parse_skills_normalizes_and_filters() -> None:
    text = (
        "Here are the skills:\n"
        "1. WHEN   the fridge is closed THEN open it\n"
        "- when you need an apple then look on the countertop\n"
        "WHEN nothing THEN\n"
        "WHEN a THEN b WHEN c THEN d\n"
        "when the fridge is closed then open it\n"
        "THEN without when\n"
    )
    assert parse_skills(text, max_skills=10) == [
        "WHEN the fridge is closed THEN open it",
        "WHEN you need an apple THEN look on the countertop",
        "WHEN a THEN b",
        "WHEN c THEN d",
    ]
    assert parse_skills(text, max_skills=1) == ["WHEN the fridge is closed THEN open it"]
    assert parse_skills(text, max_skills=0) == []
    assert parse_skills("WHEN " + "x " * 100 + "THEN y", max_skills=3) == []


@settings(max_examples=300, deadline=None)
@given(st.text(), st.integers(min_value=-2, max_value=8))
def test_parse_skills_never_crashes(text: str, k: int) -> None:
    skills = parse_skills(text, max_skills=k)
    assert len(skills) <= max(k, 0)
    for s in skills:
        assert s.startswith("WHEN ") and " THEN " in s and s == " ".join(s.split())


def test_household_event_parsing() -> None:
    assert household_event("take apple 1 from countertop 12").obj_type == "apple"
    e = household_event("heat egg 2 with microwave 1")
    assert (e.kind, e.obj, e.place_type) == ("heat", "egg 2", "microwave")
    assert household_event("move  soapbar 1 to toilet 1").place == "toilet 1"
    assert household_event("click[buy now]") is None


def test_trace_skills_heat_plan_merges_episodes() -> None:
    trajs = [
        make_traj(HEAT_APPLE, "put a hot apple in fridge.", "pick_heat_then_place", traj=0),
        make_traj(HEAT_EGG, "put a hot egg in countertop.", "pick_heat_then_place", traj=1),
        make_traj(HEAT_EGG, "put a hot egg in countertop.", "pick_heat_then_place", won=False, traj=2),
    ]
    skills = trace_skills("household", "pick_heat_then_place", trajs, style="legacy")
    assert skills[0] == (
        "WHEN the task is to heat a apple or a egg and put it in the countertop or the fridge "
        "THEN find and take the apple or the egg, then go to the microwave and heat it, "
        "then go to the countertop or the fridge and move it there"
    )
    assert "WHEN you need a apple THEN go to the countertop first" in skills
    assert "WHEN you need a egg THEN go to the cabinet first" in skills
    assert (
        "WHEN the cabinet or the fridge is closed THEN open it before you take from it or put in it" in skills
    )
    assert trace_skills("household", "pick_heat_then_place", trajs, max_skills=1, style="legacy") == skills[:1]
    assert trace_skills("household", "pick_cool_then_place", trajs) == []


def test_trace_skills_many_objects_become_role_words_and_two_object_tasks() -> None:
    """The legacy style: the texts earlier tiny models were built on, unchanged."""
    objs = ["apple", "egg", "potato", "tomato"]
    trajs = [
        make_traj(
            [f"take {o} 1 from countertop 1", f"move {o} 1 to fridge 1"],
            f"put a {o} in fridge.",
            "pick_and_place",
            traj=i,
        )
        for i, o in enumerate(objs)
    ]
    assert trace_skills("household", "pick_and_place", trajs, style="legacy")[0] == (
        "WHEN the task is to put a object in the fridge THEN find and take the object, "
        "then go to the fridge and move it there"
    )
    two = make_traj(
        ["take cd 1 from desk 1", "move cd 1 to safe 1", "take cd 2 from shelf 1", "move cd 2 to safe 1"],
        "put two cd in safe.",
        "pick_two_obj_and_place",
    )
    assert trace_skills("household", "pick_two_obj_and_place", [two], style="legacy")[0].startswith(
        "WHEN the task is to put two cd in the safe THEN"
    )
    lamp = make_traj(
        ["take book 1 from bed 1", "go to desklamp 1", "use desklamp 1"],
        "look at book under the desklamp.",
        "look_at_obj_in_light",
    )
    assert trace_skills("household", "look_at_obj_in_light", [lamp], style="legacy")[0] == (
        "WHEN the task is to look at a book under the desklamp THEN find and take the book, "
        "then go to the desklamp and use it"
    )


def test_shop_events_and_trace() -> None:
    actions = [
        "search[red cotton shirt]",
        "click[next >]",
        "click[b09abc1234]",
        "click[description]",
        "click[< prev]",
        "click[red]",
        "click[large]",
        "click[buy now]",
    ]
    assert shop_events(actions) == ["search", "page", "item", "details", "back", "option", "option", "buy"]
    shirt = make_traj(actions, "i want a red cotton shirt", "shirt")
    skills = trace_skills("shop", "shirt", [shirt])
    assert skills[0] == (
        "WHEN the task is to buy a shirt item THEN search with the key words of the instruction, then click an item "
        "that matches, then click the options the instruction asks for, then click buy now"
    )
    legacy = trace_skills("shop", "shirt", [shirt], style="legacy")
    assert legacy[0] == skills[0].replace("click an item", "click a item") and legacy[1:] == skills[1:]
    for task_type, cond in (("", "buy an item"), ("electronics", "buy an electronics item")):
        traj = make_traj(actions, "i want a red cotton shirt", task_type)
        assert trace_skills("shop", task_type, [traj])[0].startswith(f"WHEN the task is to {cond} THEN")
    assert "WHEN the results do not match THEN click next > for the next page" in skills
    assert shop_events(["go to desk 1"]) is None


def test_trace_skills_generic_fallback() -> None:
    """An environment without rules of its own ("otherworld") gets the generic rule; textworld has its own."""
    traj = make_traj(["unlock door 1 with key 2", "unlock door 1 with key 2", "east"], "escape", "tw_escape")
    assert trace_skills("otherworld", "tw_escape", [traj]) == [
        "WHEN the task type is tw escape THEN unlock door with key, then east"
    ]
    assert trace_skills("textworld", "tw_escape", [traj]) == [
        "WHEN the task type is tw escape THEN first unlock door 1 with key 2, then east"
    ]


def test_trace_rules_are_picked_by_environment_not_by_the_actions() -> None:
    """The same household episode: household rules in household and alfworld, command-plan rules in
    textworld, the generic rule in an environment without rules of its own ("otherworld")."""
    traj = make_traj(["take apple 1 from countertop 1", "move apple 1 to fridge 1"], "put a apple in fridge.",
                     "pick_and_place")  # fmt: skip
    household = trace_skills("household", "pick_and_place", [traj])
    assert household[0] == (
        "WHEN the task is to put an apple in the fridge THEN first find and take the apple, "
        "then go to the fridge and move it there"
    )
    assert trace_skills("alfworld", "pick_and_place", [traj]) == household
    assert trace_skills("otherworld", "pick_and_place", [traj]) == [
        "WHEN the task type is pick and place THEN take apple from countertop, then move apple to fridge"
    ]
    generic = trace_skills("otherworld", "pick_and_place", [traj])
    assert trace_skills("shop", "pick_and_place", [traj]) == generic
    assert trace_skills("textworld", "pick_and_place", [traj]) == [
        "WHEN the task type is pick and place THEN first take apple 1 from countertop 1, "
        "then move apple 1 to fridge 1"
    ]
    shop = make_traj(["search[red shirt]", "click[b01]", "click[buy now]"], "red shirt", "shirt")
    assert trace_skills("household", "shirt", [shop]) == []  # no household subgoal in shop clicks


def test_trace_words_come_from_env_text_or_template() -> None:
    """The tiny model's word-level vocabulary is env text + MINING_VOCAB_TEXT: trace skills must fit it."""
    cases = [
        (
            "household",
            "pick_heat_then_place",
            [
                make_traj(HEAT_APPLE, "put a hot apple in fridge.", "pick_heat_then_place"),
                make_traj(HEAT_EGG, "put a hot egg in countertop.", "pick_heat_then_place"),
            ],
        ),
        (
            "shop",
            "shirt",
            [
                make_traj(
                    ["search[red shirt]", "click[b01]", "click[red]", "click[buy now]"], "red shirt", "shirt"
                )
            ],
        ),
    ]
    cases.append(("household", "pick_two_obj_and_place", [make_traj(TWO_CDS, "put two cd in safe.",
                                                                      "pick_two_obj_and_place")]))  # fmt: skip
    veg = ("carrot", "potato", "onion", "pepper")  # four alternatives: the slot becomes a role word
    cooks = [make_traj([f"take {v} from counter", f"cook {v} with stove", "eat meal"], f"cook the {v}",
                       "tw_cook", traj=i) for i, v in enumerate(veg)]  # fmt: skip
    cases.append(("textworld", "tw_cook", cooks))
    assert trace_skills("textworld", "tw_cook", cases[-1][2]) == [
        "WHEN the task type is tw cook THEN first take an object, then cook an object, then eat meal"
    ]
    for env, task_type, trajs in cases:
        env_words = set(mining_words(task_type.replace("_", " ")))
        for t in trajs:
            env_words |= set(mining_words(t.task))
            for s in t.steps:
                env_words |= set(mining_words(s.action))
        mined = [*trace_skills(env, task_type, trajs), *trace_skills(env, task_type, trajs, style="legacy")]
        mined += trace_skills(env, "general", [*trajs, *trajs])  # more episodes: role words, lists
        for skill in mined:
            unknown = set(mining_words(skill)) - env_words - MINING_TEMPLATE_WORDS
            assert not unknown, (skill, unknown)
        msgs = mining_messages(task_type, [render_trajectory(t, t.task) for t in trajs], 3)
        for m in msgs:
            assert not set(mining_words(m["content"])) - env_words - MINING_TEMPLATE_WORDS


def test_trace_skills_drop_detours_and_exploration_noise() -> None:
    noisy = [
        "examine sidetable 1",
        "take pen 2 from desk 1",  # an unrelated object, put back elsewhere
        "move pen 2 to shelf 1",
        "take apple 1 from countertop 1",
        "heat apple 1 with microwave 1",
        "move apple 1 to countertop 2",  # a detour: the apple is taken again later
        "examine countertop 2",
        "take apple 1 from countertop 2",
        "go to fridge 1",
        "open fridge 1",
        "move apple 1 to fridge 1",
    ]
    clean = make_traj(HEAT_APPLE, "put a hot apple in fridge.", "pick_heat_then_place", traj=1)
    skills = trace_skills("household", "pick_heat_then_place", [make_traj(noisy, "t", "pick_heat_then_place"), clean])
    assert skills[0] == (
        "WHEN the task is to heat an apple and put it in the fridge THEN first find and take the apple, "
        "then go to the microwave and heat it, then go to the fridge and move it there"
    )
    assert "WHEN you need an apple THEN look in the countertop first" in skills
    assert "WHEN the fridge is closed THEN open it before you take from it or put in it" in skills
    assert len(skills) == 3
    assert not any({"pen", "examine", "sidetable", "shelf"} & set(s.split()) for s in skills)


# --- the "sentences" style: skills that read as sentences -----------------------------------------------


def pick_place(obj: str, src: str, dest: str, traj: int = 0, task_type: str = "pick_and_place") -> Trajectory:
    actions = [f"go to {src}", f"take {obj} from {src}", f"go to {dest}", f"move {obj} to {dest}"]
    return make_traj(actions, f"put some {obj.split()[0]} in {dest.split()[0]}.", task_type, traj=traj)


def test_sentences_single_place_and_vowel_articles() -> None:
    skills = trace_skills("household", "pick_and_place", [pick_place("apple 1", "countertop 1", "fridge 1")])
    assert skills == [
        "WHEN the task is to put an apple in the fridge THEN first find and take the apple, "
        "then go to the fridge and move it there",
        "WHEN you need an apple THEN look in the countertop first",
    ]
    book = trace_skills("household", "pick_and_place", [pick_place("book 2", "shelf 3", "desk 1")])
    assert book[0].startswith("WHEN the task is to put a book in the desk THEN")
    assert book[1] == "WHEN you need a book THEN look in the shelf first"
    assert [article(w) for w in ("apple", "egg", "alarmclock", "object", "book", "receptacle")] == [
        "an", "an", "an", "an", "a", "a"]  # fmt: skip


def test_sentences_several_places_ranked_by_episodes_then_alphabet_at_most_three() -> None:
    found = ["cabinet 1", "cabinet 4", "cabinet 2", "shelf 1", "drawer 3", "countertop 2"]
    trajs = [pick_place(f"mug {i % 2 + 1}", src, "coffeemachine 1", traj=i) for i, src in enumerate(found)]
    skills = trace_skills("household", "pick_and_place", trajs)
    # cabinet: 3 episodes; countertop, drawer and shelf: 1 each (alphabetical, the shelf is the fourth).
    assert "WHEN you need a mug THEN look in the cabinet, the countertop and the drawer first" in skills
    two = trace_skills("household", "pick_and_place", trajs[2:4])
    assert "WHEN you need a mug THEN look in the cabinet and the shelf first" in two


def test_sentences_never_repeat_an_alternative_of_duplicated_instances() -> None:
    """Two instances of one type are one alternative: "a dishsponge", never "a dishsponge or a dishsponge"."""
    trajs = [
        make_traj(["take dishsponge 1 from countertop 1", "go to sinkbasin 1", "clean dishsponge 1 with sinkbasin 1",
                   "go to countertop 2", "move dishsponge 1 to countertop 2"], "t", "pick_clean_then_place", traj=0),
        make_traj(["take dishsponge 2 from countertop 3", "go to sinkbasin 2", "clean dishsponge 2 with sinkbasin 2",
                   "go to countertop 1", "move dishsponge 2 to countertop 1"], "t", "pick_clean_then_place", traj=1),
    ]  # fmt: skip
    assert trace_skills("household", "pick_clean_then_place", trajs) == [
        "WHEN the task is to clean a dishsponge and put it in the countertop THEN first find and take the dishsponge, "
        "then go to the sinkbasin and clean it, then go to the countertop and move it there",
        "WHEN you need a dishsponge THEN look in the countertop first",
    ]
    assert ranked_types(Counter({"mug 1": 1, "mug 2": 2, "cup 3": 2, "Mug": 1, "": 5, "4": 1})) == ["mug", "cup"]
    assert word_list(["the apple", "the apple", "the egg", "the tomato"], "or") == "the apple, the egg or the tomato"


def test_sentences_heat_cool_clean_plans() -> None:
    heat = trace_skills("household", "pick_heat_then_place", [
        make_traj(HEAT_APPLE, "put a hot apple in fridge.", "pick_heat_then_place", traj=0),
        make_traj(HEAT_EGG, "put a hot egg in countertop.", "pick_heat_then_place", traj=1),
    ])  # fmt: skip
    assert heat == [
        "WHEN the task is to heat an apple or an egg and put it in the countertop or the fridge THEN first find and "
        "take the apple or the egg, then go to the microwave and heat it, then go to the countertop or the fridge "
        "and move it there",
        "WHEN the cabinet or the fridge is closed THEN open it before you take from it or put in it",
        "WHEN you need an apple THEN look in the countertop first",
        "WHEN you need an egg THEN look in the cabinet first",
    ]
    cool = [
        make_traj([f"take {o} 1 from countertop 1", "go to fridge 1", f"cool {o} 1 with fridge 1",
                   "go to diningtable 1", f"move {o} 1 to diningtable 1"], "t", "pick_cool_then_place", traj=i)
        for i, o in enumerate(["potato", "lettuce", "apple", "lettuce"])
    ]  # fmt: skip
    assert trace_skills("household", "pick_cool_then_place", cool)[0] == (
        "WHEN the task is to cool a lettuce, an apple or a potato and put it in the diningtable THEN first find and "
        "take the lettuce, the apple or the potato, then go to the fridge and cool it, then go to the diningtable "
        "and move it there"
    )
    clean = [
        make_traj([f"take {o} 1 from {src} 1", f"clean {o} 1 with sinkbasin 1", f"move {o} 1 to {dest} 1"],
                  "t", "pick_clean_then_place", traj=i)
        for i, (o, src, dest) in enumerate([("cloth", "shelf", "bathtubbasin"), ("soapbar", "toilet", "cabinet"),
                                            ("egg", "fridge", "countertop"), ("mug", "cabinet", "shelf")])
    ]  # fmt: skip
    assert trace_skills("household", "pick_clean_then_place", clean)[0] == (
        "WHEN the task is to clean an object and put it in a receptacle THEN first find and take the object, "
        "then go to the sinkbasin and clean it, then go to the receptacle and move it there"
    )


def test_sentences_two_objects_lamps_and_role_words() -> None:
    two = make_traj(TWO_CDS, "put two cd in safe.", "pick_two_obj_and_place")
    assert trace_skills("household", "pick_two_obj_and_place", [two]) == [
        "WHEN the task is to put two cd in the safe THEN first find and take the cd, then go to the safe and move it "
        "there, then do the same for the next one",
        "WHEN you need a cd THEN look in the desk and the shelf first",
    ]
    many = [
        make_traj([f"take {o} 1 from desk 1", f"move {o} 1 to {d} 1", f"take {o} 2 from desk 1", f"move {o} 2 to {d} 1"],
                  "t", "pick_two_obj_and_place", traj=i)
        for i, (o, d) in enumerate([("cd", "safe"), ("pen", "drawer"), ("vase", "shelf"), ("book", "bed")])
    ]  # fmt: skip
    assert trace_skills("household", "pick_two_obj_and_place", many)[0] == (
        "WHEN the task is to put two of the same object in a receptacle THEN first find and take the object, "
        "then go to the receptacle and move it there, then do the same for the next one"
    )
    lamp = make_traj(["take book 1 from bed 1", "go to desklamp 1", "use desklamp 1"],
                     "look at book under the desklamp.", "look_at_obj_in_light")  # fmt: skip
    alarm = make_traj(["take alarmclock 2 from desk 1", "go to floorlamp 1", "use floorlamp 1"],
                      "look at alarmclock under the floorlamp.", "look_at_obj_in_light", traj=1)  # fmt: skip
    assert trace_skills("household", "look_at_obj_in_light", [lamp, alarm])[0] == (
        "WHEN the task is to look at an alarmclock or a book under the desklamp or the floorlamp THEN first find and "
        "take the alarmclock or the book, then go to the desklamp or the floorlamp and use it"
    )
    assert not any("you need a desklamp" in s for s in trace_skills("household", "look_at_obj_in_light", [lamp]))


def test_sentences_say_where_the_lamps_were_used() -> None:
    """Where each episode last went before using its lamp is where the lamp stands: a lamp placement skill."""
    trajs = [
        make_traj([f"go to {src} 1", f"take {obj} 1 from {src} 1", f"go to {host}", "go to desk 1", f"go to {host}",
                   f"use {lamp} 1"], f"look at {obj} under the {lamp}.", "look_at_obj_in_light", traj=i)
        for i, (obj, src, host, lamp) in enumerate([("book", "bed", "sidetable 2", "desklamp"),
                                                    ("pen", "desk", "sidetable 1", "desklamp"),
                                                    ("cd", "shelf", "desk 2", "desklamp"),
                                                    ("vase", "shelf", "coffeetable 1", "floorlamp")])
    ]  # fmt: skip
    skills = trace_skills("household", "look_at_obj_in_light", trajs)
    assert "WHEN you need a desklamp THEN look in the sidetable and the desk first" in skills
    assert "WHEN you need a floorlamp THEN look in the coffeetable first" in skills
    assert "WHEN you need a book THEN look in the bed first" in skills
