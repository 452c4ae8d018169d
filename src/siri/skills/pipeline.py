"""SIRI's three phases on top of the GiGPO trainer: warm-up -> mining + paired validation -> internalization.

The trainer asks this object three things each iteration:

- ``plan``: which rollouts of each group show a skill. During warm-up none do. Afterwards, in each
  group, ``validation_share`` of the rollouts show one skill of the group's task type that applies to its
  task (a placement skill, "WHEN you need a mug THEN ...", only where the task names a mug) and the rest
  are plain. A group serves either candidates (least evaluated first) or active skills: where its task type
  has both, ``active_share`` of such groups serve active ones. Every skill rollout is therefore paired
  with plain rollouts of the same initial state: candidates collect evidence for promotion, active
  skills keep being checked (and are retired if they stop helping) while their rollouts supply the
  internalization data.
- ``observe``: after collection, successful plain trajectories (won, or scoring at least
  ``mine_min_score`` when set) enter the experience buffer, paired
  utilities are recorded and statuses updated (promote on LCB > threshold, retire on UCB <= 0), the
  warm-up ends once the buffer holds ``n_req_successes`` (or after ``warmup_max_iters``), and every
  ``mine_every`` iterations the miner (by default the policy itself, frozen for the call) writes
  candidate skills from the buffer.
- ``internalization``: which skill steps to distil under the plain prompt, with weights
  ``w = 1[skill active] * 1[action valid] * 1[U > 0] * clip(A, 0, c)`` and ``lambda(k)`` ramping from
  the first iteration that had an active skill (``lambda_max / lambda_ramp_iters`` in that iteration,
  ``lambda_max`` from ``lambda_ramp_iters`` iterations on).

Two measurements of the mechanism come with every run: the paired validations' share of exact zeros and
mean utility, per iteration and cumulative (``paired_metrics``), and the probe set of the first skill steps
(``siri.skills.probe``) on which the trainer measures the internalization gap.

Skills are one per rollout, which keeps prompts short (small models have short contexts) and makes
every skill rollout a clean paired evaluation of exactly one skill.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from siri.config import SiriSection, TrainConfig
from siri.envs import make
from siri.models.policy import Policy
from siri.rollout.collector import EpisodeSpec
from siri.rollout.types import StepRecord, Trajectory
from siri.skills.bank import (
    BANK_FILENAME,
    GENERAL,
    START_BANK_FILENAME,
    SkillBank,
    is_placement_line,
    placement_family,
    shown_skill,
    skill_applies,
)
from siri.skills.internalize import lambda_schedule, step_weights
from siri.skills.miners import Miner, make_miner
from siri.skills.probe import PROBE_FILENAME, extend_probe, save_probe, tokenizer_digest
from siri.skills.prompts import is_success
from siri.skills.validation import (
    ACTIVE,
    CANDIDATE,
    RETIRED,
    Gate,
    assign_validation,
    discounted_return,
    trajectory_return,
)
from siri.utils.config import ConfigError
from siri.utils.seeds import Stream, stream_rng

FAMILY_LINES = 12  # siri.placement_family: placement skills asked of the miner beyond K, at most
BUFFER_PER_TYPE = 64  # successful plain trajectories kept per task type (newest first out)
ZERO_DIFF = 1e-9  # a paired difference this small is 0: equal returns up to float rounding of the two means


def _lightweight(traj: Trajectory) -> Trajectory:
    """A copy without token ids: the buffer only needs actions and observations for mining."""
    light = copy.copy(traj)
    light.steps = [
        dataclasses.replace(s, prompt_ids=[], response_ids=[], old_logprobs=[], action_mask=[],
                            plain_prompt_ids=None, choices=None)
        for s in traj.steps
    ]
    return light


def policy_text_generator(policy: Policy, max_new_tokens: int = 96) -> Callable[[list[list[dict[str, str]]]], list[str]]:
    """``generate_text`` for the self miner: greedy chat completions from the policy as it is now.

    The weights are not touched (no gradient, eval mode), so the call sees a frozen snapshot of the
    current policy; with LoRA the current adapters are on.
    """
    from siri.rollout.engine import HFEngine
    from siri.rollout.prompts import chat_ids

    def generate_text(batch: list[list[dict[str, str]]]) -> list[str]:
        tok = policy.tokenizer
        prompts = [chat_ids(tok, m) for m in batch]  # tokenized exactly as the tiny model's mining lessons
        model = policy.model
        was_training = model.training
        model.eval()
        try:
            gens = HFEngine(model, tok).generate(prompts, temperature=0.0, max_new_tokens=max_new_tokens, seed=0)
        finally:
            model.train(was_training)
        return [tok.decode(g.response_ids, skip_special_tokens=True) for g in gens]

    return generate_text


def bank_skills_by_seed(bank: SkillBank, env_name: str, env_options: dict[str, Any],
                        top_k: int = 1) -> Callable[[int], tuple[tuple[str, str], ...]]:
    """``seed -> ((skill id, text), ...)``: the best ``top_k`` active skills of that seed's task type that apply
    to its task (``skill_applies``).

    The task type comes from resetting a probe environment to the seed, so specs can carry their skills
    before any episode runs (evaluation with skills, ``siri eval --skills-from``).
    """
    probe = make(env_name, **env_options)

    def skills_for(seed: int) -> tuple[tuple[str, str], ...]:
        obs = probe.reset(seed)
        return tuple(item for s in bank.select(obs.task_type, top_k=top_k, task=obs.task)
                     for item in shown_skill(s.id, s.text, obs.task))

    return skills_for


def gate_of(s: SiriSection) -> Gate:
    """The validation rule that a run's ``siri`` settings describe."""
    return Gate(alpha=s.gate_alpha, min_evals=s.min_evals, max_evals=s.max_evals, promote_lcb=s.promote_lcb,
                retire_ucb=s.retire_ucb, enabled=s.validation_gate)


