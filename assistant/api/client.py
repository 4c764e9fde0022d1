"""A small client for ``ask --server`` and the API benchmark: stdlib only, streams SSE.

``url`` is ``http://HOST:PORT`` or ``unix:/path/to/socket``.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import (
    EX_DATAERR,
    EX_NOPERM,
    EX_TEMPFAIL,
    EX_UNAVAILABLE,
    EX_USAGE,
    AssistantError,
)

__all__ = [
    "ApiClientError",
    "ChatStream",
    "StreamResult",
    "stream_chat",
    "streams_at_once",
    "streams_elsewhere",
]


class ApiClientError(AssistantError):
    exit_code = 69  # EX_UNAVAILABLE


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def _connect(url: str, timeout: float) -> http.client.HTTPConnection:
    if url.startswith("unix:"):
        return _UnixConnection(url[5:], timeout)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApiClientError(f"--server {url!r}: expected http://HOST:PORT or unix:/PATH")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    return cls(parts.hostname, parts.port, timeout=timeout)


@dataclass
class StreamResult:
    text: str = ""
    first_token_s: float = 0.0
    total_s: float = 0.0
    finish_reason: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    #: seconds since the request, at each content piece
    times: list[float] = field(default_factory=list)


class ChatStream:
    """A streaming chat completion: iterate for the content pieces; ``result`` when done."""

    def __init__(
        self,
        url: str,
        messages: list[dict[str, str]],
        *,
        api_key: str,
        timeout: float,
        **params: Any,
    ) -> None:
        body = {"messages": messages, "stream": True, "stream_options": {"include_usage": True}}
        body.update({k: v for k, v in params.items() if v is not None})
        self.url = url
        self.body = json.dumps(body)
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = timeout
        self.result = StreamResult()

    def __iter__(self) -> Iterator[str]:
        conn = _connect(self.url, self.timeout)
        start = time.perf_counter()
        try:
            try:
                conn.request("POST", "/v1/chat/completions", self.body, self.headers)
                response = conn.getresponse()
            except OSError as exc:
                raise ApiClientError(f"cannot reach {self.url}: {exc}") from None
            if response.status != 200:
                raise _error(self.url, response)
            for raw in response:
                line = raw.decode("utf-8").strip()
                if line == "data: [DONE]":
                    break
                if line.startswith("data:"):
                    piece = self._event(json.loads(line[5:]))
                    if piece:
                        now = time.perf_counter() - start
                        if not self.result.times:
                            self.result.first_token_s = now
                        self.result.times.append(now)
                        self.result.text += piece
                        yield piece
            self.result.total_s = time.perf_counter() - start
        finally:
            conn.close()

    def _event(self, event: dict[str, Any]) -> str:
        """The content piece of one SSE event ("" if none); usage and finish recorded."""
        if "error" in event:  # the answer broke off (the service stopping: try again)
            error = event["error"]
            raise ApiClientError(
                f"{self.url}: {error.get('message', 'error')}",
                exit_code=EX_TEMPFAIL if error.get("code") == "shutdown" else None,
            )
        if event.get("usage"):
            self.result.usage = event["usage"]
        text = ""
        for choice in event.get("choices", []):
            text += choice.get("delta", {}).get("content") or ""
            self.result.finish_reason = choice.get("finish_reason") or self.result.finish_reason
        return text


def stream_chat(
    url: str,
    messages: list[dict[str, str]],
    *,
    api_key: str = "",
    timeout: float = 300.0,
    **params: Any,
) -> ChatStream:
    """POST a streaming chat completion (nothing is sent until it is iterated)."""
    return ChatStream(url, messages, api_key=api_key, timeout=timeout, **params)


def streams_at_once(
    url: str, chats: list[list[dict[str, str]]], max_tokens: int, params: dict[str, Any]
) -> tuple[list[StreamResult], float]:
    """One client thread per chat, all streaming a greedy answer from the same moment: their
    results and the wall time to the last piece (the benches run it in a process of its own:
    :func:`streams_elsewhere`). The first client error is raised once all have ended."""
    results = [StreamResult() for _ in chats]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(chats) + 1)

    def client(i: int) -> None:
        stream = stream_chat(url, chats[i], max_tokens=max_tokens, temperature=0.0, **params)
        barrier.wait()
        try:
            for _ in stream:
                pass
        except BaseException as exc:  # noqa: BLE001 - raised below
            errors.append(exc)
        results[i] = stream.result

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(chats))]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise ApiClientError(f"{url}: a stream failed: {errors[0]}")
    return results, wall


def streams_elsewhere(
    url: str, chats: list[list[dict[str, str]]], max_tokens: int, params: dict[str, Any]
) -> tuple[list[StreamResult], float]:
    """:func:`streams_at_once` in a process of its own, as a server's clients are: in the
    server's process (``bench api``'s, ``bench api --peer``'s) the clients would take the
    GIL and a core from its engine. Raises :class:`ApiClientError` as that does."""
    spawn = multiprocessing.get_context("spawn")  # (not fork: the caller runs threads)
    with ProcessPoolExecutor(1, mp_context=spawn) as clients:
        return clients.submit(streams_at_once, url, chats, max_tokens, params).result()


def _error(url: str, response: http.client.HTTPResponse) -> AssistantError:
    """The server's refusal as one line, with the exit status the same failure has locally
    (docs/cli.md): a prompt over the context 65, bad input 64, busy 75, wrong key 77."""
    raw = response.read()
    code = None
    try:
        error = json.loads(raw)["error"]
        message, code = error["message"], error.get("code")
    except (ValueError, KeyError, TypeError):
        message = raw.decode("utf-8", "replace").strip()[:200] or response.reason
    status = response.status
    if code == "context_length_exceeded":
        exit_code = EX_DATAERR
    elif status in (400, 413, 422):
        exit_code = EX_USAGE
    elif status in (429, 503):
        exit_code = EX_TEMPFAIL
    elif status in (401, 403):
        exit_code = EX_NOPERM
    else:
        exit_code = EX_UNAVAILABLE
    return ApiClientError(f"{url}: HTTP {status}: {message}", exit_code=exit_code)
