"""Failing safe (issue 24): one writer per run, one-line errors before anything is written, durable checkpoints,
damaged files reported by name. Each test makes the failure happen for real: a second process, a full file
size limit, garbage bytes in the files. The server's cases are in test_serve.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from micro_policy import MICRO_TINY
from siri.cli import app
from siri.config import TrainConfig, preset_path
from siri.models.loading import load_policy
from siri.models.policy import ModelError
from siri.rl.trainer import RESUME_SAFE_KEYS, check_resume_overrides
from siri.runs.run_dir import RunDir, RunDirError
from siri.sft.tiny import build_tiny
from siri.utils.config import ConfigError

runner = CliRunner()


@pytest.fixture(scope="module")
def micro_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("micro") / "model"
    build_tiny(MICRO_TINY, out)
    return out


def new_run(path: Path) -> RunDir:
    run = RunDir.create(path, TrainConfig().to_yaml(), {})
    run.close()
    return run


# --- 1. one process per run directory ------------------------------------------------------------------------


HOLD = textwrap.dedent("""
    import sys, time
    from siri.runs.run_dir import RunDir
    run = RunDir.open(sys.argv[1])
    run.lock()
    print("locked", flush=True)
    time.sleep(600)
""")


def test_a_second_process_cannot_train_into_a_run_that_is_in_use_and_a_dead_one_leaves_no_lock(tmp_path: Path) -> None:
    run = new_run(tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=rf"in use by PID {holder.pid}"):
            RunDir.open(run.path).lock()
        result = runner.invoke(app, ["train", "--resume", str(run.path)])
        assert result.exit_code == 2 and f"in use by PID {holder.pid}" in result.output
        assert "Traceback" not in result.output
    finally:
        holder.send_signal(signal.SIGKILL)  # killed: its lock goes with it
        holder.wait()
    other = RunDir.open(run.path)
    other.lock()  # no stale lock to clear by hand
    assert (run.path / ".lock").read_text().strip() == str(os.getpid())
    other.unlock()


# --- 3. mistakes answered in one line, before the run directory is written -------------------------------------


@pytest.mark.parametrize(("setting", "says"), [
    ("env.eval_split=bogus", "unknown household split 'bogus'"),
    ("env.options.clutter=abc", "clutter must be a number"),
    ("env.name=nosuchenv", "unknown environment 'nosuchenv'"),
    ("train.device=tpu", "device must be one of"),
    ("model.name_or_path=/nonexistent/model", "does not exist"),
    ("train.iterations=0", "below the minimum 1"),
    ("rollout.group_size=1", "group_size >= 2"),
])
def test_train_mistakes_are_one_line_and_leave_no_run_directory(tmp_path: Path, micro_dir: Path, setting: str,
                                                                says: str) -> None:
    run = tmp_path / "run"
    model = [] if setting.startswith("model.") else [f"model.name_or_path={micro_dir}"]
    result = runner.invoke(app, ["train", "-c", "household-tiny-siri", "--run-dir", str(run), *model, setting,
                                 "train.iterations=1" if "iterations" not in setting else "rollout.num_groups=1"])
    assert result.exit_code == 2, result.output
    assert says in result.output and "Traceback" not in result.output, result.output
    assert next(line for line in result.output.splitlines() if line.strip()).startswith("error:")
    assert not run.exists()  # a retry is a fresh start, not "already holds a run"


def test_a_read_only_place_for_the_run_is_one_line(tmp_path: Path, micro_dir: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = runner.invoke(app, ["train", "-c", "household-tiny-gigpo", "--run-dir", str(blocker / "run"),
                                 f"model.name_or_path={micro_dir}", "train.iterations=1"])
    assert result.exit_code == 2 and "cannot create the run directory" in result.output
    assert "Traceback" not in result.output


def test_a_binary_config_names_its_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_bytes(b"\x80\x81\xfe\xff" * 10)
    with pytest.raises(ConfigError, match=rf"{config}.*not a text file"):
        TrainConfig.load(config)


# --- 4 and 10. checkpoints: durable, and a failed write reported and cleaned up ----------------------------------


FILL = textwrap.dedent("""
    import resource, signal, sys, torch
    from siri.runs.run_dir import RunDir, RunDirError
    run = RunDir.open(sys.argv[1])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write fails (EFBIG) instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))  # no file over 1 MB: a full disk, for this run
    try:
        run.save_checkpoint(2, {"model": {"w": torch.zeros(1 << 20)}})  # 4 MB
    except RunDirError as e:
        print(e)
        sys.exit(3)
