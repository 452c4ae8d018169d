"""The skill bank: every mined skill with its provenance, lifecycle status and paired-utility statistics.

It lives as one JSON file in the run directory (``skill_bank.json``), written atomically after each
change the caller saves, and validated field by field on load: a corrupt, foreign or future file is a
``SkillBankError`` naming the file and the problem, never silently replaced (a run that resumes from a
broken bank must stop, not forget its skills).

Lifecycle: ``add_candidates`` (near-identical texts of a known skill, retired ones included, are
dropped so a rejected skill is not re-validated forever; refinements and contradictions are new
skills, see ``near_identical``) -> ``record_paired`` per evaluation -> ``update_status`` (promote /
retire by the gate of ``siri.skills.validation``; then the cap on active skills per task type keeps
the highest lower confidence bounds).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rapidfuzz import utils
from rapidfuzz.distance import DamerauLevenshtein

from siri.rollout.types import Trajectory
from siri.skills.validation import (
    ACTIVE,
    CANDIDATE,
    RETIRED,
    STATUSES,
    Gate,
    UtilityStats,
    collect_paired,
    decide,
    paired_difference,
    trajectory_return,
)
from siri.utils.io import atomic_write_json

SCHEMA = "siri.skillbank"
VERSION = 1
BANK_FILENAME = "skill_bank.json"
START_BANK_FILENAME = "skill_bank.start.json"  # the bank a run started from (SiriPipeline)
GENERAL = "general"


class SkillBankError(Exception):
    """A skill bank file that cannot be used, or a misuse of the bank; the message says what and where."""


@dataclass
class Skill:
    """One skill and everything known about it.

    Attributes:
        id: stable id ("s1", "s2", ...), what ``StepRecord.skill_ids`` refers to.
        text: the skill line, "WHEN <condition> THEN <strategy>".
        task_type: the task family it is for, or "general" (shown for every task type).
        sources: ids of the trajectories it was mined from.
        iteration: training iteration at which it was mined.
        miner: which miner wrote it ("self", "external", "trace", ...).
        status: "candidate" (under validation), "active" (shown in skill rollouts), or "retired".
        utility: paired-evaluation statistics (n, mean, m2, last_update).
        evals: every paired evaluation as [iteration, difference], the raw data behind ``utility``.
        promoted_at: iteration it became active (None: never).
        retired_at: iteration it was retired (None: not retired).
        reason: why the latest status change happened.
    """

    id: str
    text: str
    task_type: str
    sources: list[int] = field(default_factory=list)
    iteration: int = 0
    miner: str = ""
    status: str = CANDIDATE
    utility: UtilityStats = field(default_factory=UtilityStats)
    evals: list[tuple[int, float]] = field(default_factory=list)
    promoted_at: int | None = None
    retired_at: int | None = None
    reason: str = ""

    def bounds(self, gate: Gate | None = None) -> tuple[float, float]:
        """(LCB, UCB) of the utility at the gate's current look for this skill (infinite before its first)."""
        return (gate or Gate()).bounds(self.utility, candidate=self.status == CANDIDATE)


def _rank_key(skill: Skill, gate: Gate) -> tuple[float, float, int]:
    """Best first: higher lower bound, then higher mean, then older id (stable)."""
    lcb, _ = skill.bounds(gate)
    return (-lcb if math.isfinite(lcb) else math.inf, -skill.utility.mean, int(skill.id[1:]))


_NUMBERS = re.compile(r"\d+")


_NEEDS_ONE_THING = re.compile(r"^WHEN you need an? (?P<thing>[a-z]+) THEN ")
_ROLE_WORDS = frozenset({"object", "receptacle", "item", "thing"})  # "WHEN you need an object": any task


def needed_thing(text: str) -> str | None:
    """The one thing a skill is about ("WHEN you need a mug THEN ..." -> "mug"), or None for other skills."""
    need = _NEEDS_ONE_THING.match(text)
    return need["thing"] if need is not None else None


def skill_applies(text: str, task: str) -> bool:
    """Whether a skill can help with ``task`` (its text). A skill about one thing ("WHEN you need a mug THEN
    look in ...", a placement skill) helps only a task that names that thing; shown in a task about another
    object it would send the agent after the wrong one. Every other skill, one about "an object" included,
    applies to its whole task type. A placement family (``placement_family``) applies where one of its lines
    does."""
    return bool(lines_for(text, task))


