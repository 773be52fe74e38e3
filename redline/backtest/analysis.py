"""What the replay means: episodes, notifications, compliance with each documented number, suggestions.

Per alert (one level of a catalogue entry): its firing episodes as vmalert evaluated them, the pages and
tickets they give through the Alertmanager model (grouping, timers, inhibition with every other alert),
the share of evaluations at which its signal kept the documented target and the alert value, and a
suggested value and `for`.

Suggestion: the documented value and `for` are kept when they give at most N notifications a month at
the alert's receiver (pages for `pager`, tickets for `ticket`). Otherwise candidates are swept: `for` on
the ladder FOR_LADDER (from the documented one up to an hour) and values between the documented value
and the largest value the signal reached beyond it (quantiles of the breaching samples, rounded to two
significant digits away from the alerting side). Each candidate's episodes are computed from the
recorded signal with the same state machine as the rule engine and run through the same Alertmanager
model with the alerts that share its groups or can inhibit it; the candidate closest to the documented
value (then the shortest `for`) within N a month wins. Boolean signals (up/down) only get a `for`.
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from redline.backtest.notifications import (
    AlertmanagerConfig,
    Episode,
    Labels,
    Notification,
    labels_of,
    simulate,
)
from redline.backtest.rules import CatalogueRules, Evaluated
from redline.backtest.timeline import (
    Grid,
    Series,
    breaching,
    episodes_from_firing,
    episodes_from_signal,
    firing_seconds,
    only_breaching,
)
from redline.generate.alerts import TARGET_AT_VALUE_WORDS, target_phrase
from redline.generate.humanize import format_value, humanize_percentage
from redline.generate.model import Slo, Threshold, breaches, format_duration, parse_duration
from redline.receivers.ledger import RECEIVER_KINDS

MONTH = 30 * 86400
WEEK = 7 * 86400
FOR_LADDER = (60, 120, 300, 600, 900, 1800, 3600)  # seconds: the `for` values a suggestion may use
QUANTILES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0)
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Held:
    """How well the signal kept one documented number."""

    phrase: str  # 'below 0.5s'
    held: float | None  # share of evaluations (with data) at which every series was on its good side
    beyond_seconds: int  # time at which at least one series was beyond it


@dataclass
class Suggestion:
    status: str  # keep | change | n/a
    value: float | None = None
    for_: str | None = None
    per_month: float | None = None  # notifications a month at the alert's receiver with it
    note: str = ""


@dataclass
class AlertResult:
    evaluated: Evaluated
    receiver: str  # where its notifications go ('pager', 'ticket', 'null', ...)
    episodes: list[Episode]
    firing_seconds: int
    opened: int  # notifications that opened an incident at its receiver (pages or tickets)
    notifications: int  # every notification that carried it firing (updates and repeats too)
    target: Held | None
    value: Held | None
    signal: list[Series]
    no_data: bool
    model_agrees: bool | None = None  # the state machine on the signal gives vmalert's episodes
    suggestion: Suggestion = field(default_factory=lambda: Suggestion("n/a"))

    @property
    def name(self) -> str:
        return self.evaluated.alert.alert_name

    @property
    def severity(self) -> str:
        return self.evaluated.alert.severity


@dataclass
class CatalogueResult:
    label: str  # 'working tree', a git ref
    alerts: list[AlertResult]
    notifications: list[Notification]
    skipped: list[str]


def per(count: float, grid: Grid, period: int) -> float:
    return count * period / grid.seconds


# ----- episodes -------------------------------------------------------------------------------------


def alert_episodes(evaluated: Evaluated, firing: list[Series], grid: Grid) -> list[Episode]:
    for_seconds = parse_duration(evaluated.alert.for_)
    return [e for series in firing for e in episodes_from_firing(series, for_seconds, grid)]


def signal_labels(series: Series, evaluated: Evaluated) -> Labels:
    """The labels of the alert a signal series gives: its own, then the rule's, then alertname."""
    return labels_of({**series.labels, **evaluated.alert.labels, "alertname": evaluated.alert.alert_name})


def threshold_episodes(
    evaluated: Evaluated, signal: list[Series], value: float, for_seconds: int, grid: Grid
) -> list[Episode]:
    source = evaluated.alert.source
    assert isinstance(source, Threshold)
    return [
        e
        for series in signal
        for e in episodes_from_signal(
            series, source.operator, value, for_seconds, grid, signal_labels(series, evaluated)
        )
    ]


