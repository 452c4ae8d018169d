"""Supervised warm start on an environment's noisy demonstrator, for the tiny model and for real LMs.

Sparse-reward RL learns only from groups in which some rollout succeeds. A policy that never succeeds
gets advantages, and gradients, of exactly zero: SmolLM2-135M won 2 of 64 household-lite episodes in
four GiGPO iterations (benchmarks/RESULTS.md). A short supervised run on demonstrations gives RL a
starting policy with successes to learn from, as SFT does before RL in most agent pipelines. The
tiny model is built with it (``siri.models.tiny``); ``siri model warm-start`` runs it on any causal
LM, with LoRA adapters merged into the saved weights.

The demonstrator is *searching and noisy*. The environments' experts know where everything is
(privileged); a policy that only reads the prompt cannot, so imitating them teaches walking straight
to hidden objects, which it cannot reproduce, and then endless loops. Where the expert says its next
step comes from hidden state (``expert_searching()``: walking to where the object hides), the
demonstrator searches honestly instead, with probability ``search_share``: it opens the closed place
it stands at, else goes to a random place it has not visited. Everything else (taking what is in view,
processing it, delivering it) follows the expert. With probability ``random_action_share`` a step is
a random admissible action, with ``invalid_action_share`` an inadmissible one (so "Nothing happens."
states are seen, with the expert's recovery as label). The policy imitates the searches, the random
actions too when ``imitate="behaviour"`` (a noisy policy: RL headroom), never the invalid ones. A share
of the prompts carry a block of ``trace`` skills of their task type (so skill-augmented prompts are
familiar), and mining examples teach the skill-writing prompt: the mining messages over successful
episodes of a task type, answered with the deterministic ``trace`` skills of those episodes.
The prompts are the rollout's own (``build_prompt`` + the tokenizer's chat template), and the targets
are ``<action>...</action>``: exactly what ``choose`` mode scores and ``generate`` mode writes.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from siri.envs import Env, Observation, make
from siri.models.loading import Policy
from siri.rollout.parsing import CLOSE, OPEN
from siri.rollout.prompts import build_prompt, chat_ids
from siri.rollout.types import StepRecord, Trajectory

REPORT_FILE = "siri_warm_start.json"


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


# --- the demonstrator ------------------------------------------------------------------------------------


@dataclass
class Episode:
    """A noisy-expert episode: the observation before each action, the actions, and the outcome."""

    seed: int
    observations: list[Observation]
    actions: list[str]
    next_texts: list[str]
    won: bool
    expert_actions: list[str] = dataclasses.field(default_factory=list)
    goal_object: str | None = None  # the word of the object the task asks for, where the env says it


def noisy_episode(
    env: Env, seed: int, rng: random.Random, random_share: float, search_share: float = 0.0, invalid_share: float = 0.0
) -> Episode:
    """Play one episode with the searching, noisy demonstrator of the module docstring.

    ``Episode.expert_actions`` holds the label of every step: the action taken, except the expert's
    action where the step was invalid (and, for the caller to choose, where it was random).
    """
    obs = env.reset(seed)
    goal_object = getattr(env, "goal_object", None)
    episode = Episode(seed, [], [], [], False, goal_object=goal_object() if goal_object is not None else None)
    visited: set[str] = set()
    searching = getattr(env, "expert_searching", None)  # envs whose expert can say when it uses hidden state
    while True:
        expert = env.expert_action()
        admissible = obs.admissible_actions
        label = expert
        draw = rng.random()
        if draw < invalid_share and admissible:
            action = _inadmissible_variant(rng.choice(admissible), admissible)
        elif draw < invalid_share + random_share and admissible:
            action = rng.choice(admissible)
        else:
            action = expert
            if searching is not None and searching() and rng.random() < search_share:
                action = label = _search_step(admissible, visited, rng) or expert
        if action.startswith("go to "):
            visited.add(action[6:])
        step = env.step(action)
        episode.expert_actions.append(label)
        episode.observations.append(obs)
        episode.actions.append(action)
        episode.next_texts.append(step.observation.text)
        obs = step.observation
        if step.done:
            episode.won = bool(step.won)
            return episode


def _search_step(admissible: tuple[str, ...], visited: set[str], rng: random.Random) -> str | None:
    """An honest search: look inside the closed place here, else go to a random place not visited yet."""
    opens = [a for a in admissible if a.startswith("open ")]
    if opens:
        return opens[0]
    unvisited = [a for a in admissible if a.startswith("go to ") and a[6:] not in visited]
    return rng.choice(unvisited) if unvisited else None


def _inadmissible_variant(action: str, admissible: tuple[str, ...]) -> str:
    """A plausible but inadmissible action: an admissible one with its last number changed."""
    words = action.split()
    for i in range(len(words) - 1, -1, -1):
        if words[i].isdigit():
            for bump in (7, 8, 9):
                candidate = " ".join([*words[:i], str(int(words[i]) + bump), *words[i + 1 :]])
                if candidate not in admissible:
                    return candidate
    return action + " now" if action + " now" not in admissible else "look around"


def matching_twin(obs: Observation, label: str, goal: str, kinds: Sequence[str], visited: set[str],
                  rng: random.Random) -> tuple[str, str] | None:
    """(task, label) of a counterfactual twin of one demonstration step, or None if it has none.

    Only decision states qualify: something to take in view, nothing held (no ``move`` action), and the
    demonstrator followed the rule "take the task's object when it is in view, else search". The twin
    asks for another object: one in view when the task's object is not (label: take it), else one of
    ``kinds`` not in view (label: an honest search step).
    """
    takes: dict[str, str] = {}
    for action in obs.admissible_actions:
        words = action.split() or [""]
        if words[0] == "take" and len(words) > 1:
            takes.setdefault(words[1], action)
        elif words[0] == "move":
            return None
    if not takes or not re.search(rf"\b{re.escape(goal)}\b", obs.task):
        return None
    if goal in takes:
        if label.split()[:2] != ["take", goal]:
            return None
        others = [k for k in kinds if k not in takes]
        twin_label = _search_step(obs.admissible_actions, visited, rng)
        if not others or twin_label is None:
            return None
        other = rng.choice(others)
    else:
        if not label.startswith(("go to ", "open ")):
            return None
        other = rng.choice(sorted(takes))
        twin_label = takes[other]
    return re.sub(rf"\b{re.escape(goal)}\b", other, obs.task), twin_label


def to_trajectory(episode: Episode, traj: int = 0) -> Trajectory:
    """A bare ``Trajectory`` of an episode (actions and observations only) for the miners."""
    first = episode.observations[0]
    steps = [
        StepRecord(group=0, traj=traj, t=t, seed=episode.seed, task_type=o.task_type, prompt_ids=[], response_ids=[],
                   old_logprobs=[], action_mask=[], action=a, valid=True, reward=0.0, done=t == len(episode.actions) - 1,
                   won=episode.won and t == len(episode.actions) - 1, anchor=o.anchor, observation_text=o.text)
        for t, (o, a) in enumerate(zip(episode.observations, episode.actions, strict=True))
    ]
    return Trajectory(group=0, traj=traj, seed=episode.seed, task=first.task, task_type=first.task_type,
                      steps=steps, won=episode.won, score=1.0 if episode.won else 0.0)


def make_env(config: WarmStartConfig, split: str, warm_start: bool = False) -> Env:
    options: dict[str, Any] = {**(config.env_options if warm_start else {}), "split": split}
    if config.max_steps is not None:
        options["max_steps"] = config.max_steps
    return make(config.env, **options)



# --- warm-start data -------------------------------------------------------------------------------------


def warm_start_examples(config: WarmStartConfig, tokenizer: Any, log: Callable[[str], None]) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, target ids) pairs: noisy-expert actions, with and without skills, and mining examples."""
    from siri.skills.mining import mining_messages, render_trajectory, trace_skills

    rng = random.Random(f"tiny-sft/{config.seed}")
    env = make_env(config, "train", warm_start=True)
    # Seeds far from 0 so the warm start does not see the first train seeds that quick evals use.
    episodes = [
        noisy_episode(env, 1_000_000 + s, rng, config.random_action_share, config.search_share,
                      config.invalid_action_share)
        for s in range(config.sft_episodes)
    ]
    won = [e for e in episodes if e.won]
    log(f"warm start: {len(episodes)} noisy-expert episodes, {len(won)} won")
    by_type: dict[str, list[Episode]] = {}
    for e in won:
        by_type.setdefault(e.observations[0].task_type, []).append(e)
    # Skills shown in skill-augmented warm-start prompts: trace skills over half of each type's wins.
    skill_pool = {tt: trace_skills(tt, [to_trajectory(e) for e in eps[::2]], max_skills=4) for tt, eps in by_type.items()}

    def action_example(obs: Observation, task: str, label: str, history: list[tuple[str, str]],
                       skills: list[str]) -> tuple[list[int], list[int]]:
        prompt = build_prompt(config.env, task, obs.text, obs.admissible_actions, obs.step, history,
                              skills=skills, history_len=config.history_len, templates=obs.action_templates)
        target = list(tokenizer(OPEN + label + CLOSE, add_special_tokens=False)["input_ids"])
        return chat_ids(tokenizer, [{"role": "user", "content": prompt}]), target

    # Object words to ask for in twins: everything the demonstrations ever had in view to take.
    kinds = sorted({a.split()[1] for e in episodes for o in e.observations for a in o.admissible_actions
                    if a.startswith("take ") and len(a.split()) > 1}) if config.matching_twins > 0 else []
    examples: list[tuple[list[int], list[int]]] = []
    twin_rng = random.Random(f"tiny-twins/{config.seed}")  # its own stream: twins leave the other examples as they were
    twins = 0
    for episode in episodes:
        history: list[tuple[str, str]] = []
        visited: set[str] = set()
        for obs, action, expert_label in zip(episode.observations, episode.actions, episode.expert_actions, strict=True):
            label = expert_label
            if config.imitate == "behaviour" and action in obs.admissible_actions:
                label = action  # imitate random actions too (invalid ones never)
            skills = skill_pool.get(obs.task_type, [])
            show = skills[: rng.randint(1, len(skills))] if skills and rng.random() < config.skill_prompt_share else []
            examples.append(action_example(obs, obs.task, label, history, show))
            if config.matching_twins > 0 and episode.goal_object and twin_rng.random() < config.matching_twins:
                twin = matching_twin(obs, expert_label, episode.goal_object, kinds, visited, twin_rng)
                if twin is not None:
                    examples.append(action_example(obs, twin[0], twin[1], history, []))
                    twins += 1
            history.append((obs.text, action))
            if action.startswith("go to "):
                visited.add(action[6:])
    n_actions = len(examples)
    if config.matching_twins > 0:
        log(f"warm start: {twins} of the action examples are matching twins")
    types = sorted(by_type)
    for i in range(config.mining_examples if types else 0):
        task_type = types[i % len(types)]
        pool = by_type[task_type]
        chosen = rng.sample(pool, min(config.mining_episodes, len(pool)))
        rendered = [render_trajectory(to_trajectory(e), e.observations[0].task) for e in chosen]
        messages = mining_messages(task_type, rendered, config.mining_max_skills)
        skills = trace_skills(task_type, [to_trajectory(e, k) for k, e in enumerate(chosen)], config.mining_max_skills)
        if not skills:
            continue
        target = [*list(tokenizer("\n".join(skills), add_special_tokens=False)["input_ids"]), tokenizer.eos_token_id]
        examples.append((chat_ids(tokenizer, messages), target))
    log(f"warm start: {n_actions} action examples, {len(examples) - n_actions} mining examples")
    return examples


