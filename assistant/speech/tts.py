"""piper text-to-speech. piper (and onnxruntime) are imported only in :meth:`PiperTTS.load`.

Text the voice cannot read (Chinese for an English voice) is left out of what it speaks,
and reported once per voice with the fix (``speech.language``), not spoken as noise.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from ..config import Config, env_seed
from ..errors import ModelError
from ..language import LANGUAGES, readable, unreadable, voice_language
from .sentences import split_all

__all__ = ["TTS", "PiperTTS", "resolve_voice"]

log = logging.getLogger(__name__)


def resolve_voice(config: Config) -> Path:
    """speech.tts_voice, else the voice `models fetch` installed for the tts role."""
    if config.speech.tts_voice not in ("", "auto"):
        return Path(config.speech.tts_voice)
    from ..models.store import ModelStore

    return ModelStore(config.paths.models_dir).path_for("tts", config.speech.language)


#: piper's phonemizer (espeak-ng) keeps global state: one synthesis at a time per process
#: (the mouth and the Wyoming server both speak)
_SYNTH_LOCK = threading.Lock()
#: piper's memory grows with the square of what it says at once (its text encoder's
#: attention): a 230-character sentence took 370 MB more, so longer text is said in
#: pieces of at most this many characters, cut at sentence ends, then at clause marks or
#: spaces (sentences.split_all)
PIECE_CHARS = 120


class TTS(Protocol):
    """A voice: text in, 16-bit mono PCM chunks out at ``sample_rate``."""

    voice_path: Path

    @property
    def sample_rate(self) -> int: ...

    def synthesize(self, text: str) -> Iterable[bytes]: ...


class _ShrinkingSession:
    """An onnxruntime session whose every run gives its arena back when it ends.

    Within a synthesis the arena reuses its blocks (faster than a fresh ``malloc`` per
    operator); onnxruntime's arena shrinkage then frees what the run added, so the largest
    sentence's buffers are not kept for good (docs/performance.md)."""

    def __init__(self, session: Any) -> None:
        import onnxruntime

        self._session = session
        self._options = onnxruntime.RunOptions()
        self._options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

    def run(self, output_names: Any, input_feed: Any, run_options: Any = None) -> Any:
        return self._session.run(output_names, input_feed, run_options or self._options)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _load_voice(path: Path) -> Any:
    """``PiperVoice.load`` with onnxruntime's memory arena shrunk after every run and its
    memory pattern off.

    With the arena kept (piper's default) the session holds the largest synthesis's
    buffers for good: one long sentence left the process 1.2 GB bigger, ordinary sentences
    360 MB (``bench voice``'s peak RSS, docs/performance.md). Without an arena, synthesis
    was about 15 % slower and its peak higher (a ``malloc`` per operator); with the arena
    shrunk after each run, three sentences peaked 45 MB lower and were no slower."""
    import json

    import onnxruntime
    from piper.config import PiperConfig
    from piper.phonemize_espeak import ESPEAK_DATA_DIR
    from piper.voice import PiperVoice

    options = onnxruntime.SessionOptions()
    options.enable_mem_pattern = False
    config = json.loads(Path(f"{path}.json").read_text(encoding="utf-8"))
    session = onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return PiperVoice(
        config=PiperConfig.from_dict(config),
        session=_ShrinkingSession(session),
        espeak_data_dir=Path(ESPEAK_DATA_DIR),
        download_dir=Path.cwd(),
    )


class PiperTTS:
    """One piper voice: text in, 16-bit mono PCM chunks out (one per sentence piper finds)."""

    def __init__(self, voice_path: str | Path, *, speed: float = 1.0) -> None:
        self.voice_path = Path(voice_path)
        self.speed = speed
        self._voice: Any = None
        self.unreadable_reported = False

    @classmethod
    def from_config(cls, config: Config) -> PiperTTS:
        return cls(resolve_voice(config), speed=config.speech.tts_speed)

    def load(self) -> None:
        fix = "run `qwen-assistant models fetch tts` or set speech.tts_voice"
        if not self.voice_path.is_file():
            raise ModelError(f"{self.voice_path}: no such piper voice; {fix}")
        if not Path(f"{self.voice_path}.json").is_file():
            raise ModelError(f"{self.voice_path}.json: the voice's config is missing; {fix}")
        try:
            import piper  # noqa: F401
        except ImportError as exc:
            raise ModelError(f"piper-tts is not installed ({exc}); run scripts/setup.sh") from None
        seed = env_seed()
        if seed is not None:  # the voice's random variation, repeatable (onnxruntime's RNG)
            import onnxruntime

            onnxruntime.set_seed(seed)
        try:
            self._voice = _load_voice(self.voice_path)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            raise ModelError(f"{self.voice_path}: piper could not load it ({exc}); {fix}") from None

    @property
    def sample_rate(self) -> int:
        return int(self._voice.config.sample_rate)

    @property
    def language(self) -> str:
        """The voice's language ("en", "zh"), from its espeak-ng voice."""
        return voice_language(str(getattr(self._voice.config, "espeak_voice", "") or "en"))

    def readable(self, text: str) -> str:
        """``text`` without what this voice cannot read ("" = nothing left to say); the
        first time something is left out, a warning names it and the fix."""
        left_out = unreadable(text, self.language)
        if left_out and not self.unreadable_reported:
            self.unreadable_reported = True
            want = "zh" if self.language != "zh" else "en"
            log.warning(
                "the piper voice %s (%s) cannot read %r: it is left unspoken (reported "
                'once). For %s answers set speech.language = "%s" and run '
                "`qwen-assistant models fetch`",
                self.voice_path.name,
                self.language,
                left_out[:40],
                LANGUAGES[want].name,
                want,
            )
        return readable(text, self.language) if left_out else text

    def synthesize(self, text: str, *, steady: bool = False) -> Iterator[bytes]:
        """16-bit little-endian mono PCM at :attr:`sample_rate`, chunk by chunk.

        ``steady``: without piper's random variation (noise scales 0), so the same text is
        the same audio every time (the benchmark's and the tests' spoken questions).
        """
        from piper import SynthesisConfig

        text = self.readable(text)
        if not text:
            return
        syn = SynthesisConfig(length_scale=1.0 / self.speed)
        if steady:
            syn.noise_scale = 0.0
            syn.noise_w_scale = 0.0
        for piece in (
            split_all([text], max_chars=PIECE_CHARS) if len(text) > PIECE_CHARS else [text]
        ):
            with _SYNTH_LOCK:  # all of it now: a slow consumer must not hold the lock
                voice = self._voice.synthesize(piece, syn_config=syn)
                chunks = [c.audio_int16_bytes for c in voice]
            yield from chunks
