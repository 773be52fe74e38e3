"""The read-only history: a Prometheus-compatible HTTP API, and whether it covers every rule's windows.

Only GET requests (`/api/v1/query_range`) are sent; nothing is ever written to the datasource. The
coverage check finds, per metric the rules read, the first evaluation at which it has data, and
refuses a backtest whose first evaluation would read further back than that (unless partial windows
are allowed): a rule that needs `rate(x[1h] offset 1w)` sees a partial or empty window otherwise.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from redline import credentials
from redline.backtest.rules import BacktestRule
from redline.generate.model import format_duration

MAX_POINTS = 2000  # points of the coverage query: the first sample is found to within span / 2000
TAG = "backtest_selector"


class DatasourceError(Exception):
    """The datasource failed or answered something unexpected (exit 1)."""


class HistoryError(ValueError):
    """The history does not cover what a rule needs (bad input, exit 2); one line."""


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Datasource:
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 300.0
    vmalert_flags: tuple[str, ...] = ()  # the same credentials for vmalert, read from files

    def get(self, path: str, params: dict[str, str]) -> dict:
        request = urllib.request.Request(
            f"{self.url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}", headers=dict(self.headers)
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = json.load(response)
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")[:300].strip()
            raise DatasourceError(f"{self.url}{path}: HTTP {err.code}: {detail}") from None
        except (OSError, ValueError) as err:
            raise DatasourceError(f"{self.url}{path}: {err}") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            raise DatasourceError(f"{self.url}{path}: unexpected answer {str(body)[:300]}")
        return dict(body["data"])

    def query_range(self, expr: str, start: int, end: int, step: int) -> list[dict]:
        data = self.get(
            "/api/v1/query_range", {"query": expr, "start": str(start), "end": str(end), "step": str(step)}
        )
        return list(data.get("result") or [])


def authenticated(
    url: str, bearer_token_file: Path | None, basic_auth_file: Path | None, folder: Path
) -> Datasource:
    """A datasource with a bearer token, or basic auth from a file holding `user:password`. vmalert
    reads the same from files (the password is written to a 0600 file in `folder`), never from its
    command line, where `ps` would show it."""
    if bearer_token_file is not None:
        token = _secret(bearer_token_file, "--bearer-token-file")
        flags: tuple[str, ...] = (f"-datasource.bearerTokenFile={bearer_token_file.resolve()}",)
        return Datasource(url, (("Authorization", f"Bearer {token}"),), vmalert_flags=flags)
    if basic_auth_file is not None:
        user, sep, password = _secret(basic_auth_file, "--basic-auth-file").partition(":")
        if not sep or not user:
            raise ValueError(f"--basic-auth-file {basic_auth_file}: expected one line user:password")
        secret = folder / "datasource-password"
        credentials.write_private(secret, password)
        flags = (f"-datasource.basicAuth.username={user}", f"-datasource.basicAuth.passwordFile={secret}")
        return Datasource(
            url, (("Authorization", credentials.basic_auth(user, password)),), vmalert_flags=flags
        )
    return Datasource(url)


def _secret(path: Path, option: str) -> str:
    try:
        text = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{option} {path}: cannot read it ({err})") from None
    if not text:
        raise ValueError(f"{option} {path}: empty")
    return text


def first_samples(
    source: Datasource, selectors: Iterable[str], start: int, end: int
) -> tuple[dict[str, int], int]:
    """Per series selector, the first time in [start, end] it selects a sample (to within the returned
    resolution, in seconds); selectors without data are absent. One range query for all of them."""
    wanted = sorted(set(selectors))
    if not wanted:
        return {}, 1
    resolution = 60 * max(1, math.ceil((end - start) / MAX_POINTS / 60))
    start -= start % resolution  # whole minutes in the message
    expr = " or ".join(
        f'label_replace(count({selector}), "{TAG}", "{index}", "", "")'
        for index, selector in enumerate(wanted)
    )
    first: dict[str, int] = {}
    for series in source.query_range(expr, start, end, resolution):
        index = series["metric"].get(TAG)
        if index is not None and series.get("values"):
            first[wanted[int(index)]] = int(float(series["values"][0][0]))
    return first, resolution


@dataclass(frozen=True)
class Coverage:
    """Which rules have data at all, and from when the history serves each."""

    no_data: frozenset[str]  # rule ids whose selectors find no sample anywhere in the history read
    resolution: int


def check_coverage(
    source: Datasource, rules: Iterable[BacktestRule], start: int, end: int, partial: bool
) -> Coverage:
    """Raise HistoryError when a rule with data reads further back than the history goes.

    The history starts at the first sample of any series the rules read: a service that appears later
    is not an error (its rules behave as they did when it was deployed)."""
    rules = list(rules)
    earliest = start - max((r.lookback for r in rules), default=0)
    first, resolution = first_samples(source, {m for r in rules for m in r.selectors}, earliest, end)
    no_data = {r.id for r in rules if not any(m in first for m in r.selectors)}
    if first and not partial:
        history_start = min(first.values())
        with_data = [r for r in rules if r.id not in no_data and r.lookback]
        worst = max(with_data, key=lambda r: r.lookback, default=None)
        if worst is not None and history_start + worst.lookback > start + resolution:
            raise HistoryError(
                f"history too short for {worst.alert_name}: it reads {format_duration(worst.lookback)} "
                f"before each evaluation and the history starts at {iso(history_start)}, so the backtest "
                f"can start at {iso(history_start + worst.lookback)} at the earliest (got --from "
                f"{iso(start)}); use a later --from/--since, or --partial-windows"
            )
    return Coverage(frozenset(no_data), resolution)
