"""What each console page shows, computed from the catalogue, Prometheus, Alertmanager and the ledger.

The functions here return plain data for the templates; the routes (redline/console/app.py) only wire
requests to them. An alert of the catalogue is drawn with its own signal (the expression its rule
compares), its documented target and its alert values; the intervals it fired come from Prometheus'
ALERTS series.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from redline import storage
from redline.console.charts import Line, Series, intervals, signal_chart, visible_span
from redline.console.upstream import Alertmanagers, Prometheus, UpstreamError, matches
from redline.generate.alerts import Alert, catalogue_alerts
from redline.generate.conventions import (
    BUDGET_MATCH,
    COMPLIANCE_GOOD,
    COMPLIANCE_POOR,
    COMPLIANCE_WINDOW,
    LONG_TERM_BUDGET,
    budget_left,
    compliance_record,
    dashboard_uid,
    entry_selector,
    long_range,
    panel_id,
    tiers_by_severity,
)
from redline.generate.humanize import format_value, humanize_percentage
from redline.generate.model import Catalogue, Slo, Threshold, breaches
from redline.receivers.ledger import Ledger, parse_time

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
# Labels an alert gets from its rule, not from its series: they never select a series of the signal.
RULE_LABELS = {"alertname", "severity", "system", "slo", "watchdog", "alertstate"}
CHART_HOURS = 3
CHART_POINTS = 240  # about one point per 3 pixels of the chart
MIN_STEP = 1.0  # seconds: the demo systems are scraped every second
LEVEL_COLORS = {"critical": "#d62728", "warning": "#ff7f0e", "info": "#7f7f7f"}


@dataclass
class Shown:
    """One alert as the console lists it."""

    labels: dict[str, str]
    annotations: dict[str, str]
    state: str  # firing | pending | silenced | inhibited
    starts_at: str
    fingerprint: str = ""
    silenced_by: list[str] = field(default_factory=list)
    inhibited_by: list[str] = field(default_factory=list)

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "")

    @property
    def starts_at_unix(self) -> float | None:
        """startsAt as the ledger keys episodes by."""
        return parse_time(self.starts_at)

    def query(self) -> list[tuple[str, str]]:
        """The alert's labels as query parameters of its console page."""
        return sorted(self.labels.items())


@dataclass
class Group:
    """An Alertmanager aggregation group (or Prometheus' pending alerts of one name)."""

    receiver: str
    labels: dict[str, str]
    alerts: list[Shown]

    @property
    def rank(self) -> tuple[int, str, str]:
        severities = [SEVERITY_ORDER.get(a.severity, 3) for a in self.alerts] or [3]
        return (min(severities), self.labels.get("system", ""), self.labels.get("alertname", ""))


