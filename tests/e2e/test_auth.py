"""Authentication on the native stack: every state-changing endpoint refuses a caller without credentials
(401), while the stack's own traffic and redline's own commands, which read the run folder's credentials,
keep working.

One `redline up` on free ports (redline/testing/sandbox.py) of the services with an HTTP API: Prometheus,
Alertmanager, vmagent, blackbox_exporter, the pager-sink and the demo. Which endpoints stay open, and why:
docs/native-stack.md.
"""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from redline import credentials
from redline.testing.processes import tool, wait_until
from redline.testing.sandbox import Sandbox

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SERVICES = ["prometheus", "alertmanager", "vmagent", "blackbox", "pager-sink", "demo"]
SILENCE = json.dumps(
    {
        "matchers": [{"name": "alertname", "value": ".+", "isRegex": True}],
        "startsAt": "2030-01-01T00:00:00Z",
        "endsAt": "2030-01-02T00:00:00Z",
        "createdBy": "attacker",
        "comment": "silence every page",
    }
).encode()
ALERT = json.dumps({"receiver": "pager", "status": "firing", "alerts": [{"labels": {"alertname": "Forged"}}]})


def call(
    url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None
) -> int:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return err.code


@pytest.fixture(scope="module")
def stack() -> Iterator[Sandbox]:
    with Sandbox(only=SERVICES, demo_args="--otlp-interval=1") as sandbox:
        yield sandbox


def refused_without_credentials(stack: Sandbox) -> dict[str, int]:
    """What each state-changing request gets without credentials (and, for the web endpoints, with a
    wrong password): the status by request."""
    url = stack.url
    wrong = {"Authorization": "Basic " + base64.b64encode(b"redline:not-the-password").decode()}
    json_type = {"Content-Type": "application/json"}
    requests = {
        "Alertmanager: create a silence": (
            f"{url('alertmanager')}/api/v2/silences",
            "POST",
            SILENCE,
            json_type,
        ),
        "Alertmanager: /-/reload": (f"{url('alertmanager')}/-/reload", "POST", b"", {}),
        "Prometheus: /-/quit": (f"{url('prometheus')}/-/quit", "POST", b"", {}),
        "Prometheus: /-/reload": (f"{url('prometheus')}/-/reload", "POST", b"", {}),
        "Prometheus: remote write": (f"{url('prometheus')}/api/v1/write", "POST", b"", {}),
        "Prometheus: query": (f"{url('prometheus')}/api/v1/query?query=up", "GET", None, {}),
        "vmagent: import": (f"{url('vmagent')}/api/v1/import/prometheus", "POST", b"forged 1\n", {}),
        "vmagent: OTLP": (f"{url('vmagent')}/opentelemetry/v1/metrics", "POST", b"", {}),
        "blackbox: /-/reload": (f"{url('blackbox')}/-/reload", "POST", b"", {}),
        "pager-sink: a page": (f"{url('pager-sink')}/pager", "POST", ALERT.encode(), json_type),
        "pager-sink: the notifications": (f"{url('pager-sink')}/notifications", "GET", None, {}),
        "demo: inject a fault": (f"{url('demo-control')}/fault?system=tmux&fault=cpu", "POST", b"", {}),
        "demo: clear a fault": (f"{url('demo-control')}/fault?system=tmux&fault=cpu", "DELETE", None, {}),
    }
    statuses = {}
    for name, (target, method, body, headers) in requests.items():
        statuses[name] = call(target, method, body, headers)
        if name.split(":")[0] in {"Alertmanager", "Prometheus", "vmagent", "blackbox"}:
            statuses[name + " (wrong password)"] = call(target, method, body, {**headers, **wrong})
    return statuses


def test_state_changing_endpoints_refuse_callers_without_credentials(stack: Sandbox) -> None:
    statuses = refused_without_credentials(stack)
    assert statuses == dict.fromkeys(statuses, 401)
    # Nothing took effect: Prometheus still runs, no silence, no fault, no page, no series.
    assert call(f"{stack.url('prometheus')}/-/healthy", headers=stack.auth) == 200
    silences = stack.get_json(f"{stack.url('alertmanager')}/api/v2/silences")
    assert [s for s in silences if s["createdBy"] == "attacker"] == []
    faults = json.loads(urllib.request.urlopen(f"{stack.url('demo-control')}/faults", timeout=5).read())
    assert not any(row["active"] for row in faults)
    assert "Forged" not in json.dumps(stack.notifications())
    assert stack.query("forged") == []


