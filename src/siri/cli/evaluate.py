"""``siri eval``: success of a policy on an environment's evaluation episodes.

Its settings are ``EvalConfig``'s fields, given as ``key=value`` arguments (as in ``siri train``);
what is evaluated (``--model``, ``--env``, the skills shown) are options, and ``-o key=value`` sets one
environment option.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import typer

from siri.cli.common import env_option_help, option_overrides, settings_help, with_settings
from siri.utils.config import Config, opt

if TYPE_CHECKING:
    from siri.skills.bank import SkillBank


@dataclass(frozen=True)
class EvalConfig(Config):
    """How ``siri eval`` plays the evaluation episodes (``siri eval --help`` lists the keys)."""

    episodes: int = opt(50, "evaluation episodes: seeds 0..N-1 of the split", min=1)
    split: str | None = opt(None, "split to evaluate on (None: the environment's first eval split)")
    mode: Literal["generate", "choose"] | None = opt(None, "action mode (None: the model's)")
    temperature: float = opt(0.4, "sampling temperature (0: greedy)", min=0.0)
    max_steps: int | None = opt(None, "episode step limit (None: the environment's)", min=1)
    seed: int = opt(0, "sampling seed")
    skills_top_k: int = opt(1, "with --skills-from: skills shown per prompt", min=1)
    batch_size: int = opt(64, "episodes per forward pass of the model; the outcomes do not depend on it (each "
                          "episode samples from its own stream: docs/evaluation.md)", min=1)
    workers: Literal["inprocess", "ray"] = opt("inprocess", "where the environments run: in this process, or "
                                               "in Ray actors (as env.workers=ray in training); same outcomes")
    envs_per_worker: int = opt(8, "workers=ray: environments per Ray actor", min=1)
    worker_cpus: float = opt(0.5, "workers=ray: CPUs Ray reserves per actor (fractions allowed)", min=0.0)
    env_options: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "extra environment options (-o key=value), e.g. {clutter: 0}"})

    def __post_init__(self) -> None:
        both = sorted({"split", "max_steps"} & set(self.env_options))
        if both:
            raise ValueError(f"set {', '.join(k + '=...' for k in both)} itself, not as an environment option")


def default_eval_split(env: str) -> str:
    """The environment's first evaluation split (``eval*`` or ``test*``), else ``train``."""
    from siri.envs import env_splits

    splits = env_splits(env)
    return next((s for s in splits if s.startswith(("eval", "test"))), "train")


def evaluate(
    model: str,
    env: str,
    config: EvalConfig,
    progress: bool = True,
    skills: list[str] | None = None,
    skills_from: str | None = None,
) -> dict[str, Any]:
    """Load ``model``, play ``config.episodes`` eval episodes (seeds 0..N-1 of the split) and summarize them.

    ``skills`` are shown in every prompt's skills block (SIRI's skill-augmented prompt). ``skills_from``
    (a run directory or a ``skill_bank.json``) shows each episode instead the ``config.skills_top_k`` best
    active skills of its task type in that bank. Episode i samples from the same stream with or without
    skills, so two evaluations that differ only in skills are paired (``outcomes`` lists every episode by seed).
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from siri.envs import make
    from siri.models.loading import load_policy
    from siri.rollout.collector import RolloutConfig, collect
    from siri.rollout.engine import HFEngine
    from siri.rollout.evaluation import SkillsFor, evaluate, outcomes, summarize
    from siri.skills.pipeline import bank_skills_by_seed

    episodes = config.episodes
    split = config.split or default_eval_split(env)
    options: dict[str, Any] = {**config.env_options, "split": split}
    if config.max_steps is not None:
        options["max_steps"] = config.max_steps
    size = make(env, **options).split_size()
    if size is not None and episodes > size:
        raise typer.BadParameter(f"split {split!r} of {env!r} has {size} episodes; ask for at most episodes={size}")
    if skills and skills_from:
        raise typer.BadParameter("give skills as --skill texts or --skills-from a run's bank, not both")
    shown = tuple((f"cli{k + 1}", text) for k, text in enumerate(skills or []))
    skills_for: SkillsFor = lambda seed: shown  # noqa: E731
    if skills_from:
        skills_for = bank_skills_by_seed(load_bank(skills_from), env, options, top_k=config.skills_top_k)
    by_seed = {seed: skills_for(seed) for seed in range(episodes)}  # a bank's choice resets a probe env: once
    policy = load_policy(model, env=env, reference=False)
    rollout = RolloutConfig(mode=config.mode or policy.action_mode, temperature=config.temperature, seed=config.seed)
    engine = HFEngine(policy.model, policy.tokenizer, max_batch=config.batch_size)
    batch_env = None
    if config.workers == "ray":
        from siri.envs.ray_workers import RayBatchEnv

        batch_env = RayBatchEnv(env, episodes, options, envs_per_worker=config.envs_per_worker,
                                num_cpus=config.worker_cpus)
    won = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), disable=not progress, transient=True) as bar:
        task = bar.add_task(f"eval {policy.name} on {env}/{split}", total=episodes)

        def done(traj: Any) -> None:
            nonlocal won
            won += bool(traj.won)
            bar.update(task, advance=1, description=f"eval {policy.name} on {env}/{split}  success {won}")

        try:
            trajectories = evaluate(
                lambda specs: collect(policy, env, specs, rollout, env_options=options, engine=engine,
                                      batch_env=batch_env, on_episode_end=done),
                episodes, by_seed.__getitem__)
        finally:
            if batch_env is not None:
                batch_env.close()
    return {"model": policy.name, "env": env, "split": split, "mode": rollout.mode, "temperature": config.temperature,
            "skills": list(skills or []), "skills_from": skills_from,
            "skills_shown": {sid: text for skills_of_seed in by_seed.values() for sid, text in skills_of_seed},
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
    settings: list[str] = typer.Argument(None, metavar="KEY=VALUE",
                                         help=settings_help("episodes=100 temperature=0 max_steps=20 mode=choose")),
    model: str = typer.Option("tiny", help="tiny, tiny-shop, smollm2-135m, a local directory or a hub id."),
    env: str = typer.Option("household",
                            help="Environment (see `siri env list`), e.g. household, shop, textworld."),
    option: list[str] = typer.Option([], "--option", "-o", help=env_option_help("env_options")),
    skill: list[str] = typer.Option([], "--skill", help="Skill text shown in every prompt (repeatable), e.g. "
                                     "'WHEN the task is to look at an object THEN find the object first'."),
    skills_from: str = typer.Option(None, "--skills-from", help="A SIRI run directory (or skill_bank.json): show "
                                    "each episode the best active skills of its task type from that bank "
                                    "(how many: skills_top_k=K)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Evaluate a policy: success overall and per task type, mean score and steps, invalid-action rate.

    Settings are key=value arguments (the keys below), environment options -o key=value:

        siri eval --model RUN_DIR/policy mode=choose max_steps=20 episodes=140 -o clutter=0
    """
    from siri.envs import EnvError
    from siri.models.policy import ModelError

    config = with_settings(EvalConfig(), [*(settings or []), *option_overrides(option, "env_options")])
    try:
        result = evaluate(model, env, config, progress=not as_json, skills=[s.strip() for s in skill if s.strip()],
                          skills_from=skills_from)
    except (ModelError, EnvError) as e:
        raise typer.BadParameter(str(e)) from e
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result['model']} on {env}/{result['split']} ({result['mode']}, T={config.temperature})")
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


EPILOG = "Keys (key=value):\n\n" + EvalConfig.help_text()
