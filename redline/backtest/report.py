"""The backtest's outputs: a JSON document (the stable one, docs/backtest.md lists its fields), a table
for the terminal and a self-contained HTML file, both rendered from that document plus the plots."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jinja2
from markupsafe import Markup

from redline.backtest import datasource
from redline.backtest.analysis import (
    WEEK,
    AlertResult,
    CatalogueResult,
    Difference,
    Held,
    measured_objective,
    per,
    receiver_totals,
)
from redline.backtest.plot import Line, svg
from redline.backtest.timeline import Grid
from redline.generate.humanize import format_value, humanize_percentage
from redline.generate.model import Slo, Threshold, format_duration
from redline.receivers.ledger import RECEIVER_KINDS

VERSION = 1


def iso(t: float | None) -> str | None:
    return None if t is None else datasource.iso(t)


@dataclass(frozen=True)
class Run:
    """What the report says about the run itself."""

    datasource: str
    alertmanager_config: str
    max_per_month: float
    seconds: dict[str, float]
    peak_rss: dict[str, int]
    samples: int


def _held(item: Held | None) -> dict[str, Any] | None:
    if item is None:
        return None
    return {"phrase": item.phrase, "held": item.held, "beyond_seconds": item.beyond_seconds}


def alert_document(result: AlertResult, grid: Grid) -> dict[str, Any]:
    alert = result.evaluated.alert
    source = alert.source
    pages = result.opened if result.receiver == "pager" else 0
    tickets = result.opened if result.receiver == "ticket" else 0
    document: dict[str, Any] = {
        "alert": alert.alert_name,
        "severity": alert.severity,
        "system": alert.system,
        "entry": alert.entry_id,
        "kind": alert.kind,
        "receiver": result.receiver,
        "for": alert.for_,
        "expr": result.evaluated.rule.expr,
        "status": "no data" if result.no_data else "ok",
        "episodes": len(result.episodes),
        "firing_seconds": result.firing_seconds,
        "firing_share": result.firing_seconds / grid.seconds,
        "pages": pages,
        "tickets": tickets,
        "notifications": result.notifications,
        "pages_per_week": per(pages, grid, WEEK),
        "tickets_per_week": per(tickets, grid, WEEK),
        "compliance": {"target": _held(result.target), "value": _held(result.value)},
        "model_agrees": result.model_agrees,
        "suggestion": {
            "status": result.suggestion.status,
            "value": result.suggestion.value,
            "for": result.suggestion.for_,
            "per_month": result.suggestion.per_month,
            "note": result.suggestion.note,
        },
        "quote": source.quote,
        "source": source.source,
        "timeline": [
            {
                "labels": dict(e.labels),
                "active_at": iso(e.active_at),
                "start": iso(e.start),
                "end": iso(e.end),
            }
            for e in sorted(result.episodes, key=lambda e: (e.start, e.labels))
        ],
    }
    if isinstance(source, Threshold):
        document |= {"operator": source.operator, "value": source.value, "target": source.target}
        document["unit"] = source.unit
    else:
        document |= {"operator": ">", "value": alert.value, "target": source.error_budget, "unit": "ratio"}
        document["objective"] = source.objective
        document["measured_objective"] = measured_objective(result.signal)
    return document


def document(
    result: CatalogueResult,
    grid: Grid,
    run: Run,
    differences: list[Difference] | None = None,
    other: CatalogueResult | None = None,
) -> dict[str, Any]:
    """The JSON report."""
    receivers = {
        name: {**totals, "opened_per_week": per(totals["opened"], grid, WEEK)}
        for name, totals in sorted(receiver_totals(result.notifications).items())
    }
    out: dict[str, Any] = {
        "version": VERSION,
        "datasource": run.datasource,
        "catalogue": result.label,
        "alertmanager_config": run.alertmanager_config,
        "range": {
            "from": iso(grid.start),
            "to": iso(grid.end),
            "step": format_duration(grid.step),
            "evaluations": grid.points,
            "days": grid.seconds / 86400,
        },
        "max_per_month": run.max_per_month,
        "receivers": receivers,
        "alerts": [alert_document(r, grid) for r in result.alerts],
        "skipped": [
            {"alert": name, "reason": "fires whatever the input (dead-man's switch)"}
            for name in result.skipped
        ],
        "notifications": [
            {
                "time": iso(n.time),
                "receiver": n.receiver,
                "group": dict(n.group_labels),
                "opens": n.opens,
                "reason": n.reason,
                "firing": [dict(x) for x in n.firing],
                "resolved": [dict(x) for x in n.resolved],
            }
            for n in result.notifications
        ],
        "run": {
            "seconds": {k: round(v, 3) for k, v in run.seconds.items()},
            "peak_rss_bytes": run.peak_rss,
            "samples": run.samples,
        },
    }
    if differences is not None and other is not None:
        out["compare"] = {
            "catalogue": other.label,
            "alerts": [d.__dict__ for d in differences],
            "gained": sum(d.gained for d in differences),
            "lost": sum(d.lost for d in differences),
        }
    return out


def dumps(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False, allow_nan=False, default=str) + "\n"


# ----- the terminal ---------------------------------------------------------------------------------


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.2f}%".replace(".00%", "%")


def _rate(value: float) -> str:
    return f"{value:.1f}" if value else "0"


def _suggestion_text(alert: dict[str, Any]) -> str:
    s = alert["suggestion"]
    if s["status"] == "keep":
        return "keep"
    if s["status"] == "change":
        return f"{alert['operator']} {_number(alert, s['value'])} for {s['for']} ({s['per_month']:.1f}/month)"
    return s["note"] or "-"


def _number(alert: dict[str, Any], value: float) -> str:
    return format_value(alert["unit"], value) if alert.get("unit") else f"{value:g}"


def table(report: dict[str, Any]) -> str:
    """The report as text: a header, one row per alert, the receivers, and the comparison if any."""
    r = report["range"]
    lines = [
        f"redline backtest: {report['catalogue']} over {r['from']} .. {r['to']} ({r['days']:.1f} days, "
        f"step {r['step']}, {r['evaluations']} evaluations) from {report['datasource']}",
        "",
    ]
    header = (
        "alert",
        "sev",
        "to",
        "episodes",
        "firing",
        "pages/wk",
        "tickets/wk",
        "target held",
        "alert held",
    )
    rows = [(*header, "suggestion (<= {:g}/month)".format(report["max_per_month"]))]
    for a in report["alerts"]:
        if a["status"] == "no data":
            rows.append((a["alert"], a["severity"][:4], a["receiver"], "no data", "", "", "", "", "", ""))
            continue
        target, value = a["compliance"]["target"], a["compliance"]["value"]
        rows.append(
            (
                a["alert"],
                a["severity"][:4],
                a["receiver"],
                str(a["episodes"]),
                _share(a["firing_share"]),
                _rate(a["pages_per_week"]),
                _rate(a["tickets_per_week"]),
                f"{target['phrase']}: {_share(target['held'])}" if target else "-",
                f"{_share(value['held'])}" if value else "-",
                _suggestion_text(a),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.append("")
    for name, totals in report["receivers"].items():
        kind = RECEIVER_KINDS.get(name, "opened")
        lines.append(
            f"receiver {name}: {totals['opened']} {kind} ({totals['opened_per_week']:.1f}/week), "
            f"{totals['notifications']} notifications in all"
        )
    if not report["receivers"]:
        lines.append("no notification would have been sent")
    for item in report["skipped"]:
        lines.append(f"not backtested: {item['alert']}: {item['reason']}")
    disagreeing = [a["alert"] for a in report["alerts"] if a["model_agrees"] is False]
    if disagreeing:
        lines.append(f"warning: the signal's state machine differs from vmalert for {', '.join(disagreeing)}")
    if "compare" in report:
        lines += ["", *compare_lines(report)]
    return "\n".join(lines) + "\n"


def compare_lines(report: dict[str, Any]) -> list[str]:
    c = report["compare"]
    lines = [f"compare: {report['catalogue']} -> {c['catalogue']}: {c['gained']} gained, {c['lost']} lost"]
    for d in c["alerts"]:
        if d["gained"] or d["lost"] or d["base"] != d["other"]:
            kind = RECEIVER_KINDS.get(d["receiver"], "notifications")
            lines.append(
                f"  {d['alert']} ({d['severity']}, {d['receiver']}): {kind} {d['base']} -> {d['other']} "
                f"(+{d['gained']} gained, -{d['lost']} lost)"
            )
    if len(lines) == 1:
        lines.append("  no alert pages or tickets differently")
    return lines


# ----- HTML -----------------------------------------------------------------------------------------


def plot_for(result: AlertResult, grid: Grid) -> str:
    alert = result.evaluated.alert
    source = alert.source
    end = grid.end + grid.step
    firing = [(e.start, end if e.end is None else e.end) for e in result.episodes]
    fmt: Callable[[float], str]
    if isinstance(source, Threshold):
        unit = source.unit
        lines = [
            Line(source.target, f"target {format_value(unit, source.target)}", "#2ca02c"),
            Line(source.value, f"alert {source.operator} {format_value(unit, source.value)}", "#d62728"),
        ]
        high = source.operator in (">", ">=")
        fmt = functools.partial(format_value, unit)
    else:
        assert isinstance(source, Slo)
        lines = [
            Line(source.error_budget, f"budget {humanize_percentage(source.error_budget)}", "#2ca02c"),
            Line(alert.value, f"alert > {humanize_percentage(alert.value)}", "#d62728"),
        ]
        high = True
        fmt = humanize_percentage
    title = f"{alert.alert_name} ({alert.severity}): signal, target, alert value, would-have-fired intervals"
    return svg(result.signal, lines, firing, grid, high, fmt, title)


def html(report: dict[str, Any], results: list[AlertResult], grid: Grid) -> str:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("redline.backtest", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["share"] = _share
    environment.filters["number"] = lambda value, alert: _number(alert, value)
    environment.filters["duration"] = lambda seconds: format_duration(int(seconds))
    environment.filters["rate"] = _rate
    environment.filters["suggestion"] = _suggestion_text
    # every text inside a plot is escaped where it is drawn
    plots = {f"{r.name}/{r.severity}": Markup(plot_for(r, grid)) for r in results if r.signal}
    template = environment.get_template("report.html.j2")
    return template.render(
        report=report, plots=plots, compare=compare_lines(report) if "compare" in report else []
    )
