"""Data-parallel training with ``torch.distributed``, launched by ``torchrun``.

    torchrun --nproc_per_node 2 -m siri train -c household-tiny-gigpo      # CPU (gloo) or GPUs (nccl)

The design keeps a multi-process run equal to the single-process one, rollouts included:

- **Collection is sharded by group.** Rank ``r`` collects the groups ``g`` with ``g % world == r``; a
  group never crosses ranks, so the rollouts of a group still share their initial state. Each episode
  keeps its global position as ``EpisodeSpec.index`` and samples with its own per-episode, per-turn
  seed (``siri.rollout.collector.episode_seed``; each engine row has its own random stream), so a
  rank samples exactly the tokens the single process samples for those episodes.
- **Everything after collection sees the whole batch.** The trajectories are all-gathered (they are
  small: token ids and rewards), put back in spec order, and every rank computes the same advantages,
  SIRI bookkeeping and metrics over the full batch. Only the *update* is sharded again.
- **The update.** Each rank scores and back-propagates only the steps of its own groups; every loss is
  normalized by the token (or sequence) count of the *global* mini-batch, which every rank knows;
  then one bucketed ``all_reduce(SUM)`` per optimizer step adds the ranks' gradients. The sum is
  exactly the single-process gradient, whatever the per-rank step counts.

Why an explicit gradient all-reduce rather than wrapping the model in ``DistributedDataParallel``: DDP
synchronizes inside *each* backward pass and requires every rank to run the same number of them, but
rollouts give ranks different numbers of steps (episodes end at different lengths) and micro-batches.
One all-reduce after the local backward passes needs no padding, no ``no_sync`` bookkeeping and no
dummy batches, works unchanged for LoRA (only trainable tensors are reduced), and is the same
collective DDP would issue (without its overlap of communication and backward; for agent RL the
update is a small share of an iteration, dominated by long-context forward/backward passes).

Only rank 0 writes the run directory (metrics, checkpoints, reports); trainable weights are
broadcast from rank 0 at start so that every rank begins identical (e.g. LoRA's random init).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

BUCKET_ELEMENTS = 2**25  # ~128 MB of fp32 per all-reduce call


@dataclass
class Dist:
    """This process's place in the job (``world == 1``: plain single-process training)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str = ""

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, group: int) -> bool:
        """Whether this rank collects and back-propagates group ``group``."""
        return int(group) % self.world == self.rank

    # ------------------------------------------------------------------ collectives (no-ops alone)
    def all_gather(self, items: Sequence[Any]) -> list[Any]:
        """Every rank's ``items`` concatenated in rank order (pickled; for trajectories and stats)."""
        if not self.enabled:
            return list(items)
        import torch.distributed as dist

        parts: list[Any] = [None] * self.world
        dist.all_gather_object(parts, list(items))
        return [x for part in parts for x in part]

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def max_count(self, n: int) -> int:
        """The largest ``n`` over ranks (FSDP's lock-step micro-batch count)."""
        if not self.enabled:
            return n
        import torch
        import torch.distributed as dist

        device = f"cuda:{self.local_rank}" if self.backend == "nccl" else "cpu"  # NCCL reduces CUDA tensors only
        box = torch.tensor([n], dtype=torch.int64, device=device)
        dist.all_reduce(box, op=dist.ReduceOp.MAX)
        return int(box.item())

    def sync_params(self, params: Sequence[Any]) -> None:
        """Copy rank 0's values of ``params`` to every rank."""
        if not self.enabled:
            return
        import torch
        import torch.distributed as dist

        with torch.no_grad():
            for p in params:
                dist.broadcast(p.data, src=0)

    def all_reduce_grads(self, params: Sequence[Any]) -> None:
        """Sum ``.grad`` over ranks, in buckets. A parameter no rank touched keeps ``grad=None``."""
        if not self.enabled or not params:
            return
        import torch
        import torch.distributed as dist

        # On the parameters' device: NCCL reduces CUDA tensors only.
        touched = torch.tensor([float(p.grad is not None) for p in params], device=params[0].device)
        dist.all_reduce(touched, op=dist.ReduceOp.MAX)
        active = [p for p, t in zip(params, touched.tolist(), strict=True) if t > 0]
        for p in active:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        bucket: list[Any] = []
        size = 0
        for p in active:
            if bucket and (size + p.numel() > BUCKET_ELEMENTS or p.grad.dtype != bucket[0].grad.dtype):
                _reduce_bucket(bucket)
                bucket, size = [], 0
            bucket.append(p)
            size += p.numel()
        if bucket:
            _reduce_bucket(bucket)

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Leave the job. Every rank waits for the others first: rank 0 still writes the policy and the report
        after the last collective, and a rank that tears gloo down while a peer is busy can die of SIGABRT
        ("terminate called without an active exception") in gloo's connection threads."""
        if self.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.barrier()
                dist.destroy_process_group()


def _reduce_bucket(params: list[Any]) -> None:
    import torch
    import torch.distributed as dist

    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def setup(device: str = "auto") -> Dist:
    """Join the ``torchrun`` job described by the environment (``WORLD_SIZE``, ``RANK``, ...).

    Without ``torchrun`` (or with one process) this is single-process training and nothing is set up.
    The backend is NCCL when this rank trains on a GPU, else gloo (CPU).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as dist

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    on_gpu = torch.cuda.is_available() and not device.startswith("cpu")
    backend = "nccl" if on_gpu else "gloo"
    if on_gpu:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return Dist(rank=rank, world=world, local_rank=local_rank, backend=backend)


def rank_device(dist: Dist, device: str) -> str | None:
    """The device this rank trains on: ``cuda:<local rank>`` for GPU jobs, else as configured."""
    if dist.enabled and dist.backend == "nccl" and device in ("auto", "cuda"):
        return f"cuda:{dist.local_rank}"
    return None if device == "auto" else device
