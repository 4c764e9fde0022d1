"""Chat completions: plan, admit, generate, answer (whole or streamed) and account.

Stateless like OpenAI's API: the client sends the history and the token budget trims its
oldest turns. Every completion is admitted by the governor at API priority (voice goes
first): over the rate → 429, queue full or too hot → 503, each with the governor's
Retry-After. Tools and ``response_format`` are planned by :mod:`.tools`; with
``api.allow_actions`` a plain request may trigger the device's own [[actions]].
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from ..brain import Job, NotReady
from ..errors import PromptTooLong
from ..llm.conversation import stateless_prompt
from ..llm.grammar import JsonPiece
from ..thermal.admission import Busy, Priority
from . import device, shapes
from .guard import error_body
from .schema import ChatRequest
from .tools import CallStream, Plan, PlanError, plan

if TYPE_CHECKING:
    from .app import ApiState

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
    brain, llm, metrics = state.brain, state.config.llm, state.metrics
    if body.speak and state.mouth is None:
        raise ApiError(400, "speak: this device has no voice output", param="speak")
    if not brain.ready:
        raise _not_ready(brain.problem or "the model is still loading")
    max_tokens = min(body.requested_tokens or llm.max_tokens, llm.max_tokens)
    how, tokens = _prepare(state, body, max_tokens)
    turn_id = brain.next_id()
    if body.confirmation is not None and (answered := await _confirmed(state, body, how, turn_id)):
        return answered
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
        tokens,
        stops=body.stops,
        max_tokens=max_tokens,
        temperature=body.temperature,
        top_p=body.top_p,
        constraint=how.constraint,
    )
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _sse(
                state,
                job,
                completion_id,
                arrived,
                usage=include_usage,
                speak=body.speak,
                how=how,
                turn_id=turn_id,
            ),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    guarded = device.Guarded(job, turn_id) if how.mode == "device" else None

    async def collect() -> None:
        async for _ in guarded or job:
            pass

    try:
        gone, _ = await _or_gone(request, collect())
    finally:
        job.cancel()  # no-op when finished; stops the engine when the client left
    await job.done
    said, confirmation = ("", "")
    if not gone and not job.cut:
        said, confirmation = await _act(state, job, how, turn_id)
    shown = guarded.text if guarded is not None else job.text
    _finish(state, job, arrived, body.speak, cancelled=gone, turn_id=turn_id, text=shown, said=said)
    if gone:
        return Response(status_code=499)
    if job.cut:  # the service stopped mid-answer: say so, never a partial "length"
        raise ApiError(
            503, shapes.cut_message(job), "server_error", code="shutdown", outcome="cancelled"
        )
    message, reason = shapes.message(job, how, shown, said, guarded is not None and guarded.hit)
    extra = {"confirmation": confirmation} if confirmation else {}
    return shapes.completion(
        completion_id, state.model_id, message, reason, shapes.usage(job), **extra
    )


def _prepare(state: ApiState, body: ChatRequest, max_tokens: int) -> tuple[Plan, list[int]]:
    """The plan and the prompt's tokens, or the ApiError (400) that says what is wrong."""
    llm = state.config.llm
    try:
        how = plan(body, llm.system_prompt)
    except PlanError as exc:
        raise ApiError(400, str(exc), param=exc.param) from None
    actor = state.actor
    if how.mode == "text" and state.config.api.allow_actions and actor and actor.actions:
        how = how.with_actions(actor)
    if how.constraint is not None:  # a schema llama.cpp refuses is a 400, before admission
        try:
            state.brain.engine.check_grammar(how.constraint)
        except ValueError as exc:
            param = {"json": "response_format", "tools": "tools"}.get(how.mode, "messages")
            raise ApiError(400, str(exc), param=param) from None
    fmt = state.brain.engine.chat_format
    try:
        prompt = stateless_prompt(fmt, how.messages, llm.system_prompt, llm.n_ctx, max_tokens)
    except PromptTooLong as exc:
        raise ApiError(400, str(exc), code="context_length_exceeded", param="messages") from None
    except ValueError as exc:
        raise ApiError(400, str(exc), param="messages") from None
    opening = (fmt.encode_markup or fmt.encode)(how.opening) if how.opening else []
    return how, prompt.tokens + opening


