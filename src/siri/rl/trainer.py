"""The RL loop: collect groups of rollouts -> advantages -> clipped policy-gradient update -> metrics.

One iteration, read top to bottom in ``Trainer.iteration``:

1. ``num_groups`` task seeds are drawn from ``(train.seed, iteration)``; each group is ``group_size``
   rollouts from the same seed (``EpisodeSpec``). With SIRI on, ``SiriPipeline.plan`` decides which
   rollouts of a group show skills (paired validation, internalization).
2. ``collect`` steps every episode with one batched generation per turn.
3. GRPO / GiGPO / RLOO advantages over all steps of the batch (skill rollouts included, so the plain
   and skill rollouts of a group share their statistics).
4. Update: PPO clipped token loss on plain-prompt steps + ``kl_coef`` * KL to the reference policy
   (- entropy bonus), plus ``lambda(k)`` * internalization loss on weighted skill steps (SIRI), with
   micro-batches whose gradients add up exactly to the full-batch gradient.
5. Metrics to metrics.jsonl/TensorBoard; evaluation on fixed eval seeds every ``eval_every``;
   checkpoint every ``save_every``.

Scale-out (docs/scale-out.md): ``env.workers=ray`` steps the environments in Ray actors
(``siri.envs.ray_workers``); under ``torchrun`` each rank collects its own groups and back-propagates
their steps, with one gradient all-reduce per optimizer step (``siri.rl.distributed``); and
``rollout.engine=vllm`` generates with vLLM, whose weights are pushed after every update.

Everything random in an iteration is seeded from ``(train.seed, iteration)``, and a checkpoint holds
the trainable weights, the optimizer and the pipeline state, so ``resume`` reproduces an
uninterrupted run exactly.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from siri.config import TrainConfig
from siri.envs import split_seed
from siri.rl.advantages import compute_gigpo, compute_grpo, compute_rloo
from siri.rl.distributed import Dist, rank_device
from siri.rl.distributed import setup as setup_distributed
from siri.rl.run import RunDir, RunDirError
from siri.rollout.collector import EpisodeSpec, RolloutConfig, collect, summarize
from siri.rollout.types import StepRecord, Trajectory

Progress = Callable[[dict[str, Any]], None]


def iteration_seed(seed: int, iteration: int, stream: int) -> int:
    """A deterministic 31-bit seed for one random stream of one iteration (0: tasks, 1: sampling, 2: update)."""
    return int(np.random.default_rng([seed, iteration, stream]).integers(0, 2**31 - 1))


def episode_metrics(trajectories: Sequence[Trajectory], prefix: str) -> dict[str, float]:
    """``summarize`` as flat ``prefix/...`` keys for metrics.jsonl and TensorBoard."""
    if not trajectories:
        return {}
    s = summarize(trajectories)
    out = {f"{prefix}/success": s["success"], f"{prefix}/score": s["score"], f"{prefix}/return": s["return"],
           f"{prefix}/episode_len": s["mean_steps"], f"{prefix}/invalid_rate": s["invalid_rate"],
           f"{prefix}/episodes": float(s["episodes"])}
    for task_type, per in s["per_task_type"].items():
        out[f"{prefix}/success/{task_type}"] = per["success"]
        out[f"{prefix}/score/{task_type}"] = per["score"]
    return out


def eval_summary(metrics: dict[str, float], prefix: str, iteration: int,
                 outcomes: list[tuple[str, bool, float]] | None = None) -> dict[str, Any]:
    """The compact form of an evaluation stored in summary.json and printed in tables.

    ``outcomes`` (task type, won, score) per episode let the benchmarks bootstrap confidence
    intervals over episodes.
    """
    per_type = {k.split("/", 2)[2]: v for k, v in metrics.items() if k.startswith(f"{prefix}/success/")}
    return {
        "iteration": iteration,
        "success": metrics.get(f"{prefix}/success", float("nan")),
        "score": metrics.get(f"{prefix}/score", float("nan")),
        "invalid_rate": metrics.get(f"{prefix}/invalid_rate", float("nan")),
        "episode_len": metrics.get(f"{prefix}/episode_len", float("nan")),
        "episodes": int(metrics.get(f"{prefix}/episodes", 0)),
        "per_task_type": per_type,
        **({"outcomes": outcomes} if outcomes is not None else {}),
    }


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

    def __init__(self, cfg: TrainConfig, run: RunDir, policy: Any, start_iteration: int = 0,
                 dist: Dist | None = None, resume: bool = False) -> None:
        import torch

        self.cfg = cfg
        self.run = run
        self.policy = policy
        self.iteration = start_iteration
        self.dist = dist or Dist()
        self.params = [p for p in policy.model.parameters() if p.requires_grad]
        self.dist.sync_params(self.params)  # every rank starts from rank 0's weights (e.g. LoRA's random init)
        self.optimizer = torch.optim.AdamW(
            self.params, lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay, betas=tuple(cfg.optim.betas)
        )
        self.env_options = {"split": cfg.env.split, "max_steps": cfg.env.max_steps, **cfg.env.options}
        self.eval_options = {**self.env_options, "split": cfg.env.eval_split}
        self.train_split_size = _split_size(cfg.env.name, self.env_options)  # None: every seed is a new task
        self.eval_split_size = _split_size(cfg.env.name, self.eval_options)
        self.mode = cfg.model.action_mode
        self.summary: dict[str, Any] = {"evals": {}}
        self.last_outcomes: list[tuple[str, bool, float]] | None = None
        self.siri: Any = None
        if cfg.siri.enabled:
            from siri.skills.pipeline import SiriPipeline

            # Rank 0 reads and writes the bank and mines; the other ranks receive its bank.
            self.siri = SiriPipeline(cfg, run.path, resume=resume, is_main=self.dist.is_main,
                                     broadcast=self.dist.broadcast)
        self.engine = make_engine(cfg, policy, self.dist)
        self._env_batches: dict[tuple[str, int], Any] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def create(cls, cfg: TrainConfig, run_dir: str | Path | None = None, preset: str = "run") -> Trainer:
        from siri.models.loading import load_policy

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
        return cls(cfg, run, policy, dist=dist)

    @classmethod
    def resume(cls, run_dir: str | Path, overrides: Sequence[str] = ()) -> Trainer:
        """Continue ``run_dir`` from its latest checkpoint (or from scratch if it has none yet)."""
        import torch

        from siri.models.loading import load_policy

        run = RunDir.open(run_dir)
        cfg = TrainConfig.load(run.path / "config.yaml", overrides)
        dist = setup_distributed(cfg.train.device)
        seed_everything(cfg.train.seed)
        policy = _load_policy(cfg, load_policy, dist)
        checkpoint = run.latest_checkpoint()
        if checkpoint is None:
            if dist.is_main:
                run.truncate_metrics(-1)
            return cls(cfg, run, policy, dist=dist, resume=True)
        weights = run.load_checkpoint(checkpoint, "model")
        missing = _load_trainable(policy.model, weights)
        if missing:
            raise RunDirError(f"{checkpoint}/model.pt does not match the model of {run.path}: missing {missing[:5]}")
        start = int(run.load_checkpoint(checkpoint, "iteration")["iteration"])
        trainer = cls(cfg, run, policy, start_iteration=start, dist=dist, resume=True)
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
    def train(self, progress: Progress | None = None) -> dict[str, Any]:
        """Run the remaining iterations, evaluate at the end, write summary.json; return the summary."""
        cfg = self.cfg
        if self.iteration == 0 and "bootstrap" not in self.summary["evals"]:
            bootstrap = self.evaluate()
            if self.dist.is_main:
                self.run.log({"iteration": 0, "phase": "bootstrap", **bootstrap})
            self.summary["evals"]["bootstrap"] = eval_summary(bootstrap, "eval", 0, self.last_outcomes)
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
        self.finish()
        return self.summary

    def step(self) -> dict[str, Any]:
        """One training iteration (collect, advantages, update, metrics); returns its metrics record."""
        cfg, it = self.cfg, self.iteration
        start = time.time()
        phase = self.siri.phase if self.siri is not None else cfg.algo.name
        rng = np.random.default_rng(iteration_seed(cfg.train.seed, it, 0))
        # A finite split (shop goals, ALFWorld game folders) takes the drawn seed modulo its size.
        group_seeds = [split_seed(int(s), self.train_split_size)
                       for s in rng.integers(0, 2**31 - 1, size=cfg.rollout.num_groups)]
        if self.siri is not None:
            specs = self.siri.plan(it, group_seeds, cfg.rollout.group_size)
        else:
            specs = [EpisodeSpec(group=g, seed=s) for g, s in enumerate(group_seeds) for _ in range(cfg.rollout.group_size)]
        rollout = RolloutConfig(
            mode=self.mode, temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p,
            max_new_tokens=cfg.rollout.max_new_tokens, history_len=cfg.rollout.history,
            invalid_penalty=cfg.rollout.invalid_penalty, seed=iteration_seed(cfg.train.seed, it, 1),
        )
        trajectories = self._collect(specs, rollout, self.env_options)
        failed = [t for t in trajectories if t.failed]
        trajectories = [t for t in trajectories if not t.failed]  # lost with a worker: not trained on
        records = [s for t in trajectories for s in t.steps]
        advantages = compute_advantages(records, cfg)

        plain = [i for i, r in enumerate(records) if not r.uses_skills]
        internalize: list[tuple[int, float]] = []
        lam = 0.0
        if self.siri is not None:
            self.siri.observe(it, trajectories, self.policy)
            internalize, lam = self.siri.internalization(it, records, advantages)
        update_stats = self.update(records, advantages, plain, internalize, lam, iteration_seed(cfg.train.seed, it, 2))
        sync = getattr(self.engine, "sync", None)
        if sync is not None:
            sync(self.policy)  # e.g. push the new weights into vLLM

        plain_trajs = [t for t in trajectories if not t.uses_skills]
        record: dict[str, Any] = {"iteration": it + 1, "phase": phase, **episode_metrics(plain_trajs, "train")}
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
        every = cfg.train.eval_every
        warmup_just_ended = self.siri is not None and self.siri.warmup_ended_at == self.iteration
        if (every and self.iteration % every == 0) or self.iteration == cfg.train.iterations or warmup_just_ended:
            record.update(self.evaluate())
            if warmup_just_ended:
                self.summary["evals"]["warmup_end"] = eval_summary(record, "eval", self.iteration, self.last_outcomes)
                self._save_summary()
        record["time/iteration_s"] = time.time() - start
        if self.dist.is_main:
            self.run.log(record)
        return record

    def update(
        self,
        records: Sequence[StepRecord],
        advantages: np.ndarray,
        plain: Sequence[int],
        internalize: Sequence[tuple[int, float]],
        lam: float,
        seed: int,
    ) -> dict[str, float]:
        """PPO epochs over the batch: policy loss on ``plain`` steps, ``lam`` * L_int on ``internalize``.

        ``internalize`` lists (record index, weight w) of skill steps whose action tokens are distilled
        under the plain prompt. Every loss is normalized over the whole batch, so micro-batching only
        changes memory, never the gradient.
        """
        import torch

        from siri.rl.losses import actor_loss
        from siri.rollout.scoring import response_logprobs
        from siri.skills.internalize import internalization_loss

        cfg = self.cfg
        model = self.policy.model
        pad = self.policy.pad_id
        temperature = cfg.rollout.temperature if cfg.rollout.temperature > 0 else 1.0
        mb_size = cfg.optim.micro_batch_size
        policy_records = [records[i] for i in plain]
        policy_adv = [float(advantages[i]) for i in plain]
        int_records = [records[i] for i, _ in internalize]
        if cfg.siri.distill_context == "action" and self.mode == "generate":
            from siri.skills.internalize import without_reasoning

            int_records = [without_reasoning(r, self.policy.tokenizer) for r in int_records]
        int_weights = [w for _, w in internalize]
        if not policy_records and not int_records:
            return {}
        # Under torchrun each rank scores and back-propagates only its own groups' steps; normalizers
        # and mini-batches are those of the whole batch, so the summed gradient is the single-process one.
        own_p = [self.dist.owns(r.group) for r in policy_records]
        own_i = [self.dist.owns(r.group) for r in int_records]
        # A step with advantage 0 has a policy loss of exactly 0 whatever its log-probs, so with no KL or
        # entropy term its forward/backward would add only zeros to the gradient: skip it, keep its tokens
        # in the normalizer. Sparse rewards make whole groups fail together, so this is often most steps.
        skip_zero = cfg.optim.skip_zero_advantage and cfg.algo.kl_coef == 0 and cfg.algo.entropy_coef == 0
        scored_p = [own and not (skip_zero and a == 0.0) for own, a in zip(own_p, policy_adv, strict=True)]
        # Old log-probs: with one optimizer step per batch the update starts at the sampling policy, so
        # old = logp.detach() is exact and saves a forward pass; otherwise score before the first step.
        on_policy = cfg.optim.ppo_epochs * cfg.optim.mini_batches == 1
        old = [] if on_policy else _score_owned(model, policy_records, scored_p, pad_id=pad, temperature=temperature,
                                                micro_batch=mb_size)
        ref: list[list[float]] = []
        if cfg.algo.kl_coef > 0 and policy_records:
            with self.policy.reference() as reference:
                ref = _score_owned(reference, policy_records, own_p, pad_id=pad, temperature=temperature,
                                   micro_batch=mb_size)

        rng = np.random.default_rng(seed)
        stats: dict[str, list[float]] = defaultdict(list)
        model.train()
        n_policy, n_int = len(policy_records), len(int_records)
        for _epoch in range(cfg.optim.ppo_epochs):
            order_p = rng.permutation(n_policy)
            order_i = rng.permutation(n_int)
            for mb in range(cfg.optim.mini_batches):
                pidx = order_p[mb::cfg.optim.mini_batches]
                iidx = order_i[mb::cfg.optim.mini_batches]
                self.optimizer.zero_grad(set_to_none=True)
                p_norm = _normalizer([policy_records[i] for i in pidx], cfg.algo.agg)
                i_norm = max(1.0, float(sum(_int_mask_len(int_records[i], cfg) for i in iidx if int_weights[i] > 0)))
                owned = [i for i in pidx if own_p[i]]
                live = [i for i in owned if scored_p[i]]
                stats["scored_steps"].append(float(len(live)))
                if owned and not live:
                    stats["loss/policy"].append(0.0)  # every step skipped: the loss is exactly 0
                for chunk in _chunks(_by_length(live, policy_records), mb_size):
                    batch = [policy_records[i] for i in chunk]
                    logp, mask, entropy = response_logprobs(model, batch, pad_id=pad, temperature=temperature,
                                                            with_entropy=cfg.algo.entropy_coef > 0)
                    old_t = logp.detach() if on_policy else _pad([old[i] for i in chunk], logp.shape[1])
                    ref_t = _pad([ref[i] for i in chunk], logp.shape[1]) if ref else None
                    adv_t = torch.tensor([policy_adv[i] for i in chunk], dtype=logp.dtype)
                    loss, s = actor_loss(logp, old_t, adv_t, mask, ref_logprobs=ref_t, kl_coef=cfg.algo.kl_coef,
                                         entropy=entropy, entropy_coef=cfg.algo.entropy_coef, clip_low=cfg.algo.clip,
                                         clip_high=cfg.algo.clip_high, agg=cfg.algo.agg, normalizer=p_norm)
                    loss.backward()
                    stats["loss/policy"].append(float(loss.detach()))
                    for key in ("clip_frac", "kl", "entropy", "approx_kl", "ratio_max"):
                        if key in s:
                            stats[key].append(s[key])
                if lam > 0:
                    # Internalization: the action tokens (default) or whole response (ablation) sampled
                    # under the skill prompt, scored under the plain prompt.
                    for chunk in _chunks(_by_length([i for i in iidx if own_i[i]], int_records), mb_size):
                        batch = [int_records[i] for i in chunk]
                        logp, rmask, _ = response_logprobs(model, batch, pad_id=pad, temperature=temperature, plain=True)
                        amask = _pad([[float(x) for x in r.action_mask] for r in batch], logp.shape[1])
                        mask = rmask if not cfg.siri.action_tokens_only else amask * rmask
                        weights = torch.tensor([int_weights[i] for i in chunk], dtype=logp.dtype)
                        loss = internalization_loss(logp, mask, weights, normalizer=i_norm)
                        (lam * loss).backward()
                        stats["loss/int"].append(float(loss.detach()))
                if len(live) < len(owned):
                    # The skipped steps' gradient: zeros, not None, so that AdamW steps exactly as it would
                    # have (momentum and weight decay act on zero gradients, but skip None ones).
                    for param in self.params:
                        if param.grad is None:
                            param.grad = torch.zeros_like(param)
                self.dist.all_reduce_grads(self.params)
                if cfg.optim.grad_clip > 0:
                    grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.optim.grad_clip)
                    stats["grad_norm"].append(float(grad_norm))
                self.optimizer.step()
        if self.dist.enabled:  # every rank's micro-batch stats, as if one process had run them all
            merged: dict[str, list[float]] = defaultdict(list)
            for part in self.dist.all_gather([dict(stats)]):
                for k, v in part.items():
                    merged[k].extend(v)
            stats = merged
        scored = float(np.sum(stats.pop("scored_steps", [])))
        out = {k: float(np.sum(v)) if k.startswith("loss/") else float(np.mean(v)) for k, v in stats.items()}
        # loss/* were summed over micro-batches (each is its share of the batch loss): report per mini-batch.
        for k in [k for k in out if k.startswith("loss/")]:
            out[k] /= cfg.optim.ppo_epochs * cfg.optim.mini_batches
        out["update/policy_steps"] = float(n_policy)
        out["update/scored_steps"] = scored  # policy steps run forward/backward (all ranks, all epochs)
        out["update/internalized_steps"] = float(sum(w > 0 for w in int_weights))
        return out

    # ------------------------------------------------------------------ evaluation and persistence
    def evaluate(self, with_skills: bool = False) -> dict[str, float]:
        """Plain-prompt evaluation on the fixed eval seeds 0..eval_episodes-1 (``with_skills``: ablation)."""
        cfg = self.cfg
        n = cfg.train.eval_episodes
        size = self.eval_split_size
        if size is not None:
            n = min(n, size)
        skills_for: Callable[[int], tuple[tuple[str, str], ...]] = lambda seed: ()  # noqa: E731
        if with_skills and self.siri is not None:
            skills_for = self.siri.inference_skills(cfg.env.name, self.eval_options)
        specs = [EpisodeSpec(group=i, seed=i, skills=skills_for(i)) for i in range(n)]
        rollout = RolloutConfig(
            mode=self.mode, temperature=cfg.train.eval_temperature, top_p=1.0,
            max_new_tokens=cfg.rollout.max_new_tokens, history_len=cfg.rollout.history,
            invalid_penalty=cfg.rollout.invalid_penalty, seed=iteration_seed(cfg.train.seed, 0, 3),
        )
        trajectories = [t for t in self._collect(specs, rollout, self.eval_options) if not t.failed]
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
        """Write a checkpoint (rank 0 only: other ranks hold identical state and return None)."""
        import torch

        if not self.dist.is_main:
            return None
        state = {"summary": self.summary, "torch_rng": torch.get_rng_state(),
                 "siri": self.siri.state() if self.siri is not None else None}
        files = {}
        if self.siri is not None:
            self.siri.save()
            files = self.siri.checkpoint_files()
        trainable = {n: p.detach().clone() for n, p in self.policy.model.named_parameters() if p.requires_grad}
        return self.run.save_checkpoint(
            self.iteration, {"model": trainable, "optimizer": self.optimizer.state_dict(), "trainer": state}, files
        )

    def finish(self) -> None:
        """Final evaluations, the trained policy under RUN_DIR/policy, summary.json."""
        metrics = self.run.metrics() if self.dist.is_main else []
        last = self.dist.broadcast(metrics[-1] if metrics else {})  # all ranks must agree to evaluate
        # Reuse the last iteration's evaluation unless it was lost with a kill (then evaluate again).
        final = last if "eval/success" in last and self.last_outcomes is not None else self.evaluate()
        self.summary["evals"]["final"] = eval_summary(final, "eval", self.iteration, self.last_outcomes)
        if self.siri is not None:
            if self.cfg.siri.keep_skills_at_inference:
                with_skills = self.evaluate(with_skills=True)
                self.summary["evals"]["final_with_skills"] = eval_summary(with_skills, "eval_skills", self.iteration,
                                                                         self.last_outcomes)
            self.summary["skills"] = self.siri.counts()
        self._save_summary()
        if self.dist.is_main:
            self.policy.save(self.run.path / "policy")
            self.run.close()
        self.close()

    def _save_summary(self) -> None:
        if self.dist.is_main:
            self.run.write_json("summary.json", self.summary)


# ---------------------------------------------------------------------- helpers
def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_engine(cfg: TrainConfig, policy: Any, dist: Dist) -> Any:
    """The generation engine of ``rollout.engine``: None (the collector's ``HFEngine``) or a ``VLLMEngine``."""
    if cfg.rollout.engine == "hf":
        return None
    if cfg.model.action_mode == "choose":
        raise ValueError("rollout.engine=vllm supports model.action_mode=generate only; choose mode "
                         "(trie-constrained decoding) runs with rollout.engine=hf")
    from siri.rollout.vllm_engine import VLLMEngine

    return VLLMEngine.from_policy(policy, world=dist.world, seed=cfg.train.seed, **cfg.rollout.vllm_options)


def _load_policy(cfg: TrainConfig, load_policy: Callable[..., Any], dist: Dist | None = None) -> Any:
    device = rank_device(dist or Dist(), cfg.train.device)
    policy = load_policy(
        cfg.model.name_or_path, env=cfg.env.name, lora=cfg.model.lora, lora_r=cfg.model.lora_r,
        lora_alpha=cfg.model.lora_alpha, lora_dropout=cfg.model.lora_dropout,
        dtype=cfg.model.dtype if cfg.model.dtype != "auto" else "float32",
        device=device, action_mode=cfg.model.action_mode, reference=cfg.algo.kl_coef > 0,
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


def _split_size(env_name: str, options: dict[str, Any]) -> int | None:
    from siri.envs import make

    return make(env_name, **options).split_size()


def _by_length(indices: Sequence[int], records: Sequence[StepRecord]) -> list[int]:
    """Indices ordered by sequence length, so that micro-batches pad little (the sum is order-free)."""
    return sorted(indices, key=lambda i: len(records[i].prompt_ids) + len(records[i].response_ids))


def _score_owned(model: Any, records: Sequence[StepRecord], owned: Sequence[bool], **kwargs: Any) -> list[list[float]]:
    """``score_records`` on the records this rank owns; ``[]`` stands in for the others."""
    from siri.rollout.scoring import score_records

    idx = _by_length([i for i, own in enumerate(owned) if own], records)
    scored = score_records(model, [records[i] for i in idx], **kwargs) if idx else []
    out: list[list[float]] = [[] for _ in records]
    for i, row in zip(idx, scored, strict=True):
        out[i] = row
    return out


def _chunks(indices: Sequence[int] | np.ndarray, size: int) -> list[list[int]]:
    idx = [int(i) for i in indices]
    return [idx[k : k + size] for k in range(0, len(idx), size)]


def _pad(rows: Sequence[Sequence[float]], width: int) -> Any:
    import torch

    out = torch.zeros(len(rows), width)
    for b, row in enumerate(rows):
        out[b, : len(row)] = torch.tensor(row[:width], dtype=out.dtype)
    return out


def _normalizer(batch: Sequence[StepRecord], agg: str) -> float:
    """The whole mini-batch's token count (token-mean) or sequence count, for exact gradient accumulation."""
    if agg == "token-mean":
        return max(1.0, float(sum(len(r.response_ids) for r in batch)))
    return max(1.0, float(len(batch)))


def _int_mask_len(record: StepRecord, cfg: TrainConfig) -> int:
    return sum(record.action_mask) if cfg.siri.action_tokens_only else len(record.response_ids)

