"""Evaluation: a policy plays the fixed episodes 0..N-1 of a split, and what is reported of them.

One function for everyone who evaluates: ``siri eval`` (a model from disk) and the trainer (the policy
being trained, through its distributed collection). Episode ``i`` plays seed ``i`` and samples from
the ``i``-th stream of the rollout seed whether or not it shows skills, so two evaluations that differ
only in their skills are paired episode by episode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from siri.rollout.collector import EpisodeSpec
from siri.rollout.types import Trajectory

SkillsFor = Callable[[int], tuple[tuple[str, str], ...]]  # episode seed -> ((skill id, text), ...) shown


def evaluate(collect: Callable[[list[EpisodeSpec]], list[Trajectory]], episodes: int,
             skills_for: SkillsFor | None = None) -> list[Trajectory]:
    """Play seeds ``0..episodes-1`` (each showing ``skills_for(seed)``) with ``collect``; in seed order.

    ``collect`` runs the specs (``siri.rollout.collector.collect`` with a policy and a rollout config,
    or the trainer's distributed collection). Episodes lost with a failed environment worker are left
    out: they have no outcome to report.
    """
    specs = [EpisodeSpec(group=i, seed=i, skills=skills_for(i) if skills_for else ()) for i in range(episodes)]
    return sorted((t for t in collect(specs) if not t.failed), key=lambda t: t.seed)


def summarize(trajectories: Sequence[Trajectory]) -> dict[str, Any]:
    """Evaluation metrics: success overall and per task type, mean score and return, mean steps, invalid-action rate."""
    n = len(trajectories)
    steps = [s for t in trajectories for s in t.steps]
    per_type: dict[str, list[Trajectory]] = {}
    for t in trajectories:
        per_type.setdefault(t.task_type, []).append(t)
    return {
        "episodes": n,
        "success": sum(t.won for t in trajectories) / max(1, n),
        "score": sum(t.score for t in trajectories) / max(1, n),
        "return": sum(t.ret for t in trajectories) / max(1, n),
        "mean_steps": len(steps) / max(1, n),
        "invalid_rate": sum(not s.valid for s in steps) / max(1, len(steps)),
        "per_task_type": {
            k: {"episodes": len(v), "success": sum(t.won for t in v) / len(v), "score": sum(t.score for t in v) / len(v)}
            for k, v in sorted(per_type.items())
        },
    }


def episode_metrics(trajectories: Sequence[Trajectory], prefix: str) -> dict[str, float]:
    """``summarize`` as flat ``prefix/...`` keys for metrics.jsonl and TensorBoard."""
    if not trajectories:
        return {}
    s = summarize(trajectories)
    out = {f"{prefix}/success": s["success"], f"{prefix}/score": s["score"], f"{prefix}/return": s["return"],
           f"{prefix}/episode_len": s["mean_steps"], f"{prefix}/invalid_rate": s["invalid_rate"],
           f"{prefix}/episodes": float(s["episodes"])}
    for task_type, per in s["per_task_type"].items():
        out[f"{prefix}/success/{task_type}"] = per["success"]
        out[f"{prefix}/score/{task_type}"] = per["score"]
    return out


def outcomes(trajectories: Sequence[Trajectory]) -> list[dict[str, Any]]:
    """Each episode by seed: what a paired comparison of two evaluations needs."""
    return [{"seed": t.seed, "task_type": t.task_type, "won": bool(t.won), "score": t.score, "steps": len(t.steps),
             "skill_ids": list(t.skill_ids)} for t in sorted(trajectories, key=lambda t: t.seed)]
