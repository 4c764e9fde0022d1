"""The governor's levers, pure: the ladder of operating points and its power estimate, the
intensity the engine reads (threads, pacing), the cpufreq clock cap on a fake sysfs tree,
and where ``sensor_path = "auto"`` finds a thermometer."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest

from assistant.config import Thermal
from assistant.thermal import ClockCap, Intensity, Ladder, OperatingPoint
from assistant.thermal.budget import decode_speed
from assistant.thermal.sensor import find_sensor


def test_the_ladder_goes_threads_clock_prompt_threads_pacing_with_falling_power() -> None:
    ladder = Ladder(Thermal(), 4, 4, clock=True)
    points = [(p.decode_threads, p.batch_threads, p.prompt_clock_mhz, p.clock_mhz, p.pacing)
              for p in ladder.points]  # fmt: skip
    assert points[0] == (4, 4, 2400, 2400, 1.0)
    assert points[1:3] == [(3, 4, 2400, 2400, 1.0), (2, 4, 2400, 2400, 1.0)]
    assert points[3] == (2, 4, 2300, 2400, 1.0)  # the prompts' clock first, 100 MHz steps
    assert points[11] == (2, 4, 1500, 2400, 1.0)  # ... to min_clock_mhz
    assert points[12] == (2, 4, 1500, 2300, 1.0)  # then the clock while decoding
    assert points[20] == (2, 4, 1500, 1500, 1.0)
    assert points[21:23] == [(2, 3, 1500, 1500, 1.0), (2, 2, 1500, 1500, 1.0)]
    assert [p[4] for p in points[23:]] == [0.9, 0.8, 0.7, 0.6, 0.5]
    assert all(b < a for a, b in itertools.pairwise(ladder.watts))  # every rung saves heat
    assert ladder.floor_w == pytest.approx(ladder.watts[-1] * 0.5 / 30.0)


def test_a_ladder_without_the_clock_and_with_other_floors() -> None:
    settings = Thermal(min_threads=3, min_pacing=0.8)
    ladder = Ladder(settings, 4, 2, clock=False)
    assert [(p.decode_threads, p.batch_threads, p.clock_mhz, p.pacing) for p in ladder.points] == [
        (4, 2, None, 1.0),
        (3, 2, None, 1.0),
        (3, 2, None, 0.9),
        (3, 2, None, 0.8),
    ]


def test_spending_a_budget_picks_the_first_rung_that_fits_and_the_rate_last() -> None:
    ladder = Ladder(Thermal(), 4, 4, clock=True)
    assert ladder.spend(ladder.full_w + 1) == ladder.points[0]
    assert ladder.points[0] == OperatingPoint(4, 4, 2400, 1.0, prompt_clock_mhz=2400)
    assert ladder.spend(ladder.watts[5]) == ladder.points[5]
    assert ladder.spend(ladder.watts[5] - 1e-3) == ladder.points[6]
    half = ladder.spend(ladder.watts[-1] / 2)
    assert half.pacing == 0.5
    assert half.rate_factor == pytest.approx(0.5)
    assert ladder.spend(0.0).rate_factor == pytest.approx(0.5 / 30.0)  # min_rate_per_min


def test_operating_points_describe_themselves_for_the_status_line() -> None:
    point = OperatingPoint(2, 3, 1800, 0.9, prompt_clock_mhz=1800)
    assert point.describe(4, 4) == "threads 2/4 (prompt 3/4) · clock ≤ 1.8 GHz · pacing 0.9"
    prompts = OperatingPoint(2, 4, 2400, 1.0, prompt_clock_mhz=1600)
    assert prompts.describe(4, 4) == "threads 2/4 · clock (prompts ≤ 1.6)"
    both = OperatingPoint(2, 4, 2100, 1.0, prompt_clock_mhz=1500)
    assert both.describe(4, 4) == "threads 2/4 · clock ≤ 2.1 GHz (prompts ≤ 1.5)"
    assert OperatingPoint(4, 4, 2400, 1.0).describe(4, 4) == "threads 4/4"


def test_decode_speed_by_threads_is_relative_to_all_the_cores() -> None:
    assert decode_speed(4, 4) == 1.0
    assert decode_speed(2, 4) == pytest.approx(0.92)
    assert decode_speed(1, 2) == pytest.approx(0.55 / 0.92)
    assert decode_speed(9, 4) == 1.0


def test_intensity_versions_thread_changes_and_paces_decode() -> None:
    slept: list[float] = []
    intensity = Intensity(4, 4, sleep=slept.append)
    assert intensity.pace(0.1) == 0.0  # full speed: never idles
    intensity.set(4, 4, 0.5)
    assert intensity.version == 0  # pacing alone is no thread change
    assert intensity.pace(0.1) == pytest.approx(0.1)
    intensity.set(2, 9, 0.25)
    assert intensity.version == 1
    assert (intensity.state.decode_threads, intensity.state.batch_threads) == (2, 4)  # clamped
    assert intensity.pace(0.1) == pytest.approx(0.3)
    assert slept == pytest.approx([0.1, 0.3])
    cancel = threading.Event()
    cancel.set()
    assert intensity.pace(100.0, cancel) == pytest.approx(300.0)  # returns at once when set


def fake_policy(root: Path, cur: str = "2400000") -> Path:
    root.mkdir(parents=True)
    (root / "cpuinfo_max_freq").write_text("2400000\n")
    (root / "cpuinfo_min_freq").write_text("1500000\n")
    (root / "scaling_max_freq").write_text(cur + "\n")
    return root


def test_clock_cap_writes_khz_within_the_cpus_range_and_restores(tmp_path: Path) -> None:
    policy = fake_policy(tmp_path / "policy0")
    cap = ClockCap(policy)
    assert cap.available and cap.mhz == 2400
    cap.set(1800)
    assert (policy / "scaling_max_freq").read_text() == "1800000\n"
    cap.set(900)
    assert cap.mhz == 1500  # never below cpuinfo_min_freq
    cap.close()
    assert (policy / "scaling_max_freq").read_text() == "2400000\n"


def test_clock_cap_without_cpufreq_or_with_a_failing_write_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = ClockCap(tmp_path / "nope")
    assert not missing.available
    assert missing.problem == f"{tmp_path / 'nope'}: no cpufreq policy on this machine"
    missing.set(1500)  # a no-op
    policy = fake_policy(tmp_path / "policy0")
    cap = ClockCap(policy)
    (policy / "scaling_max_freq").unlink()
    (policy / "scaling_max_freq").mkdir()  # writes fail from now on
    cap.set(1500)
    assert not cap.available and "cannot write" in cap.problem
    assert "clock cap off" in caplog.text


def test_auto_sensor_is_the_socs_zone_else_any_zone_else_none(tmp_path: Path) -> None:
    assert find_sensor("auto", tmp_path) == (
        "",
        f"no thermal sensor on this machine (nothing in {tmp_path}/thermal_zone*/temp)",
    )
    for zone in ("thermal_zone10", "thermal_zone2"):
        (tmp_path / zone).mkdir()
        (tmp_path / zone / "temp").write_text("50000\n")
    assert find_sensor("auto", tmp_path) == (str(tmp_path / "thermal_zone2" / "temp"), "")
    (tmp_path / "thermal_zone0").mkdir()
    (tmp_path / "thermal_zone0" / "temp").write_text("50000\n")
    assert find_sensor("auto", tmp_path) == (str(tmp_path / "thermal_zone0" / "temp"), "")
    assert find_sensor("/x/temp", tmp_path) == ("/x/temp", "")  # named: missing is *lost*
    assert find_sensor("", tmp_path)[0] == ""
