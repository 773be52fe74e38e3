"""alertmanager/alertmanager.yml checked by the real amtool and Alertmanager: validity without secrets,
routing of every catalogue alert, the templates, the command lines documented in alertmanager/README.md,
and the absence of secrets from the repository."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from redline.generate.render.alertmanager_routes import ROUTES_TEST_PATH, expected_receivers, route_cases
from redline.testing.processes import ROOT, free_port, running, tool

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
        from redline.generate.load import load_catalogue

        cases.extend(route_cases(load_catalogue()))
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


def repo_files() -> list[str]:
    """Paths (relative to the checkout) of the files git tracks, plus the untracked ones it would add."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    return sorted({name for name in out.decode().split("\0") if name and (ROOT / name).is_file()})


INLINE, ENV = "inline secret field in YAML", "literal password or token in an environment setting"
# Secret material, by shape. Each pattern's group "value" (when it has one) is the part that must be a
# placeholder (empty, a ${VAR} / {{ template }} / {python} / <placeholder> reference) to be allowed.
SECRET_PATTERNS: dict[str, re.Pattern[str]] = {
    "Slack webhook URL": re.compile(
        r"hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{16,}"
    ),
    "Slack token": re.compile(r"\bxox[abprs]-[0-9A-Za-z-]{10,}"),
    "PagerDuty-style key": re.compile(
        r"(?i)\b(?:routing|service|integration)[_-]?key\b\W{0,5}[0-9a-f]{32}\b"
    ),
    "private key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    "AWS access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[0-9A-Za-z]{36,}\b"),
    "credentials in a URL": re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:(?P<value>[^/\s@'\"]+)@"),
    # NAME=value (dotenv, shell, Dockerfile ENV) or NAME: value (YAML environment maps); *_FILE names
    # (GF_SECURITY_ADMIN_PASSWORD__FILE, DATA_SOURCE_PASS_FILE) point at files and do not match.
    ENV: re.compile(
        r"^[ \t]*(?:export[ \t]+|ENV[ \t]+|-[ \t]+)?['\"]?"
        r"(?:GF_SECURITY_ADMIN_PASSWORD|GRAFANA_ADMIN_PASSWORD|POSTGRES_PASSWORD|PGPASSWORD|DATA_SOURCE_PASS"
        r"|[A-Z0-9_]*(?:PASSWORD|SECRET|TOKEN|API_KEY))['\"]?[ \t]*[=:][ \t]*(?P<value>[^\s#]+)",
        re.MULTILINE,
    ),
}
# Inline secret fields in YAML files (Alertmanager, Grafana provisioning, compose...); their *_file
# variants (password_file, api_url_file, routing_key_file, ...) do not match.
YAML_SECRET_FIELD = re.compile(
    r"^[ \t]*(?:-[ \t]+)?['\"]?(?P<key>password|passwd|auth_password|smtp_auth_password|auth_secret"
    r"|smtp_auth_secret|api_url|slack_api_url|webhook_url|routing_key|service_key|api_key|bearer_token"
    r"|client_secret|secret|token|credentials|secretKey|basicAuthPassword)['\"]?[ \t]*:[ \t]*"
    r"(?P<value>[^\s#][^#\n]*?)[ \t]*$",
    re.MULTILINE,
)
PLACEHOLDER = re.compile(
    r"""^(?:''|""|~|null|\$\{?[A-Za-z_].*|\{\{.*|\{[a-z_][a-z0-9_.()'"\[\]]*\}|<[^>]+>)$"""
)
# Documented exceptions: (kind, matched text), each with the reason.
SECRET_ALLOW_LIST: set[tuple[str, str]] = {
    # The malformed-DSN inputs of tests/integration/test_demo.py and tests/integration/test_jobs.py.
    ("credentials in a URL", "postgresql://u:secret@"),
    # docker-compose.yml's alertmanager-secrets job: the pager-sink's token (read from its file) becomes the
    # basic-auth password of the webhook URL files it writes.
    ("credentials in a URL", "http://alertmanager:%s@"),
}


def secret_findings(name: str, text: str) -> list[str]:
    """Secret material in one file's text, as 'name:line: kind' (the value itself is not repeated)."""
    found = []
    checks = list(SECRET_PATTERNS.items())
    if name.endswith((".yml", ".yaml")):
        checks.append((INLINE, YAML_SECRET_FIELD))
    for kind, pattern in checks:
        for match in pattern.finditer(text):
            value = match.groupdict().get("value")
            if value is not None:
                if kind == ENV and name.endswith(".py") and value[0] not in "'\"":
                    continue  # Python code (X_PASSWORD = re.compile(...)), not a string literal
                if PLACEHOLDER.match(value.strip().rstrip(",;").strip("'\"") or "''"):
                    continue
            if (kind, match.group(0).strip()) in SECRET_ALLOW_LIST:
                continue
            line = text.count("\n", 0, match.start()) + 1
            found.append(f"{name}:{line}: {kind}" + (f" ({match.group('key')})" if kind == INLINE else ""))
    return found


def scan_for_secrets(root: Path, names: list[str]) -> list[str]:
    findings = []
    for name in names:
        data = (root / name).read_bytes()
        if b"\0" in data[:8192]:
            continue  # binary
        findings += secret_findings(name, data.decode(errors="replace"))
    return findings


def test_no_secret_material_in_any_file_git_tracks_or_would_add() -> None:
    names = repo_files()
    assert len(names) > 50 and "alertmanager/alertmanager.yml" in names, "git ls-files returned too little"
    findings = scan_for_secrets(ROOT, names)
    assert not findings, "secret material in the repository:\n" + "\n".join(findings)


def fake(*parts: str) -> str:
    """A fake secret assembled at run time, so that this file itself never contains it."""
    return "".join(parts)


PLANTED = [
    ("notes.md", fake("https://hooks.slack", ".com/services/T0FAKE0001/B0FAKE0002/a1B2c3D4e5F6g7H8i9J0k1L2"),
     "Slack webhook URL"),
    ("am.yml", fake("routing_", "key: 0123456789abcdef0123456789abcdef\n"), "PagerDuty-style key"),
    ("am.yml", "      - routing_key: R0UT1NGK3Y\n", INLINE),
    ("am.yml", "  smtp_auth_password: hunter2\n", INLINE),
    ("am.yml", "  - api_url: https://chat.example/hook/abc\n", INLINE),
    ("am.yml", "        auth_password: 'hunter2'\n", INLINE),
    ("key.pem", fake("-----BEGIN ", "RSA PRIVATE KEY-----\n"), "private key"),
    ("key.pem", fake("-----BEGIN ", "OPENSSH PRIVATE KEY-----\n"), "private key"),
    (".env", "GF_SECURITY_ADMIN_PASSWORD=hunter2\n", ENV),
    (".env", "POSTGRES_PASSWORD=hunter2\n", ENV),
    ("docker-compose.yml", "      POSTGRES_PASSWORD: hunter2\n", ENV),
    ("smtp.txt", fake("smtp://user:hun", "ter2@mail.example:587\n"), "credentials in a URL"),
    ("settings.py", 'DB_PASSWORD = "hunter2"\n', ENV),
]  # fmt: skip


@pytest.mark.parametrize(("name", "text", "kind"), PLANTED)
def test_the_secret_scanner_reports_planted_secrets(tmp_path: Path, name: str, text: str, kind: str) -> None:
    # Guards the guard: the same scanner, on a temporary file holding a fake secret, must report it.
    (tmp_path / name).write_text(text)
    findings = scan_for_secrets(tmp_path, [name])
    assert findings and all(f.startswith(f"{name}:") for f in findings), findings
    assert any(kind in f for f in findings), findings


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("am.yml", "  smtp_auth_password_file: secrets/smtp-auth-password\n"),
        ("am.yml", "      - routing_key_file: secrets/pagerduty-routing-key\n"),
        ("am.yml", "      - api_url_file: secrets/slack-pager-url\n"),
        ("am.yml", "      password: '{{ .Values.password }}'\n"),
        (".env.example", "POSTGRES_PASSWORD=\n"),
        ("compose.yml", "      GF_SECURITY_ADMIN_PASSWORD: ${GRAFANA_ADMIN_PASSWORD:?set it in .env}\n"),
        ("compose.yml", "      GF_SECURITY_ADMIN_PASSWORD__FILE: /run/secrets/grafana-admin-password\n"),
        ("cli.py", '_URI_PASSWORD = re.compile(r"://[^:/@\\s]*:([^@\\s]*)@")\n'),
        ("stack.py", '    dsn = f"postgresql://redline:{password}@127.0.0.1/pipeline"\n'),
    ],
)
def test_the_secret_scanner_lets_file_references_and_placeholders_pass(
    tmp_path: Path, name: str, text: str
) -> None:
    (tmp_path / name).write_text(text)
    assert scan_for_secrets(tmp_path, [name]) == []


