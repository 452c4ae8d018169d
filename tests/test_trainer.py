"""The training loop end to end with a micro tiny model: metrics, checkpoints, exact resume after kill -9, SIRI."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from micro_policy import MICRO_TINY
from siri.cli import app
from siri.config import TrainConfig, preset_path
from siri.models.loading import load_policy
from siri.rl.trainer import Trainer
from siri.runs.run_dir import RunDir
from siri.sft.tiny import build_tiny
from siri.skills.bank import SkillBank
from siri.skills.probe import load_probe, tokenizer_digest


@pytest.fixture(scope="module")
def micro_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("micro") / "model"
    build_tiny(MICRO_TINY, out)
    return out


def small_config(model: Path, *extra: str) -> TrainConfig:
    return TrainConfig.load(preset_path("household-tiny-gigpo"), [
        f"model.name_or_path={model}", "model.action_mode=choose", "rollout.num_groups=2", "rollout.group_size=3",
        "env.max_steps=4", "train.iterations=3", "train.eval_every=2", "train.eval_episodes=3", "train.save_every=1",
        "optim.lr=0.01", *extra])


def comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def test_training_logs_checkpoints_and_saves_a_loadable_policy(micro_dir: Path, tmp_path: Path) -> None:
    cfg = small_config(micro_dir)
    trainer = Trainer.create(cfg, tmp_path / "run")
    before = {n: p.detach().clone() for n, p in trainer.policy.model.named_parameters()}
    summary = trainer.train()
    rows = RunDir.open(tmp_path / "run").metrics()
    assert [r["iteration"] for r in rows] == [0, 1, 2, 3]
    assert {"train/success", "train/return", "train/invalid_rate", "loss/policy", "kl", "grad_norm"} <= set(rows[1])
    assert "eval/success" in rows[0] and "eval/success" in rows[2] and "eval/success" not in rows[1]
    assert set(summary["evals"]) == {"bootstrap", "final"}
    changed = any(not p.detach().equal(before[n]) for n, p in trainer.policy.model.named_parameters())
    assert changed, "an update with lr 0.01 must move the weights"
    assert RunDir.open(tmp_path / "run").latest_checkpoint().name == "iter-000003"
    reloaded = load_policy(str(tmp_path / "run" / "policy"), reference=False)
    for n, p in reloaded.model.named_parameters():
        assert p.detach().equal(dict(trainer.policy.model.named_parameters())[n].detach())


def _train_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "siri", "train", *args]


def test_kill_9_then_resume_reproduces_the_uninterrupted_run(micro_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "cfg.yaml"
    small_config(micro_dir, "train.iterations=4").save(config)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    full = tmp_path / "full"
    done = subprocess.run(_train_cli("--config", str(config), "--run-dir", str(full), "--no-report"), check=True,
                          env=env, capture_output=True, text=True, timeout=600)
    # Quiet: no library warning (deprecations included) reaches the user's terminal.
    assert "Warning" not in done.stderr + done.stdout, done.stderr[-2000:]
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cli("--config", str(config), "--run-dir", str(killed), "--no-report"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and not (killed / "checkpoints" / "iter-000002").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # mid-run: iteration 3 is under way
    proc.wait()
    assert (killed / "checkpoints" / "iter-000002").exists() and not (killed / "policy").exists()
    subprocess.run(_train_cli("--resume", str(killed), "--no-report"), check=True, env=env, capture_output=True,
                   timeout=600)
    assert comparable(RunDir.open(killed).metrics()) == comparable(RunDir.open(full).metrics())
    assert json.loads((killed / "summary.json").read_text()) == json.loads((full / "summary.json").read_text())


def test_resume_refuses_a_corrupt_checkpoint(micro_dir: Path, tmp_path: Path) -> None:
    trainer = Trainer.create(small_config(micro_dir, "train.iterations=1"), tmp_path / "run")
    trainer.train()
    (tmp_path / "run" / "checkpoints" / "iter-000001" / "optimizer.pt").write_bytes(b"garbage")
    with pytest.raises(Exception, match=r"optimizer\.pt.*corrupt"):
        Trainer.resume(tmp_path / "run")
    assert (tmp_path / "run" / "checkpoints" / "iter-000001" / "optimizer.pt").read_bytes() == b"garbage"


def test_siri_shows_skills_and_internalizes_after_warmup(micro_dir: Path, tmp_path: Path) -> None:
    """A bank with one skill per task type, no validation gate, uniform weights: skill rollouts appear beside
    plain ones in every group, and their action tokens are distilled once lambda > 0."""
    run = tmp_path / "run"
    run.mkdir()
    bank = SkillBank.open(run)
    for task_type in ("pick_and_place_simple", "look_at_obj_in_light", "pick_clean_then_place_in_recep",
                      "pick_heat_then_place_in_recep", "pick_cool_then_place_in_recep", "pick_two_obj_and_place"):
        bank.add_candidates(["WHEN you need a object THEN go to the countertop first"], task_type, 0, "trace")
    bank.save()
    cfg = small_config(micro_dir, "siri.enabled=true", "siri.warmup=false", "siri.validation_gate=false",
                       "siri.weighting=uniform", "siri.lambda_ramp_iters=1", "siri.lambda_max=0.5", "train.iterations=2",
                       "siri.keep_skills_at_inference=true", "siri.probe_every=1", "siri.probe_steps=5")
    trainer = Trainer.create(cfg, run)
    summary = trainer.train()
    rows = RunDir.open(run).metrics()
    assert rows[1]["phase"] == "skills" and rows[1]["skills/active"] == 6
    assert rows[1]["train_skills/episodes"] > 0 and rows[1]["train/episodes"] > 0
    assert rows[2]["lambda"] == 0.5 and rows[2]["update/internalized_steps"] > 0 and "loss/int" in rows[2]
    assert "final_with_skills" in summary["evals"]
    # every skill rollout was paired with plain rollouts of its group: each group of each iteration (all task
    # types have a skill) recorded one paired evaluation
    bank = SkillBank.open(run)
    assert sum(s.utility.n for s in bank.skills()) == cfg.rollout.num_groups * cfg.train.iterations
    # ... and the metrics count them, with their share of zeros and their mean, per iteration and cumulative
    for it in (1, 2):
        diffs = [d for s in bank.skills() for i, d in s.evals if i == it - 1]
        so_far = [d for s in bank.skills() for i, d in s.evals if i < it]
        row = rows[it]
        assert row["skills/paired_evals"] == len(diffs) == cfg.rollout.num_groups
        assert row["skills/paired_evals_cumulative"] == len(so_far)
        assert 0.0 <= row["skills/paired_zero_share"] <= 1.0
        assert row["skills/paired_zero_share"] == pytest.approx(sum(abs(d) <= 1e-9 for d in diffs) / len(diffs))
        assert row["skills/paired_zero_share_cumulative"] == pytest.approx(sum(abs(d) <= 1e-9 for d in so_far) / len(so_far))
        assert row["skills/paired_mean"] == pytest.approx(sum(diffs) / len(diffs))
        assert row["skills/paired_mean_cumulative"] == pytest.approx(sum(so_far) / len(so_far))
    # the internalization gap on the probe (the run's first 5 valid steps of active skills), after every
    # iteration's update: the skills are candidates in the first iteration, active from the second
    assert "siri/int_gap" not in rows[0] and "siri/int_gap" not in rows[1]
    probe = trainer.siri.probe_set
    assert 0 < len(probe) <= 5 and all(p["iteration"] == 1 for p in probe)
    for row in rows[2:]:
        assert math.isfinite(row["siri/int_gap"]) and row["siri/int_logp_plain"] < 0 and row["siri/int_logp_skill"] < 0
        assert row["siri/int_gap"] == pytest.approx(row["siri/int_logp_plain"] - row["siri/int_logp_skill"])
    assert rows[2]["siri/int_probe_steps"] == len(probe)
    steps, meta = load_probe(run)  # RUN_DIR/probe.pt: the same steps, for `siri probe`
    assert steps == probe and meta["tokenizer"] == tokenizer_digest(trainer.policy.tokenizer)
    # `siri probe` scores the same probe on the run's checkpoints (the last two: iterations 1 and 2) and on its
    # starting policy; at the last checkpoint it agrees with the gap the run logged
    out = tmp_path / "probe.json"
    result = CliRunner().invoke(app, ["probe", str(run), "--probe-from", str(run), "--out", str(out)])
    assert result.exit_code == 0, result.output
    points = json.loads(out.read_text())["runs"][0]["points"]
    assert [p["iteration"] for p in points] == [0, 1, 2] and "gap" in result.output
    assert points[-1]["int_gap"] == pytest.approx(rows[2]["siri/int_gap"], abs=1e-5)
    assert points[-1]["int_logp_plain"] == pytest.approx(rows[2]["siri/int_logp_plain"], abs=1e-5)


def _carry_bank(run: Path, task_types: tuple[str, ...] = ("pick_and_place_simple", "look_at_obj_in_light")) -> None:
    run.mkdir()
    bank = SkillBank.open(run)
    for task_type in task_types:
        bank.add_candidates(["WHEN you need a object THEN go to the countertop first"], task_type, 0, "trace")
    bank.save()


def test_siri_probe_is_in_the_checkpoint_and_a_resumed_run_measures_the_same_gap(micro_dir: Path,
                                                                                 tmp_path: Path) -> None:
    """The gap is measured every siri.probe_every iterations and at the last one; a run stopped after iteration
    3's metrics (checkpoint 2 on disk) resumes with the checkpoint's probe, so its gaps are the full run's."""
    cfg = small_config(micro_dir, "train.iterations=3", "train.eval_every=0", "siri.enabled=true", "siri.warmup=false",
                       "siri.validation_gate=false", "siri.probe_every=2", "siri.probe_steps=4")
    full, killed = tmp_path / "full", tmp_path / "killed"
    for run in (full, killed):
        _carry_bank(run)
    Trainer.create(cfg, full).train()

    class Killed(Exception):
        pass

    def kill_after_third(record: dict) -> None:
        if record["iteration"] == 3:  # logged, not yet checkpointed
            raise Killed

    with pytest.raises(Killed):
        Trainer.create(cfg, killed).train(kill_after_third)
    (killed / "probe.pt").write_bytes(b"stale")  # the checkpoint, not the run dir's file, holds the probe
    resumed = Trainer.resume(killed)
    # the skills are candidates in iteration 0 and active from iteration 1 (no gate): the probe is theirs
    assert resumed.iteration == 2 and len(resumed.siri.probe_set) == 4
    assert all(p["iteration"] == 1 for p in resumed.siri.probe_set)
    assert load_probe(killed)[0] == resumed.siri.probe_set  # RUN_DIR/probe.pt rewritten from the checkpoint
    resumed.train()
    rows = RunDir.open(full).metrics()
    assert comparable(RunDir.open(killed).metrics()) == comparable(rows)
    assert [r["iteration"] for r in rows if "siri/int_gap" in r] == [2, 3]
    assert all(math.isfinite(r["siri/int_gap"]) for r in rows if "siri/int_gap" in r)
    assert rows[3]["siri/int_probe_steps"] == 4