def is_placement_line(text: str) -> bool:
    """Whether ``text`` is one placement skill about one named thing ("WHEN you need a mug THEN ..."): not a
    family of them, not one about "an object" (a role word: any task), not a skill of another form."""
    return "\n" not in text and needed_thing(text) not in (None, *_ROLE_WORDS)


def _line_applies(line: str, task: str) -> bool:
    if not is_placement_line(line):
        return True
    return re.search(rf"\b{needed_thing(line)}\b", task.lower()) is not None


def lines_for(text: str, task: str) -> list[str]:
    """The lines of a skill that a prompt for ``task`` shows: the skill itself, or the lines of a placement
    family that apply to the task (the object's, and a look-at task's lamp's); none where nothing applies."""
    lines = [line for line in text.split("\n") if line.strip()] if "\n" in text else [text]
    return [line for line in lines if _line_applies(line, task)]


def shown_skill(skill_id: str, text: str, task: str) -> tuple[tuple[str, str], ...]:
    """``((skill id, line), ...)``: what an episode spec carries to show a skill in ``task``'s prompt, one entry
    per line (a family's lines are separate items of the skills block, as the model saw them in training)."""
    return tuple((skill_id, line) for line in lines_for(text, task))


def placement_family(texts: Sequence[str]) -> str | None:
    """One skill of the placement skills among ``texts`` (one per line), or None if there are none.

    Why: a placement skill fits only the tasks that name its object, about one task in twenty on the
    household, so alone it gets 1-3 paired evaluations in a run where the gate's first look needs 7-9
    (benchmarks/RESULTS.md, "SIRI on the delivery-puts model"). As one family, shown in each task as its
    member for the task's object, it is evaluated in every task one of its objects appears in: what is
    validated is the miner's knowledge of where things are, as a whole."""
    lines = sorted({t for t in texts if is_placement_line(t)})
    return "\n".join(lines) if lines else None


def normalize_text(text: str) -> str:
    """Lower case, punctuation as spaces, single spaces: what dedupe compares."""
    return " ".join(utils.default_process(text).split())


def near_identical(a: str, b: str, max_edits: int = 1) -> bool:
    """Whether two skill texts are the same skill written slightly differently.

    After ``normalize_text`` they must carry the same numbers (receptacle numbers: "shelf 1" and
    "shelf 2" are different advice) and differ by at most ``max_edits`` character edits (insertion,
    deletion, substitution, transposition): case, whitespace, punctuation and a typo. A whole-string
    edit distance, unlike a token-set ratio, sees a refinement ("... and the countertop is empty ...")
    or a contradiction ("go to the fridge" for "go to the countertop") as the new skill it is.
    """
    x, y = normalize_text(a), normalize_text(b)
    if _NUMBERS.findall(x) != _NUMBERS.findall(y):
        return False
    return DamerauLevenshtein.distance(x, y, score_cutoff=max_edits) <= max_edits


