"""``siri eval``: success of a policy on an environment's evaluation episodes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from siri.cli.common import OPTION_HELP, parse_options

if TYPE_CHECKING:
    from siri.skills.bank import SkillBank


def default_eval_split(env: str) -> str:
    """The environment's first evaluation split (``eval*`` or ``test*``), else ``train``."""
    from siri.envs import env_splits

    splits = env_splits(env)
    return next((s for s in splits if s.startswith(("eval", "test"))), "train")


def evaluate(
    model: str,
    env: str,
    episodes: int,
    split: str | None = None,
    mode: str | None = None,
    temperature: float = 0.4,
    max_steps: int | None = None,
    seed: int = 0,
    progress: bool = True,
    env_options: dict[str, Any] | None = None,
    skills: list[str] | None = None,
    skills_from: str | None = None,
    skills_top_k: int = 1,
) -> dict[str, Any]:
    """Load ``model``, play ``episodes`` eval episodes (seeds 0..N-1 of ``split``) and summarize them.

    ``env_options`` are extra environment options (e.g. ``{"clutter": 0.0}`` for household). ``skills``
    are shown in every prompt's skills block (SIRI's skill-augmented prompt). ``skills_from`` (a run
    directory or a ``skill_bank.json``) shows each episode instead the ``skills_top_k`` best active skills
    of its task type in that bank. Episode i samples from the same stream with or without skills, so two
    evaluations that differ only in skills are paired (``outcomes`` lists every episode by seed).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from siri.envs import make
    from siri.models.loading import load_policy
    from siri.rollout.collector import RolloutConfig, collect
    from siri.rollout.evaluation import SkillsFor, evaluate, outcomes, summarize
    from siri.skills.pipeline import bank_skills_by_seed

    split = split or default_eval_split(env)
    options: dict[str, Any] = {**(env_options or {}), "split": split}
    if max_steps is not None:
        options["max_steps"] = max_steps
    size = make(env, **options).split_size()
    if size is not None and episodes > size:
        raise typer.BadParameter(f"split {split!r} of {env!r} has {size} episodes; ask for at most {size}")
    if skills and skills_from:
        raise typer.BadParameter("give skills as --skill texts or --skills-from a run's bank, not both")
    shown = tuple((f"cli{k + 1}", text) for k, text in enumerate(skills or []))
    skills_for: SkillsFor = lambda seed: shown  # noqa: E731
    if skills_from:
        skills_for = bank_skills_by_seed(load_bank(skills_from), env, options, top_k=skills_top_k)
    policy = load_policy(model, env=env, reference=False)
    config = RolloutConfig(mode=mode or policy.action_mode, temperature=temperature, seed=seed)
    won = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=not progress, transient=True) as bar:
        task = bar.add_task(f"eval {policy.name} on {env}/{split}", total=episodes)

        def done(traj: Any) -> None:
            nonlocal won
            won += bool(traj.won)
            bar.update(task, advance=1, description=f"eval {policy.name} on {env}/{split}  success {won}")

        trajectories = evaluate(
            lambda specs: collect(policy, env, specs, config, env_options=options, on_episode_end=done), episodes,
            skills_for)
    return {"model": policy.name, "env": env, "split": split, "mode": config.mode, "temperature": temperature,
            "skills": list(skills or []), "skills_from": skills_from,
            "skills_shown": {sid: text for seed in range(episodes) for sid, text in skills_for(seed)},
            **summarize(trajectories), "outcomes": outcomes(trajectories)}


def load_bank(path: str) -> SkillBank:
    """The skill bank of a run directory, or a bank file; a missing or corrupt bank is a clear error."""
    from pathlib import Path

    from siri.skills.bank import BANK_FILENAME, SkillBank, SkillBankError, gate_of_run

    file = Path(path) / BANK_FILENAME if Path(path).is_dir() else Path(path)
    try:
        return SkillBank.load(file, gate=gate_of_run(file.parent))  # ranked by the run's own bounds
    except SkillBankError as e:
        raise typer.BadParameter(f"--skills-from: {e}") from e


def eval_command(
    model: str = typer.Option("tiny", help="tiny, tiny-shop, smollm2-135m, a local directory or a hub id."),
    env: str = typer.Option("household", help="Environment: household or shop."),
    episodes: int = typer.Option(50, min=1, help="Number of evaluation episodes (seeds 0..N-1 of the split)."),
    split: str = typer.Option(None, help="Split to evaluate on (default: the environment's first eval split)."),
    mode: str = typer.Option(None, help="Action mode: generate or choose (default: the model's)."),
    temperature: float = typer.Option(0.4, min=0.0, help="Sampling temperature (0 = greedy)."),
    max_steps: int = typer.Option(None, min=1, help="Episode step limit (default: the environment's)."),
    seed: int = typer.Option(0, help="Sampling seed."),
    option: list[str] = typer.Option([], "--option", "-o", help=OPTION_HELP + " Household: -o clutter=0."),
    skill: list[str] = typer.Option([], "--skill", help="Skill text shown in every prompt (repeatable), e.g. "
                                     "'WHEN the task is to look at an object THEN find the object first'."),
    skills_from: str = typer.Option(None, "--skills-from", help="A SIRI run directory (or skill_bank.json): show "
                                    "each episode the best active skills of its task type from that bank."),
    skills_top_k: int = typer.Option(1, min=1, help="With --skills-from: skills shown per prompt."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Evaluate a policy: success overall and per task type, mean score and steps, invalid-action rate."""
    from siri.envs import EnvError
    from siri.models.policy import ModelError

    if mode is not None and mode not in ("generate", "choose"):
        raise typer.BadParameter(f"unknown mode {mode!r}; use generate or choose")
    try:
        result = evaluate(model, env, episodes, split, mode, temperature, max_steps, seed, progress=not as_json,
                          env_options=parse_options(option), skills=[s.strip() for s in skill if s.strip()],
                          skills_from=skills_from, skills_top_k=skills_top_k)
    except (ModelError, EnvError) as e:
        raise typer.BadParameter(str(e)) from e
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result['model']} on {env}/{result['split']} ({result['mode']}, T={temperature})")
    for column in ("task type", "episodes", "success", "score"):
        table.add_column(column)
    for name, row in result["per_task_type"].items():
        table.add_row(name, str(row["episodes"]), f"{row['success']:.3f}", f"{row['score']:.3f}")
    table.add_row("all", str(result["episodes"]), f"{result['success']:.3f}", f"{result['score']:.3f}", style="bold")
    console = Console()
    console.print(table)
    console.print(f"mean steps {result['mean_steps']:.1f}   invalid-action rate {result['invalid_rate']:.3f}")
    for skill_id, text in result["skills_shown"].items():
        console.print(f"skill shown {skill_id}: {text}", markup=False)
