"""Running an action: its arguments checked, its effect run with a timeout, logged.

No shell ever: a command is an argv list and each ``{parameter}`` fills part of one
argument, so ``; rm -rf /`` arrives as that literal text in one argument. Output is kept
up to :data:`OUTPUT_LIMIT` bytes. Each action has a rate limit. Every call is logged with
its turn id, arguments and result, and a failure is said as a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any

from ..config.actions import PLACEHOLDER, Action, Http

__all__ = ["OUTPUT_LIMIT", "Outcome", "Recorder", "Runner", "expand"]

log = logging.getLogger(__name__)

#: once a command exited, how long its output may still take to arrive
OUTPUT_GRACE_S = 0.5
OUTPUT_LIMIT = 4096
SAID_OUTPUT = 200  # characters of output a `say` template's {output} gets


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is never followed: urllib would send the action's headers (its bearer
    token) to wherever the target points and turn a POST into a GET, and the assistant
    would report success for a request that never reached the device. A 3xx is a failure
    that names where it pointed."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect())


def _url_value(text: str) -> str:
    """A value for a URL, percent-encoded whole: a "/" cannot add a path segment, and "." or
    ".." (which quote() leaves alone) cannot climb one."""
    quoted = urllib.parse.quote(text, safe="")
    return quoted.replace(".", "%2E") if quoted in (".", "..") else quoted


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


@dataclass(frozen=True)
class Outcome:
    ok: bool
    #: what the assistant says about it
    said: str
    output: str = ""
    #: for the log: exit status, HTTP status, the error
    detail: str = ""


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def expand(template: str, values: Mapping[str, Any], escape: Callable[[str], str] = str) -> str:
    """``template`` with each ``{name}`` in ``values`` replaced (others left as they are)."""

    def sub(match: Any) -> str:
        name = match.group(1)
        return escape(_text(values[name])) if name in values else match.group(0)

    return PLACEHOLDER.sub(sub, template)


def _argv(action: Action, arguments: Mapping[str, Any]) -> list[str]:
    """The argv: ``{p}`` alone is dropped when p was not given; inside text it is ""."""
    values = dict.fromkeys(action.parameters.get("properties", {}), "") | dict(arguments)
    argv = []
    for part in action.command:
        whole = PLACEHOLDER.fullmatch(part)
        if whole and whole.group(1) not in arguments:
            continue  # an optional parameter that was not given: no argument at all
        argv.append(expand(part, values))
    return argv


def _json_escape(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


class _Watched(asyncio.subprocess.SubprocessStreamProtocol):
    """The stream protocol of asyncio's Process, telling when the process itself exited."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit, loop)
        self.exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self.exited.set()


def _body(body: Any, values: Mapping[str, Any]) -> Any:
    """A table body: a leaf that is exactly ``{p}`` takes p's JSON value, others expand."""
    if isinstance(body, str):
        whole = PLACEHOLDER.fullmatch(body)
        if whole and whole.group(1) in values:
            return values[whole.group(1)]
        return expand(body, values)
    if isinstance(body, dict):
        return {k: _body(v, values) for k, v in body.items()}
    if isinstance(body, list):
        return [_body(v, values) for v in body]
    return body


