"""Environment workers on Ray: ``BatchEnv``'s interface with the environments living in Ray actors.

Why: real environments (ALFWorld's engine, a WebShop server) are slow and single-threaded; hundreds of
them must run on many cores or machines while one process generates for all of them. ``RayBatchEnv``
splits ``num_envs`` environments into shards of ``envs_per_worker``, one Ray actor per shard, and
steps every shard in parallel. Environments are built by ``siri.envs.make`` inside the actors, so the
same name, options and seeds give exactly the in-process observations, anchors and rewards.

A worker that dies (node lost, OOM kill, segfault in an engine) is replaced by a fresh actor for the
same shard. Nothing is silently lost: every episode that was running on it is reported once as a
failed step (``done=True``, ``valid=False``, ``info["worker_failed"] = True``, ``info["error"]``), which
the collector turns into a ``Trajectory`` with ``failed=True`` that training leaves out. A ``reset`` is
deterministic, so a worker dying during ``reset`` is simply retried on the fresh actor. Exceptions
raised *by an environment* (an ``EnvError`` for a misuse) are not failures of the worker: they are
re-raised as they are.

    batch = RayBatchEnv("household", 32, {"split": "train", "max_steps": 30}, envs_per_worker=8)
    observations = batch.reset(seeds)          # one per environment
    steps = batch.step(actions)                # None skips an environment, as in BatchEnv
    batch.close()
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

from siri.envs.base import EnvError, Observation, Step

RAY_INSTALL = "pip install 'siri-rl[ray]'"


def require_ray() -> Any:
    """The ``ray`` module, or an error that says how to install it."""
    try:
        import ray
    except ImportError as e:
        raise EnvError(f"env.workers=ray needs Ray; install it with: {RAY_INSTALL}") from e
    return ray


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> Any:
    """Connect to the Ray cluster at ``address`` ("auto": the running one), or start a local one (None).

    A session that is already connected is reused as it is.
    """
    ray = require_ray()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
        if address is None:
            kwargs["num_cpus"] = num_cpus
        ray.init(address=address, **kwargs)
    return ray


class EnvShard:
    """A few environments in one process: the class Ray hosts as an actor (plain Python, testable)."""

    def __init__(self, name: str, options: dict[str, Any], count: int) -> None:
        from siri.envs import make

        self.envs = [make(name, **options) for _ in range(count)]

    def reset(self, seeds: Sequence[int]) -> list[Observation]:
        return [env.reset(int(seed)) for env, seed in zip(self.envs, seeds, strict=True)]

    def step(self, actions: Sequence[str | None]) -> list[Step | None]:
        return [None if a is None else env.step(a) for env, a in zip(self.envs, actions, strict=True)]

    def pid(self) -> int:
        """The worker's process id (lets tests and operators see a restart)."""
        return os.getpid()

    def close(self) -> None:
        for env in self.envs:
            close = getattr(env, "close", None)
            if close is not None:
                close()


def failed_step(observation: Observation, error: str) -> Step:
    """The step reported for an episode whose worker died: over, invalid, no reward, clearly marked."""
    return Step(observation=observation, reward=0.0, done=True, won=False, valid=False,
                reason=f"environment worker failed: {error}", score=0.0, truncated=False,
                info={"worker_failed": True, "error": error})


