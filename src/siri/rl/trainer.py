"""The RL loop: collect groups of rollouts -> advantages -> clipped policy-gradient update -> metrics.

One iteration, read top to bottom in ``Trainer.iteration``:

1. ``num_groups`` task seeds are drawn from ``(train.seed, iteration)``; each group is ``group_size``
   rollouts from the same seed (``EpisodeSpec``). With SIRI on, ``SiriPipeline.plan`` decides which
   rollouts of a group show skills (paired validation, internalization).
2. ``collect`` steps every episode with one batched generation per turn.
3. GRPO / GiGPO / RLOO advantages over all steps of the batch (skill rollouts included, so the plain
   and skill rollouts of a group share their statistics).
4. Update (``siri.rl.update``): PPO clipped token loss on plain-prompt steps + ``kl_coef`` * KL to the
   reference policy (- entropy bonus), plus ``lambda(k)`` * internalization loss on weighted skill steps
   (SIRI), with micro-batches whose gradients add up exactly to the full-batch gradient.
5. Metrics to metrics.jsonl/TensorBoard; evaluation on fixed eval seeds every ``eval_every``; with SIRI,
   the internalization gap on the run's probe set every ``siri.probe_every`` (``siri.rl.probe``);
   checkpoint every ``save_every``.

Scale-out (docs/scale-out.md): ``env.workers=ray`` steps the environments in Ray actors
(``siri.envs.ray_workers``); under ``torchrun`` each rank collects its own groups and back-propagates
their steps, with one gradient all-reduce per optimizer step (``siri.rl.distributed``) or, with
``train.strategy=fsdp``, sharded weights, gradients and optimizer state (``siri.rl.fsdp``); and
``rollout.engine=vllm`` generates with vLLM, whose weights are pushed after every update.

Everything random in an iteration is seeded from ``(train.seed, iteration)``, and a checkpoint holds
the trainable weights, the optimizer and the pipeline state, so ``resume`` reproduces an
uninterrupted run exactly.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from siri.config import TrainConfig
from siri.envs import split_seed
from siri.models.policy import Policy
from siri.rl.advantages import compute_gigpo, compute_grpo, compute_rloo
from siri.rl.distributed import Dist, rank_device
from siri.rl.distributed import setup as setup_distributed
from siri.rl.dynamic_sampling import assemble, informative_groups, renumber
from siri.rl.fsdp import ShardedModel, full_state_dict, load_sharded, save_sharded
from siri.rl.update import UpdateBatch, update_policy
from siri.rollout.collector import EpisodeSpec, RolloutConfig, collect
from siri.rollout.evaluation import episode_metrics, evaluate
from siri.rollout.types import StepRecord, Trajectory
from siri.runs.run_dir import SHARDED_DIR, RunDir, RunDirError
from siri.runs.summary import Summary, eval_entry, new_summary, write_summary
from siri.utils.config import ConfigError
from siri.utils.io import atomic_write_text
from siri.utils.seeds import Stream, stream_rng, stream_seed

Progress = Callable[[dict[str, Any]], None]


def compute_advantages(records: Sequence[StepRecord], cfg: TrainConfig) -> np.ndarray:
    """One advantage per step record, by ``cfg.algo`` (see siri.rl.advantages)."""
    group = np.array([r.group for r in records])
    traj = np.array([r.traj for r in records])
    t = np.array([r.t for r in records])
    reward = np.array([r.reward for r in records], dtype=np.float64)
    algo = cfg.algo
    if algo.name == "grpo":
        return compute_grpo(group, traj, t, reward, norm=algo.norm, episode_stats=algo.episode_stats)
    if algo.name == "rloo":
        return compute_rloo(group, traj, t, reward)
    return compute_gigpo(
        group, traj, t, reward, [r.anchor for r in records], gamma=algo.gamma, omega=algo.omega,
        norm=algo.norm, episode_stats=algo.episode_stats, similarity=algo.similarity,
        texts=[r.observation_text for r in records] if algo.similarity is not None else None,
    )


class Trainer:
    """GRPO/GiGPO training of one policy on one environment, optionally with the SIRI pipeline.

    Build it with ``Trainer.create`` (new run) or ``Trainer.resume`` (continue a run directory).
    """

    def __init__(self, cfg: TrainConfig, run: RunDir, policy: Policy, start_iteration: int = 0,
                 dist: Dist | None = None, resume: bool = False) -> None:
        import torch

        self.cfg = cfg
        self.run = run
        self.policy = policy
        self.iteration = start_iteration
        self.dist = dist or Dist()
        # every rank starts from rank 0's weights (e.g. LoRA's random init)
        self.dist.sync_params([p for p in policy.model.parameters() if p.requires_grad])
        self.sharding = (ShardedModel(policy.model, mixed_precision=cfg.train.mixed_precision)
                         if cfg.train.strategy == "fsdp" and self.dist.enabled else None)
        self.params = (self.sharding.params if self.sharding is not None  # this rank's shards
                       else [p for p in policy.model.parameters() if p.requires_grad])
        self.optimizer = torch.optim.AdamW(
            self.params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay, betas=tuple(cfg.optim.betas)
        )
        self.env_options = cfg.env.options_for()
        self.eval_options = cfg.env.options_for(cfg.env.eval_split)
        self.train_split_size = _split_size(cfg.env.name, self.env_options)  # None: every seed is a new task
        self.eval_split_size = _split_size(cfg.env.name, self.eval_options)
        self.mode = cfg.model.action_mode
        self.summary: Summary = new_summary()
        self.last_outcomes: list[tuple[str, bool, float]] | None = None
        self.siri: Any = None
        if cfg.siri.enabled:
            from siri.skills.pipeline import SiriPipeline

            # Rank 0 reads and writes the bank and mines; the other ranks receive its bank.
            self.siri = SiriPipeline(cfg, run.path, resume=resume, is_main=self.dist.is_main,
                                     broadcast=self.dist.broadcast)
        self.engine = make_engine(cfg, policy, self.dist)
        self._env_batches: dict[tuple[str, int], Any] = {}
        if self.dist.is_main:
            run.use_loggers(cfg.train.loggers, wandb_project=cfg.train.wandb_project,
                            wandb_entity=cfg.train.wandb_entity, config=cfg.to_dict())

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, cfg: TrainConfig, run_dir: str | Path | None = None, preset: str = "run") -> Trainer:
        from siri.models.loading import load_policy

        check_before_writing(cfg)  # a mistake in the config must not leave a run directory behind
        dist = setup_distributed(cfg.train.device)
        path = Path(dist.broadcast(str(run_dir or cfg.train.run_dir or f"runs/{preset}-{datetime.now():%Y%m%d-%H%M%S}")))
        seed_everything(cfg.train.seed)
        policy = _load_policy(cfg, load_policy, dist)
        run, error = RunDir(path), None
        if dist.is_main:
            try:
                run = RunDir.create(path, cfg.to_yaml(comments=False), {
                    "seeds": {"train": cfg.train.seed}, "preset": preset, "model": policy.name, "env": cfg.env.name,
                    "world_size": dist.world})
            except RunDirError as e:
                error = str(e)
        error = dist.broadcast(error)  # every rank stops, not only rank 0
        if error is not None:
            raise RunDirError(error)
        try:
            return cls(cfg, run, policy, dist=dist)
        except BaseException:
            if dist.is_main:
                run.discard_new()  # so a retry starts afresh instead of being told to --resume a crash
            raise

    @classmethod
    def resume(cls, run_dir: str | Path, overrides: Sequence[str] = ()) -> Trainer:
        """Continue ``run_dir`` from its latest checkpoint (or from scratch if it has none yet)."""
        import torch

        from siri.models.loading import load_policy

        run = RunDir.open(run_dir)
        stored = TrainConfig.load(run.path / "config.yaml")
        cfg = stored.with_overrides(overrides) if overrides else stored
        changed = check_resume_overrides(stored, cfg)
        dist = setup_distributed(cfg.train.device)
        if dist.is_main:
            run.lock()
            if changed:  # the run's config says what the rest of it runs with; meta.json keeps the history
                meta = run.read_json("meta.json") or {}
                meta.setdefault("resumed_with", []).append({"time": time.time(), "overrides": changed})
                run.write_json("meta.json", meta)
                atomic_write_text(run.path / "config.yaml", cfg.to_yaml(comments=False))
        seed_everything(cfg.train.seed)
        policy = _load_policy(cfg, load_policy, dist)
        checkpoint = run.latest_checkpoint()
        if checkpoint is None:
            if dist.is_main:
                run.truncate_metrics(-1)
            return cls(cfg, run, policy, dist=dist, resume=True)
        sharded = (checkpoint / SHARDED_DIR).is_dir()
        if not sharded:
            _load_checkpoint_weights(run, checkpoint, policy.model)
        start = int(run.load_checkpoint(checkpoint, "iteration")["iteration"])
        trainer = cls(cfg, run, policy, start_iteration=start, dist=dist, resume=True)
        if sharded:  # weights and optimizer, resharded by DCP for this run's ranks
            with trainer.sharded():
                load_sharded(policy.model, trainer.optimizer, checkpoint / SHARDED_DIR)
        else:
            trainer.optimizer.load_state_dict(run.load_checkpoint(checkpoint, "optimizer"))
        state = run.load_checkpoint(checkpoint, "trainer")
        trainer.summary = state["summary"]
        if trainer.siri is not None:
            trainer.siri.load_state(state["siri"], checkpoint)
        torch.set_rng_state(state["torch_rng"])
        if dist.is_main:
            run.truncate_metrics(start)  # rows are numbered by completed iterations
        return trainer

    # ------------------------------------------------------------------ the loop
    def train(self, progress: Progress | None = None, report: bool = False) -> Summary:
        """Run the remaining iterations, evaluate at the end, write summary.json (and with ``report`` the
        run's report.html/report.md, handed to the loggers too); return the summary."""
        cfg = self.cfg
        if self.iteration == 0 and "bootstrap" not in self.summary["evals"]:
            bootstrap = self.evaluate()
            if self.dist.is_main:
                self.run.log({"iteration": 0, "phase": "bootstrap", **bootstrap})
            self.summary["evals"]["bootstrap"] = eval_entry(bootstrap, "eval", 0, self.last_outcomes)
            self._save_summary()
            if progress is not None:
                progress({"iteration": 0, "phase": "bootstrap", **bootstrap})
        while self.iteration < cfg.train.iterations:
            record = self.step()
            if progress is not None:
                progress(record)
            every = cfg.train.save_every
            if (every and self.iteration % every == 0) or self.iteration == cfg.train.iterations:
                self.save_checkpoint()
        self.finish(report)
        return self.summary

    def step(self) -> dict[str, Any]:
        """One training iteration (collect, advantages, update, metrics); returns its metrics record."""
        cfg, it = self.cfg, self.iteration
        start = time.time()
        phase = self.siri.phase if self.siri is not None else cfg.algo.name
        rng = np.random.default_rng(stream_seed(cfg.train.seed, it, Stream.TASKS))
        # A finite split (shop goals, ALFWorld game folders) takes the drawn seed modulo its size.
        group_seeds = [split_seed(int(s), self.train_split_size)
                       for s in rng.integers(0, 2**31 - 1, size=cfg.rollout.num_groups)]
        if self.siri is not None:
            specs = self.siri.plan(it, group_seeds, cfg.rollout.group_size)
        else:
            specs = [EpisodeSpec(group=g, seed=s) for g, s in enumerate(group_seeds) for _ in range(cfg.rollout.group_size)]
        rollout = RolloutConfig.of_run(cfg, seed=stream_seed(cfg.train.seed, it, Stream.SAMPLING))
        trajectories = self._collect(specs, rollout, self.env_options)
        failed = [t for t in trajectories if t.failed]
        trajectories = [t for t in trajectories if not t.failed]  # lost with a worker: not trained on
        first_round = trajectories  # the iteration's tasks as drawn: its train/ metrics
        sampling: dict[str, float] = {}
        if cfg.rollout.dynamic_sampling:
            trajectories, sampling, more_failed = self._informative_batch(trajectories, it)
            failed += more_failed
        records = [s for t in trajectories for s in t.steps]
        advantages = compute_advantages(records, cfg)

        plain = [i for i, r in enumerate(records) if not r.uses_skills]
        internalize: list[tuple[int, float]] = []
        lam = 0.0
        if self.siri is not None:
            self.siri.observe(it, trajectories, self.policy)
            internalize, lam = self.siri.internalization(it, records, advantages)
        batch = UpdateBatch(records=records, advantages=advantages, policy_steps=plain, internalized=internalize,
                            lam=lam, seed=stream_seed(cfg.train.seed, it, Stream.UPDATE))
        update_stats = self.update(batch)
        sync = getattr(self.engine, "sync", None)
        if sync is not None:
            sync(self.policy)  # e.g. push the new weights into vLLM

        plain_trajs = [t for t in first_round if not t.uses_skills]
        record: dict[str, Any] = {"iteration": it + 1, "phase": phase, **episode_metrics(plain_trajs, "train")}
        record.update(sampling)
        skill_trajs = [t for t in trajectories if t.uses_skills]
        if skill_trajs:
            record.update({k: v for k, v in episode_metrics(skill_trajs, "train_skills").items() if k.count("/") == 1})
        record.update(update_stats)
        record["adv/mean_abs"] = float(np.mean(np.abs(advantages))) if len(advantages) else 0.0
        record["lambda"] = lam
        if cfg.env.workers == "ray" or failed:
            record["env/failed_episodes"] = float(len(failed))
            record["env/worker_restarts"] = float(sum(b.restarts for b in self._env_batches.values()))
        if self.siri is not None:
            record.update(self.siri.metrics())
        self.iteration = it + 1
        record.update(self.probe_metrics())
        every = cfg.train.eval_every
        warmup_just_ended = self.siri is not None and self.siri.warmup_ended_at == self.iteration
        if (every and self.iteration % every == 0) or self.iteration == cfg.train.iterations or warmup_just_ended:
            record.update(self.evaluate())
            if warmup_just_ended:
                self.summary["evals"]["warmup_end"] = eval_entry(record, "eval", self.iteration, self.last_outcomes)
                self._save_summary()
        record["time/iteration_s"] = time.time() - start
        if self.dist.is_main:
            self.run.log(record)
        return record

    def _informative_batch(self, first: list[Trajectory], it: int,
                           ) -> tuple[list[Trajectory], dict[str, float], list[Trajectory]]:
        """``rollout.dynamic_sampling`` (``siri.rl.dynamic_sampling``): collect new groups until the batch
        holds ``num_groups`` with a nonzero advantage, or ``max_sampling_rounds`` collections were made.
        Returns the batch, its metrics and the episodes lost with a worker on the way."""
        cfg = self.cfg
        target, size = cfg.rollout.num_groups, cfg.rollout.group_size

        def signal(trajectories: list[Trajectory]) -> set[int]:
            records = [s for t in trajectories for s in t.steps]
            return informative_groups(records, compute_advantages(records, cfg))

        rounds, found, failed = [first], [signal(first)], []
        rng = stream_rng(cfg.train.seed, it, Stream.EXTRA_GROUPS)
        while sum(map(len, found)) < target and len(rounds) < cfg.rollout.max_sampling_rounds:
            r = len(rounds)
            seeds = [split_seed(int(s), self.train_split_size) for s in rng.integers(0, 2**31 - 1, size=target)]
            specs = [EpisodeSpec(group=r * target + g, seed=s) for g, s in enumerate(seeds) for _ in range(size)]
            rollout = RolloutConfig.of_run(cfg, seed=int(rng.integers(0, 2**31 - 1)))
            got = self._collect(specs, rollout, self.env_options)
            failed += [t for t in got if t.failed]
            got = [t for t in got if not t.failed]
            renumber(got, traj_offset=r * target * size)
            rounds.append(got)
            found.append(signal(got))
        batch, stats = assemble(rounds, found, target)
        return batch, stats, failed

    def probe_metrics(self) -> dict[str, float]:
        """The internalization gap on the SIRI probe set (``siri.rl.probe``), after the update of every
        ``siri.probe_every``-th iteration and of the last one; empty otherwise or while the probe is empty.

        Every rank computes it (same probe, same weights, no collective); only rank 0 logs the record.
        """
        every, done = self.cfg.siri.probe_every, self.iteration
        if self.siri is None or not every or not self.siri.probe_set:
            return {}
        if done % every and done != self.cfg.train.iterations:
            return {}
        from siri.rl.probe import internalization_gap, scoring_temperature
        from siri.skills.probe import probe_records

        return internalization_gap(self.policy.model, probe_records(self.siri.probe_set), pad_id=self.policy.pad_id,
                                   temperature=scoring_temperature(self.cfg),
                                   micro_batch=self.cfg.optim.micro_batch_size)

    def sharded(self) -> contextlib.AbstractContextManager[None]:
        """The block in which the model's weights and optimizer state may be read or written (FSDP: sharded)."""
        return self.sharding.sharded() if self.sharding is not None else contextlib.nullcontext()

    def update(self, batch: UpdateBatch) -> dict[str, float]:
        """One policy update on ``batch`` (``siri.rl.update``) with this trainer's policy and optimizer."""
        return update_policy(batch, self.cfg, self.policy, self.optimizer, self.dist, self.sharding)

    # ------------------------------------------------------------------ evaluation and persistence
    def evaluate(self, with_skills: bool = False) -> dict[str, float]:
        """Plain-prompt evaluation on the fixed eval seeds 0..eval_episodes-1 (``with_skills``: ablation)."""
        cfg = self.cfg
        n = cfg.train.eval_episodes
        size = self.eval_split_size
        if size is not None:
            n = min(n, size)
        skills_for = None
        if with_skills and self.siri is not None:
            skills_for = self.siri.inference_skills(cfg.env.name, self.eval_options)
        rollout = RolloutConfig.of_run(cfg, seed=stream_seed(cfg.train.seed, 0, Stream.EVAL_SAMPLING), evaluation=True)
        trajectories = evaluate(lambda specs: self._collect(specs, rollout, self.eval_options), n, skills_for)
        # (task type, won, score) of each episode, for the summary's confidence intervals
        self.last_outcomes = [(t.task_type, bool(t.won), float(t.score)) for t in trajectories]
        return episode_metrics(trajectories, "eval_skills" if with_skills else "eval")

    def _collect(self, specs: Sequence[EpisodeSpec], rollout: RolloutConfig, options: dict[str, Any]) -> list[Trajectory]:
        """Collect ``specs``; under torchrun this rank runs its own groups, then every rank gets them all.

        Each spec goes out with its global position as ``index``: that is its trajectory id and picks its
        sampling seeds, so a rank samples exactly what a single process would. The result is in spec
        order, on every rank.
        """
        mine = [i for i, s in enumerate(specs) if self.dist.owns(s.group)]
        local = collect(self.policy, self.cfg.env.name, [replace(specs[i], index=i) for i in mine], rollout,
                        env_options=options, engine=self.engine, batch_env=self._env_batch(options, len(mine)))
        return sorted(self.dist.all_gather(local), key=lambda t: t.traj)

    def _env_batch(self, options: dict[str, Any], n: int) -> Any:
        """``env.workers=ray``: the Ray actors for ``n`` environments with ``options`` (kept across iterations)."""
        if self.cfg.env.workers != "ray" or n == 0:
            return None
        key = (json.dumps(options, sort_keys=True, default=str), n)
        if key not in self._env_batches:
            from siri.envs.ray_workers import RayBatchEnv

            e = self.cfg.env
            self._env_batches[key] = RayBatchEnv(e.name, n, options, envs_per_worker=e.envs_per_worker,
                                                 num_cpus=e.worker_cpus, max_restarts=e.worker_restarts,
                                                 address=e.ray_address)
        return self._env_batches[key]

    def close(self) -> None:
        """Release environment workers (and the process group); the trainer is unusable afterwards."""
        for batch in self._env_batches.values():
            batch.close()
        self._env_batches.clear()
        self.dist.close()

    def save_checkpoint(self) -> Path | None:
        """Write a checkpoint (rank 0 writes it, and returns its path; the other ranks hold identical state and
        return None). ``train.strategy=fsdp``: every rank first writes its shards (``siri.rl.fsdp``)."""
        import torch

        shards = None
        if self.cfg.train.strategy == "fsdp":
            shards = Path(self.dist.broadcast(str(self.run.shard_staging(self.iteration)) if self.dist.is_main else ""))
            with self.sharded():
                save_sharded(self.policy.model, self.optimizer, shards)
            self.dist.barrier()
        if not self.dist.is_main:
            return None
        state = {"summary": self.summary, "torch_rng": torch.get_rng_state(),
                 "siri": self.siri.state() if self.siri is not None else None}
        files = {}
        if self.siri is not None:
            self.siri.save()
            files = self.siri.checkpoint_files()
        payload: dict[str, Any] = {"trainer": state}
        if shards is None:
            payload["model"] = {n: p.detach().clone() for n, p in self.policy.model.named_parameters()
                                if p.requires_grad}
            payload["optimizer"] = self.optimizer.state_dict()
        return self.run.save_checkpoint(self.iteration, payload, files, keep=self.cfg.train.keep_checkpoints,
                                        shards=shards)

    def finish(self, report: bool = False) -> None:
        """Final evaluations, the trained policy under RUN_DIR/policy, summary.json, and the report."""
        metrics = self.run.metrics() if self.dist.is_main else []
        last = self.dist.broadcast(metrics[-1] if metrics else {})  # all ranks must agree to evaluate
        # Reuse the last iteration's evaluation unless it was lost with a kill (then evaluate again).
        final = last if "eval/success" in last and self.last_outcomes is not None else self.evaluate()
        self.summary["evals"]["final"] = eval_entry(final, "eval", self.iteration, self.last_outcomes)
        if self.siri is not None:
            if self.cfg.siri.keep_skills_at_inference:
                with_skills = self.evaluate(with_skills=True)
                self.summary["evals"]["final_with_skills"] = eval_entry(with_skills, "eval_skills", self.iteration,
                                                                       self.last_outcomes)
            self.summary["skills"] = self.siri.counts()
        self._save_summary()
        # Sharded: the weights are consolidated on rank 0 (a collective), which exports one HF directory.
        weights = None
        if self.sharding is not None:
            with self.sharded():
                weights = full_state_dict(self.policy.model)
        if self.dist.is_main:
            self.policy.save(self.run.path / "policy", state_dict=weights)
            if report:
                from siri.runs.report import build_report

                html, md = build_report([self.run.path])
                self.run.attach_report([html, md, html.parent / "report_files"])
            self.run.close()
        self.close()

    def _save_summary(self) -> None:
        if self.dist.is_main:
            write_summary(self.run, self.summary)


# ---------------------------------------------------------------------- helpers
# Settings a resumed run may change: how long it runs and what it writes, never what it computes.
RESUME_SAFE_KEYS: tuple[str, ...] = ("train.iterations", "train.eval_every", "train.save_every",
                                     "train.keep_checkpoints", "train.device", "env.workers", "env.ray_address",
                                     "train.loggers", "train.wandb_project", "train.wandb_entity")


def check_resume_overrides(stored: TrainConfig, cfg: TrainConfig) -> dict[str, Any]:
    """The settings a resume changes (key -> [old, new]); a ConfigError for any outside ``RESUME_SAFE_KEYS``:
    a run whose second half computes something else is no run at all."""
    before, after = _flat(stored.to_dict()), _flat(cfg.to_dict())
    changed = {key: [before.get(key), after.get(key)] for key in sorted(set(before) | set(after))
               if before.get(key) != after.get(key)}
    unsafe = [key for key in changed if key not in RESUME_SAFE_KEYS]
    if unsafe:
        raise ConfigError(f"--resume cannot change {', '.join(unsafe)} (the run so far used "
                          f"{', '.join(f'{k}={changed[k][0]!r}' for k in unsafe)}); a resumed run may change only "
                          f"{', '.join(RESUME_SAFE_KEYS)}. Start a new run for other settings.")
    return changed


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and not (prefix == "env." and key == "options") and key != "vllm_options":
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_before_writing(cfg: TrainConfig) -> None:
    """What can be checked before a run directory is written: the SIRI gate, the environment with its options
    and splits (one reset each), the device. Raises ConfigError/EnvError with one line naming the setting."""
    import torch

    from siri.envs import make_batch

    if cfg.siri.enabled:
        from siri.skills.pipeline import SiriPipeline

        SiriPipeline.check_config(cfg)
    if "wandb" in cfg.train.loggers:
        from siri.runs.wandb_sink import WandbMissing, require_wandb

        try:
            require_wandb()
        except WandbMissing as e:
            raise ConfigError(str(e)) from None
    train_options, eval_options = cfg.env.options_for(), cfg.env.options_for(cfg.env.eval_split)
    for options in [train_options] if eval_options == train_options else [train_options, eval_options]:
        envs = make_batch(cfg.env.name, 1, **options)
        try:
            envs.reset([0])
        finally:
            envs.close()  # the real ALFWorld engine holds a game process
    device = cfg.train.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"train.device={device} but torch sees no CUDA device here; use train.device=cpu or auto")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise ConfigError(f"train.device={device} but there are {torch.cuda.device_count()} CUDA devices")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("train.device=mps but torch has no MPS device here; use train.device=cpu or auto")


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_engine(cfg: TrainConfig, policy: Policy, dist: Dist) -> Any:
    """The generation engine of ``rollout.engine``: None (the collector's ``HFEngine``) or a ``VLLMEngine``."""
    if cfg.rollout.engine == "hf":
        return None
    if cfg.model.action_mode == "choose":
        raise ValueError("rollout.engine=vllm supports model.action_mode=generate only; choose mode "
                         "(trie-constrained decoding) runs with rollout.engine=hf")
    from siri.rollout.vllm_engine import VLLMEngine

    return VLLMEngine.from_policy(policy, world=dist.world, seed=cfg.train.seed, **cfg.rollout.vllm_options)