def related(episodes: Iterable[Episode], mine: Iterable[Labels], config: AlertmanagerConfig) -> list[Episode]:
    """The episodes that can change the notifications of alerts with these labels: those in the same
    aggregation groups, and those that can inhibit them."""
    groups, inhibitors = set(), set()
    for labels in mine:
        info = config.info(labels)
        groups |= {key for _, _, key in info.routes}
        inhibitors |= {(index, equal) for index, equal, _ in info.targets}
    found = []
    for episode in episodes:
        info = config.info(episode.labels)
        if any(key in groups for *_, key in info.routes) or any(s in inhibitors for s in info.sources):
            found.append(episode)
    return found


def _key(episodes: Iterable[Episode]) -> set[tuple]:
    return {(e.labels, e.start, e.end) for e in episodes}


# ----- compliance -----------------------------------------------------------------------------------


def held(signal: list[Series], operator: str, value: float, phrase: str, grid: Grid) -> Held:
    """How well the signal kept `phrase`: `signal operator value` is being past it."""
    bad_at: set[int] = set()
    seen: set[int] = set()
    for series in signal:
        seen.update(series.timestamps)
        bad_at.update(breaching(series, operator, value))
    share = None if not seen else 1 - len(bad_at) / len(seen)
    return Held(phrase, share, len(bad_at) * grid.step)


def threshold_compliance(threshold: Threshold, signal: list[Series], grid: Grid) -> tuple[Held, Held]:
    op, unit, target = threshold.operator, threshold.unit, threshold.target
    past = threshold.past_target  # the same meaning as the long-term store's target_held records
    side = TARGET_AT_VALUE_WORDS[op]
    phrase = f"{side} {format_value(unit, target)}" if unit == "boolean" else target_phrase(threshold)
    value_phrase = f"{side} {format_value(unit, threshold.value)}"
    return held(signal, past, target, phrase, grid), held(signal, op, threshold.value, value_phrase, grid)


def slo_compliance(
    slo: Slo, alert_value: float, signal: list[Series], grid: Grid, window: str
) -> tuple[Held, Held]:
    budget = slo.error_budget
    objective = humanize_percentage(slo.objective)
    target = f"error ratio ({window}) at most {humanize_percentage(budget)} (objective {objective})"
    value = f"error ratio ({window}) at most {humanize_percentage(alert_value)}"
    return held(signal, ">", budget, target, grid), held(signal, ">", alert_value, value, grid)


def measured_objective(signal: list[Series]) -> float | None:
    """1 - the mean error ratio over every evaluation (time-weighted), of the series (one per env) that
    kept the objective least: each env has its own budget, so their mean would hide a burning one."""
    measured = []
    for series in signal:
        values = [v for v in series.values if not math.isnan(v)]
        if values:
            measured.append(1 - sum(values) / len(values))
    return min(measured, default=None)


# ----- notifications per alert ----------------------------------------------------------------------


def counts(notifications: Iterable[Notification], name: str, severity: str) -> tuple[int, int]:
    """(opening notifications, notifications) that carried this alert firing."""
    opened = total = 0
    for n in notifications:
        if any(dict(f).get("alertname") == name and dict(f).get("severity") == severity for f in n.firing):
            total += 1
            opened += n.opens
    return opened, total


def receiver_totals(notifications: Iterable[Notification]) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = defaultdict(lambda: {"opened": 0, "notifications": 0})
    for n in notifications:
        totals[n.receiver]["notifications"] += 1
        totals[n.receiver]["opened"] += n.opens
    return dict(totals)


# ----- the analysis of one catalogue ----------------------------------------------------------------


