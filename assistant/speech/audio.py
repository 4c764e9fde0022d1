"""Audio output: a sound card through sounddevice (PortAudio), or a WAV file for headless runs.

A speaker takes 16-bit mono PCM: ``start(rate)``, ``write(pcm)`` (blocks until queued for
playback), ``stop()``.
"""

from __future__ import annotations

import threading
import wave
from pathlib import Path
from typing import Any, Protocol

from ..errors import AssistantError

__all__ = ["AudioError", "SoundDeviceSpeaker", "Speaker", "WavSpeaker"]


class AudioError(AssistantError):
    exit_code = 69


class Speaker(Protocol):
    def start(self, rate: int) -> None: ...

    def write(self, pcm: bytes) -> None: ...

    def stop(self) -> None: ...


class WavSpeaker:
    """Writes each utterance to ``path`` (the last one wins) — a speaker for tests and demos."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._wav: wave.Wave_write | None = None
        self.utterances = 0
        self.written = threading.Event()  # set after each finished utterance

    def start(self, rate: int) -> None:
        self.written.clear()
        self._wav = wave.open(str(self.path), "wb")  # noqa: SIM115 - closed in stop()
        self._wav.setnchannels(1)
        self._wav.setsampwidth(2)
        self._wav.setframerate(rate)

    def write(self, pcm: bytes) -> None:
        if self._wav is not None:
            self._wav.writeframes(pcm)

    def stop(self) -> None:
        if self._wav is not None:
            self._wav.close()
            self._wav = None
            self.utterances += 1
            self.written.set()


class SoundDeviceSpeaker:
    """The sound card named ``device`` (a substring of its PortAudio name; "" = default)."""

    def __init__(self, device: str = "") -> None:
        self.device = device
        self._stream: Any = None

    def _index(self, sd: Any) -> int | None:
        if not self.device:
            return None
        outputs = [
            (i, d["name"]) for i, d in enumerate(sd.query_devices()) if d["max_output_channels"]
        ]
        for i, name in outputs:
            if self.device.lower() in name.lower():
                return i
        names = ", ".join(repr(n) for _, n in outputs) or "none"
        raise AudioError(f"speech.output_device {self.device!r} not found; output devices: {names}")

    def start(self, rate: int) -> None:
        try:
            import sounddevice as sd
        except OSError as exc:  # no libportaudio2
            raise AudioError(f"cannot use audio: {exc}; install libportaudio2") from None
        try:
            self._stream = sd.RawOutputStream(
                samplerate=rate, channels=1, dtype="int16", device=self._index(sd)
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise AudioError(f"cannot open the speaker: {exc}") from None

    def write(self, pcm: bytes) -> None:
        if self._stream is not None:
            self._stream.write(pcm)

    def stop(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None