def _load_policy(cfg: TrainConfig, load_policy: Callable[..., Any], dist: Dist | None = None,
                 reference: bool | None = None) -> Any:
    """The policy ``cfg.model`` describes; ``reference`` (default: whether the KL term needs one) also loads
    the frozen reference copy."""
    device = rank_device(dist or Dist(), cfg.train.device)
    policy = load_policy(
        cfg.model.name_or_path, env=cfg.env.name, lora=cfg.model.lora, lora_r=cfg.model.lora_r,
        lora_alpha=cfg.model.lora_alpha, lora_dropout=cfg.model.lora_dropout,
        dtype=cfg.model.dtype if cfg.model.dtype != "auto" else "float32",
        device=device, action_mode=cfg.model.action_mode,
        reference=cfg.algo.kl_coef > 0 if reference is None else reference,
    )
    if cfg.model.gradient_checkpointing:  # renamed in transformers 5.x; the old name warns, then goes in v6
        model = policy.model
        (getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable)()
    return policy


def _load_trainable(model: Any, weights: dict[str, Any]) -> list[str]:
    """Copy saved trainable tensors into ``model``; return the trainable names the file lacks."""
    import torch

    params = dict(model.named_parameters())
    missing = [n for n, p in params.items() if p.requires_grad and n not in weights]
    with torch.no_grad():
        for name, tensor in weights.items():
            if name not in params:
                raise RunDirError(f"checkpoint holds weight {name!r} that the model does not have")
            params[name].copy_(tensor)
    return missing


