"""Write a household scene as genuine ALFWorld game files the real engine plays.

A scene becomes a folder holding
- ``problem.pddl``: the PDDL problem on ALFWorld's ``alfred`` domain (objects, ``:init`` facts, and
  the goal formula of ``alfworld/gen/goal_library.py`` for the task type, ``#`` written as ``-``);
- ``game.tw-pddl``: the JSON TextWorld loads: the domain, the grammar with our goal sentence in place
  of "UNKNOWN GOAL", the problem, ``solvable: true`` and the expert's walkthrough;
- ``traj_data.json``: task type and ``pddl_params`` (ALFWorld's engine wrapper reads them), plus where
  the scene came from.

The domain, grammar and goal formulas are read from the installed ``alfworld`` package; we never ship
copies, so exporting needs ``alfworld`` installed. Instance ids are chosen so the engine's demangler names every instance exactly as
the simulator does (see ``scene.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

from siri.envs.base import EnvError
from siri.envs.household import world
from siri.envs.household.placements import DEFAULT_PLACEMENTS
from siri.envs.household.scene import Scene, generate_scene
from siri.envs.household.sim import HouseholdEnv
from siri.utils.io import atomic_write_json, atomic_write_text


def goal_pddl(scene: Scene) -> str:
    """ALFWorld's own goal formula for the task type (``goal_library.gdict``), closing the ``define``."""
    import alfworld.gen.goal_library as goal_library

    template = goal_library.gdict[scene.task_type]["pddl"]
    filled = template.format(
        obj=scene.object_kind, recep=scene.receptacle_kind, toggle=scene.lamp_kind, mrecep=""
    )
    return filled.replace("#", "-")


def problem_pddl(scene: Scene) -> str:
    """The PDDL problem of ``scene``'s initial state and goal."""
    recs, things = scene.receptacles, scene.things
    locs = [f"loc_bar_{i + 1}" for i in range(len(recs))]
    start = "loc_bar_0"
    otypes = sorted({t.kind for t in things} | {scene.object_kind} | ({scene.lamp_kind} - {""}))
    rtypes = sorted({r.kind for r in recs})
    objs = ["agent1 - agent"]
    objs += [f"{k}Type - otype" for k in otypes]
    objs += [f"{k}Type - rtype" for k in rtypes]
    objs += [f"{t.pddl_id} - object" for t in things]
    objs += [f"{r.pddl_id} - receptacle" for r in recs]
    objs += [f"{loc} - location" for loc in (start, *locs)]
    init = [f"(atLocation agent1 {start})"]
    for r, rec in enumerate(recs):
        init.append(f"(receptacleAtLocation {rec.pddl_id} {locs[r]})")
        init.append(f"(receptacleType {rec.pddl_id} {rec.kind}Type)")
        if rec.openable:
            init.append(f"(openable {rec.pddl_id})")
    for t, th in enumerate(things):
        r = scene.start[t]
        init.append(f"(inReceptacle {th.pddl_id} {recs[r].pddl_id})")
        init.append(f"(objectAtLocation {th.pddl_id} {locs[r]})")
        init.append(f"(objectType {th.pddl_id} {th.kind}Type)")
        for flag, pred in (
            (th.pickupable, "pickupable"),
            (th.heatable, "heatable"),
            (th.coolable, "coolable"),
            (th.cleanable, "cleanable"),
            (th.toggleable, "toggleable"),
            (th.container, "isReceptacleObject"),
        ):
            if flag:
                init.append(f"({pred} {th.pddl_id})")
    for rk in rtypes:
        for ok in otypes:
            if ok in world.CAN_CONTAIN[rk]:
                init.append(f"(canContain {rk}Type {ok}Type)")
    lines = ["(define (problem plan_trial)", "    (:domain alfred)", "    (:objects"]
    lines += [f"        {o}" for o in objs]
    lines += ["    )", "    (:init"]
    lines += [f"        {f}" for f in init]
    lines += ["    )", goal_pddl(scene).rstrip(), ""]
    return "\n".join(lines)


