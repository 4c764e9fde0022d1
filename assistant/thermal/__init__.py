"""Thermal governor: thermometer → fan curve and admission rate; and its simulation."""

from .admission import Admission, AdmissionStatus, Busy, Priority, Ticket, TokenBucket
from .fan import Fan, FanCurve, FanError, NoFan, OnOffFan, PWMFan, SysfsFan, make_fan
from .governor import FixedRate, Governor, RateController, ThermalStatus
from .sensor import FileThermometer, SensorError, Thermometer, ThrottleFlags, parse_throttled

__all__ = [
    "Admission",
    "AdmissionStatus",
    "Busy",
    "Fan",
    "FanCurve",
    "FanError",
    "FileThermometer",
    "FixedRate",
    "Governor",
    "NoFan",
    "OnOffFan",
    "PWMFan",
    "Priority",
    "RateController",
    "SensorError",
    "SysfsFan",
    "ThermalStatus",
    "Thermometer",
    "ThrottleFlags",
    "Ticket",
    "TokenBucket",
    "make_fan",
    "parse_throttled",
]
