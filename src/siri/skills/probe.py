"""The internalization probe: a fixed set of skill-guided steps, for scoring under both prompts later.

SIRI claims that the plain policy absorbs what the skills say. The probe measures that directly: the
first ``siri.probe_steps`` valid steps of *active* skills' rollouts a run collects (the steps
internalization distils: a candidate's steps are never distilled, so a probe of them could not close)
are kept with their token ids, and every ``siri.probe_every`` iterations the trainer scores
each step's action under the plain prompt and under the skill prompt (``siri.rl.probe``). The gap
``mean log p(action | plain) - mean log p(action | skill)`` rising toward 0 is internalization; the same
probe scored on another run's checkpoints (``siri probe --probe-from``) is the comparison.

The set lives in the pipeline state, so checkpoints carry it and a resumed run measures the same steps,
and in ``RUN_DIR/probe.pt`` (written by rank 0 whenever it grows), so other runs can be scored on it.
The file holds only lists, ints and strings: ``torch.load(weights_only=True)`` reads it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from siri.rollout.types import StepRecord, Trajectory
from siri.utils.io import atomic_write_bytes

PROBE_FILENAME = "probe.pt"
SCHEMA = "siri.probe"
VERSION = 1
_STEP_KEYS = ("prompt_ids", "plain_prompt_ids", "response_ids", "action_mask", "choices", "skill_ids",
              "iteration", "seed", "t", "task_type")


class ProbeError(Exception):
    """A probe file that cannot be used; the message names the file and the problem."""


def probe_step(record: StepRecord, iteration: int) -> dict[str, Any] | None:
    """The probe entry of one step, or None when it cannot probe anything.

    Only valid actions of skill-prompt steps that carry their plain prompt and at least one action token
    qualify: an invalid action is never distilled, so its log-probability says nothing about
    internalization.
    """
    if not record.uses_skills or not record.valid or record.plain_prompt_ids is None or not any(record.action_mask):
        return None
    return {
        "prompt_ids": [int(x) for x in record.prompt_ids],
        "plain_prompt_ids": [int(x) for x in record.plain_prompt_ids],
        "response_ids": [int(x) for x in record.response_ids],
        "action_mask": [int(x) for x in record.action_mask],
        "choices": None if record.choices is None else [[int(x) for x in c] for c in record.choices],
        "skill_ids": list(record.skill_ids),
        "iteration": int(iteration),
        "seed": int(record.seed),
        "t": int(record.t),
        "task_type": record.task_type,
    }


def extend_probe(probe: list[dict[str, Any]], trajectories: Sequence[Trajectory], iteration: int, limit: int,
                 skills: set[str]) -> int:
    """Append qualifying steps of ``trajectories`` (in order) that show only ``skills`` until ``probe`` holds
    ``limit``; returns how many.

    Trajectories come in the same order on every rank (gathered, sorted by id), so every rank builds the
    same probe.
    """
    added = 0
    for traj in trajectories:
        if len(probe) >= limit:
            break
        if not traj.uses_skills or traj.failed or not set(traj.skill_ids) <= skills:
            continue
        for record in traj.steps:
            if len(probe) >= limit:
                break
            entry = probe_step(record, iteration)
            if entry is not None:
                probe.append(entry)
                added += 1
    return added


def probe_records(steps: Sequence[dict[str, Any]]) -> list[StepRecord]:
    """Step records (skill prompt, plain prompt, response, action mask, choices) to score a probe with."""
    records = []
    for k, s in enumerate(steps):
        n = len(s["response_ids"])
        records.append(StepRecord(
            group=0, traj=k, t=int(s["t"]), seed=int(s["seed"]), task_type=str(s["task_type"]),
            prompt_ids=list(s["prompt_ids"]), response_ids=list(s["response_ids"]), old_logprobs=[0.0] * n,
            action_mask=list(s["action_mask"]), action="", valid=True, reward=0.0, done=False, won=False, anchor=k,
            skill_ids=tuple(s["skill_ids"]), plain_prompt_ids=list(s["plain_prompt_ids"]),
            choices=None if s["choices"] is None else [list(c) for c in s["choices"]]))
    return records


def tokenizer_digest(tokenizer: Any) -> str:
    """A short fingerprint of a tokenizer's vocabulary: token ids only mean something under the same one."""
    vocab = sorted(tokenizer.get_vocab().items())
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def save_probe(path: str | os.PathLike[str], steps: Sequence[dict[str, Any]], meta: dict[str, Any]) -> Path:
    """Write a probe file atomically (``meta``: where it comes from, e.g. the run, model and tokenizer digest)."""
    import torch

    buffer = io.BytesIO()
    torch.save({"schema": SCHEMA, "version": VERSION, "meta": dict(meta), "steps": list(steps)}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def load_probe(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``(steps, meta)`` of a probe file, or a run directory's ``probe.pt``; any problem is a ``ProbeError``."""
    import torch

    path = Path(path)
    if path.is_dir():
        path = path / PROBE_FILENAME
    if not path.is_file():
        raise ProbeError(f"{path}: no probe file here (a SIRI run with siri.probe_every > 0 writes one once its "
                         "first skill rollouts are collected)")
    try:
        raw = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # torch raises several types for damaged files
        raise ProbeError(f"{path}: not a readable probe file ({type(e).__name__}: {e})") from e
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        raise ProbeError(f"{path}: not a SIRI probe file")
    if raw.get("version") != VERSION:
        raise ProbeError(f"{path}: probe version {raw.get('version')!r}, this SIRI reads version {VERSION}")
    steps = raw.get("steps")
    if not isinstance(steps, list) or not all(isinstance(s, dict) and set(_STEP_KEYS) <= set(s) for s in steps):
        raise ProbeError(f"{path}: malformed steps (each needs {', '.join(_STEP_KEYS)})")
    if not steps:
        raise ProbeError(f"{path}: the probe holds no steps")
    return steps, dict(raw.get("meta") or {})
