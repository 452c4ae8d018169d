"""The trainer's config schema: one documented dataclass per section, and the presets that ship with it.

Every key's type, default, help text and bounds are declared here; loading, ``key=value`` overrides,
strict checking and YAML output come from ``siri.utils.config``. Print every key with
``siri config`` (``TrainConfig.help_text()``).

    cfg = TrainConfig.load(preset_path("household-tiny-gigpo"), ["algo.gamma=0.9", "train.seed=3"])
"""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from siri.utils.config import Config, ConfigError, opt


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

    def __post_init__(self) -> None:
        both = sorted({"split", "max_steps"} & set(self.options))
        if both:
            raise ValueError(f"set {', '.join('env.' + k for k in both)} itself, not inside env.options")

    def options_for(self, split: str | None = None) -> dict[str, Any]:
        """The keyword options of ``siri.envs.make`` for ``split`` (default: the training split)."""
        return {"split": split or self.split, "max_steps": self.max_steps, **self.options}


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
    dynamic_sampling: bool = opt(
        False, "drop groups whose advantages are all zero (no policy-gradient signal: e.g. every GRPO rollout "
        "won, or every one failed) and sample new groups until num_groups informative ones are in the batch "
        "(DAPO; siri.rl.dynamic_sampling), at most max_sampling_rounds collections per iteration")
    max_sampling_rounds: int = opt(3, "dynamic_sampling: collections per iteration at most, the first included; "
                                   "a batch still short then is filled up with the first round's other groups",
                                   min=1)
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

    iterations: int = opt(100, "training iterations (collect -> advantages -> update)", min=1)
    eval_every: int = opt(10, "evaluate every this many iterations (0 = only at the end)", min=0)
    eval_episodes: int = opt(64, "episodes per evaluation, on fixed eval seeds", min=1)
    eval_temperature: float = opt(0.4, "sampling temperature for evaluation (the paper: 0.4; 0 = greedy)", min=0.0)
    seed: int = opt(0, "seed for sampling, task order and initialization (numpy rejects negative seeds; vLLM "
                    "passes it to numpy's 32-bit legacy seeding)", min=0, max=2**32 - 1)
    save_every: int = opt(10, "write a checkpoint every this many iterations (0 = only at the end)", min=0)
    keep_checkpoints: int = opt(2, "checkpoints kept in RUN_DIR/checkpoints, newest first (0 = all: e.g. to score "
                                "the internalization probe along a whole run with `siri probe`)", min=0)
    run_dir: str | None = opt(None, "run directory; None = runs/<preset>-<timestamp>")
    device: str = opt("auto", "'auto' (cuda if available, else cpu), 'cpu', 'cuda', 'cuda:1', 'mps'")
    strategy: Literal["replicate", "fsdp"] = opt(
        "replicate", "under torchrun: replicate (every rank holds the whole model and optimizer; one gradient "
        "all-reduce per optimizer step) or fsdp (FSDP2: weights, gradients and optimizer state sharded across "
        "ranks in the update, weights gathered for rollouts; sharded checkpoints; docs/scale-out.md). "
        "One process: both train the same")
    mixed_precision: bool = opt(False, "strategy=fsdp: compute in bfloat16 with float32 sharded master weights "
                                "and float32 gradient reduction (for GPUs; keep model.dtype=float32)")
    loggers: list[Literal["tensorboard", "wandb"]] = field(default_factory=lambda: ["tensorboard"], metadata={
        "help": "where metrics go besides RUN_DIR/metrics.jsonl (always written): tensorboard (events in RUN_DIR), "
                "wandb (Weights & Biases: pip install 'siri-rl[wandb]'; WANDB_MODE=offline needs no network)"})
    wandb_project: str = opt("siri", "loggers with wandb: the W&B project")
    wandb_entity: str | None = opt(None, "loggers with wandb: the W&B team or user (None: your default)")

    def __post_init__(self) -> None:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", self.device):
            raise ValueError(f"device must be one of auto, cpu, cuda, cuda:N, mps; got {self.device!r}")
        if self.mixed_precision and self.strategy != "fsdp":
            raise ValueError("train.mixed_precision=true is FSDP's mixed precision: it needs train.strategy=fsdp "
                             "(with replicate, set model.dtype=bfloat16 instead)")


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
    trace_style: Literal["sentences", "legacy"] = opt(
        "sentences", "miner=trace: how its skills read: sentences, or the wording of the studies published "
        "before 2026-11-28 (legacy)")
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
    placement_family: bool = opt(
        False, "validate, internalize and show the placement skills of each mining round ('WHEN you need a mug "
        "THEN look in ... first') as one candidate, shown in each task as its lines for the task's object (and "
        "lamp): alone, each fits too few tasks to be validated in a run. The miner is asked for K + 12 skills; "
        "the family takes one of the K places")
    utility: Literal["return", "discounted"] = opt(
        "return", "a rollout's outcome in paired validation: its return (a win counts alike however long it "
        "took), or its return discounted by algo.gamma per step (a skill that saves steps is worth more; "
        "pairs whose arms both win are then rarely exactly 0)")
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
    probe_every: int = opt(
        4, "measure the internalization gap every this many iterations and at the last one (0 = off): on the "
        "probe set, mean log-prob of the skill-guided action under the plain prompt minus under the skill "
        "prompt (metrics siri/int_gap, siri/int_logp_plain, siri/int_logp_skill; `siri probe` scores other "
        "runs' checkpoints on the same set)", min=0)
    probe_steps: int = opt(64, "size of the probe set: the first this many valid steps of active skills' rollouts, "
                           "kept in checkpoints and in RUN_DIR/probe.pt", min=1)

    removed_keys: typing.ClassVar[Mapping[str, str]] = {
        "confidence_z": (
            "its normal-z gate, re-tested after every evaluation, promoted skills with no effect up to 40% of "
            "the time; the gate is now a Student-t test with alpha spending over its looks, set by "
            "siri.gate_alpha (default 0.05; docs/skill-gate.md). There is no exact translation: delete the "
            "confidence_z line (a run resumed so continues with the new gate) and set siri.gate_alpha if wanted"
        ),
    }

    def __post_init__(self) -> None:
        # Whether this alpha leaves the gate a look at all is the gate's own rule: SiriPipeline.check_config.
        if self.max_evals < self.min_evals:
            raise ValueError(f"max_evals ({self.max_evals}) must be >= min_evals ({self.min_evals})")


