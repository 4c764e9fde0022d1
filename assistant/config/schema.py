"""The configuration's schema: one frozen dataclass per section (the [llm] one in
:mod:`.llm`), each key with its default and constraints (:func:`~.fields.opt`), and
:class:`Config` holding them and the [[actions]].
:mod:`.load` reads and validates a file into it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._toml import dumps
from ..errors import ConfigError
from ..language import with_language
from .actions import Action
from .fields import opt
from .llm import LLM

__all__ = [
    "API",
    "LLM",
    "Config",
    "Kiosk",
    "Paths",
    "Service",
    "Speech",
    "Thermal",
    "Voice",
    "Wyoming",
    "data_dir",
    "env_seed",
    "is_loopback",
    "sections",
]

SEED_VAR = "QWEN_ASSISTANT_SEED"
Curve = tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Paths:
    models_dir: str = opt("models", path=True)


@dataclass(frozen=True)
class Speech:
    #: the spoken language: "en" or "zh" (Mandarin); the models, the sentence cuts and the
    #: language the system prompt asks for
    language: str = opt("en", choices=("en", "zh"))
    stt_engine: str = opt("auto", choices=("auto", "vosk", "whisper"))
    stt_model: str = opt("auto", path=True)
    trailing_silence_s: float = opt(0.5, lo=0.1, hi=5.0)
    #: the silence that ends an utterance whose words so far trail off ("turn on the …")
    trailing_silence_max_s: float = opt(1.0, lo=0.1, hi=10.0)
    #: the pause after which what was said so far is transcribed (the guess)
    pause_s: float = opt(0.1, lo=0.03, hi=1.0)
    #: the seconds of audio whisper's encoder sees (whisper's own: 30); a third of the
    #: work at 10, but it hears worse (docs/voice.md)
    whisper_window_s: float = opt(30.0, lo=5.0, hi=30.0)
    vad: str = opt("silero", choices=("silero", "energy"))
    tts_voice: str = opt("auto", path=True)
    tts_speed: float = opt(1.0, lo=0.5, hi=2.0)
    input_device: str = opt("")
    output_device: str = opt("")
    #: the audio front end (speex, as Home Assistant's Assist): 15 dB of noise suppression
    #: per step (0: off) and the automatic gain's target (0: off); docs/voice.md
    noise_suppression: int = opt(1, lo=0, hi=4)
    auto_gain_dbfs: int = opt(0, lo=0, hi=31)
    #: what the wake-word model hears: the microphone's "raw" audio or the "clean" audio
    #: the recognizer hears
    wake_hears: str = opt("clean", choices=("raw", "clean"))


@dataclass(frozen=True)
class Voice:
    enabled: bool = opt(True)
    wake: str = opt("word", choices=("phrase", "word", "button", "always"))
    wake_phrase: str = opt("hey robot")
    wake_word: str = opt("okay_nabu")
    wake_engine: str = opt("microwakeword", choices=("microwakeword", "openwakeword"))
    wake_threshold: float = opt(0.0, lo=0.0, hi=1.0)
    follow_up_s: float = opt(8.0, lo=0.0, hi=120.0)
    idle_reset_s: float = opt(120.0, lo=0.0, hi=86400.0)
    barge_in: bool = opt(False)
    #: start answering a finished-sounding question at a pause, before the silence runs out
    answer_ahead: bool = opt(True)
    button_pin: str = opt("")
    led_listening_pin: str = opt("")
    led_thinking_pin: str = opt("")
    led_speaking_pin: str = opt("")
    led_error_pin: str = opt("")

    def check(self) -> list[tuple[str, str]]:
        if self.wake == "button" and not self.button_pin:
            return [
                ("button_pin", 'must name a GPIO pin (e.g. "GPIO17") when voice.wake = "button"')
            ]
        if self.wake == "phrase" and not self.wake_phrase.strip():
            return [("wake_phrase", 'must not be empty when voice.wake = "phrase"')]
        if self.wake == "word" and not self.wake_word.strip():
            return [
                (
                    "wake_word",
                    'must name a model when voice.wake = "word": okay_nabu, hey_jarvis, '
                    "hey_mycroft, alexa, or a custom model's .json",
                )
            ]
        return []


DEFAULT_CURVE: Curve = ((50.0, 29.0), (60.0, 49.0), (67.5, 69.0), (75.0, 98.0))


@dataclass(frozen=True)
class Thermal:
    sensor_path: str = opt("auto")
    interval_s: float = opt(1.0, lo=0.1, hi=60.0)
    smoothing_s: float = opt(5.0, lo=0.0, hi=300.0)
    stale_s: float = opt(30.0, lo=1.0, hi=3600.0)
    fan_driver: str = opt("none", choices=("gpio-pwm", "gpio-onoff", "sysfs", "none"))
    fan_pin: str = opt("")
    fan_device: str = opt("/sys/class/thermal/cooling_device0")
    fan_frequency_hz: float = opt(100.0, lo=0.1, hi=50000.0)
    fan_min_duty: float = opt(0.2, lo=0.0, hi=1.0)
    fan_kick_s: float = opt(1.0, lo=0.0, hi=10.0)
    fan_curve: Curve = opt(DEFAULT_CURVE)
    fan_hysteresis_c: float = opt(5.0, lo=0.0, hi=20.0)
    fan_safe_state: str = opt("on", choices=("on", "off"))
    target_c: float = opt(78.0, lo=40.0, hi=79.5)
    critical_c: float = opt(82.0, lo=50.0, hi=95.0)
    rate_per_min: float = opt(30.0, lo=0.1, hi=600.0)
    min_rate_per_min: float = opt(0.5, lo=0.0, hi=600.0)
    burst: int = opt(5, lo=1, hi=100)
    queue_size: int = opt(8, lo=1, hi=256)
    control_kp: float = opt(1.0, lo=0.0, hi=100.0)
    control_ki: float = opt(0.005, lo=0.0, hi=10.0)
    control_kd: float = opt(10.0, lo=0.0, hi=1000.0)
    clock_path: str = opt("auto")
    min_clock_mhz: int = opt(1500, lo=1500, hi=2400)
    min_threads: int = opt(2, lo=1, hi=64)
    min_pacing: float = opt(0.5, lo=0.1, hi=1.0)
    #: answers decoded together while the heat budget binds (past llm.parallel: each answer
    #: slower, more tokens per joule); needs the unified cache (llm.flash_attn "auto"/"on")
    hot_parallel: int = opt(4, lo=1, hi=16)

    def check(self) -> list[tuple[str, str]]:
        problems = []
        if self.critical_c <= self.target_c:
            problems.append(
                (
                    "critical_c",
                    f"must be above thermal.target_c ({self.target_c}), got {self.critical_c}",
                )
            )
        if self.min_rate_per_min > self.rate_per_min:
            problems.append(
                (
                    "min_rate_per_min",
                    f"must not exceed thermal.rate_per_min "
                    f"({self.rate_per_min}), got {self.min_rate_per_min}",
                )
            )
        temps = [t for t, _ in self.fan_curve]
        if temps != sorted(temps) or len(set(temps)) != len(temps):
            problems.append(("fan_curve", "temperatures must strictly increase"))
        if any(not 0 <= duty <= 100 for _, duty in self.fan_curve):
            problems.append(("fan_curve", "duties must be percentages between 0 and 100"))
        if self.fan_driver in ("gpio-pwm", "gpio-onoff") and not self.fan_pin:
            problems.append(
                ("fan_pin", f'must name a GPIO pin when thermal.fan_driver = "{self.fan_driver}"')
            )
        return problems


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP address (127.0.0.0/8, ::1); never a host name."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class API:
    enabled: bool = opt(True)
    host: str = opt("127.0.0.1")
    port: int = opt(8088, lo=1, hi=65535)
    unix_socket: str = opt("", path=True)
    api_key: str = opt("")
    allowed_hosts: tuple[str, ...] = opt(())
    max_body_bytes: int = opt(262144, lo=1024, hi=16 * 1024 * 1024)
    read_timeout_s: float = opt(10.0, lo=0.5, hi=300.0)
    queue_timeout_s: float = opt(120.0, lo=1.0, hi=3600.0)
    header_timeout_s: float = opt(10.0, lo=0.5, hi=300.0)
    max_connections: int = opt(32, lo=1, hi=4096)
    allow_actions: bool = opt(False)

    def check(self) -> list[tuple[str, str]]:
        if not is_loopback(self.host) and not self.api_key:
            return [
                (
                    "host",
                    f"binding {self.host!r} exposes the assistant to the network; "
                    "set api.api_key or use 127.0.0.1",
                )
            ]
        return []


def _tcp_host_port(uri: str) -> tuple[str, int] | None:
    """(host, port) of ``tcp://HOST:PORT``, else None."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme != "tcp" or not parts.hostname or port is None:
        return None
    return parts.hostname, port


