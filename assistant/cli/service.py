"""``run``, ``reload``, ``status`` and ``doctor``: the service and its operator."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from ..errors import ConfigError
from ._base import PROG, Add, bounded, load

__all__ = ["register"]


def register(top: Any, add: Add) -> None:
    run = add(
        top,
        "run",
        "Run the service: thermal governor, model and the HTTP API, until SIGTERM.",
        cmd_run,
        "Run the assistant service in the foreground: the thermal governor (it drives the "
        "fan), the HTTP API (OpenAI-compatible, see docs/api.md) and the model. SIGHUP "
        "reloads config.toml; SIGTERM or Ctrl-C stops; a second one exits at once.",
    )
    run.add_argument(
        "--listen-from",
        metavar="FILE.wav",
        help="hear this WAV file (paced like a microphone) instead of the sound card",
    )
    run.add_argument(
        "--speak-to",
        metavar="FILE.wav",
        help='write what the API is asked to speak ("speak": true) to this WAV file '
        "instead of the sound card",
    )
    reload = add(
        top,
        "reload",
        "Make the running service re-read its config (SIGHUP).",
        cmd_reload,
        "Send SIGHUP to the running service (pid from $RUNTIME_DIRECTORY/qwen-assistant.pid, "
        "else /run/qwen-assistant/qwen-assistant.pid) or to --pid. Thermal limits, the fan "
        "curve and the target apply at once; a bad edit is rejected and the old settings stay.",
    )
    reload.add_argument("--pid", type=bounded(int, 1, 2**22), metavar="PID", help="signal PID")
    status = add(
        top,
        "status",
        "Show the running service's state, temperature, fan, rates, queue, model and turns.",
        cmd_status,
        "Read the status the running service refreshes every service.status_interval_s "
        "(status.json beside its pidfile: $RUNTIME_DIRECTORY, /run/qwen-assistant, "
        "$XDG_RUNTIME_DIR/qwen-assistant or /tmp/qwen-assistant-UID). Exit status: 0 running, "
        "1 running but not updating its status (stalled), 3 not running.",
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    add(
        top,
        "doctor",
        "Check this machine: config, models and hashes, llama.cpp, audio, thermal, GPIO, memory.",
        cmd_doctor,
        "Check that this machine can run the assistant: the config, the models and their "
        "sha256, the piper voice, the llama.cpp build and backend, audio devices, the thermal "
        "zone, GPIO access and groups, free memory. One line each: OK, WARN or FAIL with the "
        "fix. Exit status 1 if anything FAILs.",
    )


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from ..service import Service
    from ..systemd import journal_handler, under_journald

    config = load(args)
    if under_journald() and (handler := journal_handler()) is not None:
        logging.getLogger().handlers[:] = [handler]  # priorities and fields such as TURN_ID
    level = "DEBUG" if getattr(args, "debug", False) else config.service.log_level.upper()
    logging.getLogger("assistant").setLevel(level)
    logging.getLogger("assistant.thermal").setLevel(logging.NOTSET)  # the service logs it
    service = Service(config, speak_to=args.speak_to, listen_from=args.listen_from)
    return asyncio.run(service.run())


def cmd_reload(args: argparse.Namespace) -> int:
    from ..reload import signal_reload

    pid = signal_reload(args.pid)
    print(f"sent SIGHUP to {pid}; the service logs what it applied")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import time

    from ..runtime import read_status
    from ..status import describe

    data = read_status()
    print(json.dumps(data, ensure_ascii=False) if args.json else describe(data, time.time()))
    limit = 3 * float(data.get("interval_s", 5.0)) + 5.0
    if data["age_s"] > limit:
        print(
            f"{PROG}: the status is {data['age_s']:.0f} s old (the service refreshes it every "
            f"{data.get('interval_s', 5.0):g} s): the service is stalled",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from ..config import Config
    from ..doctor import render, run_checks

    try:
        config, problem = load(args), ""
    except ConfigError as exc:
        config, problem = Config(), "; ".join(exc.problems)
    checks = run_checks(config, config_problem=problem)
    print(render(checks))
    return 1 if any(c.level == "FAIL" for c in checks) else 0
