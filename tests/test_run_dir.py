import json

import pytest
import torch

from siri.runs.run_dir import RunDir, RunDirError
from siri.utils.io import atomic_dir


def make_run(tmp_path):
    return RunDir.create(tmp_path / "run", "a: 1\n", {"seeds": {"train": 0}})


def test_create_refuses_to_overwrite_a_run(tmp_path):
    run = make_run(tmp_path)
    run.log({"iteration": 1, "train/success": 0.5})
    with pytest.raises(RunDirError, match=r"already holds a run.*--resume"):
        RunDir.create(run.path, "a: 1\n", {})


def test_metrics_roundtrip_and_truncate(tmp_path):
    run = make_run(tmp_path)
    for it in range(1, 6):
        run.log({"iteration": it, "train/return": float(it)})
    run.close()
    assert [m["iteration"] for m in run.metrics()] == [1, 2, 3, 4, 5]
    run.truncate_metrics(3)
    assert [m["train/return"] for m in run.metrics()] == [1.0, 2.0, 3.0]
    # TensorBoard events are written next to the JSONL
    assert list(run.path.glob("events.out.tfevents*"))


def test_a_torn_last_line_is_ignored_but_earlier_corruption_is_reported(tmp_path):
    run = make_run(tmp_path)
    run.log({"iteration": 1})
    with run.metrics_path.open("a") as f:
        f.write('{"iteration": 2, "trai')  # killed mid-write
    assert [m["iteration"] for m in run.metrics()] == [1]
    run.metrics_path.write_text('{"iteration": 1\n{"iteration": 2}\n')
    with pytest.raises(RunDirError, match=r"metrics\.jsonl:1"):
        run.metrics()


def test_checkpoints_are_atomic_pruned_and_validated(tmp_path):
    run = make_run(tmp_path)
    assert run.latest_checkpoint() is None
    for it in (2, 4, 6):
        run.save_checkpoint(it, {"model": {"w": torch.full((2,), float(it))}}, {"note.txt": f"{it}"}, keep=2)
    latest = run.latest_checkpoint()
    assert latest.name == "iter-000006"
    assert [p.name for p in run.list_checkpoints()] == ["iter-000004", "iter-000006"]
    assert torch.equal(run.load_checkpoint(latest, "model")["w"], torch.full((2,), 6.0))
    assert (latest / "note.txt").read_text() == "6"
    # A leftover temporary directory (killed mid-save) is not a checkpoint; the next save removes it.
    (run.checkpoints / ".iter-000008.tmp").mkdir()
    assert run.latest_checkpoint().name == "iter-000006"
    run.save_checkpoint(6, {"model": {"w": torch.full((2,), 6.0)}}, {"note.txt": "6"}, keep=2)
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["LATEST", "iter-000004", "iter-000006"]
    run.save_checkpoint(8, {"model": {"w": torch.full((2,), 8.0)}}, keep=0)  # keep=0 keeps them all
    assert [p.name for p in run.list_checkpoints()] == ["iter-000004", "iter-000006", "iter-000008"]
    # Damage is reported with the file's name, never silently replaced.
    (latest / "model.pt").write_bytes(b"not a torch file")
    with pytest.raises(RunDirError, match=r"model\.pt.*corrupt"):
        run.load_checkpoint(latest, "model")
    (run.checkpoints / "LATEST").write_text("iter-000099\n")
    with pytest.raises(RunDirError, match="iter-000099"):
        run.latest_checkpoint()


def test_open_requires_a_run_directory(tmp_path):
    with pytest.raises(RunDirError, match="not a run directory"):
        RunDir.open(tmp_path)
    run = make_run(tmp_path)
    (run.path / "summary.json").write_text("{oops")
    with pytest.raises(RunDirError, match=r"summary\.json is not valid JSON"):
        RunDir.open(run.path).read_json("summary.json")
    assert json.loads((run.path / "meta.json").read_text())["versions"]["torch"]


def test_atomic_dir_appears_complete_or_not_at_all(tmp_path):
    target = tmp_path / "sub" / "out"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
        assert tmp.parent == target.parent and not target.exists()
    assert [p.name for p in target.iterdir()] == ["a"]
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError("killed mid-write")
    assert [p.name for p in target.parent.iterdir()] == ["out"]  # the old one intact, no temporary left
    assert [p.name for p in target.iterdir()] == ["a"]
    with atomic_dir(target) as tmp:
        (tmp / "c").write_text("3")
    assert [p.name for p in target.iterdir()] == ["c"]  # replaced whole, not merged
