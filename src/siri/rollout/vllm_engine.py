"""Rollouts with vLLM (GPU only, optional extra ``siri-rl[vllm]``) behind ``GenerationEngine``.

Selected with ``rollout.engine=vllm``. Importing this module never imports vLLM; building a
``VLLMEngine`` without it raises ``EngineError`` naming ``pip install 'siri-rl[vllm]'``.

- **Requests.** Prompts go in as token ids (``{"prompt_token_ids": [...]}``) so vLLM sees exactly the
  tokens the trainer scores. Every row gets its own ``SamplingParams`` with its own seed (``seeds[i]``,
  or ``row_seed(seed, i)`` given one ``seed``, as in ``HFEngine``), so a rollout does not depend on what
  else is in the batch. Generation stops at ``</action>`` (kept in the output) or the end-of-turn
  token, like ``HFEngine``.
- **Log-probs.** ``SamplingParams(logprobs=0)`` returns the sampled token's log-prob; the engine is
  built with ``logprobs_mode="processed_logprobs"`` (after temperature), the quantity the trainer uses.
  The trainer recomputes the old log-probs with the training model anyway (``siri.rl.update``), so a
  numerical gap between the two engines never enters the importance ratio.
- **Action modes.** ``generate`` only. ``choose`` mode (trie-constrained decoding, exact constrained
  log-probs) stays with ``HFEngine``: vLLM's structured outputs may spell a choice with another
  tokenization than the trie's, which would break the exact constrained scoring.
- **Weight sync after each update** (``sync``). Full fine-tuning: the trainable weights are written,
  under their Hugging Face names, to one safetensors file (``sync_dir``, default ``/dev/shm``) and every
  vLLM worker loads it through ``WeightLoader``, a worker extension (``worker_extension_cls``) that
  streams the file into ``model.load_weights`` — vLLM's own loader, which maps HF names onto its
  fused parameters (q/k/v -> ``qkv_proj``, gate/up -> ``gate_up_proj``; see ``hf_to_vllm_name``).
  Passing a path rather than tensors keeps the call the same for every executor (in-process,
  multiprocess, Ray, ``torchrun``'s external launcher). LoRA: the adapters are saved as a PEFT
  directory and used through ``LoRARequest`` (a new id per version), with the base weights untouched.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from siri.models.policy import Policy
from siri.rollout.engine import Generation, row_seeds, stop_token_ids
from siri.rollout.parsing import CLOSE

VLLM_INSTALL = "pip install 'siri-rl[vllm]'"
# HF causal-LM architectures whose vLLM implementation fuses q/k/v and gate/up the same way.
FUSED_ARCHITECTURES = ("LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM", "Qwen3ForCausalLM")
# (vLLM parameter, HF module, shard id) for the fused projections of those architectures.
STACKED = (
    ("qkv_proj", "q_proj", "q"),
    ("qkv_proj", "k_proj", "k"),
    ("qkv_proj", "v_proj", "v"),
    ("gate_up_proj", "gate_proj", 0),
    ("gate_up_proj", "up_proj", 1),
)
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "_fsdp_wrapped_module.", "base_model.model.")


class EngineError(RuntimeError):
    """The vLLM engine cannot be used as asked; the message says how to fix it."""


def require_vllm() -> Any:
    """The ``vllm`` module, or an ``EngineError`` naming the install command."""
    try:
        import vllm
    except ImportError as e:
        raise EngineError(
            f"rollout.engine=vllm needs vLLM, which runs on NVIDIA GPUs only; install it with: {VLLM_INSTALL} "
            f"(or use rollout.engine=hf) [{e}]"
        ) from e
    return vllm


# ---------------------------------------------------------------------- requests (plain data)
def sampling_kwargs(
    *,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    seed: int | None,
    stop_ids: Iterable[int] = (),
) -> dict[str, Any]:
    """Keyword arguments of one row's ``vllm.SamplingParams`` (plain data, testable without vLLM).

    ``seed`` is the row's own request seed (``row_seeds`` derives them); None leaves it unseeded.
    """
    if temperature < 0 or not 0 < top_p <= 1 or max_new_tokens < 1:
        raise ValueError(f"need temperature >= 0, 0 < top_p <= 1, max_new_tokens >= 1; got {temperature}, "
                         f"{top_p}, {max_new_tokens}")
    kwargs: dict[str, Any] = {
        "n": 1,
        "temperature": float(temperature),
        "top_p": float(top_p) if temperature > 0 else 1.0,
        "max_tokens": int(max_new_tokens),
        "logprobs": 0,  # the sampled token's log-prob only
        "stop": [CLOSE],
        "include_stop_str_in_output": True,
        "stop_token_ids": sorted(int(i) for i in stop_ids),
        "skip_special_tokens": False,
        "spaces_between_special_tokens": False,
    }
    if seed is not None:
        kwargs["seed"] = int(seed)
    return kwargs


def prompt_inputs(prompts: Sequence[Sequence[int]]) -> list[dict[str, list[int]]]:
    """vLLM token prompts (``TokensPrompt`` is a TypedDict of exactly this shape)."""
    return [{"prompt_token_ids": [int(t) for t in p]} for p in prompts]


def generation_from_output(token_ids: Sequence[int], logprobs: Any, finish_reason: str | None,
                           stop_reason: int | str | None, close_id: int | None = None) -> Generation:
    """Our ``Generation`` from one vLLM ``CompletionOutput``'s fields.

    ``logprobs[k]`` maps token id -> an object with ``.logprob`` (or a float) for position ``k``.
    """
    ids = [int(t) for t in token_ids]
    values: list[float] = []
    for k, tok in enumerate(ids):
        if logprobs is None:
            raise EngineError("vLLM returned no log-probs; the request must set SamplingParams(logprobs=0)")
        entry = logprobs[k][tok]
        values.append(float(getattr(entry, "logprob", entry)))
    if finish_reason == "length":
        stop = "length"
    elif stop_reason == CLOSE or (close_id is not None and stop_reason == close_id):
        stop = "action"
    else:
        stop = "eos"
    return Generation(response_ids=ids, logprobs=values, stop=stop)


# ---------------------------------------------------------------------- weight names
def hf_weight_name(name: str) -> str | None:
    """The Hugging Face checkpoint name of a training parameter, or None if vLLM must not get it.

    Strips wrappers (DDP ``module.``, ``torch.compile``'s ``_orig_mod.``, FSDP, PEFT's
    ``base_model.model.`` and ``.base_layer``); drops LoRA tensors (they travel as an adapter) and
    rotary caches.
    """
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix) :], True
    if ".lora_" in name or "rotary_emb.inv_freq" in name:
        return None
    return name.replace(".base_layer.", ".")


def hf_to_vllm_name(hf_name: str, architecture: str) -> tuple[str, str | int | None]:
    """(vLLM parameter name, shard id) that ``model.load_weights`` writes ``hf_name`` into.

    Mirrors vLLM's own mapping for the Llama family (Llama, Qwen2/3, Mistral); used to check a sync
    before sending it. Other architectures: vLLM's loader knows them, this check does not.
    """
    if architecture not in FUSED_ARCHITECTURES:
        raise EngineError(f"no weight-name map for {architecture}; known: {', '.join(FUSED_ARCHITECTURES)}")
    for fused, part, shard in STACKED:
        if f".{part}." in hf_name:
            return hf_name.replace(f".{part}.", f".{fused}."), shard
    return hf_name, None


def full_weights(model: Any) -> Iterator[tuple[str, Any]]:
    """(HF name, tensor) of every weight vLLM needs from a (non-LoRA) training model."""
    tied = bool(getattr(getattr(model, "config", None), "tie_word_embeddings", False))
    for name, tensor in model.state_dict().items():
        hf = hf_weight_name(name)
        if hf is None or (tied and hf == "lm_head.weight"):
            continue
        # An FSDP-sharded weight (DTensor) is all-gathered here: every rank syncs its engine, in this order.
        yield hf, tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


class WeightLoader:
    """vLLM worker extension (``worker_extension_cls``): load pushed weights inside each worker."""

    def siri_load_weights(self, path: str) -> int:
        from safetensors import safe_open

        def stream() -> Iterator[tuple[str, Any]]:
            with safe_open(path, framework="pt", device="cpu") as f:
                for name in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    yield name, f.get_tensor(name)

        model = self.model_runner.model  # type: ignore[attr-defined]
        loaded = model.load_weights(weights=stream())
        return len(loaded) if loaded is not None else -1


# ---------------------------------------------------------------------- the engine
class VLLMEngine:
    """``GenerationEngine`` on a ``vllm.LLM`` colocated with the trainer (one engine per rank)."""

    def __init__(self, model_path: str, tokenizer: Any, *, lora_rank: int | None = None, world: int = 1,
                 seed: int = 0, sync_dir: str | None = None, **llm_kwargs: Any) -> None:
        vllm = require_vllm()
        self.tokenizer = tokenizer
        self.stop_ids = stop_token_ids(tokenizer)
        close = tokenizer(CLOSE, add_special_tokens=False)["input_ids"]
        self.close_id: int | None = int(close[0]) if len(close) == 1 else None
        kwargs: dict[str, Any] = {
            "model": model_path, "tokenizer": model_path, "seed": seed, "gpu_memory_utilization": 0.4,
            "logprobs_mode": "processed_logprobs", "worker_extension_cls": f"{__name__}.WeightLoader",
        }
        if world > 1:  # one engine per torchrun rank, each on its own GPU (vLLM's external launcher)
            kwargs.update(distributed_executor_backend="external_launcher", data_parallel_size=world)
        if lora_rank is not None:
            kwargs.update(enable_lora=True, max_lora_rank=lora_rank, max_loras=1)
        kwargs.update(llm_kwargs)
        self.llm = vllm.LLM(**kwargs)
        self.sampling_params = vllm.SamplingParams
        self.sync_dir = Path(sync_dir or tempfile.mkdtemp(prefix="siri-vllm-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
        self.version = 0
        self.lora_request: Any = None

    @classmethod
    def from_policy(cls, policy: Policy, *, world: int = 1, seed: int = 0, **llm_kwargs: Any) -> VLLMEngine:
        """An engine on the policy's base weights, then synced with its current (trained) weights."""
        require_vllm()
        lora_rank = None
        if policy.lora:
            lora_rank = int(next(iter(policy.model.peft_config.values())).r)
        engine = cls(str(policy.path), policy.tokenizer, lora_rank=lora_rank, world=world, seed=seed, **llm_kwargs)
        engine.sync(policy)
        return engine

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        choices: Sequence[Sequence[Sequence[int]]] | None = None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_new_tokens: int = 64,
        seed: int | None = None,
        seeds: Sequence[int] | None = None,
    ) -> list[Generation]:
        if choices is not None:
            raise EngineError("choose mode is not available with rollout.engine=vllm; use rollout.engine=hf")
        per_row = row_seeds(len(prompts), seed, seeds)
        params = [self.sampling_params(**sampling_kwargs(temperature=temperature, top_p=top_p,
                                                         max_new_tokens=max_new_tokens, stop_ids=self.stop_ids,
                                                         seed=None if per_row is None else per_row[i]))
                  for i in range(len(prompts))]
        outputs = self.llm.generate(prompt_inputs(prompts), params, lora_request=self.lora_request, use_tqdm=False)
        return [generation_from_output(o.outputs[0].token_ids, o.outputs[0].logprobs, o.outputs[0].finish_reason,
                                       o.outputs[0].stop_reason, self.close_id) for o in outputs]

    def sync(self, policy: Policy) -> None:
        """Push the policy's current weights (or LoRA adapters) into the engine."""
        self.version += 1
        if policy.lora:
            from vllm.lora.request import LoRARequest

            target = self.sync_dir / f"adapter-{self.version}"
            policy.model.save_pretrained(str(target))
            self.lora_request = LoRARequest(f"siri-{self.version}", self.version, str(target))
            shutil.rmtree(self.sync_dir / f"adapter-{self.version - 2}", ignore_errors=True)
            return
        from safetensors.torch import save_file

        weights = {name: t.detach().to("cpu").contiguous() for name, t in full_weights(policy.model)}
        architecture = (getattr(policy.model.config, "architectures", None) or [""])[0]
        if architecture in FUSED_ARCHITECTURES:
            for name in weights:
                hf_to_vllm_name(name, architecture)  # raises on a name this map cannot place
        path = self.sync_dir / "weights.safetensors"
        save_file(weights, str(path))
        counts = self.llm.collective_rpc("siri_load_weights", args=(str(path),))
        if any(c == 0 for c in counts):
            raise EngineError(f"a vLLM worker loaded no weights from {path}; check that the model matches")