def analyse(
    label: str,
    rules: CatalogueRules,
    alerts_by_rule: dict[str, list[Series]],
    signals: dict[str, list[Series]],
    no_data: frozenset[str],
    grid: Grid,
    config: AlertmanagerConfig,
    max_per_month: float,
    progress: Progress,
    suggest: bool = True,
) -> CatalogueResult:
    """Episodes, notifications, compliance and suggestions for every alert of one catalogue."""
    episodes = {id(e): alert_episodes(e, alerts_by_rule.get(e.rule.id, []), grid) for e in rules.alerts}
    everything = [x for found in episodes.values() for x in found]
    progress(f"{label}: Alertmanager model over {len(everything)} episodes")
    notifications = simulate(config, everything, float(grid.end + grid.step))
    results = []
    for evaluated in rules.alerts:
        alert = evaluated.alert
        found = episodes[id(evaluated)]
        signal = signals.get(evaluated.signal.id, [])
        receivers = [r.receiver for r in config.route.match({**alert.labels, "alertname": alert.alert_name})]
        opened, total = counts(notifications, alert.alert_name, alert.severity)
        target = value = None
        agrees = None
        if isinstance(alert.source, Threshold):
            if signal:
                target, value = threshold_compliance(alert.source, signal, grid)
                recomputed = threshold_episodes(
                    evaluated, signal, alert.source.value, parse_duration(alert.for_), grid
                )
                agrees = _key(recomputed) == _key(found)
        elif signal:
            target, value = slo_compliance(alert.source, alert.value, signal, grid, evaluated.signal.window)
        results.append(
            AlertResult(
                evaluated=evaluated,
                receiver=receivers[0] if receivers else "",
                episodes=found,
                firing_seconds=firing_seconds(found, grid),
                opened=opened,
                notifications=total,
                target=target,
                value=value,
                signal=signal,
                no_data=evaluated.rule.id in no_data and not signal,
                model_agrees=agrees,
            )
        )
    if suggest:
        for index, result in enumerate(results, 1):
            threshold = isinstance(result.evaluated.alert.source, Threshold)
            if result.receiver in RECEIVER_KINDS and threshold and result.signal:
                progress(f"{label}: suggestion {index}/{len(results)} {result.name} ({result.severity})")
                result.suggestion = suggestion(result, episodes, grid, config, max_per_month)
    return CatalogueResult(label, results, notifications, [a.alert_name for a in rules.skipped])


# ----- suggestions ----------------------------------------------------------------------------------


def nice(value: float, up: bool) -> float:
    """value rounded to two significant digits, away from the alerting side (up for '>' alerts)."""
    if value == 0 or math.isinf(value) or math.isnan(value):
        return value
    scale = 10 ** (math.floor(math.log10(abs(value))) - 1)
    # the epsilon keeps a value already on two digits (1.2, stored as 1.19999...) where it is
    rounded = (math.ceil(value / scale - 1e-9) if up else math.floor(value / scale + 1e-9)) * scale
    return float(f"{rounded:.12g}")


def candidate_values(
    threshold: Threshold, signal: list[Series], bounds: tuple[float, ...] = ()
) -> list[float]:
    """The documented value, then values less sensitive than it, closest first (only `bounds` when
    the catalogue accepts only those)."""
    op, documented = threshold.operator, threshold.value
    if threshold.unit == "boolean":
        return [documented]
    up = op in (">", ">=")
    beyond = sorted(v for s in signal for v in s.values if breaches(op, v, documented))
    if not beyond:
        return [documented]
    if not up:
        beyond.reverse()  # from the documented value outwards
    picks = [beyond[min(len(beyond) - 1, int(q * (len(beyond) - 1)))] for q in QUANTILES]
    if bounds:
        # the first bound on the less sensitive side of each pick, or the last bound there is
        side = sorted((b for b in bounds if breaches(op, b, documented)), reverse=not up)  # outwards
        rounded = [next((b for b in side if not breaches(op, v, b)), side[-1]) for v in picks] if side else []
    elif threshold.unit == "count":
        rounded = [float(math.ceil(v) if up else math.floor(v)) for v in picks]
    else:
        rounded = [nice(v, up) for v in picks]
    ordered = sorted({v for v in rounded if v != documented}, key=lambda v: abs(v - documented))
    return [documented, *ordered]


def candidate_fors(documented: int) -> list[int]:
    ceiling = max(documented, FOR_LADDER[-1])
    return [documented, *[f for f in FOR_LADDER if documented < f <= ceiling]]


def suggestion(
    result: AlertResult,
    episodes: dict[int, list[Episode]],
    grid: Grid,
    config: AlertmanagerConfig,
    max_per_month: float,
) -> Suggestion:
    evaluated = result.evaluated
    threshold = evaluated.alert.source
    assert isinstance(threshold, Threshold)
    if not result.signal:
        return Suggestion("n/a", note="no signal data")
    documented_for = parse_duration(evaluated.alert.for_)
    mine = {signal_labels(series, evaluated) for series in result.signal}
    others = related(
        (e for key, found in episodes.items() if key != id(evaluated) for e in found), mine, config
    )
    until = float(grid.end + grid.step)
    name, severity = evaluated.alert.alert_name, evaluated.alert.severity
    # Less sensitive values than the documented one can only breach where it did.
    beyond = [only_breaching(series, threshold.operator, threshold.value) for series in result.signal]

    def monthly(value: float, for_seconds: int) -> float:
        candidate = threshold_episodes(evaluated, beyond, value, for_seconds, grid)
        if not candidate:
            return 0.0
        sent = simulate(config, [*others, *candidate], until)
        return per(counts(sent, name, severity)[0], grid, MONTH)

    current = per(result.opened, grid, MONTH)
    if current <= max_per_month:
        return Suggestion("keep", threshold.value, evaluated.alert.for_, current)
    values = candidate_values(threshold, result.signal, evaluated.bounds)
    best: tuple[int, int, float] | None = None  # (value rank, for, per month)
    for for_seconds in candidate_fors(documented_for):
        ranks = range(len(values) if best is None else best[0])  # only a closer value can win now
        found = _first_within(
            values, ranks, functools.partial(monthly, for_seconds=for_seconds), max_per_month
        )
        if found is not None and (best is None or (found[0], for_seconds) < (best[0], best[1])):
            best = (found[0], for_seconds, found[1])
        if best is not None and best[0] == 0:
            break
    if best is None:
        return Suggestion(
            "n/a", note=f"no candidate within the sweep gives at most {max_per_month:g} a month"
        )
    rank, for_seconds, monthly_count = best
    note = ""
    if not any(breaching(series, threshold.operator, values[rank]) for series in result.signal):
        note = "past every value the signal reached: it would never have fired"
    return Suggestion("change", values[rank], format_duration(for_seconds), monthly_count, note)


