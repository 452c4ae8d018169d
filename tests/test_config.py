"""Config system: YAML round trip, typed overrides, error messages that name the valid keys/values, presets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from siri.config import PRESETS_DIR, ConfigError, TrainConfig, preset_path

PRESETS = sorted(PRESETS_DIR.glob("*.yaml"))


def test_defaults_follow_the_paper():
    cfg = TrainConfig()
    assert (cfg.rollout.group_size, cfg.rollout.num_groups, cfg.rollout.history) == (8, 16, 2)
    assert (cfg.algo.gamma, cfg.algo.omega, cfg.algo.kl_coef, cfg.algo.clip) == (0.95, 1.0, 0.01, 0.2)
    assert (cfg.optim.lr, cfg.rollout.temperature, cfg.train.eval_temperature) == (1e-6, 1.0, 0.4)
    assert cfg.rollout.invalid_penalty == 0.1


@pytest.mark.parametrize("comments", [False, True])
def test_yaml_round_trip(tmp_path: Path, comments: bool):
    cfg = TrainConfig().with_overrides([
        "algo.similarity=0.9", "optim.betas=[0.8, 0.95]", "env.options={task_types: [pick_and_place], x: 1}",
        "train.run_dir=runs/a b", "env.split=yes", "model.name_or_path=1e-6", "optim.lr=3e-5",
    ])
    path = cfg.save(tmp_path / "config.yaml", comments=comments)
    again = TrainConfig.load(path)
    assert again == cfg
    assert again.env.split == "yes" and again.model.name_or_path == "1e-6"  # strings YAML would misread
    assert again.optim.betas == (0.8, 0.95)
    assert again.to_dict() == yaml.safe_load(path.read_text())
    if comments:
        assert "# discount for GiGPO's step returns G_t" in path.read_text()


def test_overrides_are_typed():
    cfg = TrainConfig.load(None, [
        "algo.gamma=0.9", "train.iterations=7", "model.lora=yes", "siri.enabled=TRUE", "algo.clip_high=0.28",
        "algo.clip_high=none", "optim.betas=0.5,0.6", "algo.name=grpo", "env.options.success_reward=2",
        "optim.lr=1e-6", "train.run_dir=null",
    ])
    assert cfg.algo.gamma == 0.9 and isinstance(cfg.algo.gamma, float)
    assert cfg.train.iterations == 7 and isinstance(cfg.train.iterations, int)
    assert cfg.model.lora is True and cfg.siri.enabled is True
    assert cfg.algo.clip_high is None and cfg.train.run_dir is None
    assert cfg.optim.betas == (0.5, 0.6) and cfg.algo.name == "grpo"
    assert cfg.env.options == {"success_reward": 2}
    assert cfg.optim.lr == 1e-6
    # Ints are accepted for float fields (YAML "lr: 1" means 1.0) and YAML's string "1e-6" is read as a number.
    assert TrainConfig.from_dict({"optim": {"lr": 1}}).optim.lr == 1.0
    assert TrainConfig.from_dict({"optim": {"lr": "1e-6"}}).optim.lr == 1e-6


def test_preset_overrides_apply_on_top_of_the_file():
    path = preset_path("household-tiny-gigpo")
    cfg = TrainConfig.load(path, ["algo.name=grpo", "rollout.num_groups=2"])
    base = TrainConfig.load(path)
    assert cfg.algo.name == "grpo" and cfg.rollout.num_groups == 2
    assert cfg.env == base.env and cfg.model == base.model


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("algo.gama=1", "unknown key 'algo.gama' (did you mean 'algo.gamma'?); valid keys under 'algo': name, gamma, "
                        "omega, norm"),
        ("algos.gamma=1", "unknown key 'algos' (did you mean 'algo'?); valid keys at the top level: env, model, "
                          "rollout, algo, optim, train, siri"),
        ("algo.gamma=abc", "bad value for 'algo.gamma': expected a number, got 'abc'"),
        ("algo.gamma=1.5", "bad value for 'algo.gamma': 1.5 is above the maximum 1.0"),
        ("algo.name=ppo", "bad value for 'algo.name': 'ppo'; choose one of: grpo, gigpo, rloo"),
        ("model.lora=maybe", "bad value for 'model.lora': expected a bool"),
        ("train.iterations=2.5", "bad value for 'train.iterations': expected an int, got '2.5'"),
        ("rollout.group_size=0", "bad value for 'rollout.group_size': 0 is below the minimum 1"),
        ("optim.betas=0.9", "bad value for 'optim.betas': expected 2 items, got 1"),
        ("algo=gigpo", "'algo' is a section; set one of its keys (name, gamma"),
        ("algo.gamma.x=1", "'algo.gamma' is a float value, not a section"),
        ("algo.gamma", "must look like key=value"),
        ("algo.similarity=0", "similarity must be in (0, 1]"),
        ("algo.gamma=nan", "is not a finite number"),
    ],
)
def test_bad_overrides_name_the_problem(override: str, message: str):
    with pytest.raises(ConfigError) as err:
        TrainConfig().with_overrides([override])
    assert message in str(err.value)


def test_bad_yaml_files_name_the_file_and_key(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("algo:\n  gamma: 0.9\n  omgea: 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown key 'algo\.omgea' \(did you mean 'algo\.omega'\?\)"):
        TrainConfig.load(bad)
    bad.write_text("train:\n  iterations: ten\n")
    with pytest.raises(ConfigError, match=r"bad value for 'train\.iterations': expected an int, got 'ten'"):
        TrainConfig.load(bad)
    bad.write_text("env:\n  split: 3\n")
    with pytest.raises(ConfigError, match=r"bad value for 'env\.split': expected a string, got 3"):
        TrainConfig.load(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping of sections"):
        TrainConfig.load(bad)
    bad.write_text("algo: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        TrainConfig.load(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        TrainConfig.load(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"presets: .*household-tiny-gigpo"):
        preset_path("no-such-preset")


def test_help_text_lists_every_key():
    text = TrainConfig.help_text()
    for section in ("env", "model", "rollout", "algo", "optim", "train", "siri"):
        assert f"\n{section}: " in "\n" + text
    assert "gamma (float, default 0.95): discount" in text
    assert "miner (Literal['self', 'external', 'trace'], default 'self')" in text


def test_presets_exist():
    names = {p.stem for p in PRESETS}
    assert {"household-tiny-gigpo", "household-tiny-grpo", "shop-tiny-gigpo", "household-smollm2",
            "alfworld-qwen7b-gigpo", "webshop-qwen7b-gigpo"} <= names


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_every_preset_loads_and_round_trips(path: Path, tmp_path: Path):
    cfg = TrainConfig.load(path)
    assert TrainConfig.load(cfg.save(tmp_path / "resolved.yaml")) == cfg


@pytest.mark.parametrize("name,max_steps", [("alfworld-qwen7b-gigpo", 50), ("webshop-qwen7b-gigpo", 15)])
def test_paper_presets_mirror_reference_settings(name: str, max_steps: int):
    cfg = TrainConfig.load(preset_path(name))
    assert cfg.env.max_steps == max_steps
    assert (cfg.rollout.group_size, cfg.rollout.num_groups, cfg.rollout.history) == (8, 16, 2)
    assert (cfg.optim.lr, cfg.algo.kl_coef, cfg.algo.gamma, cfg.algo.omega) == (1e-6, 0.01, 0.95, 1.0)
    assert (cfg.rollout.temperature, cfg.train.eval_temperature) == (1.0, 0.4)
    assert cfg.algo.name == "gigpo" and cfg.model.name_or_path == "Qwen/Qwen2.5-7B-Instruct"


def test_tiny_gigpo_and_grpo_presets_differ_only_in_algorithm():
    gigpo = TrainConfig.load(preset_path("household-tiny-gigpo")).to_dict()
    grpo = TrainConfig.load(preset_path("household-tiny-grpo")).to_dict()
    assert gigpo["algo"].pop("name") == "gigpo" and grpo["algo"].pop("name") == "grpo"
    assert gigpo == grpo
