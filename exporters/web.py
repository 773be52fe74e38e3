"""The small HTTP server every redline exporter uses: /metrics, extra routes, optional TLS and basic auth.

TLS and basic auth come from a web-config YAML in the spirit of Prometheus's exporter-toolkit:

    tls_server_config:
      cert_file: /etc/redline/tls.crt
      key_file: /etc/redline/tls.key
      client_ca_file: /etc/redline/ca.crt        # optional
      client_auth_type: RequireAndVerifyClientCert  # optional, default NoClientCert
      min_version: TLS12                          # optional, TLS12 or TLS13
    basic_auth_users:
      prometheus: $2b$12$...                      # bcrypt hash, e.g. htpasswd -nBC 12 ''
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import hashlib
import html
import io
import ipaddress
import logging
import queue
import re
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import bcrypt
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, choose_encoder, gzip_accepted
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

log = logging.getLogger(__name__)

Handler = Callable[[dict], tuple[int, str, bytes]]

_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version"}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_MAX_BODY = 1 << 20  # routes take small requests; a larger body is refused
_PLAIN_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")  # the same in every escaping scheme
_GZIP_LEVEL = 6  # Go's (node_exporter's) default; prometheus_client uses 9 for ~1% smaller bodies


class WebConfigError(ValueError):
    """A web-config file that cannot be used; the message names the file and the field."""


def parse_listen(value: str) -> tuple[str, int]:
    """Parse "HOST:PORT", ":PORT" (127.0.0.1) or "[IPv6]:PORT" into (host, port)."""
    hint = "expected HOST:PORT, e.g. 127.0.0.1:9110, :9110 or [::1]:9110"
    text = value.strip()
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or not text[close + 1 :].startswith(":"):
            raise ValueError(f"invalid listen address {value!r}: {hint}")
        host, port_text = text[1:close], text[close + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"invalid listen address {value!r}: {host!r} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"invalid listen address {value!r}: missing port; {hint}")
        if ":" in host:
            raise ValueError(
                f"invalid listen address {value!r}: put IPv6 addresses in brackets, e.g. [::1]:9110"
            )
        host = host or "127.0.0.1"
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"invalid listen address {value!r}: port {port_text!r} is not a number 0-65535")
    return host, int(port_text)


@dataclass
class WebConfig:
    """Parsed web-config: an optional TLS context and bcrypt-hashed basic-auth users."""

    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)


def load_web_config(path: str) -> WebConfig:
    """Read and validate a web-config YAML file; raises WebConfigError naming the file and field."""
    try:
        raw = yaml.safe_load(Path(path).read_text())
    except OSError as err:
        raise WebConfigError(f"web-config {path}: cannot read: {err.strerror or err}") from None
    except yaml.YAMLError as err:
        raise WebConfigError(f"web-config {path}: invalid YAML: {str(err).splitlines()[0]}") from None
    raw = raw or {}
    if not isinstance(raw, dict):
        raise WebConfigError(f"web-config {path}: expected a mapping at the top level")
    unknown = set(raw) - {"tls_server_config", "basic_auth_users"}
    if unknown:
        raise WebConfigError(
            f"web-config {path}: unknown key {sorted(unknown)[0]!r} "
            "(supported: tls_server_config, basic_auth_users)"
        )
    config = WebConfig()
    tls = raw.get("tls_server_config")
    if tls is not None:
        config.ssl_context = _tls_context(path, tls)
    users = raw.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        raise WebConfigError(f"web-config {path}: basic_auth_users: expected a mapping of user: bcrypt hash")
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise WebConfigError(
                f"web-config {path}: basic_auth_users.{user}: expected a bcrypt hash ($2b$...)"
            )
        config.users[str(user)] = hashed.encode()
    return config


def _tls_context(path: str, tls: Any) -> ssl.SSLContext:
    if not isinstance(tls, dict):
        raise WebConfigError(f"web-config {path}: tls_server_config: expected a mapping")
    unknown = set(tls) - _TLS_KEYS
    if unknown:
        raise WebConfigError(
            f"web-config {path}: tls_server_config.{sorted(unknown)[0]}: unknown key "
            f"(supported: {', '.join(sorted(_TLS_KEYS))})"
        )
    for key in ("cert_file", "key_file"):
        if not tls.get(key):
            raise WebConfigError(
                f"web-config {path}: tls_server_config.{key}: required when TLS is configured"
            )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if "min_version" in tls:
        if tls["min_version"] not in _TLS_VERSIONS:
            raise WebConfigError(f"web-config {path}: tls_server_config.min_version: use TLS12 or TLS13")
        context.minimum_version = _TLS_VERSIONS[tls["min_version"]]
    try:
        context.load_cert_chain(tls["cert_file"], tls["key_file"])
    except (OSError, ssl.SSLError) as err:
        raise WebConfigError(
            f"web-config {path}: tls_server_config.cert_file/key_file: cannot load "
            f"{tls['cert_file']} / {tls['key_file']}: {err}"
        ) from None
    auth_type = tls.get("client_auth_type", "NoClientCert")
    if auth_type not in _CLIENT_AUTH:
        raise WebConfigError(
            f"web-config {path}: tls_server_config.client_auth_type: {auth_type!r} is not one of "
            f"{', '.join(_CLIENT_AUTH)}"
        )
    context.verify_mode = _CLIENT_AUTH[auth_type]
    if tls.get("client_ca_file"):
        try:
            context.load_verify_locations(tls["client_ca_file"])
        except (OSError, ssl.SSLError) as err:
            raise WebConfigError(f"web-config {path}: tls_server_config.client_ca_file: {err}") from None
    elif context.verify_mode != ssl.CERT_NONE:
        raise WebConfigError(f"web-config {path}: tls_server_config.client_ca_file: required for {auth_type}")
    return context


class _BasicAuth:
    """Checks Authorization headers against bcrypt hashes; remembers recent successes (bcrypt is slow)."""

    def __init__(self, users: dict[str, bytes]) -> None:
        self._users = users
        self._verified: dict[tuple[str, bytes], None] = {}
        self._lock = threading.Lock()

    def allows(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        hashed = self._users.get(user)
        # Without a user, still pay for one bcrypt check, so timing does not reveal which users exist.
        reference = hashed if hashed is not None else next(iter(self._users.values()))
        key = (user, hashlib.sha256(reference + b"\0" + password.encode()).digest())
        with self._lock:
            if hashed is not None and key in self._verified:
                return True
        ok = bcrypt.checkpw(password.encode(), reference) and hashed is not None
        if ok:
            with self._lock:
                if len(self._verified) >= 256:
                    self._verified.clear()
                self._verified[key] = None
        return ok


class _Exposition:
    """prometheus_client's text 0.0.4 and OpenMetrics 1.0.0 output, byte for byte, with less work per scrape.

    Plain counter and gauge families (legacy names, no unit, timestamps, exemplars or native histograms;
    everything the host exporter produces) are formatted here, and the `name{labels} ` prefix of each series
    is computed once and reused on later scrapes. Any other family is formatted by prometheus_client itself.
    """

    _MAX_CACHED = 50_000  # label values that churn (ids, paths) cannot grow the cache without bound

    def __init__(self) -> None:
        self._prefixes: dict[tuple, str] = {}
        self._headers: dict[tuple, str] = {}

    def text(self, registry: Collector) -> bytes:
        return self._render(registry, None)

    def openmetrics(self, registry: Collector, escaping: str) -> bytes:
        return self._render(registry, escaping)

    def _render(self, registry: Collector, om_escaping: str | None) -> bytes:
        out: list[str] = []
        for metric in registry.collect():
            lines = self._plain_lines(metric)
            if lines is None:
                out.append(self._by_prometheus_client(metric, om_escaping))
            else:
                out.append(self._header(metric, om_escaping is not None))
                out.extend(lines)
        if om_escaping is not None:
            out.append("# EOF\n")
        return "".join(out).encode("utf-8")

    def _plain_lines(self, metric: Metric) -> list[str] | None:
        """The sample lines of a plain counter or gauge (the same in both formats), else None."""
        if metric.type not in ("counter", "gauge") or metric.unit or not _PLAIN_NAME.match(metric.name):
            return None
        name = metric.name + "_total" if metric.type == "counter" else metric.name
        prefixes = self._prefixes
        lines = []
        for s in metric.samples:
            if s.name != name or s.timestamp is not None or s.exemplar is not None or s.native_histogram:
                return None
            key = (name, *s.labels.items())
            prefix = prefixes.get(key)
            if prefix is None:
                if not all(_PLAIN_NAME.match(k) and not k.startswith("__") for k in s.labels):
                    return None
                if len(prefixes) >= self._MAX_CACHED:
                    prefixes.clear()
                prefix = prefixes[key] = _series_prefix(name, s.labels)
            lines.append(f"{prefix}{floatToGoString(s.value)}\n")
        return lines

    def _header(self, metric: Metric, openmetrics: bool) -> str:
        key = (openmetrics, metric.name, metric.type, metric.documentation)
        header = self._headers.get(key)
        if header is None:
            doc = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
            if openmetrics:
                name = metric.name
                doc = doc.replace('"', r"\"")
            else:
                name = metric.name + "_total" if metric.type == "counter" else metric.name
            if len(self._headers) >= self._MAX_CACHED:
                self._headers.clear()
            header = self._headers[key] = f"# HELP {name} {doc}\n# TYPE {name} {metric.type}\n"
        return header

    @staticmethod
    def _by_prometheus_client(metric: Metric, om_escaping: str | None) -> str:
        one = _Families([metric])
        if om_escaping is None:
            return generate_latest(one).decode("utf-8")
        text = openmetrics.generate_latest(one, escaping=om_escaping, version="1.0.0").decode("utf-8")
        return text.removesuffix("# EOF\n")


class _Families:
    """A collector that yields families already collected."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> list[Metric]:
        return self._families


