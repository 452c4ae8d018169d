"""An OpenAI-compatible chat endpoint for any loadable causal LM, on loopback.

``POST /v1/chat/completions`` and ``GET /v1/models`` (plus ``GET /health``), enough for the external
miner and for OpenAI clients: the request's messages go through the model's chat template, the reply
is one (or ``n``) sampled completions. Built on the standard library's ``ThreadingHTTPServer``;
generation is serialized by a lock (one model, CPU-bound), so concurrent requests queue instead of
interleaving. Not streaming. Errors come back as OpenAI-style ``{"error": {...}}`` JSON with a 4xx/5xx
status: a bad request is the client's fault and says which field is wrong.

No single request can wedge it (``Limits``): a prompt that does not fit the model's context with its
``max_tokens`` is refused with 400 before it reaches the model; a generation stops after
``request_seconds`` (finish reason "length"); a request that waits longer than that for the model gets 503;
sockets time out, so a client that sends less body than it announced is dropped; ``/health`` answers 503
while one generation has held the model for longer than its limit allows.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ROLES = ("system", "user", "assistant")
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_SEED = 2**63 - 1  # torch.manual_seed's range


@dataclass(frozen=True)
class Limits:
    """What one request may cost the server.

    Attributes:
        request_seconds: a generation stops after this long; a request waits at most this long for the model.
        socket_seconds: a connection idle (or a body unsent) this long is closed.
        context: prompt plus ``max_tokens`` must fit this many tokens (None: the model's
            ``max_position_embeddings``).
    """

    request_seconds: float = 120.0
    socket_seconds: float = 30.0
    context: int | None = None


class RequestError(Exception):
    """A malformed request; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ChatModel:
    """A causal LM with its tokenizer, able to answer chat messages."""

    model: Any
    tokenizer: Any
    name: str
    limits: Limits = field(default_factory=Limits)
    lock: threading.Lock = field(default_factory=threading.Lock)
    busy_since: float | None = None  # when the generation now holding the model started (None: idle)

    @property
    def context(self) -> int | None:
        return self.limits.context or getattr(getattr(self.model, "config", None), "max_position_embeddings", None)

    def stuck_for(self) -> float:
        """Seconds the current generation has run past its time limit (0: none is, or it is within it)."""
        since = self.busy_since
        return max(0.0, time.monotonic() - since - self.limits.request_seconds - 5.0) if since is not None else 0.0

    def prompt_text(self, messages: list[dict[str, str]]) -> str:
        """The chat template applied (a plain "role: content" transcript for models without one)."""
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def complete(
        self,
        messages: list[dict[str, str]],
        max_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        n: int = 1,
        stop: list[str] | None = None,
        seed: int | None = None,
    ) -> tuple[list[tuple[str, str]], int, int]:
        """([(text, finish_reason)] * n, prompt tokens, completion tokens)."""
        import torch

        text = self.prompt_text(messages)
        context = self.context
        if context is not None and len(text) > 64 * context:  # far beyond any tokenization of `context` tokens
            raise RequestError(f"the prompt ({len(text):,} characters) cannot fit the model's context of "
                               f"{context} tokens")
        enc = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")
        prompt_tokens = int(enc["input_ids"].shape[1])
        if context is not None and prompt_tokens + max_tokens > context:
            raise RequestError(f"the prompt ({prompt_tokens} tokens) plus max_tokens ({max_tokens}) exceeds the "
                               f"model's context of {context} tokens; shorten the messages or lower max_tokens")
        device = next(self.model.parameters()).device
        input_ids = enc["input_ids"].to(device)
        attention = enc.get("attention_mask", torch.ones_like(input_ids)).to(device)
        eos = self.tokenizer.eos_token_id
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else eos
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_tokens,
            "num_return_sequences": n,
            "pad_token_id": pad,
            "max_time": self.limits.request_seconds,
        }
        if eos is not None:
            kwargs["eos_token_id"] = eos
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        else:
            kwargs.update(do_sample=False)
        if not self.lock.acquire(timeout=self.limits.request_seconds):
            raise RequestError(f"the model is busy: waited {self.limits.request_seconds:g} s for it; retry later", 503)
        try:
            self.busy_since = time.monotonic()
            with torch.no_grad():
                if seed is not None:
                    torch.manual_seed(seed)
                out = self.model.generate(input_ids=input_ids, attention_mask=attention, **kwargs)
        finally:
            self.busy_since = None
            self.lock.release()
        new = out[:, input_ids.shape[1] :]
        results = []
        completion_tokens = 0
        for row in new.tolist():
            if eos is not None and eos in row:
                row, finish = row[: row.index(eos)], "stop"
            else:
                finish = "length" if len(row) >= max_tokens else "stop"
            if pad is not None and pad != eos:
                row = [t for t in row if t != pad]
            completion_tokens += len(row)
            answer = self.tokenizer.decode(row, skip_special_tokens=True)
            for s in stop or []:
                if s and s in answer:
                    answer, finish = answer[: answer.index(s)], "stop"
            results.append((answer, finish))
        return results, prompt_tokens, completion_tokens


