"""The scienceworld environment on ScienceWorld's real Java engine, offline: expert and random policies
through ``siri env check``, the interface contract, the engine's own splits, the action filter and cap, free
text, the JVM's lifecycle, the errors, and one short GiGPO run from the CLI (``siri train``, then ``siri
eval``)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from micro_policy import episode_texts, expert_trajectories, save_micro_policy
from siri.cli import app
from siri.envs import EnvError, make
from siri.runs.run_dir import RunDir

pytestmark = [
    pytest.mark.scienceworld,
    pytest.mark.skipif(importlib.util.find_spec("scienceworld") is None or shutil.which("java") is None,
                       reason="ScienceWorld or Java is not installed (siri-rl[scienceworld], a Java "
                              "runtime)"),
]
ROOT = Path(__file__).resolve().parents[1]
# Three tasks whose gold paths are short (6-9 steps): living thing, longest-lived animal, secondary color.
TASKS = "find-living-thing,lifespan-longest-lived,chemistry-mix-paint-secondary-color"
runner = CliRunner()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh SIRI_CACHE (the engine's variation lists are read into it once)."""
    root = tmp_path_factory.mktemp("sw-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIRI_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def env(cache: Path) -> Iterator:
    env = make("scienceworld", split="dev", tasks=TASKS, max_variations=2, max_steps=30)
    yield env
    env.close()


def _check(*args: str) -> dict:
    # a later -o max_steps wins
    opts = ["-o", f"tasks={TASKS}", "-o", "max_variations=1", "-o", "max_steps=30"]
    result = runner.invoke(app, ["env", "check", "scienceworld", "--split", "test", *opts, "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_expert_solves_the_test_variations_and_random_play_gives_the_baseline(cache: Path) -> None:
    expert = _check("--policy", "expert")
    assert expert["overall"]["episodes"] == 3 and expert["overall"]["invalid_actions"] == 0, expert
    rates = {t: s["success_rate"] for t, s in expert["per_task_type"].items()}
    assert rates == dict.fromkeys(TASKS.split(","), 1.0)
    assert expert["overall"]["mean_score"] == 1.0
    rand = _check("--policy", "random", "-o", "max_steps=8")["overall"]
    assert rand["invalid_actions"] == 0  # every listed action is one the engine's parser takes
    assert rand["success_rate"] == 0.0 and rand["mean_score"] < 0.5, rand  # docs/scienceworld.md: 60 episodes


def test_actions_the_parser_cannot_name_are_not_listed(cache: Path) -> None:
    """ScienceWorld 1.2.3 lists "look at bee 0" for the bees by this variation's hive, though its parser
    cannot name them (they are not in its referent table) and refuses it: the filter leaves such actions
    out."""
    env = make("scienceworld", split="test", tasks="lifespan-longest-lived", max_variations=1, max_actions=0)
    obs = env.reset(0)
    raw = [c["action"] for c in env._engine.valid_combinations()]
    bees = [a for a in raw if re.fullmatch(r"(look at|focus on) bee \d+", a)]
    assert bees and not set(bees) & set(obs.admissible_actions)
    step = env.step(bees[0])  # typed as free text, the engine refuses it: nothing changes
    assert not step.valid and "knows no action" in step.reason and step.observation.anchor == obs.anchor
    # should the engine refuse a listed action anyway, the step is invalid and the action leaves the episode's
    # lists
    env._obs = dataclasses.replace(env._obs, admissible_actions=(*obs.admissible_actions, bees[1]))
    step = env.step(bees[1])
    assert not step.valid and "listed" in step.reason and bees[1] not in step.observation.admissible_actions
    assert env._rejected == {bees[1]}
    env._rejected.add(obs.admissible_actions[-1])  # as if the engine had refused this one too
    assert obs.admissible_actions[-1] not in env.step("look around").observation.admissible_actions
    assert env.reset(0) == obs and not env._rejected  # per episode: the next reset lists them again
    env.close()


def test_splits_are_the_engines_variation_sets_and_interleave_tasks(cache: Path) -> None:
    envs = {split: make("scienceworld", split=split, tasks=TASKS) for split in ("train", "dev", "test")}
    sets = {split: set(e.episodes) for split, e in envs.items()}
    assert not (sets["train"] & sets["dev"]) and not (sets["train"] & sets["test"])
    assert not (sets["dev"] & sets["test"])
    # the first seeds cover every task
    assert [task for task, _ in envs["test"].episodes[:3]] == TASKS.split(",")
    living = [v for t, v in envs["train"].episodes if t == "find-living-thing"]
    assert len(living) == 150 and living == sorted(living)  # the engine's 150 training variations, in order
    assert make("scienceworld", split="test", tasks=["1-1", "boil"]).tasks == ["boil"]  # ids and names


def test_reset_is_deterministic_and_fast_to_repeat(env, cache: Path) -> None:
    first = env.reset(1)
    env.step(first.admissible_actions[0])
    again = env.reset(1)
    assert first == again
    other = make("scienceworld", split="dev", tasks=TASKS, max_variations=2, max_steps=30)
    assert other.reset(1) == first  # another simulation in the same JVM
    other.close()
    assert env.reset(1 + env.split_size()) == first  # drawn seeds wrap around the split (split_seed)
    from siri.envs.scienceworld_env import jvm_process

    pid = jvm_process().pid
    for seed in range(12):  # resets reload the variation: no new JVM, no new simulation
        env.reset(seed)
    assert jvm_process().pid == pid


def test_invalid_actions_change_nothing(env) -> None:
    obs = env.reset(0)
    moves = env._engine.server.getNumMoves()
    for bad, reason in [("fly to the moon", "engine knows no action"),
                        ("reset task", "wipe the episode's progress"), ("", "empty action"),
                        (7, "must be a string"), ("x" * 400, "characters long")]:
        step = env.step(bad)
        assert not step.valid and reason in step.reason and step.reward == 0.0 and not step.done
        assert step.observation.anchor == obs.anchor
        assert step.observation.admissible_actions == obs.admissible_actions
    assert env._engine.server.getNumMoves() == moves  # the engine never counted them
    assert step.observation.step == 5


def test_anchor_is_the_engines_state(env) -> None:
    env.reset(0)
    obs = env.step("look around").observation  # the first look earns this task's first points
    inventory = env.step("inventory").observation
    assert inventory.anchor == obs.anchor and inventory.text != obs.text  # a look that changes nothing
    seen = {obs.anchor}
    for step in _through_a_door(env, inventory):  # opening a door, going through it: new states
        assert step.valid and step.observation.anchor not in seen
        seen.add(step.observation.anchor)
    score, digest = step.observation.anchor
    assert score == round(100 * step.score) and len(digest) == 20


def _through_a_door(env, obs) -> list:
    """Two steps chosen from the lists alone (the engine's gold-path generator is random): the first listed
    "open door ...", then the "go to <room>" that opening it adds to the list."""
    door = env.step(next(a for a in obs.admissible_actions if a.startswith("open door")))
    room = next(a for a in door.observation.admissible_actions
                if a.startswith("go to ") and a not in obs.admissible_actions)
    return [door, env.step(room)]


class _Spy:
    """An engine's simulation that records the calls made on it."""

    def __init__(self, server) -> None:
        self.server, self.calls = server, []

    def __getattr__(self, name: str):
        self.calls.append(name)
        return getattr(self.server, name)


def test_the_gold_path_is_made_on_another_simulation(env) -> None:
    """Generating and checking the gold path mid-episode leaves the episode's simulation alone."""
    from siri.envs import scienceworld_env as sw

    obs = _through_a_door(env, env.reset(2))[-1].observation  # two moves in when the gold path is asked for
    sw._GOLD.pop(env._gold_key(), None)
    idle = sw.idle_engines()
    spy = env._engine.server = _Spy(env._engine.server)
    try:
        gold = env.gold_actions()
    finally:
        env._engine.server = spy.server
    assert gold and spy.calls == []  # no load, no step, no read on the episode's own simulation
    assert sw.idle_engines() == max(idle, 1)  # the simulation it used went back to the pool
    assert sw.tree_digest(env._engine.object_tree()) == obs.anchor[1]  # the episode's state is as it was


def test_an_engine_error_is_an_invalid_step(env) -> None:
    from py4j.protocol import Py4JError

    class Failing(_Spy):
        def step(self, command: str):
            raise Py4JError(f"An error occurred while calling step({command})\nJava stack trace")

    obs = env.reset(0)
    env._engine.server = Failing(env._engine.server)
    try:
        step = env.step("look around")
    finally:
        env._engine.server = env._engine.server.server
    assert not step.valid and step.reason == (
        "the engine failed on 'look around' (Py4JError: An error occurred while calling step(look around))")
    assert not step.done and step.reward == 0.0 and step.observation.anchor == obs.anchor
    assert env.step("look around").valid


def test_score_failure_and_rewards(env) -> None:
    steps = _through_a_door(env, env.reset(1))  # the longest-lived animal: points for each room on the way
    step = steps[-1]
    assert 0 < step.score < 1 and sum(s.reward for s in steps) == pytest.approx(step.score)
    # free text the engine accepts: focusing on the wrong thing fails the task
    failed = env.step("focus on air")
    assert failed.valid and failed.done and not failed.won and failed.info["failed"]
    assert failed.score == 0.0 and failed.reward == pytest.approx(-step.score)
    assert failed.info["engine_score"] < 0
    env.reset(1)
    while True:
        step = env.step(env.expert_action())
        if step.done:
            break
    assert step.won and step.score == 1.0 and step.info["engine_score"] == 100


def test_filter_cap_and_free_text(cache: Path) -> None:
    capped = make("scienceworld", split="dev", tasks="chemistry-mix-paint-secondary-color", max_variations=1,
                  max_actions=15)
    obs = capped.reset(0)
    assert len(obs.admissible_actions) == 15
    assert obs.admissible_actions[:4] == ("inventory", "look around", "wait", "wait1")  # the first tier
    whole = make("scienceworld", split="dev", tasks="chemistry-mix-paint-secondary-color", max_variations=1,
                 max_actions=0)
    listed = whole.reset(0).admissible_actions
    assert obs.admissible_actions == listed[:15] and len(listed) > 15
    assert not any(a.startswith(("connect", "disconnect", "reset task", "task")) for a in listed)
    assert not any(a.startswith("go to door") for a in listed)
    assert "focus on <OBJ>" in obs.action_templates and "move <OBJ to OBJ>" in obs.action_templates
    gold = capped.gold_actions()
    step = capped.step(gold[0])
    assert step.valid  # free text: the expert's commands need not be listed
    capped.close(), whole.close()


def test_the_jvm_is_pooled_and_shut_down(cache: Path) -> None:
    from siri.envs import scienceworld_env as sw

    a = make("scienceworld", split="dev", tasks=TASKS, max_variations=1)
    a.reset(0)
    pid = sw.jvm_process().pid
    idle = sw.idle_engines()
    a.close()
    assert sw.idle_engines() == idle + 1
    b = make("scienceworld", split="dev", tasks=TASKS, max_variations=1)
    b.reset(0)
    assert sw.idle_engines() == idle and sw.jvm_process().pid == pid  # the same simulation, reused
    b.close()
    process, trees = sw.jvm_process(), Path(sw._TREES.name)
    assert trees.is_dir()
    sw.shutdown_engines()
    assert process.poll() is not None and sw.jvm_process() is None and sw.idle_engines() == 0
    assert sw._TREES is None and not trees.exists()  # the state exports' folder goes with the JVM
    assert b.reset(0).task  # the next reset starts a new JVM


def test_the_jvm_dies_with_its_process(cache: Path) -> None:
    code = ("from siri.envs import make\n"
            "env = make('scienceworld', split='dev', tasks='find-living-thing', max_variations=1)\n"
            "env.reset(0)\nfrom siri.envs.scienceworld_env import jvm_process\nprint(jvm_process().pid)\n"
            "import os; os._exit(0)\n")  # no close, no atexit: only py4j's die_on_exit remains
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    pid = int(out.stdout.split()[-1])
    for _ in range(100):
        if not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower():
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the JVM {pid} outlived its Python process")


def test_trace_miner_writes_command_plans(env) -> None:
    from siri.skills.trace import MAX_PLAN_STEPS, trace_skills

    won = expert_trajectories(env, [1, 4])  # the longest-lived animal, two dev variations (4-6 steps)
    skills = trace_skills("scienceworld", "lifespan-longest-lived", won)
    prefix = "WHEN the task type is lifespan longest lived THEN first "
    assert skills and all(s.startswith(prefix) for s in skills)
    # a won episode went to the animals' room and focused on one; a plan keeps its first MAX_PLAN_STEPS steps
    assert all("go to " in s for s in skills) and any("focus on " in s for s in skills)
    assert all("focus on " in s for s in skills if s.count(", then ") < MAX_PLAN_STEPS - 1)
    assert not any("look around" in s or "in inventory" in s for s in skills)  # no looking, no qualifiers


@pytest.mark.parametrize("options,message", [
    ({"split": "eval"}, r"unknown scienceworld split 'eval'; choose one of: train, dev, test"),
    ({"tasks": "boil,make-tea"}, r"unknown task 'make-tea'; choose names or ids of: boil, melt"),
    ({"simplifications": "easy,fast"}, r"unknown simplification\(s\) fast; choose among: teleportAction"),
    ({"max_actions": -1}, r"max_actions must be >= 0"),
    ({"max_variations": 0}, r"max_variations must be >= 1"),
    ({"max_variations": "abc"},
     r"max_variations must be >= 1 \(or unset for all\), a whole number; got 'abc'"),
    ({"max_actions": 2.5}, r"max_actions must be >= 0 \(0: no cap\), a whole number; got 2.5"),
])
def test_bad_options_name_the_valid_choices(options: dict, message: str, cache: Path) -> None:
    with pytest.raises(EnvError, match=message):
        make("scienceworld", **options)


def test_electrical_tasks_refuse_no_electrical_actions(cache: Path) -> None:
    for simplifications in ("noElectricalAction", "easy,noElectricalAction"):
        env = make("scienceworld", split="dev", tasks="power-component", max_variations=1,
                   simplifications=simplifications)
        with pytest.raises(EnvError, match="needs electrical actions"):
            env.reset(0)
        env.close()


def test_easy_is_expanded_as_the_engine_expands_it(cache: Path) -> None:
    """``easy`` is teleportAction, openDoors, selfWateringFlowerPots and, but on the electrical tasks,
    noElectricalAction (the engine's reading); expanded before any check, it combines with others."""
    from siri.envs.scienceworld_env import task_simplifications

    easy = ["teleportAction", "noElectricalAction", "openDoors", "selfWateringFlowerPots"]
    assert task_simplifications("easy", "boil") == easy
    assert task_simplifications("openDoors,easy", "test-conductivity") == [
        "openDoors", "teleportAction", "selfWateringFlowerPots"]  # in order, each once
    for task, electrical in (("power-component", True), ("boil", False)):
        env = make("scienceworld", split="dev", tasks=task, max_variations=1, max_actions=0,
                   simplifications="easy,openContainers")
        listed = env.reset(0).admissible_actions
        used = set(str(env._engine.server.getSimplificationsUsed()).split(", "))  # what the engine applied
        assert used == {"teleportAction", "openDoors", "selfWateringFlowerPots", "openContainers"} | (
            set() if electrical else {"noElectricalAction"})
        templates = env.reset(0).action_templates
        assert any(a.startswith("teleport to ") for a in listed) and "teleport to <OBJ>" in templates
        assert ("connect <OBJ to OBJ>" in templates) == electrical
        raw = [c["action"] for c in env._engine.valid_combinations()]  # before the filter, which drops more
        assert any(a.startswith("connect ") for a in raw) == electrical
        env.close()


@pytest.mark.parametrize("block,message", [
    ("import sys; sys.modules['scienceworld'] = None", "pip install 'siri-rl[scienceworld]'"),
    ("import os; os.environ['PATH'] = '/nonexistent'", "no `java` is on PATH"),
])
def test_missing_extra_or_java_is_named(block: str, message: str, tmp_path: Path) -> None:
    code = (f"{block}\nfrom siri.envs import EnvError, make\n"
            "try:\n    make('scienceworld', tasks='boil', max_variations=1).reset(0)\nexcept EnvError as e:\n"
            "    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src"), "SIRI_CACHE": str(tmp_path)})
    assert message in out.stdout, out.stdout + out.stderr


def test_gigpo_trains_from_the_cli_and_siri_eval_reports(cache: Path, tmp_path: Path) -> None:
    """The scienceworld preset's GiGPO run, cut to one iteration of 2 x 2 episodes with a micro model."""
    tasks = "find-living-thing,lifespan-longest-lived"
    # the words of two training episodes (evaluation's other words are <unk> to this random model: harmless)
    texts = episode_texts(make("scienceworld", split="train", tasks=tasks, max_variations=1, max_actions=20),
                          range(2), steps=3)
    model = save_micro_policy(texts, tmp_path / "model", "scienceworld")
    run = tmp_path / "run"
    options = f"env.options={{tasks: [{tasks}], max_variations: 1, max_actions: 20}}"
    cmd = [sys.executable, "-m", "siri", "train", "--config", "scienceworld-smollm2-gigpo",
           "--run-dir", str(run), "--no-report", f"model.name_or_path={model}", "env.max_steps=3",
           "rollout.num_groups=2", "rollout.group_size=2", "train.iterations=1", "train.eval_episodes=2",
           "train.device=cpu", options]
    environ = {**os.environ, "OMP_NUM_THREADS": "1", "SIRI_CACHE": str(cache)}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=environ, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = RunDir.open(run).metrics()
    assert [r["iteration"] for r in rows] == [0, 1]
    assert rows[1]["train/episodes"] == 4 and rows[1]["eval/episodes"] == 2
    assert {"bootstrap", "final"} <= set(json.loads((run / "summary.json").read_text())["evals"])
    result = runner.invoke(app, ["eval", "--model", str(run / "policy"), "--env", "scienceworld",
                                 "episodes=2", "max_steps=3", "-o", f"tasks={tasks}",
                                 "-o", "max_variations=1", "-o", "max_actions=20", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["split"] == "test" and set(report["per_task_type"]) == set(tasks.split(","))
