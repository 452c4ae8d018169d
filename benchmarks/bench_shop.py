"""Shop environment on the shipped (generated) catalog: build time, search latency, steps/s.

Measures, on the default 5,000-product catalog: catalog generation and BM25 index build; search
latency for distinct queries (the suggested queries of every eval goal) with our posting-list scorer,
with the query cache warm, and with ``rank_bm25``'s own ``get_scores`` (the reference it equals);
env steps/s under a uniformly random admissible policy and under the expert (which also plans);
the expert's and the random policy's score and success on the eval split. Prints a table and writes
``benchmarks/out/shop.json``.

    .venv/bin/python benchmarks/bench_shop.py [--episodes 500] [--reference-queries 200]
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
from pathlib import Path

import numpy as np

from siri.envs.shop import ShopEnv
from siri.envs.shop.generate import generate_catalog
from siri.envs.shop.loading import CATALOG_SEED, DEFAULT_NUM_PRODUCTS
from siri.envs.shop.search import SEARCH_RETURN_N, SearchIndex, suggested_queries, tokenize
from siri.utils.io import atomic_write_json

OUT = Path(__file__).parent / "out" / "shop.json"


def percentile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def bench_search(index: SearchIndex, queries: list[str], reference_queries: int) -> dict[str, float]:
    uncached = []
    for q in queries:
        t0 = time.perf_counter()
        scores = index.scores(q)  # the full search path, bypassing the query cache
        np.argsort(-scores, kind="stable")[:SEARCH_RETURN_N]
        uncached.append(time.perf_counter() - t0)
    for q in queries:
        index.search(q)  # fill the cache
    cached = []
    for q in queries:
        t0 = time.perf_counter()
        index.search(q)
        cached.append(time.perf_counter() - t0)
    reference = []
    for q in queries[:reference_queries]:
        t0 = time.perf_counter()
        index.bm25.get_scores(tokenize(q))
        reference.append(time.perf_counter() - t0)
    ms = 1e3
    return {
        "queries": len(queries),
        "uncached_mean_ms": statistics.mean(uncached) * ms,
        "uncached_p99_ms": percentile(uncached, 0.99) * ms,
        "cached_mean_ms": statistics.mean(cached) * ms,
        "rank_bm25_get_scores_mean_ms": statistics.mean(reference) * ms,
        "speedup_vs_rank_bm25": statistics.mean(reference) / statistics.mean(uncached),
    }


def bench_policy(env: ShopEnv, policy: str, episodes: int) -> dict[str, float]:
    rng = random.Random(0)
    steps, won, score = 0, 0, 0.0
    t0 = time.perf_counter()
    for seed in range(episodes):
        obs = env.reset(seed)
        while True:
            action = env.expert_action() if policy == "expert" else rng.choice(obs.admissible_actions)
            step = env.step(action)
            obs = step.observation
            steps += 1
            if step.done:
                break
        won += step.won
        score += step.score
    elapsed = time.perf_counter() - t0
    return {
        "episodes": episodes,
        "steps": steps,
        "steps_per_s": steps / elapsed,
        "episodes_per_s": episodes / elapsed,
        "success_rate": won / episodes,
        "mean_score": score / episodes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--episodes", type=int, default=500, help="episodes per policy (eval split, seeds 0..N-1)"
    )
    parser.add_argument("--reference-queries", type=int, default=200, help="queries timed with rank_bm25")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    t0 = time.perf_counter()
    catalog = generate_catalog(DEFAULT_NUM_PRODUCTS, CATALOG_SEED)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    index = SearchIndex(catalog.products)
    index_s = time.perf_counter() - t0
    queries = list(
        dict.fromkeys(
            q
            for g in catalog.splits["eval"]
            for q in suggested_queries(g.instruction, g.attributes, g.options)
        )
    )
    search = bench_search(index, queries, args.reference_queries)

    env = ShopEnv(split="eval")  # fresh process-level catalog (built again here, cached from now on)
    random_policy = bench_policy(env, "random", args.episodes)
    expert_cold = bench_policy(env, "expert", args.episodes)  # plans every goal
    expert_warm = bench_policy(env, "expert", args.episodes)  # plans cached
    report = {
        "catalog": {
            "products": len(catalog.products),
            "train_goals": len(catalog.splits["train"]),
            "eval_goals": len(catalog.splits["eval"]),
            "generate_s": gen_s,
            "index_build_s": index_s,
        },
        "search": search,
        "random_policy": random_policy,
        "expert_first_pass": expert_cold,
        "expert_planned": expert_warm,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        },
    }
    c = report["catalog"]
    print(f"catalog: {c['products']} products, generated in {gen_s:.2f}s, BM25 index built in {index_s:.2f}s")
    print(
        f"search over {search['queries']} distinct queries: {search['uncached_mean_ms']:.3f} ms mean "
        f"(p99 {search['uncached_p99_ms']:.3f}), cached {search['cached_mean_ms'] * 1e3:.1f} us, "
        f"rank_bm25 get_scores {search['rank_bm25_get_scores_mean_ms']:.2f} ms "
        f"(x{search['speedup_vs_rank_bm25']:.0f})"
    )
    print(f"{'policy':<22} {'steps/s':>10} {'success':>8} {'score':>7}")
    for name, r in (
        ("random", random_policy),
        ("expert (planning)", expert_cold),
        ("expert (planned)", expert_warm),
    ):
        print(f"{name:<22} {r['steps_per_s']:>10,.0f} {r['success_rate']:>8.3f} {r['mean_score']:>7.3f}")
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
