"""The HTTP app: OpenAI-compatible chat completions, models, health, status and metrics.

The completions themselves live in :mod:`.completions`. Bad input is a 4xx in OpenAI's
error shape, never a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException

from . import metrics as prom
from . import stream
from .completions import LOADING_RETRY_S, ApiError, complete
from .guard import Guard
from .schema import ChatRequest
from .state import ApiState

__all__ = ["ApiState", "create_app"]

log = logging.getLogger(__name__)

INVALID_JSON = "the body is not valid JSON (or not UTF-8)"


def create_app(state: ApiState) -> Any:
    """The ASGI app: FastAPI behind the :class:`Guard`."""
    app = FastAPI(
        title="qwen-assistant",
        summary="Offline assistant on a Raspberry Pi 5: OpenAI-compatible chat completions.",
        docs_url=None,  # the Swagger page loads scripts from a CDN; this runs offline
        redoc_url=None,
    )
    app.state.api = state
    metrics = state.metrics

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> Response:
        metrics.outcome(exc.outcome)
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> Response:
        metrics.outcome("bad_request")
        return _validation_error(exc).response()

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> Response:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        message = str(exc.detail)
        if exc.status_code == 400:  # FastAPI's body parser: bytes that are not UTF-8 JSON
            message = INVALID_JSON
            metrics.outcome("bad_request")
        return ApiError(exc.status_code, message, kind).response()

    @app.exception_handler(Exception)
    async def _bug(_request: Request, exc: Exception) -> Response:
        log.exception("internal error: %s", exc)
        metrics.outcome("error")
        return ApiError(
            500, "internal error; the service log has the details", "server_error"
        ).response()

    @app.get("/health", summary="200 once the model is loaded, 503 while loading")
    async def health() -> Response:
        brain = state.brain
        if brain.ready:
            return JSONResponse({"status": "ok", "model": state.model_id})
        status = "error" if brain.problem else "loading"
        body = {"status": status, "problem": brain.problem or None}
        return JSONResponse(body, status_code=503, headers={"Retry-After": str(LOADING_RETRY_S)})

    @app.get("/v1/models", summary="The one model this device runs")
    async def models() -> Response:
        card = {
            "id": state.model_id,
            "object": "model",
            "created": int(state.started),
            "owned_by": "qwen-assistant",
        }
        return JSONResponse({"object": "list", "data": [card]})

    @app.get("/status", summary="State, temperature, fan, rates, queue and the last turns")
    async def status() -> Response:
        return JSONResponse(state.snapshot())

    @app.get("/metrics", summary="Prometheus text format", response_class=PlainTextResponse)
    async def metrics_text() -> Response:
        text = prom.render(metrics, state.snapshot())
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    stream.register(app, state)

    @app.post("/v1/chat/completions", summary="OpenAI-compatible chat completion")
    async def chat(body: ChatRequest, request: Request) -> Response:
        return await complete(state, body, request)

    def count_refusal(status: int) -> None:
        metrics.outcome({401: "unauthorized"}.get(status, "bad_request"))

    return Guard(app, lambda: state.config.api, on_refuse=count_refusal)


def _validation_error(exc: RequestValidationError) -> ApiError:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    kind = first.get("type", "")
    if kind == "json_invalid":
        message = INVALID_JSON
    elif kind == "extra_forbidden":
        accepted = ", ".join(ChatRequest.model_fields)
        message = f"unknown parameter {param!r}; accepted: {accepted}"
    elif kind == "missing" and param:
        message = f"{param}: required"
    else:
        message = f"{param or 'body'}: {first.get('msg', 'invalid request')}"
    return ApiError(400, message, param=param, code=kind or None)
