"""The HTTP app: OpenAI-compatible chat completions, models, health, status and metrics.

Stateless like OpenAI's API: the client sends the history and the token budget trims its
oldest turns. Every completion is admitted by the governor at API priority (voice goes
first): over the rate → 429, queue full or too hot → 503, each with the governor's
Retry-After. Bad input is a 4xx in OpenAI's error shape, never a 500.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from ..brain import Brain, Job, NotReady
from ..config import Config
from ..errors import PromptTooLong
from ..llm.conversation import stateless_prompt
from ..status import snapshot
from ..thermal.admission import Busy, Priority
from . import metrics as prom
from .guard import Guard, error_body
from .schema import ChatRequest

__all__ = ["ApiState", "create_app"]

log = logging.getLogger(__name__)

INVALID_JSON = "the body is not valid JSON (or not UTF-8)"
#: Retry-After while the model loads; loading the 0.5B model takes about a second
LOADING_RETRY_S = 5


@dataclass
class ApiState:
    """What the app reads on each request. ``config`` is swapped whole on reload."""

    config: Config
    brain: Brain
    governor: Any
    model_id: str = "qwen-assistant"
    mouth: Any = None  # speech.mouth.Mouth, when the device can speak
    metrics: prom.Metrics = field(default_factory=prom.Metrics)
    started: float = field(default_factory=time.time)
    liveness: Any = None  # systemd.Liveness: the parts the watchdog waits on
    starting: bool = False  # the service sets it while it loads (False: ready once loaded)
    voice: Any = None  # voice.VoiceLoop when the device listens
    voice_off: str = ""  # why there is no voice loop ("" while there is one)
    model_sha256: str = ""
    backend: str = ""  # "CPU (AMD EPYC)", "Vulkan: Vulkan0 …, 99 layers offloaded"
    runtime_dir: str = ""
    api_url: str = ""
    #: the last reload's outcome (reload.Reloaded.as_dict), None before the first
    reload: dict[str, Any] | None = None
    #: the device's [[actions]] (offered to API clients only with api.allow_actions)
    actor: Any = None

    def snapshot(self) -> dict[str, Any]:
        """The one status: /status serves it, status.json and the STATUS= line render it."""
        speaking = bool(self.mouth and self.mouth.speaking)
        stalled = self.liveness.stalled() if self.liveness is not None else []
        return snapshot(
            self.brain,
            self.governor,
            model=self.model_id,
            speaking=speaking,
            stalled=stalled,
            starting=self.starting,
            voice=self.voice,
            voice_off=self.voice_off,
            reload=self.reload,
        ) | {
            "pid": os.getpid(),
            "started_at": self.started,
            "config": str(self.config.source or ""),
            "model_sha256": self.model_sha256,
            "backend": self.backend,
            "runtime_dir": self.runtime_dir,
            "api": self.api_url,
        }


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        outcome: str = "bad_request",
    ) -> None:
        super().__init__(message)
        self.status, self.kind, self.code, self.param = status, kind, code, param
        self.retry_after = retry_after
        self.outcome = outcome  # the requests_total label it counts under

    def response(self) -> Response:
        headers = {"Retry-After": f"{self.retry_after:.0f}"} if self.retry_after else None
        return Response(
            error_body(str(self), self.kind, self.code, self.param),
            status_code=self.status,
            media_type="application/json",
            headers=headers,
        )


BUSY = {  # Busy.reason → status, error code, metrics outcome
    "rate": (429, "rate_limit_exceeded", "rate_limited"),
    "queue": (503, "queue_full", "queue_full"),
    "hot": (503, "too_hot", "too_hot"),
}


def _busy(exc: Busy) -> ApiError:
    status, code, outcome = BUSY[exc.reason]
    kind = "rate_limit_error" if status == 429 else "server_error"
    return ApiError(status, str(exc), kind, code=code, retry_after=exc.retry_after, outcome=outcome)


def _not_ready(message: str) -> ApiError:
    return ApiError(
        503,
        message,
        "server_error",
        code="not_ready",
        retry_after=LOADING_RETRY_S,
        outcome="not_ready",
    )


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
        status = "error" if brain.load_error else "loading"
        body = {"status": status, "problem": brain.load_error or None}
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

    @app.post("/v1/chat/completions", summary="OpenAI-compatible chat completion")
    async def chat(body: ChatRequest, request: Request) -> Response:
        return await _complete(state, body, request)

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


async def _until_disconnected(receive: Callable[[], Awaitable[Any]]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _or_gone(request: Request, work: Awaitable[Any]) -> tuple[bool, Any]:
    """Run ``work`` unless the client disconnects first: (gone, result)."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_until_disconnected(request.receive))
    try:
        await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if task.done():
        return False, task.result()
    task.cancel()
    return True, None