def checkpoint_policies(run_dir: str | Path, device: str = "auto"
                        ) -> Iterator[tuple[int, str | None, Policy, TrainConfig]]:
    """A run's policy at its start and at each of its checkpoints, for scoring them (``siri probe``).

    One policy is loaded as the run's config says (base model, LoRA; no reference copy) and each checkpoint's
    trainable weights are copied onto it in turn, as ``Trainer.resume`` does. Yields ``(iteration, checkpoint
    name or None for the start, policy, config)``; the policy is the same object every time.
    """
    from siri.models.loading import load_policy

    run = RunDir.open(run_dir)
    cfg = TrainConfig.load(run.path / "config.yaml", [f"train.device={device}"])
    policy = _load_policy(cfg, load_policy, reference=False)
    yield 0, None, policy, cfg
    for checkpoint in run.list_checkpoints():
        iteration = int(run.load_checkpoint(checkpoint, "iteration")["iteration"])
        if (checkpoint / SHARDED_DIR).is_dir():
            load_sharded(policy.model, None, checkpoint / SHARDED_DIR)  # one process reads every rank's shards
        else:
            _load_checkpoint_weights(run, checkpoint, policy.model)
        yield iteration, checkpoint.name, policy, cfg


def _load_checkpoint_weights(run: RunDir, checkpoint: Path, model: Any) -> None:
    """A replicate checkpoint's trainable weights (model.pt) into ``model``."""
    missing = _load_trainable(model, run.load_checkpoint(checkpoint, "model"))
    if missing:
        raise RunDirError(f"{checkpoint}/model.pt does not match the model of {run.path}: missing {missing[:5]}")


def _split_size(env_name: str, options: dict[str, Any]) -> int | None:
    from siri.envs import make

    return make(env_name, **options).split_size()
