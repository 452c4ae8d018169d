"""Typed configs: nested dataclasses, loaded from YAML, overridden by ``key=value`` from the CLI.

Every field carries a ``help`` text (``opt(default, "help")``) and optionally inclusive ``min``/``max``
or exclusive ``gt``/``lt`` bounds (checked at load, per element for tuples and lists, and shown by
``help_text``); ``Literal`` types give the allowed choices. A bound is exactly what the code that
consumes the value accepts, so a bad value fails at load, not hours into a run. Loading is strict:
an unknown key or a value of the wrong type is a ``ConfigError`` that names the key and the valid
keys or values, so a typo never silently trains with a default.

    cfg = TrainConfig.load("configs/household-tiny-gigpo.yaml", ["algo.gamma=0.9", "train.seed=3"])
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
from dataclasses import dataclass, field, fields
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


# Keys that existed once: a config naming one (e.g. the config.yaml of an older run) gets this explanation.
REMOVED_KEYS = {
    "siri.confidence_z": (
        "'siri.confidence_z' was removed: its normal-z gate, re-tested after every evaluation, promoted "
        "skills with no effect up to 40% of the time; the gate is now a Student-t test with alpha spending "
        "over its looks, set by siri.gate_alpha (default 0.05; docs/skill-gate.md). There is no exact "
        "translation: delete the confidence_z line (a run resumed so continues with the new gate) and set "
        "siri.gate_alpha if wanted"
    ),
}


def _unknown_key(key: str, prefix: str, valid: Sequence[str]) -> ConfigError:
    if f"{prefix}{key}" in REMOVED_KEYS:
        return ConfigError(REMOVED_KEYS[f"{prefix}{key}"])
    where = f"under '{prefix[:-1]}'" if prefix else "at the top level"
    close = difflib.get_close_matches(key.split(".")[-1], valid, n=1)
    hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
    return ConfigError(f"unknown key '{prefix}{key}'{hint}; valid keys {where}: {', '.join(valid)}")


# ----------------------------------------------------------------------------- base class


class Config:
    """Mixin for config dataclasses: strict construction from dicts/YAML/overrides and serialization."""

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
                raise _unknown_key(str(key), prefix, list(known))
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
    def help_text(cls, prefix: str = "") -> str:
        """One line per key: ``name (type, default): help``, sections indented."""
        lines: list[str] = []
        hints = cls._hints()
        for f in fields(cls):  # type: ignore[arg-type]
            tp = hints[f.name]
            if isinstance(tp, type) and issubclass(tp, Config):
                lines.append(f"{prefix}{f.name}: {f.metadata.get('help', '')}")
                lines.append(tp.help_text(prefix + "  "))
                continue
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
        raise _unknown_key(head, prefix, known)
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


# ----------------------------------------------------------------------------- the trainer's config tree


@dataclass
class EnvSection(Config):
    """Which environment to train and evaluate on."""

    name: str = opt("household", "registered environment (see `siri env list`): household, shop, alfworld, ...")
    split: str = opt("train", "training split; episodes are drawn from it by seed")
    eval_split: str = opt("eval_id", "held-out split for evaluation (household: eval_id/eval_ood; shop: eval)")
    max_steps: int = opt(50, "episode step limit (the paper: ALFWorld 50, WebShop 15)", min=1)
    options: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "extra keyword options for siri.envs.make (checked by the environment)"})
    workers: Literal["inprocess", "ray"] = opt(
        "inprocess", "where environments run: in the trainer process, or in Ray actors (siri-rl[ray]; see "
        "docs/scale-out.md)")
    ray_address: str | None = opt(None, "workers=ray: cluster address ('auto' = the running cluster); None "
                                  "starts a local Ray")
    envs_per_worker: int = opt(8, "workers=ray: environments per Ray actor", min=1)
    worker_cpus: float = opt(1.0, "workers=ray: CPUs Ray reserves per actor (fractions allowed)", min=0.0)
    worker_restarts: int = opt(10, "workers=ray: dead actors replaced per run before giving up (their "
                               "running episodes are reported failed and left out of training)", min=0)


@dataclass
class ModelSection(Config):
    """The policy model."""

    name_or_path: str = opt("tiny", "'tiny' (built-in CPU model), 'smollm2-135m', a local directory or a hub id")
    lora: bool = opt(False, "train LoRA adapters instead of all weights (reference policy = adapters off)")
    lora_r: int = opt(16, "LoRA rank", min=1)
    lora_alpha: int = opt(32, "LoRA alpha (scale = alpha / r)", min=1)
    lora_dropout: float = opt(0.0, "LoRA dropout (active in the update only: > 0 makes the update's log-probs "
                                "differ from the sampling ones, so PPO ratios start away from 1)", min=0.0, max=1.0)
    action_mode: Literal["generate", "choose"] = opt(
        "generate", "generate: free text + action projection (the paper); choose: decoding constrained to "
        "the admissible actions (makes small models useful; exact log-probs)")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = opt(
        "float32", "parameter dtype (CPU: float32; GPUs: bfloat16)")
    gradient_checkpointing: bool = opt(False, "recompute activations in backward to save memory")


@dataclass
class RolloutSection(Config):
    """How training episodes are sampled."""

    group_size: int = opt(8, "trajectories per group, all from the same initial state (the paper: 8)", min=1)
    num_groups: int = opt(16, "groups (distinct tasks) per iteration (the paper: 16)", min=1)
    history: int = opt(2, "recent observation/action pairs shown in the prompt (the paper: 2)", min=0)
    temperature: float = opt(1.0, "sampling temperature for training rollouts (the paper: 1.0)", min=0.0)
    top_p: float = opt(1.0, "nucleus sampling mass (0 would keep no token)", gt=0.0, max=1.0)
    max_new_tokens: int = opt(48, "response token budget per step in generate mode", min=1)
    invalid_penalty: float = opt(0.1, "subtracted from the reward of a step with an invalid action (the paper: 0.1)",
                                 min=0.0)
    engine: Literal["hf", "vllm"] = opt(
        "hf", "generation backend: Hugging Face (CPU/GPU, both action modes) or vLLM (GPU, generate mode, "
        "siri-rl[vllm]; weights pushed after every update)")
    vllm_options: dict[str, Any] = field(default_factory=dict, metadata={
        "help": "engine=vllm: extra keyword arguments for vllm.LLM, e.g. {gpu_memory_utilization: 0.4}"})


@dataclass
class AlgoSection(Config):
    """Advantage estimator and policy loss (see siri.rl.advantages and siri.rl.losses)."""

    name: Literal["grpo", "gigpo", "rloo"] = opt("gigpo", "advantage estimator")
    gamma: float = opt(0.95, "discount for GiGPO's step returns G_t", min=0.0, max=1.0)
    omega: float = opt(1.0, "weight of the step advantage: A = A_E + omega * A_S", min=0.0)
    norm: Literal["mean_std", "mean"] = opt("mean_std", "group normalization: (x - mean) / (std + eps), or x - mean")
    episode_stats: Literal["trajectory", "step"] = opt(
        "trajectory", "episode-advantage statistics per trajectory (the paper) or per step (verl-agent)")
    similarity: float | None = opt(
        None, "if set, step groups join observations whose text similarity >= this (rapidfuzz ratio), "
        "instead of exact anchor keys", gt=0.0, max=1.0)
    clip: float = opt(0.2, "PPO clip range (low side, and high side unless clip_high is set)", min=0.0)
    clip_high: float | None = opt(None, "PPO clip range on the high side (clip-higher); None = clip", min=0.0)
    kl_coef: float = opt(0.01, "weight of the low-variance (k3) KL to the reference policy", min=0.0)
    entropy_coef: float = opt(0.0, "entropy bonus weight", min=0.0)
    agg: Literal["token-mean", "seq-mean-token-mean"] = opt(
        "token-mean", "loss aggregation over the whole batch (kept exact under micro-batching)")

    def __post_init__(self) -> None:
        if self.similarity is not None and not 0.0 < self.similarity <= 1.0:
            raise ValueError(f"similarity must be in (0, 1] or None, got {self.similarity}")


@dataclass
class OptimSection(Config):
    """Optimizer and update schedule."""

    lr: float = opt(1e-6, "AdamW learning rate (the paper: 1e-6 for 7B models)", min=0.0)
    weight_decay: float = opt(0.01, "AdamW weight decay", min=0.0)
    betas: tuple[float, float] = opt((0.9, 0.999), "AdamW betas (bounds per element, as torch checks)", min=0.0, lt=1.0)
    grad_clip: float = opt(1.0, "max global gradient norm (0 = no clipping)", min=0.0)
    micro_batch_size: int = opt(8, "steps (sequences) per forward/backward; gradients accumulate", min=1)
    mini_batches: int = opt(1, "optimizer steps per PPO epoch (the batch is split in this many parts)", min=1)
    ppo_epochs: int = opt(1, "passes over each batch of rollouts", min=1)
    skip_zero_advantage: bool = opt(
        True, "with algo.kl_coef = algo.entropy_coef = 0, do not run the forward/backward of steps whose "
        "advantage is 0: their loss and gradient are exactly 0 (their tokens still count in the normalizer). "
        "With sparse rewards most groups fail together, so this is most of the update")


@dataclass
class TrainSection(Config):
    """Loop length, evaluation, seeds, checkpoints."""

    iterations: int = opt(100, "training iterations (collect -> advantages -> update)", min=0)
    eval_every: int = opt(10, "evaluate every this many iterations (0 = only at the end)", min=0)
    eval_episodes: int = opt(64, "episodes per evaluation, on fixed eval seeds", min=1)
    eval_temperature: float = opt(0.4, "sampling temperature for evaluation (the paper: 0.4; 0 = greedy)", min=0.0)
    seed: int = opt(0, "seed for sampling, task order and initialization (numpy rejects negative seeds; vLLM "
                    "passes it to numpy's 32-bit legacy seeding)", min=0, max=2**32 - 1)
    save_every: int = opt(10, "write a checkpoint every this many iterations (0 = only at the end)", min=0)
    run_dir: str | None = opt(None, "run directory; None = runs/<preset>-<timestamp>")
    device: str = opt("auto", "'auto' (cuda if available, else cpu), 'cpu', 'cuda', 'cuda:1', ...")


@dataclass
class SiriSection(Config):
    """SIRI phases: warm-up, self-skill mining with paired validation, internalization (semantics: siri.skills)."""

    enabled: bool = opt(False, "run SIRI on top of GiGPO (False = plain GiGPO/GRPO training)")
    warmup: bool = opt(True, "ablation switch: False skips the warm-up and mines from the first successes")
    n_req_successes: int = opt(64, "successful plain trajectories needed to end the warm-up", min=1)
    warmup_max_iters: int = opt(50, "end the warm-up after this many iterations even without enough successes",
                                min=0)
    mine_every: int = opt(10, "mine new skills every this many iterations after the warm-up", min=1)
    mine_min_score: float | None = opt(
        None, "also count plain episodes scoring at least this as successes for the warm-up and the miner "
        "(shop: a purchase's reward, in [0, 1]); None = won episodes only", min=0.0, max=1.0)
    mine_trajectories: int = opt(16, "M: successful plain trajectories shown to the miner per mining round", min=1)
    max_skills_per_mine: int = opt(4, "K: candidate skills kept per mining round", min=1)
    miner: Literal["self", "external", "trace"] = opt(
        "self", "who writes skills: a frozen snapshot of the policy (self), another model (external), "
        "or the deterministic trace miner (trace)")
    miner_url: str | None = opt(None, "miner=external: OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1 "
                                "(what `siri serve` prints)")
    miner_model: str | None = opt(None, "miner=external: the model name the endpoint serves")
    miner_api_key_env: str | None = opt("OPENAI_API_KEY", "miner=external: environment variable holding the API "
                                        "key (unset: no key, fine for local servers)")
    validation_share: float = opt(0.5, "after the warm-up, the share of each group's rollouts that show one "
                                  "skill (candidate under validation, or active for internalization); the "
                                  "rest are plain and form the paired baseline", min=0.0, max=1.0)
    active_share: float = opt(0.5, "after the warm-up, the share of groups that show an active skill (whose "
                              "rollouts feed internalization) rather than a candidate under validation, among "
                              "groups whose task type has both; the rest validate candidates", min=0.0, max=1.0)
    validation_gate: bool = opt(True, "ablation switch: False activates every mined skill without validation")
    promote_lcb: float = opt(0.0, "activate a skill when the lower confidence bound of its utility exceeds this")
    retire_ucb: float = opt(0.0, "retire a skill when the upper confidence bound of its utility falls to "
                            "this or below")
    min_evals: int = opt(4, "paired evaluations before a skill can be promoted or retired (the gate may need "
                         "more: its first look is where n same-signed differences are significant, "
                         "2**-n <= its level)", min=2)
    max_evals: int = opt(16, "a candidate's last look: retired as inconclusive after this many paired "
                         "evaluations; at least log2(1/gate_alpha), or no look could promote", min=5)
    gate_alpha: float = opt(0.05, "the validation gate's false-promotion probability: a Student-t test at "
                            "each look with Bonferroni alpha spending over the looks (docs/skill-gate.md)",
                            min=0.001, max=0.5)
    max_active_per_type: int = opt(4, "active skills kept per task type (best utility first)", min=1)
    lambda_max: float = opt(0.5, "final weight of the internalization loss", min=0.0)
    lambda_ramp_iters: int = opt(20, "lambda rises linearly over this many iterations: lambda_max / ramp in the "
                                 "first iteration with an active skill, lambda_max from the ramp-th on (0 or 1: "
                                 "lambda_max at once)", min=0)
    adv_clip: float = opt(1.0, "c: internalization weights use the advantage clipped to [0, c]", gt=0.0)
    weighting: Literal["advantage", "utility", "uniform"] = opt(
        "advantage", "internalization weights: utility>0 x clipped advantage (SIRI), utility>0 only, or uniform "
        "(ablation switches)")
    distill_context: Literal["sampled", "action"] = opt(
        "sampled", "generate mode: what the distilled action is scored after under the plain prompt: the "
        "reasoning sampled while the skill was visible (sampled), or nothing but the plain prompt (action: "
        "the response is cut at <action>); choose mode has no reasoning, so both are the same")
    action_tokens_only: bool = opt(True, "distill only the action tokens (False = the whole response; ablation)")
    keep_skills_at_inference: bool = opt(
        False, "also evaluate the final policy with its best active skill in the prompt (summary "
        "'final_with_skills'): the SkillRL-style deployment that SIRI makes unnecessary, as a comparison")

    def __post_init__(self) -> None:
        if self.max_evals < self.min_evals:
            raise ValueError(f"max_evals ({self.max_evals}) must be >= min_evals ({self.min_evals})")
        from siri.skills.validation import Gate

        Gate(self.gate_alpha, self.min_evals, self.max_evals)  # its error says which max_evals would do


@dataclass
class TrainConfig(Config):
    """Everything `siri train` needs; presets live in configs/*.yaml."""

    env: EnvSection = field(default_factory=EnvSection, metadata={"help": "environment"})
    model: ModelSection = field(default_factory=ModelSection, metadata={"help": "policy model"})
    rollout: RolloutSection = field(default_factory=RolloutSection, metadata={"help": "training rollouts"})
    algo: AlgoSection = field(default_factory=AlgoSection, metadata={"help": "advantages and loss"})
    optim: OptimSection = field(default_factory=OptimSection, metadata={"help": "optimizer"})
    train: TrainSection = field(default_factory=TrainSection, metadata={"help": "loop, evaluation, checkpoints"})
    siri: SiriSection = field(default_factory=SiriSection, metadata={"help": "SIRI phases (off = plain RL)"})

    def __post_init__(self) -> None:
        s = self.siri
        if s.enabled and s.miner == "external" and not (s.miner_url and s.miner_model):
            # Checked here because the pipeline only needs them at its first mining round, after the warm-up.
            raise ValueError("siri.miner=external needs siri.miner_url (OpenAI-compatible base URL, e.g. the one "
                             "`siri serve` prints) and siri.miner_model")


PRESETS_DIR = Path(__file__).resolve().parents[2] / "configs"


def preset_path(name: str) -> Path:
    """``configs/<name>.yaml`` of a source checkout, or ``name`` itself if it is a file path."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    candidate = PRESETS_DIR / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    available = sorted(q.stem for q in PRESETS_DIR.glob("*.yaml")) if PRESETS_DIR.is_dir() else []
    raise ConfigError(f"no config file or preset named {name!r}; presets: {', '.join(available) or '(none found)'}")
