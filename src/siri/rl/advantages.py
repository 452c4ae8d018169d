"""Group-relative advantages for multi-step agents: GRPO, GiGPO and RLOO (pure numpy).

Every function takes the flat per-step arrays of a rollout batch, in any order:

- ``group``: episode group id (all trajectories of a group start from the same seed);
- ``traj``: trajectory id, unique within the batch; each trajectory lies in exactly one group;
- ``t``: step index in its trajectory; per trajectory the indices must be exactly ``0..L-1``;
- ``reward``: the step's reward, invalid-action penalties included (finite);
- ``anchor`` (GiGPO): a hashable per step naming the state the step's prompt was built from;

and returns one float64 advantage per step (the same value for every response token of that step).

Definitions (GiGPO, arXiv 2505.10978; DESIGN.md "GiGPO, exactly"):

- Episode return ``R_i = sum_t r_t`` (undiscounted, penalties included).
- Episode advantage ``A_E = (R_i - mean) / (std + eps)`` over the trajectories of the group
  (``norm="mean_std"``) or ``R_i - mean`` (``norm="mean"``).
- Discounted return ``G_t = r_t + gamma * G_{t+1}`` within a trajectory.
- Step group: steps of the same episode group with the same anchor. ``A_S`` normalizes ``G_t``
  within its step group the same way.
- ``A = A_E + omega * A_S``.

Statistics. ``std`` is the *sample* standard deviation (Bessel-corrected, ``ddof=1``), as in the
reference implementation (verl-agent ``gigpo/core_gigpo.py`` and verl's GRPO both call
``torch.std``, which is unbiased). Degenerate cases are defined, finite and never NaN:

- a group with one trajectory has ``A_E = 0`` (nothing to compare against; the reference instead
  leaves the raw score there, ``mean=0, std=1``, which rewards lone trajectories by their return);
- a singleton step group has ``A_S = 0`` (the reference agrees);
- all-equal values in a group give exactly 0: deviations are taken from one member of the group, so
  equal values cancel exactly instead of leaving rounding noise that ``/(std + eps)`` would blow up;
- zero std: the numerator is 0, and ``0 / (0 + eps) = 0``; ``eps = 0`` is allowed and gives 0 too.

``episode_stats`` chooses how the group statistics of ``A_E`` are weighted:

- ``"trajectory"`` (the paper, default): each trajectory counts once; ``n`` = trajectories.
- ``"step"`` (verl-agent's ``episode_norm_reward`` with its default
  ``compute_mean_std_cross_steps=True``): every *step* row contributes its trajectory's return, so a
  trajectory of length ``L`` weighs ``L`` times: ``mean = sum_i L_i R_i / sum_i L_i`` and
  ``std = sqrt(sum_i L_i (R_i - mean)^2 / (sum_i L_i - 1))``. Long (usually failed) trajectories pull
  the mean toward their return. Only the singleton case differs from the reference (see above: we
  give 0 when the group has one trajectory; the reference gives ``R`` only when the whole group is a
  single step and 0 otherwise, since then all its rows are equal).

Text-similarity step groups (``similarity=threshold``): for environments without a true state key.
Within each episode group, the distinct texts are visited in sorted order (so the result does not
depend on the order of the steps) and each joins the cluster whose representative (its first text)
is most similar, if that similarity is ``>= threshold``; otherwise it starts a new cluster. The
similarity is ``rapidfuzz.fuzz.ratio / 100``: the normalized Indel similarity
``1 - (insertions + deletions) / (len(a) + len(b))``, which is 1.0 exactly for equal strings. (The
reference uses ``difflib.SequenceMatcher.ratio`` and the *first* similar cluster in step order; the
two ratios agree on most texts but not all.)

Cost: O(N) numpy passes plus ``log2(max trajectory length)`` passes for the discounted returns; the
only Python-level loop is one dict pass to number arbitrary hashable anchors (skipped when anchors
are a numeric or string numpy array). ``benchmarks/bench_advantages.py``: 1M steps in ~0.17 s with
int anchors, ~0.3 s with str/tuple anchors on 2 shared CPU cores; GRPO ~0.02 s.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np

Norm = Literal["mean_std", "mean"]
EpisodeStats = Literal["trajectory", "step"]


@dataclass(frozen=True)
class Advantages:
    """Advantages and their parts, one entry per step in the input order (for training and logging).

    Attributes:
        total: ``A = A_E + omega * A_S``, what the loss uses.
        episode: ``A_E``.
        step: ``A_S`` (zeros for GRPO and RLOO).
        episode_return: ``R`` of the step's trajectory (undiscounted sum of step rewards).
        step_return: discounted return ``G_t`` (GiGPO; equals ``episode_return`` otherwise: unused).
        step_group: dense id of the step's step group (GiGPO; -1 otherwise).
        step_group_size: number of steps in that step group (GiGPO; 0 otherwise).
    """

    total: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    episode_return: np.ndarray
    step_return: np.ndarray
    step_group: np.ndarray
    step_group_size: np.ndarray

    def summary(self) -> dict[str, float]:
        """Scalar statistics for metrics.jsonl."""
        out = {
            "adv/mean": float(self.total.mean()) if self.total.size else 0.0,
            "adv/std": float(self.total.std()) if self.total.size else 0.0,
            "adv/episode_abs_mean": float(np.abs(self.episode).mean()) if self.total.size else 0.0,
            "adv/step_abs_mean": float(np.abs(self.step).mean()) if self.total.size else 0.0,
        }
        if self.total.size and (self.step_group >= 0).any():
            sizes = np.bincount(self.step_group)
            sizes = sizes[sizes > 0]
            out["adv/step_groups"] = float(sizes.size)
            out["adv/step_group_size_mean"] = float(sizes.mean())
            out["adv/step_singleton_frac"] = float((self.step_group_size == 1).mean())
        return out


# ----------------------------------------------------------------------------- input checks


def _dense_ids(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Map arbitrary ids to ``0..K-1`` (stable in sorted id order); cheap for small non-negative ints."""
    if x.dtype.kind in "iu" and x.size:
        lo, hi = int(x.min()), int(x.max())
        if lo >= 0 and hi < 4 * x.size + 1024:
            present = np.zeros(hi + 1, dtype=bool)
            present[x] = True
            remap = np.cumsum(present) - 1
            return remap[x].astype(np.int64, copy=False), int(present.sum())
    uniq, inverse = np.unique(x, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64, copy=False), int(uniq.size)


