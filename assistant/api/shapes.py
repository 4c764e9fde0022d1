"""The shapes of OpenAI's chat completion answers: a whole message, stream chunks, usage,
finish reasons, and the answer to a yes or no that needed no model."""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from fastapi.responses import JSONResponse, Response

from ..brain import Job
from .tools import Plan, ToolError, tool_calls

__all__ = [
    "chunk",
    "complete_json",
    "completion",
    "cut_message",
    "event",
    "message",
    "reason",
    "reply",
    "usage",
]

log = logging.getLogger(__name__)


def complete_json(job: Job) -> bool:
    """The constrained JSON was finished (not cut by a cap)."""
    return bool(job.json) and job.stats.stop_reason in ("tool_call", "stop")


def reason(job: Job, guarded: bool = False) -> str:
    """OpenAI's finish_reason: "stop" or "length" (token, time and repetition caps);
    ``guarded``: the claim guard ended the answer, which is a stop."""
    return "stop" if guarded or job.finish in ("stop", "tool_call") else "length"


def message(
    job: Job, how: Plan, shown: str, said: str, guarded: bool = False
) -> tuple[dict[str, Any], str]:
    """The answer's message and finish_reason (``shown``: the model's text that may be
    shown; ``said``: what came of a device action)."""
    content = shown
    if how.mode == "tools" and complete_json(job):
        try:
            calls = tool_calls(job.json, how.tools)
        except ToolError as exc:  # the grammar makes this unreachable; never a 500
            log.error("tool call does not fit its schema: %s", exc)
        else:
            return {"role": "assistant", "content": content.strip() or None, "tool_calls": calls}, (
                "tool_calls"
            )
    if how.mode == "json":
        content = job.json
    elif said:
        content = f"{content.strip()} {said}".strip()
    return {"role": "assistant", "content": content}, reason(job, guarded)


def cut_message(job: Job) -> str:
    n = job.stats.completion_tokens
    return f"the answer was cut after {n} token{'s' if n != 1 else ''}: {job.cut}; ask again"


def usage(job: Job) -> dict[str, int]:
    s = job.stats
    return {
        "prompt_tokens": s.prompt_tokens,
        "completion_tokens": s.completion_tokens,
        "total_tokens": s.prompt_tokens + s.completion_tokens,
    }


def event(completion_id: str, model: str, choices: list[Any], **extra: Any) -> str:
    data = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        **extra,
    }
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def chunk(completion_id: str, model: str, delta: dict[str, Any], finish: str | None) -> str:
    return event(completion_id, model, [{"index": 0, "delta": delta, "finish_reason": finish}])


def completion(
    completion_id: str,
    model: str,
    answer: dict[str, Any],
    finish: str,
    tokens: dict[str, int],
    **extra: Any,
) -> JSONResponse:
    """A whole chat.completion: one choice, its message and finish_reason, the usage."""
    return JSONResponse(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": answer, "finish_reason": finish}],
            "usage": tokens,
            **extra,
        }
    )


def reply(model: str, said: str, stream: bool) -> Response:
    """The answer to a yes or no (no model, no tokens), whole or as a stream."""
    cid = f"chatcmpl-{uuid.uuid4().hex}"
    if stream:
        events = [
            chunk(cid, model, {"role": "assistant", "content": said}, None),
            chunk(cid, model, {}, "stop"),
            "data: [DONE]\n\n",
        ]
        return Response("".join(events), media_type="text/event-stream")
    none = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    return completion(cid, model, {"role": "assistant", "content": said}, "stop", none)
