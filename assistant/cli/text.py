"""``ask`` and ``chat``: a question to the model here, or to the running service."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
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
        "--json-schema",
        metavar="FILE",
        help="answer with JSON that fits the JSON schema in FILE (constrained by a grammar)",
    )
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


def _stream(generation: Any, stats: bool, *, json_out: bool = False) -> None:
    """Print the answer as it comes. ``json_out``: the JSON answer; otherwise the text,
    without a tool call's JSON and without a sentence that claims an action it did not
    call (:class:`~assistant.actions.actor.ClaimGuard`)."""
    from ..actions.actor import ClaimGuard
    from ..llm.grammar import JsonPiece

    out = sys.stdout
    guard = ClaimGuard()
    wrote = False
    with generation:  # a failed write (closed pipe, Ctrl-C) must still release the engine
        for piece in generation:
            text = piece if json_out else "" if isinstance(piece, JsonPiece) else guard.feed(piece)
            out.write(text)
            out.flush()
            wrote = wrote or bool(text.strip())
            if guard.hit:
                break
    tail = "" if json_out else guard.flush()
    out.write(tail)
    if wrote or tail.strip():
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


def json_schema(path: str) -> dict[str, Any]:
    """The JSON schema in ``path``, or one line naming the file and what is wrong."""
    try:
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AssistantError(
            f"{path}: cannot read the JSON schema ({exc.strerror})", exit_code=EX_USAGE
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise AssistantError(
            f"{path}: not JSON ({exc}); give a JSON schema file", exit_code=EX_USAGE
        ) from None
    if not isinstance(schema, dict):
        raise AssistantError(
            f'{path}: a JSON schema is an object ({{"type": "object", …}})', exit_code=EX_USAGE
        )
    try:
        from ..llm.grammar import gbnf_for_schema

        gbnf_for_schema(schema)
    except Exception as exc:  # noqa: BLE001 - llama.cpp's converter raises bare exceptions
        raise AssistantError(
            f"{path}: the schema cannot be made a grammar ({exc})", exit_code=EX_USAGE
        ) from None
    return schema


def _act(actor: Any, generation: Any, text: str) -> Any:
    """What came of a tool call the model made in ``generation`` (None if it made none)."""
    import asyncio

    finished = generation.stats.stop_reason == "tool_call"
    return asyncio.run(actor.decide(generation.json, finished, text))


def cmd_ask(args: argparse.Namespace) -> int:
    args.text = question(args.question, sys.stdin)
    schema = json_schema(args.json_schema) if args.json_schema else None
    if args.server:
        return _ask_server(args, schema)
    from ..actions.actor import Actor
    from ..api.tools import json_hint
    from ..llm.grammar import Constraint

    config = load(args)
    governor = _governor(config)
    actor = Actor(config.actions)
    base = config.llm.system_prompt
    with _slot(governor):  # too hot or busy: say so before loading the model
        engine = _open(config, args, governor)
        try:
            constraint: Constraint | None = None
            if schema is not None:
                chat = engine.new_chat(f"{base}\n\n{json_hint(schema)}")
                constraint = Constraint(schema, "now")
            else:
                chat = engine.new_chat(actor.system_prompt(base))
                constraint = actor.constraint()
            generation = chat.ask(args.text, constraint=constraint, **_overrides(args))
            _stream(generation, args.stats, json_out=schema is not None)
            decision = _act(actor, generation, args.text) if schema is None else None
            if decision is not None:
                print(decision.said)
            if actor.waiting:
                print(
                    f"{PROG}: ask has no next turn to say yes in: confirm in chat or by voice",
                    file=sys.stderr,
                )
        finally:
            engine.close()
    return 0


def _ask_server(args: argparse.Namespace, schema: dict[str, Any] | None) -> int:
    from ..api.client import stream_chat

    if args.model:
        raise AssistantError("--model cannot be used with --server: the service runs its model")
    response_format = (
        {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
        if schema is not None
        else None
    )
    stream = stream_chat(
        args.server,
        [{"role": "user", "content": args.text}],
        api_key=args.api_key,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        response_format=response_format,
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


class ChatSession:
    """One ``chat``: the engine, the conversation, the actions and the typed commands."""

    def __init__(self, config: Config, args: argparse.Namespace, governor: Any) -> None:
        from ..actions.actor import Actor

        self.config, self.args, self.governor = config, args, governor
        self.actor = Actor(config.actions)
        self.engine = _open(config, args, governor)
        self.stats = args.stats
        self.chat = self.new_chat()

    def new_chat(self) -> Any:
        return self.engine.new_chat(self.actor.system_prompt(self.config.llm.system_prompt))

    def reload(self) -> None:
        from ..reload import reload_config

        self.config = reload_config(self.config, self.governor).config
        self.actor.update(self.config.actions)  # the next turn's prompt offers the new list

    def command(self, text: str) -> bool:
        """A /command; False to leave."""
        if text in ("/exit", "/quit"):
            return False
        if text == "/reset":
            self.chat = self.new_chat()
            print("[new conversation]", file=sys.stderr)
        elif text == "/stats":
            self.stats = not self.stats
        else:
            print(CHAT_HELP, file=sys.stderr)
        return True

    def turn(self, text: str) -> None:
        import asyncio

        actor, chat = self.actor, self.chat
        reply = asyncio.run(actor.confirmation(text))
        if reply is not None:  # a yes or no to "Shall I …?": no model needed
            print(reply.said)
            chat.remember(reply.history(text))
            return
        if chat.conversation.system_prompt != actor.system_prompt(self.config.llm.system_prompt):
            self.chat = chat = self.new_chat()  # the actions changed on reload
            print("[actions reloaded: new conversation]", file=sys.stderr)
        with _slot(self.governor):
            generation = chat.ask(text, constraint=actor.constraint(), **_overrides(self.args))
            _stream(generation, self.stats)
        decision = _act(actor, generation, text)
        if decision is not None:
            print(decision.said)
            chat.remember(decision.history(text))


def cmd_chat(args: argparse.Namespace) -> int:
    import signal
    import threading

    config = load(args)
    governor = _governor(config)
    session = ChatSession(config, args, governor)
    interactive = sys.stdin.isatty()
    stop = threading.Event()
    ticker = threading.Thread(target=governor.run, args=(stop,), name="governor", daemon=True)
    ticker.start()
    previous = signal.signal(signal.SIGHUP, lambda _s, _f: session.reload())
    try:
        if interactive:
            info = session.engine.info
            print(
                f"{info.name if info else 'model'} ready. /help for commands; "
                "Ctrl-C stops an answer, Ctrl-D leaves.",
                file=sys.stderr,
            )
        prompt = Prompt(interactive)
        while (line := prompt.next()) is not None:
            text = line.strip()
            if not text:
                continue
            if text.startswith("/"):
                if not session.command(text):
                    break
                continue
            try:
                session.turn(text)
            except KeyboardInterrupt:
                print("\n[stopped]", file=sys.stderr)
            except AssistantError as exc:  # too long, busy: say so, keep chatting
                print(f"{PROG}: {exc}", file=sys.stderr)
    finally:
        signal.signal(signal.SIGHUP, previous)
        stop.set()
        session.engine.close()
    return 0
