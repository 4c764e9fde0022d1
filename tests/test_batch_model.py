"""Continuous batching with the real llama.cpp: answers decoded together, joining and
leaving between steps, voice taking a lane, a grammar per sequence, and four clients of
`qwen-assistant run` (the default model) served at once."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.errors import GenerationError
from assistant.llm.conversation import stateless_prompt
from assistant.llm.engine import Engine
from assistant.llm.grammar import Constraint, JsonPiece
from assistant.llm.policy import Generation
from tests.conftest import greedy
from tests.test_service import Process, free_port

pytestmark = pytest.mark.slow

STORY = "Write a long story about a robot who learns to paint."
QUESTIONS = (
    "What is the capital of France?",
    "How many legs does a spider have?",
    "What colour is the sky on a clear day?",
    "What do bees make?",
)


@pytest.fixture(scope="module")
def engine(qwen_path: Path) -> Iterator[Engine]:
    loaded = Engine(greedy(parallel=4, max_tokens=96, repetition_abort_tokens=0), qwen_path)
    loaded.load()
    yield loaded
    loaded.close()


def prompt(engine: Engine, question: str, system: str | None = None) -> list[int]:
    s = engine.settings
    return stateless_prompt(
        engine.chat_format, [("user", question)], system or s.system_prompt, s.n_ctx, 96
    ).tokens


def run(generation: Generation, log: list[tuple[str, int]] | None = None, tag: str = "") -> str:
    for _ in generation:
        if log is not None:
            log.append((tag, generation.stats.completion_tokens))
    return generation.text


def test_a_lone_answer_is_the_one_llama_cpp_python_generates(engine: Engine) -> None:
    for question in QUESTIONS[:2]:  # other slots now hold caches of their own
        run(engine.generate(prompt(engine, question, "You are a pirate."), max_tokens=16))
    # (another system prompt: the story copies the default one's KV, and its own tokens
    # are evaluated in one chunk from there, exactly as Llama.generate does below)
    tokens = prompt(engine, STORY)
    mine = engine.generate(tokens, max_tokens=48)
    run(mine)
    s = engine.settings

    def generate(llama: Any) -> list[int]:  # Llama.generate on sequence 0, the bare path
        reference: list[int] = []
        for token in llama.generate(
            tokens,
            top_k=s.top_k,
            top_p=s.top_p,
            temp=s.temperature,
            repeat_penalty=s.repeat_penalty,
        ):
            if token in engine.stop_ids or len(reference) == 48:
                break
            reference.append(int(token))
        return reference

    assert mine.token_ids == engine.alone(generate)


def test_every_decode_runs_on_the_decode_thread(
    qwen_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a second thread that decodes makes a second OpenMP team, and both then sleep at
    # every barrier: about a quarter slower (docs/performance.md)
    import llama_cpp
    import llama_cpp.llama_cpp as low

    from assistant.llm.bench import _bare_decode, _evaluate

    threads: list[str] = []
    real = low.llama_decode

    def decode(ctx: Any, batch: Any) -> int:
        threads.append(threading.current_thread().name)
        return int(real(ctx, batch))

    monkeypatch.setattr(low, "llama_decode", decode)
    monkeypatch.setattr(llama_cpp, "llama_decode", decode)
    loaded = Engine(greedy(max_tokens=8), qwen_path)
    loaded.load()  # the canary
    try:
        tokens = prompt(loaded, QUESTIONS[0])
        loaded.warm_system("You are a pirate.")
        run(loaded.generate(tokens))
        _bare_decode(loaded, tokens, 4)
        loaded.alone(lambda llama: _evaluate(llama, tokens))
    finally:
        loaded.close()
    assert len(threads) > 10  # the canary, an answer, a bare loop and an evaluation
    assert set(threads) == {"decode"}


def test_the_decode_thread_and_its_openmp_workers_run_at_decode_nice(qwen_path: Path) -> None:
    import os

    def niced() -> set[int]:  # this process's threads at a nice value of 7
        tids = set()
        for task in Path("/proc/self/task").iterdir():
            stat = (task / "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[16]) == 7:  # field 19: nice
                tids.add(int(task.name))
        return tids

    assert not niced()
    loaded = Engine(greedy(max_tokens=8, decode_nice=7, n_threads=2), qwen_path)
    loaded.load()  # the canary decodes on the decode thread: its OpenMP team is made
    try:
        assert loaded.scheduler is not None
        decode = loaded.scheduler._thread.native_id
        tids = niced()
        assert decode in tids and len(tids) >= 2  # and at least one OpenMP worker
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == 0
    finally:
        loaded.close()


def test_answers_decoded_together_each_finish_and_share_steps(engine: Engine) -> None:
    scheduler = engine.scheduler
    assert scheduler is not None
    before = dict(scheduler.stats)
    log: list[tuple[str, int]] = []
    gens = {q: engine.generate(prompt(engine, q), max_tokens=24) for q in QUESTIONS}
    texts: dict[str, str] = {}
    threads = [
        threading.Thread(target=lambda q=q: texts.__setitem__(q, run(gens[q], log, q)))
        for q in QUESTIONS
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert "Paris" in texts[QUESTIONS[0]]
    assert "honey" in texts[QUESTIONS[3]].lower()
    for g in gens.values():
        assert g.stats.stop_reason in ("stop", "length") and g.stats.completion_tokens > 0
        assert g.stats.cached_tokens > 0  # the system prompt's KV was copied, not evaluated
    steps = scheduler.stats["steps"] - before["steps"]
    sampled = scheduler.stats["sampled"] - before["sampled"]
    assert sampled / steps > 2.0  # most steps advanced several answers at once
    first_end = min(i for i, (tag, n) in enumerate(log) if n == gens[tag].stats.completion_tokens)
    started = {tag for tag, _ in log[: first_end + 1]}
    assert started == set(QUESTIONS)  # every answer was under way before any had finished


def test_a_cancelled_answer_leaves_at_the_next_step_and_the_others_go_on(engine: Engine) -> None:
    cancel = threading.Event()
    story = engine.generate(prompt(engine, STORY), max_tokens=40)
    short = engine.generate(prompt(engine, STORY + " Be brief."), max_tokens=40, cancel=cancel)
    done: list[str] = []

    def cut() -> None:
        for n, _ in enumerate(short, start=1):
            if n == 3:
                cancel.set()
        done.append("short")

    t = threading.Thread(target=cut)
    t.start()
    run(story)
    t.join(60)
    assert short.stats.stop_reason == "cancelled" and short.stats.completion_tokens <= 4
    assert story.stats.stop_reason == "length" and story.stats.completion_tokens == 40


def test_a_new_answer_joins_while_another_decodes_and_finishes_first(engine: Engine) -> None:
    long = engine.generate(prompt(engine, STORY), max_tokens=64)
    pieces = iter(long)
    for _ in range(5):
        next(pieces)
    quick = engine.generate(prompt(engine, QUESTIONS[0]), max_tokens=8)
    assert "Paris" in run(quick)  # joined at the next step: no wait for the long answer
    assert long.stats.completion_tokens < 64
    rest = list(pieces)
    assert rest and long.stats.completion_tokens == 64


def test_closing_early_takes_the_answer_out_and_keeps_the_stats_final(engine: Engine) -> None:
    generation = engine.generate(prompt(engine, STORY), max_tokens=64)
    first = next(iter(generation))
    generation.close()  # a stop string or a client gone: returns once it left the batch
    assert generation.stats.stop_reason == "cancelled"
    assert generation.text.startswith(first) and generation.stats.total_s > 0
    assert engine.scheduler is not None and engine.scheduler.progress() == []


def test_voice_takes_the_lane_of_the_youngest_api_answer(qwen_path: Path) -> None:
    one = Engine(greedy(parallel=1, max_tokens=64, repetition_abort_tokens=0), qwen_path)
    one.load()
    try:
        api = one.generate(prompt(one, STORY), max_tokens=64)
        pieces = iter(api)
        for _ in range(3):
            next(pieces)
        reader = threading.Thread(target=lambda: list(pieces))
        seen: list[int] = []
        voice = one.generate(prompt(one, QUESTIONS[0]), max_tokens=12, priority=0)
        reader.start()
        for _ in voice:
            seen.append(api.stats.completion_tokens)
        reader.join(120)
        # the API answer may finish the step in flight, then waits until voice is done
        assert max(seen) - min(seen) <= 1, seen
        assert "Paris" in voice.text
        assert api.stats.completion_tokens == 64  # and then it went on to the end
    finally:
        one.close()


def test_a_json_answer_and_a_free_answer_decode_together(engine: Engine) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "people": {"type": "integer"}},
        "required": ["city", "people"],
    }
    ask = "Answer in JSON: which city is the capital of France, and how many people live there?"
    constrained = engine.generate(
        prompt(engine, ask), max_tokens=48, constraint=Constraint(schema, start="now")
    )
    free = engine.generate(prompt(engine, STORY), max_tokens=32)
    out: list[str] = []
    t = threading.Thread(target=lambda: out.extend(list(constrained)))
    t.start()
    run(free)
    t.join(60)
    assert all(isinstance(p, JsonPiece) for p in out)
    value = json.loads(constrained.json)
    assert set(value) == {"city", "people"} and isinstance(value["people"], int)
    assert constrained.stats.stop_reason == "stop" and free.stats.completion_tokens == 32


def test_warming_another_system_prompt_leaves_a_running_answer_alone(engine: Engine) -> None:
    tokens = prompt(engine, STORY)
    alone = engine.generate(tokens, max_tokens=32)
    run(alone)
    assert engine.scheduler is not None
    engine.scheduler.invalidate()  # forget the caches, so both runs start alike
    again = engine.generate(tokens, max_tokens=32)
    pieces = iter(again)
    next(pieces)
    engine.warm(engine.chat_format.message("system", "You are a pirate. Speak like one."))
    list(pieces)
    assert again.token_ids == alone.token_ids
    chat = engine.new_chat()  # the default system prompt is evaluated again, once
    assert chat.conversation.prefix == engine.scheduler.prefix()


def test_four_clients_of_the_service_are_served_together(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "config.toml"  # the default model; four answers at once
    config.write_text(
        f"[llm]\nparallel = 4\nmax_tokens = 48\n[api]\nport = {port}\n[voice]\nenabled = false\n"
    )
    with Process(config, tmp_path / "run") as proc:
        proc.wait_for("ready:", timeout=120)
        url = f"http://127.0.0.1:{port}"
        running: list[float] = []
        firsts: list[int] = []
        ends: list[int] = []
        events: list[str] = []
        lock = threading.Lock()

        def client(i: int) -> None:
            body = {
                "messages": [{"role": "user", "content": f"{STORY} Call the robot R{i}."}],
                "stream": True,
                "max_tokens": 48,
                "temperature": 0,
            }
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=120) as r:
                assert r.status_code == 200, r.read()
                got = False
                for line in r.iter_lines():
                    if line.startswith("data: {") and '"content"' in line and not got:
                        got = True
                        with lock:
                            events.append(f"first {i}")
                            firsts.append(i)
                            if len(firsts) == 4:
                                text = httpx.get(f"{url}/metrics").text
                                running.append(_gauge(text, "qwen_assistant_running"))
            with lock:
                events.append(f"end {i}")
                ends.append(i)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        assert sorted(ends) == [0, 1, 2, 3], proc.log[-5:]
        first_end = next(i for i, e in enumerate(events) if e.startswith("end"))
        assert sum(e.startswith("first") for e in events[:first_end]) == 4, events
        assert running == [4.0]
        status = httpx.get(f"{url}/status").json()
        assert status["admission"]["slots"] == 4


def _gauge(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "maxLength": 2000},  # llama.cpp: too many grammar rules
        {"enum": []},  # an empty grammar
        {"type": "string", "pattern": "abc"},  # the converter wants ^…$
    ],
    ids=["rules", "empty", "pattern"],
)
def test_a_grammar_llama_cpp_refuses_ends_that_answer_and_no_other(
    engine: Engine, schema: dict[str, object]
) -> None:
    """One request's bad schema used to end the decode loop for every answer (from then on
    "the model is not loaded"); now that answer ends with the error while another one,
    decoding beside it, finishes, and the next request is served."""
    beside = engine.generate(prompt(engine, QUESTIONS[0]), max_tokens=12)
    pieces = iter(beside)
    first = next(pieces)  # decoding when the bad one arrives
    bad = engine.generate(prompt(engine, "Say a word."), constraint=Constraint(schema, "now"))
    with pytest.raises(GenerationError):
        run(bad)
    assert bad.stats.stop_reason == "error"
    assert first + "".join(pieces) == beside.text and beside.stats.stop_reason in ("stop", "length")
    assert run(engine.generate(prompt(engine, QUESTIONS[1]), max_tokens=8)).strip()


def test_a_full_kv_cache_drops_the_system_prompts_cells_and_every_answer_ends(
    smollm_path: Path,
) -> None:
    """With flash attention the cache is shared: n_ctx for each slot and SPARE_CELLS more.
    With a system prompt longer than the spare in sequence 0 and both slots answering
    their own long prompts at once, it runs out; sequence 0's cells go, not an answer.
    Without, a stream of n_ctx cells for sequence 0 and each slot."""
    from assistant.llm.context import SPARE_CELLS

    settings = greedy(n_ctx=512, n_batch=128, parallel=1, max_tokens=96, repetition_abort_tokens=0)
    streams = Engine(dataclasses.replace(settings, flash_attn="off"), smollm_path)
    streams.load()
    try:
        assert streams.llama.n_ctx() == 3 * 512  # sequence 0 and the two slots
    finally:
        streams.close()
    engine = Engine(dataclasses.replace(settings, flash_attn="on"), smollm_path)
    engine.load()
    try:
        assert engine.llama.n_ctx() == 2 * 512 + SPARE_CELLS  # (parallel + 1) x n_ctx + spare
        long = " ".join(f"Rule {n}: be kind." for n in range(70))
        engine.warm(engine.chat_format.message("system", long))
        assert engine.scheduler is not None and len(engine.scheduler.prefix()) > SPARE_CELLS

        def own(question: str, system: str) -> list[int]:
            tokens = prompt(engine, question, system)
            assert 300 < len(tokens) <= 512 - 96  # (prompt() leaves 96 for the answer)
            return tokens

        tale = " ".join(f"Fact {n}: the sky is blue." for n in range(36))
        api = engine.generate(own(STORY, "Be brief. " + tale), max_tokens=96)
        pieces = iter(api)
        next(pieces)  # the API answer decodes (its slot busy) when the voice prompt comes
        reader = threading.Thread(target=lambda: list(pieces))
        reader.start()
        voice = engine.generate(own(STORY, "Be short. " + tale), max_tokens=32, priority=0)
        run(voice)
        reader.join(120)
        for answer in (api, voice):
            assert answer.stats.stop_reason in ("stop", "length"), answer.stats
            assert answer.stats.completion_tokens > 0
        assert engine.scheduler.prefix() == []  # sequence 0 gave its cells
        assert run(engine.generate(prompt(engine, QUESTIONS[1]), max_tokens=8))  # and on
    finally:
        engine.close()