class Runner:
    """Runs actions; one per process (the rate limits are per action name)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._calls: dict[str, deque[float]] = {}

    def _rate_limited(self, action: Action) -> float:
        """Seconds until ``action`` may run again (0: now); records the call when 0."""
        now = self.clock()
        calls = self._calls.setdefault(action.name, deque())
        while calls and now - calls[0] >= 60.0:
            calls.popleft()
        if len(calls) >= action.rate_per_min:
            return 60.0 - (now - calls[0])
        calls.append(now)
        return 0.0

    async def run(self, action: Action, arguments: Mapping[str, Any], turn_id: int = 0) -> Outcome:
        """Run ``action`` with already-validated ``arguments``; never raises."""
        wait = self._rate_limited(action)
        if wait:
            outcome = Outcome(
                False,
                f"I did not do that: {action.name} may run {action.rate_per_min:g} times a "
                f"minute; try again in {wait:.0f} seconds.",
                detail="rate limited",
            )
        elif action.command:
            outcome = await self._command(action, arguments)
        elif action.http is not None:
            outcome = await self._http_within(action, action.http, arguments)
        else:  # parse_actions gives every action one effect
            outcome = self._failed("the action has no effect")
        log.info(
            "turn %d action %s(%s): %s%s",
            turn_id,
            action.name,
            json.dumps(dict(arguments), ensure_ascii=False),
            "ok" if outcome.ok else "failed",
            f" ({outcome.detail})" if outcome.detail else "",
            extra={"TURN_ID": turn_id, "ACTION": action.name},
        )
        return outcome

    async def _http_within(
        self, action: Action, http: Http, arguments: Mapping[str, Any]
    ) -> Outcome:
        """The request on a thread of its own, with one deadline for all of it (connect,
        send, the answer's headers and body): a target that trickles its answer is an honest
        failure at ``timeout_s``, and a stop never waits for that thread (a daemon)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Outcome] = loop.create_future()

        def settle(outcome: Outcome) -> None:
            if not done.done():
                done.set_result(outcome)

        def work() -> None:
            outcome = self._http(action, http, arguments)
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(settle, outcome)

        threading.Thread(target=work, name="action-http", daemon=True).start()
        try:
            return await asyncio.wait_for(asyncio.shield(done), action.timeout_s)
        except TimeoutError:
            host = urllib.parse.urlsplit(http.url).netloc
            return self._failed(f"{host} did not answer within {action.timeout_s:g} seconds")

    def _done(
        self, action: Action, arguments: Mapping[str, Any], output: str, detail: str
    ) -> Outcome:
        first = next((line.strip() for line in output.splitlines() if line.strip()), "")
        said = expand(action.say, {**arguments, "output": first[:SAID_OUTPUT]})
        return Outcome(True, said, output, detail)

    @staticmethod
    def _failed(why: str, output: str = "") -> Outcome:
        return Outcome(False, f"Sorry, that did not work: {why}.", output, why)

    async def _command(self, action: Action, arguments: Mapping[str, Any]) -> Outcome:
        argv = _argv(action, arguments)
        loop = asyncio.get_running_loop()
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _Watched(65536, loop),
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own process group: a timeout kills all of it
            )
            proc = asyncio.subprocess.Process(transport, protocol, loop)
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument
            return self._failed(
                f"{argv[0]} could not start ({getattr(exc, 'strerror', '') or exc})"
            )
        kept = bytearray()
        stdout = proc.stdout

        async def read() -> None:
            while stdout is not None and (chunk := await stdout.read(65536)):
                kept.extend(chunk[: max(0, OUTPUT_LIMIT - len(kept))])

        reading = asyncio.ensure_future(read())
        try:  # its exit, not its pipe's end (Process.wait waits for both)
            await asyncio.wait_for(protocol.exited.wait(), action.timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            reading.cancel()
            transport.close()
            output = kept.decode(errors="replace")
            return self._failed(f"it did not finish within {action.timeout_s:g} seconds", output)
        # it exited: what it wrote is in the pipe at once, but a child it left running in the
        # background may hold the pipe open; its end is not this command's end
        try:
            await asyncio.wait_for(asyncio.shield(reading), OUTPUT_GRACE_S)
        except TimeoutError:
            reading.cancel()
        transport.close()  # our end of the pipe: the child's writes are its own affair
        output = kept.decode(errors="replace")
        status = transport.get_returncode()
        if status != 0:
            return self._failed(f"{Path(argv[0]).name} exited with status {status}", output)
        return self._done(action, arguments, output, "exit 0")

    def _http(self, action: Action, http: Http, arguments: Mapping[str, Any]) -> Outcome:
        values: dict[str, Any] = dict(arguments)
        if http.token_file:
            try:
                values["token"] = Path(http.token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                return self._failed(
                    f"the token file {http.token_file} cannot be read ({exc.strerror})"
                )
        url = expand(http.url, arguments, _url_value)
        headers = {k: expand(v, values) for k, v in http.headers}
        if any("\r" in v or "\n" in v for v in headers.values()):
            return self._failed("a header value would contain a line break")
        if not all(v.isascii() or _latin1(v) for v in headers.values()):
            return self._failed("a header value has characters an HTTP header cannot carry")
        data = None
        if http.body is not None:
            if isinstance(http.body, str):
                text = expand(http.body, values, _json_escape)
            else:
                text = json.dumps(_body(http.body, values), ensure_ascii=False)
            data = text.encode()
            headers.setdefault("Content-Type", "application/json")
        # the scheme is http(s): spec.py refuses any other url
        request = urllib.request.Request(url, data=data, headers=headers, method=http.method)  # noqa: S310
        host = urllib.parse.urlsplit(url).netloc
        sent = self._send(request, host, action.timeout_s)
        if isinstance(sent, Outcome):
            return sent
        output, status = sent
        return self._done(action, arguments, output, f"HTTP {status}")

    def _send(
        self, request: urllib.request.Request, host: str, timeout_s: float
    ) -> tuple[str, int] | Outcome:
        """The answer's text and status, or the failure (this never raises)."""
        try:
            with _OPENER.open(request, timeout=timeout_s) as response:
                return response.read(OUTPUT_LIMIT).decode(errors="replace"), response.status
        except urllib.error.HTTPError as exc:
            body = exc.read(OUTPUT_LIMIT).decode(errors="replace")
            if 300 <= exc.code < 400:
                where = exc.headers.get("Location") or "elsewhere"
                return self._failed(
                    f"{host} answered {exc.code}, a redirect to {where}, which is not followed",
                    body,
                )
            return self._failed(f"{host} answered {exc.code} {exc.reason}", body)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError) or isinstance(exc, TimeoutError):
                return self._failed(f"{host} did not answer within {timeout_s:g} seconds")
            return self._failed(f"{host} could not be reached ({reason})")
        except (HTTPException, ValueError) as exc:  # not HTTP (or a reply http.client refuses)
            return self._failed(f"{host} did not give an HTTP answer ({type(exc).__name__})")


class Recorder(Runner):
    """For the benches: records what would run instead of running it, and says it ran
    (the action's own ``say``)."""

    def __init__(self) -> None:
        super().__init__()
        self.ran: list[tuple[str, dict[str, Any]]] = []

    async def run(self, action: Action, arguments: Mapping[str, Any], turn_id: int = 0) -> Outcome:
        self.ran.append((action.name, dict(arguments)))
        return Outcome(True, action.say)
