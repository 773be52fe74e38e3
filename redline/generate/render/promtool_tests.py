"""Render promtool unit tests for every alert: prometheus/tests/<system>_test.yml.

Threshold alerts, per level, get at least three cases:
  - "safe":    the signal held just on the good side of the threshold for a long time -> not firing;
  - "pending": the signal jumps just past the threshold; checked one interval before `for` ends -> not firing;
  - "firing":  the same series after `for` (plus settling time) -> firing, exact labels and annotations;
  - "detection": a healthy signal steps just past the threshold and stays there: firing exactly when the
    breach has filled the signal's rate window and then held for `for`, not one interval earlier, and
    firing at the detection time its runbook states (rate window + `for`).
Other levels of the same alert are part of the expectation (a critical breach also fires the warning).
A silence entry (an agent's own series, RedlineAgentSilent) gets the series stopping instead: silent while
they arrive, firing exactly when the last sample has left the window and `for` has passed, still firing
long after Prometheus' 5m lookback, resolved when samples arrive again, forgotten after the longest window.
SLO alerts get three burn-rate cases: fast burn pages (and tickets), slow burn tickets only, within
budget stays silent; and one with two environments, one burning fast and one within budget, where only
the burning one's alerts fire, with its env, and each env has its own budget left. Input series come
from each entry's `test:` fixture: every series follows scale * v + offset (gauge value, or counter rate
per second), so the signal equals v.
"""

from __future__ import annotations

from redline.generate.alerts import Alert, system_alerts
from redline.generate.conventions import SLO_BUDGET, rule_groups, rule_path, test_path, tiers_by_severity
from redline.generate.humanize import format_value, humanize_percentage
from redline.generate.model import (
    Catalogue,
    Fixture,
    FixtureSeries,
    Slo,
    System,
    Threshold,
    breaches,
    clip,
    format_duration,
    format_number,
    parse_duration,
)
from redline.generate.render.common import RenderError, header, yaml_dump
from redline.generate.render.promtool_series import (
    Timeline,
    breach_and_safe,
    expected_annotations,
    expected_labels,
    fixture_rows,
    input_series,
    series_text,
)

# Burn-rate test points, as multiples of the error budget.
FAST_BURN, SLOW_BURN, WITHIN_BUDGET = 16.0, 4.5, 0.5
# The budget-left checks compare at this precision (a power of ten whose inverse is exact in floats).
BUDGET_ROUNDING = 0.001
# Baseline tests span more than a week; they live in their own file, evaluated every 5 test intervals.
BASELINE_EVAL_STEPS = 5


class FixtureError(RenderError):
    """A fixture cannot produce a deterministic test; names file, entry and field like CatalogueError."""

    def __init__(self, file: str, entry: str, field_name: str, problem: str) -> None:
        entry, field_name = clip(entry, 80), clip(field_name, 120)
        prefix = f"{file}: entry {entry!r}: field {field_name!r}: "
        problem = clip(problem.removeprefix(prefix), 300)
        self.file, self.entry, self.field, self.problem = file, entry, field_name, problem
        super().__init__(prefix + problem)


def _state(level: Threshold, t: int, v1: float, v2: float, p: int, settle: int) -> bool | None:
    """Is this level firing at time t when the signal is v1 before p and v2 after (settling within
    `settle`)? None when it cannot be said for sure."""
    f = parse_duration(level.for_)
    c1, c2 = breaches(level.operator, v1, level.value), breaches(level.operator, v2, level.value)
    if t < p:
        if not c1:
            return False
        return True if t - settle >= f else (False if t < f else None)
    if c1 and c2:
        return True if t - settle >= f else (False if t < f else None)
    if c2:
        return True if t >= p + settle + f else (False if t < p + f else None)
    if c1:
        return False if t >= p + settle else None
    return False


