"""Renderer: the metric contracts of the catalogue as a page for people and data for the runtime.

- `docs/metric-contract.md`: per system, every metric its rules read (type, labels, buckets, meaning)
  and the alerts that read it.
- `redline/telemetry/contract.json` (read by redline/telemetry/contract.py): the histogram bucket bounds,
  so that the instrumentation and the job exporter use the catalogue's buckets (every threshold a bucket
  bound) without reading thresholds/ at run time, and the alert values the demo's faults must pass.
"""

from __future__ import annotations

import json

from redline.generate.model import Catalogue, MetricSpec, System, format_number, reads_metric
from redline.generate.render.common import RenderError, header, markdown_header

DOC_PATH = "docs/metric-contract.md"
DATA_PATH = "redline/telemetry/contract.json"

DOC_INTRO = """\
# Metric contract

What each monitored system exposes and its rules read: the `metrics:` section of each
`thresholds/<system>.yml`, rendered. Every scrape target also carries the target label `system`
({systems}) and, where relevant, `env` (`production`|`staging`), set by the Prometheus target
files (`prometheus/targets/`, file_sd), not by the application. Exporters and the demo publish exactly
these names; histogram buckets come from here (`redline/telemetry/contract.json`), so every threshold an alert
compares with is a bucket bound.
"""


def _readers(system: System, metric: MetricSpec) -> list[str]:
    """The system's alerts whose signal or error ratio reads the metric (histograms: any of its series)."""
    queries = [(t.alert_name, t.signal) for t in system.thresholds]
    queries += [(s.alert_name, s.error_ratio) for s in system.slos]
    return list(dict.fromkeys(alert for alert, query in queries if reads_metric(query, metric)))


def _type_cell(metric: MetricSpec) -> str:
    if metric.buckets:
        return f"histogram, buckets {' '.join(format_number(b) for b in metric.buckets)}"
    return metric.type


def _system_section(system: System) -> list[str]:
    lines = [
        f'## {system.name} (`system="{system.id}"`)',
        "",
        f"From `thresholds/{system.file}`.",
        "",
        "| metric | type | labels | meaning | read by |",
        "|---|---|---|---|---|",
    ]
    for metric in system.metrics:
        labels = ", ".join(metric.labels)
        readers = ", ".join(f"`{a}`" for a in _readers(system, metric)) or "dashboards"
        lines.append(f"| `{metric.name}` | {_type_cell(metric)} | {labels} | {metric.help} | {readers} |")
    return [*lines, ""]


def render_contract_doc(catalogue: Catalogue) -> str:
    systems = ", ".join(f"`{s.id}`" for s in catalogue.systems)
    lines = [
        markdown_header(["thresholds/*.yml"]),
        "",
        DOC_INTRO.format(systems=systems),
    ]
    for system in catalogue.systems:
        lines += _system_section(system)
    return "\n".join(lines).rstrip() + "\n"


def histogram_buckets(catalogue: Catalogue) -> dict[str, tuple[float, ...]]:
    """Bucket bounds per histogram name across every contract; one set of bounds per name."""
    found: dict[str, tuple[float, ...]] = {}
    for system in catalogue.systems:
        for metric in system.metrics:
            if not metric.buckets:
                continue
            if metric.name in found and found[metric.name] != metric.buckets:
                raise RenderError(f"histogram {metric.name} has different buckets in two contracts")
            found[metric.name] = metric.buckets
    return dict(sorted(found.items()))


def _number(value: float) -> float | int:
    """An int where the number is whole, so the JSON reads as the catalogue does (1, not 1.0)."""
    return int(value) if value == int(value) else value


def render_contract_data(catalogue: Catalogue) -> str:
    """redline/telemetry/contract.json: histogram buckets by metric, alert values by alert and severity."""
    values: dict[str, dict[str, float | int]] = {}
    for threshold in catalogue.thresholds():
        values.setdefault(threshold.alert_name, {})[threshold.severity] = _number(threshold.value)
    data = {
        "//": header("", ["thresholds/*.yml"]).replace("\n", " ").strip(),
        "histogram_buckets": {
            name: [_number(b) for b in buckets] for name, buckets in histogram_buckets(catalogue).items()
        },
        "alert_values": dict(sorted(values.items())),
    }
    return json.dumps(data, indent=1) + "\n"


def render_contract(catalogue: Catalogue) -> dict[str, str]:
    """Renderer: the contract page and the numbers the runtime reads."""
    return {DOC_PATH: render_contract_doc(catalogue), DATA_PATH: render_contract_data(catalogue)}
