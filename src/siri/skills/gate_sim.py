"""Simulated paired evaluations, to measure what the skill gate does with skills of known effect.

The gate's guarantee (``siri.skills.validation``) is a union bound over its looks with a t test at each;
on these discrete differences the t levels are approximate, so its false-promotion rate is checked
here by simulation (tests/test_skill_validation.py) and reported with the power for true effects
(benchmarks/bench_gate.py, docs/skill-gate.md).

A simulated skill is evaluated on ``max_evals`` groups, each a fresh task: per task a plain success
probability (or score distribution) is drawn, the plain arm and the skill arm draw their rollouts'
returns independently, and ``d = mean(with) - mean(plain)``. The gate looks after every evaluation,
exactly as ``SkillBank.update_status`` does when each iteration brings one evaluation of the skill
(the most looks a skill can get).

Models of a rollout's return (``effect`` is the expected paired difference ``E[d]``):

- ``bernoulli``: 0/1 success, task success probability ``p ~ Beta(1, 1)``.
- ``zeros``: ``p ~ Beta(0.15, 0.15)``: most tasks always or never solved, so most ``d`` are exactly 0
  (as in real runs, where more than half are).
- ``penalties``: ``bernoulli`` minus 0.1 per invalid action (Poisson count, task rate ``Gamma(0.5, 1)``).
- ``shop``: partial scores in [0, 1]: no purchase with task probability ``1 - b``, ``b ~ Beta(2, 1)``,
  else a score ``~ Beta(8m, 8(1 - m))`` with task mean ``m ~ U(0.3, 0.9)``.
- ``discounted``: ``siri.utility=discounted``: a win is worth ``gamma**t`` (``gamma = 0.95``) at its step ``t``;
  ``bernoulli`` wins, at ``t = m + Poisson(1)`` with task length ``m`` uniform in 3..14 (the tiny household's
  expert lengths): continuous-valued, so pairs of wins are rarely exactly 0.
- ``ties``: adversarial, zero effect only: ``d = +h`` or ``-h`` with equal probability (``h`` = one
  rollout of the skill arm), the case where all-equal differences (``s = 0``) are most likely.

An effect lifts a task's success probability by ``effect * (1 - p) / E[1 - p]`` (the skill helps
where the policy fails; ``E[d] = effect`` exactly; ``discounted``: divided by the mean value of a win), on the shop it turns a rollout into a perfect
purchase with probability ``effect / E[1 - score]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from siri.skills.validation import CANDIDATE, Gate, UtilityStats, assign_validation, decide

MODELS = ("bernoulli", "zeros", "penalties", "shop", "discounted", "ties")
_BETA = {"bernoulli": (1.0, 1.0), "penalties": (1.0, 1.0), "zeros": (0.15, 0.15), "discounted": (1.0, 1.0)}
_GAMMA, _LENGTHS, _EXTRA = 0.95, np.arange(3, 15), 1.0  # the discounted model's wins: gamma**(m + Poisson(1))
_MEAN_WIN = float(np.mean(_GAMMA**_LENGTHS) * np.exp(_EXTRA * (_GAMMA - 1.0)))  # E[gamma**t] of a win
_SHOP_MEAN_SCORE = (2.0 / 3.0) * 0.6  # E[b] * E[m]: buying and score quality are drawn independently


@dataclass(frozen=True)
class GateSetting:
    """The settings of one preset that decide what the gate sees: arm sizes and the gate's parameters."""

    name: str
    group_size: int
    share: float
    min_evals: int
    max_evals: int
    alpha: float
    promote_lcb: float = 0.0
    retire_ucb: float = 0.0

    @property
    def arms(self) -> tuple[int, int]:
        """(rollouts shown the skill, plain rollouts) of one group, as ``assign_validation`` plans them."""
        (row,) = assign_validation([self.group_size], ["g"], share=self.share)
        shown = sum(x is not None for x in row)
        return shown, self.group_size - shown


