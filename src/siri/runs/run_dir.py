"""The run directory: everything a run leaves behind, written so that a crash loses nothing.

Layout::

    RUN_DIR/
      config.yaml          resolved config (what actually ran)
      meta.json            versions, seeds, command line, start time
      metrics.jsonl        one JSON object per iteration (train stats; eval stats when evaluated)
      events.out.tfevents* TensorBoard scalars (same numbers as metrics.jsonl)
      skill_bank.json      the skill bank (SIRI runs), rewritten after every iteration
      skill_bank.start.json  the bank the run started from (a resume before the first checkpoint uses it)
      .lock                held (flock) by the process training into the directory; holds its PID
      summary.json         the evaluations at the run's milestones (layout: siri.runs.summary)
      checkpoints/
        LATEST             name of the newest complete checkpoint
        iter-000012/       model.pt (trainable weights), optimizer.pt, trainer.pt, iteration.pt, extra files;
                           train.strategy=fsdp: sharded/ (each rank's shards of weights and optimizer, DCP)
                           instead of model.pt and optimizer.pt
      policy/              the trained policy, written at the end (``siri eval --model RUN_DIR/policy``)
      report.html, report.md, report_files/   the report (siri.runs.report; rebuilt by ``siri report``)

A checkpoint directory is written under a temporary name and renamed into place (``atomic_dir``), then
``LATEST`` is replaced atomically; a kill at any moment leaves the previous checkpoint intact. On resume the
metrics written after the checkpoint are dropped, so the resumed run's log equals an uninterrupted one.
Only one process trains into a run directory at a time (``RunDir.lock``): a second one is refused with the
first one's PID. The lock is an ``flock``, which the kernel releases when its process dies, so a killed run
never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import IO, Any

from siri.utils.io import atomic_dir, atomic_write_json, atomic_write_text

LOCK_FILE = ".lock"
SHARDED_DIR = "sharded"  # a checkpoint's torch.distributed.checkpoint folder (train.strategy=fsdp)


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


def version_drift(meta: dict[str, Any]) -> list[str]:
    """"torch 2.12.0 (now 2.13.0)" for each library whose version in a run's meta.json (``meta``) differs
    from the installed one: the run's numbers may not reproduce digit for digit (``siri report`` warns)."""
    recorded = meta.get("versions")
    if not isinstance(recorded, dict):
        return []
    now = library_versions()
    return [f"{name} {was} (now {now.get(name, 'not installed')})" for name, was in sorted(recorded.items())
            if name != "platform" and now.get(name) != was]


