"""Environment workers on a local Ray: same results as in-process, and a killed worker is reported, never lost."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from micro_policy import clone, micro_policy
from siri.config import TrainConfig
from siri.envs import EnvError, make_batch
from siri.envs.ray_workers import RayBatchEnv
from siri.models.policy import Policy
from siri.rl.trainer import Trainer
from siri.rollout.collector import EpisodeSpec, RolloutConfig, collect
from siri.runs.run_dir import RunDir

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'siri-rl[ray]')")

OPTIONS = {"split": "train", "max_steps": 6}


@pytest.fixture(scope="module", autouse=True)
def ray_session() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the actors need the cores too: oversubscribed OpenMP threads only spin
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return micro_policy(seed=0)


def _kill(batch: RayBatchEnv, shard: int) -> None:
    """Kill one worker for real and wait until Ray reports it dead (ray.kill is asynchronous)."""
    worker = batch.workers[shard]
    ray.kill(worker, no_restart=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            ray.get(worker.pid.remote(), timeout=10)
        except ray.exceptions.RayActorError:
            return
        time.sleep(0.05)
    raise AssertionError("the killed worker still answers")


class KillOnSecondStep:
    """The real RayBatchEnv; its worker 0 is really killed before the second batched step."""

    def __init__(self, inner: RayBatchEnv) -> None:
        self.inner, self.calls = inner, 0

    def __len__(self) -> int:
        return len(self.inner)

    def __getattr__(self, name: str) -> Any:  # reset, restarts, close, ... of the real batch
        return getattr(self.inner, name)

    def step(self, actions: list[str | None]) -> Any:
        self.calls += 1
        if self.calls == 2:
            _kill(self.inner, 0)
        return self.inner.step(actions)


def _random_actions(observations: list[Any], rng: random.Random) -> list[str | None]:
    return [None if o is None else rng.choice(o.admissible_actions) for o in observations]


def test_same_observations_anchors_rewards_as_in_process() -> None:
    seeds = [3, 3, 4, 5, 6]  # a repeated seed: a group's two rollouts start from the same state
    remote = RayBatchEnv("household", 5, OPTIONS, envs_per_worker=2, num_cpus=0.25)
    local = make_batch("household", 5, **OPTIONS)
    try:
        obs_r, obs_l = remote.reset(seeds), local.reset(seeds)
        assert obs_r == obs_l and obs_r[0].anchor == obs_r[1].anchor
        rng = random.Random(0)
        live = list(obs_r)
        finished = 0
        for _ in range(OPTIONS["max_steps"]):
            actions = _random_actions(live, rng)
            actions[2] = "jump over the moon" if actions[2] is not None else None  # invalid: same verdict too
            steps_r, steps_l = remote.step(actions), local.step(actions)
            assert steps_r == steps_l  # observation, anchor, reward, done, won, valid, score, info
            live = [None if s is None or s.done else s.observation for s in steps_r]
            finished += sum(s is not None and s.done for s in steps_r)
        assert finished == 5 and all(o is None for o in live)
        assert remote.restarts == 0 and remote.failed_episodes == 0
        with pytest.raises(EnvError, match="after the episode ended"):  # an env's own error is re-raised
            remote.step(["look"] * 5)
    finally:
        remote.close()


def test_killed_worker_is_restarted_and_its_episodes_reported_failed() -> None:
    batch = RayBatchEnv("household", 6, OPTIONS, envs_per_worker=2, num_cpus=0.25)
    try:
        seeds = [10, 11, 12, 13, 14, 15]
        observations = batch.reset(seeds)
        pids = batch.pids()
        rng = random.Random(1)
        steps = batch.step(_random_actions(observations, rng))
        live = [s.observation for s in steps]
        _kill(batch, 1)  # holds environments 2 and 3
        actions = _random_actions(live, rng)
        actions[3] = None  # env 3 idles this turn: its episode is lost all the same
        steps = batch.step(actions)
        failed = steps[2]
        assert failed is not None and failed.done and not failed.valid and failed.reward == 0.0
        assert failed.info["worker_failed"] is True and "ActorDiedError" in failed.info["error"]
        assert failed.observation == live[2]
        assert steps[3] is None  # not stepped now ...
        for i in (0, 1, 4, 5):
            assert steps[i] is not None and not steps[i].info.get("worker_failed")
        later = batch.step(_random_actions([None, None, None, live[3], None, None], rng))
        assert later[3] is not None and later[3].info["worker_failed"]  # ... reported when next stepped
        assert batch.failed_episodes == 2 and batch.restarts == 1
        new_pids = batch.pids()
        assert new_pids[1] != pids[1] and [new_pids[0], new_pids[2]] == [pids[0], pids[2]]
        # The replacement worker is a full member again: a new reset matches in-process exactly.
        assert batch.reset(seeds) == make_batch("household", 6, **OPTIONS).reset(seeds)
        _kill(batch, 2)  # a worker dying during reset: reset is deterministic, so it is retried
        assert batch.reset(seeds) == make_batch("household", 6, **OPTIONS).reset(seeds)
        assert batch.restarts == 2 and batch.failed_episodes == 2
    finally:
        batch.close()


def test_collector_turns_a_lost_worker_into_failed_trajectories(policy: Policy) -> None:
    specs = [EpisodeSpec(g, 40 + g) for g in range(2) for _ in range(2)]
    config = RolloutConfig(mode="choose", seed=5)
    inner = RayBatchEnv("household", 4, OPTIONS, envs_per_worker=2, num_cpus=0.25)
    try:
        trajs = collect(policy, "household", specs, config, batch_env=KillOnSecondStep(inner))
    finally:
        inner.close()
    reference = collect(policy, "household", specs, config, env_options=OPTIONS)
    assert [t.failed for t in trajs] == [True, True, False, False]
    for t in trajs[:2]:
        assert len(t.steps) == 1 and "ActorDiedError" in t.failure and not t.won
        assert t.steps[0].action == reference[t.traj].steps[0].action  # the step before the loss is kept
    # The other episodes run on to the end. Up to the loss they match the undisturbed collection; after
    # it the generation batch is smaller, which changes the sampled tokens (the engine's RNG is per batch).
    for t, r in zip(trajs[2:], reference[2:], strict=True):
        assert [(s.action, s.reward, s.anchor) for s in t.steps[:2]] == [(s.action, s.reward, s.anchor) for s in r.steps[:2]]
        assert t.steps[-1].done and len(t.steps) <= OPTIONS["max_steps"]


def _trainer(policy: Policy, tmp: Path, workers: str) -> Trainer:
    cfg = TrainConfig.load(None, [
        f"env.workers={workers}", "env.max_steps=5", "env.envs_per_worker=3", "env.worker_cpus=0.25",
        "model.action_mode=generate", "rollout.max_new_tokens=4", "rollout.group_size=3", "rollout.num_groups=2", "optim.lr=0.01",
        "optim.micro_batch_size=8", "train.eval_episodes=3", "train.iterations=1", "algo.name=gigpo",
    ])
    run = RunDir.create(tmp / workers, cfg.to_yaml(), {})
    return Trainer(cfg, run, policy)


def test_training_iteration_with_ray_workers_equals_in_process(policy: Policy, tmp_path: Path) -> None:
    """Same seed: identical rollouts, advantages, update and evaluation with env.workers=ray."""
    results = {}
    for workers in ("inprocess", "ray"):
        trainer = _trainer(clone(policy), tmp_path, workers)
        try:
            record = trainer.step()
            weights = {n: p.detach().clone() for n, p in trainer.policy.model.named_parameters()}
            evaluation = trainer.evaluate()
        finally:
            trainer.close()
        results[workers] = (record, weights, evaluation)
    (rec_a, w_a, ev_a), (rec_b, w_b, ev_b) = results["inprocess"], results["ray"]
    keys = [k for k in rec_a if not k.startswith("time/")]
    assert rec_b["env/failed_episodes"] == 0 and rec_b["env/worker_restarts"] == 0
    assert {k: rec_a[k] for k in keys} == {k: rec_b[k] for k in keys}
    assert rec_a["train/episodes"] == 6 and rec_a["adv/mean_abs"] > 0
    moved = [n for n in w_a if not torch.equal(w_a[n], policy.model.state_dict()[n])]
    assert moved, "the update changed nothing: the comparison would be vacuous"
    assert all(torch.equal(w_a[n], w_b[n]) for n in w_a)
    assert ev_a == ev_b and ev_a["eval/episodes"] == 3
    assert np.isfinite(rec_a["loss/policy"])


def test_bad_capacity_and_options_are_clear_errors() -> None:
    with pytest.raises(EnvError, match=r"need 64 CPUs .*raise env.envs_per_worker"):
        RayBatchEnv("household", 64, OPTIONS, envs_per_worker=1, num_cpus=1.0)
    with pytest.raises(EnvError, match="unknown option"):
        RayBatchEnv("household", 2, {"colour": "red"})


def test_training_step_leaves_out_episodes_lost_with_a_worker(policy: Policy, tmp_path: Path) -> None:
    trainer = _trainer(clone(policy), tmp_path, "ray")
    e = trainer.cfg.env
    batch = RayBatchEnv(e.name, 6, trainer.env_options, envs_per_worker=3, num_cpus=0.25)
    trainer._env_batches[(json.dumps(trainer.env_options, sort_keys=True, default=str), 6)] = KillOnSecondStep(batch)
    try:
        record = trainer.step()
    finally:
        trainer.close()
    assert record["env/failed_episodes"] == 3 and record["env/worker_restarts"] == 1
    assert record["train/episodes"] == 3  # the 3 episodes of the surviving worker, and only them
    assert record["update/policy_steps"] == 3 * 5 and np.isfinite(record["loss/policy"])