def preset_settings(names: Iterable[str] | None = None) -> list[GateSetting]:
    """The gate settings of every shipped preset (siri/presets/) with SIRI enabled (or of the named presets)."""
    from siri.config import PRESETS_DIR, TrainConfig, preset_path

    if names is None:
        names = sorted(p.stem for p in Path(PRESETS_DIR).glob("*.yaml"))
    out = []
    for name in names:
        cfg = TrainConfig.load(preset_path(name))
        if not cfg.siri.enabled:
            continue
        s = cfg.siri
        out.append(
            GateSetting(
                name,
                cfg.rollout.group_size,
                s.validation_share,
                s.min_evals,
                s.max_evals,
                s.gate_alpha,
                s.promote_lcb,
                s.retire_ucb,
            )
        )
    return out


def simulate_differences(
    model: str, arms: tuple[int, int], n_skills: int, n_evals: int, effect: float, rng: np.random.Generator
) -> np.ndarray:
    """Paired differences, shape ``(n_skills, n_evals)``: one row per skill, one column per group."""
    shown, plain = arms
    size = (n_skills, n_evals)
    if model == "ties":
        if effect != 0.0:
            raise ValueError("the ties model is a zero-effect model")
        return np.where(rng.random(size) < 0.5, -1.0, 1.0) / shown
    if model in _BETA:
        a, b = _BETA[model]
        p = rng.beta(a, b, size)
        win_value = _MEAN_WIN if model == "discounted" else 1.0
        lifted = p + effect * (1.0 - p) / (b / (a + b)) / win_value
        if lifted.max(initial=0.0) > 1.0:
            raise ValueError(f"effect {effect} is too large for the {model} model")
        if model == "discounted":
            length = rng.choice(_LENGTHS, size)[..., None]

            def arm(k: int, prob: np.ndarray) -> np.ndarray:
                wins = rng.random((*size, k)) < prob[..., None]
                return (wins * _GAMMA ** (length + rng.poisson(_EXTRA, (*size, k)))).mean(-1)

            return arm(shown, lifted) - arm(plain, p)
        with_arm = rng.binomial(shown, lifted) / shown
        plain_arm = rng.binomial(plain, p) / plain
        if model == "penalties":
            rate = rng.gamma(0.5, 1.0, size)
            with_arm -= 0.1 * rng.poisson(rate[..., None], (*size, shown)).mean(-1)
            plain_arm -= 0.1 * rng.poisson(rate[..., None], (*size, plain)).mean(-1)
        return with_arm - plain_arm
    if model == "shop":
        buys = rng.beta(2.0, 1.0, size)[..., None]
        quality = rng.uniform(0.3, 0.9, size)[..., None]
        fix = effect / (1.0 - _SHOP_MEAN_SCORE)

        def arm(k: int, fix_prob: float) -> np.ndarray:
            score = (rng.random((*size, k)) < buys) * rng.beta(
                8.0 * quality, 8.0 * (1.0 - quality), (*size, k)
            )
            return np.where(rng.random((*size, k)) < fix_prob, 1.0, score).mean(-1)

        return arm(shown, fix) - arm(plain, 0.0)
    raise ValueError(f"unknown model {model!r}; expected one of {MODELS}")


Decision = Callable[[str, UtilityStats], str]


def gate_decision(setting: GateSetting) -> Decision:
    """The project's own ``decide`` with a preset's settings (what ``SkillBank.update_status`` calls)."""

    gate = Gate(alpha=setting.alpha, min_evals=setting.min_evals, max_evals=setting.max_evals,
                promote_lcb=setting.promote_lcb, retire_ucb=setting.retire_ucb)

    def next_status(status: str, stats: UtilityStats) -> str:
        return decide(status, stats, gate)[0]

    return next_status


@dataclass(frozen=True)
class GateOutcome:
    """What became of simulated candidates: shares promoted / retired / undecided, mean evaluations used."""

    promoted: float
    retired: float
    undecided: float
    mean_evals: float


def run_gate(diffs: np.ndarray, next_status: Decision) -> GateOutcome:
    """Feed each row of ``diffs`` to a fresh candidate, one evaluation at a time, looking after each."""
    counts = {"active": 0, "retired": 0, CANDIDATE: 0}
    used = 0
    for row in diffs.tolist():
        stats, status = UtilityStats(), CANDIDATE
        for i, d in enumerate(row):
            stats.add(d, i)
            status = next_status(status, stats)
            if status != CANDIDATE:
                break
        counts[status] += 1
        used += stats.n
    total = max(len(diffs), 1)
    return GateOutcome(
        counts["active"] / total, counts["retired"] / total, counts[CANDIDATE] / total, used / total
    )
