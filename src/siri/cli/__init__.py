"""The ``siri`` command line. Each command group lives in its own module; heavy imports stay inside commands."""

from __future__ import annotations

import typer

from siri.cli import env as env_cli
from siri.cli import evaluate as evaluate_cli
from siri.cli import model as model_cli
from siri.cli import probe as probe_cli
from siri.cli import report as report_cli
from siri.cli import serve as serve_cli
from siri.cli import skills as skills_cli
from siri.cli import train as train_cli

app = typer.Typer(
    name="siri",
    help=(
        "SIRI: train long-horizon LLM agents with GiGPO, mine skills from the agent's own successes, "
        "and internalize them so the deployed agent needs no skill bank."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("quickstart")(train_cli.quickstart)
app.command("train")(train_cli.train)
app.command("report")(report_cli.report)
app.command("config")(report_cli.config_help)
app.add_typer(env_cli.app, name="env")
app.add_typer(model_cli.app, name="model")
app.command("eval", epilog=evaluate_cli.EPILOG)(evaluate_cli.eval_command)
app.command("serve")(serve_cli.serve)
app.command("skills")(skills_cli.skills)
app.command("probe")(probe_cli.probe)


def main() -> None:
    app()
