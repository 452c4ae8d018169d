"""The searching, noisy demonstrator whose episodes the warm start imitates.

The environments' experts know where everything is (privileged); a policy that only reads the prompt
cannot, so imitating them teaches walking straight to hidden objects, which it cannot reproduce, and then
endless loops. Where the expert says its next step comes from hidden state (``expert_searching()``:
walking to where the object hides), the demonstrator searches honestly instead, with probability
``search_share``: it opens the closed place it stands at, else goes to a random place it has not visited.
Everything else (taking what is in view, processing it, delivering it) follows the expert. With
probability ``random_action_share`` a step is a random admissible action, with ``invalid_action_share``
an inadmissible one (so "Nothing happens." states are seen, with the expert's recovery as label).

Skill-following (``WarmStartConfig.follow_skills``, household): an episode may be shown one placement skill,
"WHEN you need a mug THEN look in the cabinet, the shelf and the countertop first". While it searches for
the task's object with nothing in hand, the demonstrator then goes to the places the skill names, in the
skill's order (every instance of the first kind, opening closed ones, then the next kind), before searching
as above. The skills name typical, atypical (decoy) or random compatible places, so a model that imitates it
learns to act on what a skill says, not on its mere presence; without a skill it knows no placements.
A look-at task has a second search, for the lamp, once the object is in hand; with ``lamp_skills`` the episode
may also be shown a placement skill for the lamp ("WHEN you need a desklamp THEN look in the desk and the
sidetable first"), followed the same way, over the places not searched since the pickup (``SearchMemory``).
``skill_twin`` labels the same search state under another skill (the warm start's contrastive twins);
``delivery_twin`` the step after a pickup under a task that names another receptacle.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from siri.envs import Env, Observation, make
from siri.envs.household import placements, world
from siri.rollout.types import StepRecord, Trajectory
from siri.sft.config import WarmStartConfig
from siri.skills.bank import needed_thing
from siri.skills.trace import article, word_list


@dataclass
class Episode:
    """A noisy-expert episode: the observation before each action, the actions, and the outcome."""

    seed: int
    observations: list[Observation]
    actions: list[str]
    next_texts: list[str]
    won: bool
    expert_actions: list[str] = dataclasses.field(default_factory=list)
    valid: list[bool] = dataclasses.field(default_factory=list)  # whether the environment carried out each action
    goal_object: str | None = None  # the word of the object the task asks for, where the env says it
    skill: str | None = None  # the placement skill the episode was shown and followed (follow_skills)
    goal_lamp: str | None = None  # the word of the lamp a look-at task names ("desklamp"), where the env says it
    lamp_skill: str | None = None  # the lamp's placement skill the episode was shown and followed (lamp_skills)

    @property
    def skills(self) -> list[str]:
        """The placement skills the episode's prompts show: the object's, then the lamp's."""
        return [s for s in (self.skill, self.lamp_skill) if s is not None]


@dataclass
class SearchMemory:
    """What the agent has done that decides a guided search: the places gone to (the object search skips
    them), where it stands, and whether it holds something. Once it takes an object, the places gone to from
    then on (``since_pickup``, with the one it stands at) are the ones a second search, for the lamp, skips:
    a place searched for the object may well hold the lamp."""

    visited: set[str] = dataclasses.field(default_factory=set)
    since_pickup: set[str] = dataclasses.field(default_factory=set)
    here: str | None = None
    holding: bool = False

    def update(self, action: str, valid: bool) -> None:
        """Record a step's action (``valid``: the environment carried it out)."""
        if action.startswith("go to "):
            self.visited.add(action[6:])  # as the prompt's history shows it, valid or not
            if valid:
                self.here = action[6:]
                self.since_pickup.add(action[6:])
        if valid and action.startswith(("take ", "move ")):
            self.holding = action.startswith("take ")
            self.since_pickup = {self.here} if self.holding and self.here else set()


# Draws the skill an episode is shown (or None) from its first observation and goal object word.
SkillDraw = Callable[[Observation, str | None], str | None]