@dataclass(frozen=True)
class Wyoming:
    enabled: bool = opt(False)
    uri: str = opt("tcp://127.0.0.1:10700")
    zeroconf: bool = opt(False)
    allow_lan: bool = opt(False)
    max_connections: int = opt(8, lo=1, hi=256)
    max_audio_s: float = opt(30.0, lo=1.0, hi=600.0)

    def check(self) -> list[tuple[str, str]]:
        if self.uri.startswith("unix://"):
            if len(self.uri) <= len("unix://"):
                return [("uri", 'must name a socket path, e.g. "unix:///run/qwen-assistant/wy"')]
            if self.zeroconf:
                return [("zeroconf", "announces a TCP port; it needs a tcp:// uri")]
            return []
        address = _tcp_host_port(self.uri)
        host = address[0] if address else ""
        problem = ""
        if address is None:
            problem = f'must be "tcp://HOST:PORT" or "unix://PATH", got {self.uri!r}'
        elif not is_loopback(host) and not self.allow_lan:
            problem = (
                f"binding {host!r} lets anyone on the network use the assistant (Wyoming "
                "has no authentication); set wyoming.allow_lan = true or use 127.0.0.1"
            )
        elif self.zeroconf and is_loopback(host):
            return [
                (
                    "zeroconf",
                    "announces the service to the network, but wyoming.uri binds loopback; "
                    'bind a LAN address (e.g. "tcp://0.0.0.0:10700") with allow_lan = true',
                )
            ]
        return [("uri", problem)] if problem else []