class Console:
    """The console's view of the stack; one per process."""

    def __init__(
        self,
        catalogue: Catalogue,
        prometheus: Prometheus,
        alertmanagers: Alertmanagers,
        ledger_url: str,
        history: Prometheus | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.prometheus = prometheus  # now: pending alerts, current values, its external labels
        # over time: the signal charts, their firing intervals, the SLOs' budgets (a period's worth)
        self.over_time = history or prometheus
        self.alertmanagers = alertmanagers
        self.ledger_url = ledger_url
        self.alerts: dict[tuple[str, str], Alert] = {
            (a.alert_name, a.severity): a for a in catalogue_alerts(catalogue)
        }

    # ----- now -----------------------------------------------------------------------------------------

    def groups(self) -> list[Group]:
        """Firing alerts grouped as Alertmanager groups them, then pending ones; most severe first."""
        groups = []
        for group in self.alertmanagers.groups():
            members = [_from_alertmanager(alert) for alert in group["alerts"]]
            groups.append(Group(group["receiver"]["name"], dict(group["labels"]), members))
        pending: dict[str, list[Shown]] = {}
        for alert in self.prometheus.alerts():
            if alert["state"] == "pending":
                one = Shown(dict(alert["labels"]), dict(alert["annotations"]), "pending", alert["activeAt"])
                pending.setdefault(alert["labels"]["alertname"], []).append(one)
        groups += [Group("(pending)", {"alertname": name}, items) for name, items in pending.items()]
        return sorted(groups, key=lambda g: g.rank)

    def find(self, labels: dict[str, str]) -> Shown | None:
        """The alert with exactly these labels, firing (Alertmanager) or pending (Prometheus)."""
        for group in self.groups():
            for alert in group.alerts:
                if alert.labels == labels:
                    return alert
        return None

    # ----- one alert -----------------------------------------------------------------------------------

    def chart(self, labels: dict[str, str], now: float | None = None) -> str | None:
        """The SVG of the alert's signal over the last hours, or None when the catalogue has no such alert.

        The signal is asked at a step that gives about CHART_POINTS points over the window; when its data
        begins later (a young stack, a new target), it is asked again over the span shown, at that span's
        step: at the window's step a series younger than one step would be a single point, no line."""
        alert = self.alerts.get((labels.get("alertname", ""), labels.get("severity", "")))
        if alert is None:
            return None
        end = now or time.time()
        start = end - CHART_HOURS * 3600
        expr, lines = self._signal(alert)
        wanted = [(k, v) for k, v in labels.items() if k not in RULE_LABELS]
        step = _step(start, end)
        series = self._series(expr, wanted, start, end, step)
        shown_from = visible_span(series, start, end)
        if shown_from > start:
            start, step = shown_from, _step(shown_from, end)
            series = self._series(expr, wanted, start, end, step)
        external = self.prometheus.external_labels()  # on the alert, not on its ALERTS series
        selector = ",".join(
            f"{k}={json.dumps(v)}"  # a PromQL string: quotes and backslashes escaped as in JSON
            for k, v in sorted(labels.items())
            if k != "alertstate" and external.get(k) != v
        )
        fired = self.over_time.query_range(f'ALERTS{{{selector},alertstate="firing"}}', start, end, step)
        firing = [span for r in fired for span in intervals([(float(t), 1.0) for t, _v in r["values"]], step)]
        unit = alert.source.unit if isinstance(alert.source, Threshold) else "ratio"
        return signal_chart(series, start, end, unit, lines, firing)

    def _series(
        self, expr: str, wanted: list[tuple[str, str]], start: float, end: float, step: float
    ) -> list[Series]:
        """The series of `expr` that belong to the alert (its labels that the series carry)."""
        return [
            Series(_series_name(r["metric"]), [(float(t), float(v)) for t, v in r["values"]])
            for r in self.over_time.query_range(expr, start, end, step)
            if matches(r["metric"], [(k, v) for k, v in wanted if k in r["metric"]])
        ]

    def _signal(self, alert: Alert) -> tuple[str, list[Line]]:
        """The expression to draw and its reference lines (target, every level's alert value)."""
        source = alert.source
        if isinstance(source, Threshold):
            levels = [
                a for a in self.alerts.values() if a.source.id == source.id and a.system == source.system
            ]
            lines = [Line(source.target, f"target {format_value(source.unit, source.target)}", "#2ca02c")]
            lines += [
                Line(
                    level.value,
                    f"{level.severity} {format_value(source.unit, level.value)}",
                    LEVEL_COLORS[level.severity],
                )
                for level in levels
            ]
            return source.signal, lines
        tier = tiers_by_severity(self.catalogue)[alert.severity][0]
        burn = tier.factor * source.error_budget
        label = f"{alert.severity}: {tier.factor:g}x the budget over {tier.long_window}"
        label += f", {humanize_percentage(burn)}"
        return source.error_ratio_for(tier.long_window), [Line(burn, label, LEVEL_COLORS[alert.severity])]

    # ----- systems -------------------------------------------------------------------------------------

    def system_rows(self, system_id: str) -> list[dict[str, Any]]:
        """Each threshold and SLO of a system with its current value: green, amber or red."""
        system = self.catalogue.system(system_id)
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for item in system.entries():
            if item.id in seen:
                continue
            seen.add(item.id)
            rows.append(self._row(system_id, item))
        return rows

    def _row(self, system_id: str, item: Threshold | Slo) -> dict[str, Any]:
        row: dict[str, Any] = {"id": item.id, "alert": item.alert_name, "quote": item.quote}
        row |= {"source": item.source, "panel": panel_id(system_id, item.id), "values": []}
        if isinstance(item, Slo):
            row["what"] = f"{item.name}: objective {humanize_percentage(item.objective)} over {item.period}"
            # from the history: with --scale the store, the only one holding the whole period
            for result in self._instant(budget_left(item), self.over_time):
                left = float(result["value"][1])
                color = "red" if left <= 0 else ("amber" if left < 0.5 else "green")
                env = {k: v for k, v in result["metric"].items() if k in BUDGET_MATCH}
                shown = f"{humanize_percentage(left)} budget left {_budget_span(item, result['metric'])}"
                row["values"].append((_series_name(env), shown, color))
            return row
        levels = [a.source for a in self.alerts.values() if a.source.id == item.id and a.system == system_id]
        row["what"] = f"{item.measures}: target {format_value(item.unit, item.target)}, alert " + ", ".join(
            f"{level.severity} {format_value(level.unit, level.value)}"
            for level in levels
            if isinstance(level, Threshold)
        )
        for result in self._instant(item.signal):
            value = float(result["value"][1])
            breached = any(
                isinstance(level, Threshold) and breaches(level.operator, value, level.value)
                for level in levels
            )
            off_target = breaches(item.operator, value, item.target) and value != item.target
            color = "red" if breached else ("amber" if off_target else "green")
            row["values"].append((_series_name(result["metric"]), format_value(item.unit, value), color))
        if not item.standard_name:  # the Watchdog has no target to hold (long_term.py)
            row["held"] = self._held(system_id, item)
        return row

    def _held(self, system_id: str, item: Threshold) -> list[tuple[str, str, str]]:
        """The entry's monthly compliance per series, from the history: vmalert's record, which only the
        long-term store holds (redline up --scale). Empty when the history has none."""
        answer = self._instant(compliance_record() + entry_selector(system_id, item.id), self.over_time)
        # The store's copies of the signal carry the replicas' external labels (e.g. stack), which the
        # replica's current values do not: left out, a series is named as its current value is.
        external = self._external_labels() if answer else {}
        held = []
        for result in answer:
            share = float(result["value"][1])
            metric = {k: v for k, v in result["metric"].items() if k != "entry" and external.get(k) != v}
            color = "green" if share >= COMPLIANCE_GOOD else ("amber" if share >= COMPLIANCE_POOR else "red")
            shown = f"target held {humanize_percentage(share)} of {COMPLIANCE_WINDOW} (long-term store)"
            held.append((_series_name(metric), shown, color))
        return sorted(held)

    def _external_labels(self) -> dict[str, str]:
        try:
            return self.prometheus.external_labels()
        except UpstreamError:
            return {}

    def no_compliance(self) -> str:
        """What a threshold row says when the history has no monthly compliance."""
        if self.over_time.url == self.prometheus.url:
            return f"no {COMPLIANCE_WINDOW} record: needs --scale"
        return f"no {COMPLIANCE_WINDOW} record in the long-term store yet (vmalert writes it)"

    def _instant(self, expr: str, source: Prometheus | None = None) -> list[dict[str, Any]]:
        try:
            return (source or self.prometheus).query(expr)
        except UpstreamError:
            return []

    def panel_entry(self, uid: str, panel: int | None) -> tuple[str, str | None]:
        """(system, entry id) of a Grafana dashboard link (`/d/<uid>?viewPanel=<id>`), for the console."""
        for system in self.catalogue.systems:
            if dashboard_uid(system.id) == uid:
                entries = {panel_id(system.id, e): e for e in system.entry_ids()}
                return system.id, entries.get(panel) if panel is not None else None
        return "", None

    # ----- history -------------------------------------------------------------------------------------

    def history(self, days: int, now: float | None = None) -> dict[str, Any]:
        """The ledger's figures and episodes of the last `days` days."""
        end = now or time.time()
        ledger = Ledger(self.ledger_url)
        try:
            episodes = ledger.episodes(end - days * 86400, end + 1)
            figures = ledger.figures(end - days * 86400, end + 1, episodes)
        finally:
            ledger.close()
        return {"figures": figures, "episodes": list(reversed(episodes))[:200], "days": days}


def _step(start: float, end: float) -> float:
    """The query_range step that gives about CHART_POINTS points between start and end."""
    return max(MIN_STEP, (end - start) / CHART_POINTS)


def _from_alertmanager(alert: dict[str, Any]) -> Shown:
    status = alert["status"]
    state = "firing"
    if status["silencedBy"]:
        state = "silenced"
    elif status["inhibitedBy"]:
        state = "inhibited"
    return Shown(
        dict(alert["labels"]),
        dict(alert["annotations"]),
        state,
        alert["startsAt"],
        alert["fingerprint"],
        list(status["silencedBy"]),
        list(status["inhibitedBy"]),
    )


def _budget_span(slo: Slo, metric: dict[str, str]) -> str:
    """Which record a budget value is and what it covers (conventions.budget_left): 15 days of a 30-day
    budget read differently from the whole 30."""
    if metric.get("__name__") == LONG_TERM_BUDGET:
        return f"over {slo.period} (long-term store)"
    if long_range(slo):
        return f"over at most {storage.PROMETHEUS_RETENTION_TIME} of {slo.period} (Prometheus' own)"
    return f"over {slo.period}"


def _series_name(metric: dict[str, str]) -> str:
    shown = [f'{k}="{v}"' for k, v in sorted(metric.items()) if k not in ("__name__", "system")]
    return "{" + ", ".join(shown) + "}" if shown else "(all)"


def silence_body(
    matchers: Sequence[tuple[str, str]], hours: float, author: str, comment: str, now: float
) -> dict:
    """The Alertmanager v2 silence for equality matchers, from now for `hours`."""

    def iso(seconds: float) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))

    return {
        "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers],
        "startsAt": iso(now),
        "endsAt": iso(now + hours * 3600),
        "createdBy": author,
        "comment": comment,
    }