def expert_walkthrough(scene: Scene, max_steps: int = 50, placements: str = DEFAULT_PLACEMENTS,
                       clutter: float = 1.0) -> list[str]:
    """The expert's actions from the initial state to the goal, played in the simulator.

    ``placements``, ``clutter``: the options the scene was generated with (it must come back from its seed)."""
    env = HouseholdEnv(
        split=scene.split, max_steps=max_steps, task_types=[scene.task_type], placements=placements, clutter=clutter
    )
    env.reset(scene.seed)
    if env.scene != scene:
        raise EnvError(f"scene {scene.split}/{scene.seed} is not reproducible from its seed")
    actions = []
    while True:
        action = env.expert_action()
        actions.append(action)
        step = env.step(action)
        if step.done:
            if not step.won:
                raise EnvError(f"expert failed on {scene.split}/{scene.seed}")  # pragma: no cover
            return actions


def traj_data(scene: Scene, placements: str = DEFAULT_PLACEMENTS, clutter: float = 1.0) -> dict:
    data = {
        "task_type": scene.task_type,
        "pddl_params": {
            "object_target": scene.object_kind,
            "parent_target": scene.receptacle_kind,
            "toggle_target": scene.lamp_kind,
            "mrecep_target": "",
            "object_sliced": False,
        },
        "task_desc": scene.task,
        "siri_scene": {"split": scene.split, "seed": scene.seed, "room": scene.room},
    }
    if placements != "uniform":  # uniform exports stay byte-identical to those written before the option
        data["siri_scene"]["placements"] = placements
    if clutter != 1.0:
        data["siri_scene"]["clutter"] = clutter
    return data


def scene_dirname(scene: Scene) -> str:
    """Folder name in ALFWorld's style: <task_type>-<Object>-<Lamp|None>-<Receptacle|None>-<split>-<seed>."""
    parts = [scene.task_type, scene.object_kind, scene.lamp_kind or "None", scene.receptacle_kind or "None"]
    return "-".join([*parts, scene.split, f"{scene.seed:05d}"])


def export_scene(
    seed: int,
    split: str,
    out_dir: str | Path,
    task_types: list[str] | None = None,
    placements: str = DEFAULT_PLACEMENTS,
    clutter: float = 1.0,
) -> Path:
    """Write scene ``seed`` of ``split`` under ``out_dir``; returns the path of its ``game.tw-pddl``.

    ``placements`` and ``clutter`` are the household options of those names (the scene the household
    env plays with them is the one written)."""
    try:
        from alfworld.info import ALFRED_PDDL_PATH, ALFRED_TWL2_PATH
    except ImportError as e:
        raise EnvError(
            "exporting ALFWorld games needs the alfworld package for its domain and grammar files; "
            "install it with: pip install 'siri-rl[alfworld]'"
        ) from e
    scene = generate_scene(split, seed, task_types, clutter, placements=placements)
    folder = Path(out_dir) / scene_dirname(scene)
    problem = problem_pddl(scene)
    grammar = Path(ALFRED_TWL2_PATH).read_text()
    if "UNKNOWN GOAL" not in grammar:
        raise EnvError(f"{ALFRED_TWL2_PATH} has no 'UNKNOWN GOAL' placeholder; unsupported alfworld version")
    game = {
        "pddl_domain": Path(ALFRED_PDDL_PATH).read_text(),
        "grammar": grammar.replace("UNKNOWN GOAL", scene.goal),
        "pddl_problem": problem,
        "solvable": True,
        "walkthrough": expert_walkthrough(scene, placements=placements, clutter=clutter),
    }
    atomic_write_text(folder / "problem.pddl", problem)
    atomic_write_json(folder / "traj_data.json", traj_data(scene, placements, clutter))
    atomic_write_text(folder / "game.tw-pddl", json.dumps(game))
    return folder / "game.tw-pddl"
