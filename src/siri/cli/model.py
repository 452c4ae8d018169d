"""``siri model ...``: build the tiny model, convert SmolLM2, show what a model is."""

from __future__ import annotations

import json

import typer

app = typer.Typer(help="Models: build the tiny default policy, convert SmolLM2-135M, inspect a model.", no_args_is_help=True)


@app.command("build-tiny")
def build_tiny(
    env: str = typer.Option("household", help="Environment the tiny model is built for: household or shop."),
    force: bool = typer.Option(False, help="Rebuild even if a cached model exists."),
) -> None:
    """Build (or rebuild) the tiny warm-started model for ENV and print its build report."""
    from siri.models.loading import ModelError
    from siri.models.tiny import ensure_tiny

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
    from siri.models.loading import ModelError, load_policy

    try:
        policy = load_policy(model, env=env, reference=False)
    except ModelError as e:
        raise typer.BadParameter(str(e)) from e
    typer.echo(json.dumps({"name": policy.name, "path": policy.path, "parameters": policy.num_parameters(),
                           "vocab": len(policy.tokenizer), "lora": policy.lora, "action_mode": policy.action_mode,
                           "env": policy.env}, indent=2))
