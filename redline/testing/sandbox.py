"""A throwaway native stack on free ports, for the end-to-end tests and the alert-latency benchmark.

It runs the real `redline up` / `redline down` in a temporary run folder, with every port chosen free
on 127.0.0.1 (REDLINE_PORT_<NAME>), optionally with rules rendered by `redline generate --for-override`
and an Alertmanager configuration with shorter group timers, and gives a test or a benchmark what it
needs: URLs, fault injection through the demo's control endpoint, Prometheus and Alertmanager queries,
and the pager-sink's notifications, each with the run folder's credentials (redline/credentials.py), as
redline's own commands use them.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import xmlrpc.client
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml
from supervisor.xmlrpc import SupervisorTransport

from redline import credentials, topology
from redline.demo.cli import control_request
from redline.generate.model import parse_duration
from redline.paths import ROOT, RUN_DIR_ENV

REDLINE = [sys.executable, "-m", "redline.cli"]

STACK_COMMANDS = {"up", "down", "status"}


# Ports are drawn below the kernel's ephemeral range: a port picked there can be taken by any outgoing
# connection's local port before the service binds it, which happens when test processes run in
# parallel (make test's workers) and open many connections.
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10000
_handed_out: set[int] = set()  # never the same port twice from one process
_random = random.SystemRandom()


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _candidates() -> range:
    try:
        first_ephemeral = int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = 32768
    return range(_LOWEST, max(_LOWEST + 1000, first_ephemeral))


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now, outside the ephemeral range, not handed out
    before by this process."""
    candidates = _candidates()
    for _ in range(500):
        port = _random.choice(candidates)
        if port not in _handed_out and _bindable(port):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free port on 127.0.0.1 between {candidates.start} and {candidates.stop}")


def _free_port_pair(taken: set[int]) -> int:
    """A free port whose successor is free too (Alertmanager gossips on web port + 1)."""
    for _ in range(200):
        port = free_port()
        if port + 1 not in taken and port + 1 not in _handed_out and _bindable(port + 1):
            _handed_out.add(port + 1)
            return port
    raise RuntimeError("no pair of free ports found on 127.0.0.1")


def render_rules(for_override: str, out: Path, window_divisor: int | None = None) -> Path:
    """Render the catalogue with every `for` replaced and, with window_divisor, the SLO and history windows
    divided (`redline generate --window-divisor`; test-only); returns the rules folder."""
    divided = [] if window_divisor is None else ["--window-divisor", str(window_divisor)]
    result = subprocess.run(
        [*REDLINE, "generate", "--out", str(out), "--for-override", for_override, *divided],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"redline generate failed: {result.stderr or result.stdout}")
    return out / "prometheus" / "rules"


def alertmanager_config_with_timers(
    out: Path, group_wait: str, group_interval: str, repeat_interval: str | None = None
) -> Path:
    """A copy of alertmanager/alertmanager.yml in which no route waits longer than `group_wait` before
    a group's first notification or `group_interval` between its updates, nor, when given, longer than
    `repeat_interval` before it sends a firing group again (test-only: warnings, resolved notifications
    and repeated pages arrive in seconds instead of minutes or hours; shorter shipped timers are kept).
    Routes, matchers, receivers, inhibitions and templates are unchanged."""
    config = yaml.safe_load((ROOT / "alertmanager" / "alertmanager.yml").read_text())
    limits = [("group_wait", group_wait), ("group_interval", group_interval)]
    if repeat_interval is not None:
        limits.append(("repeat_interval", repeat_interval))
    routes = [config["route"]]
    while routes:
        route = routes.pop()
        for key, limit in limits:
            if key not in route or parse_duration(route[key]) > parse_duration(limit):
                route[key] = limit
        routes.extend(route.get("routes", []))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


