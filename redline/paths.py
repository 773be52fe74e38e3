"""Where the checkout's folders are: the one place that knows the repository layout.

redline runs from a checkout (an editable install): the stack reads the repository's own configs, the
generator its catalogue. An exporter installed on its own (the container image) reads none of these.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THRESHOLDS = ROOT / "thresholds"
PROMETHEUS = ROOT / "prometheus"
ALERTMANAGER = ROOT / "alertmanager"
GRAFANA = ROOT / "grafana"
# The long-range recording rules, rendered by `redline generate`, evaluated by vmalert (redline up --scale).
LONG_TERM_RULES = PROMETHEUS / "long-term" / "rules.yml"


RUN_DIR_ENV = "REDLINE_RUN_DIR"


def run_dir() -> Path:
    """The native stack's run folder: $REDLINE_RUN_DIR, else .run/ in the checkout."""
    return Path(os.environ.get(RUN_DIR_ENV) or ROOT / ".run")


def ledger_url(run: Path | None = None) -> str:
    """The run folder's alert ledger: the pager-sink writes it; the console and `redline ledger` read it."""
    return f"sqlite:///{(run or run_dir()) / 'pager-sink' / 'ledger.db'}"