""")


def test_a_checkpoint_that_cannot_be_written_is_reported_and_leaves_nothing_partial(tmp_path: Path) -> None:
    run = new_run(tmp_path / "run")
    run.save_checkpoint(1, {"model": {"w": torch.ones(4)}})
    done = subprocess.run([sys.executable, "-c", FILL, str(run.path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "writing checkpoint" in done.stdout and "iter-000002" in done.stdout
    assert "disk full" in done.stdout or "no space left" in done.stdout
    assert "Traceback" not in done.stdout
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["LATEST", "iter-000001"]  # no temporary left
    assert RunDir.open(run.path).latest_checkpoint().name == "iter-000001"


def test_checkpoint_files_are_synced_before_they_are_published_and_stray_temporaries_go(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = new_run(tmp_path / "run")
    run.checkpoints.mkdir()
    (run.checkpoints / ".LATEST.abc123.tmp").write_text("iter-000000\n")  # a kill between write and rename
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    run.save_checkpoint(1, {"model": {"w": torch.ones(4)}}, files={"skill_bank.json": "{}"})
    for name in ("model.pt", "iteration.pt", "skill_bank.json"):
        assert any(path.endswith(f".tmp/{name}") for path in synced), (name, synced)  # synced under the temp name
    assert not list(run.checkpoints.glob(".LATEST.*"))


# --- 5. a damaged checkpoint names the older ones ------------------------------------------------------------------


def test_a_damaged_latest_checkpoint_points_to_the_older_kept_one(tmp_path: Path) -> None:
    run = new_run(tmp_path / "run")
    for iteration in (1, 2):
        run.save_checkpoint(iteration, {"model": {"w": torch.ones(4)}})
    latest = run.latest_checkpoint()
    (latest / "model.pt").write_bytes(b"garbage")
    with pytest.raises(RunDirError, match=r"iter-000002/model\.pt.*corrupt.*Older checkpoints are kept "
                                          r"\(iter-000001\).*'iter-000001' into .*LATEST"):
        run.load_checkpoint(latest, "model")
    (latest / "iteration.pt").unlink()
    with pytest.raises(RunDirError, match=r"incomplete or missing.*to resume from iter-000001"):
        run.latest_checkpoint()


def test_a_corrupt_bank_in_the_run_directory_does_not_block_resume(tmp_path: Path, micro_dir: Path) -> None:
    """The checkpoint holds the bank a resume needs; the run directory's copy is only the newest view of it."""
    run = tmp_path / "run"
    base = ["-c", "household-tiny-siri", f"model.name_or_path={micro_dir}", "model.action_mode=choose",
            "rollout.num_groups=1", "rollout.group_size=2", "env.max_steps=3", "train.eval_episodes=2",
            "train.save_every=1", "siri.warmup_max_iters=1"]
    result = runner.invoke(app, ["train", "--run-dir", str(run), "--no-report", *base, "train.iterations=1"])
    assert result.exit_code == 0, result.output
    (run / "skill_bank.json").write_bytes(b"\x00garbage{")
    result = runner.invoke(app, ["train", "--resume", str(run), "--no-report", "train.iterations=2"])
    assert result.exit_code == 0, result.output
    assert json.loads((run / "skill_bank.json").read_text())  # rewritten from the checkpoint's copy
    assert [r["iteration"] for r in RunDir.open(run).metrics()] == [0, 1, 2]