class Sandbox:
    """`with Sandbox(...) as stack:` starts the native stack on free ports and always stops it."""

    def __init__(
        self,
        rules_dir: Path | None = None,
        alertmanager_config: Path | None = None,
        demo_args: str = "",
        ha: bool = False,
        only: list[str] | None = None,
        scale: bool = False,
    ) -> None:
        self.rules_dir = rules_dir
        self.alertmanager_config = alertmanager_config
        self.demo_args = demo_args
        self.ha = ha
        self.scale = scale
        self.only = only
        self.run_dir = Path(tempfile.mkdtemp(prefix="redline-sandbox-"))
        self.credentials = credentials.Credentials(self.run_dir)
        self.up_output = ""
        # Every `redline` command run through redline() uses this run folder (and its credentials).
        self.env: dict[str, str] = {RUN_DIR_ENV: str(self.run_dir)}
        taken: set[int] = set()
        for row in topology.ENDPOINTS:
            port = _free_port_pair(taken)
            taken |= {port, port + 1}
            self.env[row.env_name] = str(port)

    def port(self, name: str) -> int:
        return topology.port(name, self.env)

    @property
    def auth(self) -> dict[str, str]:
        """The basic auth that Prometheus, Alertmanager, blackbox_exporter and vmagent require."""
        return self.credentials.web_headers()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port(name)}"

    def redline(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run `redline ARGS` against this sandbox (its ports; its run folder for up/down/status)."""
        cmd = [*REDLINE, *args]
        if args[0] in STACK_COMMANDS:
            cmd.append(f"--run-dir={self.run_dir}")
        return subprocess.run(
            cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout, env={**os.environ, **self.env}
        )

    def __enter__(self) -> Sandbox:
        args = ["up"]
        if self.rules_dir:
            args.append(f"--rules-dir={self.rules_dir}")
        if self.alertmanager_config:
            args.append(f"--alertmanager-config={self.alertmanager_config}")
        if self.demo_args:
            args.append(f"--demo-args={self.demo_args}")
        if self.ha:
            args.append("--ha")
        if self.scale:
            args.append("--scale")
        if self.only:
            args.append("--only=" + ",".join(self.only))
        try:
            result = self.redline(*args)
        except BaseException:  # a timeout kills `redline up`, not the supervisord it started
            self.stop(keep=False)
            raise
        if result.returncode != 0:
            self.stop(keep=False)
            raise RuntimeError(f"redline up failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        self.up_output = result.stdout
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop(keep=exc_type is not None)

    def stop(self, keep: bool = False) -> None:
        """`redline down`; the run folder is removed unless kept for inspection (after a failure)."""
        down = self.redline("down")
        if down.returncode != 0:
            keep = True
            print(f"redline down failed ({down.returncode}): {down.stderr.strip()}", file=sys.stderr)
        if keep:
            print(f"sandbox run folder kept for inspection: {self.run_dir}", file=sys.stderr)
        else:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _supervisor(self) -> Any:
        """supervisord's XML-RPC interface (the runner's unix socket in the run folder)."""
        transport = SupervisorTransport(None, None, f"unix://{self.run_dir / 'supervisor.sock'}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def crash(self, service: str, timeout: float = 10.0) -> float:
        """SIGKILL one of the runner's services and keep it down; returns the wall-clock time it froze.

        A crash: no graceful leave (an Alertmanager peer does not tell the gossip mesh it goes). The
        process is frozen with SIGSTOP first, so it does nothing from that instant on and the TERM of the
        stop that follows stays pending; the stop makes supervisord see a stop, not a crash to restart.
        """
        supervisor = self._supervisor()
        pid = supervisor.getProcessInfo(service)["pid"]
        os.kill(pid, signal.SIGSTOP)
        frozen_at = time.time()
        supervisor.stopProcess(service, False)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while supervisor.getProcessInfo(service)["statename"] != "STOPPED":
            if time.monotonic() > deadline:
                raise RuntimeError(f"{service} still not down {timeout:.0f}s after SIGKILL")
            time.sleep(0.05)
        return frozen_at

    def halt(self, service: str) -> None:
        """Stop one of the runner's services as `supervisorctl stop` does (its stop signal, then wait):
        an orderly stop, after which it stays down until start()."""
        self._supervisor().stopProcess(service, True)

    def kill(self, service: str) -> int:
        """SIGKILL one of the runner's services as the OOM killer would; supervisord restarts it (or
        gives up on it when it keeps failing). Returns the killed pid."""
        return self.send_signal(service, signal.SIGKILL)

    def send_signal(self, service: str, signum: int) -> int:
        """Send `signum` to one of the runner's services (SIGSTOP: hung, SIGCONT: going on); its pid."""
        pid = int(self._supervisor().getProcessInfo(service)["pid"])
        os.kill(pid, signum)
        return pid

    def start(self, service: str) -> None:
        """Start a service stopped by crash() again (supervisord waits for it to stay up 1 s); a service
        that runs is left alone."""
        supervisor = self._supervisor()
        if supervisor.getProcessInfo(service)["statename"] != "RUNNING":
            supervisor.startProcess(service, True)

    def fault(self, system: str, fault: str, active: bool = True) -> None:
        """Turn a demo fault on (POST) or off (DELETE); RuntimeError with the demo's reason otherwise."""
        query = urllib.parse.urlencode({"system": system, "fault": fault})
        token = credentials.read_secret(self.credentials.path(credentials.DEMO_TOKEN_FILE))
        status, body = control_request(
            self.url("demo-control"), "POST" if active else "DELETE", f"/fault?{query}", token
        )
        if status != 200:
            error = body.get("error", body) if isinstance(body, dict) else body
            raise RuntimeError(f"fault {system} {fault}: HTTP {status}: {error}")

    def get_json(self, url: str) -> Any:
        """GET with the stack's basic auth (Prometheus and Alertmanager answer nothing without it)."""
        request = urllib.request.Request(url, headers=self.auth)
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.load(resp)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query against the sandbox's Prometheus."""
        url = f"{self.url('prometheus')}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        return list(self.get_json(url)["data"]["result"])

    def wait_sending_to_alertmanager(self, timeout: float = 30.0) -> None:
        """Until Prometheus has discovered Alertmanager: an alert that fires before that is re-sent only
        a minute later, which a test or a benchmark would count as latency."""
        deadline = time.monotonic() + timeout
        while not self.query("prometheus_notifications_alertmanagers_discovered == 1"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"Prometheus has not discovered Alertmanager within {timeout:.0f}s")
            time.sleep(0.2)

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        """Every alert the (first) Alertmanager holds, with its status (active, suppressed...)."""
        return list(self.get_json(f"{self.url('alertmanager')}/api/v2/alerts"))

    def notifications(self) -> list[dict[str, Any]]:
        """Everything the pager-sink has received, oldest first."""
        path = self.run_dir / "pager-sink" / "notifications.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def matching_alerts(
        self, alertname: str, status: str = "firing", since: int = 0, **labels: str
    ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        """(notification, alert) for every alert named `alertname` in `status` whose labels include
        `labels`, in the notifications after the first `since`, oldest first, at any path."""
        for record in self.notifications()[since:]:
            for alert in record["payload"].get("alerts", []):
                alert_labels = alert["labels"]
                if (
                    alert_labels.get("alertname") == alertname
                    and alert["status"] == status
                    and all(alert_labels.get(k) == v for k, v in labels.items())
                ):
                    yield record, alert

    def find_notification(
        self, path: str, alertname: str, status: str = "firing", since: int = 0, **labels: str
    ) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The first matching alert (see matching_alerts) that arrived at `path`, or None."""
        return next(
            (
                (r, a)
                for r, a in self.matching_alerts(alertname, status, since, **labels)
                if r["path"] == path
            ),
            None,
        )

    def alert_firing(self, alertname: str, **labels: str) -> bool:
        """True while Prometheus has the alert firing (ALERTS) with these labels."""
        matchers = [
            f'alertname="{alertname}"',
            'alertstate="firing"',
            *[f'{k}="{v}"' for k, v in labels.items()],
        ]
        return bool(self.query("ALERTS{" + ",".join(matchers) + "}"))

    def wait_for_notification(
        self,
        path: str,
        alertname: str,
        status: str = "firing",
        timeout: float = 90.0,
        since: int = 0,
        **labels: str,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Like find_notification, polling until `timeout`; raises TimeoutError listing what arrived."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.find_notification(path, alertname, status, since, **labels)
            if found:
                return found
            time.sleep(0.05)
        seen = [
            (r["path"], [(a["labels"].get("alertname"), a["status"]) for a in r["payload"].get("alerts", [])])
            for r in self.notifications()[since:]
        ]
        raise TimeoutError(
            f"no {status} {alertname} {labels} at {path} within {timeout:.0f}s; received: {seen}"
        )
