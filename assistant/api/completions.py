"""Chat completions: plan, admit, generate, answer (whole or streamed) and account.

Stateless like OpenAI's API: the client sends the history and the token budget trims its
oldest turns. Every completion is admitted by the governor at API priority (voice goes
first): over the rate → 429, queue full or too hot → 503, each with the governor's
Retry-After. Tools and ``response_format`` are planned by :mod:`.tools`; with
``api.allow_actions`` a plain request may trigger the device's own [[actions]].
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from ..brain import Job, NotReady
from ..errors import PromptTooLong
from ..llm.conversation import stateless_prompt
from ..llm.grammar import JsonPiece
from ..thermal.admission import Busy
from ..turn import Conversation, Outcome, Piece, Turn, TurnEvent, TurnRequest
from . import device, shapes
from .guard import error_body
from .schema import ChatRequest
from .state import ApiState
from .tools import CallStream, Plan, PlanError, plan

__all__ = ["LOADING_RETRY_S", "ApiError", "complete"]

log = logging.getLogger(__name__)

#: Retry-After while the model loads; loading the 0.5B model takes about a second
LOADING_RETRY_S = 5


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


async def complete(state: ApiState, body: ChatRequest, request: Request) -> Response:
    arrived = state.brain.clock()
    brain, llm = state.brain, state.config.llm
    if body.speak and state.mouth is None:
        raise ApiError(400, "speak: this device has no voice output", param="speak")
    if not brain.ready:
        raise _not_ready(brain.problem or "the model is still loading")
    max_tokens = min(body.requested_tokens or llm.max_tokens, llm.max_tokens)
    how, tokens, plain = _prepare(state, body, max_tokens)
    # device mode: a "Shall I …?" waits under an id only this server issues
    confirmation = uuid.uuid4().hex
    turn_request = _turn_request(
        body, how, tokens, max_tokens=max_tokens, arrived=arrived, confirmation=confirmation
    )
    turn_request = dataclasses.replace(turn_request, plain=plain)
    try:
        gone, turn = await _or_gone(request, state.turns.start(turn_request))
    except Busy as exc:
        raise _busy(exc) from None
    except NotReady as exc:
        raise _not_ready(str(exc)) from None
    if gone:
        state.metrics.outcome("cancelled")
        return Response(status_code=499)  # nobody is listening
    job = turn.job
    if job is None:  # a yes or no to the question its confirmation id names: no model
        async for _ in turn:
            pass
        turn.end()
        state.metrics.outcome("ok")
        return shapes.reply(state.model_id, turn.said, body.stream)
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    asked = confirmation if how.mode == "device" else ""
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _sse(
                state,
                turn,
                job,
                completion_id,
                usage=include_usage,
                speak=body.speak,
                how=how,
                asked=asked,
            ),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    async def collect() -> None:
        async for _ in turn:
            pass

    gone = True
    try:
        gone, _ = await _or_gone(request, collect())
    finally:
        if gone:
            turn.cancel()  # stops the engine: the client left
    await job.done
    _finish(state, turn, body.speak)
    if gone:
        return Response(status_code=499)
    if job.cut:  # the service stopped mid-answer: say so, never a partial "length"
        raise ApiError(
            503, shapes.cut_message(job), "server_error", code="shutdown", outcome="cancelled"
        )
    message, reason = shapes.message(job, how, turn.text, turn.said, turn.hit)
    extra = {"confirmation": asked} if _asks(turn) and asked else {}
    return shapes.completion(
        completion_id, state.model_id, message, reason, shapes.usage(job), **extra
    )


def _turn_request(
    body: ChatRequest,
    how: Plan,
    tokens: list[int],
    *,
    max_tokens: int,
    arrived: float,
    confirmation: str,
) -> TurnRequest:
    """The house's turn for this request: a device turn (guarded, the actions decided, in
    the API conversation named by ``confirmation``) or a plain, tools or JSON answer."""
    if body.confirmation is not None and how.mode != "device":
        raise ApiError(
            400,
            "confirmation: only a device action's question takes one (api.allow_actions, "
            "a request without tools)",
            param="confirmation",
        )
    return TurnRequest(
        "api",
        how.request,
        Conversation(device.key(confirmation)),
        act=how.mode == "device",
        answers=device.key(body.confirmation) if body.confirmation else "",
        tokens=tokens,
        constraint=how.constraint,
        stops=body.stops,
        overrides={
            "max_tokens": max_tokens,
            "temperature": body.temperature,
            "top_p": body.top_p,
            "seed": body.seed,
        },
        arrived=arrived,
    )


def _asks(turn: Turn) -> bool:
    """The turn ended with a "Shall I …?" that waits for its yes."""
    return turn.decision is not None and turn.decision.outcome == "confirm"


def _prepare(
    state: ApiState, body: ChatRequest, max_tokens: int
) -> tuple[Plan, list[int], list[int] | None]:
    """The plan, the prompt's tokens and (device mode) the prompt without the actions, or
    the ApiError (400) that says what is wrong."""
    llm = state.config.llm
    try:
        how = plan(body, llm.system_prompt)
    except PlanError as exc:
        raise ApiError(400, str(exc), param=exc.param) from None
    actor = state.turns.actor
    if how.mode == "text" and state.config.api.allow_actions and actor and actor.actions:
        how = how.with_actions(actor)
    if how.constraint is not None:  # a schema llama.cpp refuses is a 400, before admission
        try:
            state.brain.loaded.check_grammar(how.constraint)
        except ValueError as exc:
            param = {"json": "response_format", "tools": "tools"}.get(how.mode, "messages")
            raise ApiError(400, str(exc), param=param) from None
    fmt = state.brain.loaded.chat_format
    try:
        prompt = stateless_prompt(fmt, how.messages, llm.system_prompt, llm.n_ctx, max_tokens)
        plain = how.plain and stateless_prompt(fmt, how.plain, "", llm.n_ctx, max_tokens).tokens
    except PromptTooLong as exc:
        raise ApiError(400, str(exc), code="context_length_exceeded", param="messages") from None
    except ValueError as exc:
        raise ApiError(400, str(exc), param="messages") from None
    opening = (fmt.encode_markup or fmt.encode)(how.opening) if how.opening else []
    return how, prompt.tokens + opening, plain or None


def _finish(state: ApiState, turn: Turn, speak: bool) -> None:
    """The turn is over for this client: record it, count the request, speak it if asked."""
    record = turn.end()
    state.metrics.outcome(
        {"stop": "ok", "tool_call": "ok", "cancelled": "cancelled", "shutdown": "cancelled"}.get(
            record.outcome, "length"
        )
    )
    spoken = turn.answer
    cut = turn.job is not None and turn.job.cut
    if speak and not turn.cancelled and not cut and spoken and state.mouth is not None:
        metrics, arrived = state.metrics, turn.arrived

        def heard(at: float) -> None:
            metrics.observe_first_audio(at - arrived)

        if not state.mouth.say(spoken, heard):
            log.warning("turn %d: not spoken, the device is already speaking", record.id)


def _chunks(
    event: TurnEvent, turn: Turn, how: Plan, calls: CallStream, *, cid: str, model: str
) -> list[str]:
    """A turn event as OpenAI stream chunks: text, a tool call's deltas (tools mode), the
    constrained JSON (json mode), what came of a device action."""
    if isinstance(event, Outcome):
        said = event.decision.said
        return [shapes.chunk(cid, model, {"content": f" {said}" if turn.text else said}, None)]
    if not isinstance(event, Piece):
        return []
    piece = event.text
    if not isinstance(piece, JsonPiece) or how.mode == "json":
        return [shapes.chunk(cid, model, {"content": piece}, None)]
    if how.mode == "tools":
        return [shapes.chunk(cid, model, {"tool_calls": [d]}, None) for d in calls.feed(piece)]
    return []


async def _sse(
    state: ApiState,
    turn: Turn,
    job: Job,
    cid: str,
    *,
    usage: bool,
    speak: bool,
    how: Plan,
    asked: str,
) -> AsyncIterator[str]:
    model = state.model_id
    finished = False
    calls = CallStream()
    try:
        yield shapes.chunk(cid, model, {"role": "assistant", "content": ""}, None)
        try:
            async for event in turn:
                for chunk in _chunks(event, turn, how, calls, cid=cid, model=model):
                    yield chunk
        except Exception as exc:  # noqa: BLE001 - the engine failed mid-answer: tell the client
            log.error("generation failed: %s", exc)
            yield f"data: {error_body(str(exc), 'server_error').decode()}\n\n"
            return
        if job.cut:  # an error event: the openai client raises, curl shows it
            cut = error_body(shapes.cut_message(job), "server_error", "shutdown")
            yield f"data: {cut.decode()}\n\n"
            finished = True
            return
        reason = shapes.reason(job, turn.hit)
        if how.mode == "tools" and calls.text:
            for delta in calls.finish():
                yield shapes.chunk(cid, model, {"tool_calls": [delta]}, None)
            reason = "tool_calls" if shapes.complete_json(job) else reason
        extra = {"confirmation": asked} if _asks(turn) and asked else {}
        yield shapes.event(
            cid, model, [{"index": 0, "delta": {}, "finish_reason": reason}], **extra
        )
        if usage:
            yield shapes.event(cid, model, [], usage=shapes.usage(job))
        yield "data: [DONE]\n\n"
        finished = True
    finally:
        # done, or the client left: Starlette cancels this generator, and every await in
        # its cancelled scope would be cancelled again, so the bookkeeping waits in a callback
        if not finished:
            turn.cancel()
        job.cancel()
        job.done.add_done_callback(lambda _: _finish(state, turn, speak))
