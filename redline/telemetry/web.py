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
import collections
import contextlib
import functools
import gzip
import hashlib
import html
import io
import ipaddress
import logging
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, unquote

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder, generate_latest, gzip_accepted

from redline import safe_yaml
from redline.telemetry.exposition import TextMemo, text_format

log = logging.getLogger(__name__)

# A route gets the request as a dict with WSGI environ keys (REQUEST_METHOD, PATH_INFO, QUERY_STRING,
# CONTENT_TYPE, CONTENT_LENGTH, REMOTE_ADDR, HTTP_<HEADER>, wsgi.input) and returns (status, content type,
# body).
Handler = Callable[[dict], tuple[int, str, bytes]]

_TLS_KEYS = {"cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version"}
_CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
_TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_MAX_BODY = 1 << 20  # routes take small requests; a larger body is refused
_TEXT = "text/plain; charset=utf-8"
_GZIP_LEVEL = 6  # Go's (node_exporter's) default; prometheus_client uses 9 for ~1% smaller bodies
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 21\r\nRetry-After: 1\r\nConnection: close\r\n\r\ntoo many connections\n"
)


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
        raw = safe_yaml.load_file(Path(path)) or {}
    except safe_yaml.YamlInputError as err:
        raise WebConfigError(f"web-config {path}: {err.problem}") from None
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


class BasicAuth:
    """Checks Authorization headers against bcrypt hashes; remembers recent successes (bcrypt is slow)."""

    def __init__(self, users: dict[str, bytes]) -> None:
        import bcrypt  # only with basic auth configured: 0.4 MB of RSS the other exporters need not carry

        self._checkpw = bcrypt.checkpw
        self._users = users
        self._verified: dict[tuple[str, bytes], None] = {}
        self._lock = threading.Lock()

    def allows(self, header: str | None) -> bool:
        """True when the header carries a known user's password."""
        return self.user(header) is not None

    def user(self, header: str | None) -> str | None:
        """The user whose password the Authorization header carries, else None."""
        if not header or not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        hashed = self._users.get(user)
        # Without a user, still pay for one bcrypt check, so timing does not reveal which users exist.
        reference = hashed if hashed is not None else next(iter(self._users.values()))
        key = (user, hashlib.sha256(reference + b"\0" + password.encode()).digest())
        with self._lock:
            if hashed is not None and key in self._verified:
                return user
        ok = self._checkpw(password.encode(), reference) and hashed is not None
        if not ok:
            return None
        with self._lock:
            if len(self._verified) >= 256:
                self._verified.clear()
            self._verified[key] = None
        return user


