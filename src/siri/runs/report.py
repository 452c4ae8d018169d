"""Run reports: one self-contained HTML page (plots embedded as PNG data URIs) and a Markdown twin.

A report reads only the run directory (metrics.jsonl, summary.json, skill_bank.json, config.yaml,
meta.json), so it can be rebuilt at any time, for one run or overlaying several (``siri report A B``).
Its evaluation table is ``siri.runs.summary.evaluation_table``, the same table ``siri train`` ends with.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from siri.runs.run_dir import RunDir, version_drift
from siri.runs.summary import Summary, evaluation_table, read_summary

PHASE_COLORS = {"bootstrap": "#ffffff", "warmup": "#dbeafe", "skills": "#fef3c7", "gigpo": "#f3f4f6", "grpo": "#f3f4f6"}
STATUS_COLORS = {"active": "#16a34a", "candidate": "#9ca3af", "retired": "#dc2626"}
MECHANISM = "Skill mechanism: paired validation and internalization"
# (metric key, panel title, the one line under the figure that says what it shows)
MECHANISM_PANELS = [
    ("skills/paired_zero_share_cumulative", "paired validations exactly 0 (share, cumulative)",
     "share of all paired validations so far (skill rollouts vs the plain rollouts of the same group) whose "
     "difference was 0: the skill changed nothing measurable"),
    ("skills/paired_zero_share", "paired validations exactly 0 (share, this iteration)",
     "the same share among this iteration's paired validations"),
    ("skills/paired_mean_cumulative", "mean paired utility (cumulative)",
     "mean of U = mean R(with skill) - mean R(without) over all paired validations so far: what skills add"),
    ("skills/paired_mean", "mean paired utility (this iteration)", "the same mean over this iteration's validations"),
    ("siri/int_gap", "internalization gap (probe)",
     "on a fixed probe of skill-guided steps: mean log-prob of the action under the plain prompt minus under the "
     "skill prompt; rising toward 0 = the plain policy absorbs what the skills say"),
]


@dataclass
class RunData:
    """What a report needs from one run directory."""

    name: str
    path: Path
    metrics: list[dict[str, Any]]
    summary: Summary
    skills: list[dict[str, Any]]
    config_yaml: str
    meta: dict[str, Any]
    evals: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> RunData:
        run = RunDir.open(path)
        metrics = run.metrics()
        return cls(
            name=run.path.name,
            path=run.path,
            metrics=metrics,
            summary=read_summary(run),
            skills=_load_skills(run.path),
            config_yaml=(run.path / "config.yaml").read_text(encoding="utf-8", errors="replace"),
            meta=run.read_json("meta.json") or {},
            evals=[m for m in metrics if "eval/success" in m],
        )

    def series(self, key: str) -> tuple[list[int], list[float]]:
        xs, ys = [], []
        for m in self.metrics:
            value = m.get(key)
            if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value)):
                xs.append(int(m["iteration"]))
                ys.append(float(value))
        return xs, ys

    def phase_spans(self) -> list[tuple[str, int, int]]:
        """Contiguous (phase, first_iteration, last_iteration) spans."""
        spans: list[tuple[str, int, int]] = []
        for m in self.metrics:
            phase, it = str(m.get("phase", "")), int(m["iteration"])
            if spans and spans[-1][0] == phase:
                spans[-1] = (phase, spans[-1][1], it)
            else:
                spans.append((phase, it, it))
        return spans


def _load_skills(run_path: Path) -> list[dict[str, Any]]:
    """The run's skills as plain dicts with the validation gate's bounds of the utility at each skill's
    current look (what the gate decided with; infinite before its first look). Bank errors propagate."""
    from siri.skills.bank import BANK_FILENAME, SkillBank, gate_of_run

    if not (run_path / BANK_FILENAME).exists():
        return []
    gate = gate_of_run(run_path)
    rows = []
    for s in SkillBank.load(run_path / BANK_FILENAME):
        lo, hi = s.bounds(gate)
        rows.append({"id": s.id, "text": s.text, "status": s.status, "task_type": s.task_type, "miner": s.miner,
                     "mean": s.utility.mean, "n": s.utility.n, "ci": (lo, hi), "mined": s.iteration,
                     "promoted": s.promoted_at, "retired": s.retired_at, "reason": s.reason})
    return rows


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _mark_phases(ax: Any, run: RunData) -> None:
    spans = run.phase_spans()
    for phase, start, end in spans:
        ax.axvspan(start - 0.5, end + 0.5, color=PHASE_COLORS.get(phase, "#f9fafb"), alpha=0.5, lw=0)
    for _, start, _ in spans[1:]:
        ax.axvline(start - 0.5, color="#6b7280", ls="--", lw=0.8)


def _line_plot(runs: list[RunData], panels: list[tuple[str, str]], title: str) -> str | None:
    """One figure, one panel per (metric key, label), every run overlaid; None if no run has the keys."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [(k, label) for k, label in panels if any(r.series(k)[0] for r in runs)]
    if not present:
        return None
    cols = min(2, len(present))
    rows = math.ceil(len(present) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.2 * rows), squeeze=False, layout="constrained")
    for ax, (key, label) in zip(axes.flat, present, strict=False):
        if len(runs) == 1:
            _mark_phases(ax, runs[0])
        for run in runs:
            xs, ys = run.series(key)
            if xs:
                ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, label=run.name)
        ax.set_title(label)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        if len(runs) > 1:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(present) :]:
        ax.axis("off")
    fig.suptitle(title)
    return _png(fig)


