"""redline.telemetry.exposition.text_format() against prometheus_client's generate_latest(), byte for byte:
the host exporter's full output for the fixture tree, generated families with awkward names, help texts,
label values and floats, and later scrapes after values change and series disappear (the memo must never
serve a stale line)."""

from __future__ import annotations

import dataclasses
import math
import shutil
import urllib.request
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    StateSetMetricFamily,
    SummaryMetricFamily,
    UnknownMetricFamily,
)
from prometheus_client.metrics_core import METRIC_TYPES, Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Timestamp
from prometheus_client.utils import floatToGoString

from redline.exporters.host.collectors import build_registry
from redline.exporters.host.config import parse_config
from redline.telemetry.exposition import TextMemo, go_float, text_format
from redline.telemetry.web import serve

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "host"


class _Static(Collector):
    """A collector that yields the same families on every collect(), so both renderers see one scrape."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> list[Metric]:
        return self.families


def _assert_same(families: Iterable[Metric], memo: TextMemo) -> bytes:
    collector = _Static(families)
    expected = generate_latest(collector)
    assert text_format(collector, memo) == expected
    return expected


# -- (a) the host exporter's full output for the fixture tree ---------------------------------------------


def test_host_exporter_output_for_the_fixture_tree(tmp_path: Path) -> None:
    textfiles = tmp_path / "textfile"
    shutil.copytree(FIXTURES / "textfile" / "ok", textfiles)
    config = dataclasses.replace(
        parse_config(
            {
                "enable_collectors": ["processes"],
                "textfile": {"directory": str(textfiles)},
                "process_groups": [{"name": "init", "comm": ["init"]}],
            }
        ),
        procfs=str(FIXTURES / "proc"),
        sysfs=str(FIXTURES / "sys"),
        rootfs=str(FIXTURES),
    )
    registry = build_registry(config)
    memo = TextMemo()
    first = list(registry.collect())
    assert sum(len(f.samples) for f in first) > 300  # every collector reported
    output = _assert_same(first, memo)
    assert b'node_cpu_seconds_total{cpu="0",mode="idle"}' in output
    assert _assert_same(first, memo) == output  # from the memo
    # a second scrape: durations, times and the process's own CPU and memory changed
    second = list(registry.collect())
    assert generate_latest(_Static(second)) != output
    _assert_same(second, memo)
    assert len(memo) == sum(len(f.samples) for f in second)


# -- (b) generated families ------------------------------------------------------------------------------

_AWKWARD = st.sampled_from(["\\", '"', "\n", "{", "}", "=", ",", " ", "#", "é", "☃", "\t", "\r", "\x00"])
_TEXT = st.text(st.one_of(_AWKWARD, st.characters(exclude_categories=["Cs"])), max_size=12)
_LEGACY_NAME = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,12}", fullmatch=True)
_METRIC_NAME = st.one_of(_LEGACY_NAME, _TEXT.filter(bool))
_LABEL_NAME = st.one_of(
    st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True),
    st.sampled_from(["__reserved", "0digit", "with:colon", "with.dot", "é", "le", "quantile"]),
    _TEXT.filter(bool),
)
_FLOATS = st.one_of(
    st.floats(),
    st.floats(width=32),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(
        [
            0.0,
            -0.0,
            math.inf,
            -math.inf,
            math.nan,
            1e7,
            9999999.0,
            10000000.5,
            123456789.0,
            -123456789.0,
            1e-7,
            5e-324,
            1.7976931348623157e308,
            1e22,
            -1e22,
            True,
            3,
        ]
    ),
)
_TIMESTAMPS = st.one_of(
    st.none(),
    st.floats(min_value=0, max_value=4e9),
    st.builds(Timestamp, st.integers(0, 2**32), st.integers(0, 999_999_999)),
)
_SUFFIXES = ["", "_total", "_created", "_bucket", "_sum", "_count", "_gsum", "_gcount", "_info", "_other"]


@st.composite
def _raw_family(draw: st.DrawFn) -> Metric:
    """Any family type, with samples of any of the names prometheus_client's families produce."""
    family = Metric(draw(_METRIC_NAME), draw(_TEXT), draw(st.sampled_from(sorted(METRIC_TYPES))))
    for _ in range(draw(st.integers(0, 6))):
        family.add_sample(
            family.name + draw(st.sampled_from(_SUFFIXES)),
            draw(st.dictionaries(_LABEL_NAME, _TEXT, max_size=4)),
            draw(_FLOATS),
            draw(_TIMESTAMPS),
        )
    return family


