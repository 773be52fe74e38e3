"""The alert ledger: every notification a webhook receiver gets, kept in SQLite or PostgreSQL.

Alertmanager has no notification history. The pager-sink writes each notification it receives here
(one row per notification, one per alert in it); the console and `redline ledger` read the figures the
next morning asks for: pages and tickets per alert per week, flapping (fire/resolve cycles per day), time
to resolve, episodes that resolved without anyone acting, and the noisiest alerts. Actions taken in the
console (acknowledgements, silences) are recorded beside them.

An episode is one firing of one alert: its fingerprint and its startsAt. A URL names the store:
`sqlite:///path/ledger.db` (the default, WAL mode so readers never block the writer) or
`postgresql://...` (psycopg). The schema is created on first use.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import statistics
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

RECEIVER_KINDS = {"pager": "pages", "ticket": "tickets"}  # receiver name -> what its notifications are
SCHEMA = (
    """CREATE TABLE IF NOT EXISTS notifications (
        id {serial} PRIMARY KEY, received_at DOUBLE PRECISION NOT NULL, receiver TEXT NOT NULL,
        group_key TEXT NOT NULL, status TEXT NOT NULL, payload TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS alert_events (
        notification_id BIGINT NOT NULL REFERENCES notifications (id), fingerprint TEXT NOT NULL,
        alertname TEXT NOT NULL, severity TEXT NOT NULL, system TEXT NOT NULL, status TEXT NOT NULL,
        starts_at DOUBLE PRECISION NOT NULL, ends_at DOUBLE PRECISION, labels TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS alert_events_episode ON alert_events (fingerprint, starts_at)",
    """CREATE TABLE IF NOT EXISTS actions (
        at DOUBLE PRECISION NOT NULL, kind TEXT NOT NULL, fingerprint TEXT NOT NULL,
        starts_at DOUBLE PRECISION, author TEXT NOT NULL, detail TEXT NOT NULL)""",
)
ACTION_KINDS = ("ack", "silence", "expire")
# The alerts of the notifications received in a window [?, ?).
IN_WINDOW = (
    " FROM alert_events e JOIN notifications n ON n.id = e.notification_id"
    " WHERE n.received_at >= ? AND n.received_at < ?"
)


class LedgerError(ValueError):
    """A ledger URL that cannot be used, or a payload that is not an Alertmanager notification."""


def parse_time(text: str | None) -> float | None:
    """Unix seconds of an Alertmanager timestamp; None for its zero time (a firing alert's endsAt)."""
    if not text or text.startswith("0001-01-01"):
        return None
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class _Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def commit(self) -> None: ...
    def close(self) -> None: ...


@dataclass
class AlertFigures:
    """What the ledger knows about one alert name over a time window."""

    alertname: str
    system: str
    severity: str
    pages: int = 0
    tickets: int = 0
    episodes: int = 0
    resolved: int = 0
    resolved_without_action: int = 0
    most_episodes_in_a_day: int = 0
    median_seconds_to_resolve: float | None = None
    pages_per_week: dict[str, int] = field(default_factory=dict)
    tickets_per_week: dict[str, int] = field(default_factory=dict)

    @property
    def noise(self) -> int:
        """Pages count most, then tickets, then flapping episodes."""
        return 10 * self.pages + 3 * self.tickets + self.episodes


@dataclass(frozen=True)
class Action:
    """Something on-call did about an alert: acknowledged it, silenced it, expired a silence."""

    kind: str  # one of ACTION_KINDS
    fingerprint: str
    starts_at: float | None  # the episode acted on; None: every episode of the fingerprint (a silence)
    author: str
    detail: str
    at: float


@dataclass
class Episode:
    """One firing of one alert, as the notifications show it."""

    fingerprint: str
    alertname: str
    labels: dict[str, str]
    starts_at: float
    ends_at: float | None
    receivers: set[str] = field(default_factory=set)
    notified: int = 0
    acted: bool = False


class Ledger:
    """A ledger store; thread-safe for one process (the pager-sink's request threads)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        if url.startswith("sqlite:///"):
            path = Path(url.removeprefix("sqlite:///"))
            if not path.parent.is_dir():
                raise LedgerError(f"ledger {url}: no folder {path.parent}")
            self._conn: _Connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._param, serial = "?", "INTEGER"
            path.chmod(0o600)
        elif url.startswith(("postgresql://", "postgres://")):
            import psycopg  # only when a PostgreSQL ledger is configured

            self._conn = psycopg.connect(url, autocommit=True)
            self._param, serial = "%s", "BIGSERIAL"
        else:
            raise LedgerError(f"ledger {url!r}: use sqlite:///PATH or postgresql://...")
        for statement in SCHEMA:
            self._conn.execute(statement.format(serial=serial))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One transaction (one write to disk) for a notification and its alerts; rolled back on error."""
        self._conn.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _sql(self, text: str) -> str:
        return text.replace("?", self._param)

    # ----- writing ------------------------------------------------------------------------------------

    def record(self, receiver: str, payload: dict[str, Any], received_at: float) -> int:
        """Store one Alertmanager webhook notification; returns its id. LedgerError if it is not one."""
        alerts = payload.get("alerts")
        if not isinstance(alerts, list):
            raise LedgerError("not an Alertmanager notification: no 'alerts' list")
        rows = [_event_row(alert) for alert in alerts]
        receiver = str(payload.get("receiver") or receiver)
        with self._lock, self._transaction():
            cursor = self._conn.execute(
                self._sql(
                    "INSERT INTO notifications (received_at, receiver, group_key, status, payload)"
                    " VALUES (?, ?, ?, ?, ?) RETURNING id"
                ),
                (received_at, receiver, str(payload.get("groupKey", "")), str(payload.get("status", "")),
                 json.dumps(payload, sort_keys=True)),
            )  # fmt: skip
            notification_id = int(cursor.fetchone()[0])
            for row in rows:
                self._conn.execute(
                    self._sql(
                        "INSERT INTO alert_events (notification_id, fingerprint, alertname, severity, system,"
                        " status, starts_at, ends_at, labels) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    ),
                    (notification_id, *row),
                )
        return notification_id

    def act(self, action: Action) -> None:
        """Record an action taken on an alert (ack, silence, expire)."""
        if action.kind not in ACTION_KINDS:
            raise LedgerError(f"unknown action {action.kind!r}; one of {', '.join(ACTION_KINDS)}")
        with self._lock:
            self._conn.execute(
                self._sql(
                    "INSERT INTO actions (at, kind, fingerprint, starts_at, author, detail)"
                    " VALUES (?, ?, ?, ?, ?, ?)"
                ),
                (action.at, action.kind, action.fingerprint, action.starts_at, action.author, action.detail),
            )

    # ----- reading ------------------------------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return list(self._conn.execute(self._sql(sql), params).fetchall())

    def count(self) -> int:
        """Number of notifications stored."""
        return int(self._rows("SELECT count(*) FROM notifications")[0][0])

    def episodes(self, since: float, until: float) -> list[Episode]:
        """Every episode with a notification received in [since, until), oldest first."""
        columns = "e.fingerprint, e.alertname, e.labels, e.status, e.starts_at, e.ends_at, n.receiver"
        events = self._rows(f"SELECT {columns}{IN_WINDOW} ORDER BY n.received_at", (since, until))
        acted = {(fp, start) for fp, start in self._rows("SELECT fingerprint, starts_at FROM actions")}
        acted_any = {fp for fp, start in acted if start is None}
        episodes: dict[tuple[str, float], Episode] = {}
        for fingerprint, alertname, labels, status, starts_at, ends_at, receiver in events:
            key = (fingerprint, starts_at)
            episode = episodes.get(key)
            if episode is None:
                episode = episodes[key] = Episode(fingerprint, alertname, json.loads(labels), starts_at, None)
                episode.acted = key in acted or fingerprint in acted_any
            episode.receivers.add(receiver)
            if status == "firing":
                episode.notified += 1
            elif ends_at is not None:
                episode.ends_at = ends_at
        return sorted(episodes.values(), key=lambda e: e.starts_at)

    def figures(
        self, since: float, until: float, episodes: list[Episode] | None = None
    ) -> list[AlertFigures]:
        """Per alert name: pages, tickets, episodes, flapping, time to resolve; noisiest first. Pass the
        window's `episodes` when you have them already (they are read otherwise)."""
        columns = "DISTINCT n.id, n.receiver, n.received_at, e.alertname"
        notified = self._rows(f"SELECT {columns}{IN_WINDOW} AND e.status = 'firing'", (since, until))
        by_alert: dict[str, AlertFigures] = {}
        if episodes is None:
            episodes = self.episodes(since, until)
        for episode in episodes:
            labels = episode.labels
            figures = by_alert.setdefault(
                episode.alertname,
                AlertFigures(episode.alertname, labels.get("system", ""), labels.get("severity", "")),
            )
            figures.episodes += 1
            if episode.ends_at is not None:
                figures.resolved += 1
                figures.resolved_without_action += not episode.acted
        for _id, receiver, received_at, alertname in notified:
            kind = RECEIVER_KINDS.get(receiver)
            if alertname not in by_alert or kind is None:
                continue
            counted = by_alert[alertname]
            week = _week(received_at)
            per_week = counted.pages_per_week if kind == "pages" else counted.tickets_per_week
            per_week[week] = per_week.get(week, 0) + 1
            setattr(counted, kind, getattr(counted, kind) + 1)
        _flapping_and_resolve_times(by_alert, episodes)
        return sorted(by_alert.values(), key=lambda f: (-f.noise, f.alertname))


def _event_row(alert: Any) -> tuple:
    if not isinstance(alert, dict) or not isinstance(alert.get("labels"), dict):
        raise LedgerError("not an Alertmanager notification: an alert without labels")
    labels = {str(k): str(v) for k, v in alert["labels"].items()}
    starts_at = parse_time(alert.get("startsAt"))
    if starts_at is None:
        raise LedgerError(f"alert {labels.get('alertname', '?')} has no startsAt")
    return (
        str(alert.get("fingerprint", "")),
        labels.get("alertname", ""),
        labels.get("severity", ""),
        labels.get("system", ""),
        str(alert.get("status", "")),
        starts_at,
        parse_time(alert.get("endsAt")) if alert.get("status") == "resolved" else None,
        json.dumps(labels, sort_keys=True),
    )


def _week(timestamp: float) -> str:
    year, week, _day = dt.datetime.fromtimestamp(timestamp, dt.UTC).isocalendar()
    return f"{year}-W{week:02d}"


def _flapping_and_resolve_times(by_alert: dict[str, AlertFigures], episodes: Iterable[Episode]) -> None:
    per_day: dict[tuple[str, str], int] = defaultdict(int)
    durations: dict[str, list[float]] = defaultdict(list)
    for episode in episodes:
        day = dt.datetime.fromtimestamp(episode.starts_at, dt.UTC).date().isoformat()
        per_day[(episode.alertname, day)] += 1
        if episode.ends_at is not None:
            durations[episode.alertname].append(episode.ends_at - episode.starts_at)
    for (alertname, _day), count in per_day.items():
        by_alert[alertname].most_episodes_in_a_day = max(by_alert[alertname].most_episodes_in_a_day, count)
    for alertname, values in durations.items():
        by_alert[alertname].median_seconds_to_resolve = statistics.median(values)


def as_json(figures: Sequence[AlertFigures]) -> list[dict[str, Any]]:
    """The figures as JSON-ready dicts (`redline ledger --json`)."""
    return [asdict(f) | {"noise": f.noise} for f in figures]


def iter_table(figures: Sequence[AlertFigures]) -> Iterator[str]:
    """The figures as an aligned text table, noisiest first."""
    rows = [("ALERT", "SYSTEM", "PAGES", "TICKETS", "EPISODES", "MAX/DAY", "MEDIAN TTR", "NO ACTION")]
    for f in figures:
        ttr = "-" if f.median_seconds_to_resolve is None else f"{f.median_seconds_to_resolve:.0f}s"
        rows.append((f.alertname, f.system, str(f.pages), str(f.tickets), str(f.episodes),
                     str(f.most_episodes_in_a_day), ttr, str(f.resolved_without_action)))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        yield "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
