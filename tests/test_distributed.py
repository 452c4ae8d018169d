"""Data-parallel training with torch.distributed (gloo, 2 CPU processes) equals single-process training:
the same update on one batch, and the same rollouts and metrics over whole iterations, with both update
strategies: replicate (explicit gradient all-reduce) and fsdp (FSDP2 sharding, ``siri.rl.fsdp``); and a
sharded run's checkpoints resume exactly and export one consolidated Hugging Face directory."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from micro_policy import clone, micro_policy
from siri.config import TrainConfig, preset_path
from siri.models.loading import load_policy
from siri.rl.distributed import Dist, setup
from siri.rl.fsdp import full_state_dict
from siri.rl.trainer import Trainer, checkpoint_policies, compute_advantages
from siri.rl.update import UpdateBatch
from siri.rollout.collector import EpisodeSpec, RolloutConfig, collect
from siri.rollout.types import Trajectory
from siri.runs.run_dir import RunDir
from siri.sft.tiny import TinyConfig, build_tiny
from siri.skills.bank import SkillBank

SKILL = (("s1", "WHEN you need an object THEN go to the countertop first"),)
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(overrides: list[str]) -> TrainConfig:
    return TrainConfig.load(None, ["model.action_mode=choose", "optim.micro_batch_size=3", "algo.kl_coef=0.05",
                                   *overrides])


# Two update scenarios, run by one 2-process launch (process start-up dominates the test's time).
SCENARIOS: dict[str, tuple[list[str], float]] = {
    # SGD at lr 1 without clipping: the weight change *is* minus the summed gradient.
    "gradient": (["optim.grad_clip=0"], 1.0),
    # 2 mini-batches x 2 epochs, clipping, KL and internalization. SGD rather than AdamW: Adam divides by
    # the gradient's running RMS, so on coordinates whose gradient is ~0 a rounding-level difference
    # (a sum taken in another order) becomes a step of size ~lr; with SGD weights differ only as gradients do.
    "ppo": (["optim.mini_batches=2", "optim.ppo_epochs=2", "optim.grad_clip=0.5"], 0.05),
}


# The same scenarios with FSDP2 sharding, and the ppo scenario on LoRA adapters (a partly frozen model).
FSDP_SCENARIOS: dict[str, tuple[str, str]] = {  # name: (scenario, policy)
    "fsdp-gradient": ("gradient", "policy"), "fsdp-ppo": ("ppo", "policy"), "fsdp-lora": ("ppo", "lora"),
    "lora": ("ppo", "lora"),  # (the single-process reference for fsdp-lora)
}


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    """Every weight of the trainer's model (sharded: consolidated, a collective; rank 0 gets them)."""
    if trainer.sharding is not None:
        return full_state_dict(trainer.policy.model)
    return {n: p.detach().clone() for n, p in trainer.policy.model.named_parameters()}


def _update(batch: dict[str, Any], scenario: str, dist: Dist, out: Path, name: str | None = None,
            policy: str = "policy") -> None:
    """One ``Trainer.update`` on the batch; saves the weights after it and the update stats."""
    overrides, lr = SCENARIOS[scenario]
    strategy = "fsdp" if (name or "").startswith("fsdp") else "replicate"
    trainer = Trainer(_config([*overrides, f"train.strategy={strategy}"]), RunDir(out / "run"),
                      clone(batch[policy]), dist=dist)
    trainer.optimizer = torch.optim.SGD(trainer.params, lr=lr)
    stats = trainer.update(UpdateBatch(records=batch["records"], advantages=batch["advantages"],
                                       policy_steps=batch["plain"], internalized=batch["internalize"],
                                       lam=batch["lam"], seed=123))
    weights = _weights(trainer)
    torch.save({"weights": weights, "stats": stats}, out / f"{name or scenario}-rank{dist.rank}-of-{dist.world}.pt")


# Whole iterations of the tiny preset with a micro tiny model: 3 groups x 2 rollouts of <= 4 steps, then
# an evaluation. The micro model never wins, so an entropy bonus (with the KL term) makes the update
# real; the learning rate visibly moves the weights, so iteration 2 samples from an updated model.
TINY = TinyConfig(env="household", seed=3, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                  vocab_episodes=30, sft_episodes=6, mining_examples=4, train_steps=4, batch_size=4, warmup_steps=1)
TRAIN = ["model.action_mode=choose", "env.max_steps=4", "rollout.num_groups=3", "rollout.group_size=2",
         "train.iterations=2", "train.eval_every=0", "train.eval_episodes=3", "algo.entropy_coef=0.01",
         "optim.lr=0.01", "optim.micro_batch_size=3"]
