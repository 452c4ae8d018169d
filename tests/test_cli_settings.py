"""One override syntax for `siri train`, `siri eval` and `siri model warm-start`: settings are key=value
arguments checked by the same strict machinery (unknown key -> did you mean, bounds), and -o key=value is the
shorthand for one environment option in each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from siri.cli import app
from siri.config import TrainConfig, preset_path

WIDE = {"COLUMNS": "1000"}  # one-line messages


def run(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), env=WIDE)


# No command gets as far as loading a model: a bad setting fails first.
COMMANDS = {
    "train": ["train", "-c", "household-tiny-gigpo"],
    "eval": ["eval", "--model", "./no-model"],
    "warm-start": ["model", "warm-start", "./no-model", "--out", "never-written"],
}
TYPOS = {"train": ("train.iteratoins=2", "train.iterations"), "eval": ("episdes=2", "episodes"),
         "warm-start": ("trian_steps=2", "train_steps")}
OUT_OF_BOUNDS = {"train": ("rollout.top_p=0", "(0, 1]"), "eval": ("temperature=-1", "below the minimum 0"),
                 "warm-start": ("random_action_share=2", "above the maximum 1")}


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_rejects_an_unknown_key_naming_the_closest(command: str, tmp_path: Path) -> None:
    typo, meant = TYPOS[command]
    result = run(*COMMANDS[command], typo)
    assert result.exit_code == 2, result.output
    assert f"unknown key '{typo.split('=')[0]}' (did you mean '{meant}'?)" in result.output
    assert not Path("never-written").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_rejects_a_value_beyond_its_bounds(command: str) -> None:
    setting, bounds = OUT_OF_BOUNDS[command]
    result = run(*COMMANDS[command], setting)
    assert result.exit_code == 2, result.output
    assert f"bad value for '{setting.split('=')[0]}'" in result.output and bounds in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_o_as_key_value(command: str) -> None:
    result = run(*COMMANDS[command], "-o", "clutter")
    assert result.exit_code == 2 and "'clutter' is not key=value" in result.output


@pytest.mark.parametrize("command", ["train", "quickstart"])
def test_train_o_is_env_options(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`-o clutter=0` resolves to the same config as `env.options.clutter=0`, after the key=value settings."""
    import siri.cli.train as train_cli

    calls: list[tuple[str, list[str]]] = []
    monkeypatch.setattr(train_cli, "run_training", lambda config, overrides, *a, **k: calls.append((config, overrides)))
    args = ["-c", "household-tiny-gigpo"] if command == "train" else []
    result = run(command, *args, "train.iterations=2", "-o", "clutter=0", "-o", "task_types=[look_at_obj_in_light]")
    assert result.exit_code == 0, result.output
    ((preset, overrides),) = calls
    resolved = TrainConfig.load(preset_path(preset), overrides)
    assert resolved == TrainConfig.load(preset_path(preset), [
        "train.iterations=2", "env.options.clutter=0", "env.options.task_types=[look_at_obj_in_light]"])
    assert resolved.env.options["clutter"] == 0 and resolved.env.options["task_types"] == ["look_at_obj_in_light"]
    assert resolved.train.iterations == 2


def test_eval_settings_resolve_to_eval_config() -> None:
    from siri.cli.common import option_overrides
    from siri.cli.evaluate import EvalConfig

    config = EvalConfig().with_overrides(["episodes=140", "mode=choose", "max_steps=20", "temperature=0",
                                          *option_overrides(["clutter=0"], "env_options")])
    assert (config.episodes, config.mode, config.max_steps, config.temperature) == (140, "choose", 20, 0.0)
    assert config.env_options == {"clutter": 0} and config.split is None
    result = run("eval", "--model", "./no-model", "-o", "max_steps=3")  # a setting of its own, not an env option
    assert result.exit_code == 2 and "set max_steps=... itself" in result.output


def test_warm_start_defaults_are_the_pretrained_recipe_and_env_is_a_shorthand() -> None:
    """The defaults `siri model warm-start` starts from are those its flags had (the RESULTS.md warm start)."""
    from siri.sft.config import PRETRAINED, WarmStartConfig

    assert (PRETRAINED.sft_episodes, PRETRAINED.train_steps, PRETRAINED.batch_size, PRETRAINED.lr) == (60, 150, 4, 2e-4)
    assert (PRETRAINED.warmup_steps, PRETRAINED.mining_examples, PRETRAINED.prompt_lm_weight) == (15, 16, 0.0)
    assert (PRETRAINED.lora, PRETRAINED.lora_r, PRETRAINED.random_action_share, PRETRAINED.seed) == (True, 16, 0.1, 0)
    assert WarmStartConfig.from_dict(PRETRAINED.to_dict()) == PRETRAINED
    unknown = run("model", "warm-start", "./no-model", "--out", "never-written", "--env", "kitchen")
    assert unknown.exit_code != 0 and "kitchen" in unknown.output and "household" in unknown.output
    assert not Path("never-written").exists()


@pytest.mark.parametrize(("args", "keys"), [
    (["eval"], ["episodes (int, default 50)", "skills_top_k", "-o"]),
    (["model", "warm-start"], ["train_steps (int, default 150)", "lora (bool, default True)", "-o"]),
    (["train"], ["KEY=VALUE", "siri config", "env.options.key=value"]),
])
def test_help_says_the_syntax_and_lists_the_keys(args: list[str], keys: list[str]) -> None:
    result = run(*args, "--help")
    assert result.exit_code == 0
    assert all(k in result.output for k in keys), result.output
