"""Alertmanager webhook notifications as data, for tests and benchmarks of the ledger and the console."""

from __future__ import annotations

import datetime as dt


def iso(seconds: float) -> str:
    """Alertmanager's timestamp format for unix seconds."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def notification(
    receiver: str,
    alertname: str,
    status: str,
    start: float,
    end: float | None = None,
    fingerprint: str = "",
    **labels: str,
) -> dict:
    """An Alertmanager webhook payload with one alert (critical for the pager, warning otherwise)."""
    severity = "critical" if receiver == "pager" else "warning"
    alert_labels = {"alertname": alertname, "severity": severity, "system": "tmux", **labels}
    return {
        "receiver": receiver,
        "status": status,
        "groupKey": f'{{}}:{{alertname="{alertname}"}}',
        "alerts": [
            {
                "status": status,
                "labels": alert_labels,
                "annotations": {"summary": f"{alertname} test"},
                "startsAt": iso(start),
                "endsAt": iso(end) if end else "0001-01-01T00:00:00Z",
                "fingerprint": fingerprint or f"fp-{alertname}",
            }
        ],
    }