def noisy_episode(
    env: Env, seed: int, rng: random.Random, random_share: float, search_share: float = 0.0,
    invalid_share: float = 0.0, skill: SkillDraw | None = None, lamp_skill: bool = False,
) -> Episode:
    """Play one episode with the searching, noisy demonstrator of the module docstring.

    ``Episode.expert_actions`` holds the label of every step: the action taken, except the expert's
    action where the step was invalid (and, for the caller to choose, where it was random). ``skill``
    draws the placement skill the episode is shown (None: none); the searches follow its places. With
    ``lamp_skill`` it also draws one for a look-at task's lamp, followed once the object is in hand.
    """
    obs = env.reset(seed)
    goal_object, goal_lamp = getattr(env, "goal_object", None), getattr(env, "goal_lamp", None)
    episode = Episode(seed, [], [], [], False, goal_object=goal_object() if goal_object is not None else None,
                      goal_lamp=goal_lamp() if goal_lamp is not None else None)
    episode.skill = skill(obs, episode.goal_object) if skill is not None else None
    if lamp_skill and skill is not None and episode.goal_lamp is not None:
        episode.lamp_skill = skill(obs, episode.goal_lamp)
    places = places_named(episode.skill) if episode.skill else []
    lamp_places = places_named(episode.lamp_skill) if episode.lamp_skill else []
    memory = SearchMemory()  # the agent knows what it holds: a valid take picks up, a valid move puts down
    searching = getattr(env, "expert_searching", None)  # envs whose expert can say when it uses hidden state
    while True:
        expert = env.expert_action()
        admissible = obs.admissible_actions
        label = expert
        draw = rng.random()
        if draw < invalid_share and admissible:
            action = _inadmissible_variant(rng.choice(admissible), admissible)
        elif draw < invalid_share + random_share and admissible:
            action = rng.choice(admissible)
        else:
            action = expert
            if searching is not None and searching() and rng.random() < search_share:
                if not memory.holding:
                    guided = _guided_step(admissible, places, memory.visited) if places else None
                else:  # holding the object of a look-at task: heading for the lamp
                    guided = _guided_step(admissible, lamp_places, memory.since_pickup) if lamp_places else None
                action = label = guided or _search_step(admissible, memory.visited, rng) or expert
        step = env.step(action)
        memory.update(action, step.valid)
        episode.expert_actions.append(label)
        episode.valid.append(step.valid)
        episode.observations.append(obs)
        episode.actions.append(action)
        episode.next_texts.append(step.observation.text)
        obs = step.observation
        if step.done:
            episode.won = bool(step.won)
            return episode


def _search_step(admissible: tuple[str, ...], visited: set[str], rng: random.Random) -> str | None:
    """An honest search: look inside the closed place here, else go to a random place not visited yet."""
    opens = [a for a in admissible if a.startswith("open ")]
    if opens:
        return opens[0]
    unvisited = [a for a in admissible if a.startswith("go to ") and a[6:] not in visited]
    return rng.choice(unvisited) if unvisited else None


def _kind_word(place: str) -> str:
    """``cabinet 3`` -> ``cabinet``: the receptacle word of an instance name."""
    head, _, number = place.rpartition(" ")
    return head if number.isdigit() else place


def _instance_number(place: str) -> int:
    number = place.rpartition(" ")[2]
    return int(number) if number.isdigit() else 0


def _guided_step(admissible: tuple[str, ...], places: Sequence[str], visited: set[str]) -> str | None:
    """A search that follows a skill: open the closed place here if it is of a named kind, else go to the
    lowest-numbered unvisited instance of the first named kind that has one (None: all were searched)."""
    for action in admissible:
        if action.startswith("open ") and _kind_word(action[5:]) in places:
            return action
    for kind in places:
        targets = [a for a in admissible
                   if a.startswith("go to ") and a[6:] not in visited and _kind_word(a[6:]) == kind]
        if targets:
            return min(targets, key=lambda a: _instance_number(a[6:]))
    return None


