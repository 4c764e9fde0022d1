"""``run``, ``reload``, ``status`` and ``doctor``: the service and its operator."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from ..errors import EX_CONFIG, EX_TEMPFAIL, AssistantError, ConfigError
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
        "reloads config.toml; SIGTERM or Ctrl-C stops (running answers get "
        "service.stop_grace_s to finish); a second one exits at once. One service per "
        "runtime directory: a second one exits 75 naming the pid that holds it.",
    )
    runtime_dir = {
        "metavar": "DIR",
        "help": "the runtime directory (pidfile, status.json) of this instance; default: "
        "$RUNTIME_DIRECTORY, else /run/qwen-assistant, $XDG_RUNTIME_DIR/qwen-assistant or "
        "/tmp/qwen-assistant-UID",
    }
    run.add_argument("--runtime-dir", **runtime_dir)
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
        "Send SIGHUP to the running service (found like `status` finds it) or to --pid, wait "
        "for its outcome and print it: what applied, what needs a restart, or every problem "
        "of a rejected file (the settings in force stay). Exit status: 0 applied, 78 "
        "rejected, 3 not running, 75 no outcome reported within --timeout.",
    )
    reload.add_argument("--pid", type=bounded(int, 1, 2**22), metavar="PID", help="signal PID")
    reload.add_argument("--runtime-dir", **runtime_dir)
    reload.add_argument(
        "--timeout",
        type=bounded(float, 0.5, 300.0),
        default=15.0,
        metavar="S",
        help="seconds to wait for the outcome (default 15)",
    )
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
    status.add_argument("--runtime-dir", **runtime_dir)
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
    service = Service(
        config,
        speak_to=args.speak_to,
        listen_from=args.listen_from,
        runtime_dir=args.runtime_dir,
    )
    code = asyncio.run(service.run())
    if service.abandoned:
        # stopped while a model was still loading: llama.cpp cannot be interrupted, and
        # waiting for its thread is what made Ctrl-C take 7-20 s; everything else is closed
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def cmd_reload(args: argparse.Namespace) -> int:
    import time

    from ..reload import send_sighup
    from ..runtime import NotRunning, read_status, running_pid

    pid = args.pid if args.pid is not None else running_pid(args.runtime_dir)[1]
    try:
        before = read_status(args.runtime_dir)
    except AssistantError:
        before = {}
    if before.get("pid") != pid:  # a --pid whose status this command cannot read
        send_sighup(pid)
        print(f"sent SIGHUP to {pid}; no status.json of that process here, so see its log")
        return 0
    generation = int((before.get("reload") or {}).get("generation", 0))
    send_sighup(pid)
    deadline = time.monotonic() + args.timeout
    outcome: dict[str, Any] = {}
    while int(outcome.get("generation", 0)) <= generation:
        if time.monotonic() > deadline:
            raise AssistantError(
                f"sent SIGHUP to {pid}, but it reported no outcome within {args.timeout:g} s "
                "(busy loading?); see `journalctl -u qwen-assistant`",
                exit_code=EX_TEMPFAIL,
            )
        time.sleep(0.05)  # the service rewrites status.json as soon as it has reloaded
        try:
            outcome = read_status(args.runtime_dir).get("reload") or {}
        except NotRunning:
            raise AssistantError(f"the service (pid {pid}) stopped before it reloaded") from None
    source = before.get("config") or "the config"
    if not outcome["ok"]:
        for problem in outcome["problems"]:
            print(problem, file=sys.stderr)
        print(f"{PROG}: reload of {source} rejected; the settings in force stay", file=sys.stderr)
        return EX_CONFIG
    print(f"reloaded {source} (pid {pid})")
    for change in outcome["applied"] or ["nothing: no key that applies live changed"]:
        print(f"  applied: {change}")
    if outcome["pending"]:
        print(f"  after a restart: {', '.join(outcome['pending'])}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import time

    from ..runtime import read_status
    from ..status import describe

    data = read_status(args.runtime_dir)
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
