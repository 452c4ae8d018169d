"""Skill miners behind one interface: ``mine(task_type, trajectories, max_skills) -> list[str]``.

The pipeline only knows this interface and ``make_miner``; what a miner shows a model lives in
``prompts`` and the rules of the model-free miner in ``trace``, so each miner here is just the wiring.

- ``TraceMiner``: deterministic abstraction of the trajectories by the rules of its environment, no LLM
  (ablation baseline).
- ``SelfMiner``: the policy itself (a frozen snapshot) reads its own successes — the paper's method.
  It takes a plain ``generate_text(messages_batch) -> texts`` callable so it knows nothing of models.
- ``ExternalMiner``: any OpenAI-compatible chat-completions endpoint over HTTP (stdlib ``urllib``),
  e.g. a large hosted model for the paper's comparison, or ``siri serve`` on loopback.

Every miner learns from the successes among the trajectories it is given (``prompts.successes``: the
won ones, and with ``min_score`` set also those scoring at least that). LLM miners split them into
prompts of ``episodes_per_prompt`` episodes each (small models have small contexts), parse every answer
with ``prompts.merge_answers``, and keep the first ``max_skills`` distinct skills.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from siri.rollout.types import Trajectory
from siri.skills.prompts import Messages, merge_answers, mining_prompts
from siri.skills.trace import trace_skills

MINERS = ("self", "external", "trace")


class MinerError(Exception):
    """A miner could not get an answer (endpoint down, HTTP error, malformed reply); says what to check."""


class Miner(Protocol):
    name: str

    def mine(self, task_type: str, trajectories: Sequence[Trajectory], max_skills: int) -> list[str]: ...


@dataclass
class TraceMiner:
    """Skills from ``trace_skills`` with the rules of environment ``env`` (a ``siri.envs`` name): no model involved.

    ``style`` is the trace wording (``siri.skills.trace.TRACE_STYLES``); "legacy" reproduces the texts of runs
    made before the "sentences" default.
    """

    env: str
    min_score: float | None = None
    name: str = "trace"
    style: str = "sentences"

    def mine(self, task_type: str, trajectories: Sequence[Trajectory], max_skills: int) -> list[str]:
        return trace_skills(self.env, task_type, trajectories, max_skills=max_skills, min_score=self.min_score,
                            style=self.style)


@dataclass
class SelfMiner:
    """The policy as its own miner, through ``generate_text(messages_batch) -> list[str]``."""

    generate_text: Callable[[list[Messages]], list[str]]
    episodes_per_prompt: int = 3
    max_steps: int = 24
    obs_words: int = 0
    min_score: float | None = None
    name: str = "self"

    def mine(self, task_type: str, trajectories: Sequence[Trajectory], max_skills: int) -> list[str]:
        prompts = mining_prompts(
            task_type, trajectories, max_skills, self.episodes_per_prompt, self.max_steps, self.obs_words,
            self.min_score,
        )
        if not prompts:
            return []
        answers = self.generate_text(prompts)
        if len(answers) != len(prompts):
            raise MinerError(f"generate_text returned {len(answers)} texts for {len(prompts)} prompts")
        return merge_answers([a if isinstance(a, str) else "" for a in answers], max_skills)


def chat_completion(
    base_url: str,
    model: str,
    messages: Messages,
    *,
    api_key: str | None = None,
    max_tokens: int = 512,
    temperature: float = 0.2,
    timeout: float = 60.0,
    retries: int = 2,
    backoff: float = 0.5,
) -> str:
    """One OpenAI-style chat completion; returns the assistant's text.

    Retries (with exponential backoff) only what may pass: connection failures, timeouts, HTTP 429 and
    5xx. Other HTTP errors and malformed replies fail at once with the server's message.
    """
    url = base_url.rstrip("/") + "/chat/completions"
    body = json.dumps(
        {"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature}
    ).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    last = ""
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")[:500]
            last = f"HTTP {e.code} from {url}: {detail}"
            if e.code == 429 or e.code >= 500:
                continue
            hint = " (check the API key environment variable)" if e.code in (401, 403) else ""
            raise MinerError(last + hint) from e
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            reason = getattr(e, "reason", e)
            last = f"cannot reach {url} ({reason}); is the server running (e.g. `siri serve --model PATH`)?"
            continue
        return _completion_text(raw, url)
    raise MinerError(f"{last} — gave up after {retries + 1} attempts")


def _completion_text(raw: bytes, url: str) -> str:
    try:
        reply: Any = json.loads(raw)
        content = reply["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise MinerError(f"malformed chat completion from {url}: {raw[:300]!r}") from e
    if content is None:
        return ""
    if not isinstance(content, str):
        raise MinerError(f"malformed chat completion from {url}: content is {type(content).__name__}")
    return content


@dataclass
class ExternalMiner:
    """Skills from an OpenAI-compatible endpoint.

    Attributes:
        base_url: the API root, e.g. "http://127.0.0.1:8000/v1" or "https://api.openai.com/v1".
        model: the model name the endpoint expects.
        api_key_env: name of the environment variable holding the key; unset or empty sends no key
            (local servers need none).
        timeout, retries, backoff: per request (see ``chat_completion``).
    """

    base_url: str
    model: str
    api_key_env: str | None = "OPENAI_API_KEY"
    timeout: float = 60.0
    retries: int = 2
    backoff: float = 0.5
    max_tokens: int = 512
    temperature: float = 0.2
    episodes_per_prompt: int = 3
    max_steps: int = 24
    obs_words: int = 0
    min_score: float | None = None
    name: str = "external"

    def mine(self, task_type: str, trajectories: Sequence[Trajectory], max_skills: int) -> list[str]:
        prompts = mining_prompts(
            task_type, trajectories, max_skills, self.episodes_per_prompt, self.max_steps, self.obs_words,
            self.min_score,
        )
        api_key = os.environ.get(self.api_key_env) if self.api_key_env else None
        answers = [
            chat_completion(
                self.base_url,
                self.model,
                messages,
                api_key=api_key,
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                timeout=self.timeout,
                retries=self.retries,
                backoff=self.backoff,
            )
            for messages in prompts
        ]
        return merge_answers(answers, max_skills)


def make_miner(name: str, **options: Any) -> Miner:
    """A miner by name: "trace" (needs ``env``), "self" (needs ``generate_text``), "external" (needs base_url, model)."""
    factories: dict[str, type] = {"trace": TraceMiner, "self": SelfMiner, "external": ExternalMiner}
    if name not in factories:
        raise ValueError(f"unknown miner {name!r}; expected one of {MINERS}")
    try:
        return factories[name](**options)
    except TypeError as e:
        raise ValueError(f"bad options for the {name} miner: {e}") from e
