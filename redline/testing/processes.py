"""Shared helpers for tests that run real processes on 127.0.0.1: tools, free ports, readiness, cleanup."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from redline.paths import ROOT
from redline.testing.sandbox import free_port as free_port  # re-exported for the tests
from redline.tools import binary

TOOLS_BIN = ROOT / ".tools" / "bin"


def tool(name: str) -> str:
    """Path of a pinned binary (.tools/bin first, then PATH); fails the test clearly when missing."""
    found = binary(name)
    if found is None:
        raise AssertionError(f"{name} not found in {TOOLS_BIN} or on PATH; run 'make setup'")
    return found


def http_get(url: str, timeout: float = 5.0, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """GET a URL (with `headers`, e.g. the stack's basic auth); returns (status, body). Connection errors
    raise OSError."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers or {}), timeout=timeout
        ) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.2, what: str = "condition"):
    """Poll predicate() until it returns a truthy value; returns it, or fails naming `what`."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as err:  # polling tolerates transient errors
            last_error = err
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last error: {last_error}")


def wait_http_ok(url: str, timeout: float = 30.0) -> None:
    """Wait until GET url answers 200."""
    wait_until(lambda: http_get(url, timeout=2)[0] == 200, timeout=timeout, what=f"200 from {url}")


@contextlib.contextmanager
def running(
    cmd: list[str],
    ready_url: str | None = None,
    log: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
    cwd: Path | None = None,
    headers: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen]:
    """Run a process for the duration of a with-block; wait for ready_url (requested with `headers`);
    always terminate it."""
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        cmd,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        cwd=cwd,
    )
    try:
        if ready_url:
            try:
                wait_until(
                    lambda: proc.poll() is None and http_get(ready_url, 2, headers)[0] == 200,
                    timeout=timeout,
                    what=f"{cmd[0]} ready at {ready_url}",
                )
            except AssertionError:
                if proc.poll() is not None and log:
                    tail = log.read_text()[-2000:]
                    raise AssertionError(f"{cmd[0]} exited {proc.returncode}: {tail}") from None
                raise
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if log:
            out.close()  # type: ignore[union-attr]


def prom_query(base_url: str, expr: str) -> list[dict]:
    """Instant query against a real Prometheus; returns the result vector."""
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    status, body = http_get(url)
    assert status == 200, f"query {expr!r} failed: {status} {body[:300]}"
    return json.loads(body)["data"]["result"]
