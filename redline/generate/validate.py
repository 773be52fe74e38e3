"""Checks that span entries of the catalogue, and every PromQL expression parsed by promtool.

`validate` needs no binary: unique names and records, alert prefixes, every metric a query reads in a
contract (or the file's external_metrics), each entry's metric read by its query, thresholds on histogram
bucket bounds, range windows the generated tests can fill, panel ids that do not collide, signals and SLO
error ratios that keep the routing labels (system, env). `check_promql`
parses every expression with the pinned promtool in one call; each expression goes into its own rule
group named e<N>, so promtool's message ('group "e7", rule 1, ...') names exactly one catalogue field.
Both raise CatalogueError (file, entry, field) for the first problem.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import yaml

from redline import tools
from redline.generate.conventions import burn_rate_windows, panel_id
from redline.generate.load import CatalogueError
from redline.generate.model import (
    Catalogue,
    MetricSpec,
    Slo,
    System,
    Threshold,
    format_number,
    parse_duration,
    reads_metric,
    series_names,
)
from redline.generate.promql import PromqlNameError, calls, groupings, metric_names

GROUP_ERROR_RE = re.compile(r'group "e(\d+)", rule \d+, "[^"]*": (.*)')
RANGE_RE = re.compile(r"\[(\d+[smhdw])\]")
# Alertmanager groups notifications and inhibits alerts by these labels (alertmanager.yml's group_by and
# its inhibit rules' `equal`): a signal that aggregates one of them away puts a staging breach in the
# production page and lets one environment's *Down mute the other's alerts, and an SLO computed across
# environments spends production's budget on staging's errors.
ROUTING_LABELS = ("system", "env")


def validate(catalogue: Catalogue) -> None:
    """Raise CatalogueError for the first problem that spans entries or files."""
    _check_contracts(catalogue)
    readable = _readable_names(catalogue)
    alert_owner: dict[str, tuple[str, str]] = {}
    record_owner: dict[str, tuple[str, str]] = {}
    for system in catalogue.systems:
        _check_entry_ids(system)
        for item in system.entries():
            where = (system.file, item.id)
            owner = alert_owner.setdefault(item.alert_name, where)
            if owner != where:
                raise CatalogueError(
                    *where,
                    "alert",
                    f"duplicate alert name {item.alert_name!r} (also {owner[0]} {owner[1]!r})",
                )
            standard = isinstance(item, Threshold) and item.standard_name
            if not standard and not item.alert_name.startswith(system.alert_prefix):
                raise CatalogueError(
                    *where,
                    "alert",
                    f"must start with the system prefix {system.alert_prefix!r}, got {item.alert_name!r}",
                )
            _check_reads(system, item, readable | set(system.external_metrics))
            metric = _contract_metric(catalogue, system, item)
            if isinstance(item, Threshold):
                _check_threshold(catalogue, system, item, metric, record_owner)
            else:
                _check_slo(system, item, metric)


def _check_contracts(catalogue: Catalogue) -> None:
    """A metric is listed once per contract, and with one type across contracts; an external metric is
    in no contract."""
    first_seen: dict[str, MetricSpec] = {}
    contract = {name for metric in catalogue.metrics() for name in series_names(metric)}
    for system in catalogue.systems:
        external: set[str] = set()
        for name in system.external_metrics:
            if name in external:
                raise CatalogueError(system.file, "(file)", "external_metrics", f"{name!r} listed twice")
            external.add(name)
            if name in contract:
                raise CatalogueError(
                    system.file,
                    "(file)",
                    "external_metrics",
                    f"{name!r} is in a metrics contract; an external metric is one no contract lists",
                )
        names: set[str] = set()
        for metric in system.metrics:
            if metric.name in names:
                raise CatalogueError(system.file, metric.name, "name", "metric listed twice")
            names.add(metric.name)
            other = first_seen.setdefault(metric.name, metric)
            if other.type != metric.type:
                raise CatalogueError(
                    system.file,
                    metric.name,
                    "type",
                    f"{metric.type} here but {other.type} in thresholds/{other.system}.yml",
                )
            if other.buckets != metric.buckets:
                raise CatalogueError(
                    system.file, metric.name, "buckets", f"not the buckets of thresholds/{other.system}.yml"
                )


def _check_entry_ids(system: System) -> None:
    """An id names one entry (the levels of a threshold share it) and one dashboard panel."""
    kinds: dict[str, str] = {}
    panels: dict[int, str] = {}
    for item in system.entries():
        kind = f"{type(item).__name__} {item.alert_name}"
        if kinds.setdefault(item.id, kind) != kind:
            raise CatalogueError(system.file, item.id, "id", "used by two entries")
        pid = panel_id(system.id, item.id)
        if panels.setdefault(pid, item.id) != item.id:
            raise CatalogueError(
                system.file,
                item.id,
                "id",
                f"dashboard panel id {pid} collides with {panels[pid]!r}; rename one",
            )


def _contract_metric(catalogue: Catalogue, system: System, item: Threshold | Slo) -> MetricSpec:
    """The entry's contract metric, which its query must read (directly or through a catalogue record)."""
    try:
        metric = catalogue.metric(item.metric)
    except KeyError:
        raise CatalogueError(
            system.file, item.id, "metric", f"{item.metric!r} is not in any system's metrics contract"
        ) from None
    query = item.signal if isinstance(item, Threshold) else item.error_ratio
    recorded = {t.record: t.signal for t in catalogue.thresholds() if t.record}
    query += "".join(f"\n{signal}" for record, signal in recorded.items() if record in query)
    always = item.fixture is not None and item.fixture.kind == "always"  # Watchdog reads nothing
    if not always and not reads_metric(query, metric):
        raise CatalogueError(
            system.file, item.id, "metric", f"{item.metric!r} does not occur in the entry's query"
        )
    return metric


