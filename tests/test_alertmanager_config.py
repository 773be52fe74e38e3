"""alertmanager/alertmanager.yml checked by the real amtool and Alertmanager: validity without secrets,
routing of every catalogue alert, the templates, and the absence of secrets from the repository."""

from __future__ import annotations

import json
import re
import secrets
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml
from support import ROOT, free_port, running, tool

from generator.alertmanager_routes import ROUTES_TEST_PATH, expected_receivers, route_cases

CONFIG = ROOT / "alertmanager" / "alertmanager.yml"
TEMPLATES = ROOT / "alertmanager" / "templates"
SYSTEMS = ("gamebook", "qerrors", "pipeline", "tmux", "host", "redline")

# Every secret-bearing field of the receivers and the global section; only their *_file forms are allowed.
INLINE_SECRET_FIELDS = {
    "routing_key", "service_key", "api_url", "api_key", "auth_password", "auth_secret", "password",
    "bearer_token", "credentials", "token", "client_secret", "url", "webhook_url", "smtp_auth_password",
    "smtp_auth_secret", "slack_api_url", "opsgenie_api_key", "victorops_api_key", "wechat_api_secret",
    "telegram_bot_token", "webex_api_url",
}  # fmt: skip


def amtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("amtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=30)


def matcher_args(labels: dict[str, str]) -> list[str]:
    """Label pairs in amtool's matcher syntax: name="value", escaped like a JSON string."""
    return [f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in labels.items()]


def routes_to(labels: dict[str, str], receivers: list[str]) -> subprocess.CompletedProcess[str]:
    return amtool(
        "config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={','.join(receivers)}",
        *matcher_args(labels),
    )  # fmt: skip


def walk(node: Any, path: str = "") -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) for every mapping entry of a parsed YAML document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, str(key), value
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from walk(item, f"{path}[{i}]")


# ----------------------------------------------------------------------------------------------------
# Validity with the secret files absent


