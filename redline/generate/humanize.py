"""Python equivalents of Prometheus' template functions, so tests can state the exact annotation text.

Each unit of the catalogue has one template function (used in alert descriptions as `$value | f`) and
the matching Python function (used for the threshold numbers in the text and in expected test output).
"""

from __future__ import annotations

import math


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
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix, value = p, value * 1000
    return f"{go_g4(value)}{prefix}"


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
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix, value = p, value * 1000
    return f"{go_g4(value)}{prefix}s"


# unit -> (template pipeline producing the text for $value, Python formatter for the same text)
UNIT_FORMATS: dict[str, tuple[str, str]] = {
    "seconds": ("{{ $value | humanizeDuration }}", "duration"),
    "bytes": ("{{ $value | humanize }}B", "si_bytes"),
    "ratio": ("{{ $value | humanizePercentage }}", "percent"),
    "count": ("{{ $value | humanize }}", "si"),
    "fps": ("{{ $value | humanize }} fps", "si_fps"),
    "multiplier": ("{{ $value | humanize }}x", "si_x"),
    "boolean": ("{{ $value }}", "plain"),
}


def value_template(unit: str) -> str:
    """The Go template text that shows $value in this unit."""
    return UNIT_FORMATS[unit][0]


def format_value(unit: str, value: float) -> str:
    """Python rendering of a number in this unit, identical to what value_template(unit) prints."""
    style = UNIT_FORMATS[unit][1]
    if style == "duration":
        return humanize_duration(value)
    if style == "si_bytes":
        return f"{humanize(value)}B"
    if style == "percent":
        return humanize_percentage(value)
    if style == "si":
        return humanize(value)
    if style == "si_fps":
        return f"{humanize(value)} fps"
    if style == "si_x":
        return f"{humanize(value)}x"
    # Go prints a float64 $value with strconv 'g' shortest representation
    return format(value, "g") if value != int(value) else str(int(value))