@dataclass
class TrainConfig(Config):
    """Everything `siri train` needs; presets live in siri/presets/*.yaml (``preset_path``)."""

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
        if s.enabled and self.rollout.dynamic_sampling:
            raise ValueError("rollout.dynamic_sampling does not go with SIRI (siri.enabled=true): a paired validation "
                             "that came out 0 is a measurement the skill gate needs, not a group to drop")
        if s.enabled and self.rollout.group_size < 2:
            # A skill is validated by pairing skill and plain rollouts of one group: a group of 1 never pairs.
            raise ValueError(f"SIRI (siri.enabled=true) needs rollout.group_size >= 2 to pair skill and plain "
                             f"rollouts of the same task; got {self.rollout.group_size}")


PRESETS_DIR = Path(__file__).resolve().parent / "presets"  # shipped inside the package (wheel included)


def preset_path(name: str) -> Path:
    """The shipped preset ``<name>`` (``siri/presets/<name>.yaml``), or ``name`` itself if it is a YAML file."""
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    candidate = PRESETS_DIR / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    available = sorted(q.stem for q in PRESETS_DIR.glob("*.yaml")) if PRESETS_DIR.is_dir() else []
    raise ConfigError(f"no config file or preset named {name!r}; presets: {', '.join(available) or '(none found)'}")
