"""The skill gate's false-promotion rate and power at every SIRI preset's settings, old gate and new.

Simulated candidates (``siri.skills.gate_sim``: Bernoulli tasks of spread difficulty, mostly-zero
differences, invalid-action penalties, shop-like partial scores, and the adversarial tied case) are
fed to the project's own ``decide`` one evaluation at a time, with a look after each, as
``SkillBank.update_status`` does. For comparison the same differences go through the former gate:
a normal-z interval ``U -/+ z s / sqrt(n)`` re-tested at every look from ``min_evals`` on, with the
presets' former ``confidence_z``. Prints a markdown table (docs/skill-gate.md holds its output) and
writes ``benchmarks/out/gate.json``.

    .venv/bin/python benchmarks/bench_gate.py [--skills 4000] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np

from siri.skills.gate_sim import (
    MODELS,
    GateSetting,
    gate_decision,
    preset_settings,
    run_gate,
    simulate_differences,
)
from siri.skills.validation import ACTIVE, CANDIDATE, RETIRED, UtilityStats
from siri.utils.io import atomic_write_json

OUT = Path(__file__).parent / "out" / "gate.json"
EFFECTS = (0.0, 0.1, 0.2, 0.3)
# confidence_z of the presets before the gate changed (issue 18)
OLD_Z = {
    "alfworld-qwen7b-siri": 1.645,
    "webshop-qwen7b-siri": 1.645,
    "household-tiny-siri": 1.0,
    "shop-tiny-siri": 1.0,
    "household-lite-smollm2-warm-siri": 1.0,
}


def old_gate(setting: GateSetting, z: float):
    """The former ``decide``: normal-z bounds at every look from ``min_evals`` on, no correction."""

    def next_status(status: str, stats: UtilityStats) -> str:
        if stats.n < setting.min_evals:
            return status
        h = z * stats.std / math.sqrt(stats.n)
        if stats.mean + h <= setting.retire_ucb:
            return RETIRED
        if status == CANDIDATE and stats.mean - h > setting.promote_lcb:
            return ACTIVE
        return RETIRED if status == CANDIDATE and stats.n >= setting.max_evals else status

    return next_status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skills", type=int, default=4000, help="simulated candidates per cell")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    groups: dict[tuple, list[GateSetting]] = {}
    for s in preset_settings():
        key = (s.arms, s.min_evals, s.max_evals, s.alpha, s.promote_lcb, s.retire_ucb, OLD_Z.get(s.name))
        groups.setdefault(key, []).append(s)
    rows = []
    for key, settings in groups.items():
        setting, old_z = settings[0], key[-1]
        names = " + ".join(s.name for s in settings)
        for model in MODELS:
            row = {
                "presets": names,
                "model": model,
                "arms": list(setting.arms),
                "min_evals": setting.min_evals,
                "max_evals": setting.max_evals,
                "alpha": setting.alpha,
                "old_z": old_z,
            }
            for effect in EFFECTS if model != "ties" else (0.0,):
                rng = np.random.default_rng([args.seed, len(rows), int(effect * 100)])
                diffs = simulate_differences(model, setting.arms, args.skills, setting.max_evals, effect, rng)
                new = run_gate(diffs, gate_decision(setting))
                cell = {
                    "mean_d": float(diffs.mean()),
                    "zero_share": float((diffs == 0).mean()),
                    "promoted": new.promoted,
                    "retired": new.retired,
                    "mean_evals": new.mean_evals,
                }
                if old_z is not None:
                    cell["old_promoted"] = run_gate(diffs, old_gate(setting, old_z)).promoted
                row[f"effect_{effect:+.1f}"] = cell
            rows.append(row)
    atomic_write_json(
        OUT,
        {
            "skills_per_cell": args.skills,
            "seed": args.seed,
            "rows": rows,
            "seconds": time.perf_counter() - start,
        },
    )
    print(f"{args.skills} simulated candidates per cell; seed {args.seed}; written to {OUT}\n")
    print(
        "| presets (arms, looks) | model | zero d | false promotion: old gate | new gate "
        "| power +0.1 | +0.2 | +0.3 | evals to decide (0 / +0.2) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        zero = row["effect_+0.0"]
        old = f"{zero['old_promoted']:.3f} (z={row['old_z']:g})" if "old_promoted" in zero else "-"
        power = [
            f"{row[k]['promoted']:.3f}" if k in row else "-"
            for k in ("effect_+0.1", "effect_+0.2", "effect_+0.3")
        ]
        evals = f"{zero['mean_evals']:.1f} / " + (
            f"{row['effect_+0.2']['mean_evals']:.1f}" if "effect_+0.2" in row else "-"
        )
        where = (
            f"{row['presets']} ({row['arms'][0]} vs {row['arms'][1]}, {row['min_evals']}-{row['max_evals']})"
        )
        print(
            f"| {where} | {row['model']} | {zero['zero_share']:.2f} | {old} | {zero['promoted']:.3f} | "
            f"{' | '.join(power)} | {evals} |"
        )
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
