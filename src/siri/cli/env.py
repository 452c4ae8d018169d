"""``siri env ...``: list, play, check, export and verify environments."""

from __future__ import annotations

import json
import random
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import typer

from siri.cli.common import OPTION_HELP, fail, parse_options
from siri.envs import ENVIRONMENTS, EnvError, make

app = typer.Typer(
    help="Environments: list them, play one by hand, check experts, export to ALFWorld.", no_args_is_help=True
)

QUIT_WORDS = {"quit", "q", "exit"}


def _make(name: str, options: list[str], split: str | None) -> Any:
    try:
        return make(name, **parse_options(options, split))
    except EnvError as e:
        raise fail(str(e)) from e


@app.command("list")
def list_envs() -> None:
    """List the available environments."""
    width = max(len(name) for name in ENVIRONMENTS)
    for name, (_, description) in sorted(ENVIRONMENTS.items()):
        typer.echo(f"{name:<{width}}  {description}")


@app.command("play")
def play(
    name: str = typer.Argument(..., help="Environment name (see `siri env list`)."),
    seed: int = typer.Option(0, help="Episode seed: the same seed always gives the same episode."),
    split: str | None = typer.Option(None, help="Split, e.g. train, eval_id, eval_ood."),
    option: list[str] = typer.Option([], "--option", "-o", help=OPTION_HELP),
    show_anchor: bool = typer.Option(False, help="Also print the true-state anchor after each step."),
) -> None:
    """Play an episode by hand: type an action's number or its text; `quit` ends."""
    env = _make(name, option, split)
    try:
        obs = env.reset(seed)
    except EnvError as e:
        raise fail(str(e)) from e
    total = 0.0
    while True:
        typer.echo(f"\n{obs.text}\n")
        if show_anchor:
            typer.echo(f"[anchor] {obs.anchor!r}")
        for i, action in enumerate(obs.admissible_actions, 1):
            typer.echo(f"  {i:>3}. {action}")
        typer.echo("> ", nl=False)
        line = sys.stdin.readline()
        if not line or line.strip().lower() in QUIT_WORDS:
            typer.echo("\nbye")
            return
        text = line.strip()
        if text.isdigit() and 1 <= int(text) <= len(obs.admissible_actions):
            text = obs.admissible_actions[int(text) - 1]
        step = env.step(text)
        total += step.reward
        obs = step.observation
        if not step.valid:
            typer.echo(f"[invalid action: {step.reason}]")
        if step.done:
            typer.echo(f"\n{obs.text}\n")
            outcome = "WON" if step.won else ("out of steps" if step.truncated else "episode over")
            typer.echo(f"{outcome}: steps={obs.step} reward={total:g} score={step.score:g}")
            return


def _run_episode(env: Any, seed: int, policy: str) -> tuple[str, bool, float, int, int]:
    obs = env.reset(seed)
    rng = random.Random(f"check/{seed}")
    invalid = 0
    while True:
        action = env.expert_action() if policy == "expert" else rng.choice(obs.admissible_actions)
        step = env.step(action)
        invalid += not step.valid
        obs = step.observation
        if step.done:
            return obs.task_type, step.won, step.score, obs.step, invalid


