"""``siri model ...``: build the tiny model, warm-start a real LM, show what a model is."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from siri.cli.common import env_option_help, option_overrides, settings_help, with_settings

app = typer.Typer(help="Models: build the tiny default policy, warm-start a real LM on demonstrations, inspect a model.",
                  no_args_is_help=True)


@app.command("build-tiny")
def build_tiny(
    env: str = typer.Option("household", help="Environment the tiny model is built for: household or shop."),
    force: bool = typer.Option(False, help="Rebuild even if a cached (or shipped) model exists."),
    check: bool = typer.Option(False, "--check", help="Rebuild into a temporary directory and compare its weights "
                               "with the model in use (shipped or cached): exit 1 if any tensor differs."),
    recipe: str = typer.Option("default", help="default, or skills (household: skill-following "
                               "demonstrations on typical placements; loads as tiny-household-skills)."),
) -> None:
    """Build (or rebuild) the tiny warm-started model for ENV and print its build report.

    The default household model ships with siri-rl (copied into the cache on first use); --check rebuilds
    it and compares the weights bit for bit.
    """
    from siri.models.policy import TINY_REPORT_FILE, ModelError
    from siri.sft.tiny import check_rebuild, ensure_tiny

    try:
        if check:
            result = check_rebuild(env, recipe, log=typer.echo)
            if result["identical"]:
                typer.echo(f"identical: the rebuild has the weights of {result['reference']} "
                           f"({result['tensors']} tensors, bit for bit)")
                return
            worst = ", ".join(f"{name} (max |diff| {d:.2e})" for name, d in list(result["different"].items())[:5])
            typer.echo(f"different: {len(result['different'])} of {result['tensors']} tensors differ from "
                       f"{result['reference']}: {worst}", err=True)
            raise typer.Exit(1)
        path = ensure_tiny(env, force=force, recipe=recipe, log=typer.echo)
    except ModelError as e:
        raise typer.BadParameter(str(e)) from e
    report = json.loads((path / TINY_REPORT_FILE).read_text())
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


def _warm_start_epilog() -> str:
    from siri.sft.config import PRETRAINED, WarmStartConfig

    return "Keys (key=value; defaults for a pretrained LM):\n\n" + WarmStartConfig.help_text(defaults=PRETRAINED)


@app.command("warm-start", epilog=_warm_start_epilog())
def warm_start(
    model: str = typer.Argument(..., help="Model to start from: smollm2-135m, tiny, a local directory or a hub id."),
    settings: list[str] = typer.Argument(None, metavar="KEY=VALUE", help=settings_help(
        "train_steps=150 lr=3e-4 max_steps=30 (the fields of siri.sft.config.WarmStartConfig)")),
    out: Path = typer.Option(..., "--out", help="Directory to save the warm-started model to (replaced atomically)."),
    env: str = typer.Option("household", help="Environment whose demonstrator is imitated: household or shop "
                            "(shorthand for env=...)."),
    option: list[str] = typer.Option([], "--option", "-o", help=env_option_help("env_options")
                                     + " Use the options you will train with."),
) -> None:
    """Supervised warm start of MODEL on ENV's noisy demonstrator, before RL.

    Sparse-reward RL learns nothing until some rollout of a group succeeds. A pretrained model that never
    succeeds (SmolLM2-135M on the household) gets gradients of exactly zero. This imitates the
    environment's searching, noisy demonstrator (SmolLM2-135M: ~45 min on CPU with the defaults), then
    saves a plain model to train with. Settings are key=value arguments (the keys below), environment
    options -o key=value:

        siri model warm-start smollm2-135m --out runs/smollm2-warm max_steps=30 lr=3e-4 -o clutter=0
        siri train --config household-lite-smollm2-warm-siri    # reads ./runs/smollm2-warm
    """
    from siri.envs import ENVIRONMENTS, EnvError
    from siri.models.loading import load_policy
    from siri.models.policy import ModelError
    from siri.sft.config import PRETRAINED
    from siri.sft.demonstrator import make_env
    from siri.sft.warm_start import warm_start_policy

    config = with_settings(PRETRAINED, [f"env={env}", *(settings or []), *option_overrides(option, "env_options")])
    if config.env not in ENVIRONMENTS:
        raise typer.BadParameter(f"unknown environment {config.env!r}; "
                                 f"choose one of: {', '.join(sorted(ENVIRONMENTS))}")
    try:
        make_env(config, "train", warm_start=True)  # bad options fail here, before minutes of model loading
        policy = load_policy(model, env=config.env, lora=config.lora, lora_r=config.lora_r, reference=False)
    except (EnvError, ModelError) as e:
        raise typer.BadParameter(str(e)) from e
    typer.echo(f"warm-starting {policy.name} ({policy.num_parameters(trainable_only=True):,} trainable parameters) "
               f"on {config.env} {config.env_options or ''}")
    _, report = warm_start_policy(policy, config, out, log=typer.echo)
    typer.echo(f"{out}\nexamples {report['examples']}  loss {report['first_loss']:.3f} -> {report['final_loss']:.3f}  "
               f"in {report['seconds']}s")
