"""vmagent's flags for authentication and remote write into Prometheus, shared by the stack's own
vmagent (OTLP gateway) and the inventory's vmagent agents (redline/stack/agents.py)."""

from __future__ import annotations

from collections.abc import Iterable

from redline import credentials, storage


def auth_flags(password_file: str) -> list[str]:
    """Basic auth on vmagent's own endpoints (import, OTLP, /metrics; /health stays open): the stack's
    user and password file (vmagent reads `file://` flag values)."""
    return [f"-httpAuth.username={credentials.USER}", f"-httpAuth.password=file://{password_file}"]


def remote_write_flags(urls: Iterable[str], password_file: str) -> list[str]:
    """One remote write per URL (vmagent pairs per-URL flags by position), each with the stack's basic
    auth."""
    flags: list[str] = []
    for url in urls:
        flags += [
            f"-remoteWrite.url={url}",
            f"-remoteWrite.basicAuth.username={credentials.USER}",
            f"-remoteWrite.basicAuth.passwordFile={password_file}",
            # one sender per URL: Prometheus refuses a sample older than the series' last one, and
            # parallel senders replaying the buffer after an outage would deliver blocks out of order
            "-remoteWrite.queues=1",
            # retry at least this often, as the HA replicas do (the default backs off to a minute)
            f"-remoteWrite.retryMaxInterval={storage.REMOTE_WRITE_QUEUE['max_backoff']}",
            "-remoteWrite.forcePromProto=true",  # Prometheus' receiver speaks only its own protocol
        ]
    return flags