@app.command("check")
def check(
    name: str = typer.Argument(..., help="Environment name (see `siri env list`)."),
    policy: str = typer.Option(
        "expert", help="expert (the environment's expert) or random (uniform admissible)."
    ),
    episodes: int | None = typer.Option(None, help="Number of episodes (default: the whole split, or 100)."),
    split: str | None = typer.Option(None, help="Split, e.g. train, eval_id, eval_ood."),
    seed_start: int = typer.Option(0, help="First seed; episodes use seeds seed_start, seed_start+1, ..."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    option: list[str] = typer.Option([], "--option", "-o", help=OPTION_HELP),
) -> None:
    """Play episodes with a policy and report success rate and mean score overall and per task type."""
    if policy not in ("expert", "random"):
        raise fail(f"unknown policy {policy!r}; choose expert or random")
    env = _make(name, option, split)
    if episodes is None:
        size = env.split_size()
        episodes = 100 if size is None else max(size - seed_start, 0)
    if episodes < 1:
        raise fail(f"--episodes must be >= 1 (got {episodes})")
    per_type: dict[str, list[tuple[bool, float, int, int]]] = defaultdict(list)
    try:
        for seed in range(seed_start, seed_start + episodes):
            task_type, won, score, steps, invalid = _run_episode(env, seed, policy)
            per_type[task_type].append((won, score, steps, invalid))
    except EnvError as e:
        raise fail(str(e)) from e

    def summary(rows: list[tuple[bool, float, int, int]]) -> dict[str, float]:
        n = len(rows)
        return {
            "episodes": n,
            "success_rate": sum(r[0] for r in rows) / n,
            "mean_score": sum(r[1] for r in rows) / n,
            "mean_steps": sum(r[2] for r in rows) / n,
            "invalid_actions": sum(r[3] for r in rows),
        }

    report = {
        "env": name,
        "split": getattr(env, "split", split),
        "policy": policy,
        "seed_start": seed_start,
        "overall": summary([r for rows in per_type.values() for r in rows]),
        "per_task_type": {tt: summary(rows) for tt, rows in sorted(per_type.items())},
    }
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(
        f"{name} split={report['split']} policy={policy} seeds {seed_start}..{seed_start + episodes - 1}"
    )
    width = max(34, *(len(tt) + 1 for tt in report["per_task_type"]))
    typer.echo(f"{'task type':<{width}} {'episodes':>8} {'success':>8} {'score':>7} {'steps':>6}")
    rows = [*report["per_task_type"].items(), ("overall", report["overall"])]
    for tt, s in rows:
        line = (f"{tt:<{width}} {s['episodes']:>8} {s['success_rate']:>8.3f} {s['mean_score']:>7.3f} "
                f"{s['mean_steps']:>6.1f}")
        typer.echo(line)


def _parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            if sep:
                a, b = int(lo), int(hi)
                if b < a:
                    raise ValueError
                seeds += range(a, b + 1)
            else:
                seeds.append(int(part))
        except ValueError:
            raise fail(
                f"bad --seeds {text!r}: use A-B (inclusive), a number, or a comma list like 0-9,20"
            ) from None
    return seeds


@app.command("export-alfworld")
def export_alfworld(
    seeds: str = typer.Option(..., help="Scenes to export: A-B (inclusive), N, or a comma list like 0-9,20."),
    out: Path = typer.Option(..., help="Folder to write one ALFWorld game folder per scene into."),
    split: str = typer.Option("train", help="Household split: train, eval_id or eval_ood."),
    task_types: str | None = typer.Option(
        None, help="Comma-separated task types to pose (default: all six)."
    ),
    option: list[str] = typer.Option([], "--option", "-o", help="Scene option as key=value: clutter (0-1) or "
                                     "placements (uniform, typical), as the household env takes them."),
) -> None:
    """Write household scenes as ALFWorld game files (game.tw-pddl, traj_data.json, problem.pddl)."""
    from siri.envs.household.export import export_scene

    types = task_types.split(",") if task_types else None
    scene_options = parse_options(option)
    unknown = sorted(set(scene_options) - {"clutter", "placements"})
    if unknown:
        raise fail(f"unknown scene option(s) {', '.join(unknown)}; valid: clutter, placements")
    try:
        paths = [export_scene(seed, split, out, types, **scene_options) for seed in _parse_seeds(seeds)]
    except EnvError as e:
        raise fail(str(e)) from e
    for p in paths:
        typer.echo(str(p))
    typer.echo(f"exported {len(paths)} game(s) to {out}", err=True)


@app.command("parity")
def parity(
    episodes: int = typer.Option(20, help="Number of scenes to compare."),
    split: str = typer.Option("eval_id", help="Household split the scenes come from."),
    seed_start: int = typer.Option(0, help="First scene seed."),
    random_steps: int = typer.Option(8, help="Random admissible actions before the expert takes over."),
    out: Path | None = typer.Option(None, help="Keep the exported games here (default: a temporary folder)."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Walk the same actions through household and the real ALFWorld engine; exit 1 on any difference."""
    import tempfile

    from siri.envs.household.parity import run_parity

    if episodes < 1:
        raise fail(f"--episodes must be >= 1 (got {episodes})")
    seeds = list(range(seed_start, seed_start + episodes))
    try:
        with tempfile.TemporaryDirectory(prefix="siri-parity-") as tmp:
            results = run_parity(seeds, split, out or tmp, random_steps=random_steps)
    except EnvError as e:
        raise fail(str(e)) from e
    failed = [r for r in results if not r.ok]
    if as_json:
        rows = [
            {"split": r.split, "seed": r.seed, "task_type": r.task_type, "steps": r.steps, "won": r.won,
             "ok": r.ok, "mismatches": r.mismatches}
            for r in results
        ]  # fmt: skip
        typer.echo(json.dumps({"scenes": len(results), "failed": len(failed), "results": rows}, indent=2))
    else:
        for r in results:
            status = "ok" if r.ok else "MISMATCH"
            typer.echo(f"{r.split:<9} seed {r.seed:<5} {r.task_type:<32} steps {r.steps:<3} {status}")
            for m in r.mismatches:
                typer.echo(f"    {m}")
        typer.echo(f"{len(results) - len(failed)}/{len(results)} scenes agree step by step")
    if failed:
        raise typer.Exit(1)
