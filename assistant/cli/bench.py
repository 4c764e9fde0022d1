"""``bench``: figures from this machine (the thermal model's are ``simulate``'s)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from . import benchspeech
from ._base import Add, Group, Progress, bounded, load

__all__ = ["register"]


def register(top: Any, add: Add, group: Group) -> None:
    def bench_command(
        bench: Any,
        name: str,
        help: str,
        func: Any,
        description: str,
        *,
        lo: int,
        hi: int,
        tokens: int = 128,
        runs: int = 3,
        each: str = "path, alternating",
    ) -> Any:
        """A benchmark: --json, --model, --tokens (within lo..hi), --runs; medians."""
        p = add(bench, name, help, func, description)
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.add_argument("--model", metavar="GGUF", help="benchmark this GGUF file")
        p.add_argument(
            "--tokens",
            type=bounded(int, lo, hi),
            default=tokens,
            metavar="N",
            help=f"tokens to decode per run (default {tokens})",
        )
        p.add_argument(
            "--runs",
            type=bounded(int, 1, 20),
            default=runs,
            metavar="N",
            help=f"runs of each {each}; medians are reported (default {runs})",
        )
        return p

    def bench_commands() -> None:
        bench = group("bench", "Measure performance on this machine.", "target")
        benchspeech.register(bench, add)
        bench_command(
            bench,
            "llm",
            "LLM load, prefill, decode, prefix cache, memory",
            cmd_bench_llm,
            "Benchmark the configured LLM in one run: load time, prefill and decode tokens/s "
            "against a bare llama-cpp-python loop, cold vs cached-prefix prefill, peak RSS.",
            lo=2,
            hi=4096,
        )
        bench_command(
            bench,
            "threads",
            "decode and prompt tokens/s for 1..N threads (the governor's thread lever)",
            cmd_bench_threads,
            "Measure decode and prompt-evaluation tokens/s of the configured LLM with 1..N "
            "threads (N: the engine's threads at full), as ratios to N threads, and check that "
            "changing the threads in the middle of a greedy answer leaves its text unchanged.",
            lo=8,
            hi=1024,
        )
        api = bench_command(
            bench,
            "api",
            "HTTP streaming vs in-process decode; with --peer, side by side with llama-server",
            cmd_bench_api,
            "Serve the API on a free loopback port in this process and stream the same prompt "
            "through HTTP and straight from the engine, alternating: decode tokens/s of each, "
            "their ratio (api_ratio) and time to first token over HTTP. With --peer, serve "
            "the same GGUF from llama-server too (same threads, n_batch and context per "
            "sequence) and stream 1, 2, 4 concurrent greedy answers from each, alternating: "
            "aggregate tokens/s, mean and p95 time to first token, their ratios, a voice "
            "answer's first token during the streams, and both peak RSS.",
            lo=8,
            hi=2048,
        )
        api.add_argument(
            "--peer",
            metavar="PATH",
            help="a llama-server binary (scripts/build-llama-server.sh builds one)",
        )
        api.add_argument(
            "--peer-args",
            default="",
            metavar="ARGS",
            help='more llama-server arguments, e.g. "-fa off" (appended after the matched ones)',
        )
        api.add_argument(
            "--concurrency",
            type=_number_list(16, "stream counts"),
            default=(1, 2, 4),
            metavar="N,N,...",
            help="concurrent streams to measure with --peer (default 1,2,4)",
        )

        actions = add(
            bench,
            "actions",
            "tool calls: valid JSON, right action and arguments, false actions, grammar cost",
            cmd_bench_actions,
            "Run a fixed set of 8 actions (enums, numbers, free text) with 66 requests that "
            "should call one and 24 that should call none through the voice turn's prompt, "
            "grammar and checks (nothing is run). Prints valid_json_rate, right_action_rate, "
            "right_arguments_rate, false_action_rate, and first-token time and decode tokens/s "
            "of each call with and without the grammar (decode_ratio), with every miss. Then "
            "15 actions with overlapping verbs (start, stop, set, turn on/off…), each of 30 "
            "action requests, 10 commands no action does and 10 plain questions as a whole "
            "turn (grounding, claim guard, second answer; nothing is run): many.right_action_"
            "rate, many.false_action_rate, many.plain_answered_rate.",
        )
        actions.add_argument("--json", action="store_true", help="print one JSON object")
        actions.add_argument("--model", metavar="GGUF", help="the LLM (default: llm.model)")
        actions.add_argument(
            "--limit",
            type=bounded(int, 1, 1000),
            metavar="N",
            help="only the first N requests of each set (a quick check)",
        )

        answers = add(
            bench,
            "answers",
            "right answers to simple questions at several sampling settings",
            cmd_bench_answers,
            "Ask the 189 short questions of assistant/data/answers.tsv (facts, arithmetic, "
            "units, yes or no) as the voice loop asks them (the configured system prompt, one "
            "fresh conversation each) at 9 sampling points (temperature 0, 0.2, 0.4, 0.7 and "
            "a few top_p and repeat_penalty points), each with --seeds seeds (greedy once), "
            "and score each answer by matching. Prints right_rate per point (mean and range "
            "over the seeds, and per kind of question), the best point and the configured "
            "one's.",
        )
        answers.add_argument("--json", action="store_true", help="print one JSON object")
        answers.add_argument("--model", metavar="GGUF", help="the LLM (default: llm.model)")
        answers.add_argument(
            "--seeds",
            type=bounded(int, 1, 20),
            default=3,
            metavar="N",
            help="seeds 1..N for each sampling point (default 3)",
        )
        answers.add_argument(
            "--limit",
            type=bounded(int, 1, 1000),
            metavar="N",
            help="only the first N questions (a quick check)",
        )

        pi = bench_command(
            bench,
            "pi",
            "a report to send back: tokens/s for 1-4 threads, temperature, throttling, versions",
            cmd_bench_pi,
            "Run on the device: decode and prompt tokens/s of the configured model for each "
            "thread count, the SoC temperature and `vcgencmd get_throttled` before and after, "
            "the CPU clock, the board, the model's sha256 and the package versions. It sends "
            "nothing; docs/performance.md says how to submit the JSON.",
            lo=2,
            hi=1024,
            tokens=64,
            runs=1,
            each="thread count",
        )
        pi.add_argument(
            "--threads",
            type=_thread_list,
            default=(1, 2, 3, 4),
            metavar="N,N,…",
            help="thread counts to measure, in order (default 1,2,3,4)",
        )
        pi.add_argument(
            "--short",
            action="store_true",
            help="a short prompt (the question alone): a quick run that checks the format",
        )

    bench_commands()


def _number_list(hi: int, what: str) -> Any:
    """An argparse type: ``1,2,4`` → (1, 2, 4), each 1..``hi``."""

    def parse(text: str) -> tuple[int, ...]:
        try:
            values = tuple(int(part) for part in text.split(","))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not a list of numbers such as 1,2,4: {text!r}"
            ) from None
        if not values or not all(1 <= v <= hi for v in values):
            raise argparse.ArgumentTypeError(f"{what} must be between 1 and {hi}, got {text}")
        return values

    return parse


_thread_list = _number_list(64, "thread counts")


def cmd_bench_pi(args: argparse.Namespace) -> int:
    from ..llm.pibench import bench_pi, render_pi

    result = bench_pi(
        load(args), model=args.model, threads=args.threads, tokens=args.tokens, runs=args.runs,
        short=args.short,
    )  # fmt: skip
    print(json.dumps(result) if args.json else render_pi(result))
    return 0


def cmd_bench_answers(args: argparse.Namespace) -> int:
    from ..bench_answers import bench_answers, plan, questions, render

    asked = min(args.limit or 10**6, len(questions()))
    total = asked * len(plan(args.seeds))
    progress = Progress("answers", total) if sys.stderr.isatty() else None
    result = bench_answers(
        load(args), model=args.model, seeds=args.seeds, limit=args.limit or 0,
        progress=progress.step if progress else None,
    )  # fmt: skip
    if progress:
        progress.done()
    print(json.dumps(result) if args.json else render(result))
    return 0


def cmd_bench_actions(args: argparse.Namespace) -> int:
    from ..actions.bench import NO_ACTION, REQUESTS, bench_actions, render
    from ..bench_turns import MANY_REQUESTS, NOT_OURS, QUESTIONS, bench_turns

    sets = (REQUESTS, NO_ACTION, MANY_REQUESTS, NOT_OURS, QUESTIONS)
    total = sum(min(args.limit or 10**6, len(each)) for each in sets)
    progress = Progress("requests", total) if sys.stderr.isatty() else None
    step = progress.step if progress else None
    config = load(args)
    result = bench_actions(config, model=args.model, limit=args.limit or 0, progress=step)
    result["many"] = bench_turns(config, model=args.model, limit=args.limit or 0, progress=step)
    if progress:
        progress.done()
    print(json.dumps(result) if args.json else render(result))
    return 0


def cmd_bench_llm(args: argparse.Namespace) -> int:
    from ..llm.bench import bench_llm, render

    result = bench_llm(load(args), model=args.model, tokens=args.tokens, runs=args.runs)
    print(json.dumps(result) if args.json else render(result))
    return 0


def cmd_bench_threads(args: argparse.Namespace) -> int:
    from ..llm.bench import bench_threads, render_threads

    result = bench_threads(load(args), model=args.model, tokens=args.tokens, runs=args.runs)
    print(json.dumps(result) if args.json else render_threads(result))
    return 0 if result["midway_same_text"] or not result["midway_must_match"] else 1


def cmd_bench_api(args: argparse.Namespace) -> int:
    from ..api.bench import bench_api, render

    if args.peer:
        from ..api.peerbench import bench_peer, render_peer

        peer = bench_peer(
            load(args),
            args.peer,
            peer_args=shlex.split(args.peer_args),
            concurrency=args.concurrency,
            model=args.model,
            tokens=args.tokens,
            runs=args.runs,
        )
        print(json.dumps(peer) if args.json else render_peer(peer))
        return 0
    result = bench_api(load(args), model=args.model, tokens=args.tokens, runs=args.runs)
    print(json.dumps(result) if args.json else render(result))
    return 0