def test_read_only_endpoints_that_stay_open(stack: Sandbox) -> None:
    """Health checks, and the demo's fault list (docs/native-stack.md says why)."""
    assert call(f"{stack.url('vmagent')}/health") == 200
    assert call(f"{stack.url('pager-sink')}/-/healthy") == 200
    assert call(f"{stack.url('demo-control')}/faults") == 200
    assert call(f"{stack.url('demo-control')}/health") == 200


def test_the_stack_authenticates_to_itself(stack: Sandbox) -> None:
    """Prometheus scrapes itself, Alertmanager, vmagent and the probes through blackbox with the password
    file; vmagent's remote write and the demo's OTLP push get in; Alertmanager delivers to the pager-sink
    with its token. (Prometheus -> Alertmanager with the password file: tests/e2e/test_pages.py, whose
    pages take that way, and the HA cluster of tests/integration/test_alertmanager_live.py.)"""
    wait_until(
        lambda: (
            {s["metric"]["job"] for s in stack.query("up == 1")}
            >= {"prometheus", "alertmanager", "vmagent", "blackbox", "gamebook", "tmux-monitor"}
        ),
        timeout=60,
        what="the authenticated scrape jobs up",
    )
    wait_until(lambda: stack.query("gamebook_client_fps"), timeout=60, what="FPS via OTLP into vmagent")
    alert = [{"labels": {"alertname": "AuthTestPage", "severity": "critical", "system": "redline"}}]
    posted = call(
        f"{stack.url('alertmanager')}/api/v2/alerts",
        "POST",
        json.dumps(alert).encode(),
        {**stack.auth, "Content-Type": "application/json"},
    )
    assert posted == 200
    record, _ = stack.wait_for_notification("/pager", "AuthTestPage", timeout=30)
    assert record["payload"]["receiver"] == "pager"


def test_redline_commands_and_the_upstream_tools_work_with_the_run_folder(stack: Sandbox) -> None:
    reload = stack.redline("reload")
    assert reload.returncode == 0, reload.stdout + reload.stderr
    assert f"Prometheus {stack.url('prometheus')}: reloaded" in reload.stdout
    assert f"Alertmanager {stack.url('alertmanager')}: reloaded" in reload.stdout
    assert f"blackbox_exporter {stack.url('blackbox')}: reloaded" in reload.stdout
    for action in ([], ["--clear"]):
        fault = stack.redline("demo", "fault", "tmux", "cpu", *action)
        assert fault.returncode == 0, fault.stderr
    # An operator's amtool and promtool, with the client config `redline up` writes.
    client = f"--http.config.file={credentials.secret_path(stack.run_dir, credentials.HTTP_CLIENT)}"
    amtool = [tool("amtool"), f"--alertmanager.url={stack.url('alertmanager')}", client]
    added = subprocess.run(
        [*amtool, "silence", "add", "alertname=AuthTest", "--comment=test", "--duration=1m"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert added.returncode == 0, added.stderr
    silences = stack.get_json(f"{stack.url('alertmanager')}/api/v2/silences")
    assert [s["id"] for s in silences if s["comment"] == "test"] == [added.stdout.strip()]
    ready = subprocess.run(
        [tool("promtool"), "check", "ready", f"--url={stack.url('prometheus')}", client],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ready.returncode == 0, ready.stdout + ready.stderr


def test_secrets_are_private_and_the_web_config_holds_no_password(stack: Sandbox) -> None:
    secrets = stack.run_dir / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    for path in secrets.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    assert stat.S_IMODE((stack.run_dir / "supervisord.conf").stat().st_mode) == 0o600
    assert stat.S_IMODE((stack.run_dir / "pager-sink" / "notifications.jsonl").stat().st_mode) == 0o600
    password = credentials.read_secret(secrets / credentials.WEB_PASSWORD_FILE)
    assert password not in (secrets / credentials.WEB_CONFIG).read_text()
    # Nor is any secret on a command line, where every local user could read it (ps).
    conf = (stack.run_dir / "supervisord.conf").read_text()
    commands = [line for line in conf.splitlines() if line.startswith("command=")]
    tokens = [credentials.read_secret(secrets / name) for name in (
        credentials.WEB_PASSWORD_FILE, credentials.PAGER_SINK_TOKEN_FILE, credentials.DEMO_TOKEN_FILE
    )]  # fmt: skip
    assert not [c for c in commands if any(token in c for token in tokens)]
