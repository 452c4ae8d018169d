"""Household simulator vs the real ALFWorld engine: steps/s and resets/s on the same scenes.

The scenes are household eval_id scenes exported as ALFWorld game files; both sides play them with
the same policy (uniformly random admissible actions, so the action choice costs the same). The
household side loops over the scenes for ``--seconds`` per measure (resets of new scenes, which
generate them, and of recently seen seeds, served from the scene cache); the engine side plays
``--engine-steps`` steps per scene, timing game loading, resets of a loaded game and steps
separately (the engine is asked for no expert plan). Prints a table and writes
``benchmarks/out/household.json``.

    .venv/bin/python benchmarks/bench_household.py [--scenes 6] [--engine-steps 30] [--seconds 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import tempfile
import time
from pathlib import Path

from siri.envs.household import HouseholdEnv
from siri.envs.household.export import export_scene
from siri.envs.household.sim import cached_scene
from siri.utils.io import atomic_write_json

OUT = Path(__file__).parent / "out" / "household.json"


def bench_household(seeds: list[int], seconds: float) -> dict[str, float]:
    env = HouseholdEnv(split="eval_id", max_steps=10**9)  # never truncate: episodes end only when won
    rng = random.Random(0)
    resets, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for s in seeds:
            cached_scene.cache_clear()  # a fresh scene every time: generation + reset
            env.reset(s)
        resets += len(seeds)
    reset_rate = resets / (time.perf_counter() - t0)
    cached, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for s in seeds:
            env.reset(s)  # a recently seen seed (GiGPO groups): reset only
        cached += len(seeds)
    cached_rate = cached / (time.perf_counter() - t0)
    steps, step_time = 0, 0.0
    while step_time < seconds:
        for s in seeds:
            obs = env.reset(s)
            t0 = time.perf_counter()  # time the steps only (episodes of up to 200 random steps)
            for _ in range(200):
                step = env.step(rng.choice(obs.admissible_actions))
                obs = step.observation
                if step.done:
                    break
            step_time += time.perf_counter() - t0
            steps += obs.step
    return {
        "steps_per_s": steps / step_time,
        "resets_per_s": reset_rate,
        "cached_resets_per_s": cached_rate,
        "steps": steps,
    }


def bench_engine(games: list[Path], steps_per_game: int) -> dict[str, float]:
    from siri.envs.alfworld_env import AlfworldEnv

    env = AlfworldEnv(games=[str(g) for g in games], max_steps=10**9)
    env.games = list(games)
    rng = random.Random(0)
    load_t = reset_t = step_t = 0.0
    steps = 0
    for i in range(len(games)):
        t0 = time.perf_counter()
        obs = env.reset(i)  # loads the game file, then resets
        load_t += time.perf_counter() - t0
        t0 = time.perf_counter()
        obs = env.reset(i)  # the same game again: reset only
        reset_t += time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(steps_per_game):
            step = env.step(rng.choice(obs.admissible_actions))
            obs = step.observation
            steps += 1
            if step.done:
                break
        step_t += time.perf_counter() - t0
    env.close()
    n = len(games)
    return {
        "steps_per_s": steps / step_t,
        "resets_per_s": n / reset_t,
        "load_plus_reset_per_s": n / load_t,
        "steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenes", type=int, default=6, help="eval_id scenes 0..N-1 (round robin task types)"
    )
    parser.add_argument("--engine-steps", type=int, default=30, help="random steps per scene on the engine")
    parser.add_argument("--seconds", type=float, default=2.0, help="household time per measure")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    seeds = list(range(args.scenes))
    ours = bench_household(seeds, args.seconds)
    with tempfile.TemporaryDirectory(prefix="siri-bench-") as tmp:
        games = [export_scene(s, "eval_id", tmp) for s in seeds]
        engine = bench_engine(games, args.engine_steps)
    sizes = [len(HouseholdEnv(split="eval_id").reset(s).admissible_actions) for s in seeds]
    report = {
        "scenes": [f"eval_id/{s}" for s in seeds],
        "mean_admissible_actions_at_start": sum(sizes) / len(sizes),
        "policy": "uniform random admissible",
        "household": ours,
        "alfworld_engine": engine,
        "speedup_steps": ours["steps_per_s"] / engine["steps_per_s"],
        "speedup_resets": ours["resets_per_s"] / engine["resets_per_s"],
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0],  # other jobs sharing the CPU slow both sides
        },
    }
    print(f"{'':<22} {'steps/s':>12} {'resets/s':>12}")
    print(f"{'household':<22} {ours['steps_per_s']:>12,.0f} {ours['resets_per_s']:>12,.0f}")
    print(f"{'  (seed seen before)':<22} {'':>12} {ours['cached_resets_per_s']:>12,.0f}")
    print(f"{'alfworld engine':<22} {engine['steps_per_s']:>12,.1f} {engine['resets_per_s']:>12,.2f}")
    print(f"{'  (load + reset)':<22} {'':>12} {engine['load_plus_reset_per_s']:>12,.2f}")
    print(f"speed-up: steps x{report['speedup_steps']:,.0f}, resets x{report['speedup_resets']:,.0f}")
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