def load_chat_model(path: str, device: str | None = None, limits: Limits | None = None) -> ChatModel:
    """Load a model for serving: through ``siri.models.loading.load_policy`` when available (tiny,
    smollm2-135m, saved policies with LoRA adapters), else transformers from a local directory."""
    try:
        from siri.models.loading import load_policy
    except ImportError:
        load_policy = None
    if load_policy is not None:
        policy = load_policy(path, reference=False, device=device)
        policy.model.eval()
        return ChatModel(policy.model, policy.tokenizer, str(path), limits or Limits())
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    if device:
        model.to(device)
    return ChatModel(model, tokenizer, str(path), limits or Limits())


def _number(
    body: dict[str, Any], key: str, default: float, low: float, high: float, integer: bool = False
) -> Any:
    value = body.get(key, default)
    if value is None:
        value = default
    ok = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise RequestError(f"'{key}' must be {kind} in [{low:g}, {high:g}], got {value!r}")
    return value


def parse_request(body: Any, max_tokens_limit: int = 4096) -> dict[str, Any]:
    """Validate a chat-completions request body; returns the generation arguments."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    if body.get("stream"):
        raise RequestError("streaming is not supported; send 'stream': false")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("'messages' must be a non-empty list of {role, content} objects")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise RequestError(f"messages[{i}] must be {{'role': one of {list(ROLES)}, 'content': a string}}")
        clean.append({"role": m["role"], "content": m["content"]})
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise RequestError("'stop' must be a string or a list of strings")
    seed = body.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise RequestError(f"'seed' must be an integer in [0, {MAX_SEED}], got {seed!r}")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    return {
        "messages": clean,
        "max_tokens": _number(
            {"max_tokens": max_tokens}, "max_tokens", 256, 1, max_tokens_limit, integer=True
        ),
        "temperature": float(_number(body, "temperature", 1.0, 0.0, 2.0)),
        "top_p": float(_number(body, "top_p", 1.0, 0.0, 1.0)),
        "n": _number(body, "n", 1, 1, 16, integer=True),
        "stop": stop,
        "seed": seed,
    }


def make_server(chat: ChatModel, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """The HTTP server (not started: call ``serve_forever``; ``port=0`` picks a free port)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "siri-serve/1"
        timeout = chat.limits.socket_seconds  # socketserver sets it on the connection: no read waits forever

        def log_message(self, format: str, *args: Any) -> None:  # quiet by default
            pass

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:  # the client hung up before its answer: nothing to tell it
                self.close_connection = True

        def _error(self, status: int, message: str) -> None:
            kind = "invalid_request_error" if status < 500 else "server_error"
            self._send(status, {"error": {"message": message, "type": kind, "code": status}})

        def do_GET(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            if path == "/v1/models":
                card = {"id": chat.name, "object": "model", "created": 0, "owned_by": "siri"}
                self._send(200, {"object": "list", "data": [card]})
            elif path == "/health":
                stuck = chat.stuck_for()
                if stuck > 0:
                    self._send(503, {"status": "stuck", "detail": f"a generation is {stuck:.0f} s past its time limit"})
                else:
                    self._send(200, {"status": "busy" if chat.busy_since is not None else "ok"})
            else:
                self._error(404, f"no route GET {path}; try /v1/models or POST /v1/chat/completions")

        def do_POST(self) -> None:
            path = self.path.split("?")[0].rstrip("/")
            if path != "/v1/chat/completions":
                self._error(404, f"no route POST {path}; use /v1/chat/completions")
                return
            try:
                header = self.headers.get("Content-Length") or "0"
                try:
                    length = int(header)
                except ValueError:
                    raise RequestError(f"Content-Length must be a number of bytes, got {header!r}") from None
                if length <= 0 or length > MAX_BODY_BYTES:
                    raise RequestError(f"need a JSON body of 1..{MAX_BODY_BYTES} bytes, got {length}")
                try:
                    raw = self.rfile.read(length)
                except TimeoutError:
                    raise RequestError(f"the body ended before its Content-Length ({length} bytes) within "
                                       f"{chat.limits.socket_seconds:g} s", 408) from None
                if len(raw) < length:
                    raise RequestError(f"the body has {len(raw)} bytes, Content-Length said {length}")
                try:
                    body = json.loads(raw)
                except (ValueError, UnicodeDecodeError) as e:
                    raise RequestError(f"the body is not valid JSON ({e})") from e
                args = parse_request(body)
                results, prompt_tokens, completion_tokens = chat.complete(**args)
            except RequestError as e:
                self._error(e.status, str(e))
                return
            except Exception as e:  # a generation failure must answer, not hang the client
                self._error(500, f"generation failed: {type(e).__name__}: {e}")
                return
            choices = [
                {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
                for i, (text, finish) in enumerate(results)
            ]
            self._send(
                200,
                {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": chat.name,
                    "choices": choices,
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                },
            )

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                return  # a client that hung up or went quiet: its business, not a server fault
            super().handle_error(request, client_address)

    return Server((host, port), Handler)
