"""Time GRPO / GiGPO / RLOO advantages on ~1M steps shaped like real rollout batches.

Batch shape: groups of 8 trajectories (the paper's group size), trajectory lengths uniform in
1..50 (ALFWorld's step limit; mean ~25.5), rewards mostly 0 with a success reward on some last
steps and 0.1 invalid-action penalties, anchors drawn from a per-group pool of states so that
trajectories of a group revisit the same states. Anchors are timed as a numpy int array (no Python
loop), as Python strings and as tuples (one dict pass, whose cost is touching each Python object).
Steps come in trajectory order (as a trainer flattens them); the shuffled rows show the cost when
they do not (Python objects scattered in memory). Prints a table and writes
``benchmarks/out/advantages.json``.

    .venv/bin/python benchmarks/bench_advantages.py [--steps 1000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np

from siri.rl.advantages import compute_gigpo, compute_grpo, compute_rloo
from siri.utils.io import atomic_write_json

OUT = Path(__file__).parent / "out" / "advantages.json"


def make_batch(num_steps: int, group_size: int = 8, max_len: int = 50, seed: int = 0) -> dict:
    """Steps in trajectory order, as a trainer flattens its trajectories."""
    rng = np.random.default_rng(seed)
    num_traj = int(num_steps / ((1 + max_len) / 2)) // group_size * group_size
    lengths = rng.integers(1, max_len + 1, size=num_traj)
    traj = np.repeat(np.arange(num_traj), lengths)
    group = traj // group_size
    starts = np.cumsum(lengths) - lengths
    t = np.arange(traj.size) - np.repeat(starts, lengths)
    reward = np.where(rng.random(traj.size) < 0.05, -0.1, 0.0)
    last = np.cumsum(lengths) - 1
    reward[last] += (rng.random(num_traj) < 0.4) * 10.0
    # ~60 states per group; a trajectory walks among them, so groups share many anchors.
    state = rng.integers(0, 60, size=traj.size)
    tuples = [(int(g), int(s)) for g, s in zip(group.tolist(), state.tolist(), strict=True)]
    return {
        "group": group, "traj": traj, "t": t, "reward": reward, "num_traj": num_traj,
        "anchor_ints": group * 60 + state, "anchor_tuples": tuples,
        "anchor_strs": [f"room {g} state {s}" for g, s in tuples],
    }


def shuffled(b: dict, seed: int = 1) -> dict:
    perm = np.random.default_rng(seed).permutation(b["group"].size)
    out = dict(b)
    for key in ("group", "traj", "t", "reward", "anchor_ints"):
        out[key] = b[key][perm]
    for key in ("anchor_tuples", "anchor_strs"):
        out[key] = [b[key][i] for i in perm.tolist()]
    return out


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    b = make_batch(args.steps)
    s = shuffled(b)
    cols = (b["group"], b["traj"], b["t"], b["reward"])
    scols = (s["group"], s["traj"], s["t"], s["reward"])
    n = b["group"].size
    cases = {
        "grpo": lambda: compute_grpo(*cols),
        "rloo": lambda: compute_rloo(*cols),
        "gigpo (int anchors)": lambda: compute_gigpo(*cols, b["anchor_ints"]),
        "gigpo (str anchors)": lambda: compute_gigpo(*cols, b["anchor_strs"]),
        "gigpo (tuple anchors)": lambda: compute_gigpo(*cols, b["anchor_tuples"]),
        "gigpo step-stats (int anchors)": lambda: compute_gigpo(*cols, b["anchor_ints"], episode_stats="step"),
        "gigpo (int anchors, shuffled steps)": lambda: compute_gigpo(*scols, s["anchor_ints"]),
        "gigpo (tuple anchors, shuffled steps)": lambda: compute_gigpo(*scols, s["anchor_tuples"]),
    }
    results = {}
    print(f"{n:,} steps, {b['num_traj']:,} trajectories, {b['num_traj'] // 8:,} groups of 8, best of {args.repeats}")
    for name, fn in cases.items():
        seconds = best_of(fn, args.repeats)
        results[name] = {"seconds": seconds, "steps_per_second": n / seconds}
        print(f"  {name:38s} {seconds * 1e3:8.1f} ms   {n / seconds / 1e6:6.2f} M steps/s")
    parts = compute_gigpo(*cols, b["anchor_tuples"], return_parts=True)
    summary = parts.summary()
    print(f"  step groups: {summary['adv/step_groups']:.0f}, mean size {summary['adv/step_group_size_mean']:.2f}, "
          f"singleton steps {summary['adv/step_singleton_frac']:.3f}")
    atomic_write_json(args.out, {
        "steps": n, "trajectories": b["num_traj"], "group_size": 8, "max_len": 50, "repeats": args.repeats,
        "results": results, "step_groups": summary, "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(), "numpy": np.__version__,
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
