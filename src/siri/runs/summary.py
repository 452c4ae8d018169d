"""summary.json: the run's evaluations at its milestones, the one place that knows the file's layout.

The trainer builds the entries (``eval_entry``) and writes the file (``write_summary``); the report and the
end-of-run table of ``siri train`` read it through ``evaluation_table``, so both show the same rows.

Layout (written with sorted keys)::

    {"evals": {NAME: EvalEntry, ...},                      NAME in EVALUATIONS, each present once reached
     "skills": {"active": n, "candidate": n, "retired": n}}  SIRI runs: the bank at the end

The summary stays a plain dict (it is also pickled into every checkpoint's ``trainer.pt``), so the
types below document it without changing what is stored.
"""

from __future__ import annotations

from typing import TypedDict

from siri.runs.run_dir import RunDir

SUMMARY_FILE = "summary.json"

# The evaluations in run order, with the column title the tables give each.
EVALUATIONS: dict[str, str] = {
    "bootstrap": "bootstrap",                # the starting policy, before the first update
    "warmup_end": "end of warm-up",          # SIRI: the iteration the warm-up (plain GiGPO) ended
    "final": "final (plain)",                # the trained policy, plain prompt
    "final_with_skills": "final + skills",   # SIRI with siri.keep_skills_at_inference: skills in the prompt
}


class EvalEntry(TypedDict, total=False):
    """One evaluation on the fixed eval seeds (plain prompt unless its name says skills)."""

    iteration: int                      # completed training iterations when it ran
    success: float
    score: float
    invalid_rate: float
    episode_len: float
    episodes: int
    per_task_type: dict[str, float]     # task type -> success
    outcomes: list[tuple[str, bool, float]]  # (task type, won, score) per episode: benchmark CIs


class Summary(TypedDict, total=False):
    evals: dict[str, EvalEntry]
    skills: dict[str, int]


def new_summary() -> Summary:
    return {"evals": {}}


def eval_entry(metrics: dict[str, float], prefix: str, iteration: int,
               outcomes: list[tuple[str, bool, float]] | None = None) -> EvalEntry:
    """The compact form of an evaluation, from its flat ``prefix/...`` metrics (``prefix/success/TYPE`` per type).

    ``outcomes`` (task type, won, score) per episode let the benchmarks bootstrap confidence
    intervals over episodes.
    """
    per_type = {k.split("/", 2)[2]: v for k, v in metrics.items() if k.startswith(f"{prefix}/success/")}
    entry: EvalEntry = {
        "iteration": iteration,
        "success": metrics.get(f"{prefix}/success", float("nan")),
        "score": metrics.get(f"{prefix}/score", float("nan")),
        "invalid_rate": metrics.get(f"{prefix}/invalid_rate", float("nan")),
        "episode_len": metrics.get(f"{prefix}/episode_len", float("nan")),
        "episodes": int(metrics.get(f"{prefix}/episodes", 0)),
        "per_task_type": per_type,
    }
    if outcomes is not None:
        entry["outcomes"] = outcomes
    return entry


def write_summary(run: RunDir, summary: Summary) -> None:
    run.write_json(SUMMARY_FILE, summary)


def read_summary(run: RunDir) -> Summary:
    """The run's summary; empty before its first evaluation (a corrupt file is a RunDirError)."""
    return run.read_json(SUMMARY_FILE) or {}


def ordered_evals(summary: Summary) -> dict[str, EvalEntry]:
    """The summary's evaluations in run order (the file itself is written with sorted keys)."""
    order = list(EVALUATIONS)
    evals = summary.get("evals", {})
    return {k: evals[k] for k in sorted(evals, key=lambda k: order.index(k) if k in order else len(order))}


def evaluation_table(summary: Summary) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the evaluation table: one column per evaluation, one row per metric and task type
    (narrow, so it stays readable in a terminal). The end of ``siri train`` and the report both show it."""
    evals = ordered_evals(summary)
    types = sorted({t for e in evals.values() for t in e.get("per_task_type", {})})
    nan = float("nan")
    header = ["", *[EVALUATIONS.get(k, k) for k in evals]]
    rows = [["iteration", *[str(e.get("iteration", "")) for e in evals.values()]],
            ["success", *[f"{e.get('success', nan):.3f}" for e in evals.values()]],
            ["score", *[f"{e.get('score', nan):.3f}" for e in evals.values()]]]
    rows += [[f"  {t}", *[f"{e.get('per_task_type', {}).get(t, nan):.2f}" for e in evals.values()]] for t in types]
    return header, rows