class RunDir:
    """Files of one run. Create it for a new run, or open an existing one to resume or report."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.metrics_path = self.path / "metrics.jsonl"
        self.checkpoints = self.path / "checkpoints"
        self._tb: Any = None
        self.tensorboard = True  # write TensorBoard events beside metrics.jsonl (train.loggers)
        self._wandb: Any = None
        self._lock: IO[str] | None = None

    # ----------------------------------------------------------------- creation and metadata
    @classmethod
    def create(cls, path: str | os.PathLike[str], config_yaml: str, meta: dict[str, Any]) -> RunDir:
        run = cls(path)
        try:
            run.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise RunDirError(f"cannot create the run directory {run.path}: {e.strerror or e}") from None
        run._refuse_existing_run()
        run.lock()
        try:
            run._refuse_existing_run()  # again under the lock: another process may have created it meanwhile
        except RunDirError:
            run.unlock()
            raise
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

    def _refuse_existing_run(self) -> None:
        if self.metrics_path.exists() or (self.checkpoints / "LATEST").exists():
            raise RunDirError(
                f"{self.path} already holds a run; continue it with --resume {self.path} or choose a new run dir"
            )

    def lock(self) -> None:
        """Become the one process writing this run; a RunDirError names the PID that already is."""
        if self._lock is not None:
            return
        try:
            handle = open(self.path / LOCK_FILE, "a+")  # noqa: SIM115 (held open for the run's lifetime)
        except OSError as e:
            raise RunDirError(f"cannot write in the run directory {self.path}: {e.strerror or e}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            handle.close()
            raise RunDirError(f"{self.path} is in use by PID {pid} (a run is training into it); wait for it to "
                              "end or stop it first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def discard_new(self) -> None:
        """Undo ``create`` for a run that failed before its first iteration: its files go, the directory
        stays only if something else is in it (so a retry is a fresh start, not a --resume of a crash)."""
        if self.metrics():
            return
        for name in ("config.yaml", "meta.json", "metrics.jsonl", LOCK_FILE):
            (self.path / name).unlink(missing_ok=True)
        self.close()  # and unlock
        with contextlib.suppress(OSError):
            self.path.rmdir()

    def read_json(self, name: str) -> Any:
        path = self.path / name
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RunDirError(f"{path} is not valid JSON ({e}); it may be corrupt") from e

    def write_json(self, name: str, obj: Any) -> None:
        atomic_write_json(self.path / name, obj)

    # ----------------------------------------------------------------- metrics
    def use_loggers(self, loggers: list[str], *, wandb_project: str = "siri", wandb_entity: str | None = None,
                    config: dict[str, Any] | None = None) -> None:
        """Where metrics go besides metrics.jsonl (always written): ``tensorboard``, ``wandb``."""
        self.tensorboard = "tensorboard" in loggers
        if "wandb" in loggers and self._wandb is None:
            from siri.runs.wandb_sink import WandbSink

            self._wandb = WandbSink(self.path, wandb_project, wandb_entity, config or {})

    def log(self, record: dict[str, Any]) -> None:
        """Append one iteration's metrics to metrics.jsonl, and to TensorBoard and W&B where in use."""
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self._wandb is not None:
            self._wandb.log(record)
        step = int(record.get("iteration", 0))
        writer = self._writer(step) if self.tensorboard else None
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
        try:
            lines = self.metrics_path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError as e:
            raise RunDirError(f"{self.metrics_path} is not a text file (byte {e.start} is not UTF-8); it is "
                              "corrupt") from None
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

    def attach_report(self, files: list[Path]) -> None:
        """Hand the run's report to the loggers that keep files (W&B: an artifact)."""
        if self._wandb is not None:
            self._wandb.log_files(files, "report", "report", "siri report: learning curves, evaluations, skills")

    def close(self) -> None:
        if self._tb:
            self._tb.close()
        self._tb = None
        if self._wandb is not None:
            self._wandb.close()
            self._wandb = None
        self.unlock()

    # ----------------------------------------------------------------- checkpoints
    def _remove_stale(self, keep: Path | None = None) -> None:
        """Remove what a killed save left (one writer per run: the lock), except ``keep``."""
        for stale in [*self.checkpoints.glob(".iter-*.tmp"), *self.checkpoints.glob(".LATEST.*.tmp")]:
            if stale == keep:
                continue
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)

    def shard_staging(self, iteration: int) -> Path:
        """A fresh hidden folder that every rank writes its checkpoint shards into, before
        ``save_checkpoint(..., shards=...)`` moves it into the checkpoint (a killed save leaves nothing visible)."""
        staging = self.checkpoints / f".iter-{iteration:06d}.shards.tmp"
        self._remove_stale()
        staging.mkdir(parents=True)
        return staging

    def save_checkpoint(
        self, iteration: int, payload: dict[str, Any], files: dict[str, str] | None = None, keep: int = 2,
        shards: Path | None = None,
    ) -> Path:
        """Write ``payload`` (name -> torch-saveable object, one ``<name>.pt`` each), text ``files`` and the
        ``shards`` folder (``shard_staging``'s, filled by every rank), which becomes ``SHARDED_DIR``.

        The directory appears under its final name only once complete, so ``LATEST`` never points at
        a half-written checkpoint; the oldest checkpoints beyond ``keep`` are removed afterwards (``keep=0``:
        none are).
        """
        import torch

        name = f"iter-{iteration:06d}"
        final = self.checkpoints / name
        self._remove_stale(keep=shards)
        try:
            with atomic_dir(final) as tmp:
                if shards is not None:
                    os.replace(shards, tmp / SHARDED_DIR)
                for key, obj in payload.items():
                    torch.save(obj, tmp / f"{key}.pt")
                torch.save({"iteration": iteration}, tmp / "iteration.pt")
                for fname, text in (files or {}).items():
                    (tmp / fname).write_text(text)
            atomic_write_text(self.checkpoints / "LATEST", name + "\n")
        except (OSError, RuntimeError) as e:  # torch reports a failed write as RuntimeError("...iostream error")
            raise RunDirError(f"writing checkpoint {final} failed: {_write_failure(e, self.checkpoints)}; "
                              "nothing partial was kept, and the previous checkpoint is intact") from e
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
        path = self.checkpoints / pointer.read_text(errors="replace").strip()
        if not (path / "iteration.pt").exists():
            raise RunDirError(
                f"checkpoint {path} is incomplete or missing (LATEST names it); it was not written by siri or "
                f"was modified. {self.older_checkpoints_hint(path)}Nothing was deleted."
            )
        return path

    def older_checkpoints_hint(self, damaged: Path) -> str:
        """What to do about a damaged checkpoint: resume from an older kept one, if there is one."""
        older = [p for p in self.list_checkpoints() if p.name < damaged.name and (p / "iteration.pt").exists()]
        if not older:
            return "No older checkpoint is kept: restore it or start a new run. "
        names = ", ".join(p.name for p in older)
        return (f"Older checkpoints are kept ({names}): to resume from {older[-1].name}, write "
                f"'{older[-1].name}' into {self.checkpoints / 'LATEST'} and move {damaged.name} aside. ")

    def load_checkpoint(self, checkpoint: Path, name: str) -> Any:
        """Load ``<name>.pt`` of a checkpoint; a damaged or missing file is a RunDirError naming it."""
        import torch

        path = checkpoint / f"{name}.pt"
        try:
            return torch.load(path, weights_only=False, map_location="cpu")
        except FileNotFoundError as e:
            raise RunDirError(f"checkpoint file {path} is missing; the checkpoint is incomplete") from e
        except Exception as e:  # torch raises several types for damaged files
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RunDirError(f"cannot read {path} ({first}): the checkpoint is corrupt. "
                              f"{self.older_checkpoints_hint(checkpoint)}") from e


def _write_failure(error: BaseException, where: Path) -> str:
    """Why a write failed, in words. torch reports a failed write as a RuntimeError with no errno ("iostream
    error", "unexpected pos ..."), so a full disk is named from the free space, else suggested."""
    code = getattr(error, "errno", None)
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        free = None
    if code in (errno.ENOSPC, errno.EDQUOT) or (free is not None and free < 64 * 2**20):
        return f"no space left on the device ({(free or 0) / 2**20:.0f} MB free)"
    if code is not None and code != errno.EFBIG:
        return getattr(error, "strerror", None) or str(error)
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{lines[-1] if lines else type(error).__name__} (is the disk full, or a file size limit set?)"