class SkillBank:
    """All skills of a run. ``SkillBank.open(run_dir)`` loads the bank of a run, or starts an empty one.

    Args:
        path: the JSON file; ``None`` keeps the bank in memory (``save`` then needs a path).
        dedupe_max_edits: character edits (after normalising case, punctuation and spaces) within which
            a new text is the same skill as a known one of the same task type (``near_identical``).
        max_active: cap on active skills per task type ("general" counts as its own type).
        gate: the validation gate whose bounds rank active skills (``select``); ``update_status``
            replaces it with the one it decides with.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        dedupe_max_edits: int = 1,
        max_active: int = 8,
        gate: Gate | None = None,
    ) -> None:
        if not 0 <= dedupe_max_edits <= 10:
            raise SkillBankError(f"dedupe_max_edits must be in [0, 10], got {dedupe_max_edits}")
        if max_active < 1:
            raise SkillBankError(f"max_active must be >= 1, got {max_active}")
        self.path = Path(path) if path is not None else None
        self.dedupe_max_edits = dedupe_max_edits
        self.max_active = max_active
        self.gate = gate or Gate()
        self._skills: dict[str, Skill] = {}
        self._next_id = 1

    # --- persistence -------------------------------------------------------------------------------

    @classmethod
    def open(cls, run_dir: str | os.PathLike[str], **options: Any) -> SkillBank:
        """The bank of ``run_dir`` (``run_dir/skill_bank.json``): loaded if present, else empty."""
        path = Path(run_dir) / BANK_FILENAME
        return cls.load(path, **options) if path.exists() else cls(path, **options)

    @classmethod
    def load(cls, path: str | os.PathLike[str], **options: Any) -> SkillBank:
        """Load and validate a bank file; any problem is a ``SkillBankError`` naming the file."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise SkillBankError(f"{path}: no skill bank file here") from e
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SkillBankError(f"{path}: not a readable JSON skill bank ({e}); fix or move the file") from e
        return cls.from_json(raw, path, source=str(path), **options)

    @classmethod
    def from_json(cls, raw: Any, path: str | os.PathLike[str] | None = None, source: str = "skill bank",
                  **options: Any) -> SkillBank:
        """A bank from ``to_json()`` data (validated like a file; ``source`` names it in errors)."""
        bank = cls(path, **options)
        bank._next_id, skills = _parse_bank(raw, source)
        bank._skills = {s.id: s for s in skills}
        return bank

    def to_json(self) -> dict[str, Any]:
        skills = []
        for s in self._skills.values():
            d = asdict(s)
            d["evals"] = [list(e) for e in s.evals]
            skills.append(d)
        return {"schema": SCHEMA, "version": VERSION, "next_id": self._next_id, "skills": skills}

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the bank atomically (to ``path``, else to the bank's own path) and return the path."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise SkillBankError("this bank has no file; pass save(path) or create it with a path")
        atomic_write_json(target, self.to_json())
        return target

    # --- access ------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._skills)

    def __iter__(self) -> Iterator[Skill]:
        return iter(self._skills.values())

    def __contains__(self, skill_id: object) -> bool:
        return skill_id in self._skills

    def get(self, skill_id: str) -> Skill:
        try:
            return self._skills[skill_id]
        except KeyError:
            raise SkillBankError(f"unknown skill id {skill_id!r}; the bank has {len(self)} skills") from None

    def skills(self, status: str | None = None, task_type: str | None = None) -> list[Skill]:
        """Skills in id order, optionally of one status and for one task type (plus "general")."""
        if status is not None and status not in STATUSES:
            raise SkillBankError(f"unknown status {status!r}; expected one of {STATUSES}")
        return [
            s
            for s in self._skills.values()
            if (status is None or s.status == status)
            and (task_type is None or s.task_type in (task_type, GENERAL))
        ]

    def utility(self, skill_id: str) -> float:
        """The current utility estimate U (mean paired difference; 0 before any evaluation)."""
        return self.get(skill_id).utility.mean

    def select(self, task_type: str, top_k: int | None = None, task: str | None = None) -> list[Skill]:
        """Active skills for ``task_type`` (its own and "general"), best first, at most ``top_k``; with ``task``
        (the episode's task text) only those that apply to it (``skill_applies``)."""
        if top_k is not None and top_k < 0:
            raise SkillBankError(f"top_k must be >= 0 or None, got {top_k}")
        fitting = [s for s in self.skills(ACTIVE, task_type) if task is None or skill_applies(s.text, task)]
        ranked = sorted(fitting, key=lambda s: _rank_key(s, self.gate))
        return ranked if top_k is None else ranked[:top_k]

    # --- lifecycle ---------------------------------------------------------------------------------

    def is_duplicate(self, text: str, task_type: str) -> Skill | None:
        """The known skill of the same task type, of any status, that ``text`` is near-identical to.

        Retired skills count: re-mining the text of a skill the gate rejected would only validate it
        again (and an inconclusive one again and again). Only near-identical texts count: a refinement
        of a skill (more condition, other strategy) or a contradiction of it is a new skill to validate,
        even when the old one was retired.
        """
        for s in self._skills.values():
            if s.task_type == task_type and near_identical(text, s.text, self.dedupe_max_edits):
                return s
        return None

    def add_candidates(
        self,
        texts: Iterable[str],
        task_type: str,
        iteration: int,
        miner: str,
        sources: Sequence[int] = (),
    ) -> list[Skill]:
        """Add new skills as candidates; returns the ones added (near-duplicates are skipped)."""
        if not task_type:
            raise SkillBankError("task_type must be a task family name or 'general'")
        added = []
        for text in texts:
            lines = (" ".join(line.split()) for line in str(text).split("\n"))
            text = "\n".join(line for line in lines if line)  # a family (placement_family) keeps its lines
            if not text or self.is_duplicate(text, task_type) is not None:
                continue
            skill = Skill(
                id=f"s{self._next_id}",
                text=text,
                task_type=task_type,
                sources=[int(x) for x in sources],
                iteration=iteration,
                miner=miner,
            )
            self._next_id += 1
            self._skills[skill.id] = skill
            added.append(skill)
        return added

    def record_paired(
        self, skill_id: str, with_returns: Sequence[float], without_returns: Sequence[float], iteration: int
    ) -> float:
        """Add one paired evaluation (one group) of a skill; returns its difference.

        Evaluations of retired skills are still recorded (their statistics stay honest) but never
        revive them: retirement is final.
        """
        skill = self.get(skill_id)
        diff = paired_difference([float(x) for x in with_returns], [float(x) for x in without_returns])
        skill.utility.add(diff, iteration)
        skill.evals.append((iteration, diff))
        return diff

    def record_rollouts(
        self,
        trajectories: Sequence[Trajectory],
        iteration: int,
        value: Callable[[Trajectory], float] = trajectory_return,
    ) -> dict[str, list[float]]:
        """Record every paired evaluation in a batch of rollouts (see ``collect_paired``).

        Returns the new differences per skill id. A rollout showing a skill the bank does not know is
        an error (the prompt and the bank disagree).
        """
        recorded: dict[str, list[float]] = {}
        for skill_id, pairs in collect_paired(trajectories, value).items():
            for with_returns, without_returns in pairs:
                diff = self.record_paired(skill_id, with_returns, without_returns, iteration)
                recorded.setdefault(skill_id, []).append(diff)
        return recorded

    def validation_queue(self, task_type: str | None = None) -> list[str]:
        """Candidate ids, least evaluated first (then oldest): the order for ``assign_validation``."""
        queue = self.skills(CANDIDATE, task_type)
        return [s.id for s in sorted(queue, key=lambda s: (s.utility.n, int(s.id[1:])))]

    def task_types(self) -> dict[str, str]:
        """Skill id -> task type, for ``assign_validation(candidate_types=...)``."""
        return {s.id: s.task_type for s in self._skills.values()}

    def update_status(
        self, iteration: int, gate: Gate | None = None
    ) -> list[tuple[str, str, str, str]]:
        """Promote and retire by the paired utility under ``gate``, then enforce the cap on active skills.

        Returns the changes as (skill id, old status, new status, reason). With a disabled gate every
        candidate becomes active (the ablation) and the cap ranks by the same key, so it still holds.
        ``gate`` (default: the bank's own) becomes the bank's gate for ranking (``select``).
        """
        if gate is not None:
            self.gate = gate
        changes: list[tuple[str, str, str, str]] = []
        for s in self._skills.values():
            new, reason = decide(s.status, s.utility, self.gate)
            if new != s.status:
                changes.append((s.id, s.status, new, reason))
                self._set_status(s, new, iteration, reason)
        by_type: dict[str, list[Skill]] = {}
        for s in self._skills.values():
            if s.status == ACTIVE:
                by_type.setdefault(s.task_type, []).append(s)
        for task_type, active in sorted(by_type.items()):
            for s in sorted(active, key=lambda s: _rank_key(s, self.gate))[self.max_active :]:
                reason = f"over the cap of {self.max_active} active skills for {task_type}"
                changes.append((s.id, ACTIVE, RETIRED, reason))
                self._set_status(s, RETIRED, iteration, reason)
        return changes

    def _set_status(self, skill: Skill, status: str, iteration: int, reason: str) -> None:
        skill.status = status
        skill.reason = reason
        if status == ACTIVE:
            skill.promoted_at = iteration
        elif status == RETIRED:
            skill.retired_at = iteration


def gate_of_run(run_dir: str | os.PathLike[str]) -> Gate:
    """The gate a run decided with, from its config.yaml (defaults for what it does not say).

    For showing bounds (``siri skills``, reports): it never fails. A run written before ``gate_alpha``
    existed (its config has ``confidence_z``) is shown with the current gate at the default level.
    """
    import yaml

    siri: Any = {}
    try:
        raw = yaml.safe_load((Path(run_dir) / "config.yaml").read_text(encoding="utf-8"))
        siri = raw.get("siri", {}) if isinstance(raw, dict) else {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        pass
    defaults = Gate()
    try:
        return Gate(
            float(siri.get("gate_alpha", defaults.alpha)),
            int(siri.get("min_evals", defaults.min_evals)),
            int(siri.get("max_evals", defaults.max_evals)),
            promote_lcb=float(siri.get("promote_lcb", defaults.promote_lcb)),
            retire_ucb=float(siri.get("retire_ucb", defaults.retire_ucb)),
            enabled=bool(siri.get("validation_gate", defaults.enabled)),
        )
    except (AttributeError, TypeError, ValueError):
        return defaults


# --- validation of a loaded file -------------------------------------------------------------------

_SKILL_FIELDS = {
    "id": str, "text": str, "task_type": str, "sources": list, "iteration": int, "miner": str,
    "status": str, "utility": dict, "evals": list, "promoted_at": (int, type(None)),
    "retired_at": (int, type(None)), "reason": str,
}  # fmt: skip
_UTILITY_FIELDS = {"n": int, "mean": (int, float), "m2": (int, float), "last_update": int}


def _check_fields(obj: Any, spec: dict[str, Any], where: str) -> None:
    if not isinstance(obj, dict):
        raise SkillBankError(f"{where}: expected an object, got {type(obj).__name__}")
    missing = sorted(set(spec) - set(obj))
    unknown = sorted(set(obj) - set(spec))
    if missing or unknown:
        raise SkillBankError(f"{where}: missing fields {missing}, unknown fields {unknown}")
    for name, kind in spec.items():
        value = obj[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise SkillBankError(f"{where}.{name}: wrong type {type(value).__name__}")


def _parse_bank(raw: Any, file: str) -> tuple[int, list[Skill]]:
    if not isinstance(raw, dict) or raw.get("schema") != SCHEMA:
        found = raw.get("schema") if isinstance(raw, dict) else type(raw).__name__
        raise SkillBankError(f"{file}: not a SIRI skill bank (schema {found!r}, expected {SCHEMA!r})")
    if raw.get("version") != VERSION:
        raise SkillBankError(
            f"{file}: skill bank version {raw.get('version')!r}, this SIRI reads version {VERSION}; "
            "use the SIRI version that wrote it"
        )
    _check_fields(raw, {"schema": str, "version": int, "next_id": int, "skills": list}, file)
    skills: list[Skill] = []
    max_id = 0
    for i, d in enumerate(raw["skills"]):
        where = f"{file}: skills[{i}]"
        _check_fields(d, _SKILL_FIELDS, where)
        _check_fields(d["utility"], _UTILITY_FIELDS, where + ".utility")
        sid = d["id"]
        if not (sid.startswith("s") and sid[1:].isdigit()) or any(s.id == sid for s in skills):
            raise SkillBankError(f"{where}.id: {sid!r} is malformed or repeated (ids are s1, s2, ...)")
        if d["status"] not in STATUSES:
            raise SkillBankError(f"{where}.status: {d['status']!r} is not one of {STATUSES}")
        if not d["text"].strip() or not d["task_type"]:
            raise SkillBankError(f"{where}: empty text or task_type")
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in d["sources"]):
            raise SkillBankError(f"{where}.sources: expected a list of trajectory ids (ints)")
        evals = []
        for e in d["evals"]:
            if not (isinstance(e, list) and len(e) == 2 and isinstance(e[0], int)
                    and isinstance(e[1], (int, float)) and math.isfinite(e[1])):  # fmt: skip
                raise SkillBankError(f"{where}.evals: expected [iteration, difference] pairs, got {e!r}")
            evals.append((e[0], float(e[1])))
        u = d["utility"]
        recomputed = UtilityStats()
        for it, diff in evals:
            recomputed.add(diff, it)
        if (
            u["n"] != recomputed.n
            or not math.isclose(u["mean"], recomputed.mean, abs_tol=1e-9)
            or not (math.isclose(u["m2"], recomputed.m2, rel_tol=1e-6, abs_tol=1e-9))
        ):
            raise SkillBankError(f"{where}.utility: n/mean/m2 disagree with the {len(evals)} recorded evals")
        utility = UtilityStats(u["n"], float(u["mean"]), float(u["m2"]), u["last_update"])
        fields = {k: d[k] for k in _SKILL_FIELDS if k not in ("utility", "evals")}
        skills.append(Skill(**fields, utility=utility, evals=evals))
        max_id = max(max_id, int(sid[1:]))
    if raw["next_id"] <= max_id:
        raise SkillBankError(f"{file}: next_id {raw['next_id']} must exceed the largest skill id s{max_id}")
    return raw["next_id"], skills
