"""A stand-in for a team's service in the adoption test: a prometheus_client app, not the demo.

    python -m redline.testing.standin --listen 127.0.0.1:PORT --name gamebook

serves /metrics (prometheus_client's default registry: process and Python metrics, plus a request
counter) and /health (200). It knows nothing of redline: Prometheus finds it only through the inventory.
"""

from __future__ import annotations

import argparse
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest

REQUESTS = Counter("standin_requests", "Requests served by the stand-in", ["path"])


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/metrics":
            body, content_type = generate_latest(), CONTENT_TYPE_LATEST
        elif self.path == "/health":
            body, content_type = b"ok\n", "text/plain"
        else:
            self.send_error(404)
            return
        REQUESTS.labels(self.path).inc()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="standin", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--name", default="service", help="shown in the first log line only")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), _Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"stand-in {args.name}: http://{args.listen}/metrics and /health", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
