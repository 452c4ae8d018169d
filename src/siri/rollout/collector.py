"""The multi-turn collector: many episodes stepped together, one batched generation per turn.

Every episode spec names its group, its seed (all rollouts of a group share it, so they start from the
same state) and the skills its prompts show. Each turn, the prompts of all unfinished episodes go to
the engine in one batch; each response is projected to an action (``generate``) or is an admissible
action by construction (``choose``), the environment steps, and one ``StepRecord`` is written with the
invalid-action penalty already in its reward.

Sampling is seeded per episode: at turn ``t`` the response of episode ``i`` (``EpisodeSpec.index``,
by default its position in ``specs``) is sampled with ``episode_seed(config.seed, i, t)``, and the
engine gives every row its own random stream. An episode's rollout therefore depends on its spec,
its index and the policy only, not on which other episodes are collected with it: a process that
collects a share of the specs (with their global indices) samples what one process collecting all
of them would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from siri.config import TrainConfig
from siri.envs import BatchEnv, Env, Observation, make
from siri.models.policy import Policy
from siri.rollout.choose import choice_ids
from siri.rollout.engine import GenerationEngine, HFEngine, row_seed
from siri.rollout.parsing import Projection, project
from siri.rollout.prompts import build_prompt, prompt_ids
from siri.rollout.types import StepRecord, Trajectory


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to collect: its group, environment seed, and the (skill_id, text) pairs to show.

    ``index`` names the episode in the whole batch (its trajectory id and sampling stream); None means
    its position in the list given to ``collect``. Set it when collecting a share of a larger batch.
    """

    group: int
    seed: int
    skills: tuple[tuple[str, str], ...] = ()
    index: int | None = None


def episode_seed(seed: int, index: int, turn: int) -> int:
    """The sampling seed of episode ``index`` at turn ``turn`` of a collection with ``RolloutConfig.seed``.

    ``row_seed(row_seed(seed, turn), index)``, i.e. with ``f(a, b) = (a * 1_000_003 + b * 7_919 + 1)
    mod (2**31 - 1)``: ``f(f(seed, turn), index)``. Within one turn distinct episodes get distinct seeds.
    """
    return row_seed(row_seed(seed, turn), index)


@dataclass
class RolloutConfig:
    """How one collection samples its episodes.

    The config's ``rollout`` section is what a user sets for a run; this is what one collection needs
    of it (training and evaluation differ in temperature, nucleus and seed). Build it from a run's
    config with ``RolloutConfig.of_run``, the one place that maps the section onto it.

    Attributes:
        mode: "generate" (free text + projection, the paper) or "choose" (trie-constrained actions).
        temperature: sampling temperature (1.0 training, 0.4 validation, 0 greedy).
        top_p: nucleus sampling mass (log-probs ignore the truncation; see engine.py).
        max_new_tokens: response budget in generate mode (choose mode uses the longest action).
        history: observation/action pairs shown in the prompt (the paper: 2).
        invalid_penalty: subtracted from the reward of a step whose action is invalid (the paper: 0.1).
        seed: sampling seed; the same specs and seed give the same rollouts (see ``episode_seed``).
    """

    mode: str = "generate"
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 48
    history: int = 2
    invalid_penalty: float = 0.1
    seed: int = 0

    @classmethod
    def of_run(cls, cfg: TrainConfig, seed: int, evaluation: bool = False) -> RolloutConfig:
        """The sampling of a run's training rollouts, or (``evaluation``) of its evaluations.

        Evaluation samples at ``train.eval_temperature`` with the full distribution (``top_p`` 1).
        """
        r = cfg.rollout
        return cls(mode=cfg.model.action_mode, temperature=cfg.train.eval_temperature if evaluation else r.temperature,
                   top_p=1.0 if evaluation else r.top_p, max_new_tokens=r.max_new_tokens, history=r.history,
                   invalid_penalty=r.invalid_penalty, seed=seed)

    def __post_init__(self) -> None:
        if self.mode not in ("generate", "choose"):
            raise ValueError(f"unknown rollout mode {self.mode!r}; use 'generate' or 'choose'")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.max_new_tokens < 1 or self.history < 0:
            raise ValueError(f"bad rollout config {self}: need temperature >= 0, 0 < top_p <= 1, max_new_tokens >= 1")


