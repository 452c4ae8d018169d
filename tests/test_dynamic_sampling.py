"""Dynamic sampling: which groups count as informative (hand cases, GRPO and GiGPO), how the batch is
assembled, and a real training iteration: the batch composition it reports, and an update unchanged when
every group is informative."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from micro_policy import MICRO_TINY
from siri.config import TrainConfig, preset_path
from siri.rl.dynamic_sampling import assemble, informative_groups, renumber
from siri.rl.trainer import Trainer, compute_advantages
from siri.rollout.types import StepRecord, Trajectory
from siri.sft.tiny import build_tiny


def _traj(group: int, traj: int, rewards: list[float], anchors: list[str]) -> Trajectory:
    steps = [StepRecord(group=group, traj=traj, t=t, seed=group, task_type="x", prompt_ids=[], response_ids=[],
                        old_logprobs=[], action_mask=[], action=f"a{t}", valid=True, reward=r,
                        done=t == len(rewards) - 1, won=False, anchor=a, observation_text=a)
             for t, (r, a) in enumerate(zip(rewards, anchors, strict=True))]
    return Trajectory(group=group, traj=traj, seed=group, task="t", task_type="x", steps=steps, won=False,
                      score=0.0)


def _informative(trajectories: list[Trajectory], algo: str) -> set[int]:
    cfg = TrainConfig.load(None, [f"algo.name={algo}"])
    records = [s for t in trajectories for s in t.steps]
    return informative_groups(records, compute_advantages(records, cfg))


def test_informative_groups_by_hand() -> None:
    """Group 0: returns 1 and 0, a signal for every estimator. Group 1: two identical episodes, nothing.
    Group 2: both episodes return 0.5, but state "S" is followed by 0.95 * 0.5 = 0.475 in one (the reward
    comes next step) and by 0 in the other (the reward came before it): GiGPO's step group of "S" sees it,
    GRPO and RLOO see equal returns."""
    batch = [
        _traj(0, 0, [0.0, 1.0], ["A", "B"]), _traj(0, 1, [0.0, 0.0], ["A", "C"]),
        _traj(1, 2, [0.0, 0.0], ["A", "B"]), _traj(1, 3, [0.0, 0.0], ["A", "B"]),
        _traj(2, 4, [0.0, 0.5], ["S", "D"]), _traj(2, 5, [0.5, 0.0, 0.0], ["F", "S", "E"]),
    ]
    assert _informative(batch, "grpo") == {0}
    assert _informative(batch, "rloo") == {0}
    assert _informative(batch, "gigpo") == {0, 2}


def test_assemble_keeps_informative_groups_in_order_and_fills_a_short_batch() -> None:
    round1 = [_traj(g, g, [0.0], ["A"]) for g in range(4)]
    round2 = [_traj(4 + g, g, [0.0], ["A"]) for g in range(4)]
    renumber(round2, traj_offset=4)
    assert [t.traj for t in round2] == [4, 5, 6, 7] and all(s.traj == t.traj for t in round2 for s in t.steps)
    # Enough: round 1's informative groups 1 and 3, then round 2's first two informative ones (5, 6).
    batch, stats = assemble([round1, round2], [{1, 3}, {5, 6, 7}], target=4)
    assert [t.group for t in batch] == [1, 3, 5, 6]
    assert stats == {"sampling/rounds": 2.0, "sampling/groups_collected": 8.0, "sampling/informative_groups": 4.0,
                     "sampling/filled_groups": 0.0, "sampling/dropped_groups": 4.0,
                     "sampling/first_round_informative": 2.0}
    # Short after the last round: the first round's other groups fill the batch up to its size.
    batch, stats = assemble([round1, round2], [{2}, {7}], target=4)
    assert sorted(t.group for t in batch) == [0, 1, 2, 7]
    assert stats["sampling/informative_groups"] == 2.0 and stats["sampling/filled_groups"] == 2.0
    assert stats["sampling/dropped_groups"] == 4.0


@pytest.fixture(scope="module")
def micro_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("micro") / "model"
    build_tiny(MICRO_TINY, out)
    return out


def _one_iteration(micro_dir: Path, run: Path, *extra: str) -> tuple[dict, dict[str, torch.Tensor]]:
    cfg = TrainConfig.load(preset_path("household-tiny-gigpo"), [
        f"model.name_or_path={micro_dir}", "rollout.num_groups=3", "rollout.group_size=2", "env.max_steps=4",
        "train.iterations=1", "train.eval_every=0", "train.eval_episodes=1", "optim.lr=0.01", *extra])
    trainer = Trainer.create(cfg, run)
    record = trainer.step()
    weights = {n: p.detach().clone() for n, p in trainer.policy.model.named_parameters()}
    trainer.close()
    trainer.run.close()
    return record, weights


def test_every_group_informative_gives_the_update_of_plain_sampling(micro_dir: Path, tmp_path: Path) -> None:
    """GiGPO in generate mode: the micro model's invalid actions make every group's step rewards differ, so
    the first round fills the batch and the update is exactly the one without dynamic sampling."""
    settings = ["model.action_mode=generate", "algo.name=gigpo"]
    plain, plain_weights = _one_iteration(micro_dir, tmp_path / "plain", *settings)
    dynamic, dynamic_weights = _one_iteration(micro_dir, tmp_path / "dynamic", *settings,
                                              "rollout.dynamic_sampling=true")
    assert dynamic["sampling/rounds"] == 1.0 and dynamic["sampling/informative_groups"] == 3.0
    assert dynamic["sampling/dropped_groups"] == 0.0
    for key, value in plain.items():
        if not key.startswith("time/"):
            assert dynamic[key] == value, key
    assert all(torch.equal(dynamic_weights[n], w) for n, w in plain_weights.items())


def test_uninformative_groups_are_resampled_and_reported(micro_dir: Path, tmp_path: Path) -> None:
    """GRPO in choose mode: the micro model never wins and never acts invalidly, so every return is 0 and no
    group carries a signal. Dynamic sampling tries max_sampling_rounds collections, reports them, and trains
    on the first round as plain sampling would."""
    settings = ["model.action_mode=choose", "algo.name=grpo", "algo.kl_coef=0.05"]
    plain, plain_weights = _one_iteration(micro_dir, tmp_path / "plain", *settings)
    dynamic, dynamic_weights = _one_iteration(micro_dir, tmp_path / "dynamic", *settings,
                                              "rollout.dynamic_sampling=true", "rollout.max_sampling_rounds=3")
    assert dynamic["sampling/rounds"] == 3.0 and dynamic["sampling/groups_collected"] == 9.0
    assert dynamic["sampling/informative_groups"] == 0.0 and dynamic["sampling/filled_groups"] == 3.0
    assert dynamic["sampling/dropped_groups"] == 6.0 and dynamic["adv/mean_abs"] == 0.0
    assert dynamic["train/success"] == plain["train/success"] and dynamic["train/episodes"] == plain["train/episodes"]
    assert all(torch.equal(dynamic_weights[n], w) for n, w in plain_weights.items())


def test_dynamic_sampling_refuses_siri() -> None:
    with pytest.raises(Exception, match="dynamic_sampling does not go with SIRI"):
        TrainConfig.load(None, ["siri.enabled=true", "rollout.dynamic_sampling=true"])