def _as_1d(name: str, x: Sequence | np.ndarray, n: int | None) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"'{name}' must be a flat per-step sequence, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"'{name}' has {arr.shape[0]} entries but 'group' has {n}; pass one per step")
    return arr


@dataclass(frozen=True)
class _Batch:
    """Validated, densely numbered view of the per-step arrays."""

    n: int
    group: np.ndarray  # dense group index per step
    traj: np.ndarray  # dense trajectory index per step
    t: np.ndarray  # step index per step (int64)
    reward: np.ndarray  # float64
    num_groups: int
    num_traj: int
    traj_group: np.ndarray  # group index of each trajectory
    traj_len: np.ndarray  # steps per trajectory
    traj_return: np.ndarray  # R per trajectory
    sorted_pos: np.ndarray  # position of each step when sorted by (traj, t)


def _prepare(group: Sequence | np.ndarray, traj: Sequence | np.ndarray, t: Sequence | np.ndarray,
             reward: Sequence | np.ndarray) -> _Batch:
    group_a = _as_1d("group", group, None)
    n = group_a.shape[0]
    traj_a = _as_1d("traj", traj, n)
    t_a = _as_1d("t", t, n)
    reward_a = _as_1d("reward", reward, n).astype(np.float64)
    if not np.isfinite(reward_a).all():
        bad = int(np.flatnonzero(~np.isfinite(reward_a))[0])
        raise ValueError(f"reward must be finite; step {bad} has reward {reward_a[bad]}")
    if n and t_a.dtype.kind not in "iu":
        if t_a.dtype.kind == "f" and np.all(t_a == np.round(t_a)):
            t_a = t_a.astype(np.int64)
        else:
            raise ValueError(f"'t' must hold integer step indices, got dtype {t_a.dtype}")
    t_a = t_a.astype(np.int64, copy=False)

    g_idx, num_groups = _dense_ids(group_a)
    tr_idx, num_traj = _dense_ids(traj_a)
    traj_group = np.zeros(num_traj, dtype=np.int64)
    traj_group[tr_idx] = g_idx
    if n and (traj_group[tr_idx] != g_idx).any():
        bad = int(np.flatnonzero(traj_group[tr_idx] != g_idx)[0])
        raise ValueError(
            f"trajectory {traj_a[bad]!r} appears in more than one group; every step of a trajectory "
            "must carry the same group id"
        )
    traj_len = np.bincount(tr_idx, minlength=num_traj)
    if n and ((t_a < 0) | (t_a >= traj_len[tr_idx])).any():
        bad = int(np.flatnonzero((t_a < 0) | (t_a >= traj_len[tr_idx]))[0])
        raise ValueError(
            f"step index t={t_a[bad]} of trajectory {traj_a[bad]!r} is outside 0..{traj_len[tr_idx[bad]] - 1}; "
            "each trajectory must hold exactly the steps t = 0..L-1"
        )
    starts = np.zeros(num_traj, dtype=np.int64)
    np.cumsum(traj_len[:-1], out=starts[1:])
    sorted_pos = starts[tr_idx] + t_a
    if n and np.bincount(sorted_pos, minlength=n).max() > 1:
        dup = np.flatnonzero(np.bincount(sorted_pos, minlength=n) > 1)[0]
        bad = int(np.flatnonzero(sorted_pos == dup)[0])
        raise ValueError(f"trajectory {traj_a[bad]!r} has step t={t_a[bad]} more than once")
    traj_return = np.bincount(tr_idx, weights=reward_a, minlength=num_traj)
    return _Batch(n, g_idx, tr_idx, t_a, reward_a, num_groups, num_traj, traj_group, traj_len,
                  traj_return, sorted_pos)


