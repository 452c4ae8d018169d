"""Config machinery: nested dataclasses, loaded from YAML, overridden by ``key=value`` from the CLI.

The schema it serves (``TrainConfig``) lives in ``siri.config``; this module knows no key of it.

Every field carries a ``help`` text (``opt(default, "help")``) and optionally inclusive ``min``/``max``
or exclusive ``gt``/``lt`` bounds (checked at load, per element for tuples and lists, and shown by
``help_text``); ``Literal`` types give the allowed choices. A bound is exactly what the code that
consumes the value accepts, so a bad value fails at load, not hours into a run. Loading is strict:
an unknown key or a value of the wrong type is a ``ConfigError`` that names the key and the valid
keys or values, so a typo never silently trains with a default.

    cfg = TrainConfig.load(preset_path("household-tiny-gigpo"), ["algo.gamma=0.9", "train.seed=3"])
    cfg.save(run_dir / "config.yaml")           # resolved YAML, loads back to an equal config
    print(TrainConfig.help_text())              # every key with its type, default and help

Override values are parsed by the field's type: ``int``/``float`` (``1e-6`` is fine), ``bool``
(true/false/yes/no/1/0/on/off), ``str``, ``none``/``null`` for optional fields, lists as
``[a, b]`` or ``a,b``, dicts as YAML flow maps (``env.options={task_types: [pick_and_place]}``);
a key inside a dict field can be set directly (``env.options.success_reward=2``).

Precedence: dataclass defaults < YAML file < overrides. YAML files may be partial.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from siri.utils.io import atomic_write_text

C = TypeVar("C", bound="Config")


class ConfigError(ValueError):
    """A config file or override is invalid; the message names the key and what is allowed."""


def opt(default: Any, help: str, *, min: float | None = None, max: float | None = None,
        gt: float | None = None, lt: float | None = None) -> Any:
    """A documented config field with optional bounds: ``min <= x <= max``, ``gt < x < lt``.

    Mutable defaults (list/dict) are copied per instance.
    """
    if (min is not None and gt is not None) or (max is not None and lt is not None):
        raise TypeError("give a field min or gt (and max or lt), not both")
    meta = {"help": help, "min": min, "max": max, "gt": gt, "lt": lt}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


# ----------------------------------------------------------------------------- value conversion

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
_NONE = {"none", "null", "~"}


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str, from_string: bool) -> Any:
    """``value`` as type ``tp``; ``from_string`` means it came from a CLI override (else from YAML)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (value is None or (from_string and str(value).strip().lower() in _NONE)):
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"config field {key!r}: unions other than 'X | None' are not supported")
        return _convert(value, inner[0], key, from_string)
    if origin is Literal:
        for choice in args:
            if value == choice or (from_string and str(value) == str(choice)):
                return choice
        raise ConfigError(f"bad value for '{key}': {value!r}; choose one of: {', '.join(map(str, args))}")
    if tp is Any:
        return yaml.safe_load(value) if from_string else value
    if isinstance(tp, type) and issubclass(tp, Config):
        if not isinstance(value, Mapping):
            raise ConfigError(f"'{key}' is a section; give it a mapping of keys (or set '{key}.<key>=...')")
        return tp.from_dict(value, prefix=f"{key}.")
    if origin in (list, tuple):
        elem_from_string = False
        if from_string and isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value = _yaml_value(text, key)  # elements typed by YAML
            else:
                value = [v.strip() for v in text.split(",")] if text else []
                elem_from_string = True
        if not isinstance(value, list | tuple):
            raise ConfigError(f"bad value for '{key}': expected a list, got {value!r}")
        if origin is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                args = (args[0],) * len(value)
            if len(value) != len(args):
                raise ConfigError(f"bad value for '{key}': expected {len(args)} items, got {len(value)}")
            return tuple(_convert(v, a, f"{key}[{i}]", elem_from_string)
                         for i, (v, a) in enumerate(zip(value, args, strict=True)))
        elem = args[0] if args else Any
        return [_convert(v, elem, f"{key}[{i}]", elem_from_string) for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if from_string and isinstance(value, str):
            value = _yaml_value(value, key)
        if not isinstance(value, Mapping):
            raise ConfigError(f"bad value for '{key}': expected a mapping like {{a: 1}}, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(f"bad value for '{key}': expected a bool (true/false), got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise ConfigError(f"bad value for '{key}': expected an int, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())  # YAML 1.1 reads "1e-6" as a string; accept it
            except ValueError:
                raise ConfigError(f"bad value for '{key}': expected a number, got {value!r}") from None
        else:
            raise ConfigError(f"bad value for '{key}': expected a number, got {value!r}")
        if not math.isfinite(number):
            raise ConfigError(f"bad value for '{key}': {value!r} is not a finite number")
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"bad value for '{key}': expected a string, got {value!r} "
                          f"(quote it in YAML: '{value}')")
    raise TypeError(f"config field {key!r} has unsupported type {_type_name(tp)}")


def _yaml_value(text: str, key: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"bad value for '{key}': cannot parse {text!r} ({e.__class__.__name__})") from None


def _flow(value: Any) -> str:
    """One-line YAML for a value (quoted where YAML would misread it, e.g. 'yes' or '1e-6')."""
    plain = list(value) if isinstance(value, tuple) else value
    text = yaml.safe_dump(plain, default_flow_style=True, width=1_000_000).strip()
    return text.removesuffix("...").strip()


def _check_range(value: Any, f: dataclasses.Field, key: str) -> None:
    """Raise unless ``value`` (each element of a tuple/list) lies within the field's bounds."""
    if isinstance(value, tuple | list):
        for i, v in enumerate(value):
            _check_range(v, f, f"{key}[{i}]")
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    m = f.metadata
    lo, hi, gt, lt = m.get("min"), m.get("max"), m.get("gt"), m.get("lt")
    if lo is not None and value < lo:
        raise ConfigError(f"bad value for '{key}': {value} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise ConfigError(f"bad value for '{key}': {value} is above the maximum {hi}")
    if gt is not None and not value > gt:
        raise ConfigError(f"bad value for '{key}': {value} must be > {gt} (allowed: {bounds_text(f)})")
    if lt is not None and not value < lt:
        raise ConfigError(f"bad value for '{key}': {value} must be < {lt} (allowed: {bounds_text(f)})")


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def bounds_text(f: dataclasses.Field) -> str:
    """The field's bounds as an interval, e.g. ``[0, 1]``, ``(0, 1]``, ``>= 1``, ``> 0``; "" if unbounded."""
    m = f.metadata
    lo, hi = m.get("min"), m.get("max")
    gt, lt = m.get("gt"), m.get("lt")
    low = f"[{_num(lo)}" if lo is not None else f"({_num(gt)}" if gt is not None else None
    high = f"{_num(hi)}]" if hi is not None else f"{_num(lt)})" if lt is not None else None
    if low and high:
        return f"{low}, {high}"
    if low:
        return (">= " if lo is not None else "> ") + low[1:]
    if high:
        return ("<= " if hi is not None else "< ") + high[:-1]
    return ""


def _unknown_key(cls: type[Config], key: str, prefix: str, valid: Sequence[str]) -> ConfigError:
    removed = cls.removed_keys.get(key.split(".")[0])
    if removed is not None:
        return ConfigError(f"'{prefix}{key.split('.')[0]}' was removed: {removed}")
    where = f"under '{prefix[:-1]}'" if prefix else "at the top level"
    close = difflib.get_close_matches(key.split(".")[-1], valid, n=1)
    hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
    return ConfigError(f"unknown key '{prefix}{key}'{hint}; valid keys {where}: {', '.join(valid)}")


# ----------------------------------------------------------------------------- base class


class Config:
    """Mixin for config dataclasses: strict construction from dicts/YAML/overrides and serialization.

    ``removed_keys`` (per section: key -> why it went and what replaces it) turns a key that existed once,
    e.g. in the config.yaml of an older run, into that explanation instead of "unknown key".
    """

    removed_keys: typing.ClassVar[Mapping[str, str]] = {}

    @classmethod
    def _hints(cls) -> dict[str, Any]:
        return typing.get_type_hints(cls)

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any] | None, prefix: str = "") -> C:
        """Build from a (possibly partial) mapping; missing keys keep their defaults."""
        data = {} if data is None else data
        if not isinstance(data, Mapping):
            raise ConfigError(f"'{prefix[:-1] or 'config'}' must be a mapping of keys, got {data!r}")
        hints = cls._hints()
        known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
        kwargs = {}
        for key, value in data.items():
            if key not in known:
                raise _unknown_key(cls, str(key), prefix, list(known))
            converted = _convert(value, hints[key], f"{prefix}{key}", from_string=False)
            _check_range(converted, known[key], f"{prefix}{key}")
            kwargs[key] = converted
        try:
            return cls(**kwargs)
        except (ValueError, TypeError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"invalid '{prefix[:-1] or 'config'}': {e}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists for tuples), ready for YAML/JSON."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, Config):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = copy.deepcopy(value)
        return out

    def to_yaml(self, comments: bool = False) -> str:
        """Block-style YAML (sections as blocks, values in flow style); with ``comments`` each key is
        preceded by its help text."""
        return "".join(self._yaml_lines(0, comments))

    def _yaml_lines(self, depth: int, comments: bool) -> list[str]:
        pad = "  " * depth
        lines: list[str] = []
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if comments and f.metadata.get("help"):
                lines.append(f"{pad}# {f.metadata['help']}\n")
            if isinstance(value, Config):
                lines.append(f"{pad}{f.name}:\n")
                lines.extend(value._yaml_lines(depth + 1, comments))
            else:
                lines.append(f"{pad}{f.name}: {_flow(value)}\n")
        return lines

    def save(self, path: str | os.PathLike[str], comments: bool = False) -> Path:
        """Write the resolved config atomically (``load(path)`` gives an equal config back)."""
        atomic_write_text(path, self.to_yaml(comments=comments))
        return Path(path)

    def with_overrides(self: C, overrides: Sequence[str]) -> C:
        """A copy with ``key=value`` overrides applied (dotted keys; see module doc)."""
        data = self.to_dict()
        for item in overrides:
            key, sep, raw = item.partition("=")
            key = key.strip()
            if not sep or not key:
                raise ConfigError(f"override {item!r} must look like key=value (e.g. algo.gamma=0.9)")
            _set_override(type(self), data, key.split("."), raw, "")
        return type(self).from_dict(data)

    @classmethod
    def load(cls: type[C], path: str | os.PathLike[str] | None = None, overrides: Sequence[str] = ()) -> C:
        """Defaults, then the YAML file at ``path`` (if any), then ``overrides``."""
        data: Any = {}
        if path is not None:
            p = Path(path)
            if not p.is_file():
                raise ConfigError(f"config file not found: {p}")
            try:
                data = yaml.safe_load(p.read_text(encoding="utf-8"))
            except yaml.YAMLError as e:
                raise ConfigError(f"{p} is not valid YAML: {e}") from None
            except UnicodeDecodeError as e:
                raise ConfigError(f"{p} is not a text file (byte {e.start} is not UTF-8); it may be corrupt") from None
            except OSError as e:
                raise ConfigError(f"cannot read {p}: {e.strerror or e}") from None
            if data is None:
                data = {}
            if not isinstance(data, Mapping):
                raise ConfigError(f"{p} must hold a mapping of sections at the top level")
            try:
                cfg = cls.from_dict(data)
            except ConfigError as e:
                raise ConfigError(f"{p}: {e}") from None
        else:
            cfg = cls()
        return cfg.with_overrides(overrides) if overrides else cfg

    @classmethod
    def help_text(cls, prefix: str = "", defaults: Config | None = None) -> str:
        """One line per key: ``name (type, default): help``, sections indented. ``defaults``: show this
        instance's values as the defaults (a command that starts from other values than the class's)."""
        lines: list[str] = []
        hints = cls._hints()
        for f in fields(cls):  # type: ignore[arg-type]
            tp = hints[f.name]
            if isinstance(tp, type) and issubclass(tp, Config):
                lines.append(f"{prefix}{f.name}: {f.metadata.get('help', '')}")
                lines.append(tp.help_text(prefix + "  ", getattr(defaults, f.name, None)))
                continue
            if defaults is not None:
                default = getattr(defaults, f.name)
            else:
                default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            bounds = bounds_text(f)
            allowed = f" (allowed: {bounds})" if bounds else ""
            lines.append(f"{prefix}{f.name} ({_type_name(tp)}, default {default!r}): {f.metadata.get('help', '')}"
                         f"{allowed}")
        return "\n".join(lines)


def _set_override(cls: type[Config], data: dict[str, Any], path: list[str], raw: str, prefix: str) -> None:
    hints = cls._hints()
    known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    head, rest = path[0], path[1:]
    if head not in known:
        raise _unknown_key(cls, head, prefix, known)
    tp = hints[head]
    key = f"{prefix}{head}"
    if isinstance(tp, type) and issubclass(tp, Config):
        if not rest:
            valid = ", ".join(f.name for f in fields(tp))  # type: ignore[arg-type]
            raise ConfigError(f"'{key}' is a section; set one of its keys ({valid}), e.g. {key}.<key>=value")
        _set_override(tp, data[head], rest, raw, f"{key}.")
        return
    if rest:
        is_dict = typing.get_origin(tp) is dict or tp is dict
        if not is_dict:
            raise ConfigError(f"'{key}' is a {_type_name(tp)} value, not a section; use {key}=<value>")
        target = data[head]
        for part in rest[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"cannot set '{key}.{'.'.join(rest)}': '{part}' is not a mapping")
        target[rest[-1]] = _yaml_value(raw, f"{key}.{'.'.join(rest)}")
        return
    data[head] = _convert(raw, tp, key, from_string=True)


