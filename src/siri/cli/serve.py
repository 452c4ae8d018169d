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
) -> None:
    """Serve MODEL at /v1/chat/completions and /v1/models (OpenAI-compatible, no auth, not streaming)."""
    from siri.serve import load_chat_model, make_server

    if host not in LOOPBACK:
        typer.echo(f"warning: binding {host}: the endpoint has no authentication", err=True)
    try:
        chat = load_chat_model(model, device=device)
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
