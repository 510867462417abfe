"""An ASGI app for uvicorn that answers with the request's header names and values as JSON
(``[[name, value], ...]`` as the server put them in ``scope["headers"]``)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any


async def app(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[dict[str, Any]]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    headers = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
    body = json.dumps(headers).encode()
    start = {"type": "http.response.start", "status": 200}
    start["headers"] = [(b"content-type", b"application/json")]
    await send(start)
    await send({"type": "http.response.body", "body": body})
