"""``siri skills RUN_DIR``: the skill bank of a run as a table (or JSON)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import typer

from siri.cli.common import fail


def skills(
    run_dir: Path = typer.Argument(..., help="A run directory (or its skill_bank.json)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    status: str | None = typer.Option(
        None, help="Only skills with this status (candidate, active, retired)."
    ),
    task_type: str | None = typer.Option(
        None, "--task-type", help="Only skills for this task type (and general)."
    ),
    alpha: float | None = typer.Option(
        None, help="gate_alpha of the bounds shown; default: the run's (config.yaml beside the bank)."
    ),
) -> None:
    """Print every skill: status, task type, utility ± the gate's bound at its current look, n, text.

    The bounds are the ones the validation gate decides with (docs/skill-gate.md): with the run's
    gate_alpha, min_evals and max_evals, at the skill's number of evaluations; before the gate's first
    look nothing is decided and no bound is shown.
    """
    from siri.skills.bank import BANK_FILENAME, SkillBank, SkillBankError, gate_of_run

    path = run_dir if run_dir.is_file() else run_dir / BANK_FILENAME
    gate = gate_of_run(path.parent)
    if alpha is not None:
        try:
            gate = dataclasses.replace(gate, alpha=alpha)
        except ValueError as e:
            raise fail(str(e), code=1) from e
    try:
        bank = SkillBank.load(path)
        rows = bank.skills(status, task_type)
    except SkillBankError as e:
        raise fail(str(e), code=1) from e

    def finite(x: float) -> float | None:
        return x if math.isfinite(x) else None

    if as_json:
        out = []
        for s in rows:
            lcb, ucb = s.bounds(gate)
            out.append({"id": s.id, "status": s.status, "task_type": s.task_type, "utility": s.utility.mean,
                        "lcb": finite(lcb), "ucb": finite(ucb), "evaluations": s.utility.n, "std": s.utility.std,
                        "miner": s.miner, "iteration": s.iteration, "promoted_at": s.promoted_at,
                        "retired_at": s.retired_at, "reason": s.reason, "text": s.text})  # fmt: skip
        gate_json = {"alpha": gate.alpha, "min_evals": gate.min_evals, "max_evals": gate.max_evals,
                     "first_look": gate.first_look}
        typer.echo(json.dumps({"bank": str(path), "gate": gate_json, "skills": out}, indent=2))
        return

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{path} ({len(rows)} skills)",
                  caption=f"± the validation gate's bound (gate_alpha={gate.alpha:g}); none before its "
                          f"first look at {gate.first_look} evaluations")
    for column in ("id", "status", "task type", "utility ± bound", "n", "miner", "text"):
        table.add_column(column, overflow="fold", justify="right" if column in ("n",) else "left")
    colors = {"active": "green", "candidate": "yellow", "retired": "dim"}
    for s in rows:
        half = s.bounds(gate)[1] - s.utility.mean  # symmetric bounds; infinite before the first look
        utility = (
            "-"
            if s.utility.n == 0
            else f"{s.utility.mean:+.3f}" + (f" ± {half:.3f}" if math.isfinite(half) else "")
        )
        table.add_row(s.id, f"[{colors[s.status]}]{s.status}[/]", s.task_type, utility, str(s.utility.n),
                      f"{s.miner}@{s.iteration}", s.text)  # fmt: skip
    Console().print(table)
