"""``siri env ...`` through typer's CliRunner: list, play (piped stdin), check, export-alfworld, parity."""

from __future__ import annotations

import importlib.util
import json

import pytest
from typer.testing import CliRunner

from siri.cli import app
from siri.envs.household import TASK_TYPES, HouseholdEnv

runner = CliRunner()


def needs_alfworld(test):
    test = pytest.mark.alfworld(test)
    missing = importlib.util.find_spec("alfworld") is None
    return pytest.mark.skipif(missing, reason="the alfworld engine is not installed (siri-rl[alfworld])")(
        test
    )


def run(*args: str, input: str | None = None):
    return runner.invoke(app, ["env", *args], input=input)


def test_list_names_every_registered_env():
    result = run("list")
    assert result.exit_code == 0
    assert {"household", "alfworld", "shop"} <= {line.split()[0] for line in result.output.splitlines()}


def test_check_expert_reports_per_task_type_json():
    result = run("check", "household", "--policy", "expert", "--episodes", "60", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["overall"]["episodes"] == 60 and report["overall"]["success_rate"] == 1.0
    assert set(report["per_task_type"]) == set(TASK_TYPES)
    assert all(s["success_rate"] == 1.0 and s["mean_score"] == 1.0 for s in report["per_task_type"].values())
    assert 3 <= report["overall"]["mean_steps"] <= 15


def test_check_random_policy_on_a_split_with_seed_start_and_options():
    result = run(
        "check", "household", "--policy", "random", "--split", "eval_ood", "--seed-start", "100", "--episodes", "12",
        "-o", "max_steps=7", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["split"] == "eval_ood" and report["seed_start"] == 100
    assert report["overall"]["episodes"] == 12 and report["overall"]["invalid_actions"] == 0
    assert report["overall"]["mean_steps"] <= 7  # the option reached the environment


def test_check_table_output_and_whole_split_default():
    result = run("check", "household", "--split", "eval_id", "--seed-start", "130")
    assert result.exit_code == 0, result.output
    assert "overall" in result.output and " 10 " in result.output.splitlines()[-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "nope"], "unknown environment 'nope'"),
        (["check", "household", "-o", "colour=red"], "unknown option(s) colour"),
        (["check", "household", "-o", "oops"], "is not key=value"),
        (["check", "household", "--policy", "smart"], "unknown policy"),
        (
            ["check", "household", "--split", "eval_id", "--seed-start", "135", "--episodes", "10"],
            "140 scenes",
        ),
        (["check", "household", "--split", "test"], "unknown household split"),
        (["play", "household", "--seed", "-3"], "non-negative"),
        (["export-alfworld", "--seeds", "9-3", "--out", "x"], "bad --seeds"),
    ],
)
def test_bad_input_gets_a_clear_error_not_a_traceback(args, message):
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_check_is_generic_over_the_registry():
    result = run("check", "shop", "--episodes", "3", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["overall"]["episodes"] == 3


def test_play_accepts_numbers_text_and_quit_from_piped_stdin():
    env = HouseholdEnv()
    obs = env.reset(3)
    first = obs.admissible_actions[1]
    result = run("play", "household", "--seed", "3", input="2\n  look  \nflap wings\nquit\n")
    assert result.exit_code == 0, result.output
    assert "-= Welcome to TextWorld, ALFRED! =-" in result.output
    assert f"    2. {first}" in result.output
    assert f"You arrive at {first.removeprefix('go to ')}." in result.output  # "2" played the second action
    assert "You are facing the" in result.output  # the typed text was played
    assert "[invalid action: not an admissible action: 'flap wings']" in result.output
    assert result.output.rstrip().endswith("bye")


def test_play_to_a_win_with_the_expert_plan():
    env = HouseholdEnv(split="eval_id")
    env.reset(0)
    plan = []
    while True:
        plan.append(env.expert_action())
        if env.step(plan[-1]).done:
            break
    result = run(
        "play",
        "household",
        "--split",
        "eval_id",
        "--seed",
        "0",
        "--show-anchor",
        input="\n".join(plan) + "\n",
    )
    assert result.exit_code == 0, result.output
    assert f"WON: steps={len(plan)} reward=1 score=1" in result.output
    assert "[anchor]" in result.output


def test_play_ends_cleanly_at_end_of_input():
    result = run("play", "household", input="1\n")
    assert result.exit_code == 0 and result.output.rstrip().endswith("bye")


@needs_alfworld
def test_export_alfworld_writes_game_folders(tmp_path):
    result = run("export-alfworld", "--seeds", "0-2,7", "--split", "eval_id", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    games = sorted(tmp_path.glob("*/game.tw-pddl"))
    assert len(games) == 4
    for game in games:
        assert (game.parent / "traj_data.json").exists() and (game.parent / "problem.pddl").exists()
        assert json.loads(game.read_text())["solvable"] is True


@needs_alfworld
def test_parity_command_reports_agreement(tmp_path):
    result = run(
        "parity",
        "--episodes",
        "2",
        "--split",
        "eval_ood",
        "--seed-start",
        "4",
        "--json",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["scenes"] == 2 and report["failed"] == 0
    assert {r["task_type"] for r in report["results"]} == {
        "pick_cool_then_place_in_recep",
        "pick_two_obj_and_place",
    }
