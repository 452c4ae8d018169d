"""Training on the real ALFWorld engine (the paper's main setting), from the CLI, on exported household games.

The trainer draws task seeds from [0, 2**31); a folder of six games accepts seeds 0..5 only, so this is
where a missing seed rule crashes at iteration 0. GiGPO and SIRI (trace miner, a carried-over bank so
skill rollouts are planned in the first iteration) each train and evaluate through `siri train`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from micro_policy import MICRO_TINY
from siri.envs import EnvError, split_seed
from siri.envs.household import TASK_TYPES
from siri.models.loading import resolve
from siri.models.policy import ModelError
from siri.runs.run_dir import RunDir
from siri.sft.tiny import build_tiny, default_config
from siri.skills.bank import SkillBank

ROOT = Path(__file__).resolve().parents[1]
needs_alfworld = pytest.mark.skipif(importlib.util.find_spec("alfworld") is None,
                                    reason="the alfworld engine is not installed (siri-rl[alfworld])")


def test_split_seed_maps_drawn_seeds_into_finite_splits() -> None:
    assert split_seed(763607780, 6) == 763607780 % 6 == 2
    assert split_seed(5, 6) == 5 and split_seed(6, 6) == 0
    assert split_seed(2**31 - 2, None) == 2**31 - 2  # unlimited splits: every seed is its own task
    for bad in (-1, 1.5, True, "3"):
        with pytest.raises(EnvError, match="non-negative int"):
            split_seed(bad, 6)  # type: ignore[arg-type]
    with pytest.raises(EnvError, match="no episodes"):
        split_seed(3, 0)


def test_tiny_for_alfworld_is_the_household_tiny_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exported household games speak the household's text: `tiny` with env alfworld is the household model,
    never a build that needs ALFWORLD_DATA; asking for an alfworld recipe names the model to use."""
    monkeypatch.setenv("SIRI_CACHE", str(tmp_path))
    monkeypatch.delenv("ALFWORLD_DATA", raising=False)
    with pytest.raises(ModelError, match="tiny-household"):
        default_config("alfworld")
    # The household model ships with the package: both resolve to its copy in the cache, nothing is built.
    paths = [resolve("tiny", env=env, build=False) for env in ("alfworld", "household")]
    assert paths[0] == paths[1] and paths[0][1] == "household" and str(tmp_path) in str(paths[0][0])
    # Without a shipped or cached build, both say the same: build the household model.
    monkeypatch.setenv("SIRI_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr("siri.sft.tiny.SHIPPED_DIR", tmp_path / "no-shipped")
    messages = []
    for env in ("alfworld", "household"):
        with pytest.raises(ModelError) as e:
            resolve("tiny", env=env, build=False)
        messages.append(str(e.value))
    assert messages[0] == messages[1] and "household" in messages[0]


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("alfworld-train")
    build_tiny(MICRO_TINY, root / "model")
    for split, seeds, folder, options in (("train", "0-5", "games", []),
                                          ("eval_id", "0-1", "eval-games", ["-o", "clutter=0", "-o", "placements=typical"])):
        subprocess.run([sys.executable, "-m", "siri", "env", "export-alfworld", "--seeds", seeds, "--split", split,
                        "--out", str(root / folder), *options], check=True, capture_output=True, cwd=ROOT, timeout=300)
    return {"root": root, "model": root / "model", "games": root / "games", "eval_games": root / "eval-games"}


def _train(setting: dict[str, Path], preset: str, run: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "siri", "train", "--config", preset, "--run-dir", str(run), "--no-report",
           "env.name=alfworld", f"env.options={{games: {setting['games']}}}", "env.max_steps=4",
           f"model.name_or_path={setting['model']}", "rollout.num_groups=2", "rollout.group_size=2",
           "train.iterations=1", "train.eval_episodes=3", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("ALFWORLD_DATA", None)
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)


@needs_alfworld
@pytest.mark.alfworld
def test_gigpo_trains_and_evaluates_on_real_alfworld_games(setting: dict[str, Path]) -> None:
    """Separate train and evaluation games (``games`` as a split -> folder mapping)."""
    run = setting["root"] / "gigpo"
    games = f"env.options={{games: {{train: {setting['games']}, eval_id: {setting['eval_games']}}}}}"
    proc = _train(setting, "household-tiny-gigpo", run, games)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = RunDir.open(run).metrics()
    assert [r["iteration"] for r in rows] == [0, 1]
    assert rows[1]["train/episodes"] == 4 and rows[1]["eval/episodes"] == 2  # the two evaluation games
    # those were exported as the household env plays them with -o clutter=0 -o placements=typical
    for traj_data in setting["eval_games"].rglob("traj_data.json"):
        assert json.loads(traj_data.read_text())["siri_scene"]["clutter"] == 0
    summary = json.loads((run / "summary.json").read_text())
    assert {"bootstrap", "final"} <= set(summary["evals"])
    assert (run / "policy" / "siri_policy.json").exists()


@needs_alfworld
@pytest.mark.alfworld
def test_siri_trains_with_the_trace_miner_on_real_alfworld_games(setting: dict[str, Path]) -> None:
    run = setting["root"] / "siri"
    run.mkdir()
    bank = SkillBank.open(run)  # carried over: skill rollouts are planned from the first iteration on
    for task_type in TASK_TYPES:
        bank.add_candidates(["WHEN you need an object THEN go to the countertop first"], task_type, 0, "trace")
    bank.save()
    proc = _train(setting, "household-tiny-siri", run, "siri.miner=trace", "siri.warmup=false",
                  "siri.mine_min_score=0", "siri.keep_skills_at_inference=true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = RunDir.open(run).metrics()
    assert [r["iteration"] for r in rows] == [0, 1]
    assert rows[1]["phase"] == "skills" and rows[1]["train_skills/episodes"] == 2  # one per group of two
    assert rows[1]["train/episodes"] == 2 and rows[1]["eval/episodes"] == 3
    evaluated = [s for s in SkillBank.open(run).skills() if s.utility.n > 0]
    assert evaluated, "the skill rollouts were paired with plain rollouts of the same game"
    assert {"bootstrap", "final", "final_with_skills"} <= set(json.loads((run / "summary.json").read_text())["evals"])


def test_games_by_split_names_the_missing_split() -> None:
    from siri.envs import make

    with pytest.raises(EnvError, match=r"needs 'eval_id'.*splits: train, eval_id, eval_ood"):
        make("alfworld", games={"train": "somewhere"}, split="eval_id")
    with pytest.raises(EnvError, match=r"knows no split \['valid'\]"):
        make("alfworld", games={"train": "somewhere", "valid": "elsewhere"}, split="train")