async def _complete(state: ApiState, body: ChatRequest, request: Request) -> Response:
    arrived = state.brain.clock()
    brain, llm, metrics = state.brain, state.config.llm, state.metrics
    if body.speak and state.mouth is None:
        raise ApiError(400, "speak: this device has no voice output", param="speak")
    if not brain.ready:
        raise _not_ready(brain.load_error or "the model is still loading")
    max_tokens = min(body.requested_tokens or llm.max_tokens, llm.max_tokens)
    try:
        prompt = stateless_prompt(
            brain.engine.chat_format,
            [(m.chat_role, m.text) for m in body.messages],
            llm.system_prompt,
            llm.n_ctx,
            max_tokens,
        )
    except PromptTooLong as exc:
        raise ApiError(400, str(exc), code="context_length_exceeded", param="messages") from None
    except ValueError as exc:
        raise ApiError(400, str(exc), param="messages") from None

    try:
        gone, ticket = await _or_gone(
            request, brain.admit(Priority.API, state.config.api.queue_timeout_s)
        )
    except Busy as exc:
        raise _busy(exc) from None
    except NotReady as exc:
        raise _not_ready(str(exc)) from None
    if gone:
        metrics.outcome("cancelled")
        return Response(status_code=499)  # nobody is listening
    job = brain.generate(
        ticket,
        prompt.tokens,
        stops=body.stops,
        max_tokens=max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
    )
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _sse(state, job, completion_id, arrived, usage=include_usage, speak=body.speak),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def collect() -> None:
        async for _ in job:
            pass

    try:
        gone, _ = await _or_gone(request, collect())
    finally:
        job.cancel()  # no-op when finished; stops the engine when the client left
    await job.done
    _finish(state, job, arrived, body.speak, cancelled=gone)
    if gone:
        return Response(status_code=499)
    if job.cut:  # the service stopped mid-answer: say so, never a partial "length"
        raise ApiError(503, _cut_message(job), "server_error", code="shutdown", outcome="cancelled")
    message = {"role": "assistant", "content": job.text}
    return JSONResponse(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": state.model_id,
            "choices": [{"index": 0, "message": message, "finish_reason": _reason(job)}],
            "usage": _usage(job),
        }
    )


def _reason(job: Job) -> str:
    """OpenAI's finish_reason: "stop" or "length" (token, time and repetition caps)."""
    return "stop" if job.finish == "stop" else "length"


def _cut_message(job: Job) -> str:
    n = job.stats.completion_tokens
    return f"the answer was cut after {n} token{'s' if n != 1 else ''}: {job.cut}; ask again"


def _usage(job: Job) -> dict[str, int]:
    s = job.stats
    return {
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "total_tokens": s.prompt_tokens + s.completion_tokens,
    }


def _finish(state: ApiState, job: Job, arrived: float, speak: bool, *, cancelled: bool) -> None:
    outcome = job.finish if job.cut or not cancelled else "cancelled"
    turn = state.brain.record("api", job, arrived, outcome)
    metrics = state.metrics
    metrics.outcome(
        {"stop": "ok", "cancelled": "cancelled", "shutdown": "cancelled"}.get(outcome, "length")
    )
    metrics.tokens(job.stats.completion_tokens)
    if turn.completion_tokens:
        metrics.observe_first_token(turn.first_token_s)
    log.info(
        "turn %d api: %s, %d prompt tokens (%d cached), %d tokens, %.2f s to first token, "
        "%.1f tok/s, %.2f s",
        turn.id,
        outcome,
        turn.prompt_tokens,
        turn.cached_tokens,
        turn.completion_tokens,
        turn.first_token_s,
        turn.decode_tok_s,
        turn.total_s,
        extra={"TURN_ID": turn.id},
    )
    if speak and not cancelled and not job.cut and job.text.strip() and state.mouth is not None:

        def heard(at: float) -> None:
            metrics.observe_first_audio(at - arrived)

        if not state.mouth.say(job.text, heard):
            log.warning("turn %d: not spoken, the device is already speaking", turn.id)


def _event(completion_id: str, model: str, choices: list[Any], **extra: Any) -> str:
    data = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        **extra,
    }
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _chunk(completion_id: str, model: str, delta: dict[str, Any], finish: str | None) -> str:
    return _event(completion_id, model, [{"index": 0, "delta": delta, "finish_reason": finish}])


async def _sse(
    state: ApiState, job: Job, cid: str, arrived: float, *, usage: bool, speak: bool
) -> AsyncIterator[str]:
    model = state.model_id
    finished = False
    try:
        yield _chunk(cid, model, {"role": "assistant", "content": ""}, None)
        try:
            async for piece in job:
                yield _chunk(cid, model, {"content": piece}, None)
        except Exception as exc:  # noqa: BLE001 - the engine failed mid-answer: tell the client
            log.error("generation failed: %s", exc)
            yield f"data: {error_body(str(exc), 'server_error').decode()}\n\n"
            return
        if job.cut:  # an error event: the openai client raises, curl shows it
            yield f"data: {error_body(_cut_message(job), 'server_error', 'shutdown').decode()}\n\n"
            finished = True
            return
        yield _chunk(cid, model, {}, _reason(job))
        if usage:
            yield _event(cid, model, [], usage=_usage(job))
        yield "data: [DONE]\n\n"
        finished = True
    finally:
        # done, or the client left: Starlette cancels this generator, and every await in
        # its cancelled scope would be cancelled again, so the bookkeeping waits in a callback
        job.cancel()
        job.done.add_done_callback(
            lambda _: _finish(state, job, arrived, speak, cancelled=not finished)
        )
