"""Renderer: the metric contracts of the catalogue as a page for people and a module for the exporters.

- `docs/metric-contract.md`: per system, every metric its rules read (type, labels, buckets, meaning)
  and the alerts that read it.
- `redline/telemetry/contract.py`: the histogram bucket bounds, so that the instrumentation and the job
  exporter use the catalogue's buckets (every threshold a bucket bound) without reading thresholds/
  at run time, and the alert values the demo's faults must pass.
"""

from __future__ import annotations

from redline.generate.model import Catalogue, MetricSpec, System, format_number, reads_metric
from redline.generate.render.common import RenderError, header, markdown_header

DOC_PATH = "docs/metric-contract.md"
MODULE_PATH = "redline/telemetry/contract.py"
LINE_LENGTH = 110  # ruff's line-length for this repository (pyproject.toml)

DOC_INTRO = """\
# Metric contract

What each monitored system exposes and its rules read: the `metrics:` section of each
`thresholds/<system>.yml`, rendered. Every scrape target also carries the target label `system`
({systems}) and, where relevant, `env` (`production`|`staging`), set by the Prometheus target
files (`prometheus/targets/`, file_sd), not by the application. Exporters and the demo publish exactly
these names; histogram buckets come from here (`redline/telemetry/contract.py`), so every threshold an alert
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


def _tuple_lines(key: str, numbers: tuple[float, ...]) -> list[str]:
    """`    "key": (1, 2),` as ruff formats it: on one line if it fits, else one number per line."""
    line = f'    "{key}": ({", ".join(format_number(n) for n in numbers)}),'
    if len(line) <= LINE_LENGTH:
        return [line]
    return [f'    "{key}": (', *[f"        {format_number(n)}," for n in numbers], "    ),"]


def render_contract_module(catalogue: Catalogue) -> str:
    lines = [
        header("#", ["thresholds/*.yml"]).rstrip(),
        '"""The catalogue\'s numbers that code needs at run time: histogram buckets and alert values."""',
        "",
        "# Bucket bounds of every histogram of the metric contracts (`metrics:`), by metric name.",
        "HISTOGRAM_BUCKETS: dict[str, tuple[float, ...]] = {",
    ]
    for name, buckets in histogram_buckets(catalogue).items():
        lines += _tuple_lines(name, buckets)
    lines += [
        "}",
        "",
        "# Alert values of every threshold level, by alert name and severity (the demo's faults pass them).",
        "ALERT_VALUES: dict[str, dict[str, float]] = {",
    ]
    values: dict[str, dict[str, float]] = {}
    for threshold in catalogue.thresholds():
        values.setdefault(threshold.alert_name, {})[threshold.severity] = threshold.value
    for alert, levels in sorted(values.items()):
        line = f'    "{alert}": {{{", ".join(f"{k!r}: {format_number(v)}" for k, v in levels.items())}}},'
        lines.append(line.replace("'", '"'))
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_contract(catalogue: Catalogue) -> dict[str, str]:
    """Renderer: the contract page and the buckets module."""
    return {DOC_PATH: render_contract_doc(catalogue), MODULE_PATH: render_contract_module(catalogue)}