def _env_factory(env: str | Callable[[], Env], env_options: dict[str, Any] | None) -> Callable[[], Env]:
    if isinstance(env, str):
        options = dict(env_options or {})
        return lambda: make(env, **options)
    if env_options:
        raise ValueError("env_options only apply when env is a name; bake them into the factory instead")
    return env


def collect(
    policy: Policy,
    env: str | Callable[[], Env],
    specs: Sequence[EpisodeSpec],
    config: RolloutConfig | None = None,
    *,
    env_options: dict[str, Any] | None = None,
    engine: GenerationEngine | None = None,
    on_episode_end: Callable[[Trajectory], None] | None = None,
    batch_env: Any | None = None,
) -> list[Trajectory]:
    """Run ``specs`` to the end with ``policy`` (a ``Policy``) and return their trajectories in order.

    ``env`` is a registered name (built with ``env_options``) or a factory returning a fresh env.
    Trajectory ids are the episode indices (``EpisodeSpec.index``, by default the spec positions).
    ``engine`` defaults to an ``HFEngine`` on the policy.
    ``batch_env`` (optional) steps the episodes instead: anything with ``BatchEnv``'s ``reset``/``step``
    and one environment per spec, e.g. ``siri.envs.ray_workers.RayBatchEnv``; the caller owns (closes)
    it. A step it reports with ``info["worker_failed"]`` ends that episode with ``Trajectory.failed``.
    """
    if not specs:
        return []
    config = config or RolloutConfig()
    indices = [i if s.index is None else int(s.index) for i, s in enumerate(specs)]
    if len(set(indices)) != len(indices):
        raise ValueError(f"episode indices must be distinct, got {indices}")
    tokenizer = policy.tokenizer
    engine = engine or HFEngine(policy.model, tokenizer)
    own_batch = batch_env is None
    if batch_env is None:
        factory = _env_factory(env, env_options)
        batch_env = BatchEnv([factory() for _ in specs])
    elif len(batch_env) != len(specs):
        raise ValueError(f"batch_env holds {len(batch_env)} environments for {len(specs)} episode specs")
    first = getattr(batch_env, "envs", [None])[0]
    env_name = env if isinstance(env, str) else getattr(first, "name", "")
    observations: list[Observation] = batch_env.reset([int(s.seed) for s in specs])
    histories: list[list[tuple[str, str]]] = [[] for _ in specs]
    trajectories = [
        Trajectory(group=s.group, traj=indices[i], seed=s.seed, task=o.task, task_type=o.task_type,
                   skill_ids=tuple(dict.fromkeys(sid for sid, _ in s.skills)))  # a family's lines: one skill
        for i, (s, o) in enumerate(zip(specs, observations, strict=True))
    ]
    active = list(range(len(specs)))
    turn = 0
    while active:
        prompts: list[list[int]] = []
        plains: list[list[int] | None] = []
        choices: list[list[list[int]]] = []
        for i in active:
            obs, spec = observations[i], specs[i]
            args = dict(env_name=env_name, task=obs.task, observation=obs.text, admissible=obs.admissible_actions,
                        step=obs.step, history=histories[i], history_len=config.history,
                        templates=obs.action_templates)
            prompts.append(prompt_ids(tokenizer, build_prompt(**args, skills=[text for _, text in spec.skills])))
            plains.append(prompt_ids(tokenizer, build_prompt(**args)) if spec.skills else None)
            if config.mode == "choose":
                choices.append(choice_ids(tokenizer, obs.admissible_actions))
        max_new = config.max_new_tokens if config.mode == "generate" else max(len(c) for cs in choices for c in cs)
        generations = engine.generate(
            prompts,
            choices=choices if config.mode == "choose" else None,
            temperature=config.temperature,
            top_p=config.top_p,
            max_new_tokens=max_new,
            seeds=[episode_seed(config.seed, indices[i], turn) for i in active],
        )
        projections: list[Projection] = []
        actions: list[str | None] = [None] * len(specs)
        for k, i in enumerate(active):
            obs, gen = observations[i], generations[k]
            if config.mode == "choose":
                try:
                    index = choices[k].index(gen.response_ids)
                    projection = Projection(obs.admissible_actions[index], True)
                except ValueError:
                    projection = Projection("", False, "choice not completed within the token budget")
            else:
                text = tokenizer.decode(gen.response_ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
                projection = project(text, obs.admissible_actions, obs.action_templates)
            projections.append(projection)
            # An invalid projection must never execute: send its (inadmissible) text or nothing.
            actions[i] = projection.action if projection.valid else projection.action or ""
        results = batch_env.step(actions)
        still_active: list[int] = []
        for k, i in enumerate(active):
            obs, gen, traj, projection = observations[i], generations[k], trajectories[i], projections[k]
            result = results[i]
            if result.info.get("worker_failed"):
                # The environment's state is gone with its worker: no record for this step, and the
                # whole episode is flagged so that training and metrics leave it out.
                traj.failed, traj.failure = True, str(result.info.get("error", "environment worker failed"))
                if on_episode_end is not None:
                    on_episode_end(traj)
                continue
            valid = projection.valid and result.valid
            traj.steps.append(
                StepRecord(
                    group=traj.group, traj=traj.traj, t=len(traj.steps), seed=traj.seed, task_type=obs.task_type,
                    prompt_ids=prompts[k], response_ids=gen.response_ids, old_logprobs=gen.logprobs,
                    action_mask=action_token_mask(tokenizer, gen.response_ids),
                    action=projection.action, valid=valid,
                    reward=float(result.reward) - (0.0 if valid else config.invalid_penalty),
                    done=result.done, won=result.won, anchor=obs.anchor, observation_text=obs.text,
                    skill_ids=traj.skill_ids, plain_prompt_ids=plains[k],
                    choices=choices[k] if config.mode == "choose" else None,
                )
            )
            histories[i].append((obs.text, projection.action))
            observations[i] = result.observation
            if result.done:
                traj.won, traj.score = bool(result.won), float(result.score)
                if on_episode_end is not None:
                    on_episode_end(traj)
            else:
                still_active.append(i)
        active = still_active
        turn += 1
    if own_batch:
        batch_env.close()
    return trajectories


def decoded_ends(tokenizer: Any, response_ids: Sequence[int]) -> tuple[str, list[int]]:
    """The decoded response and, per prefix length k, the characters its first k tokens decode to.

    Works for any tokenizer (no offsets needed): ``ends[k]`` is the length of the first k tokens' text.
    """
    ids = list(response_ids)
    ends = [0]
    for k in range(1, len(ids) + 1):
        ends.append(len(tokenizer.decode(ids[:k], skip_special_tokens=False, clean_up_tokenization_spaces=False)))
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False), ends


def action_token_mask(tokenizer: Any, response_ids: Sequence[int]) -> list[int]:
    """1 for the response tokens that spell the action between ``<action>`` and ``</action>``, else 0."""
    ids = list(response_ids)
    text, ends = decoded_ends(tokenizer, ids)
    open_at, close_at = text.find("<action>"), text.find("</action>")
    mask = [0] * len(ids)
    if open_at < 0 or close_at < 0 or close_at < open_at:
        return mask
    lo, hi = open_at + len("<action>"), close_at
    for k in range(len(ids)):
        a, b = ends[k], max(ends[k], ends[k + 1])
        if a < hi and b > lo and text[max(a, lo) : min(b, hi)].strip():
            mask[k] = 1
    return mask
