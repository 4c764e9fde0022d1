"""The clips ``bench wake`` hears: the wake word said in a home, and a home without it.

:func:`positives`: each wake word said by every voice of
:func:`~assistant.speech.testaudio.speakers`, at three speeds, in :data:`TEMPLATES` (alone,
before a question, inside a longer sentence), every other one from across the room
(:data:`FAR_DB` quieter); each clean, and :data:`SNRS` over a noise of the home (pink,
brown, babble, music, television, in turn) that starts :data:`LEAD_S` before the speech,
as a room's noise does.

:func:`negatives`: ``minutes`` of a home without the wake word, as one stream: half
ordinary talk by the same voices (near misses such as "Okay, now …" included), a quarter
"television" (talk over music), an eighth babble and an eighth music and noise.

:func:`playback`: the device's own voice (piper) as the microphone hears it while it
speaks, for the barge-in figures.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .stt import RATE
from .testaudio import NOISES, SPEEDS, Speaker, level, mix, noise, scaled, unit

__all__ = [
    "FAR_DB",
    "LEAD_S",
    "NEGATIVES",
    "SNRS",
    "TEMPLATES",
    "device_voice",
    "negatives",
    "playback",
    "positives",
]

#: (the wake phrase's place, the question after it)
TEMPLATES = (
    ("{word}.", ""),
    ("{word}, what time is it?", "What time is it?"),
    ("{word}, turn on the kitchen light.", "Turn on the kitchen light."),
    ("{word}, what is the capital of France?", "What is the capital of France?"),
    ("{word}, set a timer for five minutes.", "Set a timer for five minutes."),
    ("{word}, how warm is it outside?", "How warm is it outside?"),
    ("I asked the kitchen speaker: {word}, play some music.", ""),
    ("When you get home, just say {word} and it listens.", ""),
)
NEGATIVES = (
    "The weather today is mild, with a light breeze from the west.",
    "Tomorrow there may be some rain in the afternoon.",
    "Please remember to water the plants on the balcony.",
    "The train to the city leaves every twenty minutes.",
    "I think the meeting was moved to Thursday morning.",
    "Could you pass me the salt and the pepper, please?",
    "The museum opens at nine and closes at six.",
    "She bought fresh bread, some cheese and a bottle of juice.",
    "Our team won the match by two goals.",
    "The library has a new collection of old maps.",
    "Turn left at the bakery and walk for five minutes.",
    "He has been learning to play the guitar since spring.",
    "The children built a sand castle near the water.",
    "Dinner will be ready in about half an hour.",
    "This soup needs a little more salt.",
    "The robot cleaned the kitchen floor this morning.",
    "My neighbour has a very friendly old dog.",
    "We should book the hotel before the prices go up.",
    "The concert in the park starts at eight tonight.",
    "Can you tell me how to get to the station?",
    # near misses: words that sound like part of a wake word
    "Okay, now we can go home.",
    "Okay, but not before lunch.",
    "The nearby shop sells a new book.",
    "Hey, are you coming with us?",
    "Alex said that the jar was empty.",
    "My cat hid under the bed again.",
    "Hey, Jarvis is the butler in that film.",
    "Alexander and Lexi are my cousins.",
)
SNRS = (10.0, 5.0)
FAR_DB = -20.0  # every other positive is said from across the room
LEAD_S = 1.5  # the room's noise before the speech starts


def positives(
    voices: list[Speaker], say: str, talk: list[bytes], rng: np.random.Generator, step: Any
) -> list[tuple[str, str, bytes]]:
    """(what, condition, pcm) for every voice, template, speed and condition."""
    out: list[tuple[str, str, bytes]] = []
    n = 0
    for voice in voices:
        for template, _ in TEMPLATES:
            for i, speed in enumerate(SPEEDS):
                text = template.format(word=say)
                speech = voice.say(text, i)
                far = len(out) % 2 == 1  # out grows by three a clip: near and far alternate
                speech = scaled(speech, FAR_DB) if far else speech
                clip = bytes(2 * int(LEAD_S * RATE)) + speech + bytes(RATE)
                what = f"{voice.name}: {text} ×{speed}{' far' if far else ''}"
                out.append((what, "clean", clip))
                loud = level(speech)
                for snr in SNRS:
                    kind = NOISES[n % len(NOISES)]
                    bed = noise(kind, len(clip) // 2, rng, talk)
                    noisy = mix(clip, bed, snr, speech_level=loud)
                    out.append((f"{what} {kind} {snr:g} dB", f"{snr:g} dB", noisy))
                    n += 1
                step("positive")
    return out


def negatives(
    voices: list[Speaker], minutes: float, rng: np.random.Generator, step: Any
) -> tuple[bytes, list[bytes]]:
    """The stream of negatives, and the talk it was made of (the babble's and tv's source)."""
    talk, seconds, i = [], 0.0, 0
    while seconds < minutes * 60 * 3 / 4:  # talk for the talk part and the television's
        voice = voices[i % len(voices)]
        talk.append(voice.say(NEGATIVES[i % len(NEGATIVES)], i % len(SPEEDS)))
        seconds += len(talk[-1]) / 2 / RATE + 0.25
        i += 1
        step("negative speech")
    stream = np.concatenate(
        [np.frombuffer(c + bytes(RATE // 2), dtype="<i2") for c in talk[: len(talk) * 2 // 3]]
    ).astype(np.float64)
    loud = level(talk[0])
    n = int(minutes * 60 * RATE)
    tv = noise("tv", n // 4, rng, talk[len(talk) * 2 // 3 :] or talk) * loud
    babble = noise("babble", n // 8, rng, talk) * loud / 2
    rest = [noise(k, n // 32, rng) * 2000 for k in ("music", "pink", "brown", "white")]
    whole = np.concatenate([stream, tv, babble, *rest])
    return np.clip(whole, -32768, 32767).astype("<i2").tobytes(), talk


def device_voice(talk: list[bytes], voices: list[Speaker]) -> np.ndarray:
    """What the device says (the talk its piper voice read, with short pauses), once: the
    track :func:`playback` takes its stretches from."""
    mine = [clip for i, clip in enumerate(talk) if voices[i % len(voices)].name == "piper"]
    pcm = b"".join(c + bytes(RATE // 5) for c in (mine or talk))
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def playback(track: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """``n`` samples of the device's answers from ``start`` on (``track``, repeated as
    needed), unit RMS: what the microphone hears of the speaker while the device speaks."""
    return unit(np.take(track, np.arange(start, start + n), mode="wrap"))
