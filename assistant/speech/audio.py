"""Audio in and out: sound cards through sounddevice (PortAudio), WAV files for headless runs.

Everything is 16-bit little-endian mono PCM. A speaker: ``start(rate)``, ``write(pcm)``
(blocks until queued for playback), ``stop()``, ``abort()`` (drop what is buffered). A
microphone: ``open()``, ``read(timeout)`` → one frame (``b""`` at the end of a file),
``close()``; a live one raises :class:`MicLost` when PortAudio fails or no frame arrives
for ``stall_s``, and ``reopen()`` finds the device again by name.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import AssistantError

__all__ = [
    "AudioError",
    "MicLost",
    "Microphone",
    "SoundDeviceMicrophone",
    "SoundDeviceSpeaker",
    "Speaker",
    "WavMicrophone",
    "WavSpeaker",
    "list_devices",
    "read_wav",
    "resample",
]

FRAME_S = 0.03  # 30 ms frames: what the VAD and the recognizers are fed


class AudioError(AssistantError):
    exit_code = 69


class MicLost(AudioError):
    """The microphone stopped delivering audio (unplugged, PortAudio error, stalled)."""


class Speaker(Protocol):
    def start(self, rate: int) -> None: ...

    def write(self, pcm: bytes) -> None: ...

    def stop(self) -> None: ...

    def abort(self) -> None: ...


class Microphone(Protocol):
    rate: int

    def open(self) -> None: ...

    def read(self, timeout: float) -> bytes: ...

    def close(self) -> None: ...

    def reopen(self) -> None: ...


RESAMPLE_BLOCK = 16384  # output samples interpolated at a time


def resample(pcm: bytes, source: int, target: int) -> bytes:
    """Linear-interpolation resampling of int16 mono PCM (speech-grade, cheap).

    Block by block, so a long recording (a WAV microphone's hour) needs a block's
    temporaries, not eight bytes per sample several times over; each output sample is the
    same as one interpolation over the whole would give."""
    if source == target or not pcm:
        return pcm
    x = np.frombuffer(pcm, dtype="<i2")
    n = max(1, round(len(x) * target / source))
    step = (len(x) - 1) / (n - 1) if n > 1 else 0.0
    out = bytearray()
    for start in range(0, n, RESAMPLE_BLOCK):
        at = np.arange(start, min(n, start + RESAMPLE_BLOCK)) * step
        lo, hi = int(at[0]), min(len(x), int(at[-1]) + 2)
        y = np.interp(at, np.arange(lo, hi), x[lo:hi].astype(np.float32))
        out += np.clip(np.rint(y), -32768, 32767).astype("<i2").tobytes()
    return bytes(out)


def read_wav(path: str | Path, rate: int | None = None) -> tuple[bytes, int]:
    """(int16 mono PCM, rate) of a WAV file; stereo is mixed down, ``rate`` resamples."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, source = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            raw = wav.readframes(wav.getnframes())
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file") from None
    except (wave.Error, EOFError, OSError) as exc:
        raise AudioError(f"{path}: not a readable WAV file ({exc})") from None
    if width != 2:
        raise AudioError(f"{path}: {8 * width}-bit audio; give 16-bit PCM WAV")
    if channels > 1:
        frames = np.frombuffer(raw, dtype="<i2").reshape(-1, channels).astype(np.int32)
        raw = (frames.sum(axis=1) // channels).astype("<i2").tobytes()
    return (resample(raw, source, rate), rate) if rate else (raw, source)


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

    def abort(self) -> None:
        self.stop()


class SoundDeviceSpeaker:
    """The sound card named ``device`` (a substring of its PortAudio name; "" = default)."""

    def __init__(self, device: str = "") -> None:
        self.device = device
        self._stream: Any = None

    def start(self, rate: int) -> None:
        sd = _sounddevice()
        try:
            self._stream = sd.RawOutputStream(
                samplerate=rate,
                channels=1,
                dtype="int16",
                device=find_device(self.device, "output"),
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise AudioError(f"cannot open the speaker: {exc}") from None

    def write(self, pcm: bytes) -> None:
        if self._stream is not None:
            self._stream.write(pcm)

    def stop(self) -> None:
        if self._stream is not None:
            self._stream.stop()  # plays what is buffered
            self._stream.close()
            self._stream = None

    def abort(self) -> None:
        if self._stream is not None:
            self._stream.abort()  # drops what is buffered: barge-in
            self._stream.close()
            self._stream = None


def _sounddevice() -> Any:
    try:
        import sounddevice as sd
    except OSError as exc:  # no libportaudio2
        raise AudioError(f"cannot use audio: {exc}; install libportaudio2") from None
    return sd


def list_devices() -> list[dict[str, Any]]:
    """PortAudio's devices: index, name, input and output channels, default rate."""
    sd = _sounddevice()
    return [
        {
            "index": i,
            "name": d["name"],
            "inputs": int(d["max_input_channels"]),
            "outputs": int(d["max_output_channels"]),
            "rate": int(d["default_samplerate"]),
        }
        for i, d in enumerate(sd.query_devices())
    ]


def find_device(name: str, kind: str) -> int | None:
    """The index of the first ``kind`` ("input"/"output") device whose name contains ``name``."""
    if not name:
        return None
    key = "inputs" if kind == "input" else "outputs"
    devices = [d for d in list_devices() if d[key]]
    for d in devices:
        if name.lower() in d["name"].lower():
            return int(d["index"])
    names = ", ".join(repr(d["name"]) for d in devices) or "none"
    raise AudioError(f"speech.{kind}_device {name!r} not found; {kind} devices: {names}")


class WavMicrophone:
    """A WAV file as the microphone: its frames, then ``tail_s`` of silence, then the end.

    ``realtime`` paces the frames like a sound card would (for honest latency figures);
    tests read as fast as they can.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        rate: int = 16000,
        tail_s: float = 1.5,
        realtime: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        self.rate = rate
        self.tail_s = tail_s
        self.realtime = realtime
        self._clock, self._sleep = clock, sleep
        self._pcm = b""
        self._pos = 0
        self._started = 0.0
        self.frame_bytes = 2 * round(rate * FRAME_S)

    def open(self) -> None:
        pcm, _ = read_wav(self.path, self.rate)
        self._pcm = pcm + bytes(2 * round(self.rate * self.tail_s))
        self._pos = 0
        self._started = self._clock()

    def read(self, timeout: float = 1.0) -> bytes:
        frame = self._pcm[self._pos : self._pos + self.frame_bytes]
        self._pos += len(frame)
        if self.realtime and frame:
            due = self._started + self._pos / (2 * self.rate)
            wait = due - self._clock()
            if wait > 0:
                self._sleep(wait)
        return frame

    def reopen(self) -> None:
        self.open()

    def close(self) -> None:
        self._pcm = b""


class SoundDeviceMicrophone:
    """The input device named ``device`` (a substring; "" = default), resampled to ``rate``."""

    def __init__(self, device: str = "", *, rate: int = 16000, stall_s: float = 3.0) -> None:
        self.device = device
        self.rate = rate
        self.stall_s = stall_s
        self._stream: Any = None
        self._frames: queue.Queue[bytes] = queue.Queue(maxsize=200)
        self._source = rate
        self._error = ""

    def open(self) -> None:
        sd = _sounddevice()
        try:
            index = find_device(self.device, "input")  # an unknown name lists the devices
            info = sd.query_devices(index, "input")
        except MicLost:
            raise
        except AudioError as exc:
            raise MicLost(str(exc)) from None
        except sd.PortAudioError as exc:
            raise MicLost(f"no input device ({exc}); plug in a microphone") from None
        self._source = int(info["default_samplerate"])  # hw devices rarely take 16 kHz
        self._error = ""

        def callback(data: Any, _frames: int, _time: Any, status: Any) -> None:
            if status.input_overflow:
                return  # a late reader; the next frames are fine
            with contextlib.suppress(queue.Full):  # a reader that fell behind loses frames
                self._frames.put_nowait(bytes(data))

        try:
            self._stream = sd.RawInputStream(
                samplerate=self._source,
                blocksize=round(self._source * FRAME_S),
                device=index,
                channels=1,
                dtype="int16",
                callback=callback,
                finished_callback=self._finished,
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            self._stream = None
            raise MicLost(
                f"cannot open the microphone {self.device or '(default)'}: {exc}"
            ) from None

    def _finished(self) -> None:
        self._error = "the input stream stopped"

    def read(self, timeout: float = 1.0) -> bytes:
        if self._stream is None:
            raise MicLost("the microphone is not open")
        try:
            pcm = self._frames.get(timeout=min(timeout, self.stall_s))
        except queue.Empty:
            problem = self._error or f"no audio for {self.stall_s:g} s"
            raise MicLost(f"microphone {self.device or '(default)'}: {problem}") from None
        return resample(pcm, self._source, self.rate)

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.abort()
                self._stream.close()
            except Exception:  # noqa: BLE001, S110 - the device may already be gone
                pass
            self._stream = None

    def reopen(self) -> None:
        """Re-initialise PortAudio (it caches the device list) and open the device by name."""
        self.close()
        sd = _sounddevice()
        sd._terminate()
        sd._initialize()
        while not self._frames.empty():
            self._frames.get_nowait()
        self.open()
