"""Stable identifiers shared by rules, dashboards and runbooks: dashboard UIDs, panel ids, URLs.

The dashboards renderer builds one panel per catalogue entry with exactly `panel_id(system, entry_id)`,
so every alert's `dashboard_url` opens the panel that plots its signal. Panel ids of catalogue entries
are in 100..9999; ids 1..99 are free for a dashboard's own panels (rows, text, overview tiles).
Base URLs come from `thresholds/redline.yml` (`settings:`), never from this module.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redline.generate.catalogue import Settings

FIRST_ENTRY_PANEL_ID = 100
LAST_ENTRY_PANEL_ID = 9999
OVERVIEW_UID = "redline-overview"


def dashboard_uid(system_id: str) -> str:
    """The Grafana dashboard UID of a system ('tmux' -> 'redline-tmux'); 'overview' for the on-call board."""
    return OVERVIEW_UID if system_id == "overview" else f"redline-{system_id}"


def panel_id(system_id: str, entry_id: str) -> int:
    """The panel id that shows one catalogue entry (threshold or SLO id) on its system's dashboard.

    Derived from the names only (crc32), so it does not change when entries are added or reordered;
    the catalogue loader rejects the rare collision within one system.
    """
    span = LAST_ENTRY_PANEL_ID - FIRST_ENTRY_PANEL_ID + 1
    return FIRST_ENTRY_PANEL_ID + zlib.crc32(f"{system_id}/{entry_id}".encode()) % span


def dashboard_url(settings: Settings, system_id: str, entry_id: str | None = None) -> str:
    """Link to a system's dashboard, opened on the entry's panel when entry_id is given."""
    url = f"{settings.grafana_url}/d/{dashboard_uid(system_id)}"
    if entry_id is not None:
        url += f"?viewPanel={panel_id(system_id, entry_id)}"
    return url


def runbook_anchor(alert_name: str) -> str:
    """The Markdown heading anchor of an alert's runbook section (headings are the bare alert name)."""
    return alert_name.lower()


def runbook_url(settings: Settings, system_id: str, alert_name: str) -> str:
    """Link to the alert's section in docs/runbooks/<system>.md."""
    return f"{settings.runbook_base_url}/{system_id}.md#{runbook_anchor(alert_name)}"
