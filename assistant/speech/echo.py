"""Echo cancellation: the device's own voice taken out of what the microphone hears.

WebRTC's audio processing module (AEC3, the echo canceller of browsers and video calls)
through LiveKit's Python SDK (``livekit``, Apache-2.0, manylinux wheels for x86_64 and
aarch64; the ``aec`` extra). It takes 10 ms frames of 16 kHz int16 mono: the far end (what
the speaker played) and the near end (what the microphone heard), and finds the delay
between them itself. It is set up as PipeWire's ``echo-cancel`` module sets it up by default
(``spa/plugins/aec/aec-webrtc.cpp``): echo cancellation, the high-pass filter and noise
suppression on, gain control off.

``bench wake`` measures with it how often the wake word is heard over the device's own
voice (barge-in). On a Raspberry Pi the service leaves echo cancellation to the audio
system: PipeWire's ``echo-cancel`` module (the same WebRTC canceller) in front of the
microphone, set up as docs/voice.md shows.
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelError

__all__ = ["EchoCanceller", "available"]

RATE = 16000
FRAME = 2 * RATE // 100  # 10 ms of int16 mono


def available() -> bool:
    try:
        from livekit import rtc  # noqa: F401
    except ImportError:
        return False
    return True


class EchoCanceller:
    """``cancel(mic, played)``: ``mic`` without the echo of ``played`` (same length, in
    step; whole 10 ms frames)."""

    def __init__(self, delay_ms: int = 0) -> None:
        try:
            from livekit import rtc
        except ImportError as exc:
            raise ModelError(
                f"echo cancellation needs livekit ({exc}); pip install 'qwen-assistant[aec]'"
            ) from None
        self._rtc: Any = rtc
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=True, high_pass_filter=True, noise_suppression=True
        )
        self._apm.set_stream_delay_ms(delay_ms)

    def cancel(self, mic: bytes, played: bytes) -> bytes:
        frame, out = self._rtc.AudioFrame, []
        for i in range(0, min(len(mic), len(played)) - FRAME + 1, FRAME):
            far = frame(played[i : i + FRAME], RATE, 1, FRAME // 2)
            self._apm.process_reverse_stream(far)
            near = frame(mic[i : i + FRAME], RATE, 1, FRAME // 2)
            self._apm.process_stream(near)
            out.append(bytes(near.data))
        return b"".join(out)
