"""The test fakes, one of each, typed against the house's Protocols: an engine with the real
Engine's face (:class:`~assistant.llm.ports.TextEngine`) whose answers the test paces, a
voice (:class:`~assistant.speech.tts.TTS`), a speaker that plays nothing, a clock the test
moves, and a local HTTP server for actions."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from assistant.config import LLM
from assistant.llm.conversation import ChatML
from assistant.llm.grammar import JsonPiece
from assistant.llm.policy import Generation


class FakeEngine:
    """Answers every prompt with ``words``; ``gate`` (when set) is acquired before each
    token, so a test decides how far an answer gets; ``tick`` runs per token (a fake clock)."""

    def __init__(
        self,
        words: list[str],
        *,
        settings: LLM | None = None,
        gated: bool = False,
        tick: Callable[[], None] = lambda: None,
        call: str = "",
    ) -> None:
        self.words = words
        #: the JSON a constrained answer ends with (a tool call), when the caller constrains
        self.call = call
        self.constraints: list[Any] = []
        self.settings = settings or LLM(max_tokens=64)
        self.gate = threading.Semaphore(0) if gated else None
        self.tick = tick
        self.model_path = Path("fake-model.gguf")
        self.load_s = 0.0
        self.sha256 = "f" * 64
        self.chat_format = ChatML(1, 2, lambda text: [10 + ord(c) % 50 for c in text])
        self.closed = False
        self.failure = ""  # as the real engine's: why its decode loop died
        self.started = threading.Event()  # set when an answer's first token is out

    def generate(self, tokens: list[int], *, cancel: Any = None, **overrides: Any) -> Generation:
        cap = min(overrides.get("max_tokens") or self.settings.max_tokens, self.settings.max_tokens)
        generation = Generation()
        constraint = overrides.get("constraint")
        self.constraints.append(constraint)
        call = self.call if constraint is not None else ""
        generation._pieces = self._run(generation, cap, cancel or threading.Event(), call)
        return generation

    def _run(
        self, gen: Generation, cap: int, cancel: threading.Event, call: str = ""
    ) -> Iterator[str]:
        stats = gen.stats
        stats.prompt_tokens = 5
        try:
            for word in self.words:
                if self.gate is not None:
                    while not self.gate.acquire(timeout=0.05):
                        if cancel.is_set():
                            break
                if cancel.is_set():
                    stats.stop_reason = "cancelled"
                    return
                self.tick()
                stats.completion_tokens += 1
                gen.text += word
                yield word
                self.started.set()
                if stats.completion_tokens >= cap:
                    stats.stop_reason = "length"
                    return
            if call:
                for i in range(0, len(call), 8):
                    gen.json += call[i : i + 8]
                    stats.completion_tokens += 1
                    yield JsonPiece(call[i : i + 8])
                stats.stop_reason = "tool_call"
                return
            stats.stop_reason = "stop"
        finally:
            stats.stop_reason = stats.stop_reason or "cancelled"

    def check_grammar(self, constraint: Any) -> None:
        """As the real engine's, for the schema converter's part (no llama.cpp here)."""
        try:
            constraint.gbnf  # noqa: B018 - converted or refused
        except Exception as exc:  # noqa: BLE001 - the converter raises bare exceptions
            raise ValueError(f"the JSON schema cannot be used: {exc}") from None

    def release(self, n: int = 1) -> None:
        assert self.gate is not None
        for _ in range(n):
            self.gate.release()

    def close(self) -> None:
        self.closed = True


class FakeTTS:
    """100 samples of "speech" per word at ``sample_rate`` (at the default 1 kHz: 100 ms a
    word); remembers each text and signals each synthesis."""

    voice_path = Path("en_US-fake-medium.onnx")

    def __init__(self, sample_rate: int = 1000) -> None:
        self.sample_rate = sample_rate
        self.synthesised: list[str] = []
        self.event = threading.Semaphore(0)

    @staticmethod
    def samples(text: str) -> int:
        return 100 * len(text.split())

    def synthesize(self, text: str) -> Iterator[bytes]:
        self.synthesised.append(text)
        self.event.release()
        yield bytes(2 * self.samples(text))


class Clock:
    """A clock the test moves (``now``)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class NullSpeaker:
    def start(self, rate: int) -> None:
        pass

    def write(self, pcm: bytes) -> None:
        pass

    def stop(self) -> None:
        pass

    def abort(self) -> None:
        pass


@contextlib.contextmanager
def serve_http(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on a free loopback port, in a thread; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
