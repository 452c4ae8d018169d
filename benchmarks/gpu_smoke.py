"""GPU smoke check: two GiGPO iterations on the household with a Qwen2-architecture model, in both action modes.

No download: the model is a randomly initialised Qwen2 (Qwen2.5-0.5B's shape by default) built from a config,
with the project's word-level tokenizer over household text. On CUDA it runs in bfloat16 with SDPA attention
and prints, per action mode, rollout tokens/s (generated, and prompt + generated), update tokens/s (prompt +
response tokens scored, forward and backward) and peak GPU memory. Any device-placement or dtype slip fails
loudly: a parameter off the device or in another dtype is an error before training, and torch's own
"tensors on different devices" errors end the run with a non-zero exit.

    python benchmarks/gpu_smoke.py                          # CUDA, ~0.5B parameters, < 5 minutes on one GPU
    python benchmarks/gpu_smoke.py --device cpu --size tiny # the same path on CPU in a minute (CI runs this)

Writes ``benchmarks/out/gpu_smoke.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from siri.config import TrainConfig, preset_path
from siri.models.policy import Policy
from siri.models.tokenizer import build_word_tokenizer
from siri.rl.trainer import Trainer
from siri.sft.tiny import TinyConfig, vocabulary_corpus
from siri.utils.io import atomic_write_json

OUT = Path(__file__).parent / "out" / "gpu_smoke.json"

# Qwen2 shapes: "0.5b" is Qwen2.5-0.5B's (24 layers, 896 wide, 14 heads, 2 KV heads); "tiny" checks the path.
SIZES: dict[str, dict[str, int]] = {
    "0.5b": {"hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
             "intermediate_size": 4864},
    "tiny": {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "intermediate_size": 128},
}


class TimedTrainer(Trainer):
    """A ``Trainer`` that times its collections and updates and counts their tokens."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timings: dict[str, float] = {"collect_s": 0.0, "generated": 0.0, "rollout_tokens": 0.0,
                                          "update_s": 0.0, "update_tokens": 0.0}
        self.last_records: list[Any] = []

    def _collect(self, specs: Any, rollout: Any, options: dict[str, Any]) -> Any:
        _sync()
        start = time.perf_counter()
        trajectories = super()._collect(specs, rollout, options)
        _sync()
        self.timings["collect_s"] += time.perf_counter() - start
        steps = [s for t in trajectories for s in t.steps]
        self.timings["generated"] += sum(len(s.response_ids) for s in steps)
        self.timings["rollout_tokens"] += sum(len(s.prompt_ids) + len(s.response_ids) for s in steps)
        return trajectories

    def update(self, batch: Any) -> dict[str, float]:
        _sync()
        start = time.perf_counter()
        stats = super().update(batch)
        _sync()
        self.timings["update_s"] += time.perf_counter() - start
        scored = batch.records  # every step is scored once per PPO epoch
        self.timings["update_tokens"] += self.cfg.optim.ppo_epochs * sum(
            len(r.prompt_ids) + len(r.response_ids) for r in scored)
        return stats


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def build_model(out: Path, size: str, dtype: torch.dtype, seed: int = 0) -> int:
    """A random Qwen2 with the household word tokenizer, saved to ``out``; returns its parameter count."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_word_tokenizer(vocabulary_corpus(TinyConfig(env="household", vocab_episodes=40)))
    config = Qwen2Config(vocab_size=len(tokenizer), max_position_embeddings=4096, tie_word_embeddings=True,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, **SIZES[size])
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(dtype)
    Policy(model=model, tokenizer=tokenizer, name=f"qwen2-random-{size}", path="", env="household").save(out)
    return sum(p.numel() for p in model.parameters())


def check_placement(trainer: Trainer, device: str, dtype: torch.dtype) -> None:
    """Every parameter on the run's device in the run's dtype, and SDPA attention on CUDA; else an error."""
    model = trainer.policy.model
    wrong = [(n, str(p.device), str(p.dtype)) for n, p in model.named_parameters()
             if p.device.type != torch.device(device).type or p.dtype != dtype]
    if wrong:
        raise RuntimeError(f"{len(wrong)} parameters are not on {device} in {dtype}, e.g. {wrong[:3]}")
    attention = getattr(model.config, "_attn_implementation", None)
    if device == "cuda" and attention != "sdpa":
        raise RuntimeError(f"attention implementation is {attention!r}, not sdpa")


def run_mode(model_dir: Path, mode: str, device: str, dtype_name: str, groups: int, group_size: int,
             max_steps: int, runs: Path) -> dict[str, Any]:
    cfg = TrainConfig.load(preset_path("household-tiny-gigpo"), [
        f"model.name_or_path={model_dir}", f"model.action_mode={mode}", f"model.dtype={dtype_name}",
        f"train.device={device}", "train.iterations=2", "train.eval_every=0", "train.eval_episodes=2",
        f"rollout.num_groups={groups}", f"rollout.group_size={group_size}", f"env.max_steps={max_steps}",
        "rollout.max_new_tokens=16", "optim.micro_batch_size=16", "train.save_every=0"])
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer = TimedTrainer.create(cfg, runs / mode)
    check_placement(trainer, device, getattr(torch, dtype_name))
    start = time.perf_counter()
    records = [trainer.step() for _ in range(2)]
    trainer.close()
    trainer.run.close()
    t = trainer.timings
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return {"seconds": round(time.perf_counter() - start, 1),
            "rollout_generated_tokens_per_s": round(t["generated"] / t["collect_s"], 1),
            "rollout_tokens_per_s": round(t["rollout_tokens"] / t["collect_s"], 1),
            "update_tokens_per_s": round(t["update_tokens"] / t["update_s"], 1),
            "peak_memory_mb": round(peak, 1), "peak_memory_kind": "cuda allocated" if device == "cuda" else "RSS",
            "train_success": [r["train/success"] for r in records],
            "invalid_rate": [r["train/invalid_rate"] for r in records]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--size", default="0.5b", choices=sorted(SIZES))
    parser.add_argument("--groups", type=int, default=None, help="groups per iteration (cuda: 8, cpu: 2)")
    parser.add_argument("--group-size", type=int, default=None, help="rollouts per group (cuda: 8, cpu: 2)")
    parser.add_argument("--max-steps", type=int, default=None, help="episode step limit (cuda: 15, cpu: 3)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run with --device cpu --size tiny for the CPU path")
    gpu = args.device == "cuda"
    dtype_name = "bfloat16" if gpu else "float32"
    groups = args.groups or (8 if gpu else 2)
    group_size = args.group_size or (8 if gpu else 2)
    max_steps = args.max_steps or (15 if gpu else 3)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        parameters = build_model(model_dir, args.size, getattr(torch, dtype_name))
        results = {mode: run_mode(model_dir, mode, args.device, dtype_name, groups, group_size, max_steps,
                                  Path(tmp) / "runs") for mode in ("generate", "choose")}
    report = {"device": torch.cuda.get_device_name(0) if gpu else "cpu", "size": args.size, "parameters": parameters,
              "dtype": dtype_name, "groups": groups, "group_size": group_size, "max_steps": max_steps,
              "torch": torch.__version__, "seconds": round(time.perf_counter() - started, 1), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