def _exp_alerts(
    alerts: list[Alert],
    fixture: Fixture,
    seen: dict[str, str],
    t: int,
    v1: float,
    v2: float,
    p: int,
    settle: int,
    where: str,
) -> list[dict]:
    expected = []
    for alert in alerts:
        level = alert.source
        assert isinstance(level, Threshold)
        state = _state(level, t, v1, v2, p, settle)
        if state is None:
            raise ValueError(
                f"{where}: cannot tell whether the {level.severity} level fires at {format_duration(t)}; "
                "give the levels the same 'for'"
            )
        if state:
            value = v2 if t >= p + settle else v1
            expected.append(
                {
                    "exp_labels": expected_labels(alert, fixture, seen, where),
                    "exp_annotations": expected_annotations(alert, value),
                }
            )
    return expected


def _round_up(seconds: int, interval: int) -> int:
    return -(-seconds // interval) * interval


def threshold_tests(
    catalogue: Catalogue, system: System, alerts: list[Alert], level_alert: Alert
) -> list[dict]:
    """Test groups for one level of a threshold entry (all levels of the alert in the expectation)."""
    level = level_alert.source
    assert isinstance(level, Threshold) and level.fixture is not None
    fixture, where = level.fixture, f"{level.file}: entry {level.id!r}: field 'test'"
    interval = parse_duration(catalogue.settings.test_interval)
    # a signal settles once its longest window holds only the new value
    settle = _round_up(max(parse_duration(catalogue.settings.test_settle), level.window_seconds), interval)
    targets = [dict(t) for t in system.test_targets] or [{}]
    same_name = [a for a in alerts if a.alert_name == level.alert_name]
    name = f"{level.alert_name} {level.severity}"
    if fixture.kind == "always":
        return [_always_group(level_alert, fixture, targets[0], interval, name, where)]
    if fixture.kind == "baseline":
        return _baseline_groups(level_alert, fixture, targets, interval, settle, name, where)
    if fixture.kind == "silence":
        # the series stop after the catalogue's settling time, not after the signal's (day-long) window
        history = parse_duration(catalogue.settings.test_settle)
        return _silence_groups(level_alert, fixture, targets[0], interval, history, name, where)

    levels = [a.source for a in same_name if isinstance(a.source, Threshold)]
    breach, safe = breach_and_safe(level)
    # before the jump: a value safe for every level of this alert
    all_clear = max if level.operator in ("<", "<=") else min
    v_clear = all_clear(breach_and_safe(other)[1] for other in levels)
    f = parse_duration(level.for_)
    p = 2 * settle
    t_fire = _round_up(p + settle + f, interval)
    t_pending = p + f - interval
    groups = []

    # safe: just on the good side of the threshold all along
    timeline = Timeline(interval, ((safe, p // interval), (safe, (t_fire - p) // interval + 1)))
    rows, seen = input_series(fixture, targets[0], timeline, where)
    groups.append(
        {
            "name": f"{name}: silent just below the threshold ({_show(level, safe)})",
            "interval": format_duration(interval),
            "input_series": rows,
            "alert_rule_test": [
                {
                    "eval_time": format_duration(t_fire),
                    "alertname": level.alert_name,
                    "exp_alerts": _exp_alerts(same_name, fixture, seen, t_fire, safe, safe, p, settle, where),
                }
            ],
        }
    )
    # breach: all clear, then just past the threshold
    for index, target in enumerate(targets):
        timeline = Timeline(interval, ((v_clear, p // interval), (breach, (t_fire - p) // interval + 1)))
        rows, seen = input_series(fixture, target, timeline, where)
        cases = []
        if index == 0 and t_pending >= p:
            cases.append(
                {
                    "eval_time": format_duration(t_pending),
                    "alertname": level.alert_name,
                    "exp_alerts": _exp_alerts(
                        same_name, fixture, seen, t_pending, v_clear, breach, p, settle, where
                    ),
                }
            )
        cases.append(
            {
                "eval_time": format_duration(t_fire),
                "alertname": level.alert_name,
                "exp_alerts": _exp_alerts(
                    same_name, fixture, seen, t_fire, v_clear, breach, p, settle, where
                ),
            }
        )
        label = "" if index == 0 else f" ({', '.join(f'{k}={v}' for k, v in sorted(target.items()))})"
        groups.append(
            {
                "name": f"{name}: just past the threshold ({_show(level, breach)}): silent before "
                f"'for' ({level.for_}), firing after{label}",
                "interval": format_duration(interval),
                "input_series": rows,
                "alert_rule_test": cases,
            }
        )
    groups.append(
        _detection_group(level_alert, same_name, fixture, targets[0], interval, settle, name, where)
    )
    return groups


def healthy_value(level: Threshold, levels: list[Threshold]) -> float:
    """A value well on the good side of every level, where a real breach starts from: half the lowest
    level (above the highest for `<`, halfway to 100% for ratios). Not 0: a counter that has not moved
    since the window's first sample limits rate()'s extrapolation and would delay the breach."""
    if level.unit == "boolean":
        return level.target
    if level.operator in (">", ">="):
        return min(other.value for other in levels) / 2
    highest = max(other.value for other in levels)
    return (1 + highest) / 2 if level.unit == "ratio" else 2 * highest


def _detection_group(
    level_alert: Alert,
    alerts: list[Alert],
    fixture: Fixture,
    target: dict[str, str],
    interval: int,
    settle: int,
    name: str,
    where: str,
) -> dict:
    """Healthy, then just past this level for good: firing at the exact detection time, not one interval
    before, and at the time the runbook states.

    Evaluated every `interval` on samples every `interval`: a rate window [W] then holds W/interval - 1
    increases, the newest of which is already the breach's at the step itself, so the signal at k intervals
    after the step is the mean of min(k + 1, n) breaching and the rest healthy increases."""
    level = level_alert.source
    assert isinstance(level, Threshold)
    levels = [a.source for a in alerts if isinstance(a.source, Threshold)]
    healthy, (breach, _safe) = healthy_value(level, levels), breach_and_safe(level)
    steps = max(level.rate_window_seconds // interval - 1, 1) if level.rate_window_seconds else 0
    p = 2 * settle
    for other in levels:
        if breaches(other.operator, healthy, other.value):
            raise ValueError(f"{where}: the healthy value {healthy} breaches the {other.severity} level")

    def value_at(t: int) -> float:
        if not steps:
            return breach
        breaching = min((t - p) // interval + 1, steps)
        return round((healthy * (steps - breaching) + breach * breaching) / steps, 12)

    def active_from(other: Threshold) -> int | None:
        for t in range(p, p + (steps + 1) * interval, interval):
            if breaches(other.operator, value_at(t), other.value):
                return t
        return None

    first = active_from(level)
    if first is None:
        raise ValueError(f"{where}: the breach never reaches the {level.severity} level")
    t_detect = first + parse_duration(level.for_)
    t_stated = p + level.detection_seconds
    end = max(t_detect, t_stated)
    rows, seen = input_series(
        fixture,
        target,
        Timeline(interval, ((healthy, p // interval), (breach, (end - p) // interval + 1))),
        where,
    )

    def case(t: int) -> dict:
        expected = []
        for alert in alerts:
            other = alert.source
            assert isinstance(other, Threshold)
            since = active_from(other)
            if since is not None and t - since >= parse_duration(other.for_):
                expected.append(
                    {
                        "exp_labels": expected_labels(alert, fixture, seen, where),
                        "exp_annotations": expected_annotations(alert, value_at(t)),
                    }
                )
        return {"eval_time": format_duration(t), "alertname": level.alert_name, "exp_alerts": expected}

    checks = sorted({t_detect - interval, t_detect, t_stated})
    return {
        "name": f"{name}: detection from healthy ({_show(level, healthy)}) to {_show(level, breach)}: "
        f"firing {format_duration(t_detect - p)} after the step, not one interval earlier; "
        f"stated detection time {format_duration(level.detection_seconds)}",
        "interval": format_duration(interval),
        "input_series": rows,
        "alert_rule_test": [case(t) for t in checks],
    }


def _show(level: Threshold, v: float) -> str:
    return format_value(level.unit, v)


def _always_group(
    alert: Alert, fixture: Fixture, target: dict[str, str], interval: int, name: str, where: str
) -> dict:
    timeline = Timeline(interval, ((1.0, 61),))
    rows, seen = input_series(fixture, target, timeline, where)
    expected = [
        {
            "exp_labels": expected_labels(alert, fixture, seen, where),
            "exp_annotations": expected_annotations(alert, 1.0),
        }
    ]
    return {
        "name": f"{name}: always firing",
        "interval": format_duration(interval),
        "input_series": rows,
        "alert_rule_test": [
            {"eval_time": format_duration(t), "alertname": alert.alert_name, "exp_alerts": expected}
            for t in (0, 10 * interval, 60 * interval)
        ],
    }


def _silence_groups(
    alert: Alert, fixture: Fixture, target: dict[str, str], interval: int, history: int, name: str, where: str
) -> list[dict]:
    """The series arrive (each at scale + offset) until `last`, then stop without a staleness marker, as a
    dead agent's remote-written series do, and (first group) arrive again. Firing exactly when the last
    sample has left the counting window and `for` has passed, not one interval before; still firing an
    hour later, long past the 5m lookback in which an instant selector still sees the last sample;
    resolved at the first new sample; and (second group) forgotten once the longest window is empty."""
    level = alert.source
    assert isinstance(level, Threshold)
    window, forget = level.rate_window_seconds, level.window_seconds
    if not window or forget <= window:
        raise ValueError(
            f"{where}: a silence signal counts samples over a window and keeps its labels over a longer one"
        )
    last = _round_up(history, interval)
    t_fire = last + window + parse_duration(level.for_)
    t_late = t_fire + parse_duration("1h")
    back = t_late + interval  # the first sample after the silence

    def rows(*phases: tuple[bool, int]) -> tuple[list[dict], dict[str, str]]:
        def values(item: FixtureSeries) -> str:
            value = format_number(item.scale + item.offset)
            return " ".join(f"{value if arriving else '_'}x{count - 1}" for arriving, count in phases)

        return fixture_rows(fixture, target, values)

    def case(t: int, firing: bool, seen: dict[str, str]) -> dict:
        expected = []
        if firing:
            labels = expected_labels(alert, fixture, seen, where)
            expected.append({"exp_labels": labels, "exp_annotations": expected_annotations(alert, 0, labels)})
        return {"eval_time": format_duration(t), "alertname": level.alert_name, "exp_alerts": expected}

    arriving = last // interval + 1
    returning, seen = rows((True, arriving), (False, (back - last) // interval), (True, 2))
    forgotten, seen_f = rows((True, arriving), (False, (last + forget) // interval - arriving + 2))
    return [
        {
            "name": f"{name}: the series stop at {format_duration(last)} (no staleness marker): firing "
            f"{format_duration(t_fire - last)} later, not one interval earlier; still firing after an "
            "hour; resolved by the first new sample",
            "interval": format_duration(interval),
            "input_series": returning,
            "alert_rule_test": [
                case(last, False, seen),
                case(t_fire - interval, False, seen),
                case(t_fire, True, seen),
                case(t_late, True, seen),
                case(back, False, seen),
            ],
        },
        {
            "name": f"{name}: silent for {format_duration(forget)} the series are forgotten (resolved)",
            "interval": format_duration(interval),
            "input_series": forgotten,
            "alert_rule_test": [
                case(last + forget - interval, True, seen_f),
                case(last + forget, False, seen_f),
            ],
        },
    ]


def _baseline_groups(
    alert: Alert,
    fixture: Fixture,
    targets: list[dict[str, str]],
    interval: int,
    settle: int,
    name: str,
    where: str,
) -> list[dict]:
    """Error rate vs baseline: history at v=1 (the baseline), then v. Also: no history at all, and
    history of only a day (the fallback baseline)."""
    level = alert.source
    assert isinstance(level, Threshold)
    breach, safe = breach_and_safe(level)
    f = parse_duration(level.for_)
    step = BASELINE_EVAL_STEPS * interval
    week = parse_duration("1w")
    hour = parse_duration("1h")
    groups = []

    def group(title: str, history: int, v: float, checks: list[tuple[int, bool]]) -> dict:
        end = max(t for t, _ in checks)
        phases = (
            ((1.0, history // interval), (v, (end - history) // interval + 1))
            if history
            else ((v, end // interval + 1),)
        )
        rows, seen = input_series(fixture, targets[0], Timeline(interval, phases), where)
        cases = []
        for t, firing in checks:
            exp = []
            if firing:
                exp = [
                    {
                        "exp_labels": expected_labels(alert, fixture, seen, where),
                        "exp_annotations": expected_annotations(alert, v),
                    }
                ]
            cases.append({"eval_time": format_duration(t), "alertname": alert.alert_name, "exp_alerts": exp})
        return {
            "name": f"{name}: {title}",
            "interval": format_duration(interval),
            "input_series": rows,
            "alert_rule_test": cases,
            "_baseline": True,
        }

    h = week + hour
    t_fire = _round_up(h + settle + f, step)
    groups.append(
        group(
            f"silent just below {format_value(level.unit, level.value)} the week-ago baseline "
            f"({format_value(level.unit, safe)})",
            h,
            safe,
            [(t_fire, False)],
        )
    )
    groups.append(
        group(
            f"{format_value(level.unit, breach)} the week-ago baseline: silent before 'for', firing after",
            h,
            breach,
            [(h + f - step, False), (t_fire, True)],
        )
    )
    day = parse_duration("1d")
    groups.append(
        group(
            "one day of history: the day-before baseline is used",
            day,
            breach,
            [(_round_up(day + settle + f, step), True)],
        )
    )
    groups.append(
        group(
            "no history: no baseline, silent; after an hour the fallback baseline equals now",
            0,
            breach,
            [(hour // 2, False), (2 * hour, False)],
        )
    )
    return groups


# ----------------------------------------------------------------------------------------------------
# SLO burn-rate tests


def slo_tests(catalogue: Catalogue, system: System, slo: Slo, alerts: list[Alert]) -> list[dict]:
    assert slo.fixture is not None
    fixture, where = slo.fixture, f"{slo.file}: entry {slo.id!r}: field 'test'"
    interval = parse_duration(catalogue.settings.test_interval)
    settle = parse_duration(catalogue.settings.test_settle)
    tiers = catalogue.settings.burn_rates
    longest_for = max(parse_duration(tier.for_) for tier in tiers)
    t_eval = _round_up(longest_for + settle, interval)
    target = dict(system.test_targets[0]) if system.test_targets else {}
    slo_alerts = [a for a in alerts if a.source is slo]

    def burn(multiple: float) -> tuple[float, Timeline]:
        v = round(multiple * slo.error_budget, 12)
        if v > 1:
            raise ValueError(f"{where}: {multiple}x the budget is above 100% errors")
        return v, Timeline(interval, ((v, t_eval // interval + 1),))

    def group(title: str, rows: list[dict], expected: list[dict], samples: list[dict] | None = None) -> dict:
        test: dict = {
            "name": f"{slo.alert_name}: {title}",
            "interval": format_duration(interval),
            "input_series": rows,
            "alert_rule_test": [
                {"eval_time": format_duration(t_eval), "alertname": slo.alert_name, "exp_alerts": expected}
            ],
        }
        if samples is not None:
            # a ratio of rates or averages is the expected value only up to float rounding
            expr = f'round({SLO_BUDGET}{{slo="{slo.slo_label}"}}, {format_number(BUDGET_ROUNDING)})'
            test["promql_expr_test"] = [
                {"expr": expr, "eval_time": format_duration(t_eval), "exp_samples": samples}
            ]
        return test

    groups = []
    for title, multiple in (
        ("fast burn pages", FAST_BURN),
        ("slow burn opens a ticket", SLOW_BURN),
        ("within budget stays silent", WITHIN_BUDGET),
    ):
        v, timeline = burn(multiple)
        rows, seen = input_series(fixture, target, timeline, where)
        expected = _burn_alerts(catalogue, slo_alerts, fixture, seen, multiple, v, where)
        title += f" ({format_number(multiple)}x the error budget, {humanize_percentage(v)} errors)"
        groups.append(group(title, rows, expected))

    # Two environments of one system: each spends its own budget, and only the burning one pages, with
    # its env on the alert (Alertmanager groups and inhibits by it).
    quiet, burning = _test_envs(catalogue, where)
    (v_quiet, quiet_timeline), (v_burning, burning_timeline) = burn(WITHIN_BUDGET), burn(FAST_BURN)
    rows, _ = input_series(fixture, {**target, "env": quiet}, quiet_timeline, where)
    burning_rows, seen = input_series(fixture, {**target, "env": burning}, burning_timeline, where)
    expected = _burn_alerts(catalogue, slo_alerts, fixture, seen, FAST_BURN, v_burning, where, ("env",))
    title = (
        f"{burning} at {humanize_percentage(v_burning)} errors pages for {burning} alone; "
        f"{quiet} at {humanize_percentage(v_quiet)} spends only its own budget"
    )
    # the budget left, per env: the period's ratio (so far, the constant v) against the budget
    samples = [
        {
            "labels": series_text("", {"env": env, "slo": slo.slo_label, "system": slo.system}),
            "value": round(round((1 - v / slo.error_budget) / BUDGET_ROUNDING) * BUDGET_ROUNDING, 12),
        }
        for env, v in ((quiet, v_quiet), (burning, v_burning))
    ]
    groups.append(group(title, rows + burning_rows, expected, samples))
    return groups


def _burn_alerts(
    catalogue: Catalogue,
    slo_alerts: list[Alert],
    fixture: Fixture,
    seen: dict[str, str],
    multiple: float,
    v: float,
    where: str,
    keeps: tuple[str, ...] = (),
) -> list[dict]:
    """The alerts of an SLO burning at `multiple` times its budget: each severity whose tiers it exceeds."""
    tiers = tiers_by_severity(catalogue)
    expected = []
    for alert in slo_alerts:
        if any(multiple > tier.factor for tier in tiers[alert.severity]):
            labels = expected_labels(alert, fixture, seen, where)
            labels |= {key: seen[key] for key in keeps}
            annotations = expected_annotations(alert, v)
            expected.append({"exp_labels": dict(sorted(labels.items())), "exp_annotations": annotations})
    return expected


def _test_envs(catalogue: Catalogue, where: str) -> tuple[str, str]:
    """Two environments the test targets name (redline/topology.py): the first stays within budget, the
    second burns."""
    targets = [dict(t) for s in catalogue.systems for t in s.test_targets]
    envs = dict.fromkeys(t["env"] for t in targets if "env" in t)
    if len(envs) < 2:
        raise ValueError(f"{where}: the per-env burn test needs two env labels among the test targets")
    first, second, *_rest = envs
    return first, second


# ----------------------------------------------------------------------------------------------------
# Files


def system_test_groups(catalogue: Catalogue, system: System) -> list[dict]:
    """Every test group of a system's alerts (baseline groups marked with '_baseline')."""
    alerts = system_alerts(catalogue, system)
    groups: list[dict] = []
    for alert in alerts:
        source = alert.source
        try:
            if isinstance(source, Threshold):
                if source.fixture is None:
                    raise ValueError("missing; every alert needs a fixture for its promtool tests")
                groups.extend(threshold_tests(catalogue, system, alerts, alert))
            elif alert is next(a for a in alerts if a.source is source):  # once per SLO
                if source.fixture is None:
                    raise ValueError("missing; every SLO needs a fixture for its burn-rate tests")
                groups.extend(slo_tests(catalogue, system, source, alerts))
        except ValueError as err:
            raise FixtureError(source.file, source.id, "test", str(err)) from None
    return groups


def _test_document(system: System, groups: list[dict], evaluation_interval: str) -> str:
    document: dict = {
        "rule_files": [f"../rules/{system.id}.yml"],
        "evaluation_interval": evaluation_interval,
        "group_eval_order": rule_groups(system),
    }
    document["tests"] = [{k: v for k, v in g.items() if k != "_baseline"} for g in groups]
    sources = [f"thresholds/{system.file} (tests for {rule_path(system.id)})"]
    return header("#", sources) + yaml_dump(document)


def render_promtool_tests(catalogue: Catalogue) -> dict[str, str]:
    """Renderer: one promtool test file per system."""
    files = {}
    interval = parse_duration(catalogue.settings.test_interval)
    for system in catalogue.systems:
        groups = system_test_groups(catalogue, system)
        regular = [g for g in groups if not g.get("_baseline")]
        baseline = [g for g in groups if g.get("_baseline")]
        if regular:
            files[test_path(system.id)] = _test_document(system, regular, catalogue.settings.test_interval)
        if baseline:
            files[test_path(system.id, baseline=True)] = _test_document(
                system, baseline, format_duration(BASELINE_EVAL_STEPS * interval)
            )
    return files