# The words observations print for receptacle kinds, which a placement skill's places are spelled with, and
# the kind (as in ``world.CAN_CONTAIN``) of each.
_RECEPTACLE_KINDS: dict[str, str] = {placements.receptacle_word(k): k for k in world.RECEPTACLE_TYPES}
RECEPTACLE_WORDS: frozenset[str] = frozenset(_RECEPTACLE_KINDS)
_OBJECT_KINDS: dict[str, str] = {world.display(k): k for k in world.OBJECT_TYPES}
PLACE_SOURCES: tuple[str, ...] = ("typical", "atypical", "random")


def places_named(skill_text: str) -> list[str]:
    """The receptacle words a skill names after its "THEN", in order of first appearance ([]: none).

    "WHEN you need a mug THEN look in the cabinet, the shelf and the desk first" -> [cabinet, shelf, desk].
    """
    _, then, action = skill_text.partition("THEN")
    if not then:
        return []
    named: list[str] = []
    for word in re.findall(r"[a-z]+", action.lower()):
        if word in RECEPTACLE_WORDS and word not in named:
            named.append(word)
    return named


def is_placement_skill(skill_text: str) -> bool:
    """Whether a skill says where an object is ("WHEN you need a mug THEN ...", in both trace styles)."""
    return skill_text.startswith("WHEN you need ")


def room_places(obs: Observation) -> list[str]:
    """The receptacle words of the places one can go to from ``obs`` (the whole room at the start)."""
    return sorted({_kind_word(a[6:]) for a in obs.admissible_actions if a.startswith("go to ")})


def placement_skill_text(object_word: str, places: Sequence[str]) -> str:
    """The shared placement-skill sentence, worded as the trace miner's "sentences" style writes it (so the
    skills shown and the skills the mining lessons teach read alike): "WHEN you need an apple THEN look in
    the fridge, the countertop and the diningtable first"."""
    where = word_list([f"the {p}" for p in places], "and")
    return f"WHEN you need {article(object_word)} {object_word} THEN look in {where} first"


def draw_placement_skill(object_word: str, room: Sequence[str], rng: random.Random,
                         mix: Sequence[float] = (0.5, 0.25, 0.25), k: int = 3) -> tuple[str, str] | None:
    """(source, skill) of a placement skill for ``object_word`` (an object, or a lamp: the kinds it stands on)
    in a room with these receptacle words.

    The source is drawn by ``mix`` over ``PLACE_SOURCES``: the object's typical kinds
    (``placements.typical_receptacles``), atypical ones (decoys) or ``k`` random compatible kinds, all
    among the room's kinds, in shuffled order (the order is the skill's, not the table's). A source with
    no kind in the room falls back to random compatible kinds. None: no object kind or no compatible place.
    """
    kind = _OBJECT_KINDS.get(object_word)
    if kind is None or (kind not in placements.PLACEMENTS and kind not in placements.LAMP_PLACEMENTS):
        return None
    present = {r for r in world.RECEPTACLE_TYPES if placements.receptacle_word(r) in set(room)}
    source = rng.choices(PLACE_SOURCES, weights=list(mix))[0]
    if source == "typical":
        kinds = placements.typical_receptacles(kind, k, among=present)
    elif source == "atypical":
        kinds = placements.atypical_receptacles(kind, k, among=present)
    else:
        kinds = []
    if not kinds:
        source = "random"
        compatible = sorted(r for r in placements.placement_table(kind) if r in present)
        kinds = rng.sample(compatible, min(k, len(compatible)))
    if not kinds:
        return None
    rng.shuffle(kinds)
    return source, placement_skill_text(object_word, [placements.receptacle_word(r) for r in kinds])


def _searching_for(obs: Observation, goal: str) -> bool:
    """Nothing held (no ``move`` action) and the task's object not in view (no ``take <goal>`` action)."""
    return not any(a.startswith("move ") or a.startswith(f"take {goal} ") for a in obs.admissible_actions)


def _holds(obs: Observation, goal: str) -> bool:
    """Whether the agent holds the task's object: ALFWorld offers ``examine <goal> N`` for what is held."""
    return any(a.startswith(f"examine {goal} ") and _kind_word(a[8:]) == goal for a in obs.admissible_actions)


