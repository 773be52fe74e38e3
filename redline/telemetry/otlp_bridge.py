"""Publish a prometheus_client registry over OTLP: one definition of each metric, served both ways.

The registry is the source of truth. Every interval the bridge collects it (the same snapshot a scrape
would see), converts the snapshot to OTLP with the OpenTelemetry SDK's data model and hands it to
opentelemetry-exporter-otlp (http/protobuf or gRPC). Nothing is re-recorded through SDK instruments.

Mapping (chosen so that Prometheus's and vmagent's OTLP ingestion give back the scrape's series):
- counter   -> cumulative monotonic Sum named like the scraped sample, i.e. WITH `_total`
               (OTLP-to-Prometheus translation keeps a single `_total`)
- gauge, info, stateset, unknown -> Gauge per sample name
- histogram -> cumulative Histogram: cumulative `le` buckets become per-bucket counts
- summary   -> Gauges (`name{quantile}`, `name_sum`, `name_count`); OTLP summaries are legacy
Units are not sent: the translation would append them to names that already carry them.

Cumulative temporality with a fixed start time (the counter's `_created` sample, else the bridge's start)
means a backend that was down gets the full totals from the next successful export; only the latest
snapshot is ever held, so memory stays bounded. Failures are logged at most once a minute with a count.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric as PromMetric

from redline.argtypes import positive_float

log = logging.getLogger(__name__)

PROTOCOLS = ("http/protobuf", "grpc")
FAILURE_LOG_INTERVAL_SECONDS = 60.0
_SCOPE = InstrumentationScope("redline.otlp_bridge", "0.1.0")
# The OTLP client libraries log every failed attempt; while the bridge exports, their records are captured
# here and folded into the bridge's own rate-limited message instead.
_LIBRARY_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
)
_exporting = threading.local()


class _CaptureWhileExporting(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(_exporting, "active", False):
            _exporting.last_message = record.getMessage()
            return False
        return True


_capture = _CaptureWhileExporting()
for _name in _LIBRARY_LOGGERS:
    logging.getLogger(_name).addFilter(_capture)


def registry_to_metrics_data(
    registry: CollectorRegistry, resource: Resource, start_time_ns: int, time_ns: int | None = None
) -> MetricsData:
    """Convert one collection of `registry` into OTLP MetricsData (mapping: see the module docstring)."""
    now = time_ns if time_ns is not None else time.time_ns()
    metrics: list[Metric] = []
    for family in registry.collect():
        metrics.extend(_convert_family(family, start_time_ns, now))
    scope = ScopeMetrics(scope=_SCOPE, metrics=metrics, schema_url="")
    return MetricsData(
        resource_metrics=[ResourceMetrics(resource=resource, scope_metrics=[scope], schema_url="")]
    )


def _convert_family(family: PromMetric, start_ns: int, now: int) -> list[Metric]:
    if family.type == "counter":
        return _convert_counter(family, start_ns, now)
    if family.type == "histogram":
        return _convert_histogram(family, start_ns, now)
    # gauge, info, stateset, summary, gaugehistogram, unknown: one Gauge per sample name
    by_name: dict[str, list[NumberDataPoint]] = {}
    for sample in family.samples:
        if sample.name.endswith("_created"):
            continue
        point = NumberDataPoint(
            attributes=sample.labels,
            start_time_unix_nano=0,
            time_unix_nano=now,
            value=float(sample.value),
        )
        by_name.setdefault(sample.name, []).append(point)
    return [
        Metric(name=name, description=family.documentation, unit="", data=Gauge(data_points=points))
        for name, points in by_name.items()
    ]


def _created_ns(family: PromMetric) -> dict[frozenset[tuple[str, str]], int]:
    return {
        _label_key(s.labels): int(s.value * 1e9) for s in family.samples if s.name == family.name + "_created"
    }


def _label_key(labels: dict[str, str], drop: str | None = None) -> frozenset[tuple[str, str]]:
    if drop is None:
        return frozenset(labels.items())
    return frozenset((k, v) for k, v in labels.items() if k != drop)


def _convert_counter(family: PromMetric, start_ns: int, now: int) -> list[Metric]:
    created = _created_ns(family)
    points = [
        NumberDataPoint(
            attributes=s.labels,  # each collection makes fresh label dicts; no copy needed
            start_time_unix_nano=created.get(_label_key(s.labels), start_ns) if created else start_ns,
            time_unix_nano=now,
            value=float(s.value),
        )
        for s in family.samples
        if s.name == family.name + "_total"
    ]
    if not points:
        return []
    data = Sum(
        data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE, is_monotonic=True
    )
    return [Metric(name=family.name + "_total", description=family.documentation, unit="", data=data)]


def _convert_histogram(family: PromMetric, start_ns: int, now: int) -> list[Metric]:
    created = _created_ns(family)
    buckets: dict[frozenset[tuple[str, str]], list[tuple[float, float]]] = {}
    sums: dict[frozenset[tuple[str, str]], float] = {}
    counts: dict[frozenset[tuple[str, str]], float] = {}
    for s in family.samples:
        if s.name == family.name + "_bucket":
            buckets.setdefault(_label_key(s.labels, drop="le"), []).append((float(s.labels["le"]), s.value))
        elif s.name == family.name + "_sum":
            sums[_label_key(s.labels)] = s.value
        elif s.name == family.name + "_count":
            counts[_label_key(s.labels)] = s.value
    points = []
    for key, cumulative in buckets.items():
        cumulative.sort()
        per_bucket, previous = [], 0.0
        for _bound, value in cumulative:
            per_bucket.append(round(value - previous))
            previous = value
        bounds = [bound for bound, _ in cumulative if bound != float("inf")]
        if len(bounds) == len(cumulative):  # no +Inf bucket: everything above the last bound is unknown
            per_bucket.append(0)
        points.append(
            HistogramDataPoint(
                attributes=dict(key),
                start_time_unix_nano=created.get(key, start_ns),
                time_unix_nano=now,
                count=round(counts.get(key, previous)),
                sum=sums.get(key, 0.0),
                bucket_counts=per_bucket,
                explicit_bounds=bounds,
                # Prometheus histograms do not track min/max; None leaves the optional fields unset.
                min=None,  # type: ignore[arg-type]
                max=None,  # type: ignore[arg-type]
            )
        )
    if not points:
        return []
    data = Histogram(data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE)
    return [Metric(name=family.name, description=family.documentation, unit="", data=data)]


def stable_instance_id(service_name: str, listen: str | None = None) -> str:
    """service.instance.id that survives restarts: host name, service and listen address."""
    parts = [socket.gethostname(), service_name]
    if listen:
        parts.append(listen)
    return "/".join(parts)


def build_resource(
    service_name: str, instance_id: str, resource_attributes: dict[str, str] | None = None
) -> Resource:
    """Resource with our defaults, overridden by OTEL_RESOURCE_ATTRIBUTES/OTEL_SERVICE_NAME, then by code."""
    attributes: dict[str, Any] = {
        "service.name": service_name,
        "service.instance.id": instance_id,
        "host.name": socket.gethostname(),
    }
    attributes.update(OTELResourceDetector().detect().attributes)
    attributes.update(resource_attributes or {})
    # Not Resource.create(): its telemetry.sdk.* attributes would become three constant labels on every
    # series in backends that turn resource attributes into labels (vmagent does).
    return Resource(attributes)


def resolve_protocol(protocol: str | None) -> str:
    """The protocol from the argument, else OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL, else http/protobuf."""
    chosen = (
        protocol
        or os.environ.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if chosen not in PROTOCOLS:
        raise ValueError(f"unsupported OTLP protocol {chosen!r}; use one of: {', '.join(PROTOCOLS)}")
    return chosen


def _timeout_from_env() -> bool:
    return any(
        os.environ.get(v) for v in ("OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT")
    )


def make_exporter(endpoint: str | None, protocol: str, timeout_seconds: float) -> MetricExporter:
    """An OTLPMetricExporter for `protocol`; endpoint None lets it read OTEL_EXPORTER_OTLP_* itself.

    http/protobuf: a full URL; a bare base URL (no path) gets /v1/metrics appended.
    grpc: http://host:4317 (plaintext) or https://host:4317 (TLS).
    """
    timeout = None if _timeout_from_env() else timeout_seconds
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint, timeout=timeout)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

    if endpoint:
        parsed = urllib.parse.urlsplit(endpoint)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"invalid OTLP endpoint {endpoint!r}: expected http(s)://HOST:PORT[/PATH]")
        if parsed.path in ("", "/"):
            endpoint = endpoint.rstrip("/") + "/v1/metrics"
    return HttpExporter(endpoint=endpoint, timeout=timeout)


class OtlpBridge:
    """Periodically export a registry's snapshot over OTLP (see the module docstring)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        service_name: str,
        interval_seconds: float = 15.0,
        endpoint: str | None = None,
        protocol: str | None = None,
        instance_id: str | None = None,
        resource_attributes: dict[str, str] | None = None,
        listen: str | None = None,
        exporter: MetricExporter | None = None,
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError(f"OTLP interval must be positive, got {interval_seconds}")
        self.registry = registry
        self.interval_seconds = interval_seconds
        self.protocol = resolve_protocol(protocol)
        self.endpoint = (
            endpoint
            or os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "(default)")
        )
        self.resource = build_resource(
            service_name, instance_id or stable_instance_id(service_name, listen), resource_attributes
        )
        # One start time for the life of the process: cumulative points stay one continuous series.
        self.start_time_ns = time.time_ns()
        self._exporter = exporter or make_exporter(
            endpoint, self.protocol, timeout_seconds=min(10.0, max(1.0, interval_seconds))
        )
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0
        self._failing_since = 0.0
        self._last_failure_log = float("-inf")
        self.exports_ok = 0
        self.exports_failed = 0

    def snapshot(self) -> MetricsData:
        """The registry's current state as OTLP MetricsData."""
        return registry_to_metrics_data(self.registry, self.resource, self.start_time_ns)

    def export_once(self) -> bool:
        """Export one snapshot; False when the backend refused it or was unreachable."""
        with self._lock:
            _exporting.active, _exporting.last_message = True, None
            try:
                result = self._exporter.export(self.snapshot(), timeout_millis=self.interval_seconds * 1000)
                ok, reason = result == MetricExportResult.SUCCESS, _exporting.last_message
            except Exception as err:  # a broken collector or exporter must not kill the loop
                ok, reason = False, f"{type(err).__name__}: {err}"
            finally:
                _exporting.active = False
            self._record(ok, reason)
            return ok

    def _record(self, ok: bool, reason: str | None) -> None:
        now = time.monotonic()
        if ok:
            self.exports_ok += 1
            if self._failures:
                log.warning(
                    "OTLP export to %s works again after %d failed attempts over %.0fs; totals are current",
                    self.endpoint,
                    self._failures,
                    now - self._failing_since,
                )
            self._failures = 0
            return
        self.exports_failed += 1
        if not self._failures:
            self._failing_since = now
        self._failures += 1
        if now - self._last_failure_log >= FAILURE_LOG_INTERVAL_SECONDS:
            self._last_failure_log = now
            log.warning(
                "OTLP export to %s (%s) failed %d time(s) over %.0fs, /metrics still served; last error: %s",
                self.endpoint,
                self.protocol,
                self._failures,
                now - self._failing_since,
                reason or "unknown",
            )

    def start(self) -> None:
        """Export now and then every interval in a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="otlp-bridge", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.export_once()
            if self._stop.wait(self.interval_seconds):
                return

    def stop(self) -> None:
        """Stop the loop, export one last snapshot and shut the exporter down."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_seconds + 15)
            self._thread = None
        self.export_once()
        try:
            self._exporter.shutdown()
        except Exception:
            log.debug("OTLP exporter shutdown failed", exc_info=True)