class SiriPipeline:
    """The SIRI state machine of one run (phase, experience buffer, skill bank, schedules).

    The bank a run starts from is ``RUN_DIR/skill_bank.json`` if one is there when the run is created
    (a bank carried over from another run), else empty; it is kept as ``skill_bank.start.json``, so a
    resumed run (``resume=True``) killed before its first checkpoint restarts from the same bank, not
    from the one its first iterations wrote; with a checkpoint, ``load_state`` then takes the
    checkpoint's bank.

    Under ``torchrun`` (``is_main``/``broadcast`` from ``siri.rl.distributed.Dist``) only rank 0 reads
    and writes files and runs the miner; the other ranks receive rank 0's bank, so every rank plans the
    same skill rollouts even when the miner samples. Everything else (buffer, utilities, statuses) is
    computed on every rank from the same gathered trajectories.
    """

    def __init__(self, cfg: TrainConfig, run_path: str | Path, *, resume: bool = False, is_main: bool = True,
                 broadcast: Callable[[Any], Any] | None = None) -> None:
        self.cfg = cfg
        self.s = cfg.siri
        self.run_path = Path(run_path)
        self.is_main = is_main
        self.gate = gate_of(self.s)
        self._broadcast = broadcast or (lambda obj: obj)
        bank = None
        if is_main:
            bank = self._start_bank(resume)
        self.bank = self._shared(bank)
        self.phase = "warmup" if self.s.warmup else "skills"
        self.warmup_ended_at: int | None = None if self.s.warmup else 0
        self.internalization_from: int | None = None
        self.last_mined: int | None = None
        self.buffer: dict[str, list[Trajectory]] = defaultdict(list)
        self.successes = 0
        self.mined_total = 0
        self._tasks: dict[int, tuple[str, str]] = {}  # seed -> (task type, task text)
        self._probe = make(cfg.env.name, **cfg.env.options_for())
        self._miner: Miner | None = None
        # The internalization probe (siri.skills.probe): the run's first active-skill steps, scored by the trainer.
        self.probe_set: list[dict[str, Any]] = []  # not self._probe: that is the environment for task types
        self._probe_meta: dict[str, Any] | None = None
        # Paired validations: this iteration's differences, and running (count, exact zeros, sum) of the run.
        self._paired_now: list[float] = []
        self.paired = {"n": 0, "zeros": 0, "sum": 0.0}

    @staticmethod
    def check_config(cfg: TrainConfig) -> None:
        """Settings that only the pipeline can judge, checked before a run starts (``Trainer.create``)."""
        try:
            gate_of(cfg.siri)  # its error says which max_evals would do
        except ValueError as e:
            raise ConfigError(f"siri.gate_alpha / siri.min_evals / siri.max_evals: {e}") from None

    def _start_bank(self, resume: bool) -> SkillBank:
        """Rank 0: the bank this run starts from (see the class docstring); recorded on a fresh start."""
        start = self.run_path / START_BANK_FILENAME
        options = self._bank_options()
        if resume:  # the start bank, never the one the killed run's iterations wrote
            bank = SkillBank.load(start, **options) if start.exists() else SkillBank(**options)
            bank.path = self.run_path / BANK_FILENAME
        else:
            bank = SkillBank.open(self.run_path, **options)
            bank.save(start)
        bank.save()
        return bank

    def _bank_options(self) -> dict[str, Any]:
        """This run's cap and gate, so banks rank active skills by the run's own bounds from the start."""
        return {"max_active": self.s.max_active_per_type, "gate": self.gate}

    def _shared(self, bank: SkillBank | None) -> SkillBank:
        """Rank 0's ``bank`` on every rank (other ranks keep it in memory only: rank 0 writes the files)."""
        raw = self._broadcast(bank.to_json() if self.is_main and bank is not None else None)
        if self.is_main and bank is not None:
            return bank
        return SkillBank.from_json(raw, None, source="the skill bank broadcast by rank 0",
                                   **self._bank_options())

    def outcome(self, traj: Trajectory) -> float:
        """A rollout's outcome for paired validation (``siri.utility``)."""
        if self.s.utility == "discounted":
            return discounted_return(traj, self.cfg.algo.gamma)
        return trajectory_return(traj)

    # ------------------------------------------------------------------ planning
    def task_of(self, seed: int) -> tuple[str, str]:
        """(task type, task text) of a seed's episode."""
        if seed not in self._tasks:
            obs = self._probe.reset(seed)
            self._tasks[seed] = (obs.task_type, obs.task)
        return self._tasks[seed]

    def task_type_of(self, seed: int) -> str:
        return self.task_of(seed)[0]

    def plan(self, iteration: int, group_seeds: Sequence[int], group_size: int) -> list[EpisodeSpec]:
        """Episode specs for this iteration: plain during warm-up, paired skill/plain afterwards."""
        if self.phase == "warmup" or not len(self.bank):
            return [EpisodeSpec(group=g, seed=s) for g, s in enumerate(group_seeds) for _ in range(group_size)]
        types, tasks = zip(*(self.task_of(s) for s in group_seeds), strict=True)
        kinds = self.bank.task_types()
        candidates = self.bank.validation_queue()
        active = [s.id for s in self.bank.skills(ACTIVE)]

        def fits(group: int, skill_id: str) -> bool:  # a placement skill fits tasks that name its object
            return skill_applies(self.bank.get(skill_id).text, tasks[group])

        def has_skill_for(pool: list[str], group: int) -> bool:
            return any(kinds[k] in (types[group], GENERAL) and fits(group, k) for k in pool)

        # Each group serves either candidates (validation) or active skills (internalization data, and the
        # check that keeps them honest); ``active_share`` of the groups that could do both serve active ones.
        draws = stream_rng(self.cfg.train.seed, iteration, Stream.SKILL_SERVICE).random(len(group_seeds))
        serves_active = [has_skill_for(active, g) and (not has_skill_for(candidates, g) or d < self.s.active_share)
                         for g, d in enumerate(draws)]
        seed = int(stream_rng(self.cfg.train.seed, iteration, Stream.VALIDATION_PLAN).integers(2**31))
        plans = {
            flag: assign_validation(
                [group_size if sa == flag else 0 for sa in serves_active], queue,
                share=self.s.validation_share, seed=seed, per_group=1, group_types=list(types),
                candidate_types=kinds, applies=fits)
            for flag, queue in ((False, candidates), (True, active))
        }
        specs = []
        for g, seed in enumerate(group_seeds):
            for skill_id in plans[serves_active[g]][g]:
                skills = () if skill_id is None else shown_skill(skill_id, self.bank.get(skill_id).text, tasks[g])
                specs.append(EpisodeSpec(group=g, seed=seed, skills=skills))
        return specs

    # ------------------------------------------------------------------ after collection
    def observe(self, iteration: int, trajectories: Sequence[Trajectory], policy: Policy) -> list[tuple[str, str, str, str]]:
        """Buffer successes, record paired utilities, update statuses, end warm-up, mine. Returns status changes."""
        for t in trajectories:
            if is_success(t, self.s.mine_min_score) and not t.uses_skills:
                bucket = self.buffer[t.task_type]
                bucket.append(_lightweight(t))
                del bucket[:-BUFFER_PER_TYPE]
                self.successes += 1
        recorded = self.bank.record_rollouts(trajectories, iteration, value=self.outcome)
        self._count_paired([d for diffs in recorded.values() for d in diffs])
        self._collect_probe(iteration, trajectories, policy)
        changes = self.update_status(iteration)
        done = iteration + 1
        if self.phase == "warmup" and (self.successes >= self.s.n_req_successes or done >= self.s.warmup_max_iters):
            self.phase = "skills"
            self.warmup_ended_at = done
        if self.phase == "skills" and any(self.buffer.values()) and (
            self.last_mined is None or done - self.last_mined >= self.s.mine_every
        ):
            self.mine(done, policy)
            changes += self.update_status(done)
        if self.internalization_from is None and self.bank.skills(ACTIVE):
            self.internalization_from = done
        self.save()
        return changes

    def update_status(self, iteration: int) -> list[tuple[str, str, str, str]]:
        """Promote/retire skills by their paired utility with this run's validation settings."""
        return self.bank.update_status(iteration, self.gate)

    def _count_paired(self, diffs: list[float]) -> None:
        """Keep this iteration's paired differences and the run's running totals (what the metrics report)."""
        self._paired_now = list(diffs)
        self.paired["n"] += len(diffs)
        self.paired["zeros"] += sum(abs(d) <= ZERO_DIFF for d in diffs)
        self.paired["sum"] += float(sum(diffs))

    def _collect_probe(self, iteration: int, trajectories: Sequence[Trajectory], policy: Policy | None) -> None:
        """Fill the probe set with the run's first valid steps of active skills (those served this iteration,
        before its statuses change); rank 0 writes RUN_DIR/probe.pt as it grows."""
        if self.s.probe_every <= 0 or len(self.probe_set) >= self.s.probe_steps:
            return
        active = {s.id for s in self.bank.skills(ACTIVE)}
        if not extend_probe(self.probe_set, trajectories, iteration, self.s.probe_steps, active):
            return
        if self._probe_meta is None:
            tokenizer = getattr(policy, "tokenizer", None)
            self._probe_meta = {
                "run": str(self.run_path), "env": self.cfg.env.name, "model": self.cfg.model.name_or_path,
                "action_mode": self.cfg.model.action_mode, "first_iteration": iteration,
                "tokenizer": tokenizer_digest(tokenizer) if tokenizer is not None else None}
        self._save_probe()

    def _save_probe(self) -> None:
        if self.is_main and self.probe_set and self._probe_meta is not None:
            save_probe(self.run_path / PROBE_FILENAME, self.probe_set, self._probe_meta)

    def miner(self, policy: Policy) -> Miner:
        if self._miner is None:
            name = self.s.miner
            if name == "self":
                self._miner = make_miner("self", generate_text=policy_text_generator(policy),
                                         min_score=self.s.mine_min_score)
            elif name == "external":  # TrainConfig refuses it at load without miner_url and miner_model
                self._miner = make_miner("external", base_url=self.s.miner_url, model=self.s.miner_model,
                                         api_key_env=self.s.miner_api_key_env, min_score=self.s.mine_min_score)
            else:
                style = {"style": self.s.trace_style} if name == "trace" else {}
                self._miner = make_miner(name, env=self.cfg.env.name, min_score=self.s.mine_min_score, **style)
        return self._miner

    def mine(self, iteration: int, policy: Policy) -> int:
        """Every task type with successes: the newest M of them -> up to K candidates. Returns how many were added.

        Rank 0 mines; every rank then holds rank 0's bank (a sampling miner would write other texts elsewhere).
        """
        added = 0
        if self.is_main:
            miner = self.miner(policy)
            for task_type in sorted(self.buffer):
                recent = self.buffer[task_type][-self.s.mine_trajectories :]
                if not recent:
                    continue
                k = self.s.max_skills_per_mine
                if self.s.placement_family:  # every placement skill the miner has, as one candidate, and K-1 others
                    texts = miner.mine(task_type, recent, k + FAMILY_LINES)
                    family = placement_family(texts)
                    others = [t for t in texts if not is_placement_line(t)]
                    texts = [*others[: k - 1], family] if family is not None else others[:k]
                else:
                    texts = miner.mine(task_type, recent, k)
                new = self.bank.add_candidates(texts, task_type, iteration, miner.name,
                                               sources=[t.traj for t in recent])
                added += len(new)
        added = int(self._broadcast(added))
        self.bank = self._shared(self.bank)
        self.mined_total += added
        self.last_mined = iteration
        return added

    # ------------------------------------------------------------------ internalization
    def internalization(self, iteration: int, records: Sequence[StepRecord], advantages: np.ndarray
                        ) -> tuple[list[tuple[int, float]], float]:
        """(record index, weight) of the skill steps to distil, and lambda(k) for this iteration."""
        if self.internalization_from is None:
            return [], 0.0
        lam = lambda_schedule(iteration, self.internalization_from, self.s.lambda_ramp_iters, self.s.lambda_max)
        # Invalid actions (bad format, not admissible) are never distilled, whatever their advantage.
        idx = [i for i, r in enumerate(records)
               if r.skill_ids and r.valid and all(self.bank.get(s).status == ACTIVE for s in r.skill_ids)]
        if not idx or lam <= 0:
            return [], lam
        utilities = {s: self.bank.utility(s) for i in idx for s in records[i].skill_ids}
        weights = step_weights([records[i] for i in idx], [float(advantages[i]) for i in idx], utilities,
                               clip_c=self.s.adv_clip, mode=self.s.weighting)
        return [(i, float(w)) for i, w in zip(idx, weights.tolist(), strict=True) if w > 0], lam

    def inference_skills(self, env_name: str, env_options: dict[str, Any]) -> Callable[[int], tuple[tuple[str, str], ...]]:
        """For the with-skills evaluation (SkillRL-style ablation): the best active skill of each task's type."""
        return bank_skills_by_seed(self.bank, env_name, env_options, top_k=1)

    # ------------------------------------------------------------------ reporting and persistence
    def counts(self) -> dict[str, int]:
        return {status: len(self.bank.skills(status)) for status in (ACTIVE, CANDIDATE, RETIRED)}

    def metrics(self) -> dict[str, float]:
        counts = self.counts()
        active = self.bank.skills(ACTIVE)
        return {
            "skills/active": counts[ACTIVE], "skills/candidate": counts[CANDIDATE], "skills/retired": counts[RETIRED],
            "skills/mined_total": self.mined_total, "siri/buffer_successes": self.successes,
            "skills/active_utility_mean": float(np.mean([s.utility.mean for s in active])) if active else 0.0,
            **self.paired_metrics(),
        }

    def paired_metrics(self) -> dict[str, float]:
        """Paired validations of this iteration and of the run so far: how many, the share that came out 0
        (the skill changed nothing: ``|difference| <= ZERO_DIFF``) and their mean (the mean utility).
        Shares and means are left out while there is nothing to average."""
        out: dict[str, float] = {"skills/paired_evals": len(self._paired_now),
                                 "skills/paired_evals_cumulative": self.paired["n"]}
        now = self._paired_now
        if now:
            out["skills/paired_zero_share"] = sum(abs(d) <= ZERO_DIFF for d in now) / len(now)
            out["skills/paired_mean"] = float(sum(now) / len(now))
        n = self.paired["n"]
        if n:
            out["skills/paired_zero_share_cumulative"] = self.paired["zeros"] / n
            out["skills/paired_mean_cumulative"] = self.paired["sum"] / n
        return out

    def save(self) -> None:
        if self.is_main:
            self.bank.save()

    def checkpoint_files(self) -> dict[str, str]:
        import json

        return {BANK_FILENAME: json.dumps(self.bank.to_json(), indent=2, sort_keys=True) + "\n"}

    def state(self) -> dict[str, Any]:
        return {"phase": self.phase, "warmup_ended_at": self.warmup_ended_at, "last_mined": self.last_mined,
                "internalization_from": self.internalization_from, "buffer": dict(self.buffer),
                "successes": self.successes, "mined_total": self.mined_total, "paired": dict(self.paired),
                "probe": self.probe_set, "probe_meta": self._probe_meta}

    def load_state(self, state: dict[str, Any], checkpoint: Path) -> None:
        """Restore from a checkpoint: the bank comes from the checkpoint's copy (the run dir's may be newer)."""
        self.phase = state["phase"]
        self.warmup_ended_at = state["warmup_ended_at"]
        self.last_mined = state["last_mined"]
        self.internalization_from = state["internalization_from"]
        self.buffer = defaultdict(list, state["buffer"])
        self.successes = state["successes"]
        self.mined_total = state["mined_total"]
        bank = None
        if self.is_main:
            bank = SkillBank.load(checkpoint / BANK_FILENAME, **self._bank_options())
            bank.path = self.run_path / BANK_FILENAME
            bank.save()
        self.bank = self._shared(bank)
        # Checkpoints written before the probe and the paired totals existed: totals from the bank's evals
        # (a carried-over bank's included), and a probe collected from the next skill rollouts on.
        evals = [d for s in self.bank for _, d in s.evals]
        self.paired = dict(state.get("paired") or {"n": len(evals), "zeros": sum(abs(d) <= ZERO_DIFF for d in evals),
                                                    "sum": float(sum(evals))})
        self.probe_set = list(state.get("probe") or [])
        self._probe_meta = state.get("probe_meta")
        self._save_probe()  # RUN_DIR/probe.pt may hold steps the killed run collected after this checkpoint