PER_MICRO_BATCH = ("clip_frac", "kl", "entropy", "approx_kl", "ratio_max")


class _RecordingTrainer(Trainer):
    """A ``Trainer`` that also keeps every collection's trajectories (training and evaluation)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.collected: list[list[Trajectory]] = []

    def _collect(self, specs: Any, rollout: Any, options: dict[str, Any]) -> list[Trajectory]:
        trajectories = super()._collect(specs, rollout, options)
        self.collected.append(trajectories)
        return trajectories


def _train(policy: Any, dist: Dist, out: Path, strategy: str = "replicate") -> None:
    """Two ``Trainer.step`` iterations; saves their metrics, every collection's actions, and the weights."""
    name = "train" if strategy == "replicate" else f"train-{strategy}"
    run = out / f"{name}-run-rank{dist.rank}-of-{dist.world}"
    run.mkdir()
    cfg = TrainConfig.load(preset_path("household-tiny-gigpo"), [*TRAIN, f"train.strategy={strategy}"])
    start = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    trainer = _RecordingTrainer(cfg, RunDir(run), clone(policy), dist=dist)
    metrics = [trainer.step() for _ in range(2)]
    actions = [[[s.action for s in t.steps] for t in trajs] for trajs in trainer.collected]
    responses = [[[s.response_ids for s in t.steps] for t in trajs] for trajs in trainer.collected]
    weights = _weights(trainer)
    moved = max(float((weights[n] - w).abs().max()) for n, w in start.items()) if weights else 0.0
    torch.save({"metrics": metrics, "actions": actions, "responses": responses, "weights": weights, "moved": moved},
               out / f"{name}-rank{dist.rank}-of-{dist.world}.pt")


def _rank_main(rank: int, world: int, port: int, batch: dict[str, Any], tiny: Any, out: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist = setup("cpu")
    try:
        for scenario in SCENARIOS:
            _update(batch, scenario, dist, Path(out))
        for name, (scenario, policy) in FSDP_SCENARIOS.items():
            if name.startswith("fsdp"):
                _update(batch, scenario, dist, Path(out), name, policy)
        _train(tiny, dist, Path(out))
        _train(tiny, dist, Path(out), "fsdp")
    finally:
        dist.close()


@pytest.fixture(scope="module")
def batch() -> dict[str, Any]:
    """3 groups (rank 0 gets two, rank 1 one: uneven shares), skill rollouts for the internalization loss."""
    policy = micro_policy(seed=0)
    specs = [EpisodeSpec(g, 70 + g, SKILL if k == 2 else ()) for g in range(3) for k in range(3)]
    trajs = collect(policy, "household", specs, RolloutConfig(mode="choose", seed=4), env_options={"max_steps": 4})
    records = [s for t in trajs for s in t.steps]
    for r in records:  # a random micro policy never wins: relabel rewards so advantages are not all zero
        r.reward = float((3 * r.traj + r.t) % 4 == 0)
    advantages = compute_advantages(records, _config([]))
    plain = [i for i, r in enumerate(records) if not r.uses_skills]
    internalize = [(i, 0.5 + 0.1 * (i % 3)) for i, r in enumerate(records) if r.uses_skills]
    assert plain and internalize and abs(advantages).sum() > 0
    lora = load_policy(str(_saved(policy)), lora=True, lora_r=4, reference=False)
    with torch.no_grad():  # LoRA's B starts at 0: make the adapters matter from the first step
        for name, param in lora.model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1, generator=torch.Generator().manual_seed(len(name)))
    return {"policy": policy, "lora": lora, "records": records, "advantages": advantages, "plain": plain,
            "internalize": internalize, "lam": 0.3}


def _saved(policy: Any) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="siri-micro-"))
    policy.save(path / "micro")
    return path / "micro"


