"""The mining prompt and its answers: what a miner model reads and what it writes.

A skill is one line ``WHEN <condition> THEN <strategy>``. The self and external miners (``miners``)
both show a model the same text and read its answer the same way, so that text lives here, apart from
the miners that send it and from the trace miner (``trace``) that needs no model:

- ``successes``: which episodes a miner learns from (won, or scoring at least ``min_score``).
- ``render_trajectory`` / ``mining_messages`` / ``mining_prompts``: the compact text a miner reads.
  Kept to actions only by default so that several episodes fit the tiny model's context
  (~512-1024 tokens).
- ``parse_skills`` / ``merge_answers``: turn any model output into clean skill lines; never raise.

The tiny model's tokenizer is word-level over the environments' vocabulary, so every word of the
prompt, and of the trace skills it learns to answer with, comes either from the environments' own texts
(actions, task text, task type) or from the fixed template text in ``MINING_VOCAB_TEXT``.
``mining_words`` splits text the same way the tests check it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from siri.rollout.types import Trajectory

Messages = list[dict[str, str]]


def successes(trajectories: Sequence[Trajectory], task_type: str, min_score: float | None = None) -> list[Trajectory]:
    """The episodes of ``task_type`` (every type for "general") that miners learn from: the won ones
    and, when ``min_score`` is set, those whose score reaches it.

    Shop-like tasks pay partial credit, and a weak policy may buy many close matches before it buys an
    exact one; ``min_score`` lets SIRI mine from those good purchases instead of waiting for a win.
    """
    return [t for t in trajectories if (task_type == "general" or t.task_type == task_type) and is_success(t, min_score)]


def is_success(traj: Trajectory, min_score: float | None = None) -> bool:
    """Won, or (with ``min_score``) scored at least ``min_score``."""
    return traj.won or (min_score is not None and traj.score >= min_score)


# --- the fixed text of the mining prompt ------------------------------------------------------------

MINING_SYSTEM_PROMPT = (
    "You write skills for an agent. A skill is one line of the form WHEN <condition> THEN <strategy>. "
    "Read the successful episodes and write general skills that would help the agent solve new tasks "
    "of the same type."
)
MINING_USER_TEMPLATE = (
    "task type: {task_type}\n\n{episodes}\n\n"
    "Write up to {max_skills} skills, one per line, each in the form WHEN <condition> THEN <strategy>."
)
EPISODE_HEADER = "episode {index}:"
OMITTED_STEPS = "> ..."

# Words the trace miner (trace.py) may add on top of the environments' own words: its skills are the answers
# the tiny model learns to give to this prompt, so their words belong to the prompt's vocabulary.
_TRACE_TEMPLATE_TEXT = (
    "WHEN THEN the task is to a an and or it in on there then first find take go heat cool clean slice "
    "use examine look at under put two move object receptacle you need open before from closed "
    "type search with key words of instruction click item that matches options asks for buy now "
    "next page results do not match each option has - , ."
)

MINING_VOCAB_TEXT = "\n".join(
    [
        MINING_SYSTEM_PROMPT,
        MINING_USER_TEMPLATE.replace("{task_type}", "").replace("{episodes}", "").replace("{max_skills}", ""),
        EPISODE_HEADER.replace("{index}", ""),
        "task: " + OMITTED_STEPS,
        _TRACE_TEMPLATE_TEXT,
        "0 1 2 3 4 5 6 7 8 9 10",
    ]
)
"""Every fixed word the mining prompt and the trace miner use; add it to a word-level tokenizer's corpus."""

_WORD_RE = re.compile(r"\w+|[^\w\s]")


def mining_words(text: str) -> list[str]:
    """Split text into words and punctuation marks (the granularity of a word-level tokenizer)."""
    return _WORD_RE.findall(text)


MINING_TEMPLATE_WORDS: frozenset[str] = frozenset(mining_words(MINING_VOCAB_TEXT))


def task_type_phrase(task_type: str) -> str:
    """``pick_heat_then_place`` -> ``pick heat then place``: task types as plain words."""
    return " ".join(task_type.replace("_", " ").replace("-", " ").split())


# --- rendering and the prompt -------------------------------------------------------------------------


