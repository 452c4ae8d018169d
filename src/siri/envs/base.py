"""The one interface every environment speaks.

An environment is a small stateful object: ``reset(seed)`` puts it in the initial state of that seed
(the same seed always gives the same state, which is what GiGPO's groups rely on) and ``step(action)``
applies one text action. Observations carry the *true* state key (``anchor``) so that GiGPO can group
steps by state without guessing from text.

Environments never raise on a bad action string: an action that is malformed or not admissible is an
invalid step (``valid=False`` with a ``reason``) that leaves the state unchanged but still costs a
step. Penalties for invalid actions are the trainer's business, not the environment's.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


class EnvError(Exception):
    """A misuse of an environment (unknown name/option, step after done, bad seed): the message says how to fix it."""


def malformed_action(action: object, max_chars: int) -> str:
    """Why ``action`` is no action at all, before an environment looks at it: not a string, or longer than
    ``max_chars`` (a model that rambles); "" for a string of sane length. A malformed model output is an
    invalid step with this reason, never a crash."""
    if not isinstance(action, str):
        return f"action must be a string, got {type(action).__name__}"
    if len(action) > max_chars:
        return f"action is {len(action)} characters long (limit {max_chars})"
    return ""


def split_seed(seed: int, split_size: int | None) -> int:
    """The episode of a split that a drawn task seed names: ``seed mod split_size`` (unlimited splits: itself).

    The trainer draws task seeds from ``[0, 2**31)``; a split with a finite number of episodes (the shop's
    goals, a folder of ALFWorld games, the household's eval scenes) accepts only ``0..size-1``. This is the
    one place where one becomes the other, so every environment with a finite split trains the same way.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise EnvError(f"a task seed must be a non-negative int, got {seed!r}")
    if split_size is None:
        return seed
    if split_size < 1:
        raise EnvError(f"this split has no episodes (size {split_size}); nothing to draw a task from")
    return seed % split_size


@dataclass(frozen=True)
class Observation:
    """What the agent sees at one point of an episode.

    Attributes:
        text: the observation text of this step (ALFWorld's feedback, WebShop's page text).
        task: the task description, constant over the episode.
        task_type: the task family (household: ALFWorld task type; shop: product category).
        admissible_actions: the actions the environment accepts now, in a stable order.
        anchor: hashable key of the true underlying state, for GiGPO step groups.
        step: number of actions taken so far in the episode.
        action_templates: free-form actions the environment also accepts now, each a literal prefix
            and suffix around one ``<...>`` slot (shop's search page: ``search[<text>]``). A free-text
            agent may fill the slot itself; the environment still checks what it was given.
    """

    text: str
    task: str
    task_type: str
    admissible_actions: tuple[str, ...]
    anchor: Hashable
    step: int = 0
    action_templates: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    """The result of one action.

    Attributes:
        observation: the observation after the action.
        reward: the environment's reward for this step (no invalid-action penalty included).
        done: the episode is over (success, failure such as a purchase, or the step limit).
        won: the task is solved (household: goal satisfied; shop: reward == 1).
        valid: the action was well formed and admissible; an invalid action changes nothing.
        reason: why the action was invalid ("" when valid).
        score: the episode score so far (household: 1.0 if won; shop: the purchase reward).
        truncated: the episode ended because it hit ``max_steps``.
    """

    observation: Observation
    reward: float
    done: bool
    won: bool
    valid: bool
    reason: str = ""
    score: float = 0.0
    truncated: bool = False
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Env(Protocol):
    """Protocol of a single environment. See the module docstring for the contract."""

    name: str
    split: str
    max_steps: int

    def reset(self, seed: int) -> Observation: ...

    def step(self, action: str) -> Step: ...

    def expert_action(self) -> str:
        """The expert's next action from the current state (replans after any detour)."""
        ...

    def split_size(self) -> int | None:
        """Number of distinct episodes in this split (``None``: unlimited, every seed is new)."""
        ...


class EpisodeTracker:
    """Bookkeeping shared by environments: step count, done flag, and the step-after-done error."""

    def __init__(self, max_steps: int) -> None:
        if max_steps < 1:
            raise EnvError(f"max_steps must be >= 1, got {max_steps}")
        self.max_steps = max_steps
        self.steps = 0
        self.done = True
        self.started = False

    def start(self) -> None:
        self.steps = 0
        self.done = False
        self.started = True

    def before_step(self, env_name: str) -> None:
        if not self.started:
            raise EnvError(f"{env_name}: step() before reset(seed); call reset(seed) first")
        if self.done:
            raise EnvError(f"{env_name}: step() after the episode ended; call reset(seed) to start a new one")
        self.steps += 1

    def finish(self, solved_or_over: bool) -> tuple[bool, bool]:
        """Returns (done, truncated) after this step and records it."""
        truncated = not solved_or_over and self.steps >= self.max_steps
        self.done = solved_or_over or truncated
        return self.done, truncated


class BatchEnv:
    """Many environments stepped together, in process.

    ``step`` takes one action per environment; ``None`` skips an environment (finished or idle), and
    its entry in the result is ``None``. The Ray backend (scale-out) keeps these semantics.
    """

    def __init__(self, envs: Sequence[Env]) -> None:
        if not envs:
            raise EnvError("BatchEnv needs at least one environment")
        self.envs = list(envs)

    def __len__(self) -> int:
        return len(self.envs)

    def reset(self, seeds: Sequence[int]) -> list[Observation]:
        if len(seeds) != len(self.envs):
            raise EnvError(f"reset got {len(seeds)} seeds for {len(self.envs)} environments")
        return [env.reset(int(seed)) for env, seed in zip(self.envs, seeds, strict=True)]

    def step(self, actions: Sequence[str | None]) -> list[Step | None]:
        if len(actions) != len(self.envs):
            raise EnvError(f"step got {len(actions)} actions for {len(self.envs)} environments")
        return [None if a is None else env.step(a) for env, a in zip(self.envs, actions, strict=True)]

    def close(self) -> None:
        for env in self.envs:
            close = getattr(env, "close", None)
            if close is not None:
                close()
