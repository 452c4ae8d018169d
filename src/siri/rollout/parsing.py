"""Projection: from a model's free text to one environment action, or a reasoned invalid step.

A response is valid when it holds exactly one ``<action>...</action>`` pair (opening before closing),
no stray tags inside, and the text between them is one of the admissible actions (compared after
collapsing whitespace; case matters only when no case-insensitive match is unique). ``<think>`` is
optional. Never raises, whatever the string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

OPEN, CLOSE = "<action>", "</action>"
MAX_ACTION_CHARS = 500


class Projection(NamedTuple):
    """The action to send (exactly an admissible string when valid) and why it is invalid if it is."""

    action: str
    valid: bool
    reason: str = ""


def _normalize(text: str) -> str:
    return " ".join(text.split())


def project(response: str, admissible: Sequence[str]) -> Projection:
    """Extract the action of ``response`` and check it against ``admissible``."""
    if not isinstance(response, str):
        return Projection("", False, f"response is not text ({type(response).__name__})")
    n_open, n_close = response.count(OPEN), response.count(CLOSE)
    if n_open == 0 or n_close == 0:
        return Projection("", False, "missing <action>...</action> tags")
    if n_open > 1 or n_close > 1:
        return Projection("", False, "more than one <action> or </action> tag")
    start = response.index(OPEN) + len(OPEN)
    end = response.index(CLOSE)
    if end < start:
        return Projection("", False, "</action> comes before <action>")
    raw = response[start:end]
    if "<" in raw and ">" in raw and any(tag in raw for tag in ("<think", "</think", "<|", "<action", "</")):
        return Projection(_normalize(raw)[:MAX_ACTION_CHARS], False, "tags inside the action")
    action = _normalize(raw)
    if not action:
        return Projection("", False, "empty action")
    if len(action) > MAX_ACTION_CHARS:
        return Projection(action[:MAX_ACTION_CHARS], False, f"action longer than {MAX_ACTION_CHARS} characters")
    exact = {_normalize(a): a for a in admissible}
    if action in exact:
        return Projection(exact[action], True)
    folded = [a for a in admissible if _normalize(a).lower() == action.lower()]
    if len(folded) == 1:
        return Projection(folded[0], True)
    return Projection(action, False, "not an admissible action")
