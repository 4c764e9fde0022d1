"""``qwen-assistant``: parse, call, print. Known failures are one line; --debug shows tracebacks.

One module per command group, each with a ``register`` that declares its parsers next to
its commands: :mod:`.text` (ask, chat), :mod:`.service` (run, reload, status, doctor),
:mod:`.voice` (listen, say, transcribe, audio), :mod:`.models` (config, models) and
:mod:`.bench` (simulate, bench). Exit statuses: docs/cli.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..config import env_seed
from ..errors import EX_USAGE, AssistantError, ConfigError
from ..memory import limit_arenas
from . import bench, models, service, simulate, text, voice
from ._base import PROG, common

__all__ = ["build_parser", "main"]


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits 64 (EX_USAGE) like every other usage error."""

    def error(self, message: str) -> Any:
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    shared = common()
    parser = Parser(
        prog=PROG,
        parents=[shared],
        description="An offline voice and text assistant for the Raspberry Pi 5: "
        "Qwen2.5 on llama.cpp, Vosk speech-to-text, piper speech.",
        epilog="Run `qwen-assistant COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        sub: Any, name: str, help: str, func: Any = None, description: str | None = None
    ) -> argparse.ArgumentParser:
        """A (sub)command taking the global options; ``func`` runs it."""
        p: argparse.ArgumentParser = sub.add_parser(
            name, parents=[shared], help=help, description=description or help
        )
        if func:
            p.set_defaults(func=func)
        return p

    def group(name: str, help: str, dest: str) -> Any:
        return add(top, name, help).add_subparsers(dest=dest, metavar=dest.upper(), required=True)

    text.register(top, add)
    service.register(top, add)
    simulate.register(top, add)
    bench.register(top, add, group)
    models.register(add, group)
    voice.register(top, add, group)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    limit_arenas()  # before any thread allocates (assistant/memory.py says why)
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not debug:
        # an operator wants to see what a reload applied; a thermal problem that refuses a
        # request says so in the refusal, so the one-shot CLI keeps the governor quiet
        logging.getLogger("assistant.reload").setLevel(logging.INFO)
        logging.getLogger("assistant.thermal").setLevel(logging.ERROR)
    try:
        env_seed()  # a bad $QWEN_ASSISTANT_SEED is one line before any work
        return int(args.func(args))
    except ConfigError as exc:
        if debug:
            traceback.print_exc()
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return exc.exit_code
    except AssistantError as exc:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # `qwen-assistant ask … | head` is not an error
        return 0
