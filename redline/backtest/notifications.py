"""Alertmanager's notification model: which receiver, which group, when a notification goes out.

A faithful re-implementation of what Alertmanager 0.33 (dispatch/, notify/dedup_stage.go, inhibit/)
does with a timeline of firing and resolved alerts, driven by the real `alertmanager/alertmanager.yml`:

- routes: the tree of matchers (and the legacy `match`/`match_re`), `continue`, and the options each
  child inherits (`receiver`, `group_by` including `...`, `group_wait`, `group_interval`,
  `repeat_interval`);
- aggregation groups: one per route and group labels; created on the first alert with a timer of
  `group_wait` (zero when the alert started more than `group_wait` ago, i.e. its `for` was longer), then
  flushed every `group_interval`; after a flush in which every alert had resolved, the group is
  destroyed and the next alert of that key starts a new one;
- the pipeline of a flush: inhibition (alerts muted at the flush time are dropped), then deduplication
  against the notification log of the group key and receiver (first notification, new alerts, all
  resolved, new resolved alerts when the receiver sends resolved ones, or the repeat interval elapsed);
- inhibition: a target is muted while a source alert with the same `equal` labels is firing, except
  by a source that matches the target side too when the target matches the source side.

Time is in seconds on the backtest's evaluation grid. An alert reaches Alertmanager at the evaluation
that makes it firing and is resolved at the first evaluation where it no longer is (Prometheus sends
both at once); Prometheus then sends the resolved alert again every minute for 15 minutes, which puts
it back into its group while the group lives (and can make another "new resolved" notification).
Arrivals at time t are handled before a group flush at the same t. Every integration is assumed to
succeed (a failing one keeps resolved alerts, and so their group, alive).

A notification that opens an incident (the group's first, or its first after everything had resolved)
is what the report counts as a page (receiver `pager`) or a ticket (receiver `ticket`).
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redline import durations, safe_yaml

Labels = tuple[tuple[str, str], ...]  # sorted (name, value) pairs: hashable, one alert's identity

# Alertmanager's defaults (config/config.go) for a route that sets no timer.
DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0
# The notification log's timestamp is taken just after the flush time: a repeat interval that is a
# multiple of group_interval is only over at the flush after (as in Alertmanager).
LOG_DELAY = 0.001
UNSUPPORTED_ROUTE_FIELDS = ("mute_time_intervals", "active_time_intervals")
# Prometheus' --rules.alert.resend-delay default, and how long it keeps sending a resolved alert.
RESEND_DELAY = 60.0
RESOLVED_RETENTION = 15 * 60.0

_MATCHER_RE = re.compile(
    r"""\s*([a-zA-Z_][a-zA-Z0-9_]*|"(?:[^"\\]|\\.)*")\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|[^,}]*?)\s*(?:,|$)"""
)


class ConfigError(ValueError):
    """alertmanager.yml cannot be modelled; the message is one line naming the file and the field."""


def labels_of(mapping: Mapping[str, str]) -> Labels:
    """The hashable identity of a label set (empty values dropped, as Alertmanager does)."""
    return tuple(sorted((k, v) for k, v in mapping.items() if v != ""))


def parse_duration(text: object, where: str) -> float:
    """Seconds in an Alertmanager duration ('30s', '1h30m', '500ms', '0')."""
    if text == 0 or text == "0":
        return 0.0
    try:
        return float(durations.seconds(text))  # type: ignore[arg-type]  # anything else is refused below
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not a duration like 30s, 5m, 4h, 500ms") from None


# ----- matchers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Matcher:
    """name op value, op one of = != =~ !~; a missing label matches as the empty string."""

    name: str
    op: str
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return bytes(text[1:-1], "utf-8").decode("unicode_escape")
    return text