def search_target(obs: Observation, goal: str, lamp: str | None = None) -> str | None:
    """What the agent searches for at ``obs``: the task's object (``goal``) while nothing is held and it is not
    in view; a look-at task's lamp (``lamp``) while the object is held and no lamp is here to use; else None."""
    if _searching_for(obs, goal):
        return goal
    if lamp and _holds(obs, goal) and not any(a.startswith(f"use {lamp} ") for a in obs.admissible_actions):
        return lamp
    return None


def skill_for(skills: Sequence[str], word: str) -> str | None:
    """The placement skill among ``skills`` for the object or lamp ``word`` ("WHEN you need a desklamp ...")."""
    return next((s for s in skills if needed_thing(s) == word), None)


def _search_visited(memory: SearchMemory, target: str, goal: str) -> set[str]:
    """The places a guided search for ``target`` skips: all gone to for the object, those since the pickup for
    the lamp."""
    return memory.visited if target == goal else memory.since_pickup


def skill_twin(obs: Observation, goal: str, lamp: str | None, room: Sequence[str], memory: SearchMemory,
               rng: random.Random, mix: Sequence[float]) -> tuple[str, str] | None:
    """(skill, label) of a counterfactual twin of a search step: another placement skill for what is searched
    (``search_target``: the object, or a look-at task's lamp) and the step the demonstrator would take under
    it (``_guided_step``), or None where that is no search step.

    The caller keeps to steps whose skipped places (``memory``) are all in view of the prompt (the first step;
    the step after the pickup), so the label is a function of what the prompt shows.
    """
    target = search_target(obs, goal, lamp)
    if target is None:
        return None
    drawn = draw_placement_skill(target, room, rng, mix)
    if drawn is None:
        return None
    label = _guided_step(obs.admissible_actions, places_named(drawn[1]), _search_visited(memory, target, goal))
    return (drawn[1], label) if label is not None else None


def skill_decides(obs: Observation, goal: str, lamp: str | None, skills: Sequence[str],
                  memory: SearchMemory) -> bool:
    """Whether the demonstrator's move at ``obs`` would follow one of ``skills``' places: it searches for
    something (``search_target``), a skill names that thing and one of its places is left to search.
    Everywhere else its move is the same with or without the skills (the warm start's presence twins)."""
    target = search_target(obs, goal, lamp)
    skill = skill_for(skills, target) if target is not None else None
    if skill is None:
        return False
    return _guided_step(obs.admissible_actions, places_named(skill), _search_visited(memory, target, goal)) is not None


def delivery_twin(obs: Observation, label: str, goal: str, rng: random.Random) -> tuple[str, str] | None:
    """(task, label) of a counterfactual twin of a delivery step, or None where the step is none.

    A delivery step holds the task's object (``examine <goal> N`` is admissible: ALFWorld offers it for
    what is held) and its label walks to an instance of the receptacle kind the task ends with ("put some
    mug on shelf." -> ``go to shelf 1``). The twin's task names another kind of the room that can hold the
    object, not the one here; its label walks to that kind's lowest-numbered instance. Only the task's last
    word differs, so only it explains both labels: the tiny model otherwise walks on at random after a
    pickup (docs/tiny-model.md). The steps at the destination (open it, put the object) get no twins: four
    "go elsewhere" twins to one "put it here" taught a model to walk away from the right place (0 of 70
    pick-and-place episodes won; benchmarks/RESULTS.md).
    """
    if not _holds(obs, goal) or not label.startswith("go to "):
        return None
    target = _kind_word(label.removeprefix("go to "))
    task = obs.task.rstrip(". ")
    object_kind = _OBJECT_KINDS.get(goal)
    if object_kind is None or not task.endswith(f" {target}"):
        return None
    here = {_kind_word(a[8:]) for a in obs.admissible_actions if a.startswith("examine ")}
    fits = placements.compatible_receptacles(object_kind)
    others = [word for word in room_places(obs)
              if word != target and word not in here and _RECEPTACLE_KINDS.get(word) in fits]
    if not others:
        return None
    other = rng.choice(others)
    walk = _guided_step(obs.admissible_actions, [other], set())  # its lowest-numbered instance
    assert walk is not None  # room_places lists only kinds one can go to
    return obs.task.replace(task, task[: -len(target)] + other, 1), walk


