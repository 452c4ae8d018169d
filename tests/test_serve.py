"""``siri serve`` over real HTTP on loopback, and the external miner against it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from siri.rollout.types import StepRecord, Trajectory
from siri.serve import ChatModel, Limits, RequestError, load_chat_model, make_server, parse_request
from siri.skills.miners import ExternalMiner, MinerError, chat_completion
from siri.skills.prompts import MINING_VOCAB_TEXT, mining_words, parse_skills

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> {% endfor %}"
    "{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)
ACTIONS = [
    "go to countertop 1",
    "take apple 1 from countertop 1",
    "go to fridge 1",
    "move apple 1 to fridge 1",
]


def build_tiny_model(path: Path) -> None:
    """A random 1-layer Llama with a word-level tokenizer and a chat template, saved like any HF model."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = sorted(
        set(mining_words(MINING_VOCAB_TEXT + " " + " ".join(ACTIONS) + " put apple fridge system user"))
    )
    specials = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
    vocab = {w: i for i, w in enumerate(specials + [w for w in words if w not in specials])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", unk_token="<unk>", eos_token="<|im_end|>"
    )
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(path)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        pad_token_id=0,
        eos_token_id=vocab["<|im_end|>"],
        bos_token_id=None,
    )
    LlamaForCausalLM(config).save_pretrained(path)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny-llama")
    build_tiny_model(path)
    return path


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[tuple[str, object]]:
    chat = load_chat_model(str(model_dir), device="cpu")
    httpd = make_server(chat, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    yield f"http://{host}:{port}/v1", chat
    httpd.shutdown()
    httpd.server_close()


def _traj() -> Trajectory:
    steps = [
        StepRecord(
            group=0,
            traj=0,
            t=t,
            seed=0,
            task_type="pick_and_place",
            prompt_ids=[],
            response_ids=[],
            old_logprobs=[],
            action_mask=[],
            action=a,
            valid=True,
            reward=float(t == 3),
            done=t == 3,
            won=t == 3,
            anchor=t,
        )
        for t, a in enumerate(ACTIONS)
    ]
    return Trajectory(
        group=0,
        traj=0,
        seed=0,
        task="put a apple in fridge .",
        task_type="pick_and_place",
        steps=steps,
        won=True,
        score=1.0,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_external_miner_round_trip_over_http(server: tuple[str, object]) -> None:
    base_url, chat = server
    miner = ExternalMiner(
        base_url=base_url,
        model="tiny",
        api_key_env=None,
        temperature=0.0,
        max_tokens=24,
        retries=0,
        timeout=30,
    )
    skills = miner.mine("pick_and_place", [_traj()], max_skills=3)
    # The same prompt generated in-process, greedily, must be exactly what came over the wire.
    from siri.skills.prompts import mining_prompts

    (messages,) = mining_prompts("pick_and_place", [_traj()], 3)
    [(local_text, _)], prompt_tokens, _ = chat.complete(messages, max_tokens=24, temperature=0.0)
    remote_text = chat_completion(base_url, "tiny", messages, max_tokens=24, temperature=0.0, retries=0)
    assert remote_text == local_text and prompt_tokens > 50
    assert skills == parse_skills(local_text, 3)  # a random model writes no skills; parsing copes
    assert all(
        w
        in set(mining_words(MINING_VOCAB_TEXT + " ".join(ACTIONS)))
        | {"put", "apple", "fridge", "system", "user", "<", "unk", ">"}
        for w in mining_words(remote_text)
    )


def test_chat_completion_response_shape_and_models(server: tuple[str, object]) -> None:
    base_url, _ = server
    body = json.dumps(
        {
            "model": "x",
            "messages": [{"role": "user", "content": "go to fridge 1"}],
            "max_tokens": 5,
            "n": 2,
            "seed": 7,
            "temperature": 1.0,
        }
    ).encode()
    req = urllib.request.Request(
        base_url + "/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        reply = json.loads(r.read())
    assert reply["object"] == "chat.completion" and len(reply["choices"]) == 2
    for i, choice in enumerate(reply["choices"]):
        assert choice["index"] == i and choice["message"]["role"] == "assistant"
        assert choice["finish_reason"] in ("stop", "length")
    assert reply["usage"]["completion_tokens"] <= 10
    assert (
        reply["usage"]["total_tokens"]
        == reply["usage"]["prompt_tokens"] + reply["usage"]["completion_tokens"]
    )
    with urllib.request.urlopen(base_url + "/models", timeout=30) as r:
        models = json.loads(r.read())
    assert models["object"] == "list" and models["data"][0]["object"] == "model"


def test_http_errors_are_clear(server: tuple[str, object]) -> None:
    base_url, _ = server
    bad = [{"role": "wizard", "content": "hi"}]
    with pytest.raises(MinerError, match=r"HTTP 400 .*messages\[0\]"):
        chat_completion(base_url, "tiny", bad, retries=0)
    with pytest.raises(MinerError, match="HTTP 404"):
        chat_completion(base_url + "/nope", "tiny", [{"role": "user", "content": "hi"}], retries=0)
    port = _free_port()  # nothing listens here
    miner = ExternalMiner(
        base_url=f"http://127.0.0.1:{port}/v1", model="m", api_key_env=None, retries=1, timeout=5
    )
    with pytest.raises(MinerError, match=r"cannot reach .* is the server running.* gave up after 2 attempts"):
        miner.mine("pick_and_place", [_traj()], 3)


def test_retries_on_server_errors_and_rejects_malformed_replies() -> None:
    """A real loopback server that fails twice (503) and then answers; and one that answers garbage."""
    hits: list[str] = []

    class Flaky(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            hits.append(self.headers.get("Authorization", ""))
            if self.path.startswith("/garbage"):
                status, data = 200, b'{"choices": []}'
            elif len(hits) <= 2:
                status, data = 503, b'{"error": "busy"}'
            else:
                status, data = (
                    200,
                    json.dumps({"choices": [{"message": {"content": "WHEN a THEN b"}}]}).encode(),
                )
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        os.environ["SIRI_TEST_KEY"] = "sekrit"
        miner = ExternalMiner(
            base_url=url + "/v1", model="m", api_key_env="SIRI_TEST_KEY", retries=2, timeout=5, backoff=0.01
        )
        assert miner.mine("pick_and_place", [_traj()], 3) == ["WHEN a THEN b"]
        assert hits == ["Bearer sekrit"] * 3
        with pytest.raises(MinerError, match="malformed chat completion"):
            chat_completion(url + "/garbage", "m", [{"role": "user", "content": "x"}], retries=0, timeout=5)
    finally:
        os.environ.pop("SIRI_TEST_KEY", None)
        httpd.shutdown()
        httpd.server_close()


def test_parse_request_validation() -> None:
    ok = parse_request({"messages": [{"role": "user", "content": "hi"}], "stop": "x", "max_tokens": 3})
    assert ok["stop"] == ["x"] and ok["max_tokens"] == 3 and ok["temperature"] == 1.0 and ok["n"] == 1
    for body, message in [
        ([], "JSON object"),
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"role": "user", "content": 3}]}, r"messages\[0\]"),
        ({"messages": [{"role": "user", "content": "x"}], "temperature": 5}, "temperature"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "stream": True}, "streaming"),
        ({"messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop"),
    ]:
        with pytest.raises(RequestError, match=message):
            parse_request(body)


