"""A voice soak: `qwen-assistant run` answering spoken questions from a WAV microphone, its
resident memory sampled twice a second; prints the curve and the peak.

    .venv/bin/python scripts/soak-voice.py [TURNS] [--json]

TURNS (default 100) questions, short and long answers mixed, said by the configured piper
voice, each followed by GAP_S of silence for its answer; the default config with
`voice.wake = "always"` (no wake word), no thermal sensor, answers to a WAV speaker. The
curve is the peak resident memory of each block of ten turns (VmRSS; the last block may be
shorter), then VmHWM. Exit status 0 when every question was answered.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from assistant.config.load import find_config, load_config
from assistant.speech.audio import WavSpeaker
from assistant.speech.tts import PiperTTS

QUESTIONS = (
    "What is two plus two?",
    "Why is the sky blue?",
    "Tell me a short story about a dragon.",
    "What is the capital of France?",
    "What should I pack for a day at the beach?",
    "How do bees make honey?",
    "Name three fruits.",
    "Explain how a rainbow forms.",
    "What time of year do leaves fall?",
    "Give me some tips for sleeping better.",
)
GAP_S = 7.0
TURN = re.compile(r"turn \d+ voice:")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status(pid: int, key: str) -> float:
    """``key`` (VmRSS, VmHWM) of process ``pid`` in MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--json"]
    turns = int(args[0]) if args else 100
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    tts = PiperTTS.from_config(load_config(find_config()))
    tts.load()
    wav = work / "questions.wav"
    speaker = WavSpeaker(wav)
    speaker.start(tts.sample_rate)
    for i in range(turns):
        speaker.write(bytes(2 * round(tts.sample_rate * 0.5)))
        for pcm in tts.synthesize(QUESTIONS[i % len(QUESTIONS)], steady=True):
            speaker.write(pcm)
        speaker.write(bytes(2 * round(tts.sample_rate * GAP_S)))
    speaker.stop()
    config = work / "config.toml"
    config.write_text(
        f'[thermal]\nsensor_path = ""\n[api]\nport = {free_port()}\n[voice]\nwake = "always"\n'
    )
    log = work / "run.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "assistant", "run", "--config", str(config),
             "--listen-from", str(wav), "--speak-to", str(work / "answers.wav")],
            stderr=err, env=os.environ | {"RUNTIME_DIRECTORY": str(work / "run")},
        )  # fmt: skip
    curve: list[float] = []
    block_peak, done, began = 0.0, 0, time.monotonic()
    deadline = began + turns * (GAP_S + 4) + 120
    try:
        while proc.poll() is None and done < turns and time.monotonic() < deadline:
            time.sleep(0.5)
            block_peak = max(block_peak, status(proc.pid, "VmRSS"))
            now = len(TURN.findall(log.read_text(errors="replace")))
            while done < now:
                done += 1
                if done % 10 == 0:
                    curve.append(round(block_peak, 1))
                    block_peak = 0.0
                    print(f"turns {done:>3}: peak RSS {curve[-1]:.1f} MB", file=sys.stderr)
        if done % 10 and block_peak:  # the last block, shorter than ten turns
            curve.append(round(block_peak, 1))
        hwm = status(proc.pid, "VmHWM")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    result = {
        "turns_answered": done,
        "turns_said": turns,
        "rss_per_10_turns_mb": curve,
        "peak_rss_mb": round(hwm, 1),
        "minutes": round((time.monotonic() - began) / 60, 1),
        "log": str(log),
    }
    print(
        json.dumps(result)
        if "--json" in sys.argv
        else "\n".join(f"{k}: {v}" for k, v in result.items())
    )
    return 0 if done == turns else 1


if __name__ == "__main__":
    sys.exit(main())