@pytest.fixture(scope="module")
def results(batch: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Per scenario (and "train"): the single-process result and both ranks' results of a 2-process gloo job."""
    out = tmp_path_factory.mktemp("ddp")
    build_tiny(TINY, out / "tiny")
    tiny = load_policy(str(out / "tiny"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 cores shared with the two ranks: avoid oversubscribed OpenMP spinning
    try:
        for scenario in SCENARIOS:
            _update(batch, scenario, Dist(), out)
        _update(batch, "ppo", Dist(), out, "lora", "lora")
        _train(tiny, Dist(), out)
        # fork: the ranks inherit the imported modules and the batch (spawn would re-import torch and
        # transformers in each rank, most of this test's time); each rank sets up gloo after the fork.
        torch.multiprocessing.start_processes(_rank_main, args=(2, _free_port(), batch, tiny, str(out)), nprocs=2,
                                              start_method="fork")
    finally:
        torch.set_num_threads(threads)
    got = {s: {name: torch.load(out / f"{s}-{name}.pt") for name in ("rank0-of-1", "rank0-of-2", "rank1-of-2")}
           for s in [*SCENARIOS, "train"]}
    for name in [*FSDP_SCENARIOS, "train-fsdp"]:
        got[name] = {rank: torch.load(out / f"{name}-{rank}.pt") for rank in ("rank0-of-2", "rank1-of-2", "rank0-of-1")
                     if (out / f"{name}-{rank}.pt").exists()}
    return got


def test_two_process_gradient_equals_single_process(batch: dict[str, Any], results: dict[str, Any]) -> None:
    single, r0, r1 = (results["gradient"][k] for k in ("rank0-of-1", "rank0-of-2", "rank1-of-2"))
    start = dict(batch["policy"].model.named_parameters())
    for name, before in start.items():
        g_single = before.detach() - single["weights"][name]
        g_dist = before.detach() - r0["weights"][name]
        assert torch.allclose(g_dist, g_single, atol=1e-6, rtol=1e-5), name
        assert torch.equal(r0["weights"][name], r1["weights"][name]), name  # ranks stay identical
    total = sum(float((before.detach() - single["weights"][n]).abs().sum()) for n, before in start.items())
    assert total > 1e-3  # a real gradient, not a vacuous comparison
    for key in ("loss/policy", "loss/int"):
        assert r0["stats"][key] == pytest.approx(single["stats"][key], rel=1e-5, abs=1e-7)


def test_two_process_ppo_update_equals_single_process(batch: dict[str, Any], results: dict[str, Any]) -> None:
    single, r0, r1 = (results["ppo"][k] for k in ("rank0-of-1", "rank0-of-2", "rank1-of-2"))
    for name, w in single["weights"].items():
        assert torch.allclose(r0["weights"][name], w, atol=1e-6), name
        assert torch.equal(r0["weights"][name], r1["weights"][name]), name
    assert r0["stats"]["grad_norm"] == pytest.approx(single["stats"]["grad_norm"], rel=1e-5)
    assert r0["stats"]["update/policy_steps"] == single["stats"]["update/policy_steps"]
    moved = max(float((single["weights"][n] - p.detach()).abs().max()) for n, p in batch["policy"].model.named_parameters())
    assert moved > 1e-4


def test_two_process_training_iterations_equal_single_process(results: dict[str, Any]) -> None:
    """Rollouts (per-episode sampling seeds), metrics and weights over 2 iterations + evaluation match."""
    single, r0, r1 = (results["train"][k] for k in ("rank0-of-1", "rank0-of-2", "rank1-of-2"))
    assert len(single["actions"]) == 3  # iteration 1, iteration 2, final evaluation
    for ours in (r0, r1):
        assert ours["actions"] == single["actions"]  # every episode's every action, gathered from both ranks
        assert ours["responses"] == single["responses"]
    assert len({tuple(map(tuple, a)) for a in single["actions"][0]}) > 1  # rollouts do differ between episodes
    for it, (ours, ref) in enumerate(zip(r0["metrics"], single["metrics"], strict=True)):
        keys = {k for k in ref if not k.startswith("time/") and k not in PER_MICRO_BATCH}
        assert keys <= set(ours), it
        assert {"train/success", "train/return", "loss/policy", "grad_norm", "adv/mean_abs"} <= keys
        for key in sorted(keys):
            if isinstance(ref[key], float):
                assert ours[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-6), (it, key)
            else:
                assert ours[key] == ref[key], (it, key)
    assert "eval/success" in single["metrics"][1] and single["metrics"][1]["loss/policy"] != 0
    # AdamW divides by the gradient's running RMS, which turns rounding-level gradient differences (sums
    # taken in another order) into weight differences of ~1e-5 here, against steps of ~lr = 1e-2.
    assert single["moved"] > 1e-2
    for name, w in single["weights"].items():
        assert torch.allclose(r0["weights"][name], w, atol=1e-4), name
        assert torch.equal(r0["weights"][name], r1["weights"][name]), name


@pytest.mark.parametrize("name, reference", [("fsdp-gradient", "gradient"), ("fsdp-ppo", "ppo"), ("fsdp-lora", "lora")])
def test_fsdp_update_equals_single_process(name: str, reference: str, batch: dict[str, Any],
                                           results: dict[str, Any]) -> None:
    """FSDP2 on 2 ranks (uneven micro-batch counts, padded with zero passes): the weights after one update
    equal the single process's within 1e-5, for full fine-tuning and for LoRA adapters on a frozen base."""
    single, sharded = results[reference]["rank0-of-1"], results[name]["rank0-of-2"]
    start = {n: p.detach() for n, p in batch["lora" if name == "fsdp-lora" else "policy"].model.named_parameters()}
    for n, w in single["weights"].items():
        assert torch.allclose(sharded["weights"][n], w, atol=1e-5), n
    trained = [n for n, p in batch["lora" if name == "fsdp-lora" else "policy"].model.named_parameters()
               if p.requires_grad]
    assert max(float((single["weights"][n] - start[n]).abs().max()) for n in trained) > 1e-4  # a real step
    if name == "fsdp-lora":
        assert all("lora_" in n for n in trained) and len(trained) < len(start)
        frozen = [n for n in start if n not in trained]
        assert all(torch.equal(sharded["weights"][n], start[n]) for n in frozen)  # the base did not move
    for key in ("loss/policy", "loss/int", "grad_norm"):
        if key in single["stats"]:
            assert sharded["stats"][key] == pytest.approx(single["stats"][key], rel=1e-5, abs=1e-7), key
    assert results[name]["rank1-of-2"]["weights"] == {}  # consolidated on rank 0 only


def test_fsdp_training_iterations_equal_single_process(results: dict[str, Any]) -> None:
    """Sharded training, rollouts on the gathered model: the same episodes, metrics and weights as one process."""
    single, r0, r1 = results["train"]["rank0-of-1"], results["train-fsdp"]["rank0-of-2"], results["train-fsdp"]["rank1-of-2"]
    for ours in (r0, r1):
        assert ours["actions"] == single["actions"]
        assert ours["responses"] == single["responses"]
    for it, (ours, ref) in enumerate(zip(r0["metrics"], single["metrics"], strict=True)):
        for key in sorted(k for k in ref if not k.startswith("time/") and k not in PER_MICRO_BATCH):
            if isinstance(ref[key], float):
                assert ours[key] == pytest.approx(ref[key], rel=1e-5, abs=1e-6), (it, key)
            else:
                assert ours[key] == ref[key], (it, key)
    assert single["moved"] > 1e-2
    for name, w in single["weights"].items():
        assert torch.allclose(r0["weights"][name], w, atol=1e-4), name


@pytest.mark.slow
def test_torchrun_fsdp_checkpoint_resumes_exactly_and_exports(tmp_path: Path) -> None:
    """`torchrun ... siri train train.strategy=fsdp`: sharded checkpoints (each rank's shards, DCP); a run
    resumed from its iteration-1 checkpoint ends with the uninterrupted run's weights and metrics; the
    exported policy is one consolidated Hugging Face directory; `siri probe` reads the sharded checkpoints."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun is not on the venv's PATH")
    model_dir = tmp_path / "micro"
    micro_policy(seed=0).save(model_dir)
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    overrides = [f"model.name_or_path={model_dir}", "model.action_mode=choose", "env.max_steps=4",
                 "rollout.num_groups=3", "rollout.group_size=2", "train.iterations=2", "train.eval_episodes=3",
                 "train.eval_every=0", "train.save_every=1", "train.keep_checkpoints=0", "train.device=cpu",
                 "optim.micro_batch_size=2", "optim.lr=0.01", "algo.entropy_coef=0.01", "train.strategy=fsdp"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SIRI_CACHE": str(tmp_path / "cache")}

    def launch(*args: str) -> None:
        cmd = [torchrun, "--nproc_per_node", "2", "--master_port", str(_free_port()), "-m", "siri", "train", *args]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        # Where it stopped: the ranks' last output lines (stdout), then stderr's head and tail.
        assert proc.returncode == 0, (proc.stdout[-1500:] + "\n--- stderr ---\n" + proc.stderr[:2000] + "\n...\n"
                                      + proc.stderr[-2000:])

    launch("-c", "household-tiny-gigpo", "--run-dir", str(whole), "--no-report", *overrides)
    checkpoints = sorted((whole / "checkpoints").glob("iter-*"))
    assert [c.name for c in checkpoints] == ["iter-000001", "iter-000002"]
    for checkpoint in checkpoints:
        shards = sorted(p.name for p in (checkpoint / "sharded").iterdir())
        assert ".metadata" in shards and len([p for p in shards if p.endswith(".distcp")]) == 2  # one per rank
        assert not (checkpoint / "model.pt").exists() and (checkpoint / "trainer.pt").exists()
    # "Kill" after iteration 1: the same directory as it was then, resumed to the end.
    shutil.copytree(whole, resumed, ignore=shutil.ignore_patterns("iter-000002", "policy", "summary.json"))
    (resumed / "checkpoints" / "LATEST").write_text("iter-000001\n")
    rows = (resumed / "metrics.jsonl").read_text().splitlines()
    (resumed / "metrics.jsonl").write_text(rows[0] + "\n" + rows[1] + "\n")  # as it was after iteration 1
    launch("--resume", str(resumed), "--no-report")
    want = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
    got = [json.loads(line) for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in got] == [0, 1, 2]
    assert want[2]["grad_norm"] > 0
    for key, value in want[2].items():
        if not key.startswith("time/"):
            assert got[2][key] == pytest.approx(value, abs=1e-6), key
    exported = {run: load_policy(str(run / "policy")) for run in (whole, resumed)}
    config = json.loads((whole / "policy" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]  # not FSDP's wrapper class
    start = micro_policy(seed=0).model.state_dict()
    finals = {run: policy.model.state_dict() for run, policy in exported.items()}
    assert max(float((finals[whole][n] - p).abs().max()) for n, p in start.items()) > 1e-3  # it trained
    for name, weight in finals[whole].items():
        assert torch.equal(finals[resumed][name], weight), name
    # One process reads the sharded checkpoints (what `siri probe` does): the last one is the exported policy.
    loaded = list(checkpoint_policies(whole, device="cpu"))
    assert [it for it, *_ in loaded] == [0, 1, 2]
    last = loaded[-1][2].model.state_dict()
    for name, weight in finals[whole].items():
        assert torch.allclose(last[name], weight), name


def test_fsdp_strategy_in_one_process_checkpoints_with_dcp_and_resumes(tmp_path: Path) -> None:
    """train.strategy=fsdp without torchrun: nothing to shard, the same training as replicate, and its
    checkpoints keep the strategy's format (DCP, written and read by this process alone), so a run can be
    tried on one process and resumed exactly."""
    model_dir = tmp_path / "micro"
    micro_policy(seed=0).save(model_dir)
    overrides = [f"model.name_or_path={model_dir}", "model.action_mode=choose", "env.max_steps=4",
                 "rollout.num_groups=2", "rollout.group_size=2", "train.iterations=2", "train.eval_episodes=2",
                 "train.eval_every=0", "train.save_every=1", "train.keep_checkpoints=0", "train.device=cpu",
                 "optim.lr=0.01", "algo.entropy_coef=0.01"]
    runs = {}
    for strategy in ("replicate", "fsdp"):
        cfg = TrainConfig.load(preset_path("household-tiny-gigpo"), [*overrides, f"train.strategy={strategy}"])
        runs[strategy] = tmp_path / strategy
        Trainer.create(cfg, runs[strategy]).train()
    assert (runs["fsdp"] / "checkpoints" / "iter-000001" / "sharded" / ".metadata").exists()
    assert (runs["replicate"] / "checkpoints" / "iter-000001" / "model.pt").exists()
    resumed = tmp_path / "resumed"
    shutil.copytree(runs["fsdp"], resumed, ignore=shutil.ignore_patterns("iter-000002", "policy"))
    (resumed / "checkpoints" / "LATEST").write_text("iter-000001\n")
    Trainer.resume(resumed).train()
    finals = {name: load_policy(str(path / "policy")).model.state_dict()
              for name, path in {**runs, "resumed": resumed}.items()}
    for name, weight in finals["replicate"].items():
        assert torch.equal(finals["fsdp"][name], weight), name
        assert torch.equal(finals["resumed"][name], weight), name


@pytest.mark.slow
def test_torchrun_siri_train_two_processes(tmp_path: Path) -> None:
    """`torchrun --nproc_per_node 2 -m siri train --workers ray` with SIRI (trace miner, a carried-over bank):
    both ranks collect through Ray env workers, rank 0 alone writes the run and mines, the other rank plans its
    groups' skill rollouts from rank 0's bank, and metrics and bank are the single-process, in-process run's."""
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun is not on the venv's PATH")
    model_dir = tmp_path / "micro"
    micro_policy(seed=0).save(model_dir)
    run_dir = tmp_path / "run"
    single_dir = tmp_path / "single"
    for run in (run_dir, single_dir):  # a bank carried over from another run: only rank 0 can read it
        run.mkdir()
        bank = SkillBank.open(run)
        for task_type in ("pick_and_place_simple", "look_at_obj_in_light"):
            bank.add_candidates(["WHEN you need a object THEN go to the countertop first"], task_type, 0, "trace")
        bank.save()
    overrides = [f"model.name_or_path={model_dir}", "model.action_mode=choose", "env.max_steps=4",
                 "rollout.num_groups=3", "rollout.group_size=2", "train.iterations=2", "train.eval_episodes=3",
                 "train.device=cpu", "optim.micro_batch_size=8", "algo.entropy_coef=0.01",  # a real update
                 "siri.enabled=true", "siri.warmup=false", "siri.miner=trace", "siri.mine_min_score=0",
                 "siri.mine_every=1", "siri.min_evals=2",
                 "siri.validation_gate=false"]  # active from iteration 1: its steps fill the probe
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SIRI_CACHE": str(tmp_path / "cache")}
    cmd = [torchrun, "--nproc_per_node", "2", "--master_port", str(_free_port()), "-m", "siri", "train",
           "-c", "household-tiny-gigpo", "--run-dir", str(run_dir), "--no-report", "--workers", "ray",
           "env.worker_cpus=0.5", *overrides]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single = subprocess.run([sys.executable, "-m", "siri", "train", "-c", "household-tiny-gigpo", "--run-dir",
                             str(single_dir), "--no-report", *overrides], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["iteration"] for m in metrics] == [0, 1, 2]  # written once, by rank 0
    assert metrics[1]["train/episodes"] + metrics[1]["train_skills/episodes"] == 6  # both ranks' groups, gathered
    assert metrics[1]["train_skills/episodes"] == 3  # one skill rollout per group, rank 1's group included
    assert metrics[2]["eval/episodes"] == 3 and metrics[0]["eval/episodes"] == 3
    assert json.loads((run_dir / "meta.json").read_text())["world_size"] == 2
    assert (run_dir / "policy" / "siri_policy.json").exists() and (run_dir / "checkpoints" / "LATEST").exists()
    assert proc.stdout.count("run directory:") == 2  # rank 0 prints; the other rank is quiet
    # Per-micro-batch averages (kl, entropy, clip_frac, ...) legitimately differ: ranks cut their own
    # micro-batches. Everything computed over the whole batch must not.
    expected = [json.loads(line) for line in (single_dir / "metrics.jsonl").read_text().splitlines()]
    assert expected[1]["grad_norm"] > 0  # the update depends on what was sampled
    assert "siri/int_gap" in metrics[2] and "skills/paired_zero_share" in metrics[1]  # every rank measured the probe
    for got, want in zip(metrics, expected, strict=True):
        for key, value in want.items():
            if key.startswith(("train/", "train_skills/", "eval/", "loss/", "adv/", "grad_norm", "skills/", "siri/")):
                assert got[key] == pytest.approx(value, abs=1e-5), key
    assert SkillBank.open(run_dir).to_json() == SkillBank.open(single_dir).to_json()
    assert sum(s.utility.n for s in SkillBank.open(run_dir).skills()) > 0
