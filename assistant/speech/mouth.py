"""The mouth: speaks texts one after another on its own thread, so callers never wait.

Synthesis of the next piper chunk overlaps playback only as far as the speaker buffers;
sentence-by-sentence streaming from the token stream comes with the voice loop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from .audio import Speaker

__all__ = ["Mouth"]

log = logging.getLogger(__name__)


class Mouth:
    def __init__(self, tts: Any, speaker: Speaker, *, clock: Callable[[], float] = time.monotonic):
        self.tts = tts
        self.speaker = speaker
        self.clock = clock
        self.speaking = False
        self._queue: queue.Queue[tuple[str, Callable[[float], None] | None] | None] = queue.Queue(8)
        self._thread = threading.Thread(target=self._run, name="mouth", daemon=True)
        self._thread.start()

    def say(self, text: str, on_first_audio: Callable[[float], None] | None = None) -> bool:
        """Queue ``text``; ``on_first_audio(clock())`` when its first sample goes out.

        False (and nothing queued) when eight texts are already waiting.
        """
        try:
            self._queue.put_nowait((text, on_first_audio))
        except queue.Full:
            return False
        return True

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            text, on_first = item
            self.speaking = True
            try:
                self.speaker.start(self.tts.sample_rate)
                try:
                    for pcm in self.tts.synthesize(text):
                        if on_first is not None:
                            on_first(self.clock())
                            on_first = None
                        self.speaker.write(pcm)
                finally:
                    self.speaker.stop()
            except Exception as exc:  # noqa: BLE001 - a broken speaker must not stop the service
                log.error("could not speak: %s", exc)
            finally:
                self.speaking = False

    def close(self) -> None:
        """Stop after the text being spoken; texts still queued are dropped."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join(timeout=5)
