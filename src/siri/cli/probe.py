"""``siri probe``: the internalization gap of a SIRI run's probe set, scored on any runs' checkpoints."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer

from siri.cli.common import fail


def score_checkpoints(probe_from: str | Path, runs: Sequence[str | Path], *, device: str = "auto",
                      progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """The internalization gap (``siri.rl.probe``) of the probe of ``probe_from`` (a SIRI run dir or a probe
    file) on each run's starting policy (iteration 0) and every checkpoint it kept; JSON-ready.

    A run must use the tokenizer the probe was collected with (checked by its vocabulary's digest): token ids
    mean nothing under another. ``progress`` gets every point as it is scored.
    """
    from siri.rl.probe import GAP, LOGP_PLAIN, LOGP_SKILL, internalization_gap, scoring_temperature
    from siri.rl.trainer import checkpoint_policies
    from siri.skills.probe import ProbeError, load_probe, probe_records, tokenizer_digest

    steps, meta = load_probe(probe_from)
    records = probe_records(steps)
    out: dict[str, Any] = {"probe_from": str(probe_from), "probe_steps": len(records), "probe_meta": meta, "runs": []}
    for run_dir in runs:
        points: list[dict[str, Any]] = []
        entry: dict[str, Any] = {"run": str(run_dir), "name": Path(run_dir).name, "points": points}
        for iteration, checkpoint, policy, cfg in checkpoint_policies(run_dir, device):
            if checkpoint is None:
                digest = tokenizer_digest(policy.tokenizer)
                if meta.get("tokenizer") not in (None, digest):
                    raise ProbeError(f"{run_dir} uses another tokenizer than the probe of {probe_from} (vocabulary "
                                     f"digest {digest}, probe {meta['tokenizer']}): its token ids mean other words")
                entry.update({"algo": cfg.algo.name, "siri": cfg.siri.enabled})
            gap = internalization_gap(policy.model, records, pad_id=policy.pad_id,
                                      temperature=scoring_temperature(cfg), micro_batch=cfg.optim.micro_batch_size)
            point = {"iteration": iteration, "checkpoint": checkpoint, "int_gap": gap[GAP],
                     "int_logp_plain": gap[LOGP_PLAIN], "int_logp_skill": gap[LOGP_SKILL]}
            points.append(point)
            if progress is not None:
                progress({"run": entry["name"], **point})
        out["runs"].append(entry)
    return out


def probe(
    runs: list[Path] = typer.Argument(..., help="Run directories whose checkpoints to score (a GiGPO run's is the "
                                      "comparison; the SIRI run itself may be one)."),
    probe_from: Path = typer.Option(..., "--probe-from", help="A SIRI run directory (its probe.pt) or a probe file."),
    out: Path | None = typer.Option(None, "--out", help="JSON results file (default: probe_results.json in the "
                                    "first run directory given)"),
    device: str = typer.Option("auto", help="'auto', 'cpu', 'cuda', 'cuda:1', ..."),
) -> None:
    """Score the probe of --probe-from on the starting policy and every checkpoint of each run.

    The gap is the mean log-prob of the probe's skill-guided actions under the plain prompt minus under the
    skill prompt: rising toward 0 means the plain policy acts as the skills said. A run keeps its last
    train.keep_checkpoints checkpoints (default 2): train with train.keep_checkpoints=0 for a whole curve.
    """
    from siri.runs.run_dir import RunDirError
    from siri.skills.probe import ProbeError

    def show(point: dict[str, Any]) -> None:
        typer.echo(f"{point['run']}  iteration {point['iteration']:>5}  gap {point['int_gap']:+.4f}  "
                   f"(plain {point['int_logp_plain']:.4f}, skill {point['int_logp_skill']:.4f})")

    try:
        results = score_checkpoints(probe_from, runs, device=device, progress=show)
    except (ProbeError, RunDirError, FileNotFoundError) as e:
        raise fail(str(e), code=1) from e
    target = out or Path(runs[0]) / "probe_results.json"
    target.write_text(json.dumps(results, indent=2, default=str) + "\n")
    typer.echo(f"results: {target}")