def test_check_config_passes_with_secret_files_absent(tmp_path: Path) -> None:
    # The working directory is where the *_file paths resolve; here it holds no secrets/ at all.
    result = amtool("check-config", str(CONFIG), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "3 inhibit rules" in result.stdout
    assert "4 receivers" in result.stdout
    assert "1 templates" in result.stdout


def test_alertmanager_starts_with_secret_files_absent(tmp_path: Path) -> None:
    port = free_port()
    cmd = [
        tool("alertmanager"), f"--config.file={CONFIG}", f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
    ]  # fmt: skip
    log = tmp_path / "alertmanager.log"
    with running(cmd, ready_url=f"http://127.0.0.1:{port}/-/ready", log=log):
        pass
    assert "level=ERROR" not in log.read_text()


# ----------------------------------------------------------------------------------------------------
# Routing


@pytest.mark.parametrize("system", SYSTEMS)
@pytest.mark.parametrize(
    ("severity", "receiver"), [("critical", "pager"), ("warning", "ticket"), ("info", "null")]
)
def test_severity_decides_the_receiver_in_every_system(system: str, severity: str, receiver: str) -> None:
    labels = {"alertname": "SomeAlert", "severity": severity, "system": system, "instance": "h:1"}
    assert expected_receivers(labels) == [receiver]
    result = routes_to(labels, [receiver])
    assert result.returncode == 0, result.stdout + result.stderr


def test_watchdog_goes_to_the_dead_mans_switch_only() -> None:
    labels = {"alertname": "Watchdog", "severity": "info", "system": "redline", "watchdog": "true"}
    assert expected_receivers(labels) == ["deadmans-switch"]
    result = routes_to(labels, ["deadmans-switch"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "deadmans-switch"  # continue: false -> no other receiver


def test_alert_without_known_severity_becomes_a_ticket() -> None:
    assert routes_to({"alertname": "Odd", "system": "host"}, ["ticket"]).returncode == 0
    assert routes_to({"alertname": "Odd", "severity": "page", "system": "host"}, ["ticket"]).returncode == 0


def test_route_verification_fails_on_a_wrong_receiver() -> None:
    # Guards the guard: amtool must reject a case whose expected receiver is wrong.
    result = routes_to({"alertname": "X", "severity": "warning", "system": "tmux"}, ["pager"])
    assert result.returncode != 0


def catalogue_cases() -> list[dict]:
    """Route cases rendered from the catalogue now, plus the committed routes.yml when it exists."""
    cases: list[dict] = []
    committed = ROOT / ROUTES_TEST_PATH
    if committed.exists():
        cases.extend(yaml.safe_load(committed.read_text())["cases"])
    if any((ROOT / "thresholds").glob("*.yml")):
        from generator.catalogue import load_catalogue

        cases.extend(route_cases(load_catalogue(check_promql=False)))
    unique = {json.dumps(case, sort_keys=True): case for case in cases}
    return list(unique.values())


def test_every_catalogue_alert_reaches_its_expected_receiver() -> None:
    cases = catalogue_cases()
    if not cases:
        pytest.skip("no catalogue yet (thresholds/*.yml) and no alertmanager/tests/routes.yml")
    # The catalogue pages, tickets and pings the dead man's switch (its Watchdog is one of the cases).
    assert {"pager", "ticket", "deadmans-switch"} <= {r for case in cases for r in case["receivers"]}
    for case in cases:
        assert case["receivers"] == expected_receivers(case["labels"]), case
        assert case["labels"]["severity"] in {"critical", "warning", "info"}, case
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda c: (c, routes_to(c["labels"], c["receivers"])), cases))
    failures = [f"{c['alert']} {c['labels']} -> expected {c['receivers']}, got {r.stdout.split()}"
                for c, r in results if r.returncode != 0]  # fmt: skip
    assert not failures, "\n".join(failures)


# ----------------------------------------------------------------------------------------------------
# Templates


def render(template: str, data: dict, tmp_path: Path) -> str:
    data_file = tmp_path / "data.json"
    data_file.write_text(json.dumps(data))
    result = amtool(
        "template", "render", f"--template.glob={TEMPLATES}/*.tmpl", f"--template.data={data_file}",
        f"--template.text={template}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def notification_data(status: str) -> dict:
    labels = {
        "alertname": "TmuxMemoryHigh",
        "severity": "critical",
        "system": "tmux",
        "instance": "host a:9205",
    }
    alert = {
        "status": status,
        "labels": labels,
        "annotations": {
            "summary": "tmux monitor RSS 800 MB > 750 MB",
            "description": "The monitor's resident memory is 800 MB, above the 750 MB alert line.",
            "runbook_url": "https://runbooks.example/tmux#TmuxMemoryHigh",
            "dashboard_url": "http://127.0.0.1:3000/d/redline-tmux?viewPanel=123",
        },
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": "0123456789abcdef",
    }
    return {
        "receiver": "pager",
        "status": status,
        "alerts": [alert],
        "groupLabels": {"alertname": "TmuxMemoryHigh", "system": "tmux"},
        "commonLabels": labels,
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://127.0.0.1:9093",
    }


def test_title_names_status_severity_system_and_summary(tmp_path: Path) -> None:
    title = render('{{ template "redline.title" . }}', notification_data("firing"), tmp_path)
    assert title == "[FIRING:1] CRITICAL tmux: tmux monitor RSS 800 MB > 750 MB"
    title = render('{{ template "redline.title" . }}', notification_data("resolved"), tmp_path)
    assert title == "[RESOLVED] CRITICAL tmux: tmux monitor RSS 800 MB > 750 MB"


def test_body_has_description_runbook_dashboard_and_silence_links(tmp_path: Path) -> None:
    text = render('{{ template "redline.text" . }}', notification_data("firing"), tmp_path)
    lines = text.splitlines()
    assert lines[0] == "FIRING TmuxMemoryHigh on host a:9205"
    assert lines[1] == "The monitor's resident memory is 800 MB, above the 750 MB alert line."
    assert lines[2] == "Runbook: https://runbooks.example/tmux#TmuxMemoryHigh"
    assert lines[3] == "Dashboard: http://127.0.0.1:3000/d/redline-tmux?viewPanel=123"
    # A silence pre-filled with exactly this alert's labels, in Alertmanager's UI.
    assert lines[4] == (
        "Silence: http://127.0.0.1:9093/#/silences/new?filter=%7B"
        "alertname%3D%22TmuxMemoryHigh%22%2Cinstance%3D%22host%20a%3A9205%22%2C"
        "severity%3D%22critical%22%2Csystem%3D%22tmux%22%7D"
    )


def test_every_receiver_resolves_and_uses_the_templates() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    for receiver in config["receivers"]:
        for kind in ("pagerduty_configs", "slack_configs", "email_configs", "webhook_configs"):
            for entry in receiver.get(kind, []):
                if receiver["name"] != "deadmans-switch":
                    assert entry.get("send_resolved") is True, (receiver["name"], kind)
                if kind == "slack_configs":
                    assert "redline.title" in entry["title"] and "redline.text" in entry["text"]
                if kind == "pagerduty_configs":
                    assert "redline.title" in entry["description"]
                if kind == "email_configs":
                    assert "redline.title" in entry["headers"]["Subject"] and "redline.text" in entry["text"]


# ----------------------------------------------------------------------------------------------------
# No secrets in the repository


def test_config_has_no_inline_secret_fields() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    file_fields = []
    for path, key, value in walk(config):
        assert key not in INLINE_SECRET_FIELDS, (
            f"alertmanager.yml{path}.{key}: secrets must come from a *_file"
        )
        if key.endswith("_file"):
            file_fields.append((f"{path}.{key}", value))
    assert len(file_fields) >= 7  # pagerduty, 2x slack, smtp, 3x webhook
    for where, value in file_fields:
        assert isinstance(value, str) and value.startswith("secrets/"), (
            f"{where}: {value!r} not under secrets/"
        )
    # The same on the raw text, so a field the YAML walk does not know still cannot hide a literal.
    for number, line in enumerate(CONFIG.read_text().splitlines(), 1):
        match = re.match(r"\s*-?\s*([a-z_]+):\s*(\S.*)?$", line)
        if match and match.group(2) and match.group(1) in INLINE_SECRET_FIELDS:
            pytest.fail(f"alertmanager.yml:{number}: inline secret field {match.group(1)!r}")


def repo_files() -> list[Path]:
    """Tracked files plus the untracked ones git would add (not ignored)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return [ROOT / name for name in out.decode().split("\0") if name and (ROOT / name).is_file()]


def test_no_secret_value_is_in_any_repository_file() -> None:
    # Provision secret files where a deployment of this checkout would keep them (alertmanager/secrets/,
    # git-ignored), with values that exist nowhere else, and prove git would never pick them up.
    secrets_dir = ROOT / "alertmanager" / "secrets"
    created_dir = not secrets_dir.exists()
    secrets_dir.mkdir(exist_ok=True)
    config_text = CONFIG.read_text()
    names = sorted(set(re.findall(r"secrets/([A-Za-z0-9_.-]+)", config_text)))
    assert {"pagerduty-routing-key", "slack-pager-url", "smtp-auth-password", "pager-webhook-url"} <= set(
        names
    )
    values = {name: f"redline-test-secret-{secrets.token_hex(16)}" for name in names}
    written = []
    try:
        for name, value in values.items():
            path = secrets_dir / f"{name}.test-{secrets.token_hex(4)}"
            path.write_text(value + "\n")
            written.append(path)
        files = repo_files()
        assert files, "git ls-files returned nothing"
        assert not [p for p in files if p in written], "secret files would be committed"
        for path in files:
            data = path.read_bytes()
            for name, value in values.items():
                assert value.encode() not in data, f"{path}: contains the value of secret {name}"
            # Real-looking credentials: Slack webhook paths, PagerDuty-style 32-hex routing keys after a key.
            text = data.decode(errors="replace")
            assert not re.search(r"hooks\.slack\.com/services/T[A-Z0-9]+/", text), path
            assert not re.search(r"routing_key:\s*['\"]?[0-9a-f]{32}", text), path
    finally:
        for path in written:
            path.unlink()
        if created_dir:
            secrets_dir.rmdir()