def _readable_names(catalogue: Catalogue) -> set[str]:
    """What any query may read: every contract's series and the catalogue's own recording rules."""
    names = {name for metric in catalogue.metrics() for name in series_names(metric)}
    return names | {t.record for t in catalogue.thresholds() if t.record}


def _check_reads(system: System, item: Threshold | Slo, readable: set[str]) -> None:
    """Every metric the entry's query reads is in a contract, a catalogue record or the file's
    external_metrics (a query reading anything else gives a rule that never fires, and a generated
    test that cannot pass)."""
    if isinstance(item, Threshold):
        field_name, query = "signal", item.signal
    else:
        field_name, query = "error_ratio", item.error_ratio_for("5m")
    try:
        names = metric_names(query)
    except PromqlNameError as err:
        raise CatalogueError(system.file, item.id, field_name, str(err)) from None
    for name in names:
        if name not in readable:
            raise CatalogueError(
                system.file,
                item.id,
                field_name,
                f"reads {name!r}, which is in no system's metrics contract; add it to a 'metrics:' list, "
                "or to the file's 'external_metrics:' when nothing of redline publishes it",
            )


def _check_threshold(
    catalogue: Catalogue,
    system: System,
    item: Threshold,
    metric: MetricSpec,
    record_owner: dict[str, tuple[str, str]],
) -> None:
    _check_keeps_routing_labels(system, item.id, "signal", item.signal)
    interval = catalogue.settings.test_interval
    for window in RANGE_RE.findall(item.signal):
        if parse_duration(window) < 2 * parse_duration(interval):
            raise CatalogueError(
                system.file,
                item.id,
                "signal",
                f"range [{window}] holds fewer than two samples at the generated tests' "
                f"interval ({interval}, settings.test_interval)",
            )
    if item.record:
        owner = record_owner.setdefault(item.record, (system.file, item.id))
        if owner != (system.file, item.id):
            raise CatalogueError(
                system.file, item.id, "record", f"{item.record!r} is also recorded by {owner[0]} {owner[1]!r}"
            )
    if metric.type == "histogram" and item.unit == "seconds":
        for field_name, number in (("value", item.value), ("target", item.target)):
            _check_bucket(system, item.id, field_name, number, metric)


