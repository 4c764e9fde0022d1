"""The window whisper's encoder sees (`stt.window`): faster-whisper pads every segment to
30 s of log-mel frames with zeros; the encoder gets whisper_window_s of them, or the sound
and half the window after it."""

from __future__ import annotations

import numpy as np

from assistant.speech.stt import window


def segment(sound_frames: int, batch: bool = False) -> np.ndarray:
    mel = np.zeros((80, 3000), dtype=np.float32)
    mel[:, :sound_frames] = -0.5  # log-mel of sound is never exactly 0; the padding is
    return mel[None] if batch else mel


def test_a_short_question_gets_the_window() -> None:
    assert window(segment(250), 1000).shape == (80, 1000)


def test_a_long_one_gets_its_sound_and_half_a_window_after_it_in_whole_seconds() -> None:
    assert window(segment(1234), 1000).shape == (80, 1800)  # 1234 + 500, up to 1800
    assert window(segment(2700), 1000).shape == (80, 3000)  # never past whisper's 30 s


def test_a_batch_is_cut_on_its_frames_and_30_s_is_whisper_unchanged() -> None:
    assert window(segment(250, batch=True), 1000).shape == (1, 80, 1000)
    assert window(segment(250), 3000).shape == (80, 3000)
    assert window(segment(0), 500).shape == (80, 500)  # silence: the window alone


def test_a_batch_keeps_its_longest_sound() -> None:
    batch = np.concatenate([segment(250, batch=True), segment(1234, batch=True)])
    assert window(batch, 1000).shape == (2, 80, 1800)


def test_the_sound_is_kept_whole() -> None:
    mel = segment(400)
    mel[:, 399] = 0.25
    cut = window(mel, 1000)
    assert np.array_equal(cut, mel[:, :1000])