def _series_prefix(name: str, labels: dict[str, str]) -> str:
    if not labels:
        return f"{name} "
    pairs = ",".join(
        '{}="{}"'.format(k, v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\""))
        for k, v in sorted(labels.items())
    )
    return f"{name}{{{pairs}}} "


# Content types choose_encoder() picks that _Exposition renders itself (anything else: prometheus_client).
_OPENMETRICS_ESCAPING = {
    openmetrics.CONTENT_TYPE_LATEST: openmetrics.UNDERSCORES,
    f"{openmetrics.CONTENT_TYPE_LATEST}; escaping={openmetrics.UNDERSCORES}": openmetrics.UNDERSCORES,
    f"{openmetrics.CONTENT_TYPE_LATEST}; escaping={openmetrics.ALLOWUTF8}": openmetrics.ALLOWUTF8,
}


class _App:
    """WSGI app: auth check, then /metrics, extra routes, / and /-/healthy."""

    def __init__(
        self, registry: CollectorRegistry, routes: dict[str, Handler], auth: _BasicAuth | None
    ) -> None:
        self._registry = registry
        self._exposition = _Exposition()
        self._routes = routes
        self._auth = auth

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if self._auth and not self._auth.allows(environ.get("HTTP_AUTHORIZATION")):
            return _respond(
                start_response,
                401,
                "text/plain; charset=utf-8",
                b"Unauthorized\n",
                [("WWW-Authenticate", 'Basic realm="redline"')],
            )
        if path == "/metrics":
            return self._metrics(environ, start_response)
        if path in self._routes:
            try:
                status, content_type, body = self._routes[path](environ)
            except Exception:
                log.exception("handler for %s failed", path)
                status, content_type, body = 500, "text/plain; charset=utf-8", b"internal error\n"
            return _respond(start_response, status, content_type, body)
        if path == "/-/healthy":
            return _respond(start_response, 200, "text/plain; charset=utf-8", b"OK\n")
        if path == "/":
            return _respond(start_response, 200, "text/html; charset=utf-8", self._landing_page())
        return _respond(start_response, 404, "text/plain; charset=utf-8", b"Not Found\n")

    def _metrics(self, environ: dict, start_response: Callable) -> list[bytes]:
        """What prometheus_client's make_wsgi_app answers, with the exposition from _Exposition."""
        method = environ["REQUEST_METHOD"]
        if method == "OPTIONS":
            start_response("200 OK", [("Allow", "OPTIONS,GET")])
            return [b""]
        if method != "GET":
            start_response("405 Method Not Allowed", [("Allow", "OPTIONS,GET")])
            return [f"# HTTP 405 Method Not Allowed: {method}; use OPTIONS or GET\n".encode()]
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        registry: Collector = self._registry
        query = environ.get("QUERY_STRING", "")
        if query:
            params = parse_qs(query)
            if "name[]" in params:
                registry = self._registry.restricted_registry(params["name[]"])
        if content_type == CONTENT_TYPE_PLAIN_0_0_4:
            output = self._exposition.text(registry)
        elif content_type in _OPENMETRICS_ESCAPING:
            output = self._exposition.openmetrics(registry, _OPENMETRICS_ESCAPING[content_type])
        else:
            output = encoder(registry)
        headers = [("Content-Type", content_type)]
        if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")):
            output = gzip.compress(output, compresslevel=_GZIP_LEVEL)
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [output]

    def _landing_page(self) -> bytes:
        links = "".join(
            f'<li><a href="{html.escape(p)}">{html.escape(p)}</a></li>'
            for p in ["/metrics", *sorted(self._routes), "/-/healthy"]
        )
        head = "<head><title>redline exporter</title></head>"
        return f"<html>{head}<body><h1>redline exporter</h1><ul>{links}</ul></body></html>\n".encode()