def is_delivery_put(obs: Observation, label: str, goal: str) -> bool:
    """Whether ``label`` puts the held task object into the receptacle kind the task ends with ("put some
    mug on shelf." at shelf 1: ``move mug 1 to shelf 1``): the step that ends a pick-and-place."""
    task = obs.task.rstrip(". ")
    if not label.startswith(f"move {goal} ") or " to " not in label:
        return False
    return task.endswith(" " + _kind_word(label.rsplit(" to ", 1)[1]))


def _inadmissible_variant(action: str, admissible: tuple[str, ...]) -> str:
    """A plausible but inadmissible action: an admissible one with its last number changed."""
    words = action.split()
    for i in range(len(words) - 1, -1, -1):
        if words[i].isdigit():
            for bump in (7, 8, 9):
                candidate = " ".join([*words[:i], str(int(words[i]) + bump), *words[i + 1 :]])
                if candidate not in admissible:
                    return candidate
    return action + " now" if action + " now" not in admissible else "look around"


def matching_twin(obs: Observation, label: str, goal: str, kinds: Sequence[str], visited: set[str],
                  rng: random.Random) -> tuple[str, str] | None:
    """(task, label) of a counterfactual twin of one demonstration step, or None if it has none.

    Only decision states qualify: something to take in view, nothing held (no ``move`` action), and the
    demonstrator followed the rule "take the task's object when it is in view, else search". The twin
    asks for another object: one in view when the task's object is not (label: take it), else one of
    ``kinds`` not in view (label: an honest search step).
    """
    takes: dict[str, str] = {}
    for action in obs.admissible_actions:
        words = action.split() or [""]
        if words[0] == "take" and len(words) > 1:
            takes.setdefault(words[1], action)
        elif words[0] == "move":
            return None
    if not takes or not re.search(rf"\b{re.escape(goal)}\b", obs.task):
        return None
    if goal in takes:
        if label.split()[:2] != ["take", goal]:
            return None
        others = [k for k in kinds if k not in takes]
        twin_label = _search_step(obs.admissible_actions, visited, rng)
        if not others or twin_label is None:
            return None
        other = rng.choice(others)
    else:
        if not label.startswith(("go to ", "open ")):
            return None
        other = rng.choice(sorted(takes))
        twin_label = takes[other]
    return re.sub(rf"\b{re.escape(goal)}\b", other, obs.task), twin_label


def to_trajectory(episode: Episode, traj: int = 0) -> Trajectory:
    """A bare ``Trajectory`` of an episode (actions and observations only) for the miners."""
    first = episode.observations[0]
    steps = [
        StepRecord(group=0, traj=traj, t=t, seed=episode.seed, task_type=o.task_type, prompt_ids=[], response_ids=[],
                   old_logprobs=[], action_mask=[], action=a, valid=True, reward=0.0, done=t == len(episode.actions) - 1,
                   won=episode.won and t == len(episode.actions) - 1, anchor=o.anchor, observation_text=o.text)
        for t, (o, a) in enumerate(zip(episode.observations, episode.actions, strict=True))
    ]
    return Trajectory(group=0, traj=traj, seed=episode.seed, task=first.task, task_type=first.task_type,
                      steps=steps, won=episode.won, score=1.0 if episode.won else 0.0)


def make_env(config: WarmStartConfig, split: str, warm_start: bool = False) -> Env:
    """The environment ``config`` plays on ``split``; ``warm_start`` adds its ``env_options`` (the vocabulary
    reads the default environment)."""
    options: dict[str, Any] = {**(config.env_options if warm_start else {}), "split": split}
    if config.max_steps is not None:
        options["max_steps"] = config.max_steps
    return make(config.env, **options)
