"""Evaluation does not depend on how it is run: batch size, Ray environment workers, the CLI's options.

(Two ranks: ``test_distributed.test_two_process_training_iterations_equal_single_process`` compares every
action of the final evaluation of a 2-process gloo run with the single-process one.)
The protocol these tests protect is docs/evaluation.md.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from micro_policy import micro_policy
from siri.cli import app
from siri.models.policy import Policy
from siri.rollout.collector import RolloutConfig, collect
from siri.rollout.engine import HFEngine
from siri.rollout.evaluation import evaluate, outcomes
from siri.rollout.types import Trajectory

OPTIONS = {"split": "eval_id", "max_steps": 8}
EPISODES = 10
SKILL = (("s1", "WHEN you need an apple THEN look in the fridge first"),)


@pytest.fixture(scope="module")
def policy() -> Policy:
    return micro_policy(seed=2, reference=False)


def _evaluate(policy: Policy, max_batch: int, batch_env: Any = None,
              skills_for: Callable[[int], Any] | None = None) -> list[Trajectory]:
    engine = HFEngine(policy.model, policy.tokenizer, max_batch=max_batch)
    config = RolloutConfig(mode="choose", temperature=1.0, seed=0)
    return evaluate(lambda specs: collect(policy, "household", specs, config, env_options=OPTIONS, engine=engine,
                                          batch_env=batch_env), EPISODES, skills_for)


def _played(trajectories: list[Trajectory]) -> list[tuple[int, list[str], bool]]:
    return [(t.seed, [s.action for s in t.steps], t.won) for t in trajectories]


def test_outcomes_do_not_depend_on_the_batch_size(policy: Policy) -> None:
    """Every episode plays the same actions in batches of 1, 3 (uneven chunks) and all 10."""
    whole = _evaluate(policy, 64)
    assert [t.seed for t in whole] == list(range(EPISODES))
    for max_batch in (1, 3):
        assert _played(_evaluate(policy, max_batch)) == _played(whole), max_batch
    # Not vacuous: the episodes do differ from each other, and another sampling seed changes them.
    assert len({tuple(actions) for _, actions, _ in _played(whole)}) > 1
    # Skills in the prompt: the same pairing (episode i samples from stream i with or without them).
    with_skill = _evaluate(policy, 64, skills_for=lambda seed: SKILL)
    assert _played(_evaluate(policy, 3, skills_for=lambda seed: SKILL)) == _played(with_skill)
    assert all(t.skill_ids == ("s1",) for t in with_skill)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed (siri-rl[ray])")
def test_outcomes_with_ray_environment_workers_equal_in_process(policy: Policy) -> None:
    import ray

    from siri.envs.ray_workers import RayBatchEnv

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        workers = RayBatchEnv("household", EPISODES, OPTIONS, envs_per_worker=4, num_cpus=0.25)
        try:
            remote = _evaluate(policy, 3, batch_env=workers)
        finally:
            workers.close()
    finally:
        ray.shutdown()
        torch.set_num_threads(threads)
    assert _played(remote) == _played(_evaluate(policy, 64))


def test_eval_cli_batch_size_gives_the_same_outcomes(policy: Policy, tmp_path: Path) -> None:
    """`siri eval batch_size=1` reports exactly the episodes of the default batch size, episode by episode."""
    model = tmp_path / "micro"
    policy.save(model)
    runs = []
    for extra in ([], ["batch_size=1"]):
        result = CliRunner().invoke(app, ["eval", "--model", str(model), "--json", "episodes=6", "max_steps=6",
                                          "mode=choose", "temperature=1.0", *extra])
        assert result.exit_code == 0, result.output
        runs.append(json.loads(result.stdout))
    assert runs[0]["outcomes"] == runs[1]["outcomes"] and len(runs[0]["outcomes"]) == 6
    assert outcomes([]) == []
