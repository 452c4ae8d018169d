"""Config system: YAML round trip, typed overrides, error messages that name the valid keys/values, presets,
and documented bounds that are exactly what the training code accepts."""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from pathlib import Path

import pytest
import yaml

from siri.config import PRESETS_DIR, TrainConfig, preset_path
from siri.utils.config import ConfigError

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
        ("algo.similarity=0", "bad value for 'algo.similarity': 0.0 must be > 0.0 (allowed: (0, 1])"),
        ("optim.betas=[0.9, 1]", "bad value for 'optim.betas[1]': 1.0 must be < 1.0 (allowed: [0, 1))"),
        ("siri.miner=external", "siri.miner=external needs siri.miner_url"),
        ("algo.gamma=nan", "is not a finite number"),
    ],
)
def test_bad_overrides_name_the_problem(override: str, message: str):
    with pytest.raises(ConfigError) as err:
        TrainConfig().with_overrides(["siri.enabled=true", override])
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
    assert "nucleus sampling mass (0 would keep no token) (allowed: (0, 1])" in text  # the bounds are documented
    assert "(allowed: [0, 4294967295])" in text and "(allowed: [0, 1))" in text


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


# ----------------------------------------------------------------------------- every documented bound holds downstream

# Numeric fields whose every value is meaningful (thresholds on a utility that can be any real number).
UNBOUNDED = {"siri.promote_lcb", "siri.retire_ucb"}


def _numeric_fields() -> list[tuple[str, dataclasses.Field, type, bool]]:
    """(dotted key, field, number type, is a tuple) of every int/float field (or tuple of them) of every section."""
    out = []
    for section in dataclasses.fields(TrainConfig):
        cls = typing.get_type_hints(TrainConfig)[section.name]
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            is_tuple = typing.get_origin(tp) is tuple
            args = [a for a in typing.get_args(tp) if a is not type(None) and a is not Ellipsis]
            if (is_tuple and len(set(args)) == 1) or (type(None) in typing.get_args(tp) and len(args) == 1):
                tp = args[0]  # tuple[float, float] -> float; float | None -> float
            if tp in (int, float):
                out.append((f"{section.name}.{f.name}", f, tp, is_tuple))
    return out


def _edges() -> list[tuple[str, bool, object]]:
    """(key, accepted, value): each documented bound's extreme accepted value and the nearest value beyond it."""
    cases = []
    for key, f, tp, is_tuple in _numeric_fields():
        m = f.metadata
        # toward: out of the range from an inclusive bound, into it from an exclusive one
        for name, toward in (("min", -math.inf), ("gt", math.inf), ("max", math.inf), ("lt", -math.inf)):
            bound = m.get(name)
            if bound is None:
                continue
            near = (lambda x, d: x + (1 if d > 0 else -1)) if tp is int else math.nextafter
            if name in ("min", "max"):
                inside, outside = bound, near(bound, toward)
            else:
                inside, outside = near(bound, toward), bound
            cases += [(key, True, [inside] * 2 if is_tuple else inside),
                      (key, False, [outside] * 2 if is_tuple else outside)]
    return cases


EDGES = _edges()


def test_every_numeric_field_has_documented_bounds():
    bounded = {key for key, _, _ in EDGES}
    assert {key for key, *_ in _numeric_fields()} - bounded <= UNBOUNDED
    assert {"siri.min_evals", "siri.adv_clip", "rollout.top_p", "optim.betas", "train.seed"} <= bounded


def _override(key: str, value: object) -> str:
    text = f"[{', '.join(map(repr, value))}]" if isinstance(value, list) else repr(value)
    return f"{key}={text}"


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, ok, v in EDGES if not ok],
                         ids=[f"{k}={v}" for k, ok, v in EDGES if not ok])
def test_a_value_beyond_a_documented_bound_fails_at_load_naming_the_key(key: str, value: object):
    with pytest.raises(ConfigError, match=re.escape(f"bad value for '{key}")):
        TrainConfig.load(None, [_override(key, value)])


@pytest.fixture(scope="module")
def micro_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from micro_policy import micro_policy

    out = tmp_path_factory.mktemp("micro") / "model"
    micro_policy(reference=False).save(out)
    return out


