"""``siri report`` and ``siri config``: what a finished run and the config schema look like."""

from __future__ import annotations

import typer

from siri.cli.common import fail


def report(
    runs: list[str] = typer.Argument(..., help="one run directory, or several to overlay"),
    out: str | None = typer.Option(None, help="output directory (one run: the run dir itself)"),
) -> None:
    """Write a self-contained HTML report (embedded plots) and a Markdown twin for one or more runs."""
    from siri.runs.report import build_report
    from siri.runs.run_dir import RunDir, RunDirError, version_drift
    from siri.skills.bank import SkillBankError

    try:
        html, md = build_report(runs, out)
    except (RunDirError, SkillBankError, FileNotFoundError) as e:
        raise fail(str(e)) from e
    except OSError as e:  # most often a run directory one may read but not write
        where = e.filename or out or runs[0]
        raise fail(f"cannot write the report into {where}: {e.strerror or e}; write it elsewhere with "
                   "--out DIR") from e
    for path in runs:
        drift = version_drift(RunDir.open(path).read_json("meta.json") or {})  # meta only: the report read the rest
        if drift:
            typer.echo(f"warning: {path} was made with {', '.join(drift)}; its numbers may not reproduce digit for "
                       "digit (the tested versions: constraints.txt, installed by scripts/run.sh)", err=True)
    typer.echo(f"report: {html}\nmarkdown: {md}")


def config_help(
    presets: bool = typer.Option(False, "--presets", help="List the shipped presets instead of the keys."),
) -> None:
    """Print every config key with its default, meaning and allowed values (or the shipped presets)."""
    from siri.config import PRESETS_DIR, TrainConfig

    if presets:
        typer.echo("\n".join(sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))))
        return
    typer.echo(TrainConfig.help_text())
