"""Prompt templates in the paper's shape, plain and skill-augmented, and the exact way back.

A prompt is: who the agent is and its task; (optionally) a skills block; the step count and the last
``k`` observation/action pairs; the current observation (with a one-line reminder of the task: a small model attends to nearby text
far more easily than to the first line); the admissible actions (and, when the environment accepts
free-form actions, one line showing their templates); the instruction to
reason in ``<think>...</think>`` and answer in ``<action>...</action>``. The skill-augmented prompt is
the plain prompt with one block inserted right after the task line, so ``strip_skills`` recovers the
plain prompt exactly (text and token ids) — what internalization re-scores actions under.
The wording is ours; the shape follows GiGPO's ALFWorld/WebShop prompts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from siri.rollout.parsing import template_parts

# What the agent is told it is acting in, per environment (unknown environments get the generic line).
ENV_DESCRIPTIONS: dict[str, str] = {
    "household": "a household: a room of numbered receptacles and objects that you can go to, open, take, and use",
    "alfworld": "a household: a room of numbered receptacles and objects that you can go to, open, take, and use",
    "shop": "an online shop: you search for products, open their pages, choose options, and buy",
    "webshop": "an online shop: you search for products, open their pages, choose options, and buy",
}
GENERIC_DESCRIPTION = "a text environment"
# Environments without a tiny model of their own: kept out of TEMPLATE_VOCAB_TEXT, which keys the tiny models'
# cache (a new line there would make every shipped tiny model stale).
MORE_DESCRIPTIONS: dict[str, str] = {
    "textworld": "a text adventure game: rooms, doors, containers and objects that you can go to, open, "
                 "take, put and use",
    "scienceworld": "a house for science experiments: rooms, objects, substances, devices, plants and animals "
                    "that you can move, open, activate, heat, mix, measure and focus on",
}

HEAD = "You are an expert agent acting in {description}. Your task is to: {task}\n"
SKILLS_HEADER = "Skills learned from earlier successes:\n"
SKILL_LINE = "- {skill}\n"
HISTORY_HEAD = "Before this step you took {steps} step(s). Your last {n} observation(s) and action(s):\n"
HISTORY_ITEM = "Observation {i}: {observation}\nAction {i}: {action}\n"
CURRENT = "You are now at step {step} of your task ({task}). Current observation: {observation}\n"
ADMISSIBLE = "Admissible actions:\n{actions}\n"
# Only for observations with action templates (shop's search page) whose placeholder is not listed already.
# Deliberately outside TEMPLATE_VOCAB_TEXT (which keys the tiny models' cache), but made only of its words.
TEMPLATES_LINE = "Admissible actions with your text: {templates}\n"
INSTRUCTION = (
    "Think step by step inside <think> </think>, then answer with exactly one admissible action "
    "inside <action> </action>."
)

TEMPLATE_VOCAB_TEXT = "\n".join(
    [HEAD, SKILLS_HEADER, SKILL_LINE, HISTORY_HEAD, HISTORY_ITEM, CURRENT, ADMISSIBLE, INSTRUCTION, GENERIC_DESCRIPTION, *list(ENV_DESCRIPTIONS.values())]
)
"""Every fixed word of the templates (add it to a word-level tokenizer's corpus)."""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def skills_block(skills: Sequence[str]) -> str:
    """The block inserted for a skill-augmented prompt ("" when there are no skills)."""
    if not skills:
        return ""
    return SKILLS_HEADER + "".join(SKILL_LINE.format(skill=_one_line(s)) for s in skills)


def build_prompt(
    env_name: str,
    task: str,
    observation: str,
    admissible: Sequence[str],
    step: int,
    history: Sequence[tuple[str, str]] = (),
    skills: Sequence[str] = (),
    history_len: int = 2,
    templates: Sequence[str] = (),
) -> str:
    """The user-message text of one step.

    ``history`` holds (observation, action) pairs of the earlier steps, oldest first; only the last
    ``history_len`` are shown. ``step`` is the number of actions taken so far. ``templates`` are the
    observation's ``action_templates``: shown in one line unless ``admissible`` already lists a
    placeholder of them (no templates: the prompt is exactly the one without the argument).
    """
    description = ENV_DESCRIPTIONS.get(env_name) or MORE_DESCRIPTIONS.get(env_name, GENERIC_DESCRIPTION)
    parts = [HEAD.format(description=description, task=_one_line(task)), skills_block(skills)]
    recent = list(history)[-history_len:] if history_len > 0 else []
    if step > 0 and recent:
        parts.append(HISTORY_HEAD.format(steps=step, n=len(recent)))
        first = step - len(recent) + 1
        for i, (obs, action) in enumerate(recent):
            parts.append(HISTORY_ITEM.format(i=first + i, observation=_one_line(obs), action=_one_line(action)))
    parts.append(CURRENT.format(step=step + 1, task=_one_line(task), observation=_one_line(observation)))
    parts.append(ADMISSIBLE.format(actions="\n".join(_one_line(a) for a in admissible)))
    if templates and not _lists_placeholder(admissible, templates):
        parts.append(TEMPLATES_LINE.format(templates=" or ".join(_one_line(t) for t in templates)))
    parts.append(INSTRUCTION)
    return "".join(parts)


def _lists_placeholder(admissible: Sequence[str], templates: Sequence[str]) -> bool:
    """Whether an admissible action is a template with its slot still a ``<...>`` placeholder."""
    for template in templates:
        parts = template_parts(template)
        if parts is None:
            continue
        prefix, suffix = parts
        for action in admissible:
            slot = action[len(prefix) : len(action) - len(suffix)] if len(action) > len(prefix) + len(suffix) else ""
            if action.startswith(prefix) and action.endswith(suffix) and slot.startswith("<") and slot.endswith(">"):
                return True
    return False


_SKILLS_RE = re.compile(re.escape(SKILLS_HEADER) + r"(?:- [^\n]*\n)+")


def strip_skills(prompt: str) -> str:
    """The plain prompt of a skill-augmented one: the skills block after the task line removed.

    Works on the user text or on the whole chat-templated text; a prompt without a block is returned
    unchanged. Only a block that starts right after the task line counts, so skill-like text inside an
    observation is never touched.
    """
    head_end = prompt.find("Your task is to: ")
    if head_end < 0:
        return prompt
    line_end = prompt.find("\n", head_end)
    if line_end < 0:
        return prompt
    match = _SKILLS_RE.match(prompt, line_end + 1)
    if match is None:
        return prompt
    return prompt[: match.start()] + prompt[match.end() :]


def chat_text(tokenizer: Any, prompt: str) -> str:
    """The prompt wrapped in the tokenizer's chat template, ready for the assistant's turn."""
    messages = [{"role": "user", "content": prompt}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of already-templated text (the template carries any BOS itself)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def chat_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of a whole conversation with the chat template applied, ready for the assistant's turn."""
    return encode(tokenizer, tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """Token ids of a user prompt with the chat template applied."""
    return encode(tokenizer, chat_text(tokenizer, prompt))


def plain_prompt_ids(tokenizer: Any, skill_prompt_ids: Sequence[int]) -> list[int]:
    """Rebuild the plain prompt's ids from a skill-augmented step's prompt ids."""
    text = tokenizer.decode(list(skill_prompt_ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return encode(tokenizer, strip_skills(text))
