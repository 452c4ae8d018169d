"""Learning-curve study: GRPO vs GiGPO vs SIRI (and SIRI's ablations) on the same budget, several seeds.

Every variant is a preset plus overrides; every run is a real ``siri train`` in its own process and run
directory, so a study can be interrupted and re-run (finished runs are reused). Final plain-prompt
success and score get 95% confidence intervals from a two-level bootstrap (resample seeds, then
episodes within each seed). Output: ``OUT/study.json``, ``OUT/curves.png``, ``OUT/final.png`` and
``OUT/report.html`` (every run overlaid).

    python benchmarks/study.py --env household --variants grpo,gigpo,siri --seeds 0,1,2
    python benchmarks/study.py --size small     # minutes: 4 iterations of small batches, 2 seeds
    python benchmarks/study.py --size smoke model.name_or_path=DIR   # seconds per run (CI, any model)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from siri.skills.bank import SkillBank

ROOT = Path(__file__).resolve().parents[1]

# name -> (preset suffix, overrides). "{env}" is filled in; the metric is the plain-prompt final eval
# unless the variant deploys with skills (SkillRL-style ablation).
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "grpo": ("tiny-gigpo", ["algo.name=grpo"]),
    "gigpo": ("tiny-gigpo", []),
    "siri": ("tiny-siri", []),
    "siri-no-warmup": ("tiny-siri", ["siri.warmup=false"]),
    "siri-no-gate": ("tiny-siri", ["siri.validation_gate=false"]),
    "siri-no-adv-weight": ("tiny-siri", ["siri.weighting=uniform"]),
    "siri-whole-response": ("tiny-siri", ["siri.action_tokens_only=false"]),
    "siri-trace-miner": ("tiny-siri", ["siri.miner=trace"]),
    "siri-external-miner": ("tiny-siri", ["siri.miner=external"]),
    # SIRI's own runs, evaluated with their best active skill in the prompt (the SkillRL-style deployment):
    # no training of its own (RUNS_OF), the tiny-siri presets evaluate both ways.
    "siri-skills-at-inference": ("tiny-siri", []),
    # Skill rollouts and validation as usual, no distillation: separates the cost of spending half of
    # each group on skill prompts from the effect of internalizing them.
    "siri-no-internalize": ("tiny-siri", ["siri.lambda_max=0"]),
}

# Variants measured on another variant's runs instead of training their own.
RUNS_OF = {"siri-skills-at-inference": "siri"}


def run_dir(out: Path, variant: str, seed: int) -> Path:
    return out / "runs" / f"{RUNS_OF.get(variant, variant)}-seed{seed}"


def finished(path: Path) -> bool:
    """The run has its final evaluation (a study reuses it instead of training again)."""
    summary = path / "summary.json"
    return summary.exists() and "final" in json.loads(summary.read_text())["evals"]


# size -> (most seeds, overrides put before the command line's): budgets below the presets' own.
SIZES: dict[str, tuple[int, list[str]]] = {
    "full": (100, []),
    "small": (2, ["train.iterations=4", "train.eval_every=2", "train.eval_episodes=12", "rollout.num_groups=2",
                  "rollout.group_size=4", "siri.warmup_max_iters=1", "siri.mine_every=1", "siri.min_evals=2",
                  "siri.lambda_ramp_iters=1"]),
    "smoke": (1, ["train.iterations=2", "train.eval_every=1", "train.eval_episodes=2", "rollout.num_groups=1",
                  "rollout.group_size=2", "env.max_steps=4", "siri.warmup_max_iters=1", "siri.mine_every=1",
                  "siri.min_evals=2", "siri.lambda_ramp_iters=1", "train.save_every=1"]),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_miner_server(model: str) -> tuple[subprocess.Popen[bytes], str]:
    """`siri serve` of the bootstrap model on loopback: the 'external' miner of the ablation."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "siri", "serve", "--model", model, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(600):
        try:
            import urllib.request

            urllib.request.urlopen(f"{url}/models", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("siri serve did not come up within 5 minutes")


def run_one(env: str, variant: str, seed: int, out: Path, extra: list[str], miner_url: str | None,
            threads: int | None = None) -> Path:
    suffix, overrides = VARIANTS[variant]
    path = run_dir(out, variant, seed)
    if finished(path):
        print(f"  reuse {path}", flush=True)
        return path
    args = [sys.executable, "-m", "siri", "train", "--config", f"{env}-{suffix}", "--no-report"]
    if (path / "config.yaml").exists():
        args = [sys.executable, "-m", "siri", "train", "--resume", str(path), "--no-report"]
    else:
        args += ["--run-dir", str(path), *overrides, f"train.seed={seed}", *extra]
        if variant == "siri-external-miner":
            args += [f"siri.miner_url={miner_url}", "siri.miner_model=tiny"]
    print(f"  {variant} seed {seed}: {' '.join(args[3:])}", flush=True)
    start = time.time()
    env_vars = {**os.environ, "PYTHONHASHSEED": "0", **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, env=env_vars)
    print(f"    done in {time.time() - start:.0f} s", flush=True)
    return path


def bootstrap_ci(per_seed: list[np.ndarray], n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean and 95% CI: resample seeds, then episodes within each resampled seed."""
    rng = np.random.default_rng(seed)
    means = []
    for _ in range(n_boot):
        picks = rng.integers(0, len(per_seed), len(per_seed))
        means.append(np.mean([rng.choice(per_seed[p], len(per_seed[p])).mean() for p in picks]))
    point = float(np.mean([x.mean() for x in per_seed]))
    return point, float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def paired_ci(a: list[np.ndarray], b: list[np.ndarray]) -> tuple[float, float, float]:
    """Mean difference a - b and its 95% CI, pairing episode i of seed s in both.

    Two runs of one seed evaluate the same tasks with the same sampling seeds, so their outcomes are
    strongly correlated (runs that barely differ fail the same episodes); the per-episode difference
    removes that shared part, and its interval is far narrower than the two separate ones suggest.
    """
    if [len(x) for x in a] != [len(x) for x in b]:
        raise ValueError("paired runs must evaluate the same number of episodes per seed")
    return bootstrap_ci([x - y for x, y in zip(a, b, strict=True)])


# Each eval outcome is (task type, won, score); a study reports both metrics and leads with the one that
# separates policies in its environment (the shop's tiny policies score partial credit but rarely win).
METRICS = {"success": 1, "score": 2}
PRIMARY_METRIC = {"household": "success", "shop": "score"}


def validation_summary(runs: list[Path]) -> dict[str, float]:
    """Every paired validation in the runs' skill banks (a skill's rollouts minus the plain rollouts of
    the same group, in episode return: success on the household, score on the shop): how many, the
    shares exactly 0 / above / below, the mean.
    Mostly zeros mean the skill text does not change what the policy does."""
    diffs = np.array([d for run in runs if (run / "skill_bank.json").exists()
                      for skill in SkillBank.open(run).skills() for _, d in skill.evals], dtype=float)
    if not len(diffs):
        return {"n": 0}
    return {"n": len(diffs), "zero": float(np.mean(diffs == 0)), "positive": float(np.mean(diffs > 0)),
            "negative": float(np.mean(diffs < 0)), "mean": float(diffs.mean())}


def summarize(out: Path, env: str, variants: list[str], seeds: list[int], reference: str = "gigpo") -> dict[str, Any]:
    """Per variant and metric (success, score): the final value with its CI, per seed, per task type,
    and paired differences against the bootstrap policy and against ``reference`` (when it is among the
    variants); and the skill bank at the end of each seed's run."""
    results: dict[str, Any] = {}
    finals: dict[str, dict[str, list[np.ndarray]]] = {}
    for variant in variants:
        key = "final_with_skills" if variant == "siri-skills-at-inference" else "final"
        runs = [run_dir(out, variant, s) for s in seeds]
        evals = [json.loads((r / "summary.json").read_text())["evals"] for r in runs]
        missing = [str(r) for r, e in zip(runs, evals, strict=True) if key not in e]
        if missing:
            raise SystemExit(f"{variant}: no '{key}' evaluation in {', '.join(missing)} (for final_with_skills "
                             "the SIRI runs need siri.keep_skills_at_inference=true)")
        metrics = [[json.loads(line) for line in (r / "metrics.jsonl").read_text().splitlines()] for r in runs]
        types = sorted({o[0] for e in evals for o in e[key]["outcomes"]})
        r: dict[str, Any] = {"seeds": seeds, "metric": key, "per_seed": {}, "bootstrap": {}, "per_task_type": {},
                             "paired": {}}
        finals[variant] = {}
        for m, col in METRICS.items():
            final = [np.array([float(o[col]) for o in e[key]["outcomes"]]) for e in evals]
            boot = [np.array([float(o[col]) for o in e["bootstrap"]["outcomes"]]) for e in evals]
            per_type = {}
            for t in types:
                rows = [np.array([float(o[col]) for o in e[key]["outcomes"] if o[0] == t]) for e in evals]
                per_type[t] = bootstrap_ci([x for x in rows if len(x)]) if any(len(x) for x in rows) else None
            finals[variant][m] = final
            r[m] = bootstrap_ci(final)
            r["per_seed"][m] = [float(x.mean()) for x in final]
            r["bootstrap"][m] = bootstrap_ci(boot)
            r["per_task_type"][m] = per_type
            r["paired"][m] = {"gain_over_bootstrap": paired_ci(final, boot)}
        # The skill bank at the end of each seed's run (SIRI variants): what was mined, kept and dropped.
        r["per_seed_skills"] = [{"mined": row.get("skills/mined_total", 0), "active": row.get("skills/active", 0),
                                 "retired": row.get("skills/retired", 0)} for row in (m[-1] for m in metrics)]
        r["validations"] = validation_summary(runs)
        r["per_seed_internalized_steps"] = [sum(row.get("update/internalized_steps", 0) for row in m) for m in metrics]
        results[variant] = r
    if reference in finals:
        for variant in variants:
            if variant != reference:
                for m in METRICS:
                    results[variant]["paired"][m][f"vs_{reference}"] = paired_ci(finals[variant][m], finals[reference][m])
    return results


def _signed(ci: tuple[float, float, float]) -> str:
    return f"{ci[0]:+.3f} [{ci[1]:+.3f}, {ci[2]:+.3f}]"


def _validations(v: dict[str, float] | None) -> str:
    return f"{v['n']:.0f}, {v['zero']:.0%}, {v['mean']:+.3f}" if v and v["n"] else ""


def markdown(results: dict[str, Any], metric: str = "success") -> str:
    """The study's table for RESULTS.md, led by ``metric``: its final value with the CI, per seed, the
    paired gains, the other metric, per task type, skills."""
    other = next(m for m in METRICS if m != metric)
    types = sorted({t for r in results.values() for t in r["per_task_type"][metric]})
    head = ["variant", f"final {metric} [95% CI]", "per seed", "gain over bootstrap, paired", "vs GiGPO, paired",
            other, *types, "skills mined / active / retired (per seed)", "paired validations: n, share 0, mean",
            "steps internalized (per seed)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in results.items():
        s, lo, hi = r[metric]
        per_type = [f"{r['per_task_type'][metric][t][0]:.3f}" if r["per_task_type"][metric].get(t) else ""
                    for t in types]
        skills = ", ".join(f"{k['mined']:.0f}/{k['active']:.0f}/{k['retired']:.0f}" for k in r.get("per_seed_skills", []))
        paired = r["paired"][metric]
        versus = paired.get("vs_gigpo")
        has_skills = any(k["mined"] for k in r.get("per_seed_skills", []))
        internalized = ", ".join(f"{n:.0f}" for n in r.get("per_seed_internalized_steps", [])) if has_skills else ""
        row = [name + (" (skills kept)" if r["metric"] == "final_with_skills" else ""), f"{s:.3f} [{lo:.3f}, {hi:.3f}]",
               ", ".join(f"{x:.3f}" for x in r["per_seed"][metric]), _signed(paired["gain_over_bootstrap"]),
               _signed(versus) if versus else "", f"{r[other][0]:.3f}", *per_type, skills, _validations(r.get("validations")),
               internalized]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def plot(out: Path, results: dict[str, Any], variants: list[str], seeds: list[int], metric: str = "success") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5 if len(variants) > 3 else 7, 4), layout="constrained")
    colors = plt.get_cmap("tab10").colors
    for k, variant in enumerate(variants):
        color, style = colors[k % 10], ("-", "--", ":")[k // 10 % 3]  # past ten variants, colours repeat dashed
        curves = []
        for s in seeds:
            rows = [json.loads(line) for line in (run_dir(out, variant, s) / "metrics.jsonl").read_text().splitlines()]
            curves.append({r["iteration"]: r[f"eval/{metric}"] for r in rows if f"eval/{metric}" in r})
        its = sorted(set.intersection(*(set(c) for c in curves)))
        ys = np.array([[c[i] for i in its] for c in curves])
        ax.plot(its, ys.mean(0), marker="o", ms=3, label=variant, color=color, linestyle=style)
        if len(seeds) > 1 and len(variants) <= 3:  # more bands than that hide each other
            ax.fill_between(its, ys.min(0), ys.max(0), alpha=0.15, color=color)
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"eval {metric} (plain prompt)")
    bands = len(seeds) > 1 and len(variants) <= 3
    ax.set_title("learning curves (mean over seeds" + ("; band: min-max)" if bands else ")"))
    if len(variants) > 3:
        ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    names = list(results)
    means = [results[n][metric][0] for n in names]
    err = np.array([[m - results[n][metric][1] for n, m in zip(names, means, strict=True)],
                    [results[n][metric][2] - m for n, m in zip(names, means, strict=True)]])
    ax.bar(range(len(names)), means, yerr=err, capsize=3)
    ax.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel(f"final {metric}, 95% CI")
    ax.grid(axis="y", alpha=0.3)
    fig.savefig(out / "final.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="household", choices=["household", "shop"])
    parser.add_argument("--variants", default="grpo,gigpo,siri", help=f"comma list of: {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default=None, help="output folder (default benchmarks/out/study-<env>)")
    parser.add_argument("--size", default="full", choices=list(SIZES),
                        help="full: the presets' budget; small: 4 short iterations, at most 2 seeds; "
                             "smoke: 2 iterations of 2 rollouts, 1 seed (checks the pipeline, measures nothing)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs side by side, each with cores / jobs threads (OMP_NUM_THREADS)")
    parser.add_argument("overrides", nargs="*", help="extra config overrides for every run (key=value)")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    extra = list(args.overrides)
    max_seeds, size_overrides = SIZES[args.size]
    seeds = seeds[:max_seeds]
    extra = size_overrides + extra
    out = Path(args.out or ROOT / "benchmarks" / "out" / (f"study-{args.env}" + ("" if args.size == "full" else f"-{args.size}")))
    out.mkdir(parents=True, exist_ok=True)
    server, miner_url = (None, None)
    if "siri-external-miner" in variants and not all(finished(run_dir(out, "siri-external-miner", s)) for s in seeds):
        model = next((o.split("=", 1)[1] for o in reversed(extra) if o.startswith("model.name_or_path=")),
                     "tiny-shop" if args.env == "shop" else "tiny")
        server, miner_url = start_miner_server(model)
    started = time.time()
    try:
        trained = list(dict.fromkeys(RUNS_OF.get(v, v) for v in variants))  # an alias trains its source once
        jobs = [(variant, seed) for seed in seeds for variant in trained]
        threads = max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            for future in [pool.submit(run_one, args.env, v, s, out, extra, miner_url, threads) for v, s in jobs]:
                future.result()
    finally:
        if server is not None:
            server.kill()
    metric = PRIMARY_METRIC[args.env]
    results = summarize(out, args.env, variants, seeds)
    plot(out, results, variants, seeds, metric)
    from siri.runs.report import build_report

    build_report([run_dir(out, v, seeds[0]) for v in variants if v not in RUNS_OF], out)
    payload = {"env": args.env, "variants": variants, "seeds": seeds, "overrides": extra, "metric": metric,
               "results": results, "wall_seconds": time.time() - started, "machine": {"cores": os.cpu_count()}}
    (out / "study.json").write_text(json.dumps(payload, indent=2))
    (out / "study.md").write_text(markdown(results, metric))
    print(f"\n{'variant':<26}{f'final {metric} [95% CI]':<30}{'vs bootstrap policy, paired':<32}vs GiGPO, paired")
    for v, r in results.items():
        s, lo, hi = r[metric]
        paired = r["paired"][metric]
        versus = _signed(paired["vs_gigpo"]) if "vs_gigpo" in paired else ""
        print(f"{v:<26}{f'{s:.3f} [{lo:.3f}, {hi:.3f}]':<30}{_signed(paired['gain_over_bootstrap']):<32}{versus}")
    print(f"\nwrote {out / 'study.json'}, curves.png, final.png, report.html")


if __name__ == "__main__":
    main()
