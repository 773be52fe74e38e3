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
import hashlib
import html
import ipaddress
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import bcrypt
import yaml
from prometheus_client import CollectorRegistry, make_wsgi_app

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


class _App:
    """WSGI app: auth check, then /metrics, extra routes, / and /-/healthy."""

    def __init__(
        self, registry: CollectorRegistry, routes: dict[str, Handler], auth: _BasicAuth | None
    ) -> None:
        self._metrics = make_wsgi_app(registry)
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


class _QuietHandler(WSGIRequestHandler):
    timeout = 30  # a client that stalls mid-request does not hold a thread forever

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # TLS handshake failures and client disconnects are the client's problem, not ours.
        log.debug("request from %s failed", client_address, exc_info=True)


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class MetricsServer:
    """A running exporter HTTP server (daemon thread). `url` is the base URL, e.g. http://127.0.0.1:9110."""

    def __init__(self, httpd: WSGIServer, tls: bool) -> None:
        self._httpd = httpd
        sockname = httpd.socket.getsockname()
        self.host: str = sockname[0]
        self.port: int = int(sockname[1])
        host_for_url = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"{'https' if tls else 'http'}://{host_for_url}:{self.port}"
        self.metrics_url = f"{self.url}/metrics"
        self._thread = threading.Thread(target=httpd.serve_forever, name="metrics-http", daemon=True)
        self._thread.start()

    def shutdown(self) -> None:
        """Stop serving and close the listening socket."""
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
    server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
    httpd = make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
    if config.ssl_context is not None:
        # Handshake lazily in the request thread, so a slow client cannot block accept().
        httpd.socket = config.ssl_context.wrap_socket(
            httpd.socket, server_side=True, do_handshake_on_connect=False
        )
    return MetricsServer(httpd, tls=config.ssl_context is not None)
