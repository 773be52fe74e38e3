"""Bundle a guide's browser code with the pinned esbuild and serve it as a site does: the page, and
`POST /v1/metrics` forwarded to the OTLP gateway on the same origin (docs/instrumenting/browser.md: what an
nginx `location = /v1/metrics { proxy_pass ...; }` does), so the browser needs no CORS."""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

from redline.testing.snippets import write_snippets

from .conftest import NODE_DIR, node_modules

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>GameBook</title><link rel="icon" href="data:,"></head>
<body><p>GameBook page</p><script src="bundle.js"></script></body></html>
"""


def bundle(guide: Path, entry: str, out: Path) -> Path:
    """esbuild the guide's blocks (written under tests/clients/node/.build so that node_modules resolves)
    into out/bundle.js next to an index.html."""
    esbuild = node_modules() / ".bin" / "esbuild"
    build = NODE_DIR / ".build" / uuid.uuid4().hex
    try:
        files = write_snippets(guide, build)
        result = subprocess.run(
            [str(esbuild), str(files[entry]), "--bundle", "--format=iife", f"--outfile={out / 'bundle.js'}"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    finally:
        shutil.rmtree(build, ignore_errors=True)
    (out / "index.html").write_text(PAGE)
    return out


@contextlib.contextmanager
def serve_site(folder: Path, otlp_url: str, otlp_headers: dict[str, str]) -> Iterator[str]:
    """`folder` served on 127.0.0.1, with POST /v1/metrics forwarded to `otlp_url` with `otlp_headers`
    (the gateway's credentials stay on the server, never in the page); yields the base URL."""
    handler = functools.partial(_SiteHandler, otlp_url, otlp_headers, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _SiteHandler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, otlp_url: str, otlp_headers: dict[str, str], *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.otlp_url, self.otlp_headers = otlp_url, otlp_headers
        super().__init__(*args, **kwargs)

    def do_POST(self) -> None:
        if self.path != "/v1/metrics":
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        request = urllib.request.Request(
            self.otlp_url,
            data=body,
            headers={**self.otlp_headers, "Content-Type": self.headers["Content-Type"]},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                status, answer = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, answer = err.code, err.read()
        self.send_response(status)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: object) -> None:
        return
