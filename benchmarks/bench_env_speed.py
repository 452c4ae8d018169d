"""Speed and baselines of the third-party text engines behind siri's env interface: TextWorld and
ScienceWorld.

TextWorld (tw-cooking games of the env's default settings, generated into a fresh cache): generating one game,
loading a new game (first reset), resetting a loaded one, steps/s under random admissible commands, and the
expert's and a random policy's success and score on the eval split (the random policy draws as ``siri env
check --policy random`` does, so the figures match it).

ScienceWorld (the Java engine): starting the JVM, adding a simulation, a reset (reloading the variation)
against the engine's own ``reset``, steps/s under random admissible actions (every step asks the engine for
its valid actions and its object tree, which dominate), and per task on the first ``--variations`` variations
of the test split: the expert's success and score within ``--max-steps``, a random policy's, the gold path's
length, how many actions pass the filter, and the share of the expert's actions a ``choose`` policy could
pick from the capped list.

Prints tables and writes ``benchmarks/out/env_speed.json`` (``--env`` one engine: the other's figures stay).

    .venv/bin/python benchmarks/bench_env_speed.py [--env textworld scienceworld] [--games 20]
        [--variations 2] [--max-steps 100] [--tasks boil,melt] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from siri.envs import make
from siri.utils.io import atomic_write_json

OUT = Path(__file__).parent / "out" / "env_speed.json"


def _play(env: Any, seed: int, policy: str, rng: random.Random) -> tuple[bool, float, int]:
    obs = env.reset(seed)
    while True:
        action = env.expert_action() if policy == "expert" else rng.choice(obs.admissible_actions)
        step = env.step(action)
        obs = step.observation
        if step.done:
            return step.won, step.score, obs.step


def _check_rng(seed: int) -> random.Random:
    """The random policy's stream of episode ``seed``, as ``siri env check --policy random`` draws it."""
    return random.Random(f"check/{seed}")


def _random_steps(env: Any, seeds: list[int], seconds: float, rng: random.Random) -> float:
    """Steps/s of random admissible play (reset time excluded), over at least ``seconds`` of stepping."""
    steps, spent = 0, 0.0
    while spent < seconds:
        for seed in seeds:
            obs = env.reset(seed)
            t0 = time.perf_counter()
            while True:
                step = env.step(rng.choice(obs.admissible_actions))
                obs = step.observation
                if step.done:
                    break
            spent += time.perf_counter() - t0
            steps += obs.step
    return steps / spent


def _success(env: Any, seeds: list[int], policy: str) -> dict[str, float]:
    runs = [_play(env, s, policy, _check_rng(s)) for s in seeds]
    return {"episodes": len(runs), "success": sum(r[0] for r in runs) / len(runs),
            "score": sum(r[1] for r in runs) / len(runs), "steps": sum(r[2] for r in runs) / len(runs)}


def bench_textworld(games: int, seconds: float, max_steps: int) -> dict[str, Any]:
    from siri.envs.textworld_env import DEFAULT_SEEDS

    seeds = {"train": DEFAULT_SEEDS["train"], "eval": f"1000000-{1000000 + games - 1}"}
    env = make("textworld", split="eval", max_steps=max_steps, seeds=seeds)
    t0 = time.perf_counter()
    for i in range(games):
        env.game_file(i)
    generate = (time.perf_counter() - t0) / games
    t0 = time.perf_counter()
    for i in range(games):
        env.reset(i)  # a new game each time: load + reset
    load = (time.perf_counter() - t0) / games
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        env.reset(0)
        n += 1
    reset = (time.perf_counter() - t0) / n
    rng = random.Random(0)
    steps_per_s = _random_steps(env, [0], seconds, rng)  # one loaded game: the step alone
    expert, rand = _success(env, list(range(games)), "expert"), _success(env, list(range(games)), "random")
    env.close()
    return {"challenge": env.challenge, "settings": env.settings, "games": games, "max_steps": max_steps,
            "generate_s": generate, "load_and_reset_s": load, "reset_s": reset,
            "random_steps_per_s": steps_per_s, "expert": expert, "random": rand}


