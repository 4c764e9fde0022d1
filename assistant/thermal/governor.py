"""The governor: temperature → a heat budget → fan, batch width, work intensity, clock,
pacing, admission.

Each :meth:`Governor.tick` reads the thermometer, smooths the reading, and turns the
envelope of the readings into a power budget (:mod:`.budget`, after Linux's
``power_allocator``). The budget is spent on the levers in order of what they cost a
person waiting: the fan first (full whenever the budget binds; the curve otherwise) and
the batch (``thermal.hot_parallel`` answers together whenever it binds), then threads and
the CPU clock cap (:mod:`.actors`), then pacing, and the admitted rate last.
At or above ``critical_c`` nothing new is admitted, voice included, until the SoC is
:data:`RESUME_MARGIN_C` below it. A failed reading is "sensor lost": fan at full, every
lever at its floor, until good readings return. A machine with no thermal zone at all
(``sensor_path = "auto"``: a VM, a container) has no thermal control, with one warning.

The daemon, the CLI and the simulation run this same class; the simulation only swaps
the thermometer, the fan, the clock cap and the clock.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config import Config, Thermal
from .actors import CPUFREQ_POLICY, ClockCap, Intensity, engine_threads
from .admission import Admission
from .budget import BudgetController, Controller, Ladder, OperatingPoint
from .fan import Fan, FanCurve, NoFan, make_fan
from .sensor import (
    FileThermometer,
    SensorError,
    Thermometer,
    ThrottleFlags,
    find_sensor,
    read_throttled,
)

__all__ = ["RESUME_MARGIN_C", "Governor", "ThermalStatus"]

log = logging.getLogger(__name__)

#: Admission resumes when the smoothed temperature is this far below thermal.critical_c.
RESUME_MARGIN_C = 2.0
#: The controlled temperature is the envelope of the readings: it follows a rise at once
#: and falls at most this fast, so the short spike each request's prompt evaluation puts
#: on the die counts, not only the average.
PEAK_DECAY_C_PER_S = 0.01
#: ... but it is never held more than this far above the smoothed temperature: a prompt's
#: spike (a few degrees for a few seconds) counts, a board that really cooled (a cabinet
#: opened, a fan back) gets its levers back within seconds, not 0.01 °C/s later
PEAK_SPAN_C = 8.0
#: How often the firmware's throttle flags are polled (vcgencmd forks a process).
THROTTLE_POLL_S = 60.0


@dataclass(frozen=True)
class ThermalStatus:
    state: str  # "ok", "cooling" (holding back), "hot" (nothing admitted), "sensor lost", "off"
    celsius: float | None  # smoothed; None when there is no reading
    fan_duty: float  # 0..1
    rate_per_min: float  # admitted now
    configured_per_min: float  # thermal.rate_per_min
    problem: str  # why the sensor is lost, "" otherwise
    throttled: str | None  # vcgencmd's flags, None where there is no vcgencmd
    budget_w: float | None = None  # the work's power budget now (None: no thermal control)
    full_w: float = 0.0  # what the work uses with every lever at full
    threads: int = 0  # decode threads now, of max_threads
    max_threads: int = 0
    batch_threads: int = 0  # prompt-evaluation threads now, of max_batch_threads
    max_batch_threads: int = 0
    clock_mhz: int | None = None  # the cap while decoding (None: not capped by the governor)
    prompt_clock_mhz: int | None = None  # the cap while a prompt is evaluated
    clock_problem: str = ""  # why the clock lever is not available ("" = it is)
    pacing: float = 1.0
    levers: str = ""  # "threads 2/4 · clock ≤ 1.8 GHz · pacing 0.9" when any holds back
    #: why they are held: "heat budget 1.2 of 4.0 W: peak 80.3 °C, target 78 °C" ("" = not)
    held_by: str = ""
    no_sensor: str = ""  # why there is no thermal control ("" = there is)


class Governor:
    """Temperature in; fan duty, threads, clock cap, pacing and admitted rate out."""

    def __init__(
        self,
        settings: Thermal,
        thermometer: Thermometer | None,
        fan: Fan,
        admission: Admission,
        *,
        intensity: Intensity | None = None,
        clock_cap: ClockCap | None = None,
        controller: Controller | None = None,
        clock: Callable[[], float] = time.monotonic,
        throttle_reader: Callable[[], ThrottleFlags | None] | None = None,
        no_sensor: str = "",
    ) -> None:
        self.settings = settings
        self.thermometer = thermometer
        self.fan = fan
        self.admission = admission
        self.intensity = intensity or Intensity(4, 4)
        self.clock_cap = clock_cap
        self.ladder = self._ladder(settings)
        self.controller = controller or BudgetController(settings, self.ladder)
        self.point = self.ladder.points[0]
        self.curve = FanCurve(settings.fan_curve, settings.fan_hysteresis_c)
        self._clock = clock
        self._throttle_reader = throttle_reader
        self._throttled: ThrottleFlags | None = None
        self._throttle_polled = -math.inf
        self._last: float | None = None
        self.celsius: float | None = None
        self.peak: float | None = None  # envelope of the raw readings, what is controlled
        self._slope = 0.0  # °C/s, smoothed: for the "too hot, retry in" estimate
        self.problem = ""
        self.hot = False
        #: why there is no thermal control (no sensor on this machine); "" = there is
        self.no_sensor = no_sensor if thermometer is None else ""
        self._lock = threading.RLock()  # a SIGHUP handler may reload mid-call
        if thermometer is None:  # no thermal control: the bucket (a thermal lever) paces nothing
            admission.set_paced(False)
        elif clock_cap is not None and clock_cap.available:  # the engine's phase decides
            self.intensity.on_clock = clock_cap.set  # which cap is in force
        if self.no_sensor:
            log.warning("%s: thermal control off", self.no_sensor)
        elif thermometer is not None and clock_cap is not None and not clock_cap.available:
            log.warning("clock cap unavailable (%s): using the other levers", clock_cap.problem)

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        drive_fan: bool = True,
        pin_factory: object = None,
        clock: Callable[[], float] = time.monotonic,
        intensity: Intensity | None = None,
    ) -> Governor:
        """The daemon's governor (``drive_fan=False`` for a CLI beside the service: it drives
        neither the fan nor the clock cap, which belong to the service)."""
        t = config.thermal
        path, why = find_sensor(t.sensor_path)
        thermometer = FileThermometer(path, stale_s=t.stale_s) if path else None
        fan = make_fan(t, pin_factory=pin_factory) if drive_fan else NoFan()
        cap = None
        if drive_fan and t.clock_path:
            cap = ClockCap(CPUFREQ_POLICY if t.clock_path == "auto" else t.clock_path)
        if intensity is None:
            intensity = Intensity(*engine_threads(config.llm))
        lanes = config.llm.lanes(t.hot_parallel)  # what the engine's cache can hold
        admission = Admission(t, clock=clock, slots=config.llm.parallel, hot_slots=lanes)
        return cls(
            t,
            thermometer,
            fan,
            admission,
            intensity=intensity,
            clock_cap=cap,
            clock=clock,
            throttle_reader=read_throttled,
            no_sensor=why,
        )

    def _ladder(self, settings: Thermal) -> Ladder:
        i = self.intensity
        return Ladder(settings, i.max_threads, i.max_batch_threads, clock=self._has_clock())

    def _has_clock(self) -> bool:
        return self.clock_cap is not None and self.clock_cap.available

    def spare(self) -> bool:
        """May work be spent ahead of need (answers prepared at a pause): not while the heat
        budget holds the work back, nor when too hot or the sensor is lost."""
        with self._lock:
            return not (self.hot or self.problem or self._binding())

    def _binding(self) -> bool:
        """The budget holds the work back (below what every lever at full uses)."""
        return self.controller.budget_w < self.ladder.full_w - 1e-6

    # -- the loop ------------------------------------------------------------------------

    def tick(self) -> ThermalStatus:
        """Read, decide, act. Never raises for a sensor or fan failure.

        The sensor is read outside the lock: a read that hangs stalls this loop (the
        watchdog notices) but not :meth:`status`, :meth:`reload` or :meth:`close`.
        """
        reading: float | None = None
        problem = ""
        if self.thermometer is not None:
            try:
                reading = self.thermometer.read()
            except SensorError as exc:
                problem = str(exc)
        with self._lock:
            now = self._clock()
            dt = self.settings.interval_s if self._last is None else now - self._last
            self._last = now
            if self.thermometer is None:
                self._no_sensor()
            elif reading is None:
                self._lost(problem)
            else:
                self._reading(reading, dt)
            self._poll_throttle(now)
            return self._status()

    def run(self, stop: threading.Event, beat: Callable[[], None] | None = None) -> None:
        """Tick every ``interval_s`` until ``stop`` is set (a thread's target).

        ``beat`` is called after every tick, good or bad: the watchdog's proof that this
        loop still turns (a read that hangs stops the beats).
        """
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # the governor must outlive any one bad tick
                log.exception("thermal governor tick failed")
                self._set_fan(1.0)
            if beat is not None:
                beat()
            stop.wait(self.settings.interval_s)

    def _reading(self, celsius: float, dt: float) -> None:
        t = self.settings
        if self.problem:
            log.warning("thermal sensor is back: %.1f °C", celsius)
            self.problem = ""
            self.celsius = self.peak = None  # start smoothing afresh; the budget's
            # integral is still at the floor where _lost() left it
        if self.celsius is None or t.smoothing_s <= 0:
            smoothed = celsius
        else:
            alpha = 1.0 - math.exp(-dt / t.smoothing_s)
            smoothed = self.celsius + alpha * (celsius - self.celsius)
        if self.celsius is not None and dt > 0:
            self._slope += 0.1 * ((smoothed - self.celsius) / dt - self._slope)
        self.celsius = smoothed
        decay = PEAK_DECAY_C_PER_S * dt
        held = celsius if self.peak is None else min(self.peak - decay, smoothed + PEAK_SPAN_C)
        self.peak = max(celsius, held)
        point = self.controller.update(self.peak, dt)
        # the fan is the free lever: full whenever the budget binds, else the curve
        curve = self.curve.update(smoothed)
        self._set_fan(1.0 if self._binding() else curve)
        if smoothed >= t.critical_c:
            if not self.hot:
                log.warning(
                    "SoC at %.1f °C ≥ thermal.critical_c %.1f: admitting nothing new",
                    smoothed,
                    t.critical_c,
                )
            self.hot = True
        elif self.hot and smoothed < t.critical_c - RESUME_MARGIN_C:
            log.info("SoC cooled to %.1f °C: admitting again", smoothed)
            self.hot = False
        if self.hot:
            self.admission.stop(
                f"SoC at {smoothed:.1f} °C, above thermal.critical_c {t.critical_c:.1f}",
                self._cooling_estimate(),
            )
        else:
            self.admission.resume()
        self._apply(point, f"SoC at {smoothed:.1f} °C")

    def _apply(self, point: OperatingPoint, why: str) -> None:
        """Move the levers to ``point``: threads and pacing, the clock cap, the rate."""
        if point.clock_mhz is not None and not self._has_clock():  # a cpufreq write failed
            self.intensity.on_clock = None
            self._reladder()
            point = self.ladder.spend(self.controller.budget_w)
        self.point = p = point
        self.intensity.set(
            p.decode_threads, p.batch_threads, p.pacing, p.clock_mhz, p.prompt_clock_mhz
        )
        rate = self.settings.rate_per_min * point.rate_factor
        self.admission.set_rate(rate, why if point.rate_factor < 1.0 else "")
        self.admission.widen(self._binding())  # like the fan: whenever the budget binds

    def _reladder(self) -> None:
        self.ladder = self._ladder(self.settings)
        self.controller.configure(self.settings, self.ladder)

    def _lost(self, problem: str) -> None:
        if problem != self.problem:
            log.warning("thermal sensor lost (%s): fan full, every lever at its floor", problem)
        self.problem = problem
        self.hot = False
        self._set_fan(1.0)
        self.admission.resume()
        self._apply(self.controller.floor(), f"thermal sensor lost: {problem}")
        self.admission.set_rate(self.settings.min_rate_per_min, f"thermal sensor lost: {problem}")

    def _no_sensor(self) -> None:
        """No thermometer: no thermal control; a driven fan runs at full, the work at full
        (and the bucket paces nothing: set once, at construction)."""
        self._set_fan(1.0)
        self._apply(self.ladder.points[0], "")

    def _set_fan(self, duty: float) -> None:
        try:
            self.fan.set(duty)
        except OSError as exc:  # FanError: log, keep governing admission
            log.error("fan: %s", exc)

    def _cooling_estimate(self) -> float:
        """Seconds until admission resumes, from the recent cooling rate (default 60 s)."""
        excess = (self.celsius or 0.0) - (self.settings.critical_c - RESUME_MARGIN_C)
        if self._slope < -1e-3:
            return min(600.0, max(5.0, excess / -self._slope))
        return 60.0

    def _poll_throttle(self, now: float) -> None:
        if self._throttle_reader and now - self._throttle_polled >= THROTTLE_POLL_S:
            self._throttle_polled = now
            flags = self._throttle_reader()
            if flags and flags.raw and (self._throttled is None or flags != self._throttled):
                log.warning("firmware reports %s", flags.describe())
            self._throttled = flags

    # -- reload and shutdown ---------------------------------------------------------------

    def reload(self, settings: Thermal) -> None:
        """Apply new limits, curve, target and levers; the model, fan driver and sensor stay."""
        with self._lock:
            self.settings = settings
            self.curve.retune(settings.fan_curve, settings.fan_hysteresis_c)
            self.ladder = self._ladder(settings)
            self.controller.configure(settings, self.ladder)
            self.admission.configure(settings)

    def close(self) -> None:
        """Leave the fan in ``thermal.fan_safe_state`` and give the CPU its clock back."""
        with self._lock:
            self.fan.close(self.settings.fan_safe_state)
            if self.clock_cap is not None:
                self.clock_cap.close()

    # -- status ----------------------------------------------------------------------------

    def status(self) -> ThermalStatus:
        with self._lock:
            return self._status()

    def _held_by(self) -> str:
        """Why the levers are held: the budget, and the envelope it answers to."""
        budget, full = self.controller.budget_w, self.ladder.full_w
        peak = f"peak {self.peak:.1f} °C, " if self.peak is not None else ""
        return (
            f"heat budget {budget:.1f} of {full:.1f} W: {peak}target {self.settings.target_c:g} °C"
        )

    def _status(self) -> ThermalStatus:
        rate = self.admission.bucket.rate_per_min
        control = self.thermometer is not None
        budget = self.controller.budget_w if control else None
        if self.problem:
            state = "sensor lost"
        elif not control:
            state = "off"
        elif self.hot:
            state = "hot"
        elif self._binding():
            state = "cooling"
        else:
            state = "ok"
        i = self.intensity
        p = self.point
        held = p != self.ladder.points[0]
        wide = self.admission.slots if self.admission.slots > self.admission.parallel else 0
        levers = p.describe(i.max_threads, i.max_batch_threads, wide) if held else ""
        return ThermalStatus(
            state=state,
            celsius=None if self.problem else self.celsius,
            fan_duty=self.fan.duty,
            rate_per_min=rate,
            configured_per_min=self.settings.rate_per_min,
            problem=self.problem,
            throttled=self._throttled.describe() if self._throttled else None,
            budget_w=budget,
            full_w=self.ladder.full_w,
            threads=i.state.decode_threads,
            max_threads=i.max_threads,
            batch_threads=i.state.batch_threads,
            max_batch_threads=i.max_batch_threads,
            clock_mhz=p.clock_mhz if self._has_clock() else None,
            prompt_clock_mhz=p.prompt_clock_mhz if self._has_clock() else None,
            clock_problem="not driven here" if self.clock_cap is None else self.clock_cap.problem,
            pacing=i.state.pacing,
            levers=levers,
            held_by=self._held_by() if held and state in ("cooling", "hot") else "",
            no_sensor=self.no_sensor,
        )
