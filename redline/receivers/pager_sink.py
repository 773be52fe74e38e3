"""`redline pager-sink`: a webhook receiver that stands in for the paging service on this machine.

Alertmanager (or any JSON webhook sender, e.g. a Slack integration pointed here) POSTs to any path; the
path names the receiver (/pager, /ticket, /watchdog, ...). Each notification is appended as one JSON line
`{"received_at": ..., "path": ..., "payload": ...}` to the --out file (fsync'ed before the answer, so a
200 means the notification is on disk) and summarised on the console, one line per alert.

GET /-/healthy answers 200; GET /notifications returns the JSON lines recorded so far.
With --ledger, every Alertmanager notification is also stored in the alert ledger
(redline/receivers/ledger.py; `redline ledger` and the console read it); a notification the ledger
cannot store is answered 500, so Alertmanager retries it.

Every request but /-/healthy needs the token of --token-file (default RUN/secrets/pager-sink-token, created
when missing): `Authorization: Bearer TOKEN`, or basic auth with TOKEN as the password, which is what a
webhook URL of the form http://alertmanager:<token>@host:port/pager sends. Otherwise 401. The notification
file is readable by its owner only (0600).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from redline import credentials, topology
from redline.paths import run_dir
from redline.receivers.ledger import Ledger, LedgerError
from redline.telemetry.web import parse_listen

MAX_BODY_BYTES = 10 * 1024 * 1024


class NotificationLog:
    """Append-only JSON-lines file; one line per notification, fsync'ed before returning."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        # O_APPEND: every write lands at the end, even if another process appends too. Owner only: a
        # notification carries the alert's labels and annotations (fchmod: a file from before kept 0644).
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.fchmod(self._fd, 0o600)

    def append(self, record: dict[str, Any]) -> None:
        line = (json.dumps(record, sort_keys=True, separators=(",", ":")) + "\n").encode()
        with self._lock:
            os.write(self._fd, line)
            os.fsync(self._fd)

    def read(self) -> bytes:
        with self._lock:
            return self.path.read_bytes()

    def close(self) -> None:
        os.close(self._fd)


def summary_lines(received_at: str, path: str, payload: Any) -> list[str]:
    """One console line per alert of an Alertmanager webhook payload (one line for other JSON)."""
    if not (isinstance(payload, dict) and isinstance(payload.get("alerts"), list)):
        return [f"{received_at} {path} non-Alertmanager JSON payload"]
    lines = []
    for alert in payload["alerts"]:
        labels = alert.get("labels", {}) if isinstance(alert, dict) else {}
        annotations = alert.get("annotations", {}) if isinstance(alert, dict) else {}
        status = alert.get("status", payload.get("status", "?")) if isinstance(alert, dict) else "?"
        others = " ".join(
            f"{k}={v}" for k, v in sorted(labels.items()) if k not in {"alertname", "severity", "system"}
        )
        lines.append(
            f"{received_at} {path} {str(status).upper()} {labels.get('severity', '-')} "
            f"{labels.get('system', '-')} {labels.get('alertname', '-')} {{{others}}} "
            f"{annotations.get('summary', '')}".rstrip()
        )
    return lines


