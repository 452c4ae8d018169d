"""``siri model ...``: build the tiny model, warm-start a real LM, show what a model is."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from siri.cli.common import OPTION_HELP, parse_options

app = typer.Typer(help="Models: build the tiny default policy, warm-start a real LM on demonstrations, inspect a model.",
                  no_args_is_help=True)


@app.command("build-tiny")
def build_tiny(
    env: str = typer.Option("household", help="Environment the tiny model is built for: household or shop."),
    force: bool = typer.Option(False, help="Rebuild even if a cached model exists."),
) -> None:
    """Build (or rebuild) the tiny warm-started model for ENV and print its build report."""
    from siri.models.policy import ModelError
    from siri.sft.tiny import ensure_tiny

    try:
        path = ensure_tiny(env, force=force, log=typer.echo)
    except ModelError as e:
        raise typer.BadParameter(str(e)) from e
    report = json.loads((path / "siri_tiny.json").read_text())
    typer.echo(f"{path}\nparameters {report['parameters']:,}  vocab {report['vocab_size']}  "
               f"examples {report['examples']}  loss {report['final_loss']:.3f}  built in {report['build_seconds']}s")


@app.command("info")
def info(
    model: str = typer.Argument(..., help="tiny, tiny-shop, smollm2-135m, a local directory or a hub id."),
    env: str = typer.Option("household", help="Environment for 'tiny'."),
) -> None:
    """Load MODEL and print where it lives, its size and its default action mode."""
    from siri.models.loading import load_policy
    from siri.models.policy import ModelError

    try:
        policy = load_policy(model, env=env, reference=False)
    except ModelError as e:
        raise typer.BadParameter(str(e)) from e
    typer.echo(json.dumps({"name": policy.name, "path": policy.path, "parameters": policy.num_parameters(),
                           "vocab": len(policy.tokenizer), "lora": policy.lora, "action_mode": policy.action_mode,
                           "env": policy.env}, indent=2))


@app.command("warm-start")
def warm_start(
    model: str = typer.Argument(..., help="Model to start from: smollm2-135m, tiny, a local directory or a hub id."),
    out: Path = typer.Option(..., "--out", help="Directory to save the warm-started model to (replaced atomically)."),
    env: str = typer.Option("household", help="Environment whose demonstrator is imitated: household or shop."),
    option: list[str] = typer.Option([], "--option", "-o", help=OPTION_HELP + " Use the options you will train with."),
    max_steps: int | None = typer.Option(None, help="Step limit of the demonstrations (default: the environment's)."),
    episodes: int = typer.Option(60, min=1, help="Demonstration episodes played."),
    steps: int = typer.Option(150, min=1, help="Optimizer steps."),
    batch_size: int = typer.Option(4, min=1, help="Examples per step."),
    lr: float = typer.Option(2e-4, min=0.0, help="Peak learning rate (cosine decay to a tenth)."),
    random_share: float = typer.Option(0.1, min=0.0, max=1.0,
                                       help="Share of random demonstrator steps, imitated too: RL headroom."),
    mining_examples: int = typer.Option(16, min=0, help="Skill-writing examples (the mining prompt -> trace skills)."),
    lora: bool = typer.Option(True, help="Train LoRA adapters (merged into the saved weights) or every weight."),
    lora_r: int = typer.Option(16, min=1, help="LoRA rank."),
    seed: int = typer.Option(0, help="Seeds the demonstrations and the batching."),
) -> None:
    """Supervised warm start of MODEL on ENV's noisy demonstrator, before RL.

    Sparse-reward RL learns nothing until some rollout of a group succeeds. A pretrained model that never
    succeeds (SmolLM2-135M on the household) gets gradients of exactly zero. This imitates the
    environment's searching, noisy demonstrator (SmolLM2-135M: ~45 min on CPU with the defaults), then
    saves a plain model to train with:

        siri model warm-start smollm2-135m --out runs/smollm2-warm -o clutter=0 -o task_types=look_at_obj_in_light
        siri train --config household-lite-smollm2-warm-siri    # reads ./runs/smollm2-warm
    """
    from siri.envs import ENVIRONMENTS, EnvError
    from siri.models.loading import load_policy
    from siri.models.policy import ModelError
    from siri.sft.config import WarmStartConfig
    from siri.sft.demonstrator import make_env
    from siri.sft.warm_start import warm_start_policy

    if env not in ENVIRONMENTS:
        raise typer.BadParameter(f"unknown environment {env!r}; choose one of: {', '.join(sorted(ENVIRONMENTS))}")
    config = WarmStartConfig(env=env, seed=seed, sft_episodes=episodes, random_action_share=random_share,
                             mining_examples=mining_examples, prompt_lm_weight=0.0, train_steps=steps,
                             batch_size=batch_size, lr=lr, warmup_steps=max(1, steps // 10), max_steps=max_steps,
                             env_options=parse_options(option))
    try:
        make_env(config, "train", warm_start=True)  # bad options fail here, before minutes of model loading
        policy = load_policy(model, env=env, lora=lora, lora_r=lora_r, reference=False)
    except (EnvError, ModelError) as e:
        raise typer.BadParameter(str(e)) from e
    typer.echo(f"warm-starting {policy.name} ({policy.num_parameters(trainable_only=True):,} trainable parameters) "
               f"on {env} {config.env_options or ''}")
    _, report = warm_start_policy(policy, config, out, log=typer.echo)
    typer.echo(f"{out}\nexamples {report['examples']}  loss {report['first_loss']:.3f} -> {report['final_loss']:.3f}  "
               f"in {report['seconds']}s")
