"""Update throughput: micro-batches of similar lengths (what the trainer does) vs in collection order.

The trainer sorts a batch's steps by prompt + response length before cutting micro-batches
(``siri.rl.update.by_length``), so that left padding wastes little compute; the loss is a sum over
steps, so the order changes nothing else. This benchmark collects real household steps with the tiny
model, then times forward + backward of ``response_logprobs`` (the policy-loss pass) over the same
steps in both orders, and reports tokens/s, the padded share of the computed tokens, and peak memory.

    .venv/bin/python benchmarks/bench_update.py [--episodes 16] [--micro-batch 64] [--repeats 3]

Writes ``benchmarks/out/update.json``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from bench_rollout import peak_rss_mb  # benchmarks/ is on sys.path: run as a script
from siri.models.loading import load_policy
from siri.rl.scoring import response_logprobs
from siri.rl.update import by_length
from siri.rollout.collector import EpisodeSpec, RolloutConfig, collect
from siri.sft.tiny import HOUSEHOLD_LITE
from siri.utils.io import atomic_write_json

OUT = Path(__file__).parent / "out" / "update.json"


def time_pass(policy, records, order: list[int], micro_batch: int, repeats: int) -> dict[str, float]:
    """Seconds per full pass (forward + backward over every micro-batch) and the padded share."""
    real = sum(len(r.prompt_ids) + len(r.response_ids) for r in records)
    computed = 0
    for start in range(0, len(order), micro_batch):
        chunk = [records[i] for i in order[start : start + micro_batch]]
        computed += len(chunk) * max(len(r.prompt_ids) + len(r.response_ids) for r in chunk)
    best = float("inf")
    for _ in range(repeats):
        policy.model.zero_grad(set_to_none=True)
        started = time.perf_counter()
        for start in range(0, len(order), micro_batch):
            chunk = [records[i] for i in order[start : start + micro_batch]]
            logprobs, mask, _ = response_logprobs(policy.model, chunk, pad_id=policy.pad_id)
            (-(logprobs * mask).sum() / mask.sum()).backward()
        best = min(best, time.perf_counter() - started)
    return {"seconds": round(best, 3), "tokens_per_s": round(real / best, 1),
            "padded_share": round(1 - real / computed, 3), "real_tokens": real, "computed_tokens": computed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="policy name or directory (default: the tiny household model)")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--micro-batch", type=int, default=64, help="the tiny presets' optim.micro_batch_size")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    policy = load_policy(args.model, reference=False, action_mode="choose")
    policy.model.train()
    specs = [EpisodeSpec(group=i // 4, seed=i // 4) for i in range(args.episodes)]
    options = {**HOUSEHOLD_LITE, "max_steps": 20}
    trajectories = collect(policy, "household", specs, RolloutConfig(mode="choose", seed=0), env_options=options)
    records = [s for t in trajectories for s in t.steps]
    collection_order = list(range(len(records)))
    rows = {
        "collection order": time_pass(policy, records, collection_order, args.micro_batch, args.repeats),
        "sorted by length": time_pass(policy, records, by_length(collection_order, records), args.micro_batch,
                                      args.repeats),
    }
    speedup = rows["collection order"]["seconds"] / rows["sorted by length"]["seconds"]
    print(f"{len(records)} household steps, micro-batch {args.micro_batch}, torch threads {torch.get_num_threads()}")
    for name, row in rows.items():
        print(f"  {name:17s} {row['seconds']:7.2f} s/pass  {row['tokens_per_s']:9.0f} tokens/s  "
              f"padding {row['padded_share']:.0%} of computed tokens")
    peak_mb = peak_rss_mb()
    print(f"  speedup of sorting: {speedup:.2f}x   peak RSS {peak_mb:.0f} MB")
    atomic_write_json(args.out, {"steps": len(records), "micro_batch": args.micro_batch, "rows": rows,
                            "speedup": round(speedup, 2), "peak_rss_mb": round(peak_mb),
                            "machine": {"cores": torch.get_num_threads(), "python": platform.python_version(),
                                        "torch": torch.__version__}})


if __name__ == "__main__":
    main()
