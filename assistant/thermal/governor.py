"""The governor: temperature → fan duty and admitted rate, once per ``interval_s``.

Each :meth:`Governor.tick` reads the thermometer, smooths the reading, sets the fan from
the curve and sets the admission rate from a PI controller on the temperature error
(``target_c - smoothed``). At or above ``critical_c`` nothing new is admitted until the
SoC is :data:`RESUME_MARGIN_C` below it. A failed reading is "sensor lost": fan at full,
admission at its floor, until good readings return.

The daemon, the CLI and the simulation run this same class; the simulation only swaps
the thermometer, the fan and the clock.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..config import Config, Thermal
from .admission import Admission
from .fan import Fan, FanCurve, NoFan, make_fan
from .sensor import FileThermometer, SensorError, Thermometer, ThrottleFlags, read_throttled

__all__ = [
    "RESUME_MARGIN_C",
    "FixedRate",
    "Governor",
    "RateController",
    "ThermalStatus",
]

log = logging.getLogger(__name__)

#: Admission resumes when the smoothed temperature is this far below thermal.critical_c.
RESUME_MARGIN_C = 2.0
#: The controlled temperature is the envelope of the readings: it follows a rise at once
#: and falls at most this fast, so the short spike each request's prompt evaluation puts
#: on the die counts, not only the average.
PEAK_DECAY_C_PER_S = 0.01
#: How often the firmware's throttle flags are polled (vcgencmd forks a process).
THROTTLE_POLL_S = 60.0


class Controller(Protocol):
    def update(self, celsius: float, dt: float) -> float: ...

    def reset(self, rate_per_min: float) -> None: ...

    def configure(self, settings: Thermal) -> None: ...


class RateController:
    """PID control of the admitted rate (requests/min) on the temperature error.

    ``rate = integral + kp * error - kd * slope`` with ``integral += ki * error * dt``,
    ``error = target_c - celsius`` and ``slope`` the temperature's rise in °C/s; the
    integral and the rate are clamped to ``[min_rate_per_min, rate_per_min]`` so the
    integral cannot wind up while the rate is pinned at a limit. The slope term brakes
    before the target is reached: the board heats for minutes after a load step.
    Starts at the full rate: a cold device has headroom.
    """

    def __init__(self, settings: Thermal) -> None:
        self.integral = self.rate = settings.rate_per_min
        self.configure(settings)
        self.last: float | None = None
        self.slope = 0.0  # °C/s, averaged over ~10 s

    def configure(self, settings: Thermal) -> None:
        self.target_c = settings.target_c
        self.kp = settings.control_kp
        self.ki = settings.control_ki
        self.kd = settings.control_kd
        self.lo = settings.min_rate_per_min
        self.hi = settings.rate_per_min
        self.integral = min(self.hi, max(self.lo, self.integral))

    def update(self, celsius: float, dt: float) -> float:
        error = self.target_c - celsius
        if self.last is not None and dt > 0:
            self.slope += min(1.0, dt / 10.0) * ((celsius - self.last) / dt - self.slope)
        self.last = celsius
        self.integral = min(self.hi, max(self.lo, self.integral + self.ki * error * dt))
        rate = self.integral + self.kp * error - self.kd * self.slope
        self.rate = min(self.hi, max(self.lo, rate))
        return self.rate

    def reset(self, rate_per_min: float) -> None:
        self.integral = self.rate = min(self.hi, max(self.lo, rate_per_min))
        self.last = None
        self.slope = 0.0

    def run(self, temperatures: list[float], dt: float) -> list[float]:
        """List in, list out: the rate after each reading ``dt`` seconds apart."""
        return [self.update(t, dt) for t in temperatures]


class FixedRate:
    """No feedback: always the same rate (the simulation's ``best_fixed`` policy)."""

    def __init__(self, rate_per_min: float) -> None:
        self.rate = rate_per_min

    def update(self, celsius: float, dt: float) -> float:
        return self.rate

    def reset(self, rate_per_min: float) -> None:
        pass

    def configure(self, settings: Thermal) -> None:
        pass


@dataclass(frozen=True)
class ThermalStatus:
    state: str  # "ok", "cooling" (holding back), "hot" (nothing admitted), "sensor lost"
    celsius: float | None  # smoothed; None when there is no reading
    fan_duty: float  # 0..1
    rate_per_min: float  # admitted now
    configured_per_min: float  # thermal.rate_per_min
    problem: str  # why the sensor is lost, "" otherwise
    throttled: str | None  # vcgencmd's flags, None where there is no vcgencmd


class Governor:
    """Temperature in; fan duty and admitted rate out."""

    def __init__(
        self,
        settings: Thermal,
        thermometer: Thermometer | None,
        fan: Fan,
        admission: Admission,
        *,
        controller: Controller | None = None,
        clock: Callable[[], float] = time.monotonic,
        throttle_reader: Callable[[], ThrottleFlags | None] | None = None,
    ) -> None:
        self.settings = settings
        self.thermometer = thermometer
        self.fan = fan
        self.admission = admission
        self.controller = controller or RateController(settings)
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
        self._lock = threading.RLock()  # a SIGHUP handler may reload mid-call

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        drive_fan: bool = True,
        pin_factory: object = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Governor:
        """The daemon's governor (``drive_fan=False`` for a CLI beside the service)."""
        t = config.thermal
        thermometer = FileThermometer(t.sensor_path, stale_s=t.stale_s) if t.sensor_path else None
        fan = make_fan(t, pin_factory=pin_factory) if drive_fan else NoFan()
        admission = Admission(t, clock=clock)
        return cls(t, thermometer, fan, admission, clock=clock, throttle_reader=read_throttled)

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
            self.celsius = self.peak = None  # start smoothing afresh; the controller's
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
        self.peak = celsius if self.peak is None else max(celsius, self.peak - decay)
        self._set_fan(self.curve.update(smoothed))
        rate = self.controller.update(self.peak, dt)
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
        self.admission.set_rate(rate, f"SoC at {smoothed:.1f} °C" if rate < t.rate_per_min else "")

    def _lost(self, problem: str) -> None:
        if problem != self.problem:
            log.warning("thermal sensor lost (%s): fan full, admission at its floor", problem)
        self.problem = problem
        self.hot = False
        self._set_fan(1.0)
        self.controller.reset(self.settings.min_rate_per_min)
        self.admission.resume()
        self.admission.set_rate(self.settings.min_rate_per_min, f"thermal sensor lost: {problem}")

    def _no_sensor(self) -> None:
        """``sensor_path = ""``: no thermal control; a driven fan runs at full."""
        self._set_fan(1.0)
        self.admission.set_rate(self.settings.rate_per_min)

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
        """Apply new limits, curve and target; the model, fan driver and sensor stay."""
        with self._lock:
            self.settings = settings
            self.curve.retune(settings.fan_curve, settings.fan_hysteresis_c)
            self.controller.configure(settings)
            self.admission.configure(settings)

    def close(self) -> None:
        """Leave the fan in ``thermal.fan_safe_state``."""
        with self._lock:
            self.fan.close(self.settings.fan_safe_state)

    # -- status ----------------------------------------------------------------------------

    def status(self) -> ThermalStatus:
        with self._lock:
            return self._status()

    def _status(self) -> ThermalStatus:
        rate = self.admission.bucket.rate_per_min
        if self.problem:
            state = "sensor lost"
        elif self.hot:
            state = "hot"
        elif rate < self.settings.rate_per_min - 0.05:
            state = "cooling"
        else:
            state = "ok"
        return ThermalStatus(
            state=state,
            celsius=None if self.problem else self.celsius,
            fan_duty=self.fan.duty,
            rate_per_min=rate,
            configured_per_min=self.settings.rate_per_min,
            problem=self.problem,
            throttled=self._throttled.describe() if self._throttled else None,
        )
