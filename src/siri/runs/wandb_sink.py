"""Weights & Biases beside metrics.jsonl and TensorBoard (``train.loggers: [tensorboard, wandb]``).

The run directory stays the record: W&B gets the same numeric metrics per iteration (step = iteration), the
resolved config, and the run's report as an artifact. ``WANDB_MODE=offline`` writes everything under
``RUN_DIR/wandb/`` with no network (``wandb sync RUN_DIR/wandb/offline-run-*`` uploads it later).

One W&B run per run directory: its id is kept in ``RUN_DIR/wandb_id``, so ``siri train --resume``
continues the same W&B run. Iterations that a resume runs again (after a kill between checkpoints) are
not logged twice: resume is exact, so W&B already holds their numbers where it saw them.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from siri.utils.io import atomic_write_text

ID_FILE = "wandb_id"
INSTALL = "pip install 'siri-rl[wandb]'"


class WandbMissing(ImportError):
    """train.loggers names wandb, which is not installed."""


def require_wandb() -> Any:
    try:
        import wandb
    except ImportError as e:
        raise WandbMissing(f"train.loggers includes wandb, which is not installed: {INSTALL} (or drop wandb from "
                           "train.loggers)") from e
    return wandb


def _init(run_path: Path, project: str, entity: str | None, config: dict[str, Any]) -> Any:
    """Start (or continue, by the id kept in the run directory) the run's W&B run, quietly."""
    wandb = require_wandb()
    id_file = run_path / ID_FILE
    run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:12]
    if not id_file.exists():
        atomic_write_text(id_file, run_id + "\n")
    settings = wandb.Settings(console="off", silent=True, x_disable_stats=True)  # the CLI's output stays ours
    return wandb.init(project=project, entity=entity, id=run_id, resume="allow", name=run_path.name,
                      dir=str(run_path), config=config, settings=settings)


class WandbSink:
    """The metrics of one run directory, logged to its W&B run as they are written to metrics.jsonl."""

    def __init__(self, run_path: Path, project: str, entity: str | None, config: dict[str, Any]) -> None:
        self.run = _init(run_path, project, entity, config)
        self.next_step = int(self.run.step)  # W&B's steps only increase; a resumed run continues after them

    def log(self, record: dict[str, Any]) -> None:
        step = int(record.get("iteration", 0))
        if step < self.next_step:
            return
        numbers = {k: v for k, v in record.items()
                   if isinstance(v, int | float) and not isinstance(v, bool) and k != "iteration"}
        self.run.log(numbers, step=step)
        self.next_step = step + 1

    def log_files(self, files: list[Path], name: str, kind: str, description: str) -> None:
        """Attach files (and the files of folders among them) to the run as one artifact."""
        wandb = require_wandb()
        artifact = wandb.Artifact(f"{name}-{self.run.id}", type=kind, description=description)
        for file in files:  # file by file: add_dir prints to the terminal even when silent
            for one in sorted(file.iterdir()) if file.is_dir() else [file] if file.exists() else []:
                artifact.add_file(str(one), name=f"{file.name}/{one.name}" if file.is_dir() else one.name)
        self.run.log_artifact(artifact)

    def close(self) -> None:
        self.run.finish()
