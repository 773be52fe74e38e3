"""Prometheus and Alertmanager durations ('5m', '1h30m', '500ms', '15d') in seconds and back.

One grammar, Prometheus' own (y w d h m s ms, largest first, each at most once), for the catalogue's
windows, the storage settings, the backtest's model of alertmanager.yml and the command-line options.
The catalogue accepts a subset of it (no years, no milliseconds: redline.generate.model).
"""

from __future__ import annotations

import re

_UNITS = (("y", 365 * 86400), ("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1), ("ms", 0.001))
_DURATION_RE = re.compile("^" + "".join(rf"(?:(\d+){suffix})?" for suffix, _ in _UNITS) + "$")


def seconds(text: str) -> float:
    """Seconds in a duration such as '5m', '1h30m' or '500ms'; ValueError when it is not one."""
    match = _DURATION_RE.match(text) if isinstance(text, str) and text else None
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration like 500ms, 30s, 5m, 1h30m, 15d")
    return sum(int(count) * unit for count, (_, unit) in zip(match.groups(), _UNITS, strict=True) if count)


def format_duration(seconds: int) -> str:
    """The shortest duration string for a whole number of seconds, in weeks at most ('90s' -> '1m30s')."""
    if seconds == 0:
        return "0s"
    parts = []
    for suffix, unit in _UNITS[1:-1]:
        count, seconds = divmod(seconds, int(unit))
        if count:
            parts.append(f"{count}{suffix}")
    return "".join(parts)
