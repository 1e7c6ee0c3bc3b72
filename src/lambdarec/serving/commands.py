"""``lambdarec serve`` and ``lambdarec recommender start|stop|status|ask``: the recommender service."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

from lambdarec.settings import Settings

app = typer.Typer(
    help="The recommender (BentoML HTTP + gRPC): start, stop, status, ask it for a session.",
    no_args_is_help=True,
)
console = Console()
err_console = Console(stderr=True)


def _settings() -> Settings:
    from lambdarec.context import current_settings

    return current_settings()


def start_recommender(settings: Settings) -> dict[str, str]:
    """Start the recommender under the supervisor (no-op when it runs).

    Returns:
        ``{"http": base URL, "docs": API docs URL, "grpc": host:port, "metrics": URL}``.

    Raises:
        RuntimeServiceError: It did not become live; the log tail is in the message.
        PrerequisiteError: BentoML or the checkout's ``bentos/recommender`` is missing.
    """
    from lambdarec.runtime.supervisor import Supervisor
    from lambdarec.serving.service import RecommenderService

    supervisor = Supervisor(settings, [RecommenderService(settings)])
    supervisor.up()
    return recommender_urls(settings) or {}


def recommender_urls(settings: Settings) -> dict[str, str] | None:
    """The running recommender's URLs, or None when it is stopped."""
    from lambdarec.runtime.service import ServiceRecord
    from lambdarec.runtime.supervisor import Supervisor
    from lambdarec.serving.service import RecommenderService

    service = RecommenderService(settings)
    http = Supervisor(settings, [service]).endpoint(service.name)
    record = ServiceRecord.load(service.record_path)
    if http is None or record is None:
        return None
    return {
        "http": http,
        "docs": f"{http}/docs",
        "metrics": f"{http}/metrics",
        "grpc": f"127.0.0.1:{record.ports['grpc_port']}",
    }


def stop_recommender(settings: Settings) -> list[str]:
    """Stop the recommender if it runs; returns the names stopped."""
    from lambdarec.runtime.supervisor import Supervisor
    from lambdarec.serving.service import RecommenderService

    return Supervisor(settings, [RecommenderService(settings)]).down()


def ask(settings: Settings, body: dict[str, Any], timeout_s: float = 10.0) -> tuple[int, dict[str, Any]]:
    """POST ``body`` to the running recommender's ``/recommend`` (with the token when one is set).

    Returns:
        ``(HTTP status, JSON answer)``.

    Raises:
        LookupError: The recommender is not running.
    """
    import httpx

    urls = recommender_urls(settings)
    if urls is None:
        raise LookupError("the recommender is not running: `lambdarec serve`")
    token = settings.serving.token.get_secret_value()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(f"{urls['http']}/recommend", json=body, headers=headers, timeout=timeout_s)
    return response.status_code, response.json()


def _print_urls(urls: dict[str, str]) -> None:
    console.print(f"recommender: [bold]{urls['http']}/recommend[/] (HTTP), [bold]{urls['grpc']}[/] (gRPC)")
    console.print(f"  API docs {urls['docs']} · metrics {urls['metrics']} · readiness {urls['http']}/readyz")
    console.print(
        f"  curl -s -X POST {urls['http']}/recommend -H 'Content-Type: application/json' "
        """-d '{"session_id": "s-1", "k": 5}'"""
    )
    grpc_body = """'{"session_id": "s-1", "k": 5}'"""
    console.print(f"  grpcurl -plaintext -d {grpc_body} {urls['grpc']} lambdarec.v1.Recommender/Recommend")


@app.command("start")
def start() -> None:
    """Start the recommender in the background (the engines must be up: `lambdarec services up`)."""
    from lambdarec.runtime.errors import PrerequisiteError, RuntimeServiceError

    try:
        with console.status("starting the recommender (loads torch, Feast and the champion's bundle)..."):
            urls = start_recommender(_settings())
    except (RuntimeServiceError, PrerequisiteError) as err:
        err_console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(1) from None
    _print_urls(urls)


@app.command("stop")
def stop() -> None:
    """Stop the recommender."""
    stopped = stop_recommender(_settings())
    console.print("stopped" if stopped else "not running")


@app.command("status")
def status() -> None:
    """Whether it runs, which model it serves and what it can reach."""
    import httpx

    settings = _settings()
    urls = recommender_urls(settings)
    if urls is None:
        console.print("recommender: stopped (`lambdarec serve`)")
        raise typer.Exit(1)
    token = settings.serving.token.get_secret_value()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    detail = httpx.post(f"{urls['http']}/status", json={}, headers=headers, timeout=10).json()
    _print_urls(urls)
    console.print_json(json.dumps(detail))


@app.command("ask")
def ask_command(
    session_id: Annotated[str, typer.Argument(help="The session to recommend for.")],
    user_id: Annotated[str | None, typer.Option(help="The logged-in user, if any.")] = None,
    k: Annotated[int, typer.Option(help="How many items (1..100).")] = 10,
) -> None:
    """Ask the running recommender for a session's top-k items (prints the JSON answer)."""
    body: dict[str, Any] = {"session_id": session_id, "k": k, **({"user_id": user_id} if user_id else {})}
    try:
        code, answer = ask(_settings(), body)
    except LookupError as err:
        err_console.print(f"[bold red]error:[/] {err}")
        raise typer.Exit(1) from None
    console.print_json(json.dumps(answer))
    if code >= 400:
        raise typer.Exit(1)


def serve_command() -> None:
    """Start the recommender (HTTP + gRPC) under the supervisor and print its URLs."""
    start()