def _task_type_bars(runs: list[RunData]) -> str | None:
    """Eval success per task type: first vs last evaluation of each run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars: list[tuple[str, dict[str, float]]] = []
    for run in runs:
        if not run.evals:
            continue
        for label, row in (("start", run.evals[0]), ("end", run.evals[-1])):
            per_type = {k.split("/", 2)[2]: float(v) for k, v in row.items() if k.startswith("eval/success/")}
            if per_type:
                bars.append((f"{run.name} {label} (it {row['iteration']})", per_type))
    if not bars:
        return None
    types = sorted({t for _, d in bars for t in d})
    width = 0.8 / len(bars)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(types) + 2), 3.6), layout="constrained")
    for i, (label, per_type) in enumerate(bars):
        ax.bar([x + i * width for x in range(len(types))], [per_type.get(t, 0.0) for t in types], width, label=label)
    ax.set_xticks([x + width * (len(bars) - 1) / 2 for x in range(len(types))], types, rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("success")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title("eval success per task type")
    return _png(fig)


def _utility_plot(run: RunData) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    skills = sorted((s for s in run.skills if s["n"] > 0), key=lambda s: s["mean"])
    if not skills:
        return None
    means = [s["mean"] for s in skills]
    # Skills before the gate's first look have an infinite interval: draw no bar rather than an endless one.
    half = [(s["ci"][1] - s["mean"]) if math.isfinite(s["ci"][1]) else 0.0 for s in skills]
    colors = [STATUS_COLORS.get(s["status"], "#6b7280") for s in skills]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(skills) + 1.5), layout="constrained")
    ax.barh(range(len(skills)), means, xerr=half, color=colors, capsize=2)
    ax.set_yticks(range(len(skills)), [s["id"] for s in skills], fontsize=7)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_xlabel("utility U(g) = mean R(with g) - mean R(without g), the validation gate's bounds")
    ax.set_title(f"{run.name}: skill utilities (green active, grey candidate, red retired)")
    return _png(fig)


def _fmt(x: Any, digits: int = 3) -> str:
    if isinstance(x, float):
        return f"{x:.{digits}f}" if math.isfinite(x) else str(x)
    return str(x)


def _skill_rows(run: RunData) -> tuple[list[str], list[list[str]]]:
    header = ["id", "status", "task type", "utility", "gate bounds", "evals", "mined", "promoted", "retired", "miner",
              "text", "why (last status change)"]
    order = {"active": 0, "candidate": 1, "retired": 2}
    rows = []
    for s in sorted(run.skills, key=lambda s: (order.get(s["status"], 3), -s["mean"])):
        lo, hi = s["ci"]
        rows.append([s["id"], s["status"], s["task_type"], f"{s['mean']:+.3f}", f"[{_fmt(lo)}, {_fmt(hi)}]",
                     str(s["n"]), str(s["mined"]), "" if s["promoted"] is None else str(s["promoted"]),
                     "" if s["retired"] is None else str(s["retired"]), s["miner"], s["text"], s["reason"]])
    return header, rows


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    def esc(c: str) -> str:
        return c.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#111}
h1{font-size:1.6em} h2{border-bottom:1px solid #e5e7eb;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.85em;margin:.5em 0} td,th{border:1px solid #e5e7eb;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f9fafb} img{max-width:100%;border:1px solid #f3f4f6} pre{background:#f9fafb;padding:1em;overflow:auto;font-size:.8em}
.muted{color:#6b7280} .warn{color:#b45309}
"""


