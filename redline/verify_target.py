"""`redline verify-target URL --system NAME`: check a live service against the catalogue's metric contract.

Scrapes URL once and compares what it exposes with the `metrics:` of thresholds/NAME.yml that the service
itself publishes (`origin: target`; metrics of other exporters and of OTLP senders are not its job):
missing metrics, wrong types, missing labels, and histograms whose bucket bounds do not contain every
threshold an alert compares with (a threshold between two bounds cannot be decided exactly). A labelled
metric that is declared but has no series yet (prom-client creates them at the first inc()) is reported as
a note, not an error: the rules cope with it. Exit status: 0 the target meets the contract, 1 it does not,
2 bad input (unknown system, unreachable URL, not a Prometheus exposition).
"""

from __future__ import annotations

import argparse
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from prometheus_client.metrics_core import Metric as PromMetric
from prometheus_client.parser import text_string_to_metric_families

from redline.generate.load import CatalogueError, load_catalogue
from redline.generate.model import Catalogue, MetricSpec, format_number, reads_metric

EXIT_OK, EXIT_MISMATCH, EXIT_INPUT = 0, 1, 2
LE_RE = re.compile(r'le\s*=\s*"([0-9.eE+-]+)"')
TIMEOUT_SECONDS = 10.0


class TargetError(Exception):
    """The target cannot be checked at all (unreachable, not an exposition); one line for the user."""


@dataclass
class Report:
    """What the check found: problems fail the check, notes do not."""

    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def scrape(url: str, timeout: float = TIMEOUT_SECONDS) -> dict[str, PromMetric]:
    """The metric families of one scrape, by the name the contract uses (counters with `_total`)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            text = resp.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise TargetError(f"cannot scrape {url}: {getattr(err, 'reason', err)}") from None
    try:
        families = list(text_string_to_metric_families(text))
    except (ValueError, IndexError) as err:
        raise TargetError(f"{url} is not a Prometheus text exposition: {err}") from None
    # the parser drops a counter's _total from the family name; the contract keeps it
    return {(f.name + "_total" if f.type == "counter" else f.name): f for f in families}


def required_bounds(catalogue: Catalogue, metric: MetricSpec) -> set[float]:
    """Bucket bounds the catalogue's alerts compare this histogram with: thresholds in seconds, SLO `le`,
    and `le="..."` selectors in the queries that read it."""
    bounds: set[float] = set()
    for threshold in catalogue.thresholds():
        if not reads_metric(threshold.signal, metric):
            continue
        if threshold.unit == "seconds" and threshold.metric == metric.name:
            bounds |= {threshold.value, threshold.target}
        bounds |= {float(v) for v in LE_RE.findall(threshold.signal)}
    for slo in catalogue.slos():
        if reads_metric(slo.error_ratio, metric):
            bounds |= {float(v) for v in LE_RE.findall(slo.error_ratio)}
            if slo.le is not None:
                bounds.add(slo.le)
    return bounds


def check(catalogue: Catalogue, system_id: str, families: dict[str, PromMetric]) -> Report:
    """Compare one scrape with the system's contract."""
    report = Report()
    for metric in catalogue.system(system_id).metrics:
        if metric.origin != "target":
            continue
        report.checked.append(metric.name)
        family = families.get(metric.name)
        if family is None:
            report.problems.append(f"missing: {metric.name} ({metric.type}) is not exposed")
            continue
        if family.type != metric.type:
            report.problems.append(
                f"wrong type: {metric.name} is {family.type}, the contract says {metric.type}"
            )
            continue
        if not family.samples:
            if metric.labels:
                report.notes.append(
                    f"no series yet: {metric.name} is declared but has no samples, so its labels "
                    f"({', '.join(metric.labels)}) cannot be checked (the rules count it as 0)"
                )
            else:
                report.problems.append(f"no value: {metric.name} is declared but has no sample")
            continue
        names = {label for sample in family.samples for label in sample.labels}
        missing = [label for label in metric.labels if label not in names]
        if missing:
            report.problems.append(f"missing labels: {metric.name} has no label {', '.join(missing)}")
        if metric.type == "histogram":
            _check_buckets(catalogue, metric, family, report)
    return report


def _check_buckets(catalogue: Catalogue, metric: MetricSpec, family: PromMetric, report: Report) -> None:
    present = {
        float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket") and "le" in s.labels
    }
    absent = sorted(required_bounds(catalogue, metric) - present)
    if absent:
        bounds = ", ".join(format_number(b) for b in absent)
        have = ", ".join(format_number(b) for b in sorted(present) if b != float("inf"))
        report.problems.append(
            f"buckets: {metric.name} has no bucket bound at {bounds}, which the alerts compare with "
            f"(it has {have}; the catalogue's are {', '.join(format_number(b) for b in metric.buckets)})"
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redline verify-target",
        description="Scrape a live service and check it against the catalogue's metric contract for its "
        "system: missing metrics, wrong types, missing labels, histogram buckets that do not contain the "
        "thresholds. Exit status 0 when it meets the contract, 1 when not, 2 for bad input.",
    )
    parser.add_argument("url", help="the service's metrics URL, e.g. http://127.0.0.1:9202/metrics")
    parser.add_argument("--system", required=True, help="the monitored system (thresholds/<system>.yml)")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_SECONDS, help="scrape timeout in seconds")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        catalogue = load_catalogue()
        known = [s.id for s in catalogue.systems]
        if args.system not in known:
            print(
                f"redline verify-target: unknown system {args.system!r}; one of {', '.join(known)}",
                file=sys.stderr,
            )
            return EXIT_INPUT
        report = check(catalogue, args.system, scrape(args.url, args.timeout))
    except (CatalogueError, TargetError) as err:
        print(f"redline verify-target: {err}", file=sys.stderr)
        return EXIT_INPUT
    for line in report.problems:
        print(f"FAIL {line}")
    for line in report.notes:
        print(f"note {line}")
    verdict = "meets" if not report.problems else "does not meet"
    print(
        f"{args.url} {verdict} the {args.system} contract: {len(report.checked)} metrics checked, "
        f"{len(report.problems)} problems, {len(report.notes)} notes"
    )
    return EXIT_MISMATCH if report.problems else EXIT_OK
