"""``ask`` and ``chat``: a question to the model here, or to the running service."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..config import Config
from ..errors import EX_USAGE, AssistantError
from ._base import PROG, Add, api_key_default, bounded, load

if TYPE_CHECKING:
    from ..parts import Parts
    from ..turn import Turn, TurnRequest, Turns

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
def _parts(config: Config, args: argparse.Namespace) -> Parts:
    """The house in this process (:class:`~assistant.parts.Parts`): the governor reads the
    temperature and queues like any request, but never drives the fan (the service's)."""
    import asyncio

    from ..parts import Parts

    parts = Parts(config, model=args.model)
    try:
        parts.check_open()  # too hot: say so before loading the model
        asyncio.run(parts.load())
    except BaseException:
        parts.close()
        raise
    if args.stats and parts.engine is not None:
        print(f"[{parts.engine.backend.describe()}]", file=sys.stderr)
    return parts


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {"max_tokens": args.max_tokens, "temperature": args.temperature}


async def _print_turn(turns: Turns, request: TurnRequest, stats: bool) -> Turn:
    """Run one turn and print it as it comes: the answer's text (a schema answer: its JSON;
    a device turn: past the ClaimGuard), then what came of an action."""
    import asyncio

    from ..llm.grammar import JsonPiece
    from ..turn import Outcome, Piece

    out = sys.stdout
    json_out = request.constraint is not None and not request.act
    turn = await turns.start(request)
    wrote = False
    try:
        async for event in turn:
            if isinstance(event, Piece) and (json_out or not isinstance(event.text, JsonPiece)):
                out.write(event.text)
                out.flush()
                wrote = wrote or bool(event.text.strip())
            elif isinstance(event, Outcome):
                out.write(f"{' ' if wrote else ''}{event.decision.said}")
                wrote = True
    except BaseException:
        turn.cancel()
        if turn.job is not None:  # the engine lets go of it before this loop ends
            await asyncio.shield(turn.job.done)
        raise
    finally:
        record = turn.end()
        if wrote:
            out.write("\n")
        out.flush()
    if stats and turn.job is not None:
        print(
            f"[first token {record.first_token_s:.2f} s · {record.decode_tok_s:.1f} tok/s · "
            f"{record.completion_tokens} tokens · prompt {record.prompt_tokens} "
            f"({record.cached_tokens} cached) · {record.outcome}]",
            file=sys.stderr,
        )
    elif record.outcome in ("time", "repetition"):
        cap = "time limit" if record.outcome == "time" else "repetition"
        print(f"[answer cut short: {cap}]", file=sys.stderr)
    return turn


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
        from ..toolcall import gbnf_for_schema

        gbnf_for_schema(schema)
    except Exception as exc:  # noqa: BLE001 - llama.cpp's converter raises bare exceptions
        raise AssistantError(
            f"{path}: the schema cannot be made a grammar ({exc})", exit_code=EX_USAGE
        ) from None
    return schema


def cmd_ask(args: argparse.Namespace) -> int:
    import asyncio

    from ..turn import Conversation, TurnRequest

    args.text = question(args.question, sys.stdin)
    schema = json_schema(args.json_schema) if args.json_schema else None
    if args.server:
        return _ask_server(args, schema)
    config = load(args)
    with _parts(config, args) as parts:
        conversation = Conversation("cli:ask")
        if schema is None:
            request = TurnRequest("cli", args.text, conversation, overrides=_overrides(args))
        else:
            from ..api.tools import json_hint
            from ..llm.conversation import stateless_prompt
            from ..llm.grammar import Constraint

            llm = config.llm
            system = f"{llm.system_prompt}\n\n{json_hint(schema)}"
            fmt = parts.brain.loaded.chat_format
            max_tokens = args.max_tokens or llm.max_tokens
            prompt = stateless_prompt(fmt, [("user", args.text)], system, llm.n_ctx, max_tokens)
            request = TurnRequest(
                "cli",
                args.text,
                conversation,
                act=False,
                tokens=prompt.tokens,
                constraint=Constraint(schema, "now"),
                overrides=_overrides(args),
            )
        turn = asyncio.run(_print_turn(parts.turns, request, args.stats))
        if turn.decision is not None and turn.decision.outcome == "confirm":
            print(
                f"{PROG}: ask has no next turn to say yes in: confirm in chat or by voice",
                file=sys.stderr,
            )
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
    """One ``chat``: the house, the conversation and the typed commands."""

    def __init__(self, config: Config, args: argparse.Namespace) -> None:
        from ..turn import Conversation

        self.config, self.args = config, args
        self.parts = _parts(config, args)
        self.stats = args.stats
        self.conversation = Conversation("cli:chat")
        self._system = self._system_prompt()

    def _system_prompt(self) -> str:
        return str(self.parts.actor.system_prompt(self.config.llm.system_prompt))

    def reload(self) -> None:
        from ..reload import reload_config

        self.config = reload_config(self.config, self.parts.governor).config
        self.parts.config = self.config
        self.parts.actor.update(self.config.actions)  # the next turn offers the new list

    def new_conversation(self) -> None:
        from ..turn import Conversation

        self.parts.actor.forget(self.conversation.key)
        self.conversation = Conversation("cli:chat")

    def command(self, text: str) -> bool:
        """A /command; False to leave."""
        if text in ("/exit", "/quit"):
            return False
        if text == "/reset":
            self.new_conversation()
            print("[new conversation]", file=sys.stderr)
        elif text == "/stats":
            self.stats = not self.stats
        else:
            print(CHAT_HELP, file=sys.stderr)
        return True

    def turn(self, text: str) -> None:
        import asyncio

        from ..turn import TurnRequest

        if self._system != (system := self._system_prompt()):
            self._system = system
            self.new_conversation()  # the actions changed on reload
            print("[actions reloaded: new conversation]", file=sys.stderr)
        request = TurnRequest("cli", text, self.conversation, overrides=_overrides(self.args))
        asyncio.run(_print_turn(self.parts.turns, request, self.stats))

    def close(self) -> None:
        self.parts.close()


def cmd_chat(args: argparse.Namespace) -> int:
    import signal

    config = load(args)
    session = ChatSession(config, args)
    interactive = sys.stdin.isatty()
    previous = signal.signal(signal.SIGHUP, lambda _s, _f: session.reload())
    try:
        if interactive:
            engine = session.parts.engine
            info = engine.info if engine is not None else None
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
        session.close()
    return 0