def _check_norm(norm: str, eps: float) -> None:
    if norm not in ("mean_std", "mean"):
        raise ValueError(f"unknown norm {norm!r}; valid: 'mean_std', 'mean'")
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")


# ----------------------------------------------------------------------------- building blocks


def normalize_in_groups(values: np.ndarray, keys: np.ndarray, num_keys: int, norm: str = "mean_std",
                        eps: float = 1e-6, weights: np.ndarray | None = None) -> np.ndarray:
    """``(v - mean_k) / (std_k + eps)`` (or ``v - mean_k``) with statistics per key ``k``.

    ``weights`` counts each value as that many observations (``None`` = 1 each); ``std`` is the
    sample std over the observations. A key holding a single observation gives 0.
    """
    _check_norm(norm, eps)
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return np.zeros(0)
    w = np.ones_like(values) if weights is None else np.asarray(weights, dtype=np.float64)
    # Deviations from one member of each key's group: identical values cancel exactly.
    pivot = np.empty(num_keys)
    pivot[keys] = values
    dev = values - pivot[keys]
    count = np.bincount(keys, weights=w, minlength=num_keys)
    mean_dev = np.bincount(keys, weights=w * dev, minlength=num_keys) / np.maximum(count, 1.0)
    centered = dev - mean_dev[keys]
    if norm == "mean":
        return centered
    ss = np.bincount(keys, weights=w * centered**2, minlength=num_keys)
    std = np.sqrt(ss / np.maximum(count - 1.0, 1.0))
    denom = std[keys] + eps
    out = np.zeros_like(centered)
    np.divide(centered, denom, out=out, where=denom > 0)
    return out


def _discounted_returns(b: _Batch, gamma: float) -> np.ndarray:
    """``G_t = r_t + gamma * G_{t+1}`` per trajectory, by a segmented doubling scan.

    Steps are laid out sorted by (trajectory, t). After pass ``j`` each entry holds the discounted
    sum of its next ``2**j`` rewards within its trajectory, so ``ceil(log2(max length))``
    vectorized passes finish the job (no Python loop over steps or trajectories).
    """
    g = np.empty(b.n)
    g[b.sorted_pos] = b.reward
    to_end = np.empty(b.n, dtype=np.int64)  # steps after this one in its trajectory
    to_end[b.sorted_pos] = b.traj_len[b.traj] - 1 - b.t
    shift, factor = 1, float(gamma)
    max_to_end = int(to_end.max()) if b.n else 0
    while shift <= max_to_end:
        idx = np.flatnonzero(to_end >= shift)
        g[idx] = g[idx] + factor * g[idx + shift]
        shift, factor = shift * 2, factor * factor
    return g[b.sorted_pos]


