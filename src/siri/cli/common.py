"""What every ``siri`` command shares: the one-line error and the ``-o key=value`` environment options."""

from __future__ import annotations

from typing import Any

import typer

OPTION_HELP = "Extra environment option as key=value (repeatable), e.g. -o max_steps=20 -o task_types=a,b."


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` to stderr and return the exit to raise: users get one line, not a traceback."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def parse_options(options: list[str], split: str | None = None) -> dict[str, Any]:
    """``-o key=value`` items -> environment options, values typed by YAML (plus ``split`` if given)."""
    import yaml

    parsed: dict[str, Any] = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise fail(f"option {item!r} is not key=value (example: -o max_steps=20)")
        try:
            parsed[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError:
            parsed[key.strip()] = value
    if split is not None:
        parsed["split"] = split
    return parsed
