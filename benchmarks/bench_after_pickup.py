"""What a household policy does after it picks up the task's object: where the tiny model loses its episodes.

Plays household-lite episodes with the plain prompt and counts, per task type, the episodes that take the
goal object, the wins among them, and the kind of the next action: walking to the receptacle the task names
(pick-and-place: the right move), walking to a typical place of the lamp (look-at tasks, typical scenes: the
move a lamp skill should bring), walking elsewhere, using a lamp (right in look-at tasks, a confusion in
pick-and-place), putting the object down.

    python benchmarks/bench_after_pickup.py --model tiny
    python benchmarks/bench_after_pickup.py --model tiny-household-skills -o placements=typical --skill typical

``--skill typical`` (or ``decoy``) shows every episode the placement skill of bench_skill_following.py.
"""

from __future__ import annotations

import argparse
from collections import Counter

from bench_skill_following import skill_sets  # benchmarks/ is on sys.path: run as a script
from siri.envs import make
from siri.envs.household import placements, world
from siri.models.loading import load_policy
from siri.rollout.collector import RolloutConfig, collect
from siri.rollout.evaluation import evaluate

LITE = {"clutter": 0.0, "task_types": ["look_at_obj_in_light", "pick_and_place_simple"]}


def next_kind(action: str, receptacle: str | None, lamp_places: frozenset[str] = frozenset()) -> str:
    """The kind of the action after the pickup, in the words of the table (``lamp_places``: the typical places
    of a look-at task's lamp)."""
    if action.startswith("go to "):
        kind = action[6:].rsplit(" ", 1)[0]
        if kind in lamp_places:
            return "to a typical lamp place"
        return "to the task's receptacle" if receptacle and kind == receptacle else "elsewhere"
    return {"use": "use a lamp", "move": "put it down"}.get(action.split(" ", 1)[0], "other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--episodes", type=int, default=140)
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument("--temperature", type=float, default=0.4)
    parser.add_argument("-o", dest="options", action="append", default=[], help="env option key=value")
    parser.add_argument("--skill", default="none", choices=["none", "typical", "decoy"],
                        help="the placement skills every episode is shown (bench_skill_following.py's: the "
                             "object's, and the lamp's in look-at tasks)")
    parser.add_argument("--no-lamp-skills", dest="lamp_skills", action="store_false",
                        help="with --skill: the object's placement skill alone")
    args = parser.parse_args()
    import yaml

    options = dict(LITE)
    for item in args.options:
        key, _, value = item.partition("=")
        options[key] = yaml.safe_load(value)
    env_options = {**options, "split": "eval_id", "max_steps": args.max_steps}
    env = make("household", **env_options)
    goals = {}
    for seed in range(args.episodes):
        env.reset(seed)
        scene = env.scene
        receptacle = world.display(scene.receptacle_kind) if scene.receptacle_kind else None
        lamp_places = frozenset(placements.receptacle_word(r) for r in placements.typical_receptacles(
            scene.lamp_kind)) if scene.lamp_kind else frozenset()
        goals[seed] = (world.display(scene.object_kind), receptacle, lamp_places)
    policy = load_policy(args.model, env="household", reference=False)
    config = RolloutConfig(mode="choose", temperature=args.temperature, seed=0)
    shown = (skill_sets(env_options, args.episodes, args.lamp_skills)[0][args.skill].__getitem__
             if args.skill != "none" else None)
    trajs = evaluate(lambda specs: collect(policy, "household", specs, config, env_options=env_options),
                     args.episodes, shown)
    counts: dict[str, Counter[str]] = {}
    for traj in trajs:
        goal, receptacle, lamp_places = goals[traj.seed]
        c = counts.setdefault(traj.task_type, Counter())
        c["episodes"] += 1
        c["won"] += traj.won
        actions = [step.action for step in traj.steps]
        taken = next((k for k, a in enumerate(actions) if a.startswith(f"take {goal} ")), None)
        if taken is None:
            continue
        c["took"] += 1
        c["won after taking"] += traj.won
        if taken + 1 < len(actions):
            c[f"next: {next_kind(actions[taken + 1], receptacle, lamp_places)}"] += 1
    print(f"model {args.model}, {args.episodes} eval_id episodes, {args.max_steps} steps, T={args.temperature}, "
          f"skill {args.skill}, options {options}")
    for task_type, c in sorted(counts.items()):
        nexts = ", ".join(f"{k[6:]} {v}" for k, v in sorted(c.items()) if k.startswith("next: "))
        print(f"  {task_type}: won {c['won']}/{c['episodes']}; took the object in {c['took']}, won "
              f"{c['won after taking']} of those; the step after the pickup: {nexts}")


if __name__ == "__main__":
    main()
