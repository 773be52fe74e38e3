"""The catalogue's numbers that code needs at run time, without the catalogue or the generator.

`redline generate` renders them into contract.json beside this module (drift-checked like every
generated file): the bucket bounds of every histogram of the metric contracts, so every threshold an
alert compares with is a bucket bound, and the alert values of every threshold level.
"""

from __future__ import annotations

import json
from pathlib import Path

_DATA = json.loads(Path(__file__).with_name("contract.json").read_text())

# Bucket bounds of every histogram of the metric contracts (`metrics:`), by metric name.
HISTOGRAM_BUCKETS: dict[str, tuple[float, ...]] = {
    name: tuple(bounds) for name, bounds in _DATA["histogram_buckets"].items()
}
# Alert values of every threshold level, by alert name and severity (the demo's faults pass them).
ALERT_VALUES: dict[str, dict[str, float]] = _DATA["alert_values"]
