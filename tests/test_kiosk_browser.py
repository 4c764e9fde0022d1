"""The kiosk page in a real browser: Debian's chromium, headless, driven by selenium through
Debian's chromium-driver (no downloaded browser), against the real ``qwen-assistant run``
with the stand-in model, a WAV microphone, a WAV speaker and a file thermometer."""

from __future__ import annotations

import os
import shutil
import signal
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_service import Process, free_port

pytestmark = pytest.mark.slow

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
QUESTION = "What is the capital of France?"


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        if os.environ.get("CI") == "true":
            pytest.fail("chromium and chromium-driver are not installed (scripts/test.sh does)")
        pytest.skip("apt install chromium chromium-driver")
    from selenium import webdriver

    os.environ["SE_OFFLINE"] = "true"  # selenium manager downloads nothing
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=800,480"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def config_file(
    path: Path, qwen: Path, whisper: Path, voice: Path, *, port: int, temp: Path
) -> None:
    path.write_text(
        f'[llm]\nmodel = "{qwen}"\ntemperature = 0.0\nmax_tokens = 24\n'
        f'[speech]\nstt_engine = "whisper"\nstt_model = "{whisper}"\ntts_voice = "{voice}"\n'
        f'[voice]\nwake = "phrase"\n'  # only the talk button arms it: no phrase is said
        f'[thermal]\nsensor_path = "{temp}"\nstale_s = 3600.0\ncritical_c = 80.0\n'
        f"[api]\nport = {port}\n[service]\nstatus_interval_s = 1.0\n"
        '[kiosk]\ntitle = "Kiosk test"\n'
    )


def questions(tts: Any, path: Path, times: int = 30) -> None:
    """The question again and again (2.5 s apart), as a person at a kiosk would repeat it:
    the first one after the talk button is answered, whenever the page presses it."""
    from assistant.speech.audio import WavSpeaker

    speaker = WavSpeaker(path)
    speaker.start(tts.sample_rate)
    gap = bytes(2 * round(tts.sample_rate * 2.5))
    said = b"".join(tts.synthesize(QUESTION, steady=True))
    speaker.write(gap)
    for _ in range(times):
        speaker.write(said + gap)
    speaker.stop()


#: records each change of the big state on the page (the test reads the list, no polling)
RECORD_STATES = """
window.__states = [document.getElementById('state').dataset.state];
new MutationObserver(() => {
  const s = document.getElementById('state').dataset.state;
  if (window.__states[window.__states.length - 1] !== s) window.__states.push(s);
}).observe(document.getElementById('state'), {attributes: true});
"""


def wait(driver: Any, test: Any, timeout: float = 60) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(test)


def celsius(text: str) -> float:
    """ "83.2 °C" → 83.2 (0 when the page shows none yet)."""
    try:
        return float(text.split(maxsplit=1)[0])
    except (ValueError, IndexError):
        return 0.0


def text_of(driver: Any, element: str) -> str:
    return str(driver.find_element("id", element).text)