def test_internalization_gap_by_hand_on_a_micro_policy() -> None:
    """Two probe steps (prompts of different lengths, partial action masks): each action's log-prob summed
    over its action tokens from the model's own unpadded forward pass, under each prompt; gap = mean
    plain - mean skill."""
    import torch

    from micro_policy import micro_policy
    from siri.rl.probe import internalization_gap
    from siri.rollout.types import StepRecord
    from siri.skills.probe import probe_records, probe_step

    policy = micro_policy(seed=1, reference=False)
    model = policy.model
    steps = [  # (plain prompt, skill prompt, response, action mask)
        ([5, 6, 7], [5, 40, 41, 42, 6, 7], [12, 13, 14], [0, 1, 1]),
        ([20, 21], [43, 20, 21], [30, 31], [1, 0]),
    ]
    records = [StepRecord(group=0, traj=k, t=0, seed=k, task_type="pick_and_place_simple", prompt_ids=skill,
                          response_ids=resp, old_logprobs=[0.0] * len(resp), action_mask=mask, action="go to desk 1",
                          valid=True, reward=0.0, done=False, won=False, anchor=k, skill_ids=("s1",),
                          plain_prompt_ids=plain)
               for k, (plain, skill, resp, mask) in enumerate(steps)]
    probe = [probe_step(r, 0) for r in records]

    def by_hand(prompt: list[int], response: list[int], mask: list[int]) -> float:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt + response])).logits[0]
        logp = torch.log_softmax(logits.float(), dim=-1)
        return sum(float(logp[len(prompt) + k - 1, tok]) for k, (tok, m) in enumerate(zip(response, mask, strict=True)) if m)

    model.eval()
    plain = [by_hand(p, r, m) for p, _, r, m in steps]
    skill = [by_hand(s, r, m) for _, s, r, m in steps]
    model.train()
    gap = internalization_gap(model, probe_records(probe), pad_id=policy.pad_id, micro_batch=2)
    assert gap["siri/int_logp_plain"] == pytest.approx(sum(plain) / 2, abs=1e-5)
    assert gap["siri/int_logp_skill"] == pytest.approx(sum(skill) / 2, abs=1e-5)
    assert gap["siri/int_gap"] == pytest.approx((plain[0] + plain[1]) / 2 - (skill[0] + skill[1]) / 2, abs=1e-5)
    assert abs(gap["siri/int_gap"]) > 1e-3 and gap["siri/int_probe_steps"] == 2
    assert model.training  # scoring leaves the model as it found it


