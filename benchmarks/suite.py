"""The whole evidence suite in one command: both learning-curve studies and the speed table.

Every part is one of the benchmark scripts beside this file, run in its own process, one after the
other (so no two measurements share the cores), at one of three sizes:

- ``full``: what ``RESULTS.md`` reports (hours on 2 cores): the household study with every variant,
  the shop study with the same variants at 8 iterations, 3 seeds each, and every
  speed benchmark at its default size.
- ``small``: every part at a small size, one seed (about 20 minutes on 2 cores once the tiny models
  are built): checks that nothing is broken and gives rough figures.
- ``smoke``: the smallest version, for CI (about a minute with a micro model): the household study
  with GRPO, GiGPO and SIRI for two iterations, and every speed benchmark but SmolLM2's on a handful
  of steps. ``--model DIR`` runs the model-dependent parts on any saved policy instead of the tiny one.

The speed part collects each benchmark's JSON into ``OUT/speed.json`` and prints the table of
``RESULTS.md`` (``OUT/speed.md``). Ratios come from both sides measured in the same process.

    python benchmarks/suite.py                       # full size, into benchmarks/out/
    python benchmarks/suite.py --size small          # into benchmarks/out/small/
    python benchmarks/suite.py --parts speed         # only the speed table
    python benchmarks/suite.py --size smoke --model DIR --out /tmp/suite
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PARTS = ("study-household", "study-shop", "speed")
ALL_VARIANTS = ("grpo,gigpo,siri,siri-no-warmup,siri-no-gate,siri-no-adv-weight,siri-whole-response,"
                "siri-trace-miner,siri-external-miner,siri-skills-at-inference,siri-no-internalize")

# size -> study command-line arguments per environment (None: the part is skipped at that size).
STUDIES: dict[str, dict[str, list[str] | None]] = {
    "full": {"household": ["--variants", ALL_VARIANTS, "--seeds", "0,1,2", "--jobs", "2", "train.eval_episodes=70"],
             # half the shop presets' 16 iterations, SIRI's schedule halved with it (RESULTS.md says why)
             "shop": ["--variants", ALL_VARIANTS, "--seeds", "0,1,2", "--jobs", "2", "train.iterations=8",
                      "train.eval_every=4", "train.eval_episodes=40", "train.save_every=2", "siri.n_req_successes=8",
                      "siri.warmup_max_iters=3", "siri.mine_every=2", "siri.lambda_ramp_iters=3"]},
    "small": {"household": ["--size", "small", "--variants", ALL_VARIANTS, "--seeds", "0", "--jobs", "2"],
              "shop": ["--size", "small", "--variants", "grpo,gigpo,siri", "--seeds", "0", "--jobs", "2"]},
    "smoke": {"household": ["--size", "smoke", "--variants", "grpo,gigpo,siri", "--seeds", "0"], "shop": None},
}

# benchmark -> size -> its command-line arguments (None: skipped at that size).
SPEED: dict[str, dict[str, list[str] | None]] = {
    "household": {"full": [], "small": ["--scenes", "2", "--engine-steps", "10", "--seconds", "0.5"],
                  "smoke": ["--scenes", "1", "--engine-steps", "3", "--seconds", "0.1"]},
    "shop": {"full": [], "small": ["--episodes", "100", "--reference-queries", "20"],
             "smoke": ["--episodes", "10", "--reference-queries", "3"]},
    "advantages": {"full": [], "small": ["--steps", "200000", "--repeats", "2"],
                   "smoke": ["--steps", "5000", "--repeats", "1"]},
    "ray_workers": {"full": [], "small": ["--envs", "16", "--turns", "50"],
                    "smoke": ["--envs", "4", "--workers", "2", "--turns", "5"]},
    "rollout": {"full": [], "small": ["--episodes", "4", "--max-steps", "4", "--smollm2-episodes", "2",
                                      "--smollm2-max-steps", "2"],
                "smoke": ["--episodes", "2", "--max-steps", "2", "--smollm2-episodes", "0"]},
    "update": {"full": [], "small": ["--episodes", "4", "--repeats", "1"], "smoke": ["--episodes", "2", "--repeats", "1"]},
}
MODEL_BENCHMARKS = ("rollout", "update")  # take --model


def run(args: list[str], log: Path) -> float:
    """Run one part (output to ``log`` and the console's last line); its wall seconds."""
    start = time.time()
    print(f"$ {' '.join(args)}", flush=True)
    with open(log, "w") as handle:
        result = subprocess.run(args, stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONHASHSEED": "0"})
    seconds = time.time() - start
    if result.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise SystemExit(f"failed after {seconds:.0f} s (exit {result.returncode}); last lines of {log}:\n{tail}")
    print(f"  done in {seconds:.0f} s (log: {log})", flush=True)
    return seconds


def speed_table(results: dict[str, Any]) -> list[str]:
    """Markdown rows ``| measure | value |`` from the benchmarks' JSON (only those that ran)."""
    rows: list[tuple[str, str]] = []
    if h := results.get("household"):
        rows += [("household env steps/s (random policy)", f"{h['household']['steps_per_s']:,.0f}"),
                 ("ALFWorld engine steps/s, same scenes", f"{h['alfworld_engine']['steps_per_s']:,.1f}"),
                 ("household / ALFWorld, steps", f"{h['speedup_steps']:,.0f}x"),
                 ("household / ALFWorld, resets", f"{h['speedup_resets']:,.0f}x")]
    if s := results.get("shop"):
        rows += [("shop env steps/s (random policy)", f"{s['random_policy']['steps_per_s']:,.0f}"),
                 ("shop search, uncached (ms)", f"{s['search']['uncached_mean_ms']:.3f}"),
                 ("shop search vs rank_bm25 get_scores", f"{s['search']['speedup_vs_rank_bm25']:.0f}x")]
    if a := results.get("advantages"):
        for name in ("grpo", "gigpo (int anchors)", "gigpo (tuple anchors)"):
            rows.append((f"{name} advantages, {a['steps']:,} steps (M steps/s)",
                         f"{a['results'][name]['steps_per_second'] / 1e6:.2f}"))
    if r := results.get("ray_workers"):
        for name, row in r["results"].items():
            rows.append((f"env steps/s, {r['envs']} household envs, {name}", f"{row['env_steps_per_s']:,.0f}"))
    if ro := results.get("rollout"):
        for row in ro["results"]:
            side = "batched" if row["batched"] else "one env at a time"
            rows.append((f"rollout {row['model']} {row['mode']}, {side} (tokens/s · env steps/s · peak MB)",
                         f"{row['tokens_per_s']:.0f} · {row['env_steps_per_s']:.1f} · {row['peak_rss_mb']:.0f}"))
            if not row["batched"]:  # the second of the pair
                rows.append((f"rollout {row['model']} {row['mode']}: batched / one at a time", f"{row['speedup']:.2f}x"))
    if u := results.get("update"):
        for name, row in u["rows"].items():
            rows.append((f"update tokens/s, micro-batches {name} (padding {row['padded_share']:.0%})",
                         f"{row['tokens_per_s']:,.0f}"))
        rows += [("update: sorted / collection order", f"{u['speedup']:.2f}x"),
                 ("update peak RSS (MB)", f"{u['peak_rss_mb']}")]
    return ["| measure | value |", "|---|---:|", *(f"| {m} | {v} |" for m, v in rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="full", choices=["full", "small", "smoke"])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma list of: {', '.join(PARTS)}")
    parser.add_argument("--model", default=None,
                        help="policy name or directory for the household study and the model benchmarks "
                             "(default: the tiny models)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default benchmarks/out, or benchmarks/out/<size> below full size)")
    args = parser.parse_args()
    parts = [p for p in args.parts.split(",") if p]
    if unknown := [p for p in parts if p not in PARTS]:
        parser.error(f"unknown parts {unknown}; choose from {', '.join(PARTS)}")
    out = args.out or (HERE / "out" if args.size == "full" else HERE / "out" / args.size)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    walls: dict[str, float] = {}
    started = time.time()

    for env in ("household", "shop"):
        study = STUDIES[args.size][env]
        if f"study-{env}" not in parts or study is None:
            continue
        model = [f"model.name_or_path={args.model}"] if args.model and env == "household" else []
        walls[f"study-{env}"] = run([sys.executable, str(HERE / "study.py"), "--env", env, "--out",
                                     str(out / f"study-{env}"), *study, *model], logs / f"study-{env}.log")

    if "speed" in parts:
        results: dict[str, Any] = {}
        for name, sizes in SPEED.items():
            bench_args = sizes[args.size]
            if bench_args is None:
                continue
            json_path = out / f"{name}.json"
            model = ["--model", args.model] if args.model and name in MODEL_BENCHMARKS else []
            walls[name] = run([sys.executable, str(HERE / f"bench_{name}.py"), *bench_args, *model, "--out", str(json_path)],
                              logs / f"{name}.log")
            results[name] = json.loads(json_path.read_text())
        table = speed_table(results)
        machine = {"cores": os.cpu_count(), "ram_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
                   "processor": platform.processor() or platform.machine(), "python": platform.python_version()}
        (out / "speed.json").write_text(json.dumps({"size": args.size, "machine": machine, "results": results}, indent=2))
        (out / "speed.md").write_text("\n".join(table) + "\n")
        print("\n".join(table))

    (out / "suite.json").write_text(json.dumps({"size": args.size, "parts": parts, "wall_seconds": walls,
                                                "total_seconds": time.time() - started}, indent=2))
    print(f"\nsuite ({args.size}) done in {time.time() - started:.0f} s; outputs in {out}")


if __name__ == "__main__":
    main()
