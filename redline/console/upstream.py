"""What the console asks Prometheus and Alertmanager: alerts as Alertmanager groups them, signals, silences.

Every Alertmanager of an HA cluster is asked and their answers merged: an alert (by fingerprint) and a
silence (by id) appear once, whichever peers know it. A peer that does not answer is reported, not fatal,
as long as one answers. Requests carry the stack's credentials when it has them (basic auth).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from redline import credentials as stack_credentials

TIMEOUT_S = 5.0


class UpstreamError(RuntimeError):
    """Prometheus or every Alertmanager failed to answer; the message says which and why."""


@dataclass(frozen=True)
class Credentials:
    """Basic-auth credentials for the stack's Prometheus and Alertmanager (None: none needed)."""

    username: str
    password: str

    def header(self) -> str:
        return stack_credentials.basic_auth(self.username, self.password)


def _request(url: str, credentials: Credentials | None, body: Any = None, method: str | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method or ("POST" if data else "GET"))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if credentials is not None:
        request.add_header("Authorization", credentials.header())
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            text = response.read()
    except urllib.error.HTTPError as err:
        detail = err.read().decode(errors="replace").strip()[:300]
        raise UpstreamError(f"{url.split('?')[0]} answered {err.code}: {detail}") from None
    except OSError as err:
        raise UpstreamError(f"{url.split('?')[0]}: {err}") from None
    return json.loads(text) if text else None


@dataclass
class Prometheus:
    """Prometheus' HTTP API (or any compatible one)."""

    url: str
    credentials: Credentials | None = None
    _external: dict[str, str] | None = field(default=None, init=False, repr=False)

    def _get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        answer = _request(f"{self.url}{path}?{query}", self.credentials)
        if answer.get("status") != "success":
            raise UpstreamError(f"{self.url}{path}: {answer.get('error', answer)}")
        return answer["data"]

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts as Prometheus sees them (Alertmanager never sees pending ones)."""
        return list(self._get("/api/v1/alerts")["alerts"])

    def external_labels(self) -> dict[str, str]:
        """Its global external_labels (asked once): Prometheus adds them to the alerts it sends, so an
        alert in Alertmanager carries them, but its ALERTS series in Prometheus does not."""
        if self._external is None:
            config = yaml.safe_load(self._get("/api/v1/status/config")["yaml"]) or {}
            labels = (config.get("global") or {}).get("external_labels") or {}
            self._external = {str(k): str(v) for k, v in labels.items()}
        return self._external

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant vector."""
        return list(self._get("/api/v1/query", query=expr)["result"])

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A range matrix: [{metric, values: [[t, "v"], ...]}]."""
        return list(
            self._get("/api/v1/query_range", query=expr, start=str(start), end=str(end), step=str(step))[
                "result"
            ]
        )


@dataclass
class Alertmanagers:
    """Every peer of the Alertmanager cluster (one URL without HA)."""

    urls: Sequence[str]
    credentials: Credentials | None = None
    _last: threading.local = field(default_factory=threading.local, repr=False, compare=False)

    @property
    def unreachable(self) -> list[str]:
        """The peers that did not answer this thread's last request (each page is served by one thread)."""
        return list(getattr(self._last, "unreachable", []))

    def _each(self, path: str) -> list[Any]:
        answers, unreachable = [], []
        for url in self.urls:
            try:
                answers.append(_request(f"{url}{path}", self.credentials))
            except UpstreamError as err:
                unreachable.append(str(err))
        self._last.unreachable = unreachable
        if not answers:
            raise UpstreamError("no Alertmanager answered: " + "; ".join(unreachable))
        return answers

    def groups(self) -> list[dict[str, Any]]:
        """Alert groups as Alertmanager groups them (labels, receiver, alerts), merged across peers."""
        merged: dict[tuple, dict[str, Any]] = {}
        for answer in self._each("/api/v2/alerts/groups?active=true&silenced=true&inhibited=true"):
            for group in answer:
                key = (group["receiver"]["name"], tuple(sorted(group["labels"].items())))
                into = merged.setdefault(key, {**group, "alerts": []})
                known = {alert["fingerprint"] for alert in into["alerts"]}
                into["alerts"] += [a for a in group["alerts"] if a["fingerprint"] not in known]
        return list(merged.values())

    def silences(self) -> list[dict[str, Any]]:
        """Every silence (any state), once per id, newest first."""
        by_id: dict[str, dict[str, Any]] = {}
        for answer in self._each("/api/v2/silences"):
            for silence in answer:
                by_id.setdefault(silence["id"], silence)
        return sorted(by_id.values(), key=lambda s: s["startsAt"], reverse=True)

    def create_silence(self, silence: dict[str, Any]) -> str:
        """Create a silence through the first peer that answers (the cluster gossips it); its id."""
        return str(self._first("/api/v2/silences", silence, "POST")["silenceID"])

    def expire_silence(self, silence_id: str) -> None:
        """Expire a silence through the first peer that answers."""
        self._first(f"/api/v2/silence/{urllib.parse.quote(silence_id)}", None, "DELETE")

    def _first(self, path: str, body: Any, method: str) -> Any:
        errors = []
        for url in self.urls:
            try:
                return _request(f"{url}{path}", self.credentials, body, method)
            except UpstreamError as err:
                errors.append(str(err))
        raise UpstreamError("; ".join(errors))


def matches(labels: dict[str, str], wanted: Iterable[tuple[str, str]]) -> bool:
    """True when every wanted label has that value (a series of the signal belongs to an alert)."""
    return all(labels.get(name) == value for name, value in wanted)
