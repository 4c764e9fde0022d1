"""Thermal policy list-in/list-out, drivers on gpiozero's mock pins, sensors from files,
and the governor reacting to a file-backed temperature with an injected clock."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import threading
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from assistant.config import Thermal
from assistant.thermal import (
    Admission,
    Busy,
    ClockCap,
    FanCurve,
    FileThermometer,
    FixedRate,
    Governor,
    HeatBudget,
    Intensity,
    Ladder,
    NoFan,
    OnOffFan,
    Priority,
    PWMFan,
    SensorError,
    SysfsFan,
    TokenBucket,
    make_fan,
    parse_throttled,
)
from assistant.thermal.fan import FanError
from tests.fakes import Clock

#: docs/thermal.md: the levers are back within this long once the board is 8 °C under target
RECOVERY_S = 15


# -- fan curve -------------------------------------------------------------------------------
def test_default_curve_is_the_active_coolers_with_hysteresis_on_the_way_down() -> None:
    curve = FanCurve(Thermal().fan_curve, 5.0)
    temps = [40, 50, 59.9, 60, 67.5, 75, 80, 74, 70.1, 69.9, 62.6, 62.4, 55.1, 54.9, 45.1, 44.9]
    duties = [0.0, 0.29, 0.29, 0.49, 0.69, 0.98, 0.98, 0.98, 0.98, 0.69, 0.69, 0.49, 0.49, 0.29,
              0.29, 0.0]  # fmt: skip
    assert curve.run(temps) == pytest.approx(duties)


def test_curve_jumps_several_steps_at_once_both_ways() -> None:
    curve = FanCurve([(50, 30), (60, 60), (70, 100)], 5)
    assert curve.run([72, 30]) == [1.0, 0.0]


def test_retuned_curve_applies_from_the_next_reading() -> None:
    curve = FanCurve([(50, 30), (60, 60), (70, 100)], 5)
    curve.update(72)
    curve.retune([(50, 40)], 2)
    assert curve.duty == 0.4
    assert curve.run([49, 47.9]) == [0.4, 0.0]


# -- token bucket and controller ------------------------------------------------------------
def test_token_bucket_burst_then_rate_with_an_injected_clock() -> None:
    clock = Clock()
    bucket = TokenBucket(6.0, 3, clock)  # one token every 10 s
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(10.0)
    clock.now += 4
    assert bucket.take() == pytest.approx(6.0)
    clock.now += 6
    assert bucket.take() == 0.0
    clock.now += 1000
    assert bucket.level() == 3  # never more than the burst


def test_token_bucket_rate_change() -> None:
    clock = Clock()
    bucket = TokenBucket(60.0, 2, clock)
    assert [bucket.take(), bucket.take()] == [0.0, 0.0]
    assert bucket.take() == pytest.approx(1.0)  # empty: one a second at 60/min
    clock.now += 1.0
    bucket.set_rate(0.0)
    bucket.take()
    assert bucket.take() == float("inf")


def budget(settings: Thermal) -> HeatBudget:
    return HeatBudget(settings, Ladder(settings, 4, 4, clock=True))


def test_heat_budget_step_response_lowers_then_recovers() -> None:
    settings = Thermal(target_c=75, control_kd=0.0)
    pid = budget(settings)
    full, floor = pid.ladder.full_w, pid.ladder.floor_w
    assert pid.run([60.0] * 5, dt=1.0) == [full] * 5  # headroom: the full budget
    hot = pid.run([78.0] * 3000, dt=1.0)
    assert hot[0] < full  # proportional part reacts at once
    assert all(b <= a for a, b in itertools.pairwise(hot))  # then keeps lowering
    assert hot[-1] == pytest.approx(floor)  # the integral reaches the floor, no wind-up
    back = pid.run([70.0] * 3000, dt=1.0)
    assert back[0] > floor
    assert back[-1] == pytest.approx(full)
    assert all(b >= a for a, b in itertools.pairwise(back))


def test_heat_budget_brakes_on_a_fast_rise_before_the_target() -> None:
    settings = Thermal(target_c=75, control_kp=0.0, control_ki=0.0, control_kd=30.0)
    pid = budget(settings)
    rising = pid.run([60.0 + 0.5 * i for i in range(20)], dt=1.0)  # +0.5 °C/s, still < 75
    assert rising[-1] < pid.ladder.full_w
    assert pid.run([70.0] * 100, dt=1.0)[-1] == pytest.approx(pid.ladder.full_w, abs=0.01)


# -- fan drivers -------------------------------------------------------------------------------
@pytest.fixture
def factory() -> MockFactory:
    f = MockFactory(revision="d04170", pin_class=MockPWMPin)  # a Pi 5
    yield f
    f.close()


def states(factory: MockFactory, pin: str) -> list[float]:
    return [float(s.state) for s in factory.pin(pin).states]


def test_pwm_fan_kick_starts_from_stopped_and_respects_min_duty(factory: MockFactory) -> None:
    clock = Clock()
    fan = PWMFan(
        "GPIO18", frequency_hz=25.0, min_duty=0.3, kick_s=1.0, pin_factory=factory, clock=clock
    )
    fan.set(0.1)  # starting: full duty first
    clock.now += 0.5
    fan.set(0.1)  # still kicking
    clock.now += 1.0
    fan.set(0.1)  # below the minimum: raised to it
    fan.set(0.6)
    fan.set(0.0)
    clock.now += 5
    fan.set(0.5)  # from stopped again: another kick
    assert states(factory, "GPIO18") == [0.0, 1.0, 0.3, 0.6, 0.0, 1.0]
    assert factory.pin("GPIO18").frequency == 25.0


@pytest.mark.parametrize(("safe", "last"), [("on", 1.0), ("off", 0.0)])
def test_fan_is_left_in_its_safe_state(factory: MockFactory, safe: str, last: float) -> None:
    fan = PWMFan("GPIO18", kick_s=0, pin_factory=factory)
    fan.set(0.5)
    fan.close(safe)
    pin = factory.pin("GPIO18")
    recorded = [s.state for s in pin.states]
    assert recorded[recorded.index(0.5) + 1] == last  # set before the pin is released
    assert pin.function == "input"  # released: a hardware pull decides (docs/thermal.md)


def test_onoff_fan_is_a_thermostat_with_the_curves_hysteresis(factory: MockFactory) -> None:
    fan = OnOffFan("GPIO17", pin_factory=factory)
    curve = FanCurve(Thermal().fan_curve, 5.0)
    for t in [45, 50, 70, 46, 44, 49]:
        fan.set(curve.update(t))
    assert states(factory, "GPIO17") == [0.0, 1.0, 0.0]


def test_make_fan_opens_the_configured_driver(factory: MockFactory, tmp_path: Path) -> None:
    assert isinstance(make_fan(Thermal()), NoFan)
    pwm = make_fan(Thermal(fan_driver="gpio-pwm", fan_pin="GPIO18"), pin_factory=factory)
    assert isinstance(pwm, PWMFan)
    with pytest.raises(FanError, match=r"thermal\.fan_pin 'GPIO99'"):
        make_fan(Thermal(fan_driver="gpio-onoff", fan_pin="GPIO99"), pin_factory=factory)


def test_sysfs_fan_writes_cooling_device_states(tmp_path: Path) -> None:
    (tmp_path / "max_state").write_text("4\n")
    (tmp_path / "cur_state").write_text("0\n")
    fan = SysfsFan(tmp_path)
    written = []
    for duty in [0.0, 0.05, 0.5, 1.0]:
        fan.set(duty)
        written.append((tmp_path / "cur_state").read_text().strip())
    assert written == ["0", "1", "2", "4"]
    fan.close("on")
    assert (tmp_path / "cur_state").read_text().strip() == "4"
    with pytest.raises(FanError, match="not a cooling device"):
        SysfsFan(tmp_path / "missing")


# -- sensors -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a millidegree reading"),
        (b"hot\n", "not a millidegree reading"),
        (b"\xff\xfe", "not a millidegree reading"),
        (b"200000\n", "implausible reading 200.0"),
        (b"-60000\n", "implausible reading -60.0"),
    ],
)
def test_garbage_and_absurd_readings_are_errors(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "temp"
    path.write_bytes(content)
    with pytest.raises(SensorError, match=message):
        FileThermometer(path).read()


def test_missing_unreadable_and_stale_sensor(tmp_path: Path) -> None:
    path = tmp_path / "temp"
    with pytest.raises(SensorError, match="no such file"):
        FileThermometer(path).read()
    path.mkdir()
    with pytest.raises(SensorError, match="cannot read"):
        FileThermometer(path).read()
    path.rmdir()
    path.write_text("52650\n")
    clock = Clock(path.stat().st_mtime + 10)
    sensor = FileThermometer(path, stale_s=30, clock=clock)
    assert sensor.read() == 52.65
    clock.now += 25
    with pytest.raises(SensorError, match="stale, last written 35 s ago"):
        sensor.read()


def test_throttle_flags_decode_now_and_since_boot() -> None:
    assert parse_throttled("throttled=0x0\n").describe() == "never throttled since boot"
    flags = parse_throttled("throttled=0x80008")
    assert flags.now == ["soft temperature limit"]
    assert flags.since_boot == ["soft temperature limit"]
    assert parse_throttled("throttled=0x50000").since_boot == ["under-voltage", "throttled"]
    with pytest.raises(ValueError, match="unexpected"):
        parse_throttled("error=1")


# -- admission ---------------------------------------------------------------------------------
def test_voice_goes_before_api_and_the_queue_is_bounded() -> None:
    clock = Clock()
    adm = Admission(Thermal(rate_per_min=600, burst=10, queue_size=1), clock=clock)
    first = adm.admit(Priority.API)
    assert first.granted.is_set()
    api = adm.admit(Priority.API)
    with pytest.raises(Busy) as busy:
        adm.admit(Priority.API)
    assert busy.value.reason == "queue"
    voice = adm.admit(Priority.VOICE)  # a full API queue does not keep voice out
    assert voice.granted.is_set()  # nor the API holding every slot: one more, for voice
    assert adm.snapshot().running == 2
    second = adm.admit(Priority.VOICE)  # one voice turn at a time beyond the slots
    with pytest.raises(Busy):
        adm.admit(Priority.VOICE)  # and voice has its bound too
    clock.now += 4
    adm.release(first)
    assert not second.granted.is_set()  # the slot the voice turn holds is the one slot
    adm.release(voice)
    assert second.granted.is_set() and not api.granted.is_set()  # voice before the API
    assert second.waited_s == 4
    adm.release(second)
    assert api.granted.is_set()
    assert adm.snapshot().outcomes == {"admitted": 4, "rate": 0, "queue": 2, "hot": 0}


def test_slots_run_answers_together_and_voice_gets_one_more() -> None:
    clock = Clock()
    adm = Admission(Thermal(rate_per_min=600, burst=10, queue_size=4), clock=clock, slots=2)
    a, b = adm.admit(Priority.API), adm.admit(Priority.API)
    assert a.granted.is_set() and b.granted.is_set()
    c = adm.admit(Priority.API)
    assert not c.granted.is_set()
    assert adm.snapshot().running == 2 and adm.snapshot().slots == 2
    voice = adm.admit(Priority.VOICE)
    assert voice.granted.is_set() and adm.snapshot().running == 3
    adm.release(voice)  # the extra slot was voice's: the API still waits for one of two
    assert not c.granted.is_set()
    adm.release(a)
    assert c.granted.is_set()
    with pytest.raises(Busy):  # both slots taken: a wait, and this caller would not wait
        adm.admit(Priority.API, wait_limit_s=0)
    adm.release(b)
    assert adm.admit(Priority.API, wait_limit_s=0).granted.is_set()  # a slot was free


def test_an_api_request_is_refused_at_once_when_its_wait_would_pass_the_limit() -> None:
    clock = Clock()
    adm = Admission(Thermal(rate_per_min=600, burst=10, queue_size=8), clock=clock)
    running = adm.admit(Priority.API)
    running.max_tokens, running.max_seconds = 200, 0.0
    running.progress(1, clock.now)
    clock.now += 10
    running.progress(41, clock.now)  # 4 tok/s: 159 tokens (about 40 s) to go
    waiting = adm.admit(Priority.API, wait_limit_s=45)  # 40 s: fits
    with pytest.raises(Busy) as busy:  # 40 s + the one waiting (10 s, the mean so far)
        adm.admit(Priority.API, wait_limit_s=45)
    assert busy.value.reason == "queue"
    assert "about 50 s, longer than 45 s (api.queue_timeout_s)" in str(busy.value)
    assert busy.value.retry_after == 40  # when a place frees: the running answer's end
    adm.admit(Priority.VOICE, wait_limit_s=1)  # voice is never refused for the wait
    adm.release(waiting)


def test_over_the_rate_is_busy_with_an_honest_retry_time() -> None:
    clock = Clock()
    adm = Admission(Thermal(rate_per_min=6, burst=1), clock=clock)
    adm.release(adm.admit(Priority.API))
    with pytest.raises(Busy) as busy:
        adm.admit(Priority.API)
    assert (busy.value.reason, busy.value.retry_after) == ("rate", 10)
    assert "retry in 10 s" in str(busy.value)
    clock.now += 10
    adm.release(adm.admit(Priority.API))  # the retry time was true


def test_voice_skips_the_bucket_an_api_flood_emptied() -> None:
    clock = Clock()
    adm = Admission(Thermal(rate_per_min=6, burst=3), clock=clock)
    for _ in range(3):
        adm.release(adm.admit(Priority.API))
    with pytest.raises(Busy):
        adm.admit(Priority.API)
    adm.release(adm.admit(Priority.VOICE))  # refused only when too hot


def test_waiting_request_that_gives_up_leaves_the_queue() -> None:
    adm = Admission(Thermal(rate_per_min=600, burst=10), clock=Clock())
    running = adm.admit(Priority.API)
    waiting = adm.admit(Priority.API)
    adm.release(waiting)
    adm.release(running)
    assert adm.running is None and adm.snapshot().queue == 0


def test_blocking_slot_waits_for_the_engine() -> None:
    adm = Admission(Thermal(rate_per_min=600, burst=10), clock=Clock())
    order = []
    inside = threading.Event()
    release = threading.Event()

    def first() -> None:
        with adm.slot(Priority.API):
            order.append("first")
            inside.set()
            release.wait(10)

    t = threading.Thread(target=first)
    t.start()
    inside.wait(10)
    ticket = adm.admit(Priority.API)
    assert not ticket.granted.is_set()
    release.set()
    assert ticket.granted.wait(10)
    order.append("second")
    adm.release(ticket)
    t.join(10)
    assert order == ["first", "second"]


def fake_cpufreq(policy: Path, cur: int = 2400000) -> Path:
    policy.mkdir(parents=True)
    (policy / "cpuinfo_max_freq").write_text("2400000\n")
    (policy / "cpuinfo_min_freq").write_text("1500000\n")
    (policy / "scaling_max_freq").write_text(f"{cur}\n")
    return policy


# -- the governor on a file-backed thermometer --------------------------------------------------
class Rig:
    """A governor on a temperature file, a recording fan and an injected clock."""

    def __init__(self, tmp_path: Path, **settings: object) -> None:
        self.clock = Clock()
        self.path = tmp_path / "temp"
        self.settings = Thermal(
            sensor_path=str(self.path),
            **{"smoothing_s": 0.0, **settings},  # type: ignore[arg-type]
        )
        self.fan = NoFan()
        self.admission = Admission(self.settings, clock=self.clock)
        self.governor = Governor(
            self.settings,
            FileThermometer(self.path, clock=lambda: self.path.stat().st_mtime),
            self.fan,
            self.admission,
            intensity=Intensity(4, 4),
            clock=self.clock,
        )

    def feed(self, celsius: float | bytes | None, seconds: float = 1.0) -> str:
        if celsius is None:
            self.path.unlink(missing_ok=True)
        else:
            data = celsius if isinstance(celsius, bytes) else f"{round(celsius * 1000)}\n".encode()
            self.path.write_bytes(data)
        self.clock.now += seconds
        return self.governor.tick().state


@pytest.mark.parametrize("bad", [None, b"garbage\n", b"200000\n"])
def test_lost_sensor_fails_safe_then_recovers(
    tmp_path: Path, bad: bytes | None, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig(tmp_path)
    assert rig.feed(55.0) == "ok"
    assert rig.fan.duty == pytest.approx(0.29)
    with caplog.at_level(logging.WARNING, "assistant.thermal"):
        assert rig.feed(bad) == "sensor lost"
        rig.feed(bad)
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1  # once
    status = rig.governor.status()
    assert (status.fan_duty, status.rate_per_min, status.celsius) == (1.0, 0.5, None)
    assert "fan full" in caplog.records[0].message
    assert rig.feed(55.0) == "ok"  # back: far below the target, the full rate again
    assert rig.fan.duty == pytest.approx(0.29)


def test_stale_sensor_file_is_lost(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.governor.thermometer = FileThermometer(rig.path, stale_s=30, clock=rig.clock)
    rig.path.write_text("60000\n")
    os.utime(rig.path, (rig.clock.now, rig.clock.now))
    assert rig.governor.tick().state == "ok"
    rig.clock.now += 31
    assert rig.governor.tick().state == "sensor lost"


def test_heat_spends_the_levers_in_order_and_the_rate_last(tmp_path: Path) -> None:
    rig = Rig(
        tmp_path, target_c=75.0, critical_c=82.0, control_kp=0.05, control_kd=0.0, control_ki=0.01
    )
    rig.feed(60.0)
    status = rig.governor.status()
    assert (status.state, status.threads, status.batch_threads, status.pacing) == ("ok", 4, 4, 1)
    assert status.levers == "" and status.rate_per_min == 30.0
    seen: list[tuple[int, int, float, float]] = []
    for _ in range(1500):
        rig.feed(78.0)
        s = rig.governor.status()
        step = (s.threads, s.batch_threads, s.pacing, s.rate_per_min)
        if not seen or seen[-1] != step:
            seen.append(step)
    assert rig.governor.status().state == "cooling"
    assert rig.fan.duty == 1.0  # the free lever: full as soon as the budget binds
    # decode threads first, then prompt threads, then pacing, and the admitted rate last
    assert [x[:3] for x in seen[:5]] == [(3, 4, 1), (2, 4, 1), (2, 3, 1), (2, 2, 1), (2, 2, 0.9)]
    assert all(x[3] == 30.0 for x in seen if x[2] > 0.5)
    assert seen[-1] == (2, 2, 0.5, 0.5)  # everything at its floor, the rate too
    assert rig.governor.intensity.state.decode_threads == 2  # what the engine reads
    line = rig.governor.status().levers
    assert line == "threads 2/4 (prompt 2/4) · pacing 0.5"
    assert rig.feed(83.0) == "hot"
    with pytest.raises(Busy) as busy:
        rig.admission.admit(Priority.VOICE)  # at critical_c, voice too
    assert busy.value.reason == "hot"
    assert "above thermal.critical_c 82.0" in str(busy.value)
    assert rig.feed(81.0) == "hot"  # resumes only 2 °C below critical
    assert rig.feed(79.5) != "hot"
    rig.admission.release(rig.admission.admit(Priority.VOICE))


def test_the_levers_come_back_within_seconds_once_the_board_cooled(tmp_path: Path) -> None:
    """A file thermometer held at 83.5 °C for ~30 s and then set to 52 °C left the service
    at `pacing 0.5 · 0.5/12 req/min` for about ten minutes with no reason shown (the
    envelope fell 0.01 °C/s): the levers now return within RECOVERY_S (docs/thermal.md),
    and the status line says why while they are held."""
    from assistant.brain import Brain
    from assistant.status import snapshot, status_line

    rig = Rig(tmp_path, smoothing_s=5.0, rate_per_min=12.0)  # the default smoothing
    for _ in range(30):
        rig.feed(83.5)
    held = rig.governor.status()
    assert held.state == "hot" and held.pacing == 0.5 and held.rate_per_min == 0.5
    line = status_line(snapshot(Brain(rig.admission), rig.governor))
    assert "pacing 0.5 (heat budget " in line and "peak 83.5 °C, target 78 °C)" in line, line
    seconds = 0
    while (s := rig.governor.status()).levers or s.rate_per_min < 12.0 or s.state != "ok":
        rig.feed(52.0)
        seconds += 1
        assert seconds <= RECOVERY_S, (seconds, s)
    assert s.held_by == "" and "heat budget" not in status_line(
        snapshot(Brain(rig.admission), rig.governor)
    )


def test_no_work_is_spent_ahead_while_the_budget_binds(tmp_path: Path) -> None:
    """spare(): answers prepared at a pause only while the heat budget holds nothing back."""
    rig = Rig(tmp_path, target_c=75.0, control_kp=0.05, control_kd=0.0, control_ki=0.01)
    rig.feed(60.0)
    assert rig.governor.spare()
    for _ in range(200):
        rig.feed(78.0)
    assert rig.governor.status().held_by and not rig.governor.spare()
    rig.path.unlink()
    rig.governor.tick()
    assert rig.governor.status().state == "sensor lost" and not rig.governor.spare()


def test_the_clock_cap_comes_after_the_decode_threads(tmp_path: Path) -> None:
    policy = fake_cpufreq(tmp_path / "policy0")
    rig = Rig(tmp_path, target_c=75.0, control_kp=0.05, control_kd=0.0, control_ki=0.01)
    rig.governor.clock_cap = cap = ClockCap(policy)
    rig.governor.intensity.on_clock = cap.set
    rig.governor.reload(rig.settings)  # a ladder with the clock
    seen: list[tuple[int, int | None, int | None]] = []
    for _ in range(900):
        rig.feed(78.0)
        s = rig.governor.status()
        step = (s.threads, s.prompt_clock_mhz, s.clock_mhz)
        if not seen or seen[-1] != step:
            seen.append(step)
    # decode threads, then the clock while prompts are evaluated, then while decoding
    assert seen[:3] == [(3, 2400, 2400), (2, 2400, 2400), (2, 2300, 2400)]
    assert (2, 1500, 2400) in seen and (2, 1500, 2300) in seen and seen[-1][1:] == (1500, 1500)
    assert cap.mhz == 1500  # idle between answers: the decode cap is in force
    rig.governor.intensity.phase("prompt")
    assert (policy / "scaling_max_freq").read_text() == "1500000\n"
    assert "clock ≤ 1.5 GHz" in rig.governor.status().levers
    rig.governor.close()
    assert (policy / "scaling_max_freq").read_text() == "2400000\n"  # given back


def test_fixed_rate_ignores_the_temperature(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.governor.controller = FixedRate(2.5, rig.settings, rig.governor.ladder)
    rig.feed(79.0)
    status = rig.governor.status()
    assert (status.rate_per_min, status.threads, status.pacing) == (2.5, 4, 1.0)


def test_no_sensor_means_no_thermal_control_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Thermal(sensor_path="")
    with caplog.at_level(logging.WARNING, "assistant.thermal"):
        gov = Governor(settings, None, NoFan(), Admission(settings), no_sensor="no sensor here")
        for _ in range(3):
            status = gov.tick()
    assert (status.state, status.rate_per_min, status.fan_duty) == ("off", 30.0, 1.0)
    assert (status.threads, status.pacing, status.budget_w) == (4, 1.0, None)
    assert caplog.messages == ["no sensor here: thermal control off"]
    for _ in range(50):  # the bucket (a thermal lever) paces nothing: no clock needed
        gov.admission.release(gov.admission.admit(Priority.API))
    assert not gov.admission.snapshot().paced


def test_governor_keeps_going_when_the_fan_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "max_state").write_text("4\n")
    rig = Rig(tmp_path)
    rig.governor.fan = SysfsFan(tmp_path)
    (tmp_path / "cur_state").mkdir()  # writes now fail
    with caplog.at_level(logging.ERROR, "assistant.thermal"):
        assert rig.feed(79.5) == "cooling"
    assert "cannot write" in caplog.text


def test_reload_swaps_limits_and_curve_keeping_the_controller_state(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.feed(55.0)
    new = dataclasses.replace(rig.settings, rate_per_min=3.0, fan_curve=((40.0, 80.0),))
    rig.governor.reload(new)
    rig.feed(55.0)
    status = rig.governor.status()
    assert (status.configured_per_min, status.rate_per_min, status.fan_duty) == (3.0, 3.0, 0.8)


def test_firmware_throttle_flags_are_reported_when_they_change(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flags = iter(["throttled=0x0", "throttled=0x80000", "throttled=0x80000"])
    rig = Rig(tmp_path)
    rig.governor._throttle_reader = lambda: parse_throttled(next(flags))
    with caplog.at_level(logging.WARNING, "assistant.thermal"):
        for _ in range(3):
            rig.feed(60.0, seconds=61)
    assert rig.governor.status().throttled == "since boot: soft temperature limit"
    assert caplog.messages == ["firmware reports since boot: soft temperature limit"]


def test_from_config_auto_without_any_thermal_zone_is_off_and_a_named_missing_file_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.config import Config
    from assistant.thermal import sensor

    monkeypatch.setattr(sensor, "THERMAL_ROOT", tmp_path / "thermal")  # a VM: no zones
    gov = Governor.from_config(Config(), drive_fan=False, clock=Clock())
    status = gov.tick()
    assert (status.state, status.rate_per_min) == ("off", 30.0)
    assert status.no_sensor.startswith("no thermal sensor on this machine")
    assert gov.clock_cap is None  # a CLI beside the service never touches the clock
    for _ in range(40):  # a chat's worth of questions back to back, none refused
        gov.admission.release(gov.admission.admit(Priority.API))
    named = dataclasses.replace(Config().thermal, sensor_path=str(tmp_path / "gone" / "temp"))
    lost = Governor.from_config(dataclasses.replace(Config(), thermal=named), drive_fan=False)
    assert lost.tick().state == "sensor lost"  # a sensor that was named and is gone fails safe


def test_without_cpufreq_the_governor_says_so_once_unless_there_is_no_control(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Thermal()
    with caplog.at_level(logging.WARNING, "assistant.thermal"):
        cap = ClockCap(tmp_path / "none")
        Governor(settings, None, NoFan(), Admission(settings), clock_cap=cap, no_sensor="none")
    assert caplog.messages == ["none: thermal control off"]  # not a word about the clock
    caplog.clear()
    rig = Rig(tmp_path)
    with caplog.at_level(logging.WARNING, "assistant.thermal"):
        gov = Governor(
            rig.settings, rig.governor.thermometer, NoFan(), rig.admission, clock_cap=cap
        )
    assert caplog.messages == [
        f"clock cap unavailable ({tmp_path / 'none'}: no cpufreq policy on this machine): "
        "using the other levers"
    ]
    assert all(p.clock_mhz is None for p in gov.ladder.points)  # a ladder without the clock
