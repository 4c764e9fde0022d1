"""``GET /v1/events``: the house's event stream as server-sent events; ``POST
/v1/voice/listen``: the page's talk button; ``GET /`` and its assets: the kiosk page.

The stream starts with a ``snapshot`` (the /status document, the last turns and those in
progress), then every event of :class:`~assistant.events.EventHub` as one ``data:`` line of
JSON (no ``event:`` field: an EventSource's ``onmessage`` gets them all), and a comment
every :data:`HEARTBEAT_S` so proxies and browsers keep the connection. A reader that falls
behind is dropped by the hub: its stream ends and it reconnects. Authentication and the
Host check are the API's (:mod:`.guard`); a browser's EventSource, which cannot send a
header, may present the key in the ``qwen_assistant_key`` cookie (for this path only).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from .. import kiosk
from .guard import error_body
from .state import ApiState

__all__ = ["HEARTBEAT_S", "register"]

#: seconds between heartbeat comments on an idle stream
HEARTBEAT_S = 15.0


def _data(event: dict[str, Any]) -> str:
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"


async def _events(state: ApiState, request: Request) -> AsyncIterator[str]:
    hub = state.events
    sub = hub.subscribe()
    try:
        snapshot = {"type": "snapshot", "status": state.snapshot(), "turns": hub.recent()}
        yield _data(snapshot)
        while True:  # until the client leaves or the hub ends it (too slow; the stop)
            try:
                event = await asyncio.wait_for(sub.get(), HEARTBEAT_S)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield ": heartbeat\n\n"
                continue
            if event is None:  # dropped (too slow) or the service stops
                return
            yield _data(event)
    finally:
        sub.close()


def register(app: FastAPI, state: ApiState) -> None:
    # not in the OpenAPI schema: a stream of events has no response body to describe (the
    # events are documented in docs/api.md), and the button takes no input
    @app.get("/v1/events", include_in_schema=False)
    async def events(request: Request) -> Response:
        return StreamingResponse(
            _events(state, request),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.post("/v1/voice/listen", include_in_schema=False)
    async def listen() -> Response:
        if state.voice is None:
            why = state.voice_off or "no voice loop"
            body = error_body(f"this device is not listening: {why}", "invalid_request_error")
            return Response(body, status_code=409, media_type="application/json")
        state.voice.press()
        return Response(status_code=204)

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        if not state.config.kiosk.enabled:
            return JSONResponse({"detail": "kiosk.enabled = false"}, status_code=404)
        html = kiosk.page(state.config, can_speak=state.mouth is not None)
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})

    @app.get("/kiosk/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        found = kiosk.asset(name) if state.config.kiosk.enabled else None
        if found is None:
            return JSONResponse({"detail": "not found"}, status_code=404)
        body, media = found
        return Response(body, media_type=media, headers={"Cache-Control": "no-cache"})
