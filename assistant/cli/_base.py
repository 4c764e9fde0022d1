"""Shared pieces of the command line: global options, number ranges, the config."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..config import Config, find_config, load_config

__all__ = ["PROG", "Add", "Group", "Progress", "bounded", "common", "load"]

PROG = "qwen-assistant"

#: ``add(sub, name, help, func=None, description=None)``: a (sub)command with the global options
Add = Any
#: ``group(name, help, dest)``: a command group's subparsers
Group = Any


def common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="config file (default: $QWEN_ASSISTANT_CONFIG, then "
        "/etc/qwen-assistant/config.toml, then the built-in defaults)",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks and debug logging",
    )
    return common


def bounded(kind: type, lo: float, hi: float) -> Any:
    """An argparse type: ``kind`` within [lo, hi], else a usage error naming the range."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo:g} and {hi:g}, got {text}")
        return value

    return parse


def load(args: argparse.Namespace) -> Config:
    """The config named by --config, $QWEN_ASSISTANT_CONFIG or /etc (else the defaults)."""
    return load_config(find_config(getattr(args, "config", None)))


def api_key_default() -> str:
    return os.environ.get("QWEN_ASSISTANT_API_KEY", "")


class Progress:
    """``simulating [#####     ] 20/40 45 °C, seed 1`` on stderr, one line rewritten."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.n = label, total, 0

    def step(self, what: str) -> None:
        self.n += 1
        filled = round(20 * self.n / self.total)
        bar = "#" * filled + " " * (20 - filled)
        sys.stderr.write(f"\r{self.label} [{bar}] {self.n}/{self.total} {what:<20}")
        sys.stderr.flush()

    def done(self) -> None:
        sys.stderr.write("\r" + " " * 70 + "\r")
        sys.stderr.flush()