def parse_matchers(text: str, where: str) -> list[Matcher]:
    """One entry of a `matchers:` list: 'a="b"', 'a=~"x|y", b!=c' or '{a="b"}'."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    matchers, position = [], 0
    while position < len(body):
        match = _MATCHER_RE.match(body, position)
        if not match or match.end() == position:
            raise ConfigError(f"{where}: cannot read matcher {text!r}")
        name, op, value = _unquote(match.group(1)), match.group(2), _unquote(match.group(3).strip())
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as err:
                raise ConfigError(f"{where}: {text!r}: bad regular expression: {err}") from None
        matchers.append(Matcher(name, op, value))
        position = match.end()
    return matchers


def _matchers_of(node: Mapping[str, Any], prefix: str, where: str) -> list[Matcher]:
    """`<prefix>matchers` plus the legacy `<prefix>match` (equality) and `<prefix>match_re` (regex)."""
    found: list[Matcher] = []
    for item in node.get(f"{prefix}matchers") or []:
        found += parse_matchers(str(item), f"{where}.{prefix}matchers")
    for name, value in (node.get(f"{prefix}match") or {}).items():
        found.append(Matcher(str(name), "=", str(value)))
    for name, value in (node.get(f"{prefix}match_re") or {}).items():
        found.append(Matcher(str(name), "=~", str(value)))
    return found


def all_match(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)


# ----- the configuration ----------------------------------------------------------------------------


@dataclass
class Route:
    """One node of the routing tree with its options resolved (inherited from the parent)."""

    key: str
    matchers: list[Matcher]
    receiver: str
    group_by: frozenset[str]
    group_by_all: bool
    group_wait: float
    group_interval: float
    repeat_interval: float
    continue_: bool = False
    routes: list[Route] = field(default_factory=list)

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes an alert is delivered to (Alertmanager's Route.Match)."""
        if not all_match(self.matchers, labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            matched = child.match(labels)
            found += matched
            if matched and not child.continue_:
                break
        return found or [self]

    def group_labels(self, labels: Mapping[str, str]) -> Labels:
        if self.group_by_all:
            return labels_of(labels)
        return labels_of({k: v for k, v in labels.items() if k in self.group_by})


@dataclass(frozen=True)
class InhibitRule:
    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]

    def equal_key(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        return tuple(labels.get(name, "") for name in self.equal)


@dataclass(frozen=True)
class AlertInfo:
    """What the configuration does with one label set, worked out once."""

    mapping: dict[str, str]
    routes: tuple[tuple[Route, Labels, tuple[str, Labels]], ...]  # (route, group labels, group id)
    sources: tuple[tuple[int, tuple[str, ...]], ...]  # inhibit rules it is a source of, its equal key
    targets: tuple[tuple[int, tuple[str, ...], bool], ...]  # ... a target of, equal key, also a source
    target_of: frozenset[int]


@dataclass
class AlertmanagerConfig:
    route: Route
    inhibit_rules: list[InhibitRule]
    receivers: dict[str, Receiver]
    file: str = "alertmanager.yml"
    _info: dict[Labels, AlertInfo] = field(default_factory=dict, repr=False, compare=False)

    def info(self, labels: Labels) -> AlertInfo:
        found = self._info.get(labels)
        if found is None:
            mapping = dict(labels)
            routes = tuple(
                (route, route.group_labels(mapping), (route.key, route.group_labels(mapping)))
                for route in self.route.match(mapping)
            )
            rules = list(enumerate(self.inhibit_rules))
            sources = tuple((i, r.equal_key(mapping)) for i, r in rules if all_match(r.source, mapping))
            source_of = {i for i, _ in sources}
            targets = tuple(
                (i, r.equal_key(mapping), i in source_of) for i, r in rules if all_match(r.target, mapping)
            )
            found = AlertInfo(mapping, routes, sources, targets, frozenset(i for i, *_ in targets))
            self._info[labels] = found
        return found


def _route(node: Any, parent: Route | None, key: str, where: str) -> Route:
    if not isinstance(node, dict):
        raise ConfigError(f"{where}: expected a mapping")
    for name in UNSUPPORTED_ROUTE_FIELDS:
        if node.get(name):
            raise ConfigError(f"{where}.{name}: time intervals are not modelled by the backtest")
    group_by = node.get("group_by")
    if group_by is None:
        by, by_all = (parent.group_by, parent.group_by_all) if parent else (frozenset(), False)
    else:
        by, by_all = frozenset(str(x) for x in group_by), "..." in group_by
    receiver = node.get("receiver") or (parent.receiver if parent else None)
    if not receiver:
        raise ConfigError(f"{where}.receiver: missing")

    def timer(name: str, default: float) -> float:
        if name in node:
            return parse_duration(node[name], f"{where}.{name}")
        return getattr(parent, name) if parent else default

    route = Route(
        key=key,
        matchers=_matchers_of(node, "", where),
        receiver=str(receiver),
        group_by=by,
        group_by_all=by_all,
        group_wait=timer("group_wait", DEFAULT_GROUP_WAIT),
        group_interval=timer("group_interval", DEFAULT_GROUP_INTERVAL),
        repeat_interval=timer("repeat_interval", DEFAULT_REPEAT_INTERVAL),
        continue_=bool(node.get("continue", False)),
    )
    route.routes = [
        _route(child, route, f"{key}/{index}", f"{where}.routes[{index}]")
        for index, child in enumerate(node.get("routes") or [])
    ]
    return route


@dataclass(frozen=True)
class Receiver:
    integrations: int  # a receiver without any (`null`) notifies nobody
    send_resolved: bool  # one of its integrations sends resolved notifications


def _receiver(receiver: Mapping[str, Any]) -> Receiver:
    """Alertmanager's send_resolved defaults: true for webhooks and PagerDuty, false for Slack and email."""
    defaults = {"slack_configs": False, "email_configs": False}
    integrations, resolved = 0, False
    for kind, configs in receiver.items():
        if kind.endswith("_configs") and isinstance(configs, list):
            for config in configs:
                integrations += 1
                resolved |= isinstance(config, dict) and bool(
                    config.get("send_resolved", defaults.get(kind, True))
                )
    return Receiver(integrations, resolved)


def parse_config(data: Any, file: str) -> AlertmanagerConfig:
    """The model of an already parsed alertmanager.yml."""
    if not isinstance(data, dict) or "route" not in data:
        raise ConfigError(f"{file}: route: missing")
    route = _route(data["route"], None, "root", f"{file}: route")
    if route.matchers:
        raise ConfigError(f"{file}: route: the root route must not have matchers")
    rules = []
    for index, rule in enumerate(data.get("inhibit_rules") or []):
        where = f"{file}: inhibit_rules[{index}]"
        if not isinstance(rule, dict):
            raise ConfigError(f"{where}: expected a mapping")
        rules.append(
            InhibitRule(
                source=tuple(_matchers_of(rule, "source_", where)),
                target=tuple(_matchers_of(rule, "target_", where)),
                equal=tuple(str(x) for x in rule.get("equal") or ()),
            )
        )
    receivers = {str(r.get("name")): _receiver(r) for r in data.get("receivers") or [] if isinstance(r, dict)}
    missing = sorted({r.receiver for r in _walk(route)} - set(receivers))
    if missing:
        raise ConfigError(f"{file}: route: receiver {missing[0]!r} is not defined under receivers")
    return AlertmanagerConfig(route, rules, receivers, file)


def load_config(path: Path) -> AlertmanagerConfig:
    """Read and model an alertmanager.yml; ConfigError (one line) when it cannot be."""
    try:
        data = safe_yaml.load_file(path)
    except safe_yaml.YamlInputError as err:
        raise ConfigError(str(err)) from None
    return parse_config(data, path.name)


def _walk(route: Route) -> Iterable[Route]:
    yield route
    for child in route.routes:
        yield from _walk(child)


def receiver_of(config: AlertmanagerConfig, labels: Mapping[str, str]) -> list[str]:
    """The receivers an alert with these labels is routed to (what `amtool config routes test` says)."""
    return [route.receiver for route in config.route.match(labels)]


# ----- the timeline ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Episode:
    """One firing episode of one alert as Prometheus sends it to Alertmanager."""

    labels: Labels
    active_at: float  # when the condition first held: the alert's startsAt
    start: float  # the evaluation at which it became firing: it reaches Alertmanager
    end: float | None  # the first evaluation at which it no longer fired; None: still firing


@dataclass(frozen=True)
class Notification:
    """One notification delivered to a receiver."""

    time: float
    receiver: str
    group_key: str
    group_labels: Labels
    firing: tuple[Labels, ...]
    resolved: tuple[Labels, ...]
    opens: bool  # opens an incident: the group's first notification, or its first after all resolved
    reason: str

    def alertnames(self) -> set[str]:
        return {dict(labels).get("alertname", "") for labels in self.firing}


@dataclass
class _Alert:
    labels: Labels
    starts_at: float
    ends_at: float | None  # None while firing


@dataclass
class _Group:
    route: Route
    labels: Labels
    key: str
    origin: float  # time of its first flush: flushes follow at origin + k * group_interval
    alerts: dict[Labels, _Alert] = field(default_factory=dict)
    token: int = 0  # the current scheduled flush; older heap entries are stale
    next_flush: float = math.inf
    changed: bool = True  # alerts or inhibitions changed since the last flush
    destroyed: bool = False

    def grid_at_or_after(self, t: float) -> float:
        """The first flush time of this group's timer at or after t."""
        if t <= self.origin:
            return self.origin
        steps = math.ceil((t - self.origin) / self.route.group_interval - 1e-9)
        return self.origin + steps * self.route.group_interval


@dataclass
class _LogEntry:
    firing: frozenset[Labels]
    resolved: frozenset[Labels]
    timestamp: float


class Simulation:
    """Run a timeline of episodes through the configuration; `notifications` holds what went out."""

    def __init__(self, config: AlertmanagerConfig, until: float) -> None:
        self.config = config
        self.until = until
        self.notifications: list[Notification] = []
        self._heap: list[tuple[float, int, int, Any]] = []
        self._seq = itertools.count()
        self._groups: dict[tuple[str, Labels], _Group] = {}
        self._log: dict[tuple[str, str], _LogEntry] = {}
        # Source alerts of the inhibition rules that are firing now: rule index -> equal key -> alerts.
        self._sources: list[dict[tuple[str, ...], set[Labels]]] = [{} for _ in config.inhibit_rules]

    # Events: 0 an alert fires, resolves or is sent again (before flushes at the same time), 1 a flush.
    def run(self, episodes: Iterable[Episode]) -> list[Notification]:
        episodes = sorted(episodes, key=lambda e: (e.start, e.labels))
        next_start: dict[Labels, float] = {}
        for episode in reversed(episodes):
            if episode.start < self.until:
                self._push(episode.start, 0, ("fire", episode))
                if episode.end is not None and episode.end < self.until:
                    self._push(episode.end, 0, ("resolve", episode))
                    self._resends(episode, next_start.get(episode.labels, math.inf))
            next_start[episode.labels] = episode.start
        while self._heap:
            t, kind, _, payload = heapq.heappop(self._heap)
            if t >= self.until:
                break
            if kind == 0:
                self._alert_event(t, *payload)
            else:
                group, token = payload
                if token == group.token and not group.destroyed:
                    self._flush(t, group)
        return self.notifications

    def _resends(self, episode: Episode, refires: float) -> None:
        """Prometheus sends a resolved alert again every resend delay for 15 minutes (until it fires
        again): each one re-enters its group if the group is still alive, as a resolved alert."""
        assert episode.end is not None
        t = episode.end + RESEND_DELAY
        while t <= episode.end + RESOLVED_RETENTION and t < min(refires, self.until):
            self._push(t, 0, ("resend", episode))
            t += RESEND_DELAY

    def _push(self, t: float, kind: int, payload: Any) -> None:
        heapq.heappush(self._heap, (t, kind, next(self._seq), payload))

    def _schedule(self, group: _Group, t: float) -> None:
        group.token += 1
        group.next_flush = t
        self._push(t, 1, (group, group.token))

    def _wake(self, group: _Group, t: float) -> None:
        """Something changed at t: the group flushes at its next timer tick instead of sleeping."""
        group.changed = True
        tick = group.grid_at_or_after(t)
        if tick < group.next_flush:
            self._schedule(group, tick)

    def _alert_event(self, t: float, what: str, episode: Episode) -> None:
        info = self.config.info(episode.labels)
        firing = what == "fire"
        if what != "resend":
            self._update_sources(info, episode.labels, firing, t)
        for route, group_labels, key in info.routes:
            group = self._groups.get(key)
            if group is None:
                # A resolved alert whose group is gone makes a group that flushes at once, sends
                # nothing (nothing is firing) and is destroyed: nobody is notified.
                if not firing:
                    continue
                wait = route.group_wait
                if episode.active_at + route.group_wait < t:
                    wait = 0.0  # Alertmanager flushes at once an alert older than group_wait
                group = _Group(route, group_labels, f"{route.key}:{dict(group_labels)}", origin=t + wait)
                self._groups[key] = group
                self._schedule(group, t + wait)
            alert = group.alerts.get(episode.labels)
            if firing:
                group.alerts[episode.labels] = _Alert(episode.labels, episode.active_at, None)
            elif what == "resend":
                if alert is not None:
                    continue  # still there (firing again, or resolved and not yet notified)
                group.alerts[episode.labels] = _Alert(episode.labels, episode.active_at, episode.end)
            elif alert is not None:
                alert.ends_at = t
            self._wake(group, t)

    def _update_sources(self, info: AlertInfo, labels: Labels, firing: bool, t: float) -> None:
        changed = False
        for index, equal in info.sources:
            bucket = self._sources[index].setdefault(equal, set())
            if firing and labels not in bucket:
                bucket.add(labels)
                changed = True
            elif not firing and labels in bucket:
                bucket.discard(labels)
                changed = True
        if changed:  # any group's muted alerts may change
            for group in self._groups.values():
                self._wake(group, t)

    def muted(self, labels: Labels) -> bool:
        """Is an alert with these labels inhibited now (Alertmanager's Inhibitor.Mutes)?"""
        for index, equal, both_sides in self.config.info(labels).targets:
            for source in self._sources[index].get(equal, ()):
                if both_sides and index in self.config.info(source).target_of:
                    continue  # a source that is a target too cannot inhibit an alert that is a source too
                return True
        return False

    def _flush(self, t: float, group: _Group) -> None:
        route = group.route
        log_key = (group.key, route.receiver)
        entry = self._log.get(log_key)
        repeat_due = entry is not None and entry.timestamp < t - route.repeat_interval
        if not group.changed and not repeat_due:
            # Nothing can differ from the last flush: sleep until the repeat interval is over.
            if entry is not None and entry.firing:
                self._schedule(group, group.grid_at_or_after(entry.timestamp + route.repeat_interval))
            else:
                group.next_flush = math.inf
            return
        self._schedule(group, t + route.group_interval)
        group.changed = False
        resolved_now = [a for a in group.alerts.values() if a.ends_at is not None and a.ends_at <= t]
        shown = [a for a in group.alerts.values() if not self.muted(a.labels)]
        firing = frozenset(a.labels for a in shown if a.ends_at is None or a.ends_at > t)
        resolved = frozenset(a.labels for a in shown if a.ends_at is not None and a.ends_at <= t)
        receiver = self.config.receivers[route.receiver]
        reason = (
            self._needs_update(entry, firing, resolved, route, t) if shown and receiver.integrations else None
        )
        if reason is not None:
            self._log[log_key] = _LogEntry(firing, resolved, t + LOG_DELAY)
            self.notifications.append(
                Notification(
                    time=t,
                    receiver=route.receiver,
                    group_key=group.key,
                    group_labels=group.labels,
                    firing=tuple(sorted(firing)),
                    resolved=tuple(sorted(resolved)),
                    opens=reason == "first",
                    reason=reason,
                )
            )
        for alert in resolved_now:
            del group.alerts[alert.labels]
        if not group.alerts:
            group.destroyed = True
            del self._groups[(route.key, group.labels)]

    def _needs_update(
        self,
        entry: _LogEntry | None,
        firing: frozenset[Labels],
        resolved: frozenset[Labels],
        route: Route,
        t: float,
    ) -> str | None:
        """notify/dedup_stage.go's needsUpdate; None: nothing to send."""
        if entry is None:
            return "first" if firing else None
        if not firing <= entry.firing:
            return "first" if not entry.firing else "new alerts"
        if not firing:
            return "all resolved" if entry.firing else None
        if self.config.receivers[route.receiver].send_resolved and not resolved <= entry.resolved:
            return "new resolved"
        if entry.timestamp < t - route.repeat_interval:
            return "repeat"
        return None


def simulate(config: AlertmanagerConfig, episodes: Iterable[Episode], until: float) -> list[Notification]:
    """The notifications Alertmanager sends for these episodes up to `until` (seconds)."""
    return Simulation(config, until).run(episodes)
