"""The simulation: its model matches the published Pi 5 figures, and the governor meets its
targets on the default scenario (the same Governor/Admission code the daemon runs)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from assistant.cli import main
from assistant.config import Thermal
from assistant.thermal import simulate as sim


@pytest.fixture(scope="module")
def results() -> dict[str, sim.Outcome]:
    return sim.compare(Thermal())


def test_model_matches_the_published_figures() -> None:
    rows = {name: (mean, peak) for name, _, mean, peak in sim.calibration()}
    assert 45 <= rows["bare board, idle"][0] <= 50
    assert 80 <= rows["bare board, full load"][0] <= 86  # throttled (avg 81, peak 85-89)
    assert 56 <= rows["active cooler, full load"][1] <= 72
    assert rows["active cooler, LLM decode"][1] < 80  # ~25 tok/s sustained: never throttles


def test_firmware_cuts_the_clock_in_the_soft_zone() -> None:
    board = sim.Board(sim.BARE_BOARD)
    clocks = []
    for die in (79.9, 80.0, 82.5, 85.0, 90.0):
        board.die_c = die
        board.firmware()
        clocks.append(board.clock_ghz)
    assert clocks == [2.4, 2.4, 2.0, 1.5, 1.5]
    assert board.speed("decode") == pytest.approx((1.5 / 2.4) ** 0.5)


def test_governor_meets_its_targets(results: dict[str, sim.Outcome]) -> None:
    gov, best, none = results["governor"], results["best_fixed"], results["none"]
    assert gov.throttle_s == 0
    assert gov.tok_s_cv <= 0.03
    assert gov.tokens >= 0.95 * best.tokens
    assert best.throttle_s == 0
    # without a governor the board lives in the throttle zone and answers at uneven speed
    assert none.throttle_s > 0.9 * 3600
    assert none.tok_s_cv > 0.03
    assert none.p95_wait_s > 5 * gov.p95_wait_s


def test_the_arrivals_ask_for_more_than_the_device_serves(
    results: dict[str, sim.Outcome],
) -> None:
    arrived = len(sim.make_requests(sim.Workload()))
    for outcome in results.values():
        assert outcome.rejected > 0
        assert outcome.served + outcome.rejected <= arrived


def test_a_cooler_board_lets_the_governor_admit_more() -> None:
    requests = sim.make_requests(sim.Workload(duration_s=1200))
    hot = sim.run_policy("governor", Thermal(), sim.KIOSK, requests, duration_s=1200)
    cool = dataclasses.replace(sim.KIOSK, ambient_c=25.0)
    cold = sim.run_policy("governor", Thermal(), cool, requests, duration_s=1200)
    assert cold.tokens > hot.tokens
    assert cold.max_c < hot.max_c


def test_simulate_json_has_the_documented_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--json", "--minutes", "10"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["policies"]) == {"none", "best_fixed", "governor"}
    for policy in data["policies"].values():
        assert {"served", "tokens", "throttle_s", "tok_s_cv", "p95_wait_s"} <= set(policy)


def test_simulate_plot_writes_a_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sim.png"
    assert main(["simulate", "--minutes", "5", "--plot", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    text = capsys.readouterr().out
    assert "governor vs best_fixed tokens" in text and f"plot: {out}" in text


def test_simulate_plot_to_a_bad_path_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "missing" / "sim.png"
    assert main(["simulate", "--minutes", "1", "--plot", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"qwen-assistant: {bad}: cannot write the plot: No such file or directory"]


def test_simulate_calibration_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--calibration"]) == 0
    assert "active cooler, full load" in capsys.readouterr().out