@st.composite
def _built_family(draw: st.DrawFn) -> Metric:
    """Families as collectors build them with prometheus_client's *MetricFamily classes."""
    name, documentation = draw(_LEGACY_NAME), draw(_TEXT)
    labels = draw(st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True), max_size=3, unique=True))
    value_sets = draw(st.lists(st.tuples(*[_TEXT] * len(labels)), max_size=3))
    kind = draw(st.sampled_from(["counter", "gauge", "summary", "histogram", "gh", "info", "stateset", "u"]))
    if kind in ("histogram", "gh"):
        labels = [label for label in labels if label != "le"]
        value_sets = [values[: len(labels)] for values in value_sets]
    family: Metric
    if kind == "counter":
        family = CounterMetricFamily(name, documentation, labels=labels)
        for values in value_sets:
            family.add_metric(values, draw(_FLOATS), created=draw(st.none() | st.floats(0, 2e9)))
    elif kind == "gauge":
        family = GaugeMetricFamily(name, documentation, labels=labels)
        for values in value_sets:
            family.add_metric(values, draw(_FLOATS), timestamp=draw(_TIMESTAMPS))
    elif kind == "u":
        family = UnknownMetricFamily(name, documentation, labels=labels)
        for values in value_sets:
            family.add_metric(values, draw(_FLOATS))
    elif kind == "summary":
        family = SummaryMetricFamily(name, documentation, labels=labels)
        for values in value_sets:
            family.add_metric(values, draw(_FLOATS), draw(_FLOATS))  # type: ignore[arg-type]
    elif kind == "histogram":
        family = HistogramMetricFamily(name, documentation, labels=labels)
        for values in value_sets:
            bounds = sorted(draw(st.lists(st.floats(allow_nan=False), max_size=3, unique=True)))
            buckets = [(floatToGoString(b), float(i)) for i, b in enumerate(bounds)]
            family.add_metric(values, [*buckets, ("+Inf", float(len(bounds)))], draw(_FLOATS))
    elif kind == "gh":
        family = GaugeHistogramMetricFamily(name, documentation, labels=labels)
        for values in value_sets:
            family.add_metric(values, [("1.0", 1.0), ("+Inf", 2.0)], draw(_FLOATS))
    elif kind == "info":
        family = InfoMetricFamily(name, documentation, labels=labels)
        for values in value_sets:
            family.add_metric(values, draw(st.dictionaries(st.sampled_from(["v", "w"]), _TEXT)))
    else:
        family = StateSetMetricFamily(name, documentation, labels=labels)
        for values in value_sets:
            family.add_metric(values, draw(st.dictionaries(st.sampled_from(["a", "b"]), st.booleans())))
    return family


_FAMILIES = st.lists(st.one_of(_raw_family(), _built_family()), max_size=6)


@given(_FAMILIES)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_families_are_byte_identical(families: list[Metric]) -> None:
    memo = TextMemo()
    expected = _assert_same(families, memo)
    assert _assert_same(families, memo) == expected  # the second time from the memo


@given(_FAMILIES, st.data())
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_a_later_scrape_with_new_values_and_fewer_series(families: list[Metric], data: st.DataObject) -> None:
    memo = TextMemo()
    _assert_same(families, memo)
    later = []
    for family in families:
        copy = Metric(family.name, family.documentation, family.type)
        for sample in family.samples:
            if data.draw(st.booleans(), label="keep"):
                copy.samples.append(sample._replace(value=data.draw(_FLOATS, label="value")))
        later.append(copy)
    _assert_same(later, memo)
    assert len(memo) == len({(s.name, tuple(s.labels.items())) for f in later for s in f.samples})
    _assert_same(families, memo)  # and the series come back


@given(_FLOATS)
def test_floats_are_written_as_prometheus_client_writes_them(value: float) -> None:
    assert go_float(value) == floatToGoString(value)


# -- (c) later scrapes of a live registry ----------------------------------------------------------------