def _check_keeps_routing_labels(system: System, entry_id: str, field_name: str, query: str) -> None:
    """Every aggregation of the query keeps ROUTING_LABELS, and no `vector(...)`, which has no labels,
    stands in for a series of a query that reads metrics (a query reading nothing, the Watchdog's
    vector(1), has nothing to route by)."""
    for grouping in groupings(query):
        lost = [label for label in ROUTING_LABELS if not grouping.keeps(label)]
        if lost:
            raise CatalogueError(
                system.file,
                entry_id,
                field_name,
                f"{grouping} aggregates away {', '.join(lost)}, which Alertmanager groups and inhibits "
                f"by (alertmanager.yml): keep {' and '.join(ROUTING_LABELS)} in every by (...)",
            )
    if "vector" in calls(query) and metric_names(query):
        raise CatalogueError(
            system.file,
            entry_id,
            field_name,
            f"vector(...) has no labels, so the series it stands in for has no {', '.join(ROUTING_LABELS)}: "
            f"write 'or 0 * sum by ({', '.join(ROUTING_LABELS)}) (...)' over a series that is there",
        )


def _check_slo(system: System, slo: Slo, metric: MetricSpec) -> None:
    _check_keeps_routing_labels(system, slo.id, "error_ratio", slo.error_ratio_for("5m"))
    if slo.le is None:
        return
    if metric.type != "histogram":
        raise CatalogueError(system.file, slo.id, "le", f"{metric.name} is not a histogram")
    _check_bucket(system, slo.id, "le", slo.le, metric)


def _check_bucket(system: System, entry: str, field_name: str, number: float, metric: MetricSpec) -> None:
    if number not in metric.buckets:
        bounds = ", ".join(format_number(b) for b in metric.buckets)
        raise CatalogueError(
            system.file,
            entry,
            field_name,
            f"{format_number(number)} is not a bucket bound of {metric.name} ({bounds})",
        )


# ----- PromQL -------------------------------------------------------------------------------------------


def catalogue_expressions(catalogue: Catalogue) -> list[tuple[str, str, str, str]]:
    """(file, entry, field, PromQL) for every expression the catalogue holds."""
    items = []
    windows = burn_rate_windows(catalogue)
    for system in catalogue.systems:
        signals = {t.id: t.signal for t in system.thresholds}  # levels share their signal
        items += [(system.file, entry, "signal", signal) for entry, signal in signals.items()]
        for slo in system.slos:
            for window in [*windows, slo.period]:
                items.append((system.file, slo.id, "error_ratio", slo.error_ratio_for(window)))
    return items


def check_promql(catalogue: Catalogue) -> None:
    """Raise CatalogueError for the first expression promtool cannot parse (needs the pinned promtool)."""
    promtool = tools.binary("promtool")
    if promtool is None:
        raise CatalogueError("(catalogue)", "(promtool)", "(tool)", "promtool not found; run 'make setup'")
    items = catalogue_expressions(catalogue)
    groups = [
        {"name": f"e{index}", "rules": [{"record": "catalogue:check:expr", "expr": expr}]}
        for index, (_file, _entry, _field, expr) in enumerate(items)
    ]
    with tempfile.TemporaryDirectory(prefix="redline-promql-") as tmp:
        path = Path(tmp) / "catalogue.yml"
        path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        result = subprocess.run(
            [promtool, "check", "rules", "--lint=none", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if result.returncode == 0:
        return
    output = result.stdout + result.stderr
    for line in output.splitlines():
        match = GROUP_ERROR_RE.search(line)
        if match:
            file, entry, field_name, _expr = items[int(match.group(1))]
            raise CatalogueError(file, entry, field_name, f"PromQL does not parse: {match.group(2)}")
    raise CatalogueError("(catalogue)", "(all)", "(promql)", f"promtool failed: {output.strip()[-500:]}")
