"""Sharded training with FSDP2 (``train.strategy=fsdp``): parameters, gradients and optimizer state split
across ranks, so that full fine-tuning of a model larger than one GPU's memory fits.

    torchrun --nproc_per_node 8 -m siri train -c alfworld-qwen7b-gigpo train.strategy=fsdp

How it fits the data-parallel design of ``siri.rl.distributed`` (same rollouts, same sums):

- **Sharded only during the update.** Each decoder layer, then the root, is wrapped with
  ``torch.distributed.fsdp.fully_shard``. Outside ``update_policy`` the model is *gathered* (``gather``):
  every layer is all-gathered once and kept whole, so rollouts, evaluation, probes and mining run ordinary
  forward passes with no collective in them. That matters because ranks generate different numbers of
  tokens (episodes end at different lengths); a sharded forward would all-gather per call and deadlock.
  Memory: full parameters during rollouts (as a vLLM engine holds them), while gradients and AdamW's
  two moments (12 of the 16 bytes per parameter of full fine-tuning) stay sharded throughout.
- **Lock-step update.** A sharded forward/backward all-gathers and reduce-scatters layer by layer, so
  every rank must run the same number of them. A rank with fewer micro-batches than the busiest one runs
  zero-loss passes (``lockstep``): their gradients are exactly 0, so the sum is unchanged.
- **Sums, not means.** FSDP reduce-scatters gradients as an average by default; our losses are already
  normalized by the *global* mini-batch (``siri.rl.update``), so the divide factor is set to 1 and the
  reduction forced to a plain sum (gloo has no pre-multiplied sum). The result equals the single-process
  gradient, as with the replicate strategy's all-reduce.
- **Checkpoints** (``save_sharded``/``load_sharded``): each rank writes its own shards of the trainable
  weights and the optimizer with ``torch.distributed.checkpoint`` (DCP), which can load them back on
  another number of ranks. The trained policy is exported once, consolidated on rank 0
  (``full_state_dict``), as an ordinary Hugging Face directory.
- **Mixed precision** (``train.mixed_precision``, meant for GPUs): bfloat16 compute, float32 sharded
  master weights and float32 gradient reduction.

FSDP2 runs on CPU with gloo, which is how tests/test_fsdp.py checks every point above against a single
process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from siri.rl.distributed import Dist

if TYPE_CHECKING:
    import torch

T = TypeVar("T")


class ShardingError(Exception):
    """A model FSDP cannot shard as configured (the message says why and what to use instead)."""


def decoder_layers(model: Any) -> list[Any]:
    """The model's repeated blocks, the unit of sharding: the classes a Hugging Face model lists in
    ``_no_split_modules`` (``LlamaDecoderLayer``, ``Qwen2DecoderLayer``), found through a PEFT wrapper."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    names = set(getattr(base, "_no_split_modules", None) or ())
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ShardingError(f"train.strategy=fsdp shards a model by its decoder layers, and {type(base).__name__} "
                            f"names none (_no_split_modules={sorted(names)}); use train.strategy=replicate")
    return layers


class ShardedModel:
    """A policy model wrapped with FSDP2, gathered whole outside the update (see the module docstring)."""

    def __init__(self, model: Any, *, mixed_precision: bool = False) -> None:
        import torch
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        policy = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
                  if mixed_precision else MixedPrecisionPolicy())
        self.model = model
        self.units = [fully_shard(layer, mp_policy=policy) for layer in decoder_layers(model)]
        self.units.append(fully_shard(model, mp_policy=policy))
        for unit in self.units:
            unit.set_gradient_divide_factor(1.0)  # the losses are normalized globally: sum the ranks' gradients
            unit.set_force_sum_reduction_for_comms(True)
        # This rank's shards of the trainable weights: what the optimizer steps. Taken now, because while the
        # model is gathered its modules hold the whole (unsharded) tensors in their place.
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.gathered = False
        self.gather()

    def gather(self) -> None:
        """All-gather every layer once and keep it whole: forward passes then need no collective."""
        if self.gathered:
            return
        for unit in self.units:
            unit.set_reshard_after_forward(False)
        for unit in self.units:
            unit.unshard()
        self.gathered = True

    def scatter(self) -> None:
        """Back to shards: each sharded forward all-gathers a layer and frees it after use (the update)."""
        if not self.gathered:
            return
        for unit in self.units:
            unit.reshard()
            unit.set_reshard_after_forward(True)
        self.gathered = False

    @contextlib.contextmanager
    def sharded(self) -> Iterator[None]:
        """Sharded inside, gathered again (with the current weights) on leaving: the update, and reading or
        writing the weights and optimizer state (checkpoints, the consolidated export)."""
        self.scatter()
        try:
            yield
        finally:
            self.gather()


