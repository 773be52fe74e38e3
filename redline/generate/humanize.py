"""Python equivalents of Prometheus' template functions, so tests can state the exact annotation text.

Each unit of the catalogue has one template function (used in alert descriptions as `$value | f`) and
the matching Python function (used for the threshold numbers in the text and in expected test output).
"""

from __future__ import annotations

import math
import re


def go_g4(value: float) -> str:
    """Go's fmt '%.4g' (same as Python's for finite numbers)."""
    return f"{value:.4g}"


def humanize(value: float) -> str:
    """Prometheus `humanize`: SI prefixes, 4 significant digits."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return go_g4(value)
    prefix = ""
    if abs(value) >= 1:
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(value) < 1000:
                break
            prefix, value = p, value / 1000
        return f"{go_g4(value)}{prefix}"
    return _below_one(value)


def humanize_percentage(value: float) -> str:
    """Prometheus `humanizePercentage`: ratio 0.8 -> '80%'."""
    return f"{go_g4(value * 100)}%"


def humanize_duration(value: float) -> str:
    """Prometheus `humanizeDuration` for a number of seconds."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return f"{go_g4(value)}s"
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        value = abs(value)
        whole = int(value)
        seconds, minutes = whole % 60, (whole // 60) % 60
        hours, days = (whole // 3600) % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{go_g4(value)}s"
    return _below_one(value) + "s"


def _below_one(value: float) -> str:
    """A number below 1 with the SI prefix that brings it to 1 or more ('0.05' -> '50m')."""
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix, value = p, value * 1000
    return f"{go_g4(value)}{prefix}"


def go_plain(value: float) -> str:
    """How Go prints a float64 $value without a function: strconv's shortest 'g' representation."""
    return format(value, "g") if value != int(value) else str(int(value))


# unit -> the Go template that shows $value in that unit in an annotation
UNIT_TEMPLATES: dict[str, str] = {
    "seconds": "{{ $value | humanizeDuration }}",
    "bytes": "{{ $value | humanize }}B",
    "ratio": "{{ $value | humanizePercentage }}",
    "count": "{{ $value | humanize }}",
    "fps": "{{ $value | humanize }} fps",
    "multiplier": "{{ $value | humanize }}x",
    "boolean": "{{ $value }}",
}
# Prometheus' template functions by name, in Python ("" : $value printed as it is)
FUNCTIONS = {
    "humanizeDuration": humanize_duration,
    "humanize": humanize,
    "humanizePercentage": humanize_percentage,
    "": go_plain,
}
_TEMPLATE_RE = re.compile(r"^\{\{ \$value(?: \| (\w+))? \}\}(.*)$")


def value_template(unit: str) -> str:
    """The Go template text that shows $value in this unit."""
    return UNIT_TEMPLATES[unit]


def format_value(unit: str, value: float) -> str:
    """Python rendering of a number in this unit, identical to what value_template(unit) prints."""
    match = _TEMPLATE_RE.match(UNIT_TEMPLATES[unit])
    assert match is not None, unit
    return FUNCTIONS[match.group(1) or ""](value) + match.group(2)
