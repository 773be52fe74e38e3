"""redline.generate.promql: the metric names a PromQL expression reads (no promtool)."""

from __future__ import annotations

import pytest

from redline.generate.promql import PromqlNameError, calls, groupings, metric_names


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ('rate(process_cpu_seconds_total{system="tmux"}[1m])', ["process_cpu_seconds_total"]),
        # aggregations with the label list before or after, label names inside braces and lists
        ("sum by (job, le) (rate(h_bucket{le=\"0.1\"}[5m])) / sum(rate(h_count[5m])) by (job)",
         ["h_bucket", "h_count"]),
        ("sum without (instance) (a) and on(job) group_left(instance) b unless ignoring (x) c",
         ["a", "b", "c"]),
        # keywords in any case, numbers, exponents, durations, offset, @, subqueries, comments
        ("x > bool 1e-5 OR y offset 1h30m @ start() + z[5m:30s] # not_a_metric\n - Inf * NaN",
         ["x", "y", "z"]),
        # a recording rule name with colons, functions over functions, string arguments
        ('label_replace(instance:up:min, "dst", "$1", "src", "(metric_in_a_string)")',
         ["instance:up:min"]),
        ("histogram_quantile(0.95, sum by (le) (rate(d_bucket[5m])))", ["d_bucket"]),
        ("topk(3, a) + count_values(\"v\", b) + quantile(0.9, c) + vector(1) + time()", ["a", "b", "c"]),
        # names given by __name__, a list of names, and Prometheus 3's quoted names
        ('min by (job) ({__name__=~"up|pg_up", job="postgres"})', ["up", "pg_up"]),
        ('{__name__="up"} + {__name__!="x", job="y"}', ["up"]),
        ('{"metric.with.dots", job="x"}', ["metric.with.dots"]),
        ("vector(1)", []),
        ("sum", ["sum"]),  # a metric that happens to be called like an aggregation
    ],
)  # fmt: skip
def test_metric_names(query: str, names: list[str]) -> None:
    assert metric_names(query) == names


def test_a_regular_expression_over_names_is_refused() -> None:
    with pytest.raises(PromqlNameError, match=r"write them out as name_a\|name_b"):
        metric_names('{__name__=~"node_.+"}')


@pytest.mark.parametrize("query", ["{", "sum(", 'a{b="', "[5m", "a{b=}", "`", "by (", "{,,}", "1e", "."])
def test_broken_expressions_do_not_crash(query: str) -> None:
    assert isinstance(metric_names(query), list)  # promtool reports what is wrong with them


@pytest.mark.parametrize(
    ("query", "found"),
    [
        # no label list: the aggregation keeps no label
        ("1 - avg(avg_over_time(probe_success[5m]))", ["avg(...) without by (...)"]),
        # before or after the argument, nested, any case; selecting aggregations keep every label
        ("sum by (system, env) (rate(a[5m])) / SUM(max without (job) (b)) BY (env)",
         ["sum by (system, env)", "SUM by (env)", "max without (job)"]),
        ("topk(3, a) + bottomk by (x) (1, b) + limitk(1, c)", []),
        # braces, strings and ranges inside the argument do not end it early
        ('count(label_replace(a{b=")"}[5m:1m], "x", ")", "y", "(.*)")) by (system)', ["count by (system)"]),
        ("sum", []),  # a metric that happens to be called like an aggregation
    ],
)  # fmt: skip
def test_groupings(query: str, found: list[str]) -> None:
    assert [str(g) for g in groupings(query)] == found


def test_a_grouping_keeps_the_labels_it_names_or_does_not_drop() -> None:
    by, without, bare = groupings("sum by (env) (a) + sum without (job) (b) + sum(c)")
    assert (by.keeps("env"), by.keeps("system")) == (True, False)
    assert (without.keeps("env"), without.keeps("job")) == (True, False)
    assert not bare.keeps("env")


def test_calls() -> None:
    assert calls("(sum by (env) (rate(a[5m])) or vector(0)) and on (env) b") == ["rate", "vector"]
