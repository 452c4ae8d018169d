"""Weights & Biases logging, offline (no network, no account): a real `siri train` writes its W&B run files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from micro_policy import micro_policy

pytest.importorskip("wandb", reason="wandb is not installed (pip install 'siri-rl[wandb]')")

ROOT = Path(__file__).resolve().parents[1]


def _train(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "SIRI_CACHE": str(cwd / "cache")}
    env.pop("WANDB_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "siri", "train", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def _run_files(run: Path, run_id: str) -> list[Path]:
    return sorted(run.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb"))


def test_offline_wandb_run_holds_the_metrics_config_and_report(tmp_path: Path) -> None:
    model = tmp_path / "micro"
    micro_policy(seed=0).save(model)
    run = tmp_path / "run"
    settings = [f"model.name_or_path={model}", "train.loggers=tensorboard,wandb", "train.wandb_project=siri-test",
                "rollout.num_groups=2", "rollout.group_size=2", "env.max_steps=3", "train.eval_episodes=2"]
    done = _train("-c", "household-tiny-gigpo", "--run-dir", str(run), "train.iterations=2", *settings, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "wandb" not in (done.stdout + done.stderr).lower().replace(str(tmp_path).lower(), "")  # quiet
    run_id = (run / "wandb_id").read_text().strip()
    (record,) = _run_files(run, run_id)
    data = record.read_bytes()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    keys = {k for row in rows for k, v in row.items() if isinstance(v, int | float) and k != "iteration"}
    assert {"train/success", "eval/success", "loss/policy"} <= keys
    missing = [k for k in keys if k.encode() not in data]
    assert not missing, missing  # every metric of metrics.jsonl went to W&B
    assert b"siri-test" in data and b"micro_batch_size" in data  # the project, and the resolved config
    assert list(run.glob("events.out.tfevents.*"))  # TensorBoard is still written
    assert (run / "report.html").exists() and b"report.html" in data  # the report, as an artifact
    assert b"report_files/figure-0.png" in data

    # --resume continues the same W&B run (same id), logging only the new iteration.
    resumed = _train("--resume", str(run), "train.iterations=3", "--no-report", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (run / "wandb_id").read_text().strip() == run_id
    assert len(_run_files(run, run_id)) == 2


def test_wandb_without_the_package_is_a_clear_error_before_anything_is_written(tmp_path: Path) -> None:
    """A Python where wandb cannot be imported: one line naming the extra, no run directory."""
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "wandb.py").write_text("raise ImportError('blocked for the test')\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{ROOT / 'src'}", "OMP_NUM_THREADS": "1"}
    model = tmp_path / "micro"
    micro_policy(seed=0).save(model)
    done = subprocess.run([sys.executable, "-m", "siri", "train", "-c", "household-tiny-gigpo", "--run-dir",
                           str(tmp_path / "run"), f"model.name_or_path={model}", "train.loggers=wandb"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "pip install 'siri-rl[wandb]'" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()
