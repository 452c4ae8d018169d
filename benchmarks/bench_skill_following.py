"""Does a policy act on what a skill says? Paired evaluations with a correct, a decoy and no placement skill.

Every episode is played three times from the same scene and the same sampling streams: with the plain
prompt, with a skill naming the typical places of the episode's goal object (those of the placement
table present in the room), and with a decoy naming atypical places. The paired per-episode
differences give the effect of the skill's content with the task's difficulty cancelled out. A fourth
and fifth play show the typical places in two orders, and count the episodes whose first move goes
to another kind of place when the order changes. It also counts the episodes that take their goal object
within 6 steps, and at all: what a skill naming the right places should change first. A look-at task
searches twice, for its object and then for a lamp: its episodes are also shown a skill for the lamp's places
(typical, atypical or reversed as the object's; ``--no-lamp-skills``: the object's skill alone, as measured
before session 13). A last play orders the typical places by how likely one visit is to find the thing (a
kind's weight divided by its count in the room: one coffee machine before eight cabinets), the order a
searcher who knows the room would use (``typical_per_visit``).

    python benchmarks/bench_skill_following.py --model tiny-household-skills --episodes 140
    python benchmarks/bench_skill_following.py --model tiny --episodes 140 -o placements=typical

Prints a table and writes JSON (benchmarks/out/skill_following-<model>.json by default).
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from siri.envs import make
from siri.envs.household import placements, world
from siri.models.loading import load_policy
from siri.rollout.collector import RolloutConfig, collect
from siri.rollout.evaluation import evaluate
from siri.rollout.types import Trajectory
from siri.sft.demonstrator import placement_skill_text
from siri.utils.io import atomic_write_json
from study import paired_ci  # the studies' paired bootstrap (one seed: over episodes)

LITE = {"clutter": 0.0, "task_types": ["look_at_obj_in_light", "pick_and_place_simple"]}


def skill_sets(env_options: dict, episodes: int, lamps: bool = True
               ) -> tuple[dict[str, dict[int, tuple[tuple[str, str], ...]]], list[str]]:
    """Per condition, seed -> the skills shown: typical places, atypical (decoy), typical reversed, for the
    goal object and (``lamps``, look-at tasks) for the lamp, the object's first; and each seed's goal object
    word."""
    env = make("household", **env_options)
    out: dict[str, dict[int, tuple[tuple[str, str], ...]]] = {"typical": {}, "decoy": {}, "typical_reversed": {},
                                                              "typical_per_visit": {}}
    goals: list[str] = []
    for seed in range(episodes):
        env.reset(seed)
        scene = env.scene
        present = {r.kind for r in scene.receptacles}
        count = Counter(r.kind for r in scene.receptacles)
        goals.append(world.display(scene.object_kind))
        needed = [scene.object_kind, *([scene.lamp_kind] if lamps and scene.lamp_kind else [])]
        for name in out:
            skills = []
            for k, kind in enumerate(needed):
                pick = placements.atypical_receptacles if name == "decoy" else placements.typical_receptacles
                kinds = pick(kind, 3, among=present)
                if name == "typical_reversed":
                    kinds = kinds[::-1]
                elif name == "typical_per_visit":  # likeliest per receptacle visited: a kind's weight / its count
                    table = placements.placement_table(kind)
                    kinds = sorted(kinds, key=lambda r: -table[r] / count[r])
                places = [placements.receptacle_word(r) for r in kinds]
                if places:
                    skills.append((f"{name}{seed}-{k}", placement_skill_text(world.display(kind), places)))
            out[name][seed] = tuple(skills)
    return out, goals


def first_take(traj: Trajectory, goal: str) -> int | None:
    """The step at which the episode first takes its goal object (None: never)."""
    return next((k for k, step in enumerate(traj.steps) if step.action.startswith(f"take {goal} ")), None)


def first_destination(traj: Trajectory) -> str:
    """The receptacle kind word of the episode's first "go to" ("" if it never moves)."""
    for step in traj.steps:
        if step.action.startswith("go to "):
            return step.action[6:].rsplit(" ", 1)[0]
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny-household-skills")
    parser.add_argument("--episodes", type=int, default=140)
    parser.add_argument("--split", default="eval_id")
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--temperature", type=float, default=0.4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", dest="options", action="append", default=[], help="env option key=value")
    parser.add_argument("--out", default=None)
    parser.add_argument("--no-lamp-skills", dest="lamp_skills", action="store_false",
                        help="show look-at episodes the object's placement skill alone (no skill for the lamp)")
    args = parser.parse_args()
    import yaml

    options = {**LITE, "placements": "typical"}
    for item in args.options:
        key, _, value = item.partition("=")
        options[key] = yaml.safe_load(value)
    env_options = {**options, "split": args.split, "max_steps": args.max_steps}
    policy = load_policy(args.model, env="household", reference=False)
    config = RolloutConfig(mode="choose", temperature=args.temperature, seed=args.seed)
    sets, goals = skill_sets(env_options, args.episodes, args.lamp_skills)

    def run(skills_for: Callable[[int], tuple[tuple[str, str], ...]] | None) -> list[Trajectory]:
        return evaluate(lambda specs: collect(policy, "household", specs, config, env_options=env_options),
                        args.episodes, skills_for)

    start = time.time()
    plays = {"plain": run(None)}
    for name, per_seed in sets.items():
        plays[name] = run(per_seed.__getitem__)
    won = {name: np.array([float(t.won) for t in trajs]) for name, trajs in plays.items()}
    assert all(len(w) == args.episodes for w in won.values())
    shown = np.array([bool(sets["typical"][s]) for s in range(args.episodes)])
    results: dict[str, object] = {
        "model": args.model, "episodes": args.episodes, "env_options": env_options, "temperature": args.temperature,
        "lamp_skills": args.lamp_skills,
        "success": {name: float(w.mean()) for name, w in won.items()},
        "typical_minus_plain": paired_ci([won["typical"]], [won["plain"]]),
        "decoy_minus_plain": paired_ci([won["decoy"]], [won["plain"]]),
        "typical_minus_decoy": paired_ci([won["typical"]], [won["decoy"]]),
    }
    firsts = {name: [first_destination(t) for t in plays[name]] for name in ("typical", "typical_reversed", "plain")}
    # episodes whose skill names two or more places: reversing their order means something
    orderable = [s for s in range(args.episodes)  # the first move follows the object's skill
                 if sets["typical"][s] and sets["typical"][s][0][1] != sets["typical_reversed"][s][0][1]]
    changed = [s for s in orderable if firsts["typical"][s] != firsts["typical_reversed"][s]]
    results["order_swap"] = {"episodes_with_two_orders": len(orderable), "first_move_changed": len(changed),
                             "share": len(changed) / max(1, len(orderable))}
    results["skill_shown_share"] = float(shown.mean())
    # Where the skill should help: finding the goal object sooner. Taken within 6 steps, and at all.
    takes = {name: [first_take(t, goals[s]) for s, t in enumerate(trajs)] for name, trajs in plays.items()}
    results["goal_taken"] = {name: {"by_step_6": sum(k is not None and k < 6 for k in ks),
                                    "at_all": sum(k is not None for k in ks)} for name, ks in takes.items()}
    results["seconds"] = time.time() - start
    print(f"model {args.model}, {args.episodes} {args.split} episodes, T={args.temperature}, options {options}")
    for name, value in results["success"].items():  # type: ignore[union-attr]
        print(f"  success {name:18s} {value:.3f}")
    for key in ("typical_minus_plain", "decoy_minus_plain", "typical_minus_decoy"):
        mean, lo, hi = results[key]  # type: ignore[misc]
        print(f"  {key:22s} {mean:+.3f}  [{lo:+.3f}, {hi:+.3f}]  (paired, 95% CI)")
    for name, taken in results["goal_taken"].items():  # type: ignore[union-attr]
        print(f"  goal object taken, {name:18s} within 6 steps {taken['by_step_6']:3d}, at all {taken['at_all']:3d}")
    swap = results["order_swap"]
    print(f"  first move changes with the order of the places: {swap['first_move_changed']} of "  # type: ignore[index]
          f"{swap['episodes_with_two_orders']} episodes ({swap['share']:.2f})")  # type: ignore[index]
    out = Path(args.out or f"benchmarks/out/skill_following-{args.model.replace('/', '_')}.json")
    atomic_write_json(out, results)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