class RayBatchEnv:
    """``num_envs`` environments ``make(name, **options)`` stepped in parallel by Ray actors.

    Args:
        name, options: what ``siri.envs.make`` builds in every actor.
        num_envs: number of environments (one per episode of a collection).
        envs_per_worker: environments per actor; the last shard may be smaller.
        num_cpus: CPUs Ray reserves per actor (fractions allowed, e.g. 0.5).
        resources: extra Ray resources per actor (e.g. {"env_node": 1} to pin actors to tagged nodes).
        max_restarts: actor replacements allowed over the life of this object before giving up.
        address: Ray cluster address ("auto" = the running cluster); None starts a local one if needed.
    """

    def __init__(
        self,
        name: str,
        num_envs: int,
        options: dict[str, Any] | None = None,
        *,
        envs_per_worker: int = 8,
        num_cpus: float = 1.0,
        resources: dict[str, float] | None = None,
        max_restarts: int = 10,
        address: str | None = None,
    ) -> None:
        if num_envs < 1 or envs_per_worker < 1:
            raise EnvError(f"RayBatchEnv needs num_envs >= 1 and envs_per_worker >= 1, got {num_envs}, {envs_per_worker}")
        self.ray = ensure_ray(address)
        from siri.envs import make

        make(name, **(options or {}))  # fail here, with the registry's message, on a bad name or option
        self.name, self.options = name, dict(options or {})
        self.num_envs = num_envs
        self.bounds = [(lo, min(lo + envs_per_worker, num_envs)) for lo in range(0, num_envs, envs_per_worker)]
        self._check_capacity(len(self.bounds) * num_cpus, envs_per_worker, num_cpus)
        self.actor_options: dict[str, Any] = {"num_cpus": num_cpus, "max_restarts": 0, "max_task_retries": 0}
        if resources:
            self.actor_options["resources"] = dict(resources)
        self.max_restarts = max_restarts
        self.restarts = 0  # actors replaced so far
        self.failed_episodes = 0  # episodes reported as failed so far
        self.workers = [self._spawn(lo, hi) for lo, hi in self.bounds]
        self._last_obs: list[Observation | None] = [None] * num_envs
        self._live = [False] * num_envs  # reset and not yet done: its state lives in a worker
        self._lost: dict[int, str] = {}  # live episodes whose worker died while they were idle

    def __len__(self) -> int:
        return self.num_envs

    # ------------------------------------------------------------------ actors
    def _check_capacity(self, needed: float, envs_per_worker: int, num_cpus: float) -> None:
        available = float(self.ray.cluster_resources().get("CPU", 0.0))
        if needed > available:
            raise EnvError(
                f"{len(self.bounds)} environment workers x {num_cpus} CPU need {needed:g} CPUs but the Ray cluster "
                f"has {available:g}; raise env.envs_per_worker (now {envs_per_worker}) or lower env.worker_cpus"
            )

    def _spawn(self, lo: int, hi: int) -> Any:
        actor_class = self.ray.remote(EnvShard)
        return actor_class.options(**self.actor_options).remote(self.name, self.options, hi - lo)

    def _replace(self, shard: int, error: str) -> None:
        """Swap shard ``shard``'s dead actor for a fresh one (its environments start un-reset)."""
        if self.restarts >= self.max_restarts:
            raise EnvError(
                f"environment worker {shard} died again ({error}) after {self.restarts} restarts "
                f"(limit env.worker_restarts={self.max_restarts}); check the workers' logs"
            )
        with contextlib.suppress(Exception):  # already gone: nothing to kill
            self.ray.kill(self.workers[shard], no_restart=True)
        self.restarts += 1
        self.workers[shard] = self._spawn(*self.bounds[shard])

    def _get(self, ref: Any) -> tuple[Any, str | None]:
        """``(result, None)``, or ``(None, error)`` if the actor died; errors *from* an env are re-raised."""
        ray = self.ray
        try:
            return ray.get(ref), None
        except ray.exceptions.RayTaskError as e:  # the env raised: a bug or misuse, not a worker failure
            cause = e.as_instanceof_cause()
            raise cause from None
        except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.ObjectLostError) as e:
            return None, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".strip()

    # ------------------------------------------------------------------ BatchEnv interface
    def reset(self, seeds: Sequence[int]) -> list[Observation]:
        if len(seeds) != self.num_envs:
            raise EnvError(f"reset got {len(seeds)} seeds for {self.num_envs} environments")
        seeds = [int(s) for s in seeds]
        refs = [w.reset.remote(seeds[lo:hi]) for w, (lo, hi) in zip(self.workers, self.bounds, strict=True)]
        out: list[Observation] = []
        for shard, ((lo, hi), ref) in enumerate(zip(self.bounds, refs, strict=True)):
            result, error = self._get(ref)
            while error is not None:  # reset is deterministic: retry it on the fresh actor
                self._replace(shard, error)
                result, error = self._get(self.workers[shard].reset.remote(seeds[lo:hi]))
            out.extend(result)
        self._last_obs = list(out)
        self._live = [True] * self.num_envs
        self._lost = {}
        return out

    def step(self, actions: Sequence[str | None]) -> list[Step | None]:
        if len(actions) != self.num_envs:
            raise EnvError(f"step got {len(actions)} actions for {self.num_envs} environments")
        results: list[Step | None] = [None] * self.num_envs
        pending: list[tuple[int, Any]] = []
        for shard, (lo, hi) in enumerate(self.bounds):
            sent: list[str | None] = []
            for i in range(lo, hi):
                if actions[i] is not None and i in self._lost:
                    results[i] = self._fail(i, self._lost.pop(i))
                    sent.append(None)
                else:
                    sent.append(actions[i])
            if any(a is not None for a in sent):
                pending.append((shard, self.workers[shard].step.remote(sent)))
        for shard, ref in pending:
            lo, hi = self.bounds[shard]
            steps, error = self._get(ref)
            if error is not None:
                self._replace(shard, error)
                for i in range(lo, hi):
                    if actions[i] is not None and results[i] is None:
                        results[i] = self._fail(i, error)
                    elif self._live[i]:
                        self._lost[i] = error  # reported when the caller next steps it
                continue
            for i, step in zip(range(lo, hi), steps, strict=True):
                if step is not None:
                    results[i] = step
                    self._last_obs[i] = step.observation
                    self._live[i] = not step.done
        return results

    def _fail(self, i: int, error: str) -> Step:
        obs = self._last_obs[i]
        if obs is None:
            raise EnvError(f"environment {i}: step() before reset(seeds); call reset first")
        self._live[i] = False
        self.failed_episodes += 1
        return failed_step(obs, error)

    def pids(self) -> list[int]:
        """Process id of every worker (a replaced worker has a new one)."""
        return [self._get(w.pid.remote())[0] for w in self.workers]

    def close(self) -> None:
        """Close the environments and end the actors."""
        for worker in self.workers:
            try:
                self.ray.get(worker.close.remote())
                self.ray.kill(worker, no_restart=True)
            except Exception:  # a dead worker has nothing left to close
                pass
        self.workers = []
