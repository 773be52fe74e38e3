"""The shared exporter web server: listen parsing, routes, OpenMetrics, TLS and basic auth, for real."""

from __future__ import annotations

import base64
import contextlib
import errno
import gzip
import http.client
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder

from redline.telemetry.web import WebConfigError, load_web_config, parse_listen, serve
from redline.testing.processes import wait_until


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:9110", ("127.0.0.1", 9110)),
        (":9110", ("127.0.0.1", 9110)),
        ("[::1]:9110", ("::1", 9110)),
        ("localhost:0", ("localhost", 0)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
    ],
)
def test_parse_listen_accepts(value: str, expected: tuple[str, int]) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("9110", "missing port"),
        ("127.0.0.1:http", "not a number"),
        ("127.0.0.1:70000", "not a number"),
        ("::1:9110", "brackets"),
        ("[::1]9110", "expected HOST:PORT"),
        ("[nothost]:9110", "not an IPv6 address"),
        ("127.0.0.1:", "not a number"),
    ],
)
def test_parse_listen_rejects_with_clear_message(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as err:
        parse_listen(value)
    assert repr(value) in str(err.value)


def _get(url: str, headers: dict[str, str] | None = None, context: ssl.SSLContext | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as resp:
            return resp.status, dict(resp.headers), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read().decode()


@pytest.fixture
def registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("demo_requests_total", "Requests.", ["code"], registry=registry).labels("200").inc(3)
    return registry


def test_serves_metrics_routes_landing_and_health_on_port_zero(registry: CollectorRegistry) -> None:
    seen: list[str] = []

    def status(environ: dict) -> tuple[int, str, bytes]:
        seen.append(environ["QUERY_STRING"])
        return 202, "application/json", b'{"ok": true}'

    def broken(environ: dict) -> tuple[int, str, bytes]:
        raise RuntimeError("boom")

    server = serve(registry, "127.0.0.1:0", routes={"/status": status, "/broken": broken})
    try:
        assert server.port > 0 and server.host == "127.0.0.1"
        assert server.url == f"http://127.0.0.1:{server.port}"
        code, headers, body = _get(server.url + "/metrics")
        assert code == 200
        assert 'demo_requests_total{code="200"} 3.0' in body
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        code, headers, body = _get(server.url + "/metrics", {"Accept": "application/openmetrics-text"})
        assert headers["Content-Type"].startswith("application/openmetrics-text")
        assert body.rstrip().endswith("# EOF")
        assert _get(server.url + "/status?x=1")[:3:2] == (202, '{"ok": true}')
        assert seen == ["x=1"]
        assert _get(server.url + "/broken")[0] == 500
        assert _get(server.url + "/-/healthy")[0] == 200
        code, _, body = _get(server.url + "/")
        assert code == 200 and 'href="/metrics"' in body and 'href="/status"' in body
        assert _get(server.url + "/nope")[0] == 404
    finally:
        server.shutdown()
    with pytest.raises(OSError):
        _get(server.url + "/-/healthy")


def test_serves_on_ipv6_loopback(registry: CollectorRegistry) -> None:
    try:
        socket.socket(socket.AF_INET6).close()
        server = serve(registry, "[::1]:0")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        assert server.url == f"http://[::1]:{server.port}"
        assert _get(server.url + "/metrics")[0] == 200
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_tls_and_basic_auth(
    tmp_path: Path, registry: CollectorRegistry, tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    hashed = bcrypt.hashpw(b"s3cret-for-test", bcrypt.gensalt(rounds=4)).decode()
    config = tmp_path / "web.yml"
    config.write_text(
        f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    server = serve(registry, "127.0.0.1:0", web_config=str(config))
    trusted = ssl.create_default_context(cafile=str(cert))
    try:
        assert server.url.startswith("https://127.0.0.1:")
        # without credentials, wrong password, unknown user: 401 and a challenge
        code, headers, _ = _get(server.metrics_url, context=trusted)
        assert code == 401 and headers["WWW-Authenticate"].startswith("Basic")
        assert _get(server.metrics_url, _basic("prometheus", "wrong"), trusted)[0] == 401
        assert _get(server.metrics_url, _basic("nobody", "s3cret-for-test"), trusted)[0] == 401
        assert _get(server.metrics_url, {"Authorization": "Basic !!notbase64"}, trusted)[0] == 401
        # with credentials (twice: the second hits the verification cache)
        for _ in range(2):
            code, _, body = _get(server.metrics_url, _basic("prometheus", "s3cret-for-test"), trusted)
            assert code == 200 and 'demo_requests_total{code="200"} 3.0' in body
        # plain HTTP against the TLS port does not get metrics
        with pytest.raises(OSError):
            _get(server.metrics_url.replace("https://", "http://"))
        # a client that does not trust the certificate is refused by its own TLS check
        with pytest.raises(urllib.error.URLError):
            _get(server.metrics_url, _basic("prometheus", "s3cret-for-test"), ssl.create_default_context())
    finally:
        server.shutdown()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tls_server_config:\n  cert_file: /nonexistent.pem\n  key_file: /nonexistent.key\n", "cannot load"),
        ("tls_server_config:\n  cert_file: /x.pem\n", "tls_server_config.key_file: required"),
        ("tls_server_config:\n  certfile: /x.pem\n", "tls_server_config.certfile: unknown key"),
        ("basic_auth_users:\n  alice: plaintext\n", "basic_auth_users.alice: expected a bcrypt hash"),
        ("basic_auth: {}\n", "unknown key 'basic_auth'"),
        ("basic_auth_users: [\n", "not valid YAML"),
    ],
)
def test_bad_web_config_names_file_and_field(tmp_path: Path, content: str, message: str) -> None:
    config = tmp_path / "web.yml"
    config.write_text(content)
    with pytest.raises(WebConfigError, match=message) as err:
        load_web_config(str(config))
    assert str(config) in str(err.value) and "\n" not in str(err.value)


def test_missing_web_config_file(tmp_path: Path) -> None:
    with pytest.raises(WebConfigError, match="cannot read"):
        load_web_config(str(tmp_path / "absent.yml"))


# ---- /metrics exposition and the HTTP/1.1 server ---------------------------------------------------------


def _families() -> list:
    """A counter, a histogram and a UTF-8 name (which each escaping scheme renders differently)."""
    source = CollectorRegistry()
    Counter("c_total", "Counter.", ["a"], registry=source).labels('q"b').inc()
    Histogram("h_seconds", "Histogram.", ["route"], registry=source).labels("/x").observe(0.3)
    return [*source.collect(), GaugeMetricFamily("my.dotted", "UTF-8 name.", value=2)]


class _Static:
    """Families collected once, so the server's and choose_encoder's renderings can be compared."""

    def __init__(self, families: list) -> None:
        self._families = families

    def collect(self) -> list:
        return self._families


@pytest.mark.parametrize(
    "accept",
    [
        None,  # curl, urllib, the benchmark
        "text/plain;version=0.0.4",
        "application/openmetrics-text",
        "application/openmetrics-text;version=1.0.0",
        # Prometheus 2.x and 3.x defaults
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
        "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,"
        "application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
        "text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
        "text/plain;version=1.0.0;escaping=allow-utf-8",
        "application/openmetrics-text;version=1.0.0;escaping=dots",
    ],
)
def test_metrics_are_what_choose_encoder_picks_for_the_accept_header(accept: str | None) -> None:
    registry = CollectorRegistry()
    registry.register(_Static(_families()))
    encoder, content_type = choose_encoder(accept or "")
    server = serve(registry, "127.0.0.1:0")
    try:
        request = urllib.request.Request(server.metrics_url, headers={"Accept": accept} if accept else {})
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.headers["Content-Type"] == content_type
            assert resp.read() == encoder(registry)
    finally:
        server.shutdown()


def test_metrics_gzip_name_filter_and_methods(registry: CollectorRegistry) -> None:
    Gauge("demo_other", "Other.", registry=registry).set(5)
    server = serve(registry, "127.0.0.1:0")
    try:
        request = urllib.request.Request(server.metrics_url, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.headers["Content-Encoding"] == "gzip"
            assert gzip.decompress(resp.read()) == generate_latest(registry)
        _, _, body = _get(server.metrics_url + "?name[]=demo_other")
        assert "demo_other 5.0" in body and "demo_requests_total" not in body
        connection = http.client.HTTPConnection(server.host, server.port, timeout=5)
        connection.request("OPTIONS", "/metrics")
        response = connection.getresponse()
        assert (response.status, response.headers["Allow"], response.read()) == (200, "OPTIONS,GET", b"")
        connection.request("POST", "/metrics", body=b"x=1")
        response = connection.getresponse()
        assert response.status == 405 and b"use OPTIONS or GET" in response.read()
        connection.close()
    finally:
        server.shutdown()


def test_keep_alive_head_and_request_bodies_keep_the_connection_in_step(registry: CollectorRegistry) -> None:
    seen: list[tuple[str, bytes]] = []
    threads: list[threading.Thread] = []

    def echo(environ: dict) -> tuple[int, str, bytes]:
        body = environ["wsgi.input"].read()
        seen.append((environ["REQUEST_METHOD"], body))
        threads.append(threading.current_thread())
        return 200, "text/plain", b"got " + body

    server = serve(registry, "127.0.0.1:0", routes={"/echo": echo})
    connection = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        connection.request("GET", "/metrics")
        first = connection.getresponse()
        assert first.status == 200 and b"demo_requests_total" in first.read()
        local_port = connection.sock.getsockname()[1]
        connection.request("HEAD", "/-/healthy")
        head = connection.getresponse()
        assert head.status == 200 and head.headers["Content-Length"] == "3" and head.read() == b""
        connection.request("POST", "/echo", body=b"payload")
        assert connection.getresponse().read() == b"got payload"
        connection.request("GET", "/metrics")
        assert b"demo_requests_total" in connection.getresponse().read()
        connection.request("PUT", "/echo", body=b"again")
        assert connection.getresponse().read() == b"got again"
        assert connection.sock.getsockname()[1] == local_port, "all five requests on one connection"
        assert seen == [("POST", b"payload"), ("PUT", b"again")]
        assert threads[0] is threads[1], "a kept-alive connection is served by one thread"
        # a client that asks to close gets Connection: close
        connection.request("GET", "/-/healthy", headers={"Connection": "close"})
        closing = connection.getresponse()
        assert closing.headers["Connection"] == "close" and closing.read() == b"OK\n"
    finally:
        connection.close()
        server.shutdown()


def test_shutdown_closes_kept_alive_connections(registry: CollectorRegistry) -> None:
    """A stopped exporter (e.g. the demo's 'down' fault) must not keep answering an open connection."""
    server = serve(registry, "127.0.0.1:0")
    connection = http.client.HTTPConnection(server.host, server.port, timeout=5)
    try:
        connection.request("GET", "/metrics")
        assert connection.getresponse().read()
        server.shutdown()
        with pytest.raises((OSError, http.client.HTTPException)):
            connection.request("GET", "/metrics")
            connection.getresponse().read()
    finally:
        connection.close()


def test_a_stalled_client_does_not_block_other_scrapes(registry: CollectorRegistry) -> None:
    server = serve(registry, "127.0.0.1:0")
    stalled = [socket.create_connection((server.host, server.port)) for _ in range(3)]
    try:
        for sock in stalled:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        code, _, body = _get(server.metrics_url)
        assert code == 200 and 'demo_requests_total{code="200"} 3.0' in body
    finally:
        for sock in stalled:
            sock.close()
        server.shutdown()


def test_connection_threads_are_reused_bounded_and_end_with_the_server(registry: CollectorRegistry) -> None:
    served_by: list[threading.Thread] = []

    def whoami(environ: dict) -> tuple[int, str, bytes]:
        served_by.append(threading.current_thread())
        return 200, "text/plain", b"ok"

    server = serve(registry, "127.0.0.1:0", routes={"/whoami": whoami})
    httpd = server._httpd

    def connection_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == f"metrics-connection-{server.port}"]

    idle: list[socket.socket] = []
    try:
        for _ in range(10):  # one new connection after another (urllib closes each)
            assert _get(f"{server.url}/whoami")[0] == 200
            wait_until(lambda: httpd._waiting == 1, timeout=5, interval=0.01)
        assert len(set(served_by)) == 1, "sequential connections are served by the same waiting thread"
        idle = [socket.create_connection((server.host, server.port)) for _ in range(8)]
        for sock in idle:
            sock.sendall(b"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")  # served, now kept alive and idle
        assert len(connection_threads()) == 8, "concurrent connections each have a thread"
        for sock in idle:
            sock.close()
        wait_until(
            lambda: len(connection_threads()) == httpd.max_waiting_threads == httpd._waiting, timeout=5
        )
    finally:
        for sock in idle:
            sock.close()
        server.shutdown()
    wait_until(lambda: not connection_threads(), timeout=5)


def _threads_of(server) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"metrics-connection-{server.port}"]


def test_listen_backlog_holds_a_burst_the_accept_loop_has_not_taken(registry: CollectorRegistry) -> None:
    """Issue 15: with a backlog of 5, 50 clients on new connections saw SYN drops. 100 connections made
    while the accept loop is held all connect (a backlog of 5 takes 6) and are all answered after."""
    server = serve(registry, "127.0.0.1:0")
    httpd = server._httpd
    assert httpd.request_queue_size == 128
    clients: list[socket.socket] = []
    try:
        with httpd._lock:  # the accept loop stops at the first connection it hands over
            for _ in range(100):
                sock = socket.create_connection((server.host, server.port), timeout=2)
                sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                clients.append(sock)
        for sock in clients:
            sock.settimeout(10)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        for sock in clients:
            sock.close()
        server.shutdown()


def test_connection_threads_are_capped_and_idle_connections_make_room(registry: CollectorRegistry) -> None:
    """Issue 15: 200 idle sockets started ~150 threads. Now at most max_connection_threads (64), and a
    scrape on a new connection is still answered: the longest idle connection is closed for it."""
    server = serve(registry, "127.0.0.1:0")
    httpd = server._httpd
    idle: list[socket.socket] = []
    most = 0
    try:
        for _ in range(200):
            idle.append(socket.create_connection((server.host, server.port), timeout=5))
            most = max(most, len(_threads_of(server)))
        wait_until(lambda: not httpd._accepted, timeout=10, interval=0.01)  # every one taken
        most = max(most, len(_threads_of(server)))
        assert most == httpd.max_connection_threads == 64
        started = time.monotonic()
        code, _, body = _get(server.metrics_url)
        assert code == 200 and 'demo_requests_total{code="200"} 3.0' in body
        assert time.monotonic() - started < 2
        assert len(_threads_of(server)) <= 64
        closed = 0
        for sock in idle:  # the oldest idle connections were closed to make room
            sock.settimeout(0.01)
            with contextlib.suppress(TimeoutError):
                closed += sock.recv(1) == b""
        assert closed >= 137, closed  # 200 + the scrape - 64 threads
    finally:
        for sock in idle:
            sock.close()
    wait_until(lambda: len(_threads_of(server)) <= httpd.max_waiting_threads, timeout=10)
    server.shutdown()


def test_busy_threads_and_a_full_queue_answer_503(registry: CollectorRegistry) -> None:
    release = threading.Event()

    def block(environ: dict) -> tuple[int, str, bytes]:
        release.wait(10)
        return 200, "text/plain", b"done"

    server = serve(registry, "127.0.0.1:0", routes={"/block": block})
    httpd = server._httpd
    httpd.max_connection_threads, httpd.max_queued_connections = 2, 1
    socks: list[socket.socket] = []

    def connect(path: str) -> socket.socket:
        sock = socket.create_connection((server.host, server.port), timeout=5)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        socks.append(sock)
        return sock

    try:
        for _ in range(2):  # both threads busy in a request: nothing idle to close
            connect("/block")
        wait_until(lambda: len(_threads_of(server)) == 2 and not httpd._idle, timeout=5, interval=0.01)
        queued = connect("/-/healthy")
        wait_until(lambda: len(httpd._accepted) == 1, timeout=5, interval=0.01)
        refused = connect("/-/healthy")
        answer = refused.recv(4096)
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable") and answer.endswith(
            b"too many connections\n"
        )
        assert refused.recv(1) == b""  # and closed
        release.set()
        assert queued.recv(4096).startswith(b"HTTP/1.1 200")  # the queued one is served after
        assert len(_threads_of(server)) <= 2
    finally:
        release.set()
        for sock in socks:
            sock.close()
        server.shutdown()