def build_report(paths: list[str | Path], out_dir: str | Path | None = None) -> tuple[Path, Path]:
    """Write report.html and report.md for one or more runs; returns their paths.

    One run: into that run directory. Several: into ``out_dir`` (default: the first run's parent).
    """
    if not paths:
        raise ValueError("build_report needs at least one run directory")
    runs = [RunData.load(p) for p in paths]
    if out_dir is None:
        out_dir = runs[0].path if len(runs) == 1 else runs[0].path.parent / ("report-" + "-vs-".join(r.name for r in runs))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    title = runs[0].name if len(runs) == 1 else " vs ".join(r.name for r in runs)

    figures: list[tuple[str, str | None]] = [
        ("Learning curves", _line_plot(runs, [("train/return", "train return (mean)"), ("train/success", "train success"),
                                              ("eval/success", "eval success (plain prompt)"), ("eval/score", "eval score")],
                                       "learning curves (one run: blue = warm-up, yellow = skills phase)")),
        ("Success per task type", _task_type_bars(runs)),
        ("Behaviour and optimisation", _line_plot(runs, [("train/invalid_rate", "invalid-action rate"),
                                                         ("train/episode_len", "episode length"),
                                                         ("kl", "KL to reference"), ("loss/policy", "policy loss"),
                                                         ("loss/int", "internalization loss"), ("lambda", "lambda(k)")],
                                                  "behaviour and optimisation")),
        ("Skill bank over time", _line_plot(runs, [("skills/active", "active skills"), ("skills/candidate", "candidates"),
                                                   ("skills/retired", "retired")], "skill bank")),
    ]
    figures.append((MECHANISM, _line_plot(runs, [(k, label) for k, label, _ in MECHANISM_PANELS], "skill mechanism")))
    captions = {MECHANISM: [(label, note) for k, label, note in MECHANISM_PANELS if any(r.series(k)[0] for r in runs)]}
    figures += [(f"Skill utilities — {r.name}", _utility_plot(r)) for r in runs]

    html_parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>SIRI report: {html.escape(title)}</title>"
                  f"<style>{CSS}</style></head><body><h1>SIRI report: {html.escape(title)}</h1>"]
    md_parts = [f"# SIRI report: {title}\n"]
    html_parts.append("<p class='muted'>Evaluations use the plain prompt (no skills) unless named 'with skills'.</p>")

    for run in runs:
        header, rows = evaluation_table(run.summary)
        if rows:
            html_parts.append(f"<h2>Evaluations — {html.escape(run.name)}</h2>" + _html_table(header, rows))
            md_parts.append(f"## Evaluations — {run.name}\n\n{_md_table(header, rows)}\n")

    png_dir = out / "report_files"
    for i, (name, png) in enumerate(figures):
        if png is None:
            continue
        html_parts.append(f"<h2>{html.escape(name)}</h2><img alt='{html.escape(name)}' src='data:image/png;base64,{png}'>")
        png_dir.mkdir(exist_ok=True)
        file = png_dir / f"figure-{i}.png"
        file.write_bytes(base64.b64decode(png))
        md_parts.append(f"## {name}\n\n![{name}](report_files/{file.name})\n")
        notes = captions.get(name, [])
        if notes:
            html_parts.append("<ul class='muted'>" + "".join(
                f"<li><b>{html.escape(label)}</b>: {html.escape(note)}</li>" for label, note in notes) + "</ul>")
            md_parts.append("\n".join(f"- **{label}**: {note}" for label, note in notes) + "\n")

    for run in runs:
        if run.skills:
            header, rows = _skill_rows(run)
            html_parts.append(f"<h2>Skill bank — {html.escape(run.name)}</h2>" + _html_table(header, rows))
            md_parts.append(f"## Skill bank — {run.name}\n\n{_md_table(header, rows)}\n")

    for run in runs:
        meta = json.dumps({k: run.meta.get(k) for k in ("versions", "seeds", "argv")}, indent=2, default=str)
        drift = version_drift(run.meta)
        note = (f"Made with other versions than the ones installed now: {', '.join(drift)}. Its numbers may not "
                "reproduce digit for digit with these.") if drift else ""
        html_parts.append(f"<h2>Config — {html.escape(run.name)}</h2><pre>{html.escape(run.config_yaml)}</pre>"
                          f"<h3>Versions and seeds</h3>" + (f"<p class='warn'>{html.escape(note)}</p>" if note else "")
                          + f"<pre>{html.escape(meta)}</pre>")
        md_parts.append(f"## Config — {run.name}\n\n```yaml\n{run.config_yaml}```\n\n### Versions and seeds\n\n"
                        + (f"{note}\n\n" if note else "") + f"```json\n{meta}\n```\n")
    html_parts.append("</body></html>")

    html_path, md_path = out / "report.html", out / "report.md"
    html_path.write_text("\n".join(html_parts))
    md_path.write_text("\n".join(md_parts))
    return html_path, md_path
