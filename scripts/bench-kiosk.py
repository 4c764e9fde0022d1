"""What the kiosk page costs the browser: the CPU of headless chromium showing it, idle and
during typed turns.

    .venv/bin/python scripts/bench-kiosk.py [--idle-s 60] [--turns 5] [--json]

Starts `qwen-assistant run` (voice off, no thermal sensor, the installed llm model) on a free
port, opens http://127.0.0.1:PORT/ in Debian's chromium (headless, through selenium and
chromium-driver), then reads the CPU time (utime + stime from /proc) of every chromium
process: over --idle-s seconds with nothing happening (the page then only gets a "device"
event every service.status_interval_s), and over --turns questions typed on the page, each
until its answer is in the history. Prints the CPU as a share of one core for each.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TICK = os.sysconf("SC_CLK_TCK")


def descendants(root: int) -> list[int]:
    """``root`` and every process under it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICK


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(work: Path) -> tuple[subprocess.Popen[str], int]:
    """The service on a free port, voice off, no thermal sensor; once it is ready."""
    port = free_port()
    config = work / "config.toml"
    config.write_text(
        f'[thermal]\nsensor_path = ""\n[voice]\nenabled = false\n[api]\nport = {port}\n'
        "[llm]\ntemperature = 0.0\nmax_tokens = 32\n"
    )
    env = os.environ | {"RUNTIME_DIRECTORY": str(work)}
    service = subprocess.Popen(
        [sys.executable, "-m", "assistant", "run", "--config", str(config)],
        stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    log = service.stderr
    if log is None or not any("ready:" in line for line in log):
        service.kill()
        raise SystemExit("bench-kiosk: the service did not start")
    # read on, so the service never blocks on a full pipe
    threading.Thread(target=log.read, daemon=True).start()
    return service, port


def measure(driver: Any, idle_s: float, turns: int) -> dict[str, Any]:
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 120, poll_frequency=0.2)
    wait.until(lambda d: d.find_element("id", "link").text == "connected")
    pids = descendants(driver.service.process.pid)
    begun, used = time.monotonic(), cpu_s(pids)
    time.sleep(idle_s)  # a benchmark: the idle minute is the measurement
    idle = (cpu_s(pids) - used) / (time.monotonic() - begun)
    pids = descendants(driver.service.process.pid)
    begun, used = time.monotonic(), cpu_s(pids)
    for n in range(turns):
        before = len(driver.find_elements("css selector", "#history li"))
        driver.find_element("id", "question").send_keys(f"Say the number {n + 1}.\n")
        wait.until(lambda d, b=before: len(d.find_elements("css selector", "#history li")) > b)
    turns_s = time.monotonic() - begun
    busy = cpu_s(descendants(driver.service.process.pid)) - used
    return {
        "idle_s": idle_s,
        "idle_cpu_share": round(idle, 4),
        "turns": turns,
        "turns_s": round(turns_s, 2),
        "turns_cpu_share": round(busy / turns_s, 4) if turns_s else 0.0,
        "cpu_s_per_turn": round(busy / turns, 3) if turns else 0.0,
        "cpu_count": os.cpu_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--idle-s", type=float, default=60.0, help="idle seconds (default 60)")
    parser.add_argument("--turns", type=int, default=5, help="typed questions (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        print("bench-kiosk: apt install chromium chromium-driver", file=sys.stderr)
        return 69
    from selenium import webdriver

    os.environ["SE_OFFLINE"] = "true"
    service, port = start_service(Path(tempfile.mkdtemp(prefix="bench-kiosk-")))
    driver = None
    try:
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=800,480"):
            options.add_argument(arg)
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
        driver.get(f"http://127.0.0.1:{port}/")
        result = measure(driver, args.idle_s, args.turns)
    finally:
        if driver is not None:
            driver.quit()
        service.terminate()
        service.wait(30)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"idle:  {result['idle_cpu_share'] * 100:.2f} % of one core over {args.idle_s:g} s")
        print(
            f"turns: {result['turns_cpu_share'] * 100:.1f} % of one core over {args.turns} typed "
            f"turns ({result['turns_s']:.1f} s), {result['cpu_s_per_turn']:.3f} CPU s a turn"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