def test_skipping_zero_advantage_steps_changes_nothing_but_the_work(tmp_path: Path) -> None:
    """Without KL or entropy terms a zero-advantage step adds exact zeros to the gradient: skipping its
    forward must leave the update unchanged (mixed batch, mini-batches, epochs) and, when every step is
    skipped, AdamW must still step (weight decay) exactly as it would on the zero gradient."""
    import numpy as np
    import torch

    from micro_policy import clone, micro_policy
    from siri.rl.trainer import compute_advantages
    from siri.rl.update import UpdateBatch
    from siri.rollout.collector import EpisodeSpec, RolloutConfig, collect

    policy = micro_policy(seed=0)
    specs = [EpisodeSpec(g, 80 + g) for g in range(3) for _ in range(3)]
    trajs = collect(policy, "household", specs, RolloutConfig(mode="choose", seed=5), env_options={"max_steps": 4})
    records = [s for t in trajs for s in t.steps]
    for r in records:  # only group 0 sees rewards; the other groups fail together: zero advantages
        r.reward = float(r.group == 0 and (r.traj + r.t) % 3 == 0)
    base = ["model.action_mode=choose", "algo.kl_coef=0", "optim.micro_batch_size=3", "optim.mini_batches=2",
            "optim.ppo_epochs=2", "optim.grad_clip=0"]
    advantages = compute_advantages(records, TrainConfig.load(None, base))
    nonzero = int((advantages != 0).sum())
    assert 0 < nonzero < len(records)

    def update(skip: bool, adv: np.ndarray, sgd: bool) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        cfg = TrainConfig.load(None, [*base, f"optim.skip_zero_advantage={str(skip).lower()}", "optim.lr=0.05"])
        trainer = Trainer(cfg, RunDir(tmp_path / f"run-{skip}-{sgd}-{int(abs(adv).sum() > 0)}"), clone(policy))
        if sgd:  # SGD: weights differ only as gradients do (Adam would blow rounding noise up to ~lr steps)
            trainer.optimizer = torch.optim.SGD(trainer.params, lr=0.05)
        stats = trainer.update(UpdateBatch(records=records, advantages=adv, policy_steps=list(range(len(records))),
                                           seed=1))
        return {n: p.detach().clone() for n, p in trainer.policy.model.named_parameters()}, stats

    skipped, s_skip = update(True, advantages, sgd=True)
    full, s_full = update(False, advantages, sgd=True)
    assert s_skip["update/scored_steps"] == 2 * nonzero and s_full["update/scored_steps"] == 2 * len(records)
    assert s_skip["loss/policy"] == pytest.approx(s_full["loss/policy"], abs=1e-6)
    start = dict(policy.model.named_parameters())
    assert any(not torch.equal(full[n], p.detach()) for n, p in start.items())  # a real update
    for name, weight in full.items():
        assert torch.allclose(skipped[name], weight, atol=1e-6, rtol=1e-5), name

    zeros = np.zeros_like(advantages)
    skipped, s_skip = update(True, zeros, sgd=False)
    full, _ = update(False, zeros, sgd=False)
    assert s_skip["update/scored_steps"] == 0
    assert any(not torch.equal(full[n], p.detach()) for n, p in start.items())  # AdamW's weight decay
    for name, weight in full.items():
        assert torch.equal(skipped[name], weight), name


