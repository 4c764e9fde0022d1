"""The kiosk's page: ``GET /`` on the API's port, every asset inside the package (no CDN, no
build step: it works with the network cable pulled).

The page is one HTML file, one stylesheet and one script. It follows ``GET /v1/events``
(the house's event stream) and changes the screen only when an event comes: no animation
loop. Its words come in the page's language (``kiosk.language``); the title, theme and
whether typed questions are spoken are ``[kiosk]`` keys, live on reload.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from ..config import Config
from ..speech.wake import BUILTIN

__all__ = ["ASSETS", "WORDS", "asset", "page"]

#: the files the page loads besides itself, with their media types
ASSETS = {"kiosk.js": "text/javascript", "kiosk.css": "text/css"}

#: the page's words in each ``kiosk.language``
WORDS: dict[str, dict[str, str]] = {
    "en": {
        "offline": "offline",
        "online": "connected",
        "ready": "Ready",
        "listening": "Listening",
        "thinking": "Thinking…",
        "answering": "Thinking…",
        "speaking": "Speaking",
        "mic lost": "No microphone",
        "key": "This device needs its API key.",
        "cut": "The answer was cut: the service is stopping.",
        "refused_hot": "Cooling down,",
        "refused_rate": "Busy,",
        "refused_queue": "Busy,",
        "refused_busy": "Busy,",
        "refused_not_ready": "Starting up,",
        "back_in": "back in {s} s",
        "say": "Say “{wake}”",
        "press": "Press the button to talk",
        "speak": "Just speak",
    },
    "zh": {
        "offline": "离线",
        "online": "已连接",
        "ready": "就绪",
        "listening": "正在听",
        "thinking": "正在思考…",
        "answering": "正在思考…",
        "speaking": "正在说话",
        "mic lost": "没有麦克风",
        "key": "需要 API 密钥。",
        "cut": "服务正在停止，回答被中断。",
        "refused_hot": "正在降温，",
        "refused_rate": "忙碌中，",
        "refused_queue": "忙碌中，",
        "refused_busy": "忙碌中，",
        "refused_not_ready": "正在启动，",
        "back_in": "{s} 秒后再试",
        "say": "请说“{wake}”",
        "press": "按下按钮说话",
        "speak": "请直接说话",
    },
}


def _hint(config: Config, words: dict[str, str]) -> str:
    """What to do to be heard, in the page's words."""
    voice = config.voice
    if voice.wake == "word":
        word = voice.wake_word
        return words["say"].format(wake=BUILTIN.get(word, Path(word).stem.replace("_", " ")))
    if voice.wake == "phrase":
        return words["say"].format(wake=voice.wake_phrase)
    return words["press"] if voice.wake == "button" else words["speak"]


def page(config: Config, *, can_speak: bool) -> str:
    """The page for ``config``'s [kiosk] (``can_speak``: the device has a voice)."""
    kiosk = config.kiosk
    words = WORDS[kiosk.language]
    settings: dict[str, Any] = {
        "words": words,
        "speak": kiosk.speak and can_speak,
        "history": 5,  # finished turns shown
        "chart": 60,  # temperatures in the chart (one per status interval)
        "reconnect_ms": 2000,
    }
    # inside <script>: no "</script>" can close it early
    script = json.dumps(settings, ensure_ascii=False).replace("<", "\\u003c")
    template = Template(resources.files(__package__).joinpath("index.html").read_text("utf-8"))
    return template.safe_substitute(
        title=html.escape(kiosk.title),
        lang=kiosk.language,
        theme=kiosk.theme,
        hint=html.escape(_hint(config, words)),
        config=script,
    )


def asset(name: str) -> tuple[bytes, str] | None:
    """One of :data:`ASSETS` and its media type (None: not ours)."""
    media = ASSETS.get(name)
    if media is None:
        return None
    return resources.files(__package__).joinpath(name).read_bytes(), media