class SinkHandler(BaseHTTPRequestHandler):
    """Records POSTs; serves health and the recorded notifications."""

    server: SinkServer

    def _authorized(self) -> bool:
        """Whether the request carries the sink's token; answers 401 when it does not."""
        if credentials.token_matches(self.headers.get("Authorization"), self.server.token):
            return True
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= MAX_BODY_BYTES:
            self.rfile.read(length)  # read, so that closing the socket does not reset the answer away
        self._answer(401, "token required\n", headers={"WWW-Authenticate": 'Bearer realm="pager-sink"'})
        return False

    def do_POST(self) -> None:
        if not self._authorized():
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY_BYTES:
            self._answer(400, f"body must be 1..{MAX_BODY_BYTES} bytes\n")
            return
        body = self.rfile.read(length)
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            self._answer(400, f"body is not JSON: {err}\n")
            return
        now = dt.datetime.now(dt.UTC)
        received_at = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        path = self.path.split("?", 1)[0]
        ledger = self.server.ledger
        if ledger is not None and isinstance(payload, dict) and isinstance(payload.get("alerts"), list):
            try:
                ledger.record(path.strip("/"), payload, now.timestamp())
            except LedgerError as err:
                self._answer(400, f"not stored in the ledger: {err}\n")
                return
            except Exception as err:  # the database failed: make Alertmanager send it again
                self._answer(500, f"ledger: {type(err).__name__}: {err}\n")
                return
        self.server.log.append({"received_at": received_at, "path": path, "payload": payload})
        for line in summary_lines(received_at, path, payload):
            print(line, flush=True)
        self._answer(200, "ok")  # exactly what Slack answers; its integration checks the body

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/-/healthy":
            self._answer(200, "OK\n")
        elif not self._authorized():
            return
        elif path == "/notifications":
            self._answer(200, self.server.log.read(), "application/x-ndjson")
        else:
            self._answer(404, "not found; POST notifications to any path, GET /notifications\n")

    def _answer(
        self,
        status: int,
        body: str | bytes,
        content_type: str = "text/plain",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the per-alert summary lines are the console output


class SinkServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], log: NotificationLog, token: str, ledger: Ledger | None = None
    ) -> None:
        super().__init__(address, SinkHandler)
        self.log = log
        self.token = token
        self.ledger = ledger


def listen_address(value: str) -> tuple[str, int]:
    """argparse type: HOST:PORT as every redline server reads it (redline.telemetry.web.parse_listen)."""
    try:
        return parse_listen(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="redline pager-sink",
        description="Receive Alertmanager webhook notifications and append them to a JSON-lines file.",
    )
    parser.add_argument(
        "--listen",
        type=listen_address,
        default=("127.0.0.1", topology.endpoint("pager-sink").port),
        help=f"HOST:PORT to listen on (default 127.0.0.1:{topology.endpoint('pager-sink').port})",
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON-lines file to append notifications to")
    parser.add_argument(
        "--ledger",
        metavar="URL",
        help="also store notifications in this alert ledger (sqlite:///PATH or postgresql://)",
    )
    default_token = credentials.secret_path(run_dir(), credentials.PAGER_SINK_TOKEN_FILE)
    parser.add_argument(
        "--token-file",
        type=Path,
        default=default_token,
        help="file with the token every request but /-/healthy must carry (default RUN/secrets/"
        f"{credentials.PAGER_SINK_TOKEN_FILE} of the run folder, REDLINE_RUN_DIR or .run; created when "
        "missing)",
    )
    args = parser.parse_args(argv)

    if not args.out.parent.is_dir():
        print(f"redline pager-sink: --out {args.out}: no folder {args.out.parent}", file=sys.stderr)
        return 2
    try:
        token = credentials.ensure_secret(args.token_file, make_folder=args.token_file == default_token)
    except credentials.CredentialsError as err:
        print(f"redline pager-sink: --token-file {err}", file=sys.stderr)
        return 2
    try:
        log = NotificationLog(args.out)
    except OSError as err:
        print(f"redline pager-sink: --out {args.out}: {err.strerror}", file=sys.stderr)
        return 2
    try:
        ledger = Ledger(args.ledger) if args.ledger else None
    except (LedgerError, OSError) as err:
        log.close()
        print(f"redline pager-sink: --ledger: {err}", file=sys.stderr)
        return 2
    host, port = args.listen
    try:
        server = SinkServer((host, port), log, token, ledger)
    except OSError as err:
        log.close()
        print(f"redline pager-sink: cannot listen on {host}:{port}: {err.strerror}", file=sys.stderr)
        return 1

    def stop(_signum: int, _frame: object) -> None:
        # shutdown() waits for serve_forever to return, so it must run outside the serving thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    print(f"redline pager-sink: listening on http://{host}:{port}/, appending to {args.out}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        log.close()
        if ledger is not None:
            ledger.close()
    return 0
