"""Thermal governor: thermometer → heat budget → fan, threads, clock, pacing, admission;
and its simulation."""

from .actors import ClockCap, Intensity
from .admission import Admission, AdmissionStatus, Busy, Priority, Ticket, TokenBucket
from .budget import (
    BudgetController,
    FixedRate,
    HeatBudget,
    Ladder,
    OperatingPoint,
    PowerModel,
)
from .fan import Fan, FanCurve, FanError, NoFan, OnOffFan, PWMFan, SysfsFan, make_fan
from .governor import Governor, ThermalStatus
from .sensor import FileThermometer, SensorError, Thermometer, ThrottleFlags, parse_throttled

__all__ = [
    "Admission",
    "AdmissionStatus",
    "BudgetController",
    "Busy",
    "ClockCap",
    "Fan",
    "FanCurve",
    "FanError",
    "FileThermometer",
    "FixedRate",
    "Governor",
    "HeatBudget",
    "Intensity",
    "Ladder",
    "NoFan",
    "OnOffFan",
    "OperatingPoint",
    "PWMFan",
    "PowerModel",
    "Priority",
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