def _first_within(
    values: list[float], ranks: Iterable[int], monthly: Callable[[float], float], limit: float
) -> tuple[int, float] | None:
    """The first rank whose value gives at most `limit` a month (values are ordered by closeness;
    notifications fall as the value moves away from the documented one, so bisect)."""
    ranks = list(ranks)
    if not ranks:
        return None
    last = monthly(values[ranks[-1]])
    if last > limit:
        return None
    lo, hi, found = 0, len(ranks) - 1, (ranks[-1], last)
    while lo < hi:
        mid = (lo + hi) // 2
        count = monthly(values[ranks[mid]])
        if count <= limit:
            hi, found = mid, (ranks[mid], count)
        else:
            lo = mid + 1
    return found


# ----- two catalogues -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    alert: str
    severity: str
    receiver: str
    base: int
    other: int
    gained: int
    lost: int


def _incidents(
    notifications: list[Notification], episodes: list[Episode]
) -> list[tuple[Notification, set[tuple]]]:
    """Opening notifications with the episodes (labels, start) they announced."""
    by_labels: dict[Labels, list[Episode]] = defaultdict(list)
    for e in episodes:
        by_labels[e.labels].append(e)
    found = []
    for n in notifications:
        if not n.opens:
            continue
        announced = set()
        for labels in n.firing:
            for e in by_labels.get(labels, []):
                if e.start <= n.time and (e.end is None or n.time < e.end):
                    announced.add((labels, e.start, e.end))
        found.append((n, announced))
    return found


def _overlap(a: set[tuple], b: set[tuple]) -> bool:
    for labels, start, end in a:
        for other_labels, other_start, other_end in b:
            if labels == other_labels and start < (other_end or math.inf) and other_start < (end or math.inf):
                return True
    return False


def compare(base: CatalogueResult, other: CatalogueResult) -> list[Difference]:
    """Pages and tickets per alert under both catalogues, and which incidents one has and the other not.

    An opening notification of one catalogue matches one of the other when both went to the same
    receiver and group and announced an episode of the same alert series that overlap in time (a lower
    threshold starts the same incident earlier: same incident, not a gained one)."""
    rows = []
    base_alerts = {(r.name, r.severity): r for r in base.alerts}
    other_alerts = {(r.name, r.severity): r for r in other.alerts}
    base_incidents = _incidents(base.notifications, [e for r in base.alerts for e in r.episodes])
    other_incidents = _incidents(other.notifications, [e for r in other.alerts for e in r.episodes])
    for key in list(dict.fromkeys([*base_alerts, *other_alerts])):
        name, severity = key
        mine = [(n, a) for n, a in base_incidents if _carries(n, name, severity)]
        theirs = [(n, a) for n, a in other_incidents if _carries(n, name, severity)]
        unmatched = list(theirs)
        lost = 0
        for notification, announced in mine:
            match = next(
                (
                    item
                    for item in unmatched
                    if item[0].receiver == notification.receiver
                    and item[0].group_key == notification.group_key
                    and _overlap(announced, item[1])
                ),
                None,
            )
            if match is None:
                lost += 1
            else:
                unmatched.remove(match)
        result = base_alerts.get(key) or other_alerts[key]
        rows.append(Difference(name, severity, result.receiver, len(mine), len(theirs), len(unmatched), lost))
    return rows


def _carries(notification: Notification, name: str, severity: str) -> bool:
    return any(
        dict(f).get("alertname") == name and dict(f).get("severity") == severity for f in notification.firing
    )
