"""A real but micro policy for the scale-out tests: word-level tokenizer over household text + a random
1-layer Llama. Built in about a second (no warm start), deterministic from its seed."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterable
from pathlib import Path

from siri.envs import Env, make
from siri.models.policy import Policy
from siri.models.tokenizer import build_word_tokenizer
from siri.rollout.prompts import TEMPLATE_VOCAB_TEXT
from siri.rollout.types import StepRecord, Trajectory
from siri.sft.tiny import TinyConfig

# A warm-started tiny model at micro size (~10 s to build): the real tiny recipe, for pipeline tests.
MICRO_TINY = TinyConfig(env="household", seed=3, hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                        vocab_episodes=30, sft_episodes=6, mining_examples=4, train_steps=4, batch_size=4, warmup_steps=1)


def household_texts(seeds: range = range(40), steps: int = 12) -> list[str]:
    """Texts of random household episodes (observations, tasks, admissible actions) for the vocabulary."""
    rng = random.Random(0)
    texts = [TEMPLATE_VOCAB_TEXT]
    for split in ("train", "eval_id"):
        env = make("household", split=split, max_steps=steps)
        for seed in seeds:
            obs = env.reset(seed)
            for _ in range(steps):
                texts += [obs.text, obs.task, *obs.admissible_actions]
                step = env.step(rng.choice(obs.admissible_actions))
                obs = step.observation
                if step.done:
                    break
    return texts


def micro_policy(seed: int = 0, reference: bool = True) -> Policy:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = build_word_tokenizer(household_texts())
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=4096, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    frozen = copy.deepcopy(model).eval().requires_grad_(False) if reference else None
    return Policy(model=model, tokenizer=tokenizer, name="micro", path="", action_mode="choose", env="household",
                  _frozen_reference=frozen)


def clone(policy: Policy) -> Policy:
    """An independent copy (weights, reference) of ``policy``."""
    return copy.deepcopy(policy)


def save_micro_policy(texts: list[str], out_dir: Path, env: str, seed: int = 0) -> Path:
    """A random 1-layer Llama whose word-level tokenizer covers ``texts`` (plus every prompt and mining word),
    saved as a model directory for ``model.name_or_path``: a real policy for a short training test on an
    environment without a tiny model (textworld, scienceworld). Built in about a second."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from siri.rollout.prompts import MORE_DESCRIPTIONS
    from siri.skills.prompts import MINING_VOCAB_TEXT

    tokenizer = build_word_tokenizer([TEMPLATE_VOCAB_TEXT, MINING_VOCAB_TEXT, *MORE_DESCRIPTIONS.values(),
                                      *texts])
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=8192,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    policy = Policy(model=model, tokenizer=tokenizer, name="micro", path="", action_mode="choose", env=env)
    policy.save(out_dir)
    return out_dir


def episode_texts(env: Env, seeds: Iterable[int], steps: int, rng_seed: int = 0) -> list[str]:
    """Every text an agent reads in random episodes of ``env`` (observations, tasks, actions, templates)."""
    rng = random.Random(rng_seed)
    texts: list[str] = []
    for seed in seeds:
        obs = env.reset(seed)
        for _ in range(steps):
            texts += [obs.text, obs.task, *obs.admissible_actions, *obs.action_templates]
            step = env.step(rng.choice(obs.admissible_actions))
            obs = step.observation
            if step.done:
                break
        texts += [obs.text, *obs.admissible_actions]
    return texts


def expert_trajectories(env: Env, seeds: Iterable[int]) -> list[Trajectory]:
    """The expert's episodes of ``seeds`` as trajectories (no model: empty token fields), for the trace
    miner."""
    out = []
    for seed in seeds:
        obs = first = env.reset(seed)
        steps = []
        while True:
            action = env.expert_action()
            result = env.step(action)
            steps.append(StepRecord(group=0, traj=seed, t=len(steps), seed=seed, task_type=first.task_type,
                                    prompt_ids=[], response_ids=[], old_logprobs=[], action_mask=[],
                                    action=action, valid=result.valid, reward=result.reward, done=result.done,
                                    won=result.won, anchor=obs.anchor, observation_text=obs.text))
            obs = result.observation
            if result.done:
                break
        out.append(Trajectory(group=0, traj=seed, seed=seed, task=first.task, task_type=first.task_type,
                              steps=steps, won=result.won, score=result.score))
    return out
