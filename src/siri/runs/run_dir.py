"""The run directory: everything a run leaves behind, written so that a crash loses nothing.

Layout::

    RUN_DIR/
      config.yaml          resolved config (what actually ran)
      meta.json            versions, seeds, command line, start time
      metrics.jsonl        one JSON object per iteration (train stats; eval stats when evaluated)
      events.out.tfevents* TensorBoard scalars (same numbers as metrics.jsonl)
      skill_bank.json      the skill bank (SIRI runs), rewritten after every iteration
      skill_bank.start.json  the bank the run started from (a resume before the first checkpoint uses it)
      summary.json         the evaluations at the run's milestones (layout: siri.runs.summary)
      checkpoints/
        LATEST             name of the newest complete checkpoint
        iter-000012/       model.pt (trainable weights), optimizer.pt, trainer.pt, iteration.pt, extra files
      policy/              the trained policy, written at the end (``siri eval --model RUN_DIR/policy``)
      report.html, report.md, report_files/   the report (siri.runs.report; rebuilt by ``siri report``)

A checkpoint directory is written under a temporary name and renamed into place (``atomic_dir``), then
``LATEST`` is replaced atomically; a kill at any moment leaves the previous checkpoint intact. On resume the
metrics written after the checkpoint are dropped, so the resumed run's log equals an uninterrupted one.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from siri.utils.io import atomic_dir, atomic_write_json, atomic_write_text


class RunDirError(Exception):
    """A run directory that cannot be used as asked (missing, corrupt checkpoint, ...)."""


def library_versions() -> dict[str, str]:
    """Versions of what decides a run's numbers, for meta.json and the report."""
    import importlib.metadata as md

    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("siri-rl", "torch", "transformers", "peft", "accelerate", "numpy", "alfworld"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return versions


class RunDir:
    """Files of one run. Create it for a new run, or open an existing one to resume or report."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.metrics_path = self.path / "metrics.jsonl"
        self.checkpoints = self.path / "checkpoints"
        self._tb: Any = None

    # ----------------------------------------------------------------- creation and metadata
    @classmethod
    def create(cls, path: str | os.PathLike[str], config_yaml: str, meta: dict[str, Any]) -> RunDir:
        run = cls(path)
        if run.metrics_path.exists() or (run.checkpoints / "LATEST").exists():
            raise RunDirError(
                f"{run.path} already holds a run; continue it with --resume {run.path} or choose a new run dir"
            )
        run.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.path / "config.yaml", config_yaml)
        full_meta = {"versions": library_versions(), "argv": sys.argv, "started": time.time(), **meta}
        atomic_write_json(run.path / "meta.json", full_meta)
        run.metrics_path.touch()
        return run

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> RunDir:
        run = cls(path)
        if not (run.path / "config.yaml").is_file():
            raise RunDirError(f"{run.path} is not a run directory (no config.yaml)")
        return run

    def read_json(self, name: str) -> Any:
        path = self.path / name
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError as e:
            raise RunDirError(f"{path} is not valid JSON ({e}); it may be corrupt") from e

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_json(self.path / name, obj)

    # ----------------------------------------------------------------- metrics
    def log(self, record: dict[str, Any]) -> None:
        """Append one iteration's metrics to metrics.jsonl and TensorBoard."""
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        step = int(record.get("iteration", 0))
        writer = self._writer(step)
        if writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "iteration":
                    writer.add_scalar(key, value, step)
            writer.flush()

    def _writer(self, step: int) -> Any:
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is a dependency, but a stripped install still logs JSONL
                self._tb = False
                return None
            # purge_step drops events past a resumed checkpoint, like truncate_metrics does for JSONL.
            self._tb = SummaryWriter(str(self.path), purge_step=step)
        return self._tb or None

    def metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        lines = self.metrics_path.read_text().splitlines()
        rows = []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                # A kill mid-write can only damage the last line; anything earlier is corruption.
                if n == len(lines):
                    break
                raise RunDirError(f"{self.metrics_path}:{n} is not valid JSON") from None
        return rows

    def truncate_metrics(self, last_iteration: int) -> None:
        """Keep only metrics of iterations <= last_iteration (used when resuming from a checkpoint)."""
        kept = [r for r in self.metrics() if int(r.get("iteration", -1)) <= last_iteration]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))

    def close(self) -> None:
        if self._tb:
            self._tb.close()
        self._tb = None

    # ----------------------------------------------------------------- checkpoints
    def save_checkpoint(
        self, iteration: int, payload: dict[str, Any], files: dict[str, str] | None = None, keep: int = 2
    ) -> Path:
        """Write ``payload`` (name -> torch-saveable object, one ``<name>.pt`` each) and text ``files``.

        The directory appears under its final name only once complete, so ``LATEST`` never points at
        a half-written checkpoint; the oldest checkpoints beyond ``keep`` are removed afterwards (``keep=0``:
        none are).
        """
        import torch

        name = f"iter-{iteration:06d}"
        final = self.checkpoints / name
        for stale in self.checkpoints.glob(".iter-*.tmp"):  # left by a save that was killed (one writer per run)
            shutil.rmtree(stale, ignore_errors=True)
        with atomic_dir(final) as tmp:
            for key, obj in payload.items():
                torch.save(obj, tmp / f"{key}.pt")
            torch.save({"iteration": iteration}, tmp / "iteration.pt")
            for fname, text in (files or {}).items():
                (tmp / fname).write_text(text)
        atomic_write_text(self.checkpoints / "LATEST", name + "\n")
        for old in self.list_checkpoints()[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def list_checkpoints(self) -> list[Path]:
        if not self.checkpoints.exists():
            return []
        return sorted(p for p in self.checkpoints.iterdir() if p.is_dir() and p.name.startswith("iter-"))

    def latest_checkpoint(self) -> Path | None:
        pointer = self.checkpoints / "LATEST"
        if not pointer.exists():
            return None
        path = self.checkpoints / pointer.read_text().strip()
        if not (path / "iteration.pt").exists():
            raise RunDirError(
                f"checkpoint {path} is incomplete or missing (LATEST names it); it was not written by siri or "
                "was modified. Restore it or start a new run; nothing was deleted."
            )
        return path

    def load_checkpoint(self, checkpoint: Path, name: str) -> Any:
        """Load ``<name>.pt`` of a checkpoint; a damaged or missing file is a RunDirError naming it."""
        import torch

        path = checkpoint / f"{name}.pt"
        try:
            return torch.load(path, weights_only=False, map_location="cpu")
        except FileNotFoundError as e:
            raise RunDirError(f"checkpoint file {path} is missing; the checkpoint is incomplete") from e
        except Exception as e:  # torch raises several types for damaged files
            raise RunDirError(f"cannot read {path}: {e}; the checkpoint is corrupt") from e