def anchor_ids(anchor: Sequence[Hashable] | np.ndarray) -> tuple[np.ndarray, int]:
    """Number anchors ``0..K-1``; two anchors share an id iff they are equal (``==`` and hash)."""
    if isinstance(anchor, np.ndarray) and anchor.ndim == 1 and anchor.dtype.kind in "biufUS":
        return _dense_ids(anchor)
    table: dict[Hashable, int] = {}
    try:
        ids = np.fromiter((table.setdefault(a, len(table)) for a in anchor), dtype=np.int64,
                          count=len(anchor))
    except TypeError as e:
        raise TypeError(f"anchors must be hashable (use a tuple or str, not a list/dict): {e}") from None
    return ids, len(table)


def similarity_groups(group_idx: np.ndarray, texts: Sequence[str], threshold: float) -> tuple[np.ndarray, int]:
    """Cluster texts within each episode group by ``rapidfuzz.fuzz.ratio / 100 >= threshold``.

    Returns a dense cluster id per step. See the module docstring for the exact procedure.
    """
    from rapidfuzz import fuzz, process

    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"similarity threshold must be in (0, 1], got {threshold}")
    if len(texts) != group_idx.shape[0]:
        raise ValueError(f"'texts' has {len(texts)} entries but there are {group_idx.shape[0]} steps")
    by_group: dict[int, dict[str, list[int]]] = {}
    for i, (g, text) in enumerate(zip(group_idx.tolist(), texts, strict=True)):
        if not isinstance(text, str):
            raise TypeError(f"similarity step groups need text per step; step {i} has {type(text).__name__}")
        by_group.setdefault(g, {}).setdefault(text, []).append(i)
    out = np.empty(group_idx.shape[0], dtype=np.int64)
    next_id = 0
    for g in sorted(by_group):
        reps: list[str] = []
        rep_ids: list[int] = []
        for text in sorted(by_group[g]):
            best = process.extractOne(text, reps, scorer=fuzz.ratio, score_cutoff=threshold * 100.0) if reps else None
            if best is None:
                reps.append(text)
                rep_ids.append(next_id)
                cid = next_id
                next_id += 1
            else:
                cid = rep_ids[best[2]]
            out[by_group[g][text]] = cid
        # extractOne returns the highest score, ties broken by the earliest representative.
    return out, next_id


# ----------------------------------------------------------------------------- estimators


def _episode_advantage(b: _Batch, norm: str, episode_stats: str, eps: float) -> np.ndarray:
    """``A_E`` per trajectory."""
    if episode_stats not in ("trajectory", "step"):
        raise ValueError(f"unknown episode_stats {episode_stats!r}; valid: 'trajectory', 'step'")
    weights = b.traj_len.astype(np.float64) if episode_stats == "step" else None
    adv = normalize_in_groups(b.traj_return, b.traj_group, b.num_groups, norm, eps, weights)
    lone = np.bincount(b.traj_group, minlength=b.num_groups) == 1
    adv[lone[b.traj_group]] = 0.0
    return adv


@overload
def compute_grpo(group, traj, t, reward, norm: Norm = ..., eps: float = ...,
                 episode_stats: EpisodeStats = ..., *, return_parts: Literal[False] = ...) -> np.ndarray: ...
@overload
def compute_grpo(group, traj, t, reward, norm: Norm = ..., eps: float = ...,
                 episode_stats: EpisodeStats = ..., *, return_parts: Literal[True]) -> Advantages: ...


