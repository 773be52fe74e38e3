"""Where the checkout's folders are: the one place that knows the repository layout.

redline runs from a checkout (an editable install): the stack reads the repository's own configs, the
generator its catalogue. An exporter installed on its own (the container image) reads none of these.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = ROOT / "thresholds"
PROMETHEUS = ROOT / "prometheus"
ALERTMANAGER = ROOT / "alertmanager"
GRAFANA = ROOT / "grafana"
