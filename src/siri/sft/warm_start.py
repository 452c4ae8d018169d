"""Supervised warm start on an environment's noisy demonstrator, for the tiny model and for real LMs.

Sparse-reward RL learns only from groups in which some rollout succeeds. A policy that never succeeds
gets advantages, and gradients, of exactly zero: SmolLM2-135M won 2 of 64 household-lite episodes in
four GiGPO iterations (benchmarks/RESULTS.md). A short supervised run on demonstrations gives RL a
starting policy with successes to learn from, as SFT does before RL in most agent pipelines. The
tiny model is built with it (``siri.sft.tiny``); ``siri model warm-start`` runs it on any causal
LM, with LoRA adapters merged into the saved weights.

The demonstrations come from the searching, noisy demonstrator (``siri.sft.demonstrator``). The policy
imitates its searches, its random actions too when ``imitate="behaviour"`` (a noisy policy: RL headroom),
never the invalid ones. A share of the prompts carry a block of ``trace`` skills of their task type (so
skill-augmented prompts are familiar), and mining examples teach the skill-writing prompt: the mining
messages over successful episodes of a task type, answered with the deterministic ``trace`` skills of
those episodes. With ``follow_skills`` (household) a share of the episodes instead show one placement skill
that the demonstrator acts on (``siri.sft.demonstrator``), so that the skill's content decides the action,
and ``skill_twins`` copies of their first steps under other skills make it the only thing that does;
``delivery_twins`` do the same for the receptacle a task names, after the pickup; ``presence_twins`` show
every step no skill decides both with and without a skill, so that a skill block changes only what it says.
The prompts are the rollout's own (``build_prompt`` + the tokenizer's chat template), and
the targets are ``<action>...</action>``: exactly what ``choose`` mode scores and ``generate`` mode writes.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from siri.envs import Observation
from siri.models.policy import Policy
from siri.rollout.parsing import CLOSE, OPEN
from siri.rollout.prompts import build_prompt, chat_ids
from siri.sft.config import WarmStartConfig
from siri.sft.demonstrator import (
    Episode,
    SearchMemory,
    delivery_twin,
    draw_placement_skill,
    is_delivery_put,
    is_placement_skill,
    make_env,
    matching_twin,
    noisy_episode,
    room_places,
    skill_decides,
    skill_twin,
    to_trajectory,
)

if TYPE_CHECKING:
    import torch

REPORT_FILE = "siri_warm_start.json"
STOP_WINDOW = 200  # steps the focus phase's loss is averaged over for focus_loss_target

Example = tuple[list[int], list[int]]  # (prompt ids, target ids)


@dataclasses.dataclass(frozen=True)
class WarmStartData:
    """The supervised examples, and the indices of those a word far from the answer decides.

    ``focus`` holds the stages ``train_warm_start`` trains on alone first (``focus_steps``), in order: the
    examples a skill decides (skill episodes' first steps and their skill twins: the skill's places; with
    ``lamp_stage`` then those plus the lamp skill's), then those plus the ones the task's receptacle decides
    (delivery steps and their twins). Mixed in with the
    rest their signal is too rare for the tiny model to pick up; mixed with each other, the skill's was
    still on its plateau after 3,800 steps (benchmarks/RESULTS.md), so each is learned in its own stage.
    """

    examples: list[Example]
    focus: list[list[int]] = dataclasses.field(default_factory=list)


# --- warm-start data -------------------------------------------------------------------------------------


def warm_start_examples(config: WarmStartConfig, tokenizer: Any, log: Callable[[str], None]) -> WarmStartData:
    """(prompt ids, target ids) pairs: noisy-expert actions, with and without skills, and mining examples."""
    from siri.skills.prompts import mining_messages, render_trajectory
    from siri.skills.trace import trace_skills

    rng = random.Random(f"tiny-sft/{config.seed}")
    env = make_env(config, "train", warm_start=True)
    follow = config.follow_skills
    if config.skill_twins and not follow:
        raise ValueError("skill_twins needs follow_skills=true (they are made from the episodes that follow a "
                         "placement skill)")
    if config.presence_twins and not follow:
        raise ValueError("presence_twins needs follow_skills=true (the twins with a skill show a placement skill)")
    if config.lamp_skills and not follow:
        raise ValueError("lamp_skills needs follow_skills=true (the lamp's skill is a placement skill, followed the "
                         "same way)")
    if config.lamp_stage and not (config.lamp_skills and config.focus_steps and config.skill_twins):
        raise ValueError("lamp_stage needs lamp_skills=true, skill_twins > 0 and focus_steps > 0 (it is a focus "
                         "stage of the lamp skill's twinned steps)")
    if config.focus_steps and not (config.skill_twins or config.delivery_twins):
        raise ValueError("focus_steps needs skill_twins > 0 or delivery_twins > 0: the examples it trains on are "
                         "the steps that got twins")
    if config.delivery_twins and getattr(env, "goal_object", None) is None:
        raise ValueError(f"delivery_twins needs an environment that names the task's object (household), not "
                         f"{config.env!r}")
    if follow and getattr(env, "goal_object", None) is None:
        raise ValueError(f"follow_skills needs an environment that names the task's object (household), not "
                         f"{config.env!r}")
    sources: Counter[str] = Counter()
    skill_rng = random.Random(f"tiny-follow/{config.seed}")  # its own stream, as the twins'

    def draw_skill(obs: Observation, goal: str | None) -> str | None:
        if goal is None or skill_rng.random() >= config.skill_prompt_share:
            return None
        drawn = draw_placement_skill(goal, room_places(obs), skill_rng, config.skill_places_mix)
        if drawn is None:
            return None
        sources[drawn[0]] += 1
        return drawn[1]

    # Seeds far from 0 so the warm start does not see the first train seeds that quick evals use.
    episodes = [
        noisy_episode(env, 1_000_000 + s, rng, config.random_action_share, config.search_share,
                      config.invalid_action_share, skill=draw_skill if follow else None, lamp_skill=config.lamp_skills)
        for s in range(config.sft_episodes)
    ]
    won = [e for e in episodes if e.won]
    log(f"warm start: {len(episodes)} noisy-expert episodes, {len(won)} won")
    if follow:
        log(f"warm start: {sum(sources.values())} episodes follow a placement skill naming "
            f"{', '.join(f'{n} {source}' for source, n in sorted(sources.items()))} places")
    by_type: dict[str, list[Episode]] = {}
    for e in won:
        by_type.setdefault(e.observations[0].task_type, []).append(e)
    # Skills shown in skill-augmented warm-start prompts: trace skills over half of each type's wins. With
    # follow_skills, without their placement skills: only the episode's own placement skill is shown, and
    # acted on (the demonstrator follows the plans anyway).
    skill_pool = {tt: trace_skills(config.env, tt, [to_trajectory(e) for e in eps[::2]],
                                   max_skills=None if follow else 4, style=config.trace_style)
                  for tt, eps in by_type.items()}
    if follow:
        skill_pool = {tt: [s for s in pool if not is_placement_skill(s)][:4]
                      for tt, pool in skill_pool.items()}

    def action_example(obs: Observation, task: str, label: str, history: list[tuple[str, str]],
                       skills: list[str]) -> Example:
        prompt = build_prompt(config.env, task, obs.text, obs.admissible_actions, obs.step, history,
                              skills=skills, history_len=config.history_len, templates=obs.action_templates)
        target = list(tokenizer(OPEN + label + CLOSE, add_special_tokens=False)["input_ids"])
        return chat_ids(tokenizer, [{"role": "user", "content": prompt}]), target

    # Object words to ask for in twins: everything the demonstrations ever had in view to take.
    kinds = sorted({a.split()[1] for e in episodes for o in e.observations for a in o.admissible_actions
                    if a.startswith("take ") and len(a.split()) > 1}) if config.matching_twins > 0 else []
    examples: list[Example] = []
    skill_decided: list[int] = []
    lamp_decided: list[int] = []  # lamp_stage: the lamp skill's decided steps, in a stage of their own
    delivery_decided: list[int] = []
    puts: list[int] = []  # delivery_puts: the steps that put the object where the task says
    twin_rng = random.Random(f"tiny-twins/{config.seed}")  # its own stream: twins leave the other examples as they were
    presence_rng = random.Random(f"tiny-presence/{config.seed}")
    twins = n_skill_twins = n_delivery_twins = n_presence_twins = 0
    for episode in episodes:
        history: list[tuple[str, str]] = []
        memory = SearchMemory()
        picked_up = False  # the previous step took something: the lamp search of a look-at task starts here
        goal, lamp = episode.goal_object, episode.goal_lamp
        for obs, action, expert_label, valid in zip(episode.observations, episode.actions, episode.expert_actions,
                                                    episode.valid, strict=True):
            label = expert_label
            if config.imitate == "behaviour" and action in obs.admissible_actions:
                label = action  # imitate random actions too (invalid ones never)
            skills = skill_pool.get(obs.task_type, [])
            if episode.skills:
                show = episode.skills  # the placement skills the demonstrator follows in this episode
            elif skills and rng.random() < config.skill_prompt_share:
                show = skills[: rng.randint(1, len(skills))]
            else:
                show = []
            original = len(examples)
            examples.append(action_example(obs, obs.task, label, history, show))
            if config.matching_twins > 0 and goal and twin_rng.random() < config.matching_twins:
                twin = matching_twin(obs, expert_label, goal, kinds, memory.visited, twin_rng)
                if twin is not None:
                    examples.append(action_example(obs, twin[0], twin[1], history, []))
                    twins += 1
            # Presence twins: a step whose move no skill decides, shown the other way (a prompt with a skill
            # block without it; one without, with a placement skill), same label: the block's presence alone
            # must not switch behaviour on or off (benchmarks/RESULTS.md: it did, after the pickup).
            if config.presence_twins and goal:
                if show:
                    decided = bool(episode.skills) and skill_decides(obs, goal, lamp, episode.skills, memory)
                    other = [] if not decided else None
                else:
                    wanted = [goal, lamp] if config.lamp_skills and lamp else [goal]
                    drawn_skills = [draw_placement_skill(word, room_places(obs), presence_rng, config.skill_places_mix)
                                    for word in wanted]
                    texts = [d[1] for d in drawn_skills if d is not None]
                    other = texts if texts and not skill_decides(obs, goal, lamp, texts, memory) else None
                if other is not None:
                    examples.append(action_example(obs, obs.task, label, history, other))
                    n_presence_twins += 1
            # Skill twins: the first step (nothing visited, no history: the skill and the room decide the move)
            # under other skills; with lamp_skills also the step after a look-at task's pickup (nothing searched
            # for the lamp yet; the observation names where the agent stands) under other lamp skills. The
            # original counts as skill-decided where it got a twin (a search state); its label is the
            # demonstrator's move, a random one in random_action_share of the steps, as everywhere.
            searched = (episode.skill if obs.step == 0 else
                        episode.lamp_skill if picked_up and memory.holding else None)
            if searched is not None and goal:
                kept = [s for s in show if s != searched]  # the other placement skill stays as it was shown
                drawn = [skill_twin(obs, goal, lamp, room_places(obs), memory, skill_rng, config.skill_places_mix)
                         for _ in range(config.skill_twins)]
                twins_here = [t for t in drawn if t is not None]
                decided = lamp_decided if config.lamp_stage and searched != episode.skill else skill_decided
                if twins_here:
                    decided.append(original)
                for skill, twin_label in twins_here:
                    decided.append(len(examples))
                    shown_twin = [skill, *kept] if searched == episode.skill else [*kept, skill]
                    examples.append(action_example(obs, obs.task, twin_label, history, shown_twin))
                n_skill_twins += len(twins_here)
            # Delivery twins: the step after the pickup (and the walk on to the task's receptacle) under tasks
            # that name other receptacles. Only the expert's delivery steps: a random action is no delivery.
            if config.delivery_twins and goal and label == expert_label:
                made = [delivery_twin(obs, label, goal, twin_rng) for _ in range(config.delivery_twins)]
                made_here = [t for t in made if t is not None]
                if made_here:
                    delivery_decided.append(original)
                for task, twin_label in made_here:
                    delivery_decided.append(len(examples))
                    examples.append(action_example(obs, task, twin_label, history, show))
                n_delivery_twins += len(made_here)
                if config.delivery_puts and not made_here and is_delivery_put(obs, label, goal):
                    puts.append(original)
            history.append((obs.text, action))
            memory.update(action, valid)
            picked_up = valid and action.startswith("take ")
    n_actions = len(examples)
    if config.matching_twins > 0:
        log(f"warm start: {twins} of the action examples are matching twins")
    if n_skill_twins:
        log(f"warm start: {n_skill_twins} of the action examples are skill twins")
    if n_delivery_twins:
        log(f"warm start: {n_delivery_twins} of the action examples are delivery twins")
    if n_presence_twins:
        log(f"warm start: {n_presence_twins} of the action examples are presence twins")
    types = sorted(by_type)
    for i in range(config.mining_examples if types else 0):
        task_type = types[i % len(types)]
        pool = by_type[task_type]
        chosen = rng.sample(pool, min(config.mining_episodes, len(pool)))
        rendered = [render_trajectory(to_trajectory(e), e.observations[0].task) for e in chosen]
        messages = mining_messages(task_type, rendered, config.mining_max_skills)
        skills = trace_skills(config.env, task_type, [to_trajectory(e, k) for k, e in enumerate(chosen)],
                              config.mining_max_skills, style=config.trace_style)
        if not skills:
            continue
        target = [*list(tokenizer("\n".join(skills), add_special_tokens=False)["input_ids"]), tokenizer.eos_token_id]
        examples.append((chat_ids(tokenizer, messages), target))
    log(f"warm start: {n_actions} action examples, {len(examples) - n_actions} mining examples")
    stages = [skill_decided] if skill_decided else []
    if lamp_decided:
        stages.append(skill_decided + lamp_decided)
    if delivery_decided:
        # With delivery_puts each put appears delivery_twins + 1 times, as many as each walk step: a stage of
        # walks alone taught walking on past the destination (benchmarks/RESULTS.md).
        stages.append(skill_decided + lamp_decided + delivery_decided + puts * (config.delivery_twins + 1))
    if puts:
        log(f"warm start: {len(puts)} put steps join the delivery focus stage")
    return WarmStartData(examples, stages)


# --- the supervised run ----------------------------------------------------------------------------------


def _batches(examples: list[Example], indices: Sequence[int], config: WarmStartConfig,
             rng: random.Random) -> Iterator[list[int]]:
    """Endless batches of ``indices`` into ``examples``, similar lengths together (less padding), shuffled."""
    order = sorted(indices, key=lambda i: len(examples[i][0]) + len(examples[i][1]))
    while True:
        chunks = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
        rng.shuffle(chunks)
        yield from chunks


def train_warm_start(model: Any, data: WarmStartData, config: WarmStartConfig, pad_id: int,
                     log: Callable[[str], None]) -> list[float]:
    """Supervised run on target tokens only; returns the loss of every step.

    With ``config.focus_steps`` (and focus examples), each stage of ``data.focus`` first gets up to that many
    steps on its examples alone, without the prompt loss (ended early once its loss falls below
    ``config.focus_loss_target``); then ``config.train_steps`` steps on every example. Each phase has its
    own optimizer and schedule. Why: on the whole mix the tiny model never learned to act on a skill; on the
    skill-decided examples alone its loss sits on a plateau for 1,000-2,000 steps and then drops, and from
    then on the skill decides its first move (benchmarks/RESULTS.md). When the drop comes varies, so a
    fixed step count may end on the plateau.
    """
    import torch

    rng = random.Random(f"tiny-batches/{config.seed}")
    position_rng = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    for stage, focus in enumerate(data.focus if config.focus_steps else []):
        until = f", or until its loss is below {config.focus_loss_target}" if config.focus_loss_target else ""
        log(f"focus stage {stage + 1}/{len(data.focus)}: {config.focus_steps} steps on its {len(focus)} examples "
            f"alone{until}")
        losses += _supervised_phase(model, data.examples, focus, config.focus_steps,
                                    prompt_lm_weight=0.0, config=config, pad_id=pad_id, rng=rng,
                                    position_rng=position_rng, log=log, stop_below=config.focus_loss_target)
    if losses:
        log(f"then {config.train_steps} steps on all {len(data.examples)} examples")
    losses += _supervised_phase(model, data.examples, range(len(data.examples)), config.train_steps,
                                prompt_lm_weight=config.prompt_lm_weight, config=config, pad_id=pad_id, rng=rng,
                                position_rng=position_rng, log=log)
    model.eval()
    return losses


def _supervised_phase(model: Any, examples: list[Example], indices: Sequence[int], steps: int, *,
                      prompt_lm_weight: float, config: WarmStartConfig, pad_id: int, rng: random.Random,
                      position_rng: torch.Generator, log: Callable[[str], None],
                      stop_below: float = 0.0) -> list[float]:
    """``steps`` optimizer steps on batches of ``indices`` (AdamW, linear warm-up, cosine decay to a tenth);
    fewer when ``stop_below`` > 0 and the response loss over the last ``STOP_WINDOW`` steps falls below it."""
    import torch

    from siri.rollout.engine import left_pad

    trainable = [p for p in model.parameters() if p.requires_grad]  # LoRA: the adapters only
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.95))

    def lr_at(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, steps - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    model.train()
    losses: list[float] = []
    batches = _batches(examples, indices, config, rng)
    start = time.time()
    log_every = max(1, min(50, steps // 20))
    for step in range(steps):
        batch = [examples[i] for i in next(batches)]
        seqs = [p + t for p, t in batch]
        ids, mask, positions = left_pad(seqs, pad_id, "cpu")
        width = ids.shape[1]
        target_mask = torch.zeros((len(batch), width), dtype=torch.bool)
        for b, (_, target) in enumerate(batch):
            target_mask[b, width - len(target) :] = True
        # Next-token view of the whole sequence: position t predicts token t+1.
        shifted_target, shifted_real = target_mask[:, 1:], (mask[:, 1:] * mask[:, :-1]).bool()
        if prompt_lm_weight > 0 and config.prompt_lm_positions > 0:
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
        elif prompt_lm_weight > 0:
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
        if prompt_lm_weight > 0 and prompt_tokens.any():
            loss = loss + prompt_lm_weight * token_loss[prompt_tokens].mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(action_loss.item())
        done = (stop_below > 0 and len(losses) >= STOP_WINDOW
                and sum(losses[-STOP_WINDOW:]) / STOP_WINDOW < stop_below)
        if step % log_every == 0 or step == steps - 1 or done:
            elapsed = time.time() - start
            left = f"  ~{_duration(elapsed / (step + 1) * (steps - step - 1))} left" if step < steps - 1 and not done else ""
            log(f"step {step:4d}/{steps}  response loss {action_loss.item():.3f}  "
                f"total {loss.item():.3f}  {elapsed:.0f}s{left}")
        if done:
            log(f"loss below {stop_below} over the last {STOP_WINDOW} steps: phase ends at step {step + 1}")
            break
    return losses


def _duration(seconds: float) -> str:
    """"45s", "12 min": a time-left estimate as a person reads it."""
    return f"{seconds:.0f}s" if seconds < 90 else f"{seconds / 60:.0f} min"


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
    data = warm_start_examples(config, policy.tokenizer, log)
    losses = train_warm_start(policy.model, data, config, policy.pad_id, log)
    trained = sum(p.numel() for p in policy.model.parameters() if p.requires_grad)
    if policy.lora:
        policy = dataclasses.replace(policy, model=policy.model.merge_and_unload(), lora=False)
    policy = dataclasses.replace(policy, name=f"{policy.name} (warm-started)", env=config.env)
    tail = losses[-max(1, len(losses) // 10):]
    report = {
        "base": policy.path,
        "config": dataclasses.asdict(config),
        "examples": len(data.examples),
        "trained_parameters": trained,
        "first_loss": losses[0] if losses else None,
        "final_loss": sum(tail) / len(tail) if losses else None,
        "losses": [round(x, 4) for x in losses],
        "seconds": round(time.time() - started, 1),
    }
    policy.save(out_dir, extra_files={REPORT_FILE: report})
    log(f"saved {out_dir}: loss {report['first_loss']:.3f} -> {report['final_loss']:.3f} in {report['seconds']}s")
    return policy, report