@dataclass(frozen=True)
class Service:
    status_interval_s: float = opt(5.0, lo=1.0, hi=60.0)
    stall_s: float = opt(60.0, lo=2.0, hi=3600.0)
    log_level: str = opt("info", choices=("debug", "info", "warning", "error"))
    stop_grace_s: float = opt(5.0, lo=0.0, hi=60.0)


@dataclass(frozen=True)
class Kiosk:
    enabled: bool = opt(True)
    title: str = opt("Assistant")
    language: str = opt("en", choices=("en", "zh"))
    theme: str = opt("dark", choices=("dark", "light"))
    speak: bool = opt(True)

    def check(self) -> list[tuple[str, str]]:
        if not self.title.strip() or len(self.title) > 60:
            return [("title", "must be 1 to 60 characters")]
        return []


@dataclass(frozen=True)
class Config:
    paths: Paths = field(default_factory=Paths)
    llm: LLM = field(default_factory=LLM)
    speech: Speech = field(default_factory=Speech)
    voice: Voice = field(default_factory=Voice)
    thermal: Thermal = field(default_factory=Thermal)
    api: API = field(default_factory=API)
    wyoming: Wyoming = field(default_factory=Wyoming)
    service: Service = field(default_factory=Service)
    kiosk: Kiosk = field(default_factory=Kiosk)
    #: the [[actions]] tables: what the device may do (none by default)
    actions: tuple[Action, ...] = ()
    #: the file this was loaded from, or None for the built-in default
    source: Path | None = None

    def __post_init__(self) -> None:
        # "Answer in {language}, …": the default system prompt names speech.language
        if "{language}" in self.llm.system_prompt:
            prompt = with_language(self.llm.system_prompt, self.speech.language)
            object.__setattr__(self, "llm", dataclasses.replace(self.llm, system_prompt=prompt))

    def to_toml(self) -> str:
        data: dict[str, Any] = {
            f.name: dataclasses.asdict(getattr(self, f.name)) for f in sections()
        }
        if self.actions:
            data["actions"] = [a.as_table() for a in self.actions]
        return dumps(data)


def sections() -> list[dataclasses.Field[Any]]:
    """The [section] tables (not the [[actions]] array, nor the source)."""
    return [f for f in dataclasses.fields(Config) if f.name not in ("source", "actions")]


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "qwen-assistant"


def env_seed() -> int | None:
    """$QWEN_ASSISTANT_SEED: one seed for this process's random choices (the LLM's sampling,
    in place of llm.seed, and the variation in piper's voice), so a run can be repeated.
    None when it is unset; ConfigError when it is not a seed."""
    value = os.environ.get(SEED_VAR, "").strip()
    if not value:
        return None
    try:
        seed = int(value)
    except ValueError:
        seed = -1
    if not 0 <= seed <= 2**31 - 1:
        fix = "use a whole number from 0 to 2147483647, or unset it"
        raise ConfigError([f"${SEED_VAR}: {value!r} is not a seed; {fix}"])
    return seed
