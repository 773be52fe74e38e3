"""The demo's control endpoint: list faults, turn them on (POST) and off (DELETE).

GET    /faults                          every fault with its state and the alerts it should trip
POST   /fault?system=SYSTEM&fault=FAULT turn a fault on
DELETE /fault?system=SYSTEM&fault=FAULT turn it off
GET    /systems                         the /metrics URL of every simulated system

A fault that cannot be turned on or off (a database fault without --pipeline-dsn, a role without the
privilege it needs) answers 409, 403 or 503 with {"error": ...}, and its state stays as it was.

POST and DELETE need the control token (`Authorization: Bearer TOKEN`, `redline demo --control-token-file`),
else 401; the GETs only read, and stay open on the loopback address the demo binds.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from urllib.parse import parse_qs

from prometheus_client import CollectorRegistry, Gauge

from redline import credentials
from redline.demo.faults import FAULT_ALERTS, FAULTS
from redline.demo.system import FaultError, Response, SimulatedSystem
from redline.telemetry.web import MetricsServer, serve


def _json(status: int, payload: object) -> Response:
    return status, "application/json", (json.dumps(payload, indent=1) + "\n").encode()


class SystemServer:
    """The HTTP server of one simulated system; stopped while a 'down' fault makes it unreachable."""

    def __init__(self, system: SimulatedSystem, host: str, port: int) -> None:
        self.system = system
        self.host = host
        self.port = port
        self.url = ""
        self._server: MetricsServer | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Serve /metrics and /health (binds the same port again after a stop)."""
        with self._lock:
            if self._server is None:
                listen = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
                self._server = serve(self.system.registry, listen, routes={"/health": self.system.health})
                self.port = self._server.port  # a requested port 0 stays the same port on restart
                self.url = self._server.metrics_url

    def stop(self) -> None:
        with self._lock:
            if self._server is not None:
                self._server.shutdown()
                self._server = None


class Control:
    """Routes of the control server over the running systems (by control name)."""

    def __init__(self, servers: Mapping[str, SystemServer], token: str) -> None:
        self.servers = servers
        self.token = token
        self.systems = {name: server.system for name, server in servers.items()}
        self.registry = CollectorRegistry(auto_describe=False)
        self._active = Gauge(
            "redline_demo_fault_active",
            "1 while a demo fault is injected.",
            ["system", "fault"],
            registry=self.registry,
        )
        for system, faults in FAULTS.items():
            if system in self.systems:
                for fault in faults:
                    self._active.labels(system=system, fault=fault).set(0)

    def routes(self) -> dict:
        return {
            "/faults": self.faults,
            "/fault": self.fault,
            "/systems": self.list_systems,
            "/health": self.health,
        }

    def health(self, environ: dict) -> Response:
        return 200, "text/plain; charset=utf-8", b"ok\n"

    def list_systems(self, environ: dict) -> Response:
        return _json(200, {name: server.url for name, server in self.servers.items()})

    def faults(self, environ: dict) -> Response:
        rows = [
            {
                "system": system,
                "fault": fault,
                "description": what,
                "alerts": [
                    {"alert": name, "severity": severity}
                    for name, severity in FAULT_ALERTS.get((system, fault), ())
                ],
                "active": system in self.systems and self.systems[system].faulty(fault),
            }
            for system, faults in FAULTS.items()
            for fault, what in faults.items()
        ]
        return _json(200, rows)

    def fault(self, environ: dict) -> Response:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("POST", "DELETE"):
            return _json(405, {"error": "use POST to inject a fault, DELETE to clear it"})
        if not credentials.token_matches(environ.get("HTTP_AUTHORIZATION"), self.token):
            return _json(401, {"error": "the control token is required (Authorization: Bearer TOKEN)"})
        query = parse_qs(environ.get("QUERY_STRING", ""))
        system = (query.get("system") or [""])[0]
        fault = (query.get("fault") or [""])[0]
        if system not in FAULTS:
            return _json(404, {"error": f"unknown system {system!r}; choose from {', '.join(FAULTS)}"})
        if fault not in FAULTS[system]:
            return _json(
                404,
                {"error": f"unknown fault {fault!r} for {system}; choose from {', '.join(FAULTS[system])}"},
            )
        if system not in self.systems:
            return _json(409, {"error": f"system {system!r} is not running in this demo"})
        active = method == "POST"
        try:
            self.systems[system].set_fault(fault, active)
        except FaultError as err:
            action = "inject" if active else "clear"
            return _json(err.status, {"error": f"cannot {action} {system} {fault}: {err}"})
        if fault == "down" and self.systems[system].stops_when_down:
            if active:
                self.servers[system].stop()
            else:
                self.servers[system].start()
        self._active.labels(system=system, fault=fault).set(1 if active else 0)
        return _json(200, {"system": system, "fault": fault, "active": active})