def test_a_connection_queued_behind_a_kept_alive_request_gets_its_thread_when_that_request_ends(
    registry: CollectorRegistry,
) -> None:
    """Queued while the only thread was busy, with nothing idle to close: when the busy request ends and
    its connection stays open (keep-alive), that idle connection is closed for the queued one at once,
    not after the 30 s handler timeout."""
    release, entered = threading.Event(), threading.Event()

    def block(environ: dict) -> tuple[int, str, bytes]:
        entered.set()
        release.wait(10)
        return 200, "text/plain", b"done"

    server = serve(registry, "127.0.0.1:0", routes={"/block": block})
    httpd = server._httpd
    httpd.max_connection_threads = 1
    kept = http.client.HTTPConnection(server.host, server.port, timeout=5)
    queued = socket.socket()
    try:
        kept.request("GET", "/block")
        assert entered.wait(5)  # the only thread is in the request: nothing idle
        queued.settimeout(5)
        queued.connect((server.host, server.port))
        queued.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        wait_until(lambda: len(httpd._accepted) == 1, timeout=5, interval=0.01)
        release.set()
        response = kept.getresponse()
        assert (response.status, response.read(), response.getheader("Connection")) == (200, b"done", None)
        assert queued.recv(4096).startswith(b"HTTP/1.1 200")
        kept.request("GET", "/-/healthy")  # the kept-alive connection was the one closed to make room
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            kept.getresponse()
    finally:
        release.set()
        kept.close()
        queued.close()
        server.shutdown()


def test_a_port_in_use_is_the_bind_error_itself() -> None:
    """TCPServer closes the server when bind fails, before __init__ ends: the error stays EADDRINUSE."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        with pytest.raises(OSError) as failed:
            serve(CollectorRegistry(), f"127.0.0.1:{holder.getsockname()[1]}")
    assert failed.value.errno == errno.EADDRINUSE