def otlp_enabled(endpoint: str | None) -> bool:
    """True when an endpoint is given or OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT is set."""
    return bool(
        endpoint
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT")
    )


def bridge_from_args(
    registry: CollectorRegistry,
    service_name: str,
    endpoint: str | None,
    protocol: str | None,
    interval: float,
    *,
    listen: str | None = None,
) -> OtlpBridge | None:
    """An (unstarted) OtlpBridge when OTLP is configured by argument or environment, else None."""
    if not otlp_enabled(endpoint):
        return None
    return OtlpBridge(
        registry,
        service_name=service_name,
        interval_seconds=interval,
        endpoint=endpoint,
        protocol=protocol,
        listen=listen,
    )


def add_otlp_arguments(parser: argparse.ArgumentParser) -> None:
    """--otlp-endpoint, --otlp-protocol, --otlp-interval (standard OTEL_EXPORTER_OTLP_* apply too)."""
    group = parser.add_argument_group("OTLP push (also enabled by OTEL_EXPORTER_OTLP_ENDPOINT)")
    group.add_argument(
        "--otlp-endpoint",
        help="OTLP receiver: http(s)://HOST:PORT[/PATH] for http/protobuf (bare base URL: + /v1/metrics), "
        "http://HOST:4317 for grpc. Default: off unless OTEL_EXPORTER_OTLP_[METRICS_]ENDPOINT is set",
    )
    group.add_argument(
        "--otlp-protocol",
        choices=PROTOCOLS,
        help="default: OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL or http/protobuf",
    )
    group.add_argument(
        "--otlp-interval",
        type=positive_float,
        default=15.0,
        metavar="SECONDS",
        help="seconds between exports (default: 15)",
    )


def metric_names(data: MetricsData) -> Sequence[str]:
    """Names of the metrics in `data` (handy in tests and the benchmark)."""
    return [m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]


def count_points(data: MetricsData) -> int:
    """Number of data points (series) in `data`."""
    return sum(
        len(list(_points(m))) for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    )


def _points(metric: Metric) -> Iterable[Any]:
    return metric.data.data_points
