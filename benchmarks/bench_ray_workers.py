"""Environment stepping in process vs in Ray actors: env steps/s and the cost of one batched step.

Both sides step the same ``--envs`` household environments with the same random admissible actions
(seeded), resetting every environment when any episode ends, for ``--turns`` batched steps. The Ray
side uses ``--workers`` actors on a local Ray (``num_cpus`` = the machine's cores). Prints a table and
writes ``benchmarks/out/ray_workers.json``.

    .venv/bin/python benchmarks/bench_ray_workers.py [--envs 32] [--workers 4] [--turns 200]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from pathlib import Path
from typing import Any

from siri.envs import make_batch
from siri.envs.ray_workers import RayBatchEnv
from siri.utils.io import atomic_write_json

OUT = Path(__file__).parent / "out" / "ray_workers.json"
OPTIONS = {"split": "train", "max_steps": 50}


def measure(batch: Any, n: int, turns: int) -> dict[str, float]:
    rng = random.Random(0)
    observations = batch.reset(list(range(n)))
    steps, t0 = 0, time.perf_counter()
    for turn in range(turns):
        results = batch.step([rng.choice(o.admissible_actions) for o in observations])
        steps += n
        if any(r.done for r in results):
            observations = batch.reset([turn * n + i for i in range(n)])
        else:
            observations = [r.observation for r in results]
    seconds = time.perf_counter() - t0
    return {"env_steps_per_s": steps / seconds, "ms_per_batched_step": 1000 * seconds / turns}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=32)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    import ray

    cores = os.cpu_count() or 1
    ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
    per_worker = -(-args.envs // args.workers)
    results = {"inprocess": measure(make_batch("household", args.envs, **OPTIONS), args.envs, args.turns)}
    remote = RayBatchEnv("household", args.envs, OPTIONS, envs_per_worker=per_worker,
                         num_cpus=cores / args.workers)
    results[f"ray {args.workers}x{per_worker}"] = measure(remote, args.envs, args.turns)
    remote.close()
    ray.shutdown()
    print(f"{'setup':<16}{'env steps/s':>14}{'ms / batched step':>20}")
    for name, r in results.items():
        print(f"{name:<16}{r['env_steps_per_s']:>14,.0f}{r['ms_per_batched_step']:>20.2f}")
    atomic_write_json(args.out, {"envs": args.envs, "workers": args.workers, "turns": args.turns, "results": results,
                            "machine": {"cores": cores, "platform": platform.platform(),
                                        "load_avg_1m": os.getloadavg()[0]}})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