def test_gitignore_keeps_secret_files_out_of_git(tmp_path: Path) -> None:
    # In a scratch repository with the checkout's .gitignore files (nothing is written into the
    # checkout): create every file a deployment keeps its secrets in and ask git what it would add.
    ignore_files = [name for name in repo_files() if Path(name).name == ".gitignore"]
    assert ".gitignore" in ignore_files
    for name in ignore_files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    referenced = sorted(set(re.findall(r"secrets/([A-Za-z0-9][A-Za-z0-9_.-]*)", CONFIG.read_text())))
    assert {"pagerduty-routing-key", "slack-pager-url", "smtp-auth-password", "pager-webhook-url"} <= set(
        referenced
    )
    private = [
        ".env",  # docker compose's passwords (.env.example is the committed template)
        *[f"alertmanager/secrets/{name}" for name in referenced],  # the operator's Alertmanager secrets
        *[f".run/alertmanager/secrets/{name}" for name in referenced],  # what `redline up` writes
        ".run/secrets/postgres-password",
        ".run/secrets/grafana-admin-password",
        ".run/secrets/pgpass",
        # the stack's credentials (redline/credentials.py) and the other PostgreSQL roles' passwords
        ".run/secrets/web-password",
        ".run/secrets/web-config.yml",
        ".run/secrets/pager-sink-token",
        ".run/secrets/demo-token",
        ".run/secrets/postgres-demo-password",
        ".run/secrets/postgres-job-exporter-password",
        ".run/secrets/postgres-monitor-password",
        "secrets/web-password",  # what prometheus/prometheus.yml reads when run from the checkout
    ]
    public = ["alertmanager/alertmanager.yml", ".env.example"]  # control: these git must see
    for name in private + public:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=30)
    out = subprocess.run(
        ["git", "ls-files", "--others", "--exclude-standard"], cwd=tmp_path, capture_output=True, text=True,
        check=True, timeout=30,
    ).stdout.split()  # fmt: skip
    assert sorted(out) == sorted([*ignore_files, *public])