# --- 6. damaged model files are found at load time --------------------------------------------------------------


def test_damaged_model_weights_and_missing_tokenizer_are_named_at_load(micro_dir: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    def copy(name: str) -> Path:
        out = tmp_path / name
        subprocess.run(["cp", "-r", str(micro_dir), str(out)], check=True)
        return out

    nan = copy("nan")
    weights = load_file(nan / "model.safetensors")
    first = sorted(weights)[0]
    weights[first] = torch.full_like(weights[first], float("nan"))
    save_file(weights, nan / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ModelError, match=rf"weights in {nan} are damaged: .*NaN or inf"):
        load_policy(str(nan), reference=False)
    truncated = copy("truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=rf"{truncated}.*damaged") as error:
        load_policy(str(truncated), reference=False)
    assert "\n" not in str(error.value)
    no_tokenizer = copy("no-tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (no_tokenizer / name).unlink(missing_ok=True)
    with pytest.raises(ModelError, match=rf"{no_tokenizer} has no tokenizer"):
        load_policy(str(no_tokenizer), reference=False)


# --- 7. garbled run files ---------------------------------------------------------------------------------------


def test_report_on_garbled_or_unwritable_run_files_is_one_line(tmp_path: Path) -> None:
    run = new_run(tmp_path / "run")
    run.metrics_path.write_bytes(b"\x00\xff\xfe garbage \x80")
    result = runner.invoke(app, ["report", str(run.path)])
    assert result.exit_code == 2 and "metrics.jsonl is not a text file" in result.output
    run.metrics_path.write_text("")
    (run.path / "report.html").mkdir()  # the report cannot be written there
    result = runner.invoke(app, ["report", str(run.path)])
    assert result.exit_code == 2 and "--out" in result.output and "Traceback" not in result.output
    out = tmp_path / "elsewhere"
    assert runner.invoke(app, ["report", str(run.path), "--out", str(out)]).exit_code == 0
    assert (out / "report.html").is_file()


# --- 8. a resume may not change what the run computes -------------------------------------------------------------


def test_resume_refuses_overrides_that_change_what_the_run_computes(tmp_path: Path, micro_dir: Path) -> None:
    stored = TrainConfig.load(preset_path("household-tiny-gigpo"))
    with pytest.raises(ConfigError, match=r"cannot change rollout\.group_size .*used rollout\.group_size=4"):
        check_resume_overrides(stored, stored.with_overrides(["rollout.group_size=2"]))
    with pytest.raises(ConfigError, match=r"env\.options"):
        check_resume_overrides(stored, stored.with_overrides(["env.options.clutter=0.5"]))
    assert check_resume_overrides(stored, stored.with_overrides(["train.iterations=40"])) == {
        "train.iterations": [stored.train.iterations, 40]}
    assert "train.iterations" in RESUME_SAFE_KEYS and "optim.lr" not in RESUME_SAFE_KEYS
    # Through the CLI: refused in one line; an allowed change lands in config.yaml and meta.json's history.
    run = tmp_path / "run"
    result = runner.invoke(app, ["train", "-c", "household-tiny-gigpo", "--run-dir", str(run), "--no-report",
                                 f"model.name_or_path={micro_dir}", "model.action_mode=choose", "rollout.num_groups=1",
                                 "rollout.group_size=2", "env.max_steps=3", "train.iterations=1",
                                 "train.eval_episodes=2"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "--resume", str(run), "rollout.group_size=3"])
    assert result.exit_code == 2 and "cannot change rollout.group_size" in result.output
    result = runner.invoke(app, ["train", "--resume", str(run), "--no-report", "train.iterations=2"])
    assert result.exit_code == 0, result.output
    assert TrainConfig.load(run / "config.yaml").train.iterations == 2
    meta = RunDir.open(run).read_json("meta.json")
    assert meta["resumed_with"][0]["overrides"] == {"train.iterations": [1, 2]}
    assert [r["iteration"] for r in RunDir.open(run).metrics()] == [0, 1, 2]