class _Handler(BaseHTTPRequestHandler):
    """Answers the requests of one connection: auth check, then /metrics, extra routes, / and /-/healthy.

    HTTP/1.1 keep-alive, so Prometheus reuses its connection (and its thread) between scrapes. Responses are
    buffered and go out in one write up to 64 KiB (a scrape of the host exporter is ~20 KiB).
    """

    protocol_version = "HTTP/1.1"
    timeout = 30  # an idle or stalled client does not hold its thread forever
    disable_nagle_algorithm = True
    wbufsize = 1 << 16  # flushed once per request by BaseHTTPRequestHandler.handle_one_request()
    server: _Server

    def handle_one_request(self) -> None:
        """Wait for the request's first bytes as an idle connection (one the server may close to make
        room for a new connection when every connection thread is taken), then handle the request."""
        server = self.server
        server.set_idle(self.connection, True)
        try:
            cast(io.BufferedReader, self.rfile).peek(1)  # the buffer's bytes, or one read: blocks
        except (TimeoutError, OSError):
            self.close_connection = True
            return
        finally:
            server.set_idle(self.connection, False)
        super().handle_one_request()

    def _handle(self) -> None:
        body = self._read_body()
        if body is None:
            return
        try:
            status, headers, payload = self._answer(body)
        except Exception:
            log.exception("%s %s failed", self.command, self.path)
            status, headers, payload = 500, [("Content-Type", _TEXT)], b"internal error\n"
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        if self.close_connection or self.server.closing:
            self.send_header("Connection", "close")
        elif self.request_version == "HTTP/1.0":
            self.send_header("Connection", "keep-alive")  # the client asked for it
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _handle

    def _answer(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        path, _, query = self.path.partition("?")
        path = unquote(path, "iso-8859-1")
        server = self.server
        if server.auth and not server.auth.allows(self.headers.get("Authorization")):
            return (
                401,
                [("Content-Type", _TEXT), ("WWW-Authenticate", 'Basic realm="redline"')],
                b"Unauthorized\n",
            )
        if path == "/metrics":
            return self._metrics(query)
        if path in server.routes:
            try:
                status, content_type, payload = server.routes[path](self._environ(path, query, body))
            except Exception:
                log.exception("handler for %s failed", path)
                status, content_type, payload = 500, _TEXT, b"internal error\n"
            return status, [("Content-Type", content_type)], payload
        if path == "/-/healthy":
            return 200, [("Content-Type", _TEXT)], b"OK\n"
        if path == "/":
            return 200, [("Content-Type", "text/html; charset=utf-8")], server.landing_page
        return 404, [("Content-Type", _TEXT)], b"Not Found\n"

    def _metrics(self, query: str) -> tuple[int, list[tuple[str, str]], bytes]:
        """What prometheus_client's own handlers answer (gzip at level 6). The text format 0.0.4 (what
        clients without an Accept header get) comes from text_format(), the same bytes for less CPU."""
        if self.command == "OPTIONS":
            return 200, [("Allow", "OPTIONS,GET")], b""
        if self.command != "GET":
            message = f"# HTTP 405 Method Not Allowed: {self.command}; use OPTIONS or GET\n"
            return 405, [("Allow", "OPTIONS,GET")], message.encode()
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        registry = self.server.registry
        names = parse_qs(query).get("name[]") if query else None
        target = registry.restricted_registry(names) if names else registry
        if encoder is generate_latest:
            # a `?name[]=` scrape uses the memo but must not make it forget the other series
            output = text_format(target, self.server.text_memo, full=not names)
        else:
            output = encoder(target)
        headers = [("Content-Type", content_type)]
        if gzip_accepted(self.headers.get("Accept-Encoding", "")):
            output = gzip.compress(output, compresslevel=_GZIP_LEVEL)
            headers.append(("Content-Encoding", "gzip"))
        return 200, headers, output

    def _environ(self, path: str, query: str, body: bytes) -> dict[str, Any]:
        """The request as a route handler sees it: the WSGI environ keys, without a WSGI server."""
        environ: dict[str, Any] = {
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)) if body else "",
            "REMOTE_ADDR": self.client_address[0],
            "wsgi.input": io.BytesIO(body),
        }
        for name, value in self.headers.items():
            key = "HTTP_" + name.upper().replace("-", "_")
            if key not in ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"):
                environ[key] = f"{environ[key]},{value}" if key in environ else value
        return environ

    def _read_body(self) -> bytes | None:
        """The request body (read even when unused, to keep the connection in step), or None after
        answering an unusable one."""
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

    def version_string(self) -> str:
        return "redline"  # not the Python version

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


def _cut(connection: socket.socket) -> None:
    """Close an idle connection for a queued one: its thread sees the end of the stream and moves on."""
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