@pytest.fixture
def one_thread() -> typing.Iterator[None]:
    """A micro model on one thread: tiny matmuls on several threads are many times slower on a shared CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Settings whose consumer only runs beside another one: LoRA values need LoRA on; max_evals must not go below
# min_evals (a cross-field rule), so it is walked with min_evals at its own documented minimum.
def _partners(key: str) -> list[str]:
    if key.startswith("model.lora_"):
        return ["model.lora=true"]
    if key == "siri.max_evals":
        (f,) = [f for k, f, *_ in _numeric_fields() if k == "siri.min_evals"]
        return [f"siri.min_evals={f.metadata['min']}"]
    return []


@pytest.mark.parametrize(("key", "value"), [(k, v) for k, ok, v in EDGES if ok],
                         ids=[f"{k}={v}" for k, ok, v in EDGES if ok])
def test_every_documented_bound_trains(micro_model: Path, one_thread: None, tmp_path: Path, key: str, value: object):
    """A value at the edge of its documented range loads, builds the trainer and the SIRI pipeline, and runs
    two SIRI iterations with skills present (paired validation and the gate's decision in the first, the
    internalization weights and lambda in the second) and an evaluation: nothing the config accepts may
    crash later, when the first skill exists."""
    from siri.rl.trainer import Trainer
    from siri.skills.bank import SkillBank
    from siri.skills.internalize import lambda_schedule, step_weights
    from siri.skills.validation import Gate

    if key == "rollout.group_size" and value == 1:  # a cross-field rule: SIRI pairs rollouts within a group
        with pytest.raises(ConfigError, match="group_size >= 2"):
            TrainConfig.load(preset_path("household-tiny-gigpo"), ["siri.enabled=true", _override(key, value)])
        return
    run = tmp_path / "run"
    run.mkdir()
    bank = SkillBank.open(run)
    for task_type in ("pick_and_place_simple", "look_at_obj_in_light", "pick_clean_then_place_in_recep",
                      "pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep", "pick_two_obj_and_place"):
        (skill,) = bank.add_candidates(["WHEN you need a object THEN go to the countertop first"], task_type, 0,
                                       "trace")
        for diff in (1.0, 0.5, 1.0, 0.5):
            bank.record_paired(skill.id, [diff], [0.0], 0)
    bank.update_status(0, Gate(enabled=False))  # active skills with a positive utility: SIRI internalizes from iteration 1
    bank.save()
    cfg = TrainConfig.load(preset_path("household-tiny-gigpo"), [
        f"model.name_or_path={micro_model}", "model.action_mode=choose", "rollout.num_groups=1",
        "rollout.group_size=2", "env.max_steps=2", "train.iterations=3", "train.eval_every=0",
        "train.eval_episodes=1", "train.save_every=0", "siri.enabled=true", "siri.warmup=false", "siri.miner=trace",
        *_partners(key), _override(key, value)])
    s = cfg.siri
    step_weights([], [], {}, clip_c=s.adv_clip, mode=s.weighting)
    for k in range(s.lambda_ramp_iters + 2):
        assert 0.0 <= lambda_schedule(k, 0, s.lambda_ramp_iters, s.lambda_max) <= s.lambda_max
    trainer = Trainer.create(cfg, run)
    try:
        assert trainer.siri is not None and len(trainer.siri.bank.skills("active")) > 0
        trainer.siri.update_status(0)  # the gate's decision with this run's settings, on every skill
        first = trainer.step()
        second = trainer.step()
        assert first["skills/active"] > 0 and second["lambda"] >= 0.0
        assert trainer.evaluate()["eval/episodes"] >= 1
    finally:
        trainer.close()


def test_options_for_is_the_one_way_to_environment_options() -> None:
    cfg = TrainConfig.load(None, ["env.options={clutter: 0.0}", "env.max_steps=7", "env.eval_split=eval_ood"])
    assert cfg.env.options_for() == {"split": "train", "max_steps": 7, "clutter": 0.0}
    assert cfg.env.options_for(cfg.env.eval_split) == {"split": "eval_ood", "max_steps": 7, "clutter": 0.0}
    for key in ("split", "max_steps"):
        with pytest.raises(ConfigError, match=f"set env.{key} itself, not inside env.options"):
            TrainConfig.load(None, [f"env.options.{key}=3"])