def _respond(
    start_response: Callable, status: int, content_type: str, body: bytes, extra: list | None = None
) -> list[bytes]:
    reason = _REASONS.get(status, "Unknown")
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body))), *(extra or [])]
    start_response(f"{status} {reason}", headers)
    return [body]


class _Handler(BaseHTTPRequestHandler):
    """Runs the WSGI app for each request on a connection.

    HTTP/1.1 keep-alive, so Prometheus reuses its connection between scrapes; every response goes out in
    one write (separate header and body writes would meet Nagle's algorithm and delayed ACKs).
    """

    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle or stalled client does not hold a worker forever
    disable_nagle_algorithm = True
    server: _Server

    def _run_app(self) -> None:
        path, _, query = self.path.partition("?")
        body = self._read_body()
        if body is None:
            return
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "PATH_INFO": unquote(path, "iso-8859-1"),
            "QUERY_STRING": query,
            "SERVER_NAME": self.server.host,
            "SERVER_PORT": str(self.server.port),
            "SERVER_PROTOCOL": self.request_version,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)) if body else "",
            "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": self.server.url_scheme,
        }
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        response: list[str] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
            response[:] = [status, *(f"{name}: {value}" for name, value in headers)]

        try:
            payload = b"".join(self.server.app(environ, start_response))
        except Exception:
            log.exception("%s %s failed", self.command, path)
            payload = b"internal error\n"
            start_response("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")])
            self.close_connection = True
        if self.server.closing:
            self.close_connection = True
        status, *header_lines = response
        if not any(line[:15].lower() == "content-length:" for line in header_lines):
            header_lines.append(f"Content-Length: {len(payload)}")
        header_lines.append(f"Date: {self.date_time_string()}")
        if self.close_connection:
            header_lines.append("Connection: close")
        elif self.request_version == "HTTP/1.0":
            header_lines.append("Connection: keep-alive")  # the client asked for it
        head = "\r\n".join([f"{self.protocol_version} {status}", *header_lines, "", ""])
        self.wfile.write(head.encode("latin-1") + (b"" if self.command == "HEAD" else payload))
        if log.isEnabledFor(logging.DEBUG):
            self.log_request(status.partition(" ")[0], len(payload))

    def _read_body(self) -> bytes | None:
        """The request body (routes may read wsgi.input), or None after answering an unusable one."""
        if self.headers.get("Transfer-Encoding"):
            self.send_error(411, "chunked request bodies are not supported; send Content-Length")
            return None
        length = self.headers.get("Content-Length") or "0"
        if not length.isdigit():
            self.send_error(400, "bad Content-Length")
            return None
        if int(length) > _MAX_BODY:
            self.send_error(413, f"request body over {_MAX_BODY} bytes")
            return None
        return self.rfile.read(int(length)) if int(length) else b""

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _run_app

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _Server(socketserver.TCPServer):
    """Accepts connections on one thread and hands each to a persistent worker thread.

    A new worker is started only when every worker is busy (so a slow client never blocks another one,
    as with a thread per connection, but without starting a thread per scrape). At most
    `max_idle_workers` wait for the next connection; the others exit.
    """

    allow_reuse_address = True
    max_idle_workers = 4

    def __init__(self, address: tuple[str, int], app: Callable, family: socket.AddressFamily) -> None:
        self.address_family = family
        super().__init__(address, _Handler)
        self.app = app
        self.url_scheme = "http"
        sockname = self.socket.getsockname()
        self.host: str = sockname[0]
        self.port: int = int(sockname[1])
        self.closing = False
        self._lock = threading.Lock()
        self._idle = 0
        self._connections: queue.SimpleQueue[tuple[Any, Any] | None] = queue.SimpleQueue()
        self._open: set[Any] = set()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._lock:
            if self.closing:
                super().shutdown_request(request)
                return
            self._open.add(request)
            start_worker = self._idle == 0
            if not start_worker:
                self._idle -= 1
        self._connections.put((request, client_address))
        if start_worker:
            threading.Thread(target=self._work, name="metrics-http-worker", daemon=True).start()

    def _work(self) -> None:
        while (item := self._connections.get()) is not None:
            request, client_address = item
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                self.shutdown_request(request)
            with self._lock:
                if self.closing or self._idle >= self.max_idle_workers:
                    return
                self._idle += 1

    def shutdown_request(self, request: Any) -> None:
        with self._lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        """Close the listening socket, let idle workers exit and cut kept-alive connections."""
        super().server_close()
        with self._lock:
            self.closing = True
            idle, self._idle = self._idle, 0
            still_open = list(self._open)
        for _ in range(idle):
            self._connections.put(None)
        for request in still_open:
            with contextlib.suppress(OSError):
                request.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # TLS handshake failures and client disconnects are the client's problem, not ours.
        log.debug("request from %s failed", client_address, exc_info=True)


