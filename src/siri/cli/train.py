"""``siri train``, ``siri quickstart`` and ``siri report``: run training, the first-hour demo, and run reports."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from siri.cli.common import env_option_help, fail, option_overrides, settings_help

if TYPE_CHECKING:
    from siri.runs.summary import Summary


class LiveProgress:
    """A rich progress bar over iterations with the latest success/return/invalid/skills figures."""

    def __init__(self, total: int, start: int, label: str) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"))
        self.task = self.bar.add_task(label, total=total, completed=start, info="collecting...")

    def __enter__(self) -> LiveProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def __call__(self, record: dict[str, Any]) -> None:
        parts = [f"{record.get('phase', '')}",
                 f"succ {record.get('train/success', float('nan')):.2f}",
                 f"ret {record.get('train/return', float('nan')):+.2f}",
                 f"inv {record.get('train/invalid_rate', float('nan')):.2f}"]
        if "eval/success" in record:
            parts.append(f"[green]eval {record['eval/success']:.2f}[/green]")
        if "skills/active" in record:
            parts.append(f"skills a/c/r {record['skills/active']:.0f}/{record['skills/candidate']:.0f}/"
                         f"{record['skills/retired']:.0f}")
        self.bar.update(self.task, completed=record["iteration"], info="  ".join(parts))
        if "eval/success" in record:
            self.bar.console.print(f"  iteration {record['iteration']:>4}  eval success {record['eval/success']:.3f}"
                                   f"  score {record.get('eval/score', float('nan')):.3f}  ({record.get('phase', '')})")


def print_summary(summary: Summary, run_dir: Path) -> None:
    """The end-of-run table (``evaluation_table``, the report's too) and the skill bank's counts."""
    from rich.console import Console
    from rich.table import Table

    from siri.runs.summary import evaluation_table

    header, rows = evaluation_table(summary)
    table = Table(title="evaluation (plain prompt unless '+ skills')")
    table.add_column(header[0])
    for name in header[1:]:
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(*row, style="bold" if row[0] == "success" else None)
    console = Console()
    console.print(table)
    if "skills" in summary:
        s = summary["skills"]
        console.print(f"skills: {s.get('active', 0)} active, {s.get('candidate', 0)} candidate, "
                      f"{s.get('retired', 0)} retired  (siri skills {run_dir})")
    console.print(f"run directory: {run_dir}")


def run_training(config: str, overrides: list[str], run_dir: str | None, resume: str | None,
                 report: bool = True) -> Path:
    """Shared by ``train`` and ``quickstart``: build or resume the trainer, train with progress, report."""
    from siri.config import TrainConfig, preset_path
    from siri.envs import EnvError
    from siri.models.policy import ModelError
    from siri.rl.trainer import Trainer
    from siri.runs.run_dir import RunDirError
    from siri.skills.bank import SkillBankError
    from siri.utils.config import ConfigError

    started = time.time()
    try:
        if resume:
            trainer = Trainer.resume(resume, overrides)
        else:
            path = preset_path(config)
            cfg = TrainConfig.load(path, overrides)
            trainer = Trainer.create(cfg, run_dir, preset=path.stem)
    except (ConfigError, RunDirError, ValueError, EnvError, ModelError, SkillBankError) as e:
        raise fail(str(e)) from e
    except OSError as e:  # a read-only or full filesystem, a missing file
        raise fail(f"{e.strerror or e}: {e.filename}" if e.filename else str(e)) from e
    if not trainer.dist.is_main:  # under torchrun, rank 0 prints and reports; the other ranks only train
        trainer.train()
        return trainer.run.path
    cfg = trainer.cfg
    typer.echo(f"run directory: {trainer.run.path}  (resume with: siri train --resume {trainer.run.path})")
    typer.echo(f"env {cfg.env.name}, model {trainer.policy.name} ({trainer.policy.num_parameters() / 1e6:.2f}M params, "
               f"{cfg.model.action_mode}), algo {cfg.algo.name}{' + SIRI' if cfg.siri.enabled else ''}, "
               f"{cfg.train.iterations} iterations of {cfg.rollout.num_groups}x{cfg.rollout.group_size} episodes")
    try:
        with LiveProgress(cfg.train.iterations, trainer.iteration, "train") as live:
            summary = trainer.train(progress=live, report=report)
    except (RunDirError, SkillBankError) as e:  # e.g. a checkpoint that could not be written: the disk is full
        raise fail(f"{e}\nthe run stopped; continue it with: siri train --resume {trainer.run.path}") from e
    print_summary(summary, trainer.run.path)
    if report:
        typer.echo(f"report: {trainer.run.path / 'report.html'}")
    typer.echo(f"trained policy: {trainer.run.path / 'policy'}  (siri eval --model {trainer.run.path / 'policy'})")
    typer.echo(f"total time: {time.time() - started:.0f} s")
    return trainer.run.path


def train(
    config: str = typer.Option("household-tiny-gigpo", "--config", "-c",
                               help="preset name (`siri config --presets`; shipped in siri/presets/) or path to a YAML config"),
    overrides: list[str] = typer.Argument(None, metavar="KEY=VALUE", help=settings_help(
        "algo.name=grpo train.iterations=20", keys="every key: siri config")),
    option: list[str] = typer.Option([], "--option", "-o", help=env_option_help("env.options")),
    algo: str | None = typer.Option(None, help="shortcut for algo.name=grpo|gigpo|rloo"),
    run_dir: str | None = typer.Option(None, help="run directory (default runs/<preset>-<timestamp>)"),
    resume: str | None = typer.Option(None, help="continue RUN_DIR from its latest checkpoint, exactly"),
    report: bool = typer.Option(True, help="write report.html/report.md at the end"),
    workers: str | None = typer.Option(None, help="shortcut for env.workers=inprocess|ray (docs/scale-out.md)"),
    ray_address: str | None = typer.Option(None, help="shortcut for env.ray_address (e.g. auto)"),
) -> None:
    """Train a policy with GRPO/GiGPO (and SIRI when siri.enabled=true) from a YAML config.

    Settings are key=value arguments over the config, environment options -o key=value, e.g.
    `siri train -c household-tiny-gigpo train.iterations=20 -o clutter=0`.
    Metrics go to RUN_DIR/metrics.jsonl and TensorBoard (tensorboard --logdir RUN_DIR); checkpoints are
    atomic; --resume continues exactly. Print every config key with `siri config`.
    Multi-process: `torchrun --nproc_per_node N -m siri train ...` (docs/scale-out.md).
    """
    extra = [*(overrides or []), *option_overrides(option, "env.options")]
    if algo:
        extra.append(f"algo.name={algo}")
    if workers:
        extra.append(f"env.workers={workers}")
    if ray_address:
        extra.append(f"env.ray_address={ray_address}")
    run_training(config, extra, run_dir, resume, report)


# The quickstart's preset per environment, and what it takes on 2 idle cores (README, "Two commands").
QUICKSTART: dict[str, tuple[str, str]] = {
    "household": ("household-tiny-quickstart", "about 3 minutes on 2 cores (the tiny model ships with siri-rl)"),
    "shop": ("shop-tiny-siri", "about 20 minutes on 2 cores: 8 to build the tiny shop model on first use, then "
             "16 iterations"),
}


def quickstart(
    env: str = typer.Option("household", help="household or shop"),
    run_dir: str | None = typer.Option(None, help="run directory (default runs/quickstart-<env>-<timestamp>)"),
    overrides: list[str] = typer.Argument(None, metavar="KEY=VALUE", help=settings_help(
        "train.iterations=4", keys="every key: siri config")),
    option: list[str] = typer.Option([], "--option", "-o", help=env_option_help("env.options")),
) -> None:
    """The SIRI quickstart: tiny model, warm-up -> mining/validation -> internalization, report (household:
    about 3 minutes on 2 cores; shop: about 20, most of it building the shop's tiny model once).

    Settings are key=value arguments over the preset (household-tiny-quickstart, shop-tiny-siri), as in
    `siri train`; environment options -o key=value.
    """
    if env not in QUICKSTART:
        raise fail(f"quickstart runs on household or shop, not {env!r}")
    from datetime import datetime

    preset, duration = QUICKSTART[env]
    typer.echo(f"SIRI quickstart on the {env} ({preset}): warm-up, then skill mining with paired validation, then "
               f"internalization; {duration}.")
    run_dir = run_dir or f"runs/quickstart-{env}-{datetime.now():%Y%m%d-%H%M%S}"
    extra = [*(overrides or []), *option_overrides(option, "env.options")]
    run_training(preset, extra, run_dir, None, True)