def _instrumented() -> tuple[CollectorRegistry, Gauge, Counter, Histogram]:
    registry = CollectorRegistry()
    counter = Counter("jobs", 'Jobs "done"\\ by queue.\nSecond line.', ["queue"], registry=registry)
    gauge = Gauge("depth", "Queue depth.", ["queue", "state"], registry=registry)
    histogram = Histogram("latency_seconds", "Latency.", ["route"], registry=registry, buckets=(0.1, 1, 1e8))
    Summary("sizes", "Sizes.", registry=registry).observe(3)
    Info("build", "Build.", registry=registry).info({"version": 'v1 "x"\n', "é": "☃"})
    Enum("phase", "Phase.", states=["a", "b"], registry=registry).state("b")
    counter.labels('a\\b"c\nd').inc(2)
    gauge.labels("q1", "ready").set(-0.0)
    gauge.labels("q2", "ready").set(12345678.9)
    histogram.labels("/").observe(0.5)
    return registry, gauge, counter, histogram


def test_later_scrapes_after_values_change_and_a_label_set_disappears() -> None:
    registry, gauge, counter, histogram = _instrumented()
    memo = TextMemo()
    first = text_format(registry, memo)
    assert first == generate_latest(registry)
    assert b'depth{queue="q1",state="ready"} -0.0\n' in first and b"1.23456789e+07" in first
    remembered = len(memo)

    gauge.labels("q1", "ready").set(math.nan)
    gauge.labels("q2", "ready").set(math.inf)
    counter.labels('a\\b"c\nd').inc(1e9)
    histogram.labels("/").observe(2e8)
    second = text_format(registry, memo)
    assert second == generate_latest(registry) and second != first
    assert b'depth{queue="q1",state="ready"} NaN\n' in second and b'q2",state="ready"} +Inf\n' in second

    gauge.remove("q2", "ready")
    third = text_format(registry, memo)
    assert third == generate_latest(registry) and b"q2" not in third
    assert len(memo) == remembered - 1  # the series that disappeared is forgotten

    gauge.labels("q2", "ready").set(1)
    assert text_format(registry, memo) == generate_latest(registry)


def test_changed_help_or_type_and_labels_in_another_order() -> None:
    memo = TextMemo()
    gauge = GaugeMetricFamily("x", "Old help.", labels=["a", "b"])
    gauge.add_metric(["1", "2"], 1)
    _assert_same([gauge], memo)
    renamed = GaugeMetricFamily("x", "New help.", labels=["b", "a"])  # labels dict in the other order
    renamed.add_metric(["2", "1"], 2)
    assert b"# HELP x New help.\n" in _assert_same([renamed], memo)
    counter = CounterMetricFamily("x", "New help.", labels=["a", "b"])
    counter.add_metric(["1", "2"], 3)
    assert b"# TYPE x_total counter\n" in _assert_same([counter], memo)


def test_a_partial_scrape_keeps_the_memo() -> None:
    registry, *_ = _instrumented()
    memo = TextMemo()
    text_format(registry, memo)
    remembered = len(memo)
    partial = registry.restricted_registry(["depth"])
    assert text_format(partial, memo, full=False) == generate_latest(partial)
    assert len(memo) == remembered
    assert text_format(partial, memo) == generate_latest(partial)
    assert len(memo) == 2


def test_a_bad_value_fails_as_in_generate_latest() -> None:
    family = GaugeMetricFamily("x", "X.")
    family.add_metric([], "not a number")  # type: ignore[arg-type]
    with pytest.raises(ValueError) as theirs:
        generate_latest(_Static([family]))
    with pytest.raises(ValueError) as ours:
        text_format(_Static([family]))
    assert ours.value.args == theirs.value.args and ours.value.args[-1] is family


def test_the_web_server_serves_it_for_the_text_format() -> None:
    registry, gauge, *_ = _instrumented()
    server = serve(registry, "127.0.0.1:0")
    try:
        for value in (1.0, 2.5, math.nan):
            gauge.labels("q1", "ready").set(value)
            with urllib.request.urlopen(server.metrics_url, timeout=5) as resp:
                assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
                assert resp.read() == generate_latest(registry)
        with urllib.request.urlopen(server.metrics_url + "?name[]=depth", timeout=5) as resp:
            assert resp.read() == generate_latest(registry.restricted_registry(["depth"]))
        with urllib.request.urlopen(server.metrics_url, timeout=5) as resp:
            assert resp.read() == generate_latest(registry)
    finally:
        server.shutdown()
