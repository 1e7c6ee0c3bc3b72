"""HTTP concerns of the recommender that sit in front of any route: auth, body size, JSON well-formedness.

:class:`RequestGuard` is a plain ASGI middleware (the BentoML service adds it), so every route —
``/recommend``, ``/recommend_batch``, ``/status`` — gets the same checks before BentoML parses a
body: a bearer token when one is configured (401, compared in constant time), a size limit (413),
and for JSON bodies, JSON that parses to an object (400 naming the problem). Health, readiness,
metrics and the API docs stay open, so probes and scrapers need no token.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from lambdarec.settings import Settings, load_settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz", "/metrics", "/docs", "/docs.json", "/", "/schema.json"})
"""Paths that need no token (probes, metrics, the API docs)."""


def settings_from_environment() -> Settings:
    """The settings of the environment the service runs in (``LAMBDAREC_*`` variables, env files)."""
    return load_settings()


async def _reply(send: Send, status: int, error: str, field: str | None = None) -> None:
    body = json.dumps({"error": error, **({"field": field} if field else {})}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestGuard:
    """Token, size and JSON checks in front of the recommender's routes.

    Args:
        app: The wrapped ASGI app.
        settings: ``settings.serving.token`` and ``max_request_bytes`` are used.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.token = settings.serving.token.get_secret_value().encode()
        self.max_bytes = settings.serving.max_request_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the request, then pass it (with its body replayed) to the app."""
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or scope["path"].startswith("/docs"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        if self.token:
            given = headers.get("authorization", b"")
            expected = b"Bearer " + self.token
            if not hmac.compare_digest(given, expected):
                await _reply(send, 401, "missing or wrong bearer token", "authorization")
                return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _reply(send, 413, f"request body over {self.max_bytes} bytes", "body")
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            more = bool(message.get("more_body"))
            if len(body) > self.max_bytes:
                await _reply(send, 413, f"request body over {self.max_bytes} bytes", "body")
                return
        content_type = headers.get("content-type", b"application/json").split(b";")[0].strip()
        if scope["method"] == "POST" and content_type == b"application/json":
            try:
                parsed = json.loads(body or b"{}")
            except (ValueError, UnicodeDecodeError) as err:
                await _reply(send, 400, f"body is not valid JSON: {err}", "body")
                return
            if not isinstance(parsed, dict):
                await _reply(send, 400, "body must be a JSON object", "body")
                return
        elif scope["method"] == "POST":
            await _reply(send, 415, "send application/json", "content-type")
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)
