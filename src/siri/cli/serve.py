"""``siri serve --model PATH``: an OpenAI-compatible chat endpoint for a model, on loopback."""

from __future__ import annotations

import typer

from siri.cli.common import fail

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(
    model: str = typer.Option(
        ..., "--model", help="A model directory, a saved SIRI policy, 'tiny' or 'smollm2-135m'."
    ),
    host: str = typer.Option(
        "127.0.0.1", help="Address to bind; keep the loopback default unless you mean it."
    ),
    port: int = typer.Option(8000, min=0, max=65535, help="TCP port (0 picks a free one)."),
    device: str | None = typer.Option(None, help="torch device (default: cuda if available, else cpu)."),
    request_seconds: float = typer.Option(120.0, min=1.0, help="A generation stops after this long (finish "
                                          "reason 'length'); a request waits at most this long for the model (503)."),
    socket_seconds: float = typer.Option(30.0, min=1.0, help="Close a connection idle this long (e.g. a body "
                                         "shorter than its Content-Length)."),
    context: int | None = typer.Option(None, min=1, help="Refuse (400) prompts whose tokens plus max_tokens "
                                       "exceed this (default: the model's max_position_embeddings)."),
) -> None:
    """Serve MODEL at /v1/chat/completions and /v1/models (OpenAI-compatible, no auth, not streaming).

    GET /health says ok, busy, or (503) stuck: a generation past its time limit.
    """
    from siri.serve import Limits, load_chat_model, make_server

    if host not in LOOPBACK:
        typer.echo(f"warning: binding {host}: the endpoint has no authentication", err=True)
    try:
        chat = load_chat_model(model, device=device, limits=Limits(request_seconds, socket_seconds, context))
    except Exception as e:
        raise fail(f"cannot load model {model!r}: {e}", code=1) from e
    server = make_server(chat, host, port)
    bound_host, bound_port = server.server_address[:2]
    typer.echo(f"serving {chat.name} at http://{bound_host}:{bound_port}/v1 (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