async def _confirmed(
    state: ApiState, body: ChatRequest, how: Plan, turn_id: int
) -> Response | None:
    """The answer to a yes or no sent with the ``confirmation`` id of the question it
    answers (no model needed), or None when it is a new request after all."""
    if how.mode != "device" or state.actor is None:
        raise ApiError(
            400,
            "confirmation: only a device action's question takes one (api.allow_actions, "
            "a request without tools)",
            param="confirmation",
        )
    reply = await device.confirmed(state.actor, body.confirmation or "", how.request, turn_id)
    if reply is None:
        return None
    log.info("turn %d api: %r → %s", turn_id, how.request, reply.said)
    state.metrics.outcome("ok")
    return shapes.reply(state.model_id, reply.said, body.stream)


async def _act(state: ApiState, job: Job, how: Plan, turn_id: int) -> tuple[str, str]:
    """Device mode: run the model's call of a device action; what to answer about it and,
    for a "Shall I …?", the confirmation id the yes must come with."""
    if how.mode != "device" or state.actor is None:
        return "", ""
    decision, confirmation = await device.decide(
        state.actor, job, how.request, turn_id, shapes.complete_json(job)
    )
    return (decision.said if decision is not None else ""), confirmation


def _finish(
    state: ApiState,
    job: Job,
    arrived: float,
    speak: bool,
    *,
    cancelled: bool,
    turn_id: int | None = None,
    text: str = "",
    said: str = "",
) -> None:
    outcome = job.finish if job.cut or not cancelled else "cancelled"
    turn = state.brain.record("api", job, arrived, outcome, turn_id=turn_id)
    metrics = state.metrics
    metrics.outcome(
        {"stop": "ok", "tool_call": "ok", "cancelled": "cancelled", "shutdown": "cancelled"}.get(
            outcome, "length"
        )
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
    spoken = f"{text} {said}".strip()
    if speak and not cancelled and not job.cut and spoken and state.mouth is not None:

        def heard(at: float) -> None:
            metrics.observe_first_audio(at - arrived)

        if not state.mouth.say(spoken, heard):
            log.warning("turn %d: not spoken, the device is already speaking", turn.id)


async def _sse(
    state: ApiState,
    job: Job,
    cid: str,
    arrived: float,
    *,
    usage: bool,
    speak: bool,
    how: Plan,
    turn_id: int,
) -> AsyncIterator[str]:
    model = state.model_id
    finished = False
    said = confirmation = ""
    calls = CallStream()
    guarded = device.Guarded(job, turn_id) if how.mode == "device" else None
    try:
        yield shapes.chunk(cid, model, {"role": "assistant", "content": ""}, None)
        try:
            async for piece in guarded or job:
                if not isinstance(piece, JsonPiece) or how.mode == "json":
                    yield shapes.chunk(cid, model, {"content": piece}, None)
                elif how.mode == "tools":
                    for delta in calls.feed(piece):
                        yield shapes.chunk(cid, model, {"tool_calls": [delta]}, None)
        except Exception as exc:  # noqa: BLE001 - the engine failed mid-answer: tell the client
            log.error("generation failed: %s", exc)
            yield f"data: {error_body(str(exc), 'server_error').decode()}\n\n"
            return
        if job.cut:  # an error event: the openai client raises, curl shows it
            cut = error_body(shapes.cut_message(job), "server_error", "shutdown")
            yield f"data: {cut.decode()}\n\n"
            finished = True
            return
        reason = shapes.reason(job, guarded is not None and guarded.hit)
        if how.mode == "tools" and calls.text:
            for delta in calls.finish():
                yield shapes.chunk(cid, model, {"tool_calls": [delta]}, None)
            reason = "tool_calls" if shapes.complete_json(job) else reason
        elif guarded is not None:
            await job.done
            said, confirmation = await _act(state, job, how, turn_id)
            if said:
                yield shapes.chunk(
                    cid, model, {"content": f" {said}" if guarded.text else said}, None
                )
        extra = {"confirmation": confirmation} if confirmation else {}
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
        job.cancel()
        shown = guarded.text if guarded is not None else job.text
        job.done.add_done_callback(
            lambda _: _finish(
                state,
                job,
                arrived,
                speak,
                cancelled=not finished,
                turn_id=turn_id,
                text=shown,
                said=said,
            )
        )