def test_gradient_checkpointing_turns_on_through_the_current_transformers_name(micro_dir: Path) -> None:
    import warnings

    from siri.rl.trainer import _load_policy

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        policy = _load_policy(small_config(micro_dir, "model.gradient_checkpointing=true"), load_policy)
    model = policy.model
    assert getattr(model, "is_activation_checkpointing", None) or model.is_gradient_checkpointing
    assert not [w for w in caught if "checkpointing_enable" in str(w.message)]


def test_siri_kill_9_before_the_first_checkpoint_then_resume_reproduces_the_uninterrupted_run(
        micro_dir: Path, tmp_path: Path) -> None:
    """Killed after iteration 1 with no checkpoint yet, a SIRI run restarts from iteration 0 with the bank it
    started from (here one carried over), not the skill_bank.json its first iteration rewrote."""
    config = tmp_path / "cfg.yaml"
    small_config(micro_dir, "train.iterations=3", "train.save_every=0", "train.eval_every=0", "siri.enabled=true",
                 "siri.warmup=false", "siri.miner=trace", "siri.min_evals=2").save(config)
    env = {**os.environ, "PYTHONHASHSEED": "0"}

    def carried_over_bank(run: Path) -> None:
        run.mkdir()
        bank = SkillBank.open(run)
        for task_type in ("pick_and_place_simple", "look_at_obj_in_light"):
            bank.add_candidates(["WHEN you need a object THEN go to the countertop first"], task_type, 0, "trace")
        bank.save()

    full, killed = tmp_path / "full", tmp_path / "killed"
    for run in (full, killed):
        carried_over_bank(run)
    done = subprocess.run(_train_cli("--config", str(config), "--run-dir", str(full), "--no-report"), check=True,
                          env=env, capture_output=True, text=True, timeout=600)
    # Quiet: no library warning (deprecations included) reaches the user's terminal.
    assert "Warning" not in done.stderr + done.stdout, done.stderr[-2000:]
    proc = subprocess.Popen(_train_cli("--config", str(config), "--run-dir", str(killed), "--no-report"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and len(RunDir(killed).metrics()) < 2:  # bootstrap + iteration 1 logged
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "checkpoints" / "LATEST").exists(), "killed too late: the test needs no checkpoint yet"
    stale = SkillBank.open(killed)
    assert sum(s.utility.n for s in stale.skills()) > 0  # the killed run's bank already holds evaluations
    subprocess.run(_train_cli("--resume", str(killed), "--no-report"), check=True, env=env, capture_output=True,
                   timeout=600)
    assert comparable(RunDir.open(killed).metrics()) == comparable(RunDir.open(full).metrics())
    assert json.loads((killed / "summary.json").read_text()) == json.loads((full / "summary.json").read_text())
    assert SkillBank.open(killed).to_json() == SkillBank.open(full).to_json()


def test_lora_dropout_reaches_the_adapters(micro_dir: Path) -> None:
    from siri.rl.trainer import _load_policy

    policy = _load_policy(small_config(micro_dir, "model.lora=true", "model.lora_r=2", "model.lora_dropout=0.25"),
                          load_policy)
    assert policy.model.peft_config["default"].lora_dropout == 0.25
