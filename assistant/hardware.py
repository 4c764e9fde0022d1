"""GPIO: the push-to-talk button and the status LEDs, through gpiozero.

Pins come from ``[voice]`` (gpiozero names such as "GPIO17"; "" = not fitted). Both take a
``pin_factory`` (tests: ``gpiozero.pins.mock.MockFactory``); gpiozero is imported here only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from .config import Voice as VoiceSettings
from .errors import AssistantError

__all__ = ["STATE_LEDS", "Indicators", "PushButton", "ShowsState"]

log = logging.getLogger(__name__)

#: which LED shows which voice state ("mic lost" and "error" light the error LED)
STATE_LEDS = {
    "listening": "listening",
    "thinking": "thinking",
    "speaking": "speaking",
    "mic lost": "error",
    "error": "error",
}


class ShowsState(Protocol):
    """Shows the voice loop's state ("listening", "thinking", "speaking", "mic lost", …)."""

    def show(self, state: str) -> None: ...


class Indicators:
    """Up to four LEDs; exactly the one for the current state is on."""

    def __init__(self, settings: VoiceSettings, *, pin_factory: Any = None) -> None:
        pins = {
            "listening": settings.led_listening_pin,
            "thinking": settings.led_thinking_pin,
            "speaking": settings.led_speaking_pin,
            "error": settings.led_error_pin,
        }
        self.leds: dict[str, Any] = {}
        if not any(pins.values()):
            return
        from gpiozero import LED

        for name, pin in pins.items():
            if pin:
                try:
                    self.leds[name] = LED(pin, pin_factory=pin_factory)
                except Exception as exc:  # noqa: BLE001 - gpiozero raises many kinds
                    self.close()
                    raise AssistantError(f"voice.led_{name}_pin {pin!r}: {exc}") from None

    def show(self, state: str) -> None:
        lit = STATE_LEDS.get(state)
        for name, led in self.leds.items():
            led.on() if name == lit else led.off()

    def close(self) -> None:
        for led in self.leds.values():
            led.off()
            led.close()
        self.leds = {}


class PushButton:
    """The push-to-talk button: ``on_press`` runs on gpiozero's thread."""

    def __init__(self, pin: str, on_press: Callable[[], None], *, pin_factory: Any = None) -> None:
        from gpiozero import Button

        try:
            self.button = Button(pin, pull_up=True, bounce_time=0.05, pin_factory=pin_factory)
        except Exception as exc:  # noqa: BLE001
            raise AssistantError(f"voice.button_pin {pin!r}: {exc}") from None
        self.button.when_pressed = on_press

    def close(self) -> None:
        self.button.close()
