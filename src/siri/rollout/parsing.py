"""Projection: from a model's free text to one environment action, or a reasoned invalid step.

A response is valid when it holds exactly one ``<action>...</action>`` pair (opening before closing),
no stray tags inside, and the text between them is one of the admissible actions (compared after
collapsing whitespace; case matters only when no case-insensitive match is unique). ``<think>`` is
optional. Never raises, whatever the string.

Free-form actions: an environment may also accept actions it cannot list (WebShop's
``search[<any words>]``). It declares them as *templates*, a literal prefix and suffix around one
``<...>`` slot (``search[<text>]``); an action that is not admissible but fills a template's slot with
one line of text free of ``[]<>`` is valid here. Exact admissible matches win. What the slot may hold
beyond that stays the environment's rule: it still checks the action and may call the step invalid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

OPEN, CLOSE = "<action>", "</action>"
MAX_ACTION_CHARS = 500


class Projection(NamedTuple):
    """The action to send (an admissible string or a filled-in template when valid) and why it is invalid if it is."""

    action: str
    valid: bool
    reason: str = ""


def _normalize(text: str) -> str:
    return " ".join(text.split())


_SLOT_FORBIDDEN = frozenset("[]<>\n\r")


def template_parts(template: str) -> tuple[str, str] | None:
    """(prefix, suffix) around the one ``<...>`` slot of ``template``; None if it has no single slot."""
    if not isinstance(template, str):
        return None
    lo = template.find("<")
    hi = template.find(">", lo + 1) if lo >= 0 else -1
    if lo < 0 or hi < 0 or hi == lo + 1:
        return None
    prefix, suffix = template[:lo], template[hi + 1 :]
    if any(c in "<>" for c in prefix + suffix):
        return None
    return prefix, suffix


def fill_template(action: str, template: str) -> str | None:
    """``action`` in the template's own spelling if it fills the slot with allowed text, else None.

    The prefix and suffix match case-insensitively and up to whitespace next to the slot; the slot must
    be non-empty after stripping and hold no newline and none of ``[]<>``.
    """
    parts = template_parts(template)
    if parts is None:
        return None
    prefix, suffix = parts
    head, tail = prefix.rstrip(), suffix.lstrip()
    if len(action) < len(head) + len(tail):
        return None
    if action[: len(head)].lower() != head.lower() or action[len(action) - len(tail) :].lower() != tail.lower():
        return None
    raw_slot = action[len(head) : len(action) - len(tail)]
    if (head != prefix and not raw_slot[:1].isspace()) or (tail != suffix and not raw_slot[-1:].isspace()):
        return None  # "go to <place>" needs the space: "go tomorrow" does not fill it
    slot = raw_slot.strip()
    if not slot or any(c in _SLOT_FORBIDDEN for c in slot):
        return None
    return prefix + " ".join(slot.split()) + suffix


def project(response: str, admissible: Sequence[str], templates: Sequence[str] = ()) -> Projection:
    """Extract the action of ``response`` and check it against ``admissible``, then ``templates``."""
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
    one_line = "\n" not in raw.strip() and "\r" not in raw.strip()
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
    if one_line:
        for template in templates or ():
            filled = fill_template(action, template)
            if filled is not None and len(filled) <= MAX_ACTION_CHARS:
                return Projection(filled, True)
    if templates:
        return Projection(action, False, "neither an admissible action nor a filled-in " + " / ".join(map(str, templates)))
    return Projection(action, False, "not an admissible action")
