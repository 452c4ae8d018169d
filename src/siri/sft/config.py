"""The warm start's settings: which demonstrations are played and how the supervised run trains on them.

One frozen, documented config (``siri.utils.config.Config``: strict ``key=value`` overrides, bounds,
``help_text``), shared by the demonstrator (the environment it plays), the warm start and the tiny model's
recipe (``TinyConfig`` extends it, and its fields enter the tiny model's cache key). Its defaults are the
tiny model's recipe; ``PRETRAINED`` is the starting point of ``siri model warm-start`` (a pretrained LM),
whose ``key=value`` arguments override these fields by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from siri.utils.config import Config, opt


@dataclass(frozen=True)
class WarmStartConfig(Config):
    """The demonstrations and the supervised run (defaults: the tiny model's recipe).

    Each field's help says what it sets; the why of some of them:

    - ``matching_twins``: a twin differs from its original in the task's object word alone, so only "is the
      task's object in view?" explains both labels. It helps the matching benchmark, but the full household
      only a little (docs/tiny-model.md). Off in every default.
    - ``follow_skills``: SIRI needs a policy whose action depends on what a skill says (DESIGN.md, "When
      SIRI can help at all"); a demonstrator that ignores the skills it shows teaches ignoring them. The
      places shown vary (``skill_places_mix``), decoys included, so that the text, not its presence, decides.
    - ``skill_twins``: one state shown under several skills, each labelled with the move its places lead to,
      is the one signal a small model cannot explain away by the state. Even so the tiny model learns it only
      in a phase on those examples alone (``focus_steps``; benchmarks/RESULTS.md, "Does the tiny model
      act on what a skill says?").
    - ``delivery_twins``: after a pickup the tiny model walks on at random instead of to the receptacle the
      task names: the same rare far-away word to copy as a skill's place, learned the same way.
    - ``lamp_skills``: a look-at task searches twice, for the object and then for a lamp; a skill that names
      the object's places alone left that second search, where those episodes were lost, as blind as before
      (benchmarks/RESULTS.md, "Delivery puts, measured"). ``lamp_stage``: in the object's focus stage the lamp
      examples kept that stage on its plateau (0.17-0.34 after 5,000 steps, against below 0.1 at step 3,245
      without them), and the model that came out had lost the plain walk to the task's receptacle.
    - ``presence_twins``: with a skill in most prompts, the tiny model tied behaviour no skill decides (walking
      to the task's receptacle after the pickup) to the block's presence: without a skill it succeeded less.
    - ``prompt_lm_weight``: the auxiliary next-token loss on the prompt gives the tiny model ~50x more signal
      per example (reading observations and admissible lists) and makes copying from the prompt (what acting
      needs) emerge in a few hundred steps. A pretrained LM reads already: 0 there.
    - ``prompt_lm_positions``: with a large vocabulary (shop: ~27k words) projecting every position onto it
      costs more than the whole transformer; a sample keeps the same objective in expectation at a fraction
      of the cost.
    """

    env: str = opt("household", "environment the demonstrations are played in: household or shop")
    seed: int = opt(0, "seeds the demonstrations, the batching and (for the tiny model) the weights")
    sft_episodes: int = opt(500, "noisy-demonstrator episodes played", min=1)
    random_action_share: float = opt(0.1, "probability that a demonstrator step takes a random admissible action "
                                     "(imitated too with imitate=behaviour: RL headroom)", min=0.0, max=1.0)
    search_share: float = opt(1.0, "probability that a step where the expert uses hidden state is an honest "
                              "search", min=0.0, max=1.0)
    invalid_action_share: float = opt(0.05, "probability that a demonstrator step takes an inadmissible action",
                                      min=0.0, max=1.0)
    imitate: Literal["behaviour", "expert"] = opt(
        "behaviour", "behaviour: also imitate the random actions (a noisy policy); expert: label those states "
        "with the expert's action (DAgger-style). Searches are always imitated")
    skill_prompt_share: float = opt(0.2, "share of prompts that show a block of trace skills (with "
                                    "follow_skills also the share of episodes shown a placement skill)",
                                    min=0.0, max=1.0)
    matching_twins: float = opt(0.0, "probability that a decision state (something to take in view, nothing "
                                "held) also gets a counterfactual twin asking for another object, labelled as the "
                                "demonstrator would act on it; envs that name the goal object only (household)",
                                min=0.0, max=1.0)
    follow_skills: bool = opt(False, "household: a skill_prompt_share of the episodes show one placement "
                              "skill for the task's object ('WHEN you need a mug THEN look in the cabinet, ... "
                              "first') and the demonstrator searches the places it names, in its order, first; "
                              "the other episodes show the trace skills without their placement ones")
    skill_twins: int = opt(0, "with follow_skills: counterfactual copies of each skill episode's first step "
                           "(nothing visited yet), each shown another placement skill and labelled where that skill "
                           "leads", min=0)
    delivery_twins: int = opt(0, "household: counterfactual copies of each delivery step (holding the task's "
                              "object, walking to the receptacle the task ends with), the task naming another "
                              "receptacle of the room and the label walking there", min=0)
    delivery_puts: bool = opt(False, "with delivery_twins: the steps that put the object into the task's "
                              "receptacle join the delivery focus stage (each delivery_twins + 1 times, as many "
                              "as each walk step with its twins), so the stage teaches arriving and putting")
    presence_twins: bool = opt(False, "with follow_skills: each step whose move no skill decides (something held, "
                               "the object in view, or the skill's places searched) also appears the other way, "
                               "without the prompt's skill block or with a placement skill where it had none, "
                               "same label")
    lamp_skills: bool = opt(False, "with follow_skills: look-at episodes may also show a placement skill for the "
                            "task's lamp ('WHEN you need a desklamp THEN look in the desk and the sidetable first', "
                            "drawn as the object's), which the demonstrator follows once the object is in hand; the "
                            "step after the pickup gets skill twins under other lamp skills")
    lamp_stage: bool = opt(False, "with lamp_skills and focus_steps: the lamp skill's decided steps (and their twins) "
                           "get a focus stage of their own, after the object's and before the delivery stage, "
                           "instead of sharing the object's")
    focus_steps: int = opt(0, "optimizer steps of a first phase on the examples a word far from the answer "
                           "decides alone (skill episodes' first steps and their skill twins, delivery steps and "
                           "their twins; no prompt loss), before the train_steps on every example", min=0)
    focus_loss_target: float = opt(0.0, "end the focus phase early once its response loss, averaged over 200 "
                                   "steps, falls below this (0: run all focus_steps)", min=0.0)
    skill_places_mix: tuple[float, float, float] = opt(
        (0.5, 0.25, 0.25), "with follow_skills: weights of the places a shown skill names: the object's "
        "typical kinds, atypical ones (decoys), random compatible ones (all among the room's)", min=0.0)
    mining_examples: int = opt(120, "skill-writing examples (the mining prompt -> trace skills)", min=0)
    mining_episodes: int = opt(2, "successful episodes shown per mining example", min=1)
    mining_max_skills: int = opt(3, "skills asked for in a mining example", min=1)
    trace_style: Literal["legacy", "sentences"] = opt(
        "legacy", "wording of the trace skills shown in prompts and taught by the mining examples "
        "(siri.skills.trace.TRACE_STYLES): legacy keeps the texts earlier tiny models were built on; sentences "
        "writes clean sentences ('WHEN you need an apple THEN look in the countertop and the fridge first')")
    prompt_lm_weight: float = opt(0.5, "weight of an auxiliary next-token loss on the prompt tokens (0: off)",
                                  min=0.0)
    prompt_lm_positions: int = opt(0, "prompt positions per example the auxiliary loss is taken at, drawn each "
                                   "step (0: all of them)", min=0)
    train_steps: int = opt(900, "optimizer steps of the supervised run on every example (AdamW, linear "
                           "warm-up, cosine decay to a tenth of lr)", min=1)
    batch_size: int = opt(8, "examples per step", min=1)
    lr: float = opt(2e-3, "peak learning rate", gt=0.0)
    warmup_steps: int = opt(30, "linear warm-up steps", min=0)
    weight_decay: float = opt(0.01, "AdamW weight decay", min=0.0)
    history_len: int = opt(2, "prompt history (must match the rollout's; the paper's 2)", min=0)
    max_steps: int | None = opt(None, "episode step limit of the demonstrations (None: the env's default)", min=1)
    env_options: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "options of the environment the demonstrations are played in (-o key=value), e.g. {clutter: 0}: "
                "household rooms without distractor objects"})
    lora: bool = opt(False, "train LoRA adapters (merged into the saved weights) instead of every weight (a "
                     "pretrained LM's warm start; the tiny model is built from scratch and trains every weight)")
    lora_r: int = opt(16, "LoRA rank (with lora=true)", min=1)


# `siri model warm-start`'s starting point: a pretrained LM needs fewer, shorter demonstrations, a smaller
# learning rate, no prompt language-model loss (it reads already) and LoRA adapters. SmolLM2-135M: ~45 min on
# CPU with these (benchmarks/RESULTS.md).
PRETRAINED = WarmStartConfig(sft_episodes=60, mining_examples=16, prompt_lm_weight=0.0, train_steps=150,
                             batch_size=4, lr=2e-4, warmup_steps=15, lora=True)