def lockstep(items: Sequence[T], dist: Dist) -> list[T | None]:
    """``items`` padded with ``None`` to the longest rank's count (a collective, taken before any pass): the
    caller runs a ``zero_pass`` for each ``None``, so that sharded forward/backward calls pair up across ranks."""
    return [*items, *[None] * (dist.max_count(len(items)) - len(items))]


def zero_pass(model: Any, pad_id: int, device: torch.device) -> None:
    """One forward/backward whose gradient is exactly 0 (a one-token input, loss times 0): it takes part in
    the layer-by-layer all-gathers and reduce-scatters of a micro-batch this rank does not have."""
    import torch

    logits = model(input_ids=torch.tensor([[pad_id]], device=device), use_cache=False).logits
    (logits.float().sum() * 0.0).backward()


def full_state_dict(model: Any, names: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
    """The whole model's (or only ``names``') weights, consolidated on rank 0's CPU (a collective: every rank
    calls it, inside ``ShardedModel.sharded``; the other ranks get an empty dict)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return full if names is None or not full else {n: full[n] for n in names}


def _trainable_state(model: Any, optimizer: Any | None) -> dict[str, Any]:
    """The sharded state a checkpoint holds: trainable weights (a LoRA run's frozen base is not saved) and,
    with ``optimizer``, its state, keyed by parameter name so that DCP can reshard them."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_state_dict

    if optimizer is None:
        weights, optim = get_model_state_dict(model), None
    else:
        weights, optim = get_state_dict(model, optimizer)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    state: dict[str, Any] = {"model": {n: t for n, t in weights.items() if n in trainable}}
    if optim is not None:
        state["optimizer"] = optim
    return state


def save_sharded(model: Any, optimizer: Any, path: Path) -> None:
    """Every rank writes its shards of the trainable weights and optimizer state into ``path`` (a collective;
    a sharded model inside ``ShardedModel.sharded``)."""
    import torch.distributed.checkpoint as dcp

    with _single_process_quietly():
        dcp.save(_trainable_state(model, optimizer), checkpoint_id=str(path), no_dist=not _distributed())


def load_sharded(model: Any, optimizer: Any | None, path: Path) -> None:
    """Load ``save_sharded``'s state into ``model`` (and ``optimizer``, if given): a collective under
    torchrun, whatever the number of ranks that saved it; a single process (``siri probe``) loads it whole.
    A sharded model must be scattered while it loads (``ShardedModel.sharded``): its gathered copy is stale."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    state = _trainable_state(model, optimizer)
    with _single_process_quietly():
        dcp.load(state, checkpoint_id=str(path), no_dist=not _distributed())
    set_state_dict(model, optimizer if optimizer is not None else (),
                   model_state_dict=state["model"], optim_state_dict=state.get("optimizer", {}),
                   options=StateDictOptions(strict=False))


def _distributed() -> bool:
    """Whether a process group is up (else DCP reads and writes in this process alone, said explicitly)."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


@contextlib.contextmanager
def _single_process_quietly() -> Iterator[None]:
    """DCP warns on every single-process save or load, even when asked for one (``no_dist=True``): a
    one-process ``train.strategy=fsdp`` run or ``siri probe`` on sharded checkpoints is meant, so say nothing."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled, unavailable or uninitialized")
        yield
