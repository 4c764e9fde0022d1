"""``ask`` and ``chat``: a question to the model here, or to the running service."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from ..config import Config
from ..errors import EX_USAGE, AssistantError
from ._base import PROG, Add, api_key_default, bounded, load

__all__ = ["register"]


def register(top: Any, add: Add) -> None:
    def llm_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", metavar="GGUF", help="use this GGUF file instead of llm.model")
        p.add_argument(
            "--max-tokens",
            type=bounded(int, 1, 8192),
            metavar="N",
            help="cap the answer at N tokens (at most llm.max_tokens)",
        )
        p.add_argument(
            "--temperature",
            type=bounded(float, 0.0, 2.0),
            metavar="T",
            help="sampling temperature; 0 = deterministic",
        )
        p.add_argument(
            "--stats", action="store_true", help="print time to first token and tokens/s to stderr"
        )

    ask = add(top, "ask", "Ask one question and stream the answer to stdout.", cmd_ask)
    ask.add_argument(
        "question",
        nargs="+",
        help="the question (quote it, or give several words); - reads it from stdin",
    )
    llm_options(ask)
    ask.add_argument(
        "--server",
        metavar="URL",
        help="ask the running service instead of loading the model here "
        "(http://127.0.0.1:8088 or unix:/run/qwen-assistant/api.sock)",
    )
    ask.add_argument(
        "--api-key",
        metavar="KEY",
        default=api_key_default(),
        help="bearer token for --server (default: $QWEN_ASSISTANT_API_KEY)",
    )
    chat = add(
        top,
        "chat",
        "Talk with the assistant, several turns; /help inside lists commands.",
        cmd_chat,
    )
    llm_options(chat)


# -- ask / chat ----------------------------------------------------------------------------
def _governor(config: Config) -> Any:
    """The thermal admission path in front of the engine.

    The CLI reads the temperature and queues like any request, but never drives the fan:
    that belongs to the service.
    """
    from ..thermal.governor import Governor

    governor = Governor.from_config(config, drive_fan=False)
    governor.tick()
    return governor


def _open(config: Config, args: argparse.Namespace, governor: Any) -> Any:
    from ..llm.engine import Engine

    # the governor's thread and pacing levers act on the in-process engine too
    engine = Engine.from_config(config, args.model, intensity=governor.intensity)
    engine.load()
    if args.stats:
        print(f"[{engine.backend.describe()}]", file=sys.stderr)
    return engine


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {"max_tokens": args.max_tokens, "temperature": args.temperature}


def _stream(generation: Any, stats: bool) -> None:
    out = sys.stdout
    with generation:  # a failed write (closed pipe, Ctrl-C) must still release the engine
        for piece in generation:
            out.write(piece)
            out.flush()
    out.write("\n")
    out.flush()
    s = generation.stats
    if stats:
        print(
            f"[first token {s.first_token_s:.2f} s · {s.decode_tok_s:.1f} tok/s · "
            f"{s.completion_tokens} tokens · prompt {s.prompt_tokens} "
            f"({s.cached_tokens} cached) · {s.stop_reason}]",
            file=sys.stderr,
        )
    elif s.stop_reason in ("time", "repetition"):
        print(
            f"[answer cut short: {'time limit' if s.stop_reason == 'time' else 'repetition'}]",
            file=sys.stderr,
        )


def _slot(governor: Any) -> Any:
    from ..thermal.admission import Priority

    return governor.admission.slot(Priority.API)


def question(words: list[str], stdin: TextIO) -> str:
    """The question from the command line (``-``: from stdin); one usage error if empty."""
    text = stdin.read() if words == ["-"] else " ".join(words)
    if not text.strip():
        where = "stdin was empty" if words == ["-"] else "the question is empty"
        raise AssistantError(
            f"{where}: give the question as arguments, or `-` to read it from stdin",
            exit_code=EX_USAGE,
        )
    return text.strip()


def cmd_ask(args: argparse.Namespace) -> int:
    args.text = question(args.question, sys.stdin)
    if args.server:
        return _ask_server(args)
    config = load(args)
    governor = _governor(config)
    with _slot(governor):  # too hot or busy: say so before loading the model
        engine = _open(config, args, governor)
        try:
            _stream(engine.new_chat().ask(args.text, **_overrides(args)), args.stats)
        finally:
            engine.close()
    return 0


def _ask_server(args: argparse.Namespace) -> int:
    from ..api.client import stream_chat

    if args.model:
        raise AssistantError("--model cannot be used with --server: the service runs its model")
    stream = stream_chat(
        args.server,
        [{"role": "user", "content": args.text}],
        api_key=args.api_key,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
    )
    out = sys.stdout
    for piece in stream:
        out.write(piece)
        out.flush()
    out.write("\n")
    r = stream.result
    if args.stats:
        print(
            f"[first token {r.first_token_s:.2f} s · {r.usage.get('completion_tokens', 0)} "
            f"tokens · {r.total_s:.2f} s · {r.finish_reason}]",
            file=sys.stderr,
        )
    return 0


CHAT_HELP = "/reset  start a new conversation\n/stats  toggle timings\n/exit   leave (or Ctrl-D)"
#: a second Ctrl-C at the chat prompt within this many seconds leaves
LEAVE_WINDOW_S = 2.0


class Prompt:
    """Lines typed into ``chat``: Ctrl-C at the prompt clears the line; a second one within
    :data:`LEAVE_WINDOW_S`, Ctrl-D or the end of input leaves."""

    def __init__(
        self,
        interactive: bool,
        *,
        read: Callable[[str], str] = input,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interactive = interactive
        self._read = read
        self._clock = clock
        self._interrupted: float | None = None

    def next(self) -> str | None:
        """The next line, or None to leave."""
        while True:
            try:
                line = self._read("you> " if self.interactive else "")
            except EOFError:
                return None
            except KeyboardInterrupt:
                now = self._clock()
                if self._interrupted is not None and now - self._interrupted <= LEAVE_WINDOW_S:
                    print(file=sys.stderr)
                    return None
                self._interrupted = now
                print(
                    f"\n(line cleared; Ctrl-C again within {LEAVE_WINDOW_S:g} s or Ctrl-D leaves)",
                    file=sys.stderr,
                )
                continue
            self._interrupted = None
            return line


def cmd_chat(args: argparse.Namespace) -> int:
    import signal
    import threading

    from ..reload import reload_config

    config = load(args)
    governor = _governor(config)
    engine = _open(config, args, governor)
    interactive = sys.stdin.isatty()
    stats = args.stats
    stop = threading.Event()
    ticker = threading.Thread(target=governor.run, args=(stop,), name="governor", daemon=True)
    ticker.start()

    def on_hup(_signum: int, _frame: Any) -> None:
        nonlocal config
        config = reload_config(config, governor).config

    previous = signal.signal(signal.SIGHUP, on_hup)
    try:
        chat = engine.new_chat()
        if interactive:
            print(
                f"{engine.info.name if engine.info else 'model'} ready. /help for commands; "
                "Ctrl-C stops an answer, Ctrl-D leaves.",
                file=sys.stderr,
            )
        prompt = Prompt(interactive)
        while (line := prompt.next()) is not None:
            text = line.strip()
            if not text:
                continue
            if text.startswith("/"):
                if text in ("/exit", "/quit"):
                    break
                if text == "/reset":
                    chat = engine.new_chat()
                    print("[new conversation]", file=sys.stderr)
                elif text == "/stats":
                    stats = not stats
                else:
                    print(CHAT_HELP, file=sys.stderr)
                continue
            try:
                with _slot(governor):
                    _stream(chat.ask(text, **_overrides(args)), stats)
            except KeyboardInterrupt:
                print("\n[stopped]", file=sys.stderr)
            except AssistantError as exc:  # too long, busy: say so, keep chatting
                print(f"{PROG}: {exc}", file=sys.stderr)
    finally:
        signal.signal(signal.SIGHUP, previous)
        stop.set()
        engine.close()
    return 0