def render_trajectory(traj: Trajectory, task: str, max_steps: int = 24, obs_words: int = 0) -> str:
    """Compact text of one (successful) trajectory: the task, then one ``> action`` line per valid step.

    Invalid steps are dropped (they carry no strategy). Instance numbers are kept ("apple 1") because
    they tell which object went where. When the episode is longer than ``max_steps``, the first third
    and the last two thirds are kept around a ``> ...`` line (the end is where the task gets solved).
    ``obs_words > 0`` appends the first words of the observation that followed each action.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    steps = traj.steps
    lines: list[str] = []
    for i, step in enumerate(steps):
        if not step.valid:
            continue
        line = "> " + " ".join(step.action.split())
        if obs_words > 0 and i + 1 < len(steps):
            words = steps[i + 1].observation_text.split()[:obs_words]
            if words:
                line += "\n" + " ".join(words)
        lines.append(line)
    if len(lines) > max_steps:
        head = max_steps // 3
        tail = max_steps - head
        lines = [*lines[:head], OMITTED_STEPS, *lines[len(lines) - tail :]]
    return "\n".join(["task: " + " ".join(task.split()), *lines])


def mining_messages(task_type: str, rendered: Sequence[str], max_skills: int) -> Messages:
    """The chat messages (system, user) that ask a model for up to ``max_skills`` skills."""
    if max_skills < 1:
        raise ValueError(f"max_skills must be >= 1, got {max_skills}")
    episodes = "\n\n".join(
        EPISODE_HEADER.format(index=i + 1) + "\n" + text.strip() for i, text in enumerate(rendered)
    )
    user = MINING_USER_TEMPLATE.format(
        task_type=task_type_phrase(task_type), episodes=episodes, max_skills=max_skills
    )
    return [{"role": "system", "content": MINING_SYSTEM_PROMPT}, {"role": "user", "content": user}]


def mining_prompts(
    task_type: str,
    trajectories: Sequence[Trajectory],
    max_skills: int,
    episodes_per_prompt: int = 3,
    max_steps: int = 24,
    obs_words: int = 0,
    min_score: float | None = None,
) -> list[Messages]:
    """Chat prompts for the successes of ``task_type``, ``episodes_per_prompt`` episodes each."""
    if episodes_per_prompt < 1:
        raise ValueError(f"episodes_per_prompt must be >= 1, got {episodes_per_prompt}")
    won = successes(trajectories, task_type, min_score)
    rendered = [render_trajectory(t, t.task, max_steps=max_steps, obs_words=obs_words) for t in won]
    return [
        mining_messages(task_type, rendered[i : i + episodes_per_prompt], max_skills)
        for i in range(0, len(rendered), episodes_per_prompt)
    ]


# --- parsing ------------------------------------------------------------------------------------------

_SKILL_RE = re.compile(r"^when\s+(?P<cond>.+?)\s+then\s+(?P<strategy>.+)$", re.IGNORECASE | re.DOTALL)
_BULLET_RE = re.compile(r"^(?:[-*•]+|\d{1,3}[.)]|\(\d{1,3}\)|skill\s*\d*\s*:)\s*", re.IGNORECASE)
_SPLIT_BEFORE_WHEN = re.compile(r"(?=\bWHEN\b)")


def parse_skills(text: str, max_skills: int, max_words: int = 60) -> list[str]:
    """Extract up to ``max_skills`` skills ``WHEN <condition> THEN <strategy>`` from any model output.

    One skill per line; a line holding several upper-case ``WHEN`` starts is split there. Bullets and
    numbering are stripped, whitespace is normalized, the keywords are written upper-case, and exact
    duplicates (ignoring case) are dropped. Lines not in WHEN/THEN form, with an empty side, or longer
    than ``max_words`` words are dropped. Never raises on any string.
    """
    if not isinstance(text, str) or max_skills < 1:
        return []
    skills: list[str] = []
    seen: set[str] = set()
    for raw_line in text.splitlines():
        for piece in _SPLIT_BEFORE_WHEN.split(raw_line):
            line = " ".join(piece.split())
            line = _BULLET_RE.sub("", line).strip().strip("\"'`").strip()
            match = _SKILL_RE.match(line)
            if match is None:
                continue
            cond = match.group("cond").strip(" ,:;")
            strategy = match.group("strategy").strip(" ,:;")
            if not cond or not strategy:
                continue
            skill = f"WHEN {cond} THEN {strategy}"
            if len(skill.split()) > max_words:
                continue
            key = skill.lower()
            if key in seen:
                continue
            seen.add(key)
            skills.append(skill)
            if len(skills) >= max_skills:
                return skills
    return skills


def merge_answers(answers: Sequence[str], max_skills: int) -> list[str]:
    """Parse every answer and keep the first ``max_skills`` distinct skills (case-insensitive)."""
    skills: list[str] = []
    seen: set[str] = set()
    for answer in answers:
        for skill in parse_skills(answer, max_skills):
            if skill.lower() not in seen and len(skills) < max_skills:
                seen.add(skill.lower())
                skills.append(skill)
    return skills
