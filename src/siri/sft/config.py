"""The warm start's settings: which demonstrations are played and how the supervised run trains on them.

One frozen dataclass, shared by the demonstrator (the environment it plays), the warm start and the tiny
model's recipe (``TinyConfig`` extends it, and its fields enter the tiny model's cache key).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class WarmStartConfig:
    """The demonstrations and the supervised run (defaults: the tiny model's recipe).

    Attributes:
        env: environment the demonstrations are played in ("household" or "shop").
        seed: seeds the demonstrations, the batching and (for the tiny model) the weights.
        sft_episodes: noisy-demonstrator episodes.
        random_action_share: probability that a step takes a random admissible action.
        search_share: probability that a step where the expert uses hidden state is an honest search.
        invalid_action_share: probability that a step takes an inadmissible action.
        imitate: "behaviour" also imitates the random actions (a noisy policy); "expert" labels
            those states with the expert's action (DAgger-style). Searches are always imitated.
        skill_prompt_share: share of prompts that show a block of trace skills.
        matching_twins: probability that a decision state (something to take in view, nothing held)
            also gets a counterfactual twin: the same prompt asking for another object, labelled as the
            demonstrator would act on it (take it if it is in view, else search on). Only for envs
            that name the goal object (household). A twin differs from its original in the task's
            object word alone, so only "is the task's object in view?" explains both labels. It helps
            the matching benchmark, but the full household only a little (docs/tiny-model.md). Off in
            every default.
        mining_examples: mining-prompt examples (prompt -> trace skills).
        mining_episodes: successful episodes shown per mining example.
        mining_max_skills: skills asked for in a mining example.
        prompt_lm_weight: weight of an auxiliary next-token loss on the prompt tokens. It gives the
            tiny model ~50x more signal per example (reading observations and admissible lists) and
            makes copying from the prompt — what acting needs — emerge in a few hundred steps. A
            pretrained LM reads already: 0 there.
        prompt_lm_positions: prompt positions per example that the auxiliary loss is taken at, drawn at
            random each step (0: all of them). With a large vocabulary (shop: ~27k words) projecting
            every position onto it costs more than the whole transformer; a sample keeps the same
            objective in expectation at a fraction of the cost.
        train_steps, batch_size, lr, warmup_steps, weight_decay: the supervised run (AdamW, linear
            warm-up, cosine decay to a tenth of ``lr``).
        history_len: prompt history (must match the rollout's; the paper's 2).
        max_steps: episode step limit of the demonstrations (None: the env's default).
        env_options: options of the environment the demonstrations are played in (e.g.
            ``{"clutter": 0.0}``: household rooms without distractor objects).
    """

    env: str = "household"
    seed: int = 0
    sft_episodes: int = 500
    random_action_share: float = 0.1
    search_share: float = 1.0
    invalid_action_share: float = 0.05
    imitate: str = "behaviour"
    skill_prompt_share: float = 0.2
    matching_twins: float = 0.0
    mining_examples: int = 120
    mining_episodes: int = 2
    mining_max_skills: int = 3
    prompt_lm_weight: float = 0.5
    prompt_lm_positions: int = 0
    train_steps: int = 900
    batch_size: int = 8
    lr: float = 2e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    history_len: int = 2
    max_steps: int | None = None
    env_options: dict[str, Any] = dataclasses.field(default_factory=dict)