def png_colors(data: bytes) -> int:
    """How many distinct RGB colours the (8-bit RGB/RGBA, non-interlaced) PNG has, sampled."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, kind = 8, b"", 0, 0, 0
    while pos < len(data):
        length, tag = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if tag == b"IHDR":
            width, height, _depth, kind = struct.unpack(">IIBB", chunk[:10])
        elif tag == b"IDAT":
            idat += chunk
        pos += 12 + length
    raw = zlib.decompress(idat)
    channels = 4 if kind == 6 else 3
    stride = 1 + width * channels
    colors: set[bytes] = set()
    for y in range(0, height, 7):  # rows are filtered; their first pixels are enough to count
        row = raw[y * stride + 1 : y * stride + 1 + 60 * channels]
        colors.update(row[i : i + 3] for i in range(0, len(row), channels))
    return len(colors)


def test_the_page_shows_every_turn_the_heat_and_the_link(
    browser: Any, tmp_path: Path, qwen_path: Path, whisper_dir: Path, voice_path: Path
) -> None:
    from assistant.speech.tts import PiperTTS

    tts = PiperTTS(voice_path)
    tts.load()
    heard, said = tmp_path / "questions.wav", tmp_path / "answers.wav"
    questions(tts, heard)
    temp = tmp_path / "temp"
    temp.write_text("45000\n")
    port = free_port()
    config = tmp_path / "config.toml"
    config_file(config, qwen_path, whisper_dir, voice_path, port=port, temp=temp)
    url = f"http://127.0.0.1:{port}"
    args = ["--listen-from", str(heard), "--speak-to", str(said)]
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with Process(config, tmp_path, args=args) as proc:
        proc.wait_for("ready:", timeout=120)
        browser.get(url + "/")
        assert browser.title == "Kiosk test"
        wait(browser, lambda d: text_of(d, "link") == "connected")
        browser.execute_script(RECORD_STATES)

        # a typed question: the answer streams in, then the turn joins the history
        box = browser.find_element("id", "question")
        box.send_keys("What is the capital of France?\n")
        wait(browser, lambda d: "Paris" in text_of(d, "current-answer"))
        wait(browser, lambda d: "Paris" in text_of(d, "history"))

        # an API request from another client appears on the page
        body = {"messages": [{"role": "user", "content": "Name a color of the sky."}]}
        httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60).raise_for_status()
        wait(browser, lambda d: "Name a color of the sky." in text_of(d, "history"))

        # the talk button: the next spoken question is heard, thought over and answered aloud
        browser.execute_script("window.__states = [window.__states.pop()];")
        browser.find_element("id", "ptt").click()
        wait(browser, lambda d: "voice" in text_of(d, "history"), timeout=90)
        states = browser.execute_script("return window.__states")
        assert states[0] in ("listening", "ready"), states
        order = [s for s in states if s in ("thinking", "answering", "speaking", "listening")]
        assert order.index("thinking") < order.index("speaking") < len(order) - 1, states
        assert order[-1] == "listening", states
        assert "capital of France" in text_of(browser, "history")

        # screenshots at the Pi display's size and at 1080p: not blank, the answer visible
        for width, height in ((800, 480), (1920, 1080)):
            browser.execute_cdp_cmd(  # the page's own size, as the screen shows it
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
            for element in ("state", "current-answer", "temp", "ptt", "question"):
                assert browser.find_element("id", element).is_displayed(), (width, element)
            assert not browser.find_element("id", "key-form").is_displayed()  # no key here
            shot = shots / f"kiosk-{width}x{height}.png"
            browser.save_screenshot(str(shot))
            assert png_colors(shot.read_bytes()) > 3, shot
        shutil.copytree(shots, Path(os.environ.get("KIOSK_SCREENSHOTS", tmp_path / "kept")),
                        dirs_exist_ok=True)  # fmt: skip

        # heat: the new temperature and the governor's lever within seconds; a refusal says
        # when to come back
        temp.write_text("84000\n")
        # past critical_c 80 for sure: the page rounds to 0.1 °C, so "80.0" may be 79.96
        wait(browser, lambda d: celsius(text_of(d, "temp")) >= 80.5, timeout=30)
        wait(browser, lambda d: text_of(d, "lever") != "", timeout=30)
        box = browser.find_element("id", "question")
        box.send_keys("Are you there?\n")
        wait(browser, lambda d: "back in" in text_of(d, "message"), timeout=30)
        # the device's heat is named in the strip; the next device event (a new temperature:
        # it is still rising to 84) leaves the refusal's "back in" where the person reads it
        shown = text_of(browser, "temp")
        wait(browser, lambda d: text_of(d, "temp") != shown, timeout=30)
        assert text_of(browser, "message").startswith("Cooling down, back in")
        assert "thermal.critical_c" in text_of(browser, "problem")

        # the service goes away: "offline"; it comes back: the page reconnects by itself
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(30) == 0
        wait(browser, lambda d: text_of(d, "link") == "offline", timeout=30)
    temp.write_text("45000\n")
    with Process(config, tmp_path):
        wait(browser, lambda d: text_of(d, "link") == "connected", timeout=120)


def test_the_kiosk_bench_measures_the_browser_idle_and_in_a_turn(browser: Any) -> None:
    """scripts/bench-kiosk.py at its smallest: one idle second, one typed turn."""
    import json
    import subprocess
    import sys

    root = Path(__file__).parent.parent
    out = subprocess.run(
        [sys.executable, str(root / "scripts/bench-kiosk.py"), "--idle-s", "1", "--turns", "1",
         "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    figures = json.loads(out.stdout)
    assert figures["turns"] == 1 and figures["turns_cpu_share"] > 0
    assert 0 <= figures["idle_cpu_share"] < figures["cpu_count"]
