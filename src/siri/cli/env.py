"""``siri env ...``: list, play, check, export and verify environments."""

from __future__ import annotations

import typer

from siri.envs import ENVIRONMENTS

app = typer.Typer(help="Environments: list them, play one by hand, check experts, export to ALFWorld.", no_args_is_help=True)


@app.command("list")
def list_envs() -> None:
    """List the available environments."""
    for name, (_, description) in sorted(ENVIRONMENTS.items()):
        typer.echo(f"{name:<10} {description}")