def bench_scienceworld(tasks: list[str] | None, variations: int, seconds: float,
                       max_steps: int) -> dict[str, Any]:
    from siri.envs import scienceworld_env as sw

    sw.shutdown_engines()
    t0 = time.perf_counter()
    first = sw._take_engine()
    jvm_start = time.perf_counter() - t0
    t0 = time.perf_counter()
    second = sw._take_engine()
    new_simulation = time.perf_counter() - t0
    sw._release_engine(first), sw._release_engine(second)
    env = make("scienceworld", split="test", tasks=tasks, max_variations=variations, max_steps=max_steps)
    engine_reset = []
    for task in env.tasks[:5]:
        variation = next(v for t, v in env.episodes if t == task)
        engine = sw._take_engine()
        engine.load(task, variation, "")
        t0 = time.perf_counter()
        engine.server.reset()  # the engine's own reset, which the env does not use
        engine_reset.append(time.perf_counter() - t0)
        sw._release_engine(engine)
    resets = []
    for seed in range(min(len(env.episodes), 30)):
        t0 = time.perf_counter()
        env.reset(seed)
        resets.append(time.perf_counter() - t0)
    rng = random.Random(0)
    steps_per_s = _random_steps(env, list(range(min(len(env.episodes), len(env.tasks)))), seconds, rng)
    per_task: dict[str, dict[str, Any]] = {}
    for seed, (task, _) in enumerate(env.episodes):
        row = per_task.setdefault(task, {"episodes": 0, "expert_won": 0, "expert_score": 0.0,
                                         "random_won": 0, "random_score": 0.0, "gold_steps": [], "listed": [],
                                         "choosable": []})
        obs = env.reset(seed)
        gold = env.gold_actions()
        row["gold_steps"].append(len(gold))
        while True:
            action = env.expert_action()
            row["choosable"].append(action in obs.admissible_actions)
            step = env.step(action)
            row["listed"].append(step.info["actions_listed"])
            obs = step.observation
            if step.done:
                break
        won, score, _ = step.won, step.score, obs.step
        rand = _play(env, seed, "random", _check_rng(seed))
        row["episodes"] += 1
        row["expert_won"] += won
        row["expert_score"] += score
        row["random_won"] += rand[0]
        row["random_score"] += rand[1]
    env.close()
    table = {}
    for task, row in per_task.items():
        n = row["episodes"]
        table[task] = {"episodes": n, "expert_success": row["expert_won"] / n,
                       "expert_score": row["expert_score"] / n, "random_success": row["random_won"] / n,
                       "random_score": row["random_score"] / n,
                       "gold_steps": statistics.mean(row["gold_steps"]),
                       "actions_listed": statistics.mean(row["listed"]),
                       "expert_choosable": statistics.mean(row["choosable"])}
    n = sum(r["episodes"] for r in table.values())
    keys = ("expert_success", "expert_score", "random_success", "random_score", "expert_choosable")
    overall = {k: sum(r[k] * r["episodes"] for r in table.values()) / n for k in keys}
    return {"split": "test", "variations_per_task": variations, "max_steps": max_steps,
            "max_actions": env.max_actions, "jvm_start_s": jvm_start, "new_simulation_s": new_simulation,
            "reset_s": statistics.median(resets),
            "engine_reset_s": statistics.median(engine_reset), "random_steps_per_s": steps_per_s,
            "episodes": n, "overall": overall, "per_task": table}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", nargs="+", default=["textworld", "scienceworld"],
                        choices=["textworld", "scienceworld"])
    parser.add_argument("--games", type=int, default=20,
                        help="TextWorld eval games (the env's default eval split)")
    parser.add_argument("--variations", type=int, default=2, help="ScienceWorld test variations per task")
    parser.add_argument("--tasks", default=None, help="ScienceWorld tasks, comma-separated (default: all 30)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="episode limit (default: textworld 20, scienceworld 100)")
    parser.add_argument("--seconds", type=float, default=5.0, help="time per speed measure")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    # one engine at a time keeps the other's figures from an earlier run
    result: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    result["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                         "python": platform.python_version()}
    with tempfile.TemporaryDirectory() as cache:
        os.environ["SIRI_CACHE"] = cache  # fresh: TextWorld games are generated, not read from an earlier run
        if "textworld" in args.env:
            tw = result["textworld"] = bench_textworld(args.games, args.seconds, args.max_steps or 20)
            print(f"textworld {tw['challenge']} {tw['settings']}")
            print(f"  generate a game {tw['generate_s']:.2f} s   "
                  f"load+reset {tw['load_and_reset_s'] * 1000:.0f} ms   "
                  f"reset {tw['reset_s'] * 1000:.1f} ms   "
                  f"random steps/s {tw['random_steps_per_s']:.0f}")
            for policy in ("expert", "random"):
                s = tw[policy]
                print(f"  {policy:<7} {s['episodes']} eval games: success {s['success']:.3f} "
                      f"score {s['score']:.3f} steps {s['steps']:.1f} (max {tw['max_steps']})")
        if "scienceworld" in args.env:
            tasks = args.tasks.split(",") if args.tasks else None
            sw = bench_scienceworld(tasks, args.variations, args.seconds, args.max_steps or 100)
            result["scienceworld"] = sw
            print(f"scienceworld test split, {args.variations} variation(s) per task, "
                  f"max_steps {sw['max_steps']}, max_actions {sw['max_actions']}")
            print(f"  JVM start {sw['jvm_start_s']:.2f} s   new simulation {sw['new_simulation_s']:.2f} s   "
                  f"reset {sw['reset_s'] * 1000:.0f} ms "
                  f"(engine's own reset {sw['engine_reset_s'] * 1000:.0f} ms)   "
                  f"random steps/s {sw['random_steps_per_s']:.1f}")
            header = (f"  {'task':<48} {'expert':>6} {'random':>6} {'r.score':>7} {'gold':>5} {'listed':>6} "
                      f"{'choosable':>9}")
            print(header)
            for task, r in sw["per_task"].items():
                print(f"  {task:<48} {r['expert_success']:>6.2f} {r['random_success']:>6.2f} "
                      f"{r['random_score']:>7.3f} {r['gold_steps']:>5.0f} {r['actions_listed']:>6.0f} "
                      f"{r['expert_choosable']:>9.2f}")
            o = sw["overall"]
            print(f"  {'overall (' + str(sw['episodes']) + ' episodes)':<48} {o['expert_success']:>6.2f} "
                  f"{o['random_success']:>6.2f} {o['random_score']:>7.3f} {'':>5} {'':>6} "
                  f"{o['expert_choosable']:>9.2f}")
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