# ----------------------------------------------------------------------------------------------------
# The documented command lines are the ones `redline up` runs


def readme_alertmanager_commands() -> list[list[str]]:
    """Every `alertmanager ...` command of alertmanager/README.md's code blocks, in order."""
    text = (ROOT / "alertmanager" / "README.md").read_text()
    commands = []
    for block in re.findall(r"^```\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("alertmanager "):
                commands.append(shlex.split(line))
    return commands


def runner_alertmanager_commands(ha: bool) -> list[list[str]]:
    """The Alertmanager command lines of `redline up` (--ha) with the default ports and run folder .run."""
    from redline import topology
    from redline.stack import runner as stack

    ctx = stack.Context(run_dir=ROOT / ".run", ha=ha, ports=topology.ports({}))
    services, _ = stack.select_services(ctx, ["alertmanager", "alertmanager-2", "alertmanager-3"])
    commands = []
    for service in services:
        assert service.workdir(ctx) == ctx.path("alertmanager")  # where secrets/ resolves
        cmd = service.command(ctx)
        commands.append(["alertmanager", *(arg.replace(f"{ROOT}/", "") for arg in cmd[1:])])
    return commands


def test_readme_shows_exactly_the_alertmanager_commands_redline_up_runs() -> None:
    single, ha = runner_alertmanager_commands(ha=False), runner_alertmanager_commands(ha=True)
    assert len(single) == 1 and len(ha) == 3
    assert readme_alertmanager_commands() == single + ha