class MetricsServer:
    """A running exporter HTTP server (daemon thread). `url` is the base URL, e.g. http://127.0.0.1:9110."""

    def __init__(self, httpd: _Server, tls: bool) -> None:
        self._httpd = httpd
        self.host: str = httpd.host
        self.port: int = httpd.port
        host_for_url = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{'https' if tls else 'http'}://{host_for_url}:{self.port}"
        self.metrics_url = f"{self.url}/metrics"
        self._thread = threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop serving, close the listening socket and any kept-alive connections."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def serve(
    registry: CollectorRegistry,
    listen: str,
    *,
    web_config: str | None = None,
    routes: dict[str, Handler] | None = None,
) -> MetricsServer:
    """Serve /metrics of `registry` (plus `routes`) on `listen` in a daemon thread.

    Raises ValueError (bad listen address), WebConfigError (bad web-config) or OSError (cannot bind).
    """
    host, port = parse_listen(listen)
    config = load_web_config(web_config) if web_config else WebConfig()
    app = _App(registry, dict(routes or {}), _BasicAuth(config.users) if config.users else None)
    httpd = _Server((host, port), app, socket.AF_INET6 if ":" in host else socket.AF_INET)
    if config.ssl_context is not None:
        # Handshake lazily in the worker thread, so a slow client cannot block accept().
        httpd.socket = config.ssl_context.wrap_socket(
            httpd.socket, server_side=True, do_handshake_on_connect=False
        )
        httpd.url_scheme = "https"
    return MetricsServer(httpd, tls=config.ssl_context is not None)
