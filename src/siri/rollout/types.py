"""The records a rollout produces and every later stage (advantages, losses, SIRI) consumes.

One ``StepRecord`` is one training sample: the prompt the policy saw at one environment step, the
response it sampled, and what the environment answered. A ``Trajectory`` is the ordered list of
steps of one episode. Ids are plain ints so that batches flatten into arrays cheaply.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field


@dataclass
class StepRecord:
    """One environment step as a training sample.

    Attributes:
        group: episode group id; every trajectory of a group starts from the same seed.
        traj: trajectory id, unique within a batch.
        t: index of this step within its trajectory (0-based).
        seed: the environment seed of the episode.
        task_type: task family of the episode (for per-type metrics and skill selection).
        prompt_ids: token ids of the full prompt (chat template applied), no padding.
        response_ids: token ids the policy sampled (ends with the end-of-turn token when it stopped).
        old_logprobs: log-prob of each response token under the sampling policy (same length as
            ``response_ids``); in ``choose`` mode, under the admissible-action constraint.
        action_mask: 1 for response tokens that spell the action (inside ``<action>...</action>`` or
            the chosen action in ``choose`` mode), else 0; same length as ``response_ids``.
        action: the projected action string sent to the environment (may be invalid text).
        valid: the action was parsed and admissible.
        reward: the step's reward *including* the invalid-action penalty.
        done: the episode ended at this step.
        won: the episode was won at this step.
        anchor: hashable true-state key of the state the prompt was built from (GiGPO step groups).
        observation_text: the observation text the prompt was built from (for similarity anchors).
        skill_ids: ids of the skills shown in the prompt; empty for a plain-prompt step.
        plain_prompt_ids: for a skill-augmented step, the plain prompt (skills block removed) token
            ids; ``None`` for plain steps (their ``prompt_ids`` are already plain).
        choices: in ``choose`` mode, the token ids of every admissible response (the constraint set);
            ``None`` in ``generate`` mode.
    """

    group: int
    traj: int
    t: int
    seed: int
    task_type: str
    prompt_ids: list[int]
    response_ids: list[int]
    old_logprobs: list[float]
    action_mask: list[int]
    action: str
    valid: bool
    reward: float
    done: bool
    won: bool
    anchor: Hashable
    observation_text: str = ""
    skill_ids: tuple[str, ...] = ()
    plain_prompt_ids: list[int] | None = None
    choices: list[list[int]] | None = None

    @property
    def uses_skills(self) -> bool:
        return bool(self.skill_ids)


@dataclass
class Trajectory:
    """One episode: its steps in order and its outcome.

    ``ret`` is the undiscounted sum of step rewards (penalties included); ``score`` is the
    environment's episode score (household: 1.0 if won; shop: the purchase reward), without penalties.
    ``failed`` marks an episode cut short by infrastructure (an environment worker died, see
    ``siri.envs.ray_workers``): its steps are kept for inspection, but training and metrics skip it.
    """

    group: int
    traj: int
    seed: int
    task: str
    task_type: str
    steps: list[StepRecord] = field(default_factory=list)
    won: bool = False
    score: float = 0.0
    skill_ids: tuple[str, ...] = ()
    failed: bool = False
    failure: str = ""

    @property
    def ret(self) -> float:
        return float(sum(s.reward for s in self.steps))

    @property
    def uses_skills(self) -> bool:
        return bool(self.skill_ids)

    @property
    def invalid_rate(self) -> float:
        return sum(not s.valid for s in self.steps) / max(1, len(self.steps))
