"""Step-by-step agreement between the household simulator and the real ALFWorld engine.

For each scene: export it as ALFWorld game files, then walk one action sequence through both — a few
random admissible actions (half of them drawn among the non-"go to" ones), an invalid string and an
empty one, then the simulator's expert until the episode ends — comparing after every step the
observation text, the admissible actions (as ordered lists), the task, and the won/done/valid flags.
No normalization is applied: everything must match exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from siri.envs.base import Observation
from siri.envs.household.export import export_scene
from siri.envs.household.placements import DEFAULT_PLACEMENTS
from siri.envs.household.scene import generate_scene
from siri.envs.household.sim import HouseholdEnv

if TYPE_CHECKING:
    from siri.envs.alfworld_env import AlfworldEnv

INVALID_PROBES = ("jump over the fridge", "")


@dataclass
class SceneParity:
    split: str
    seed: int
    task_type: str
    steps: int = 0
    won: bool = False
    mismatches: list[str] = field(default_factory=list)
    verbs: set[str] = field(default_factory=set)  # first words of the valid actions walked (coverage)

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.won


def _diff(where: str, ours: Observation, theirs: Observation) -> list[str]:
    out = []
    if ours.text != theirs.text:
        out.append(f"{where}: text differs\n  household: {ours.text!r}\n  alfworld:  {theirs.text!r}")
    if ours.admissible_actions != theirs.admissible_actions:
        only_ours = sorted(set(ours.admissible_actions) - set(theirs.admissible_actions))
        only_theirs = sorted(set(theirs.admissible_actions) - set(ours.admissible_actions))
        out.append(f"{where}: admissible differ; only household: {only_ours}; only alfworld: {only_theirs}")
    if ours.task != theirs.task:
        out.append(f"{where}: task differs: {ours.task!r} vs {theirs.task!r}")
    return out


def compare_scene(
    split: str,
    seed: int,
    game: Path,
    engine: AlfworldEnv,
    random_steps: int = 6,
    rng_seed: int = 0,
    max_steps: int = 50,
    actions: list[str] | None = None,
    placements: str = DEFAULT_PLACEMENTS,
) -> SceneParity:
    """Walk one action sequence through the simulator and ``engine`` (an AlfworldEnv holding ``game``).

    The sequence: ``actions`` if given (else ``random_steps`` random admissible actions), the invalid
    probes, then the simulator's expert until the episode ends. ``placements``: the household option the
    game was exported with.
    """
    scene = generate_scene(split, seed, placements=placements)
    sim = HouseholdEnv(split=split, max_steps=max_steps, placements=placements)
    result = SceneParity(split, seed, scene.task_type)
    ours = sim.reset(seed)
    theirs = engine.reset(engine.games.index(game))
    result.mismatches += _diff("reset", ours, theirs)
    rng = random.Random(f"parity/{split}/{seed}/{rng_seed}")
    probes = list(INVALID_PROBES)
    scripted = list(actions) if actions is not None else None
    t = 0
    while not result.mismatches:
        if scripted is not None:
            if scripted:
                action = scripted.pop(0)
            elif probes:
                action = probes.pop(0)
            else:
                action = sim.expert_action()
        elif t < random_steps:
            # half the time skip the many "go to"s, so that taking, moving, heating, examining... happen
            others = [a for a in ours.admissible_actions if not a.startswith("go to ")]
            action = rng.choice(others if rng.random() < 0.5 else ours.admissible_actions)
        elif probes:
            action = probes.pop(0)
        else:
            action = sim.expert_action()
        t += 1
        a, b = sim.step(action), engine.step(action)
        result.mismatches += _diff(f"step {t} ({action!r})", a.observation, b.observation)
        for name in ("won", "done", "valid"):
            if getattr(a, name) != getattr(b, name):
                result.mismatches.append(
                    f"step {t} ({action!r}): {name} {getattr(a, name)} vs {getattr(b, name)}"
                )
        if a.valid:
            result.verbs.add(action.split()[0])
        ours = a.observation
        if a.done or b.done:
            result.won = a.won and b.won
            break
    result.steps = t
    return result


def run_parity(
    seeds: list[int],
    split: str,
    out_dir: str | Path,
    random_steps: int = 6,
    rng_seed: int = 0,
    placements: str = DEFAULT_PLACEMENTS,
) -> list[SceneParity]:
    """Export ``seeds`` of ``split`` into ``out_dir`` and compare each scene with the real engine."""
    from siri.envs.alfworld_env import AlfworldEnv

    games = [export_scene(seed, split, out_dir, placements=placements) for seed in seeds]
    engine = AlfworldEnv(games=[str(g) for g in games])
    engine.games = [Path(g) for g in games]  # keep export order; index = position in ``seeds``
    try:
        return [
            compare_scene(
                split, seed, game, engine, random_steps=random_steps, rng_seed=rng_seed, placements=placements
            )
            for seed, game in zip(seeds, games, strict=True)
        ]
    finally:
        engine.close()
