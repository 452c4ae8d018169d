"""What every ``siri`` command shares: the one-line error, ``key=value`` settings and ``-o`` environment options.

One override syntax for ``train``, ``eval`` and ``model warm-start``: settings are ``key=value`` arguments,
checked by ``siri.utils.config`` (an unknown key names the closest valid one, a value out of its bounds names
them), and ``-o key=value`` is the shorthand for one environment option (``env.options.key=value`` in
``train``, ``env_options.key=value`` in the others).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import typer

from siri.utils.config import Config, ConfigError

C = TypeVar("C", bound=Config)

OPTION_HELP = "Extra environment option as key=value (repeatable), e.g. -o max_steps=20 -o task_types=a,b."


def env_option_help(key: str) -> str:
    """Help of the ``-o`` option of a command whose environment options are the setting ``key``."""
    return (f"Environment option key=value (repeatable): shorthand for {key}.key=value, "
            f"e.g. -o clutter=0 -o task_types=a,b.")


def settings_help(example: str, keys: str = "keys below") -> str:
    """Help of a command's ``key=value`` arguments (``keys``: where they are listed)."""
    return f"Settings as key=value ({keys}), e.g. {example}."


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` to stderr and return the exit to raise: users get one line, not a traceback."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def option_overrides(options: Sequence[str], key: str) -> list[str]:
    """``-o name=value`` items as the overrides ``key.name=value`` (``key``: the environment-options setting)."""
    overrides = []
    for item in options:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise fail(f"option {item!r} is not key=value (example: -o clutter=0)")
        overrides.append(f"{key}.{name.strip()}={value}")
    return overrides


def with_settings(base: C, overrides: Sequence[str]) -> C:
    """``base`` with ``key=value`` overrides; a bad key or value is the one-line error."""
    try:
        return base.with_overrides(overrides)
    except ConfigError as e:
        raise fail(str(e)) from None


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
