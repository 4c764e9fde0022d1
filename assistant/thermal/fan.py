"""The fan: a curve with hysteresis (pure policy) and the drivers that turn a duty into air.

The curve works like the Pi 5 kernel's trip points: each point ``(°C, duty %)`` switches
on when the temperature reaches it and off only when it falls ``hysteresis`` degrees
below it. Below the first point the fan is off.

Drivers take duties 0..1 and import gpiozero only inside their constructors; tests pass
``pin_factory=MockFactory(pin_class=MockPWMPin)``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..config import Thermal
from ..errors import AssistantError

__all__ = [
    "Fan",
    "FanCurve",
    "FanError",
    "NoFan",
    "OnOffFan",
    "PWMFan",
    "SysfsFan",
    "make_fan",
]


class FanError(AssistantError, OSError):
    """The fan driver could not be set up or driven."""


class FanCurve:
    """Temperature → duty (0..1), stepwise, with hysteresis on the way down."""

    def __init__(self, points: Sequence[tuple[float, float]], hysteresis_c: float) -> None:
        self.points = [(float(t), float(d) / 100.0) for t, d in points]
        self.hysteresis_c = float(hysteresis_c)
        self.level = 0  # number of trip points currently active

    def update(self, celsius: float) -> float:
        """Feed one temperature, get the duty to apply."""
        level = self.level
        while level < len(self.points) and celsius >= self.points[level][0]:
            level += 1
        while level > 0 and celsius < self.points[level - 1][0] - self.hysteresis_c:
            level -= 1
        self.level = level
        return self.duty

    @property
    def duty(self) -> float:
        return self.points[self.level - 1][1] if self.level else 0.0

    def run(self, temperatures: Iterable[float]) -> list[float]:
        """List in, list out: the duty after each temperature."""
        return [self.update(t) for t in temperatures]

    def retune(self, points: Sequence[tuple[float, float]], hysteresis_c: float) -> None:
        """Apply a new curve, keeping the fan where it is until the next reading."""
        self.points = [(float(t), float(d) / 100.0) for t, d in points]
        self.hysteresis_c = float(hysteresis_c)
        self.level = min(self.level, len(self.points))


class Fan(Protocol):
    """A fan driver. ``set`` takes a duty 0..1; ``close`` leaves the fan in a safe state."""

    name: str

    @property
    def duty(self) -> float: ...

    def set(self, duty: float) -> None: ...

    def close(self, safe_state: str = "on") -> None: ...


class NoFan:
    """``fan_driver = "none"``: remembers the duty it was asked for and drives nothing."""

    name = "none"

    def __init__(self) -> None:
        self._duty = 0.0

    @property
    def duty(self) -> float:
        return self._duty

    def set(self, duty: float) -> None:
        self._duty = _clamp(duty)

    def close(self, safe_state: str = "on") -> None:
        self._duty = 1.0 if safe_state == "on" else 0.0


def _clamp(duty: float) -> float:
    return min(1.0, max(0.0, float(duty)))


def _gpio(kind: str, pin: str, pin_factory: Any, **kwargs: Any) -> Any:
    try:
        import gpiozero
    except ImportError:
        raise FanError("the gpio fan drivers need gpiozero: pip install gpiozero") from None
    cls = getattr(gpiozero, kind)
    try:
        return cls(pin, pin_factory=pin_factory, **kwargs)
    except Exception as exc:  # noqa: BLE001 (gpiozero: BadPinFactory, PinInvalidPin, ...)
        raise FanError(f"thermal.fan_pin {pin!r}: cannot open for the fan: {exc}") from None


class PWMFan:
    """``gpio-pwm``: a PWM pin (gpiozero PWMOutputDevice) switching the fan's MOSFET.

    Duties between 0 and ``min_duty`` are raised to ``min_duty`` (a fan stalls below
    it). Starting from stopped, the fan gets full duty for ``kick_s`` seconds first so it
    spins up, then the asked duty.
    """

    name = "gpio-pwm"

    def __init__(
        self,
        pin: str,
        *,
        frequency_hz: float = 100.0,
        min_duty: float = 0.2,
        kick_s: float = 1.0,
        pin_factory: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.device = _gpio(
            "PWMOutputDevice", pin, pin_factory, frequency=frequency_hz, initial_value=0.0
        )
        self.min_duty = min_duty
        self.kick_s = kick_s
        self._clock = clock
        self._asked = 0.0
        self._kick_until = 0.0

    @property
    def duty(self) -> float:
        return float(self.device.value)

    def set(self, duty: float) -> None:
        duty = _clamp(duty)
        if 0.0 < duty < self.min_duty:
            duty = self.min_duty
        now = self._clock()
        if duty > 0.0 and self._asked == 0.0 and self.kick_s > 0.0:
            self._kick_until = now + self.kick_s
        self._asked = duty
        value = 1.0 if duty > 0.0 and now < self._kick_until else duty
        if value != self.device.value:
            self.device.value = value

    def close(self, safe_state: str = "on") -> None:
        self.device.value = 1.0 if safe_state == "on" else 0.0
        self.device.close()


class OnOffFan:
    """``gpio-onoff``: a plain output (gpiozero OutputDevice). Any duty above 0 is on.

    With the curve's hysteresis this is a thermostat: on at the first curve point,
    off again ``fan_hysteresis_c`` below it.
    """

    name = "gpio-onoff"

    def __init__(self, pin: str, *, pin_factory: Any = None) -> None:
        self.device = _gpio("OutputDevice", pin, pin_factory, initial_value=False)

    @property
    def duty(self) -> float:
        return 1.0 if self.device.value else 0.0

    def set(self, duty: float) -> None:
        on = _clamp(duty) > 0.0
        if on != bool(self.device.value):
            self.device.value = on

    def close(self, safe_state: str = "on") -> None:
        self.device.value = safe_state == "on"
        self.device.close()


class SysfsFan:
    """``sysfs``: a kernel cooling device (``cur_state`` 0..``max_state``).

    On a Pi 5 the fan header is ``/sys/class/thermal/cooling_device0`` (pwm-fan). The
    kernel's own thermal governor also writes ``cur_state``; see docs/thermal.md.
    """

    name = "sysfs"

    def __init__(self, device: str | Path) -> None:
        self.path = Path(device)
        try:
            self.max_state = int((self.path / "max_state").read_text().strip())
        except (OSError, ValueError) as exc:
            raise FanError(
                f"thermal.fan_device {str(self.path)!r}: not a cooling device: {exc}"
            ) from None
        if self.max_state < 1:
            raise FanError(f"thermal.fan_device {str(self.path)!r}: max_state is 0")
        self._duty = 0.0

    @property
    def duty(self) -> float:
        return self._duty

    def set(self, duty: float) -> None:
        duty = _clamp(duty)
        state = round(duty * self.max_state)
        if duty > 0.0:
            state = max(state, 1)
        try:
            (self.path / "cur_state").write_text(f"{state}\n")
        except OSError as exc:
            raise FanError(f"{self.path / 'cur_state'}: cannot write: {exc}") from None
        self._duty = duty

    def close(self, safe_state: str = "on") -> None:
        self.set(1.0 if safe_state == "on" else 0.0)


def make_fan(settings: Thermal, *, pin_factory: Any = None) -> Fan:
    """The driver ``thermal.fan_driver`` names."""
    if settings.fan_driver == "gpio-pwm":
        return PWMFan(
            settings.fan_pin,
            frequency_hz=settings.fan_frequency_hz,
            min_duty=settings.fan_min_duty,
            kick_s=settings.fan_kick_s,
            pin_factory=pin_factory,
        )
    if settings.fan_driver == "gpio-onoff":
        return OnOffFan(settings.fan_pin, pin_factory=pin_factory)
    if settings.fan_driver == "sysfs":
        return SysfsFan(settings.fan_device)
    return NoFan()