def compute_grpo(group, traj, t, reward, norm: Norm = "mean_std", eps: float = 1e-6,
                 episode_stats: EpisodeStats = "trajectory", *, return_parts: bool = False):
    """GRPO: the episode advantage ``A_E`` of each step's trajectory, broadcast to all its steps."""
    _check_norm(norm, eps)
    b = _prepare(group, traj, t, reward)
    a_e = _episode_advantage(b, norm, episode_stats, eps)[b.traj]
    if not return_parts:
        return a_e
    ret = b.traj_return[b.traj]
    return Advantages(a_e, a_e, np.zeros(b.n), ret, ret, np.full(b.n, -1, np.int64), np.zeros(b.n, np.int64))


@overload
def compute_gigpo(group, traj, t, reward, anchor, gamma: float = ..., omega: float = ..., norm: Norm = ...,
                  episode_stats: EpisodeStats = ..., similarity: float | None = ...,
                  texts: Sequence[str] | None = ..., eps: float = ..., *,
                  return_parts: Literal[False] = ...) -> np.ndarray: ...
@overload
def compute_gigpo(group, traj, t, reward, anchor, gamma: float = ..., omega: float = ..., norm: Norm = ...,
                  episode_stats: EpisodeStats = ..., similarity: float | None = ...,
                  texts: Sequence[str] | None = ..., eps: float = ..., *,
                  return_parts: Literal[True]) -> Advantages: ...


def compute_gigpo(group, traj, t, reward, anchor, gamma: float = 0.95, omega: float = 1.0,
                  norm: Norm = "mean_std", episode_stats: EpisodeStats = "trajectory",
                  similarity: float | None = None, texts: Sequence[str] | None = None,
                  eps: float = 1e-6, *, return_parts: bool = False):
    """GiGPO: ``A = A_E + omega * A_S`` per step.

    ``anchor`` keys the step groups (same episode group and equal anchor). With ``similarity`` set,
    step groups are instead clusters of ``texts`` (default: ``anchor``, which must then be strings)
    whose similarity is ``>= similarity``; ``anchor`` is then not used for grouping.
    """
    _check_norm(norm, eps)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    if not np.isfinite(omega):
        raise ValueError(f"omega must be finite, got {omega}")
    b = _prepare(group, traj, t, reward)
    if len(anchor) != b.n:
        raise ValueError(f"'anchor' has {len(anchor)} entries but there are {b.n} steps; pass one per step")
    a_e = _episode_advantage(b, norm, episode_stats, eps)[b.traj]
    g_t = _discounted_returns(b, gamma)

    if similarity is None:
        a_idx, num_anchors = anchor_ids(anchor)
        step_key, num_step_groups = _dense_ids(b.group * max(num_anchors, 1) + a_idx)
    else:
        step_key, num_step_groups = similarity_groups(b.group, anchor if texts is None else texts, similarity)
    a_s = normalize_in_groups(g_t, step_key, num_step_groups, norm, eps)
    total = a_e + omega * a_s
    if not return_parts:
        return total
    sizes = np.bincount(step_key, minlength=num_step_groups)[step_key]
    return Advantages(total, a_e, a_s, b.traj_return[b.traj], g_t, step_key, sizes)


@overload
def compute_rloo(group, traj, t, reward, *, return_parts: Literal[False] = ...) -> np.ndarray: ...
@overload
def compute_rloo(group, traj, t, reward, *, return_parts: Literal[True]) -> Advantages: ...


def compute_rloo(group, traj, t, reward, *, return_parts: bool = False):
    """RLOO: ``A_i = R_i - mean_{j != i} R_j = n / (n - 1) * (R_i - mean)``; a lone trajectory gets 0."""
    b = _prepare(group, traj, t, reward)
    n_g = np.bincount(b.traj_group, minlength=b.num_groups).astype(np.float64)
    centered = normalize_in_groups(b.traj_return, b.traj_group, b.num_groups, "mean", 0.0)
    scale = np.where(n_g > 1, n_g / np.maximum(n_g - 1.0, 1.0), 0.0)
    adv = (centered * scale[b.traj_group])[b.traj]
    if not return_parts:
        return adv
    ret = b.traj_return[b.traj]
    return Advantages(adv, adv, np.zeros(b.n), ret, ret, np.full(b.n, -1, np.int64), np.zeros(b.n, np.int64))