class _Server(socketserver.TCPServer):
    """Serves each connection on a daemon thread; finished threads wait for the next connection.

    A new connection goes to a waiting connection thread, or to a new one when none waits. Reusing threads
    saves a thread start per new connection (0.1-0.5 ms on a small VM; curl and blackbox probes open one
    per request). At most `max_waiting_threads` wait; the others exit. Daemon threads, so an idle kept-alive
    connection (up to the 30 s handler timeout) never holds up an exporter that is exiting.
    server_close() also cuts the connections still open.

    Bounded: at most `max_connection_threads` connection threads. A connection accepted while all are taken
    waits in a queue, and the connection that has been idle longest (waiting for its next request, or
    for its first) is closed to free its thread; with none idle it waits for a request to finish. Past
    `max_queued_connections` waiting, a new connection is answered 503 and closed. The listen backlog
    (`request_queue_size`, 128 as Go's net/http gets from somaxconn) holds connections the accept loop has
    not taken yet, so a burst of new connections queues instead of losing SYNs.
    """

    allow_reuse_address = True
    request_queue_size = 128  # listen backlog (the kernel caps it at net.core.somaxconn)
    max_waiting_threads = 4
    max_connection_threads = 64
    max_queued_connections = 128

    def __init__(
        self,
        address: tuple[str, int],
        family: socket.AddressFamily,
        registry: CollectorRegistry,
        routes: dict[str, Handler],
        auth: BasicAuth | None,
    ) -> None:
        self.address_family = family
        # Connection state first: a failed bind calls server_close() from within TCPServer.__init__.
        self.closing = False
        self._open: set[socket.socket] = set()
        self._accepted: collections.deque[tuple[Any, Any]] = collections.deque()
        self._waiting = 0  # connection threads waiting in _next_connection() and not yet handed one
        self._threads = 0  # connection threads alive
        self._idle: dict[socket.socket, None] = {}  # connections waiting for a request, longest first
        self._cut: set[socket.socket] = set()  # idle ones closed for a queued connection, thread not back yet
        self._lock = threading.Lock()
        self._connection_accepted = threading.Condition(self._lock)
        super().__init__(address, _Handler)
        self.registry = registry
        self.text_memo = TextMemo()  # the registry's rendered headers and label sets, between scrapes
        self.routes = routes
        self.auth = auth
        links = "".join(
            f'<li><a href="{html.escape(p)}">{html.escape(p)}</a></li>'
            for p in ["/metrics", *sorted(routes), "/-/healthy"]
        )
        head = "<head><title>redline exporter</title></head>"
        self.landing_page = (
            f"<html>{head}<body><h1>redline exporter</h1><ul>{links}</ul></body></html>\n".encode()
        )

    def process_request(self, request: Any, client_address: Any) -> None:
        """Called by serve_forever() for each accepted connection: hand it to a connection thread."""
        start, idle = False, None
        with self._lock:
            full = len(self._accepted) >= self.max_queued_connections
        if full:
            self._refuse(request)
            return
        with self._lock:
            self._accepted.append((request, client_address))
            if self._waiting:
                self._waiting -= 1
                self._connection_accepted.notify()
                return
            if self._threads < self.max_connection_threads:
                self._threads += 1
                start = True
            else:
                idle = self._idle_to_cut()
        if start:
            name = f"metrics-connection-{self.server_address[1]}"
            threading.Thread(target=self._serve_connections, name=name, daemon=True).start()
        elif idle is not None:
            _cut(idle)

    def _idle_to_cut(self) -> socket.socket | None:
        """Under the lock, every thread taken: the connection idle longest, to close for a queued one,
        while more connections queue than closed idle ones are about to free threads for."""
        if not self._idle or len(self._accepted) <= len(self._cut):
            return None
        idle = next(iter(self._idle))
        del self._idle[idle]
        self._cut.add(idle)
        return idle

    def set_idle(self, connection: socket.socket, idle: bool) -> None:
        """A connection thread waits for a request on `connection` (idle), or has one. A connection that
        queued while every thread was busy, before any was idle, gets the thread of the first to idle."""
        cut = None
        with self._lock:
            if idle:
                self._idle[connection] = None
                if self._threads >= self.max_connection_threads:
                    cut = self._idle_to_cut()
            else:
                self._idle.pop(connection, None)
        if cut is not None:
            _cut(cut)

    def _refuse(self, request: Any) -> None:
        """503 and close: more connections wait than the queue holds (TLS ones are only closed)."""
        if not isinstance(request, ssl.SSLSocket):
            with contextlib.suppress(OSError):
                request.setblocking(False)
                request.send(_BUSY)
        self.shutdown_request(request)

    def _serve_connections(self) -> None:
        while (accepted := self._next_connection()) is not None:
            request, client_address = accepted
            try:
                self.finish_request(request, client_address)
            except Exception:
                self.handle_error(request, client_address)
            finally:
                with self._lock:
                    self._open.discard(request)
                    self._cut.discard(request)  # this thread takes the next queued connection now
                self.shutdown_request(request)

    def _next_connection(self) -> tuple[Any, Any] | None:
        """The next accepted connection, waiting for one; None when this thread should exit."""
        with self._lock:
            while True:
                while not self._accepted:
                    if self.closing or self._waiting >= self.max_waiting_threads:
                        self._threads -= 1
                        return None
                    self._waiting += 1
                    self._connection_accepted.wait()
                request, client_address = self._accepted.popleft()
                if not self.closing:
                    self._open.add(request)
                    return request, client_address
                self.shutdown_request(request)  # accepted just before server_close()

    def server_close(self) -> None:
        """Close the listening socket and cut the connections still open."""
        super().server_close()
        with self._lock:
            self.closing = True
            still_open = list(self._open)
            self._waiting = 0
            self._connection_accepted.notify_all()  # waiting connection threads exit
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
        host, port = httpd.socket.getsockname()[:2]
        self.host: str = host
        self.port: int = int(port)
        host_for_url = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{'https' if tls else 'http'}://{host_for_url}:{self.port}"
        self.metrics_url = f"{self.url}/metrics"
        # poll 10 times a second for shutdown() (the default 0.5 s made every stop wait up to that long)
        loop = functools.partial(httpd.serve_forever, poll_interval=0.1)
        self._thread = threading.Thread(target=loop, name="metrics-http", daemon=True)
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
    auth = BasicAuth(config.users) if config.users else None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    httpd = _Server((host, port), family, registry, dict(routes or {}), auth)
    if config.ssl_context is not None:
        # Handshake lazily in the connection's thread, so a slow client cannot block accept().
        httpd.socket = config.ssl_context.wrap_socket(
            httpd.socket, server_side=True, do_handshake_on_connect=False
        )
    return MetricsServer(httpd, tls=config.ssl_context is not None)