# --- the supervised run ----------------------------------------------------------------------------------


def _batches(examples: list[tuple[list[int], list[int]]], config: WarmStartConfig, rng: random.Random) -> Iterator[list[int]]:
    """Endless batches of example indices, similar lengths together (less padding), shuffled."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]) + len(examples[i][1]))
    while True:
        chunks = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
        rng.shuffle(chunks)
        yield from chunks


def train_warm_start(model: Any, examples: list[tuple[list[int], list[int]]], config: WarmStartConfig, pad_id: int,
                     log: Callable[[str], None]) -> list[float]:
    """Supervised run on target tokens only; returns the loss of every step."""
    import torch

    from siri.rollout.engine import left_pad

    rng = random.Random(f"tiny-batches/{config.seed}")
    position_rng = torch.Generator().manual_seed(config.seed)
    trainable = [p for p in model.parameters() if p.requires_grad]  # LoRA: the adapters only
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.95))

    def lr_at(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.train_steps - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    model.train()
    losses: list[float] = []
    batches = _batches(examples, config, rng)
    start = time.time()
    log_every = max(1, min(50, config.train_steps // 20))
    for step in range(config.train_steps):
        batch = [examples[i] for i in next(batches)]
        seqs = [p + t for p, t in batch]
        ids, mask, positions = left_pad(seqs, pad_id, "cpu")
        width = ids.shape[1]
        target_mask = torch.zeros((len(batch), width), dtype=torch.bool)
        for b, (_, target) in enumerate(batch):
            target_mask[b, width - len(target) :] = True
        # Next-token view of the whole sequence: position t predicts token t+1.
        shifted_target, shifted_real = target_mask[:, 1:], (mask[:, 1:] * mask[:, :-1]).bool()
        if config.prompt_lm_weight > 0 and config.prompt_lm_positions > 0:
            # Project only the targets and a random sample of prompt positions (B*K + targets rows).
            core = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft: the wrapped LM
            hidden = core.model(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state[:, :-1]
            prompt = shifted_real & ~shifted_target
            scores = torch.rand(prompt.shape, generator=position_rng).masked_fill(~prompt, 2.0)
            k = min(config.prompt_lm_positions, scores.shape[1])
            kth = scores.sort(dim=1).values[:, k - 1 : k]  # each row's k-th smallest (2.0: fewer prompt positions)
            picked = shifted_target | (prompt & (scores <= kth))
            logits = core.lm_head(hidden[picked])[None]  # (1, picked, V): one long row of the picked positions
            labels, is_target = ids[:, 1:][picked][None], shifted_target[picked][None]
            real = torch.ones_like(is_target)  # every picked position is a real token
        elif config.prompt_lm_weight > 0:
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, :-1]
            labels, is_target, real = ids[:, 1:], shifted_target, shifted_real
        else:  # only the last positions are needed: project just those onto the vocabulary
            keep = max(len(t) for _, t in batch) + 1
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep).logits[:, :-1]
            labels, is_target, real = ids[:, -keep + 1 :], target_mask[:, -keep + 1 :], mask[:, -keep + 1 :].bool()
        token_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                                       labels.reshape(-1), reduction="none").view(labels.shape)
        loss = action_loss = token_loss[is_target].mean()
        prompt_tokens = real & ~is_target
        if config.prompt_lm_weight > 0 and prompt_tokens.any():
            loss = loss + config.prompt_lm_weight * token_loss[prompt_tokens].mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(action_loss.item())
        if step % log_every == 0 or step == config.train_steps - 1:
            log(f"step {step:4d}/{config.train_steps}  response loss {action_loss.item():.3f}  "
                f"total {loss.item():.3f}  {time.time() - start:.0f}s")
    model.eval()
    return losses


def warm_start_policy(policy: Policy, config: WarmStartConfig, out_dir: str | Path,
                      log: Callable[[str], None] | None = None) -> tuple[Policy, dict[str, Any]]:
    """Warm-start ``policy`` on ``config``'s demonstrations, save it to ``out_dir`` (atomically) and
    return it with its build report.

    LoRA adapters are merged into the weights before saving, so the result is a plain model: RL then
    trains fresh adapters on it, and its reference policy (adapters disabled) is the warm-started model.
    The build report (config, data, loss curve) is saved beside the weights as ``siri_warm_start.json``.
    """
    log = log or (lambda m: None)
    started = time.time()
    examples = warm_start_examples(config, policy.tokenizer, log)
    losses = train_warm_start(policy.model, examples, config, policy.pad_id, log)
    trained = sum(p.numel() for p in policy.model.parameters() if p.requires_grad)
    if policy.lora:
        policy = dataclasses.replace(policy, model=policy.model.merge_and_unload(), lora=False)
    policy = dataclasses.replace(policy, name=f"{policy.name} (warm-started)", env=config.env)
    tail = losses[-max(1, len(losses) // 10):]
    report = {
        "base": policy.path,
        "config": dataclasses.asdict(config),
        "examples": len(examples),
        "trained_parameters": trained,
        "first_loss": losses[0] if losses else None,
        "final_loss": sum(tail) / len(tail) if losses else None,
        "losses": [round(x, 4) for x in losses],
        "seconds": round(time.time() - started, 1),
    }
    policy.save(out_dir, extra_files={REPORT_FILE: report})
    log(f"saved {out_dir}: loss {report['first_loss']:.3f} -> {report['final_loss']:.3f} in {report['seconds']}s")
    return policy, report