@pytest.mark.slow
def test_siri_serve_cli_end_to_end(model_dir: Path) -> None:
    """The real command in a subprocess: it prints its address, answers /v1/models, stops on SIGINT."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "siri",
            "serve",
            "--model",
            str(model_dir),
            "--port",
            str(port),
            "--device",
            "cpu",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert f"at http://127.0.0.1:{port}/v1" in line, (line, proc.stderr.read() if proc.poll() else "")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=30) as r:
            assert json.loads(r.read())["data"][0]["id"] == str(model_dir)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_siri_serve_cli_bad_model(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from siri.cli import app

    result = CliRunner().invoke(app, ["serve", "--model", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert "cannot load model" in result.output + (result.stderr if result.stderr_bytes else "")


# --- a server that no single request can wedge (issue 24) ------------------------------------------------


@pytest.fixture()
def limited(model_dir: Path) -> Iterator[tuple[str, int, ChatModel]]:
    """A server with short limits: 1 s of generation or queueing, 1 s of socket silence."""
    chat = load_chat_model(str(model_dir), device="cpu", limits=Limits(request_seconds=1.0, socket_seconds=1.0))
    httpd = make_server(chat, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    yield host, port, chat
    httpd.shutdown()
    httpd.server_close()


def _raw(host: str, port: int, request: bytes) -> tuple[int, dict]:
    """Send raw bytes, read the answer; (status, JSON body)."""
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def _post(body: bytes, length: str | None = None) -> bytes:
    return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length if length is not None else len(body)}\r\nConnection: close\r\n\r\n").encode() + body


def _chat(content: str, **extra: object) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": content}], **extra}).encode()


def test_client_errors_are_4xx_and_say_what_was_wrong(limited: tuple[str, int, ChatModel]) -> None:
    host, port, _ = limited
    status, body = _raw(host, port, _post(_chat("hi"), length="abc"))
    assert status == 400 and "Content-Length" in body["error"]["message"]
    status, body = _raw(host, port, _post(_chat("hi", seed=2**70)))
    assert status == 400 and "'seed'" in body["error"]["message"]
    long_prompt = " ".join(["apple"] * 2000)  # the model's context is 1024 tokens
    status, body = _raw(host, port, _post(_chat(long_prompt)))
    assert status == 400 and "context of 1024 tokens" in body["error"]["message"]
    # A body shorter than its Content-Length: the socket times out and the client hears why.
    status, body = _raw(host, port, _post(b'{"messages": []}', length="500"))
    assert status == 408 and "Content-Length" in body["error"]["message"]
    status, body = _raw(host, port, _post(_chat("go to fridge", max_tokens=3, seed=1)))  # still serving
    assert status == 200 and body["usage"]["completion_tokens"] <= 3


def test_a_busy_model_gives_503_and_health_reports_a_stuck_generation(limited: tuple[str, int, ChatModel]) -> None:
    host, port, chat = limited
    health = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert _raw(host, port, health) == (200, {"status": "ok"})
    with chat.lock:  # a generation holds the model...
        chat.busy_since = time.monotonic()
        status, body = _raw(host, port, _post(_chat("hi")))
        assert status == 503 and "busy" in body["error"]["message"]  # ...so a request waits 1 s, then gives up
        assert _raw(host, port, health) == (200, {"status": "busy"})
        chat.busy_since = time.monotonic() - 60  # ...for far longer than its limit allows
        status, body = _raw(host, port, health)
        assert status == 503 and body["status"] == "stuck"
        chat.busy_since = None


def test_a_generation_stops_at_its_time_limit(model_dir: Path) -> None:
    """max_time reaches generate: with a limit of 0 s nothing past the first token is generated."""
    chat = load_chat_model(str(model_dir), device="cpu", limits=Limits(request_seconds=1e-9))
    results, _, completion = chat.complete([{"role": "user", "content": "hi"}], max_tokens=500, temperature=1.0,
                                           seed=0)
    assert completion <= 2 and results[0][1] in ("length", "stop")


def test_a_client_that_hangs_up_leaves_no_traceback(model_dir: Path) -> None:
    """A real `siri serve`: clients that disconnect mid-request; its stderr stays clean and it keeps serving."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "siri", "serve", "--model", str(model_dir), "--port", str(port),
                             "--device", "cpu"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "at http://" in proc.stdout.readline()
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
                conn.sendall(_post(_chat("go to fridge", max_tokens=200, temperature=1.0)))
            # closed at once: the server's answer meets a closed socket
        status, _ = _raw("127.0.0.1", port, _post(_chat("hi", max_tokens=2)))
        assert status == 200
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
