"""A wider batch while the heat binds (thermal.hot_parallel): admission grants more answers
together, the governor widens it as it runs the fan at full, and the engine's scheduler
places an answer past llm.parallel only while the cells every busy answer may fill fit
its unified cache — with the real llama.cpp too."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from assistant.config import LLM, Config, Thermal
from assistant.llm.engine import Engine
from assistant.llm.policy import Generation, Sampling
from assistant.llm.sequence import Seq, fits, width
from assistant.thermal import Admission, Priority
from assistant.thermal.actors import Intensity
from assistant.thermal.fan import NoFan
from assistant.thermal.governor import Governor
from assistant.thermal.sensor import FileThermometer
from tests.conftest import greedy
from tests.fakes import Clock

N_CTX = 512
CELLS = 3 * N_CTX + 256  # llm.parallel 2: (parallel + 1) x n_ctx and the spare


def seq(prompt: int, max_tokens: int, priority: int = 1) -> Seq:
    sampling = Sampling(max_tokens, 60.0, 0.0, 1.0, 40, 1.0, 0)
    return Seq(Generation(), [1] * prompt, sampling, threading.Event(), priority=priority)


def test_any_parallel_plus_one_answers_fit_and_a_wider_batch_only_while_its_cells_do() -> None:
    full = [seq(N_CTX - 96, 96), seq(N_CTX - 96, 96)]  # two API answers of n_ctx each
    assert fits(full[1], full[:1], CELLS, N_CTX)
    assert fits(seq(N_CTX - 96, 96, priority=0), full, CELLS, N_CTX)  # voice: always
    assert not fits(seq(300, 96), full, CELLS, N_CTX)  # a third: a voice turn's n_ctx kept
    short = [seq(200, 96) for _ in range(4)]  # the kiosk's API answers: 296 cells each
    for i, answer in enumerate(short):
        assert fits(answer, short[:i], CELLS, N_CTX)  # four together, voice's room kept
    assert fits(seq(N_CTX - 96, 96, priority=0), short, CELLS, N_CTX)
    assert not fits(seq(300, 96), short, CELLS, N_CTX)  # a fifth would not leave it


def test_a_step_advances_the_api_answers_placed_up_to_the_lanes() -> None:
    def api(n: int) -> list[Seq]:
        return [seq(10, 10) for _ in range(n)]

    assert width(api(1), parallel=2, lanes=4) == 2
    assert width(api(3), parallel=2, lanes=4) == 3  # placed while the heat bound: kept
    assert width([*api(4), seq(10, 10, priority=0)], parallel=2, lanes=4) == 4  # voice
    assert width(api(6), parallel=2, lanes=4) == 4  # (pauses an API answer)


def test_the_batch_grows_past_llm_parallel_only_with_the_unified_cache() -> None:
    assert Config().llm.lanes(Config().thermal.hot_parallel) == 4  # the defaults
    assert LLM(parallel=2, flash_attn="on").lanes(4) == 4
    assert LLM(parallel=2, flash_attn="off").lanes(4) == 2  # a stream per sequence
    assert LLM(parallel=6).lanes(4) == 6  # never narrower than llm.parallel


def test_admission_widens_while_the_heat_binds_and_running_answers_finish() -> None:
    adm = Admission(Thermal(rate_per_min=600, burst=10), clock=Clock(), slots=2, hot_slots=4)
    tickets = [adm.admit(Priority.API) for _ in range(5)]
    assert [t.granted.is_set() for t in tickets] == [True, True, False, False, False]
    adm.widen(True)
    assert [t.granted.is_set() for t in tickets] == [True, True, True, True, False]
    assert adm.snapshot().slots == 4 and adm.snapshot().parallel == 2
    voice = adm.admit(Priority.VOICE)
    assert voice.granted.is_set()  # voice: one more, as ever
    adm.release(voice)
    adm.widen(False)  # the four running go on; the next waits for a slot of two
    adm.release(tickets[0])
    adm.release(tickets[1])
    assert not tickets[4].granted.is_set() and adm.snapshot().slots == 2
    adm.release(tickets[2])
    assert tickets[4].granted.is_set()


def test_the_governor_widens_the_batch_whenever_the_budget_binds(tmp_path: Path) -> None:
    clock, path = Clock(), tmp_path / "temp"
    settings = Thermal(sensor_path=str(path), smoothing_s=0.0, target_c=75.0)
    admission = Admission(settings, clock=clock, slots=2, hot_slots=4)
    thermometer = FileThermometer(path, clock=lambda: path.stat().st_mtime)
    governor = Governor(
        settings, thermometer, NoFan(), admission, intensity=Intensity(4, 4), clock=clock
    )

    def feed(celsius: float) -> None:
        path.write_text(f"{round(celsius * 1000)}\n")
        clock.now += 1.0
        governor.tick()

    feed(60.0)
    assert admission.slots == 2 and governor.status().levers == ""
    for _ in range(30):
        feed(78.0)
    status = governor.status()
    assert status.state == "cooling" and admission.slots == 4
    assert status.levers.endswith(" · 4 answers together"), status.levers
    for _ in range(60):
        feed(50.0)
    assert governor.status().state == "ok" and admission.slots == 2


@pytest.mark.slow
def test_past_llm_parallel_answers_share_the_cache_and_wait_for_its_cells(
    smollm_path: Path,
) -> None:
    """llm.parallel 1 and three lanes while hot: three short answers decode together in
    the same cells; three that would overrun them take turns (without the check the
    cache ran out mid-answer and the decode loop failed)."""
    from assistant.llm.context import SPARE_CELLS
    from tests.test_batch_model import STORY, prompt, run

    settings = greedy(n_ctx=N_CTX, n_batch=128, parallel=1, repetition_abort_tokens=0)
    engine = Engine(dataclasses.replace(settings, flash_attn="on"), smollm_path, hot_parallel=3)
    engine.load()
    try:
        scheduler = engine.scheduler
        assert scheduler is not None and engine.lanes == 3
        assert engine.llama.n_ctx() == 2 * N_CTX + SPARE_CELLS  # more lanes, not more cells

        def together(prompts: list[list[int]], max_tokens: int) -> list[tuple[str, int]]:
            """Run the answers at once; the log of (answer, its tokens so far) up to the
            first answer's end."""
            gens = [engine.generate(p, max_tokens=max_tokens) for p in prompts]
            log: list[tuple[str, int]] = []
            threads = [
                threading.Thread(target=run, args=(g, log, str(i))) for i, g in enumerate(gens)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            for g in gens:
                assert g.stats.stop_reason in ("stop", "length"), g.stats
                assert g.stats.completion_tokens > 0
            final = {str(i): g.stats.completion_tokens for i, g in enumerate(gens)}
            end = min(i for i, (tag, n) in enumerate(log) if n == final[tag])
            return log[: end + 1]  # up to the first answer's end

        before = dict(scheduler.stats)
        stories = [f"Write a long story about a {pet}." for pet in ("cat", "dog", "horse")]
        short = together([prompt(engine, q) for q in stories], 24)
        assert len({tag for tag, _ in short}) == 3  # all under way before one ended
        steps = scheduler.stats["steps"] - before["steps"]
        assert (scheduler.stats["sampled"] - before["sampled"]) / steps > 2.0  # three at once

        tale = " ".join(f"Fact {n}: the sky is blue." for n in range(38))
        long = [prompt(engine, STORY, f"Be brief {n}. {tale}") for n in range(3)]
        assert all(380 < len(p) <= N_CTX - 96 for p in long)  # 3 x (p + 96) > the cells
        assert len({tag for tag, _ in together(long, 96)}) == 1  # the others waited for cells
        assert not engine.failure and run(engine.generate(prompt(engine, "Hi."), max_tokens=4))
    finally:
        engine.close()
