"""docker-compose.yml: accepted by the real `docker-compose config`, and at parity with the native stack.

No Docker engine is needed: `docker-compose config` (Debian's Compose v2 binary from .tools/bin) resolves
and validates the file. Parity is checked against the native runner itself (redline/stack/services.py):
the same services, the same 127.0.0.1 ports, the same config files, the same scrape targets and labels,
the same upstream versions as the pinned binaries.
"""

from __future__ import annotations

import os
import posixpath
import re
import shutil
import stat
import subprocess
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from redline import pg_roles, tools, topology
from redline.stack import runner as stack
from redline.stack.rundir import native_targets
from redline.testing.processes import ROOT, tool

pytestmark = pytest.mark.timeout(120)

COMPOSE_FILE = ROOT / "docker-compose.yml"
# Values for the required variables while resolving the file.
REQUIRED = ("GRAFANA_ADMIN_PASSWORD", *(role.env for role in pg_roles.PG_ROLES))
TEST_ENV = {name: f"test-only-{name.lower()}" for name in REQUIRED}
HA_ENV = {"COMPOSE_PROFILES": "ha", "REDLINE_ALERTMANAGER_TARGETS": "./prometheus/targets/compose/ha"}
SCALE_ENV = {  # .env.example's scale lines
    "COMPOSE_PROFILES": "ha,scale",
    "REDLINE_PROMETHEUS_CONFIG": "prometheus-scale.yml",
    "REDLINE_COLLECTOR_CONFIG": "config-scale.yml",
    "REDLINE_TARGETS": "./prometheus/targets/compose/scale",
    "REDLINE_ALERTMANAGER_TARGETS": "./prometheus/targets/compose/scale",
    "REDLINE_HISTORY_URL": "http://victoria-metrics:8428",
}
PROFILE_ENV = {"default": {}, "ha": HA_ENV, "scale": SCALE_ENV}
# Native services with no compose service of the same role, and why.
NATIVE_ONLY = {"vmagent": "otel-collector"}  # the OTLP gateway: vmagent natively, the collector in compose
# Compose images and the binary whose `--version` pins them.
PINNED = {
    "prom/prometheus": "prometheus",
    "prom/alertmanager": "alertmanager",
    "prom/node-exporter": "node_exporter",
    "prom/blackbox-exporter": "blackbox_exporter",
    "prometheuscommunity/postgres-exporter": "postgres_exporter",
    "victoriametrics/victoria-metrics": "victoria-metrics",
    "victoriametrics/vmalert": "vmalert",
}
PG_BIN = Path("/usr/lib/postgresql/15/bin/postgres")


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real docker-compose with a clean environment (no .env, no inherited COMPOSE_*)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "REDLINE_", "DOCKER_"))}
    for name in TEST_ENV:
        clean.pop(name, None)
    cmd = [tool("docker-compose"), "--env-file", os.devnull, "-f", str(COMPOSE_FILE), *args]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=60, cwd=ROOT, env={**clean, **(env or {})}, check=False
    )


@cache
def resolved(profile: str = "scale") -> dict[str, Any]:
    """`docker-compose config` output (YAML keeps the x- fields that JSON output drops) with the
    settings of a profile (default, ha, scale: every service)."""
    result = compose("config", env={**TEST_ENV, **PROFILE_ENV[profile]})
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def services(profile: str = "scale") -> dict[str, dict[str, Any]]:
    return resolved(profile)["services"]


def flag(service: dict[str, Any], name: str) -> str:
    """The value of --name=VALUE in a service's command."""
    for arg in service.get("command") or []:
        if arg.startswith(f"--{name}="):
            return str(arg.split("=", 1)[1])
    raise AssertionError(f"--{name} not in {service.get('command')}")


def host_path(service: dict[str, Any], container_path: str) -> Path | str:
    """Where a path inside the container comes from: a host path (bind) or 'volume:NAME'."""
    target = PurePosixPath(container_path)
    best = None
    for mount in service.get("volumes") or []:
        mount_target = PurePosixPath(mount["target"])
        if (target == mount_target or mount_target in target.parents) and (
            best is None or len(mount_target.parts) > len(PurePosixPath(best["target"]).parts)
        ):
            best = mount
    assert best is not None, f"{container_path} is not mounted"
    rest = target.relative_to(best["target"])
    if best["type"] == "volume":
        return f"volume:{best['source']}"
    return Path(best["source"]) / rest


def binary_version(name: str) -> str:
    pinned = {t.name: t for t in tools.load_versions()[1]}[name]
    if pinned.version_from_package:  # Debian's build prints no version: the package's, as setup checked
        version = tools.installed_version(pinned, tool(name))
        assert version is not None, f"{name}: no recorded package version; run 'make setup'"
        return version.base_version
    out = subprocess.run([tool(name), "--version"], capture_output=True, text=True, timeout=30)
    match = re.search(r"version (\d+\.\d+\.\d+)", out.stdout + out.stderr)
    assert match, f"{name} --version: {out.stdout}{out.stderr}"
    return match.group(1)


# ----- the file is valid, and stops clearly without its passwords ---------------------------------


def test_compose_config_accepts_the_file_with_and_without_ha_and_scale() -> None:
    default = set(services("default"))
    ha = set(services("ha"))
    assert ha - default == {"alertmanager-2", "alertmanager-3"}
    assert set(services("scale")) - ha == {"prometheus-2", "victoria-metrics", "vmalert"}
    assert {"prometheus", "alertmanager", "grafana", "otel-collector", "pager-sink", "demo"} <= default


@pytest.mark.parametrize("missing", sorted(TEST_ENV))
def test_compose_stops_with_a_clear_message_when_a_password_is_unset(missing: str) -> None:
    env = {k: v for k, v in TEST_ENV.items() if k != missing}
    result = compose("config", env=env)
    assert result.returncode != 0
    assert f"required variable {missing} is missing a value: set {missing} in .env (see .env.example)" in (
        result.stderr
    )
    empty = compose("config", env={**env, missing: ""})
    assert empty.returncode != 0 and f"required variable {missing}" in empty.stderr


# ----- parity with the native stack ---------------------------------------------------------------


def test_every_service_has_a_native_counterpart_or_a_reason() -> None:
    native_names = set(stack.SERVICE_NAMES)
    counterparts = set()
    for name, service in services().items():
        native = service.get("x-redline-native")
        reason = service.get("x-redline-compose-only")
        assert (native is None) != (reason is None), (
            f"{name}: needs exactly one of x-redline-native/-compose-only"
        )
        if native is not None:
            assert native in native_names, (
                f"{name}: x-redline-native {native!r} is not a service of redline up"
            )
            counterparts.add(native)
        else:
            assert len(reason.split()) >= 6, f"{name}: x-redline-compose-only needs a real reason"
    assert native_names - counterparts == set(NATIVE_ONLY), "native services missing from compose"
    for native, compose_service in NATIVE_ONLY.items():
        assert native in services()[compose_service]["x-redline-compose-only"]


def test_ports_are_published_on_loopback_at_the_native_ports() -> None:
    for name, service in services().items():
        assert service.get("network_mode") is None, f"{name}: host networking bypasses the 127.0.0.1 rule"
        ports = service.get("ports") or []
        for port in ports:
            assert port.get("host_ip") == "127.0.0.1", f"{name}: port {port} not bound to 127.0.0.1"
        native = service.get("x-redline-native")
        if native:
            published = {int(p["published"]) for p in ports}
            native_ports = {row.port for row in topology.ENDPOINTS if row.service == native}
            assert published == native_ports, f"{name}: published {published} vs native"


def test_scale_replicas_read_the_rendered_scale_config_and_targets() -> None:
    svc = services("scale")
    for name in ("prometheus", "prometheus-2"):
        config = flag(svc[name], "config.file")
        assert host_path(svc[name], config) == ROOT / "prometheus" / "prometheus-scale.yml"
        targets = f"{PurePosixPath(config).parent}/targets/prometheus.yml"
        assert host_path(svc[name], targets) == ROOT / "prometheus/targets/compose/scale/prometheus.yml"
        alerting = f"{PurePosixPath(config).parent}/targets/alertmanagers.yml"
        assert host_path(svc[name], alerting) == ROOT / "prometheus/targets/compose/scale/alertmanagers.yml"
    assert host_path(svc["victoria-metrics"], "/etc/secrets/web-password") == "volume:stack-secrets"
    otel = svc["otel-collector"]  # exports into both replicas (tests/unit/test_otlp_labels.py reads it)
    assert host_path(otel, flag(otel, "config")) == ROOT / "otel-collector" / "config-scale.yml"


@pytest.mark.parametrize(("profile", "history"), [("ha", "prometheus"), ("scale", "victoria-metrics")])
def test_grafana_and_the_console_read_history_from_the_store_with_scale(profile: str, history: str) -> None:
    """redline/storage.py history: VictoriaMetrics with the profile scale, the Prometheus otherwise."""
    svc = services(profile)
    url = f"http://{topology.compose_address(topology.endpoint(history))}"
    assert svc["grafana"]["environment"]["REDLINE_HISTORY_URL"] == url
    assert f"--history={url}" in svc["console"]["command"]
    assert (
        f"--prometheus=http://{topology.compose_address(topology.endpoint('prometheus'))}"
        in (svc["console"]["command"])
    )


def test_vmalert_evaluates_the_long_term_rules_against_the_store() -> None:
    vmalert = services("scale")["vmalert"]
    rule = next(a.split("=", 1)[1] for a in vmalert["command"] if a.startswith("-rule="))
    assert host_path(vmalert, rule) == ROOT / "prometheus" / "long-term" / "rules.yml"
    store = f"http://{topology.compose_address(topology.endpoint('victoria-metrics'))}"
    assert f"-datasource.url={store}" in vmalert["command"]
    assert f"-remoteWrite.url={store}" in vmalert["command"]
    assert vmalert["profiles"] == ["scale"]
    assert "vmalert" not in services("ha")


def test_mounted_configs_are_the_repo_files_the_native_stack_uses() -> None:
    svc = services("ha")
    prom = svc["prometheus"]
    config = flag(prom, "config.file")
    assert host_path(prom, config) == ROOT / "prometheus" / "prometheus.yml"
    config_dir = str(PurePosixPath(config).parent)
    assert host_path(prom, f"{config_dir}/rules") == ROOT / "prometheus" / "rules"
    assert (
        host_path(prom, f"{config_dir}/targets/gamebook.yml")
        == ROOT / "prometheus/targets/compose/gamebook.yml"
    )
    for am in ("alertmanager", "alertmanager-2", "alertmanager-3"):
        config = flag(svc[am], "config.file")
        assert host_path(svc[am], config) == ROOT / "alertmanager" / "alertmanager.yml"
        templates = str(PurePosixPath(config).parent / "templates")
        assert host_path(svc[am], templates) == ROOT / "alertmanager" / "templates"
        # *_file secrets are relative to the working folder (alertmanager/alertmanager.yml says so).
        assert host_path(svc[am], f"{svc[am]['working_dir']}/secrets/x") == "volume:alertmanager-secrets"
    assert (
        host_path(svc["blackbox"], flag(svc["blackbox"], "config.file")) == ROOT / "prometheus/blackbox.yml"
    )
    otel = svc["otel-collector"]
    assert host_path(otel, flag(otel, "config")) == ROOT / "otel-collector" / "config.yml"
    grafana = svc["grafana"]
    provisioning = grafana["environment"]["GF_PATHS_PROVISIONING"]
    assert host_path(grafana, provisioning) == ROOT / "grafana" / "provisioning"
    assert host_path(grafana, grafana["environment"]["REDLINE_DASHBOARDS_DIR"]) == ROOT / "grafana/dashboards"
    # The native stack reads the very same files.
    assert str(ROOT / "prometheus" / "blackbox.yml") in " ".join(
        stack.SERVICES[stack.SERVICE_NAMES.index("blackbox")].command(stack.Context(run_dir=Path("/r")))
    )


def _compose_targets(folder: Path, published: dict[tuple[str, int], int]) -> dict[str, list[dict]]:
    """The compose target files, with service:port rewritten to 127.0.0.1:<published port>."""

    def local(address: str) -> str:
        host, _, port = address.rpartition(":")
        assert (host, int(port)) in published, f"{address} is not a published compose service port"
        return f"127.0.0.1:{published[(host, int(port))]}"

    def rewrite(target: str) -> str:
        match = re.fullmatch(r"(https?://)([^/]+)(/.*)?", target)
        if match:
            return f"{match.group(1)}{local(match.group(2))}{match.group(3) or ''}"
        return local(target)

    files = {}
    for path in sorted(folder.glob("*.yml")):
        groups = yaml.safe_load(path.read_text())
        for group in groups:
            group["targets"] = [rewrite(t) for t in group["targets"]]
            labels = group.get("labels") or {}
            if "__blackbox_address__" in labels:
                labels["__blackbox_address__"] = local(labels["__blackbox_address__"])
            group["labels"] = labels
        files[path.stem] = groups
    return files


def _native_targets(profile: str) -> dict[str, list[dict]]:
    ha, scale = profile != "default", profile == "scale"
    ctx = stack.Context(run_dir=Path("/nonexistent"), ha=ha, scale=scale)
    chosen = [s for s in stack.SERVICES if (ha or not s.ha_only) and (scale or not s.scale_only)]
    files = native_targets(ctx, chosen)
    for groups in files.values():
        for group in groups:
            group.setdefault("labels", {})
    return files


@pytest.mark.parametrize("profile", ["default", "ha", "scale"])
def test_scrape_targets_match_the_native_ones(profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for row in topology.ENDPOINTS:
        monkeypatch.delenv(row.env_name, raising=False)
    published = {
        (name, int(p["target"])): int(p["published"])
        for name, service in services().items()
        for p in service.get("ports") or []
    }
    compose_files = _compose_targets(ROOT / "prometheus/targets/compose", published)
    if profile == "ha":
        compose_files.update(_compose_targets(ROOT / "prometheus/targets/compose/ha", published))
    if profile == "scale":  # the whole folder
        compose_files = _compose_targets(ROOT / "prometheus/targets/compose/scale", published)
    native = _native_targets(profile)
    # vmagent is scraped natively only; node_exporter runs in compose only (see docker-compose.yml).
    assert set(native) - set(compose_files) == {"vmagent"}
    assert set(compose_files) - set(native) == {"node"}
    for job in sorted(set(native) & set(compose_files)):
        assert compose_files[job] == native[job], f"targets/{job}.yml differs from the native stack's"


def test_compose_target_files_are_valid_for_prometheus(tmp_path: Path) -> None:
    # The layout inside the container: prometheus.yml, rules/ and the compose targets as targets/.
    shutil.copy(ROOT / "prometheus" / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copytree(ROOT / "prometheus" / "rules", tmp_path / "rules")
    shutil.copytree(ROOT / "prometheus" / "targets" / "compose", tmp_path / "targets")
    result = subprocess.run(
        [tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    missing = re.findall(r'WARNING: file "([^"]+)" for file_sd', result.stdout + result.stderr)
    # vmagent runs natively only; the long-term store and vmalert only with the scale profile (its folder)
    assert missing == [
        str(tmp_path / "targets" / f"{job}*.yml") for job in ("vmagent", "victoria-metrics", "vmalert")
    ]


def test_compose_scale_config_is_valid_for_prometheus(tmp_path: Path) -> None:
    # The replicas' layout in the scale profile: prometheus-scale.yml, rules/, the scale targets folder.
    shutil.copy(ROOT / "prometheus" / "prometheus-scale.yml", tmp_path / "prometheus-scale.yml")
    shutil.copytree(ROOT / "prometheus" / "rules", tmp_path / "rules")
    shutil.copytree(ROOT / "prometheus" / "targets" / "compose" / "scale", tmp_path / "targets")
    result = subprocess.run(
        [tool("promtool"), "check", "config", str(tmp_path / "prometheus-scale.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "REDLINE_REPLICA": "A"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    missing = re.findall(r'WARNING: file "([^"]+)" for file_sd', result.stdout + result.stderr)
    assert missing == [str(tmp_path / "targets" / "vmagent*.yml")]


def test_image_versions_equal_the_native_binaries() -> None:
    images = {name: service["image"] for name, service in services().items()}
    for name, image in images.items():
        repo, _, tag = image.rpartition(":")
        if "build" in services()[name]:  # built from the Dockerfile: its stage names the image
            target = services()[name]["build"]["target"]
            assert image == {"runtime": "redline:local", "console": "redline-console:local"}[target], name
            continue
        assert re.fullmatch(r"v?\d+\.\d+(\.\d+)?", tag), f"{name}: image {image} is not pinned to a version"
        if repo in PINNED:
            assert tag == "v" + binary_version(PINNED[repo]), f"{name}: {image} vs .tools/bin/{PINNED[repo]}"
    assert {image.rpartition(":")[0] for image in images.values()} >= set(PINNED)
    if PG_BIN.exists():
        out = subprocess.run([str(PG_BIN), "--version"], capture_output=True, text=True, timeout=30).stdout
        local = re.search(r"(\d+\.\d+)", out)
        assert local and images["postgres"] == f"postgres:{local.group(1)}"


# ----- security -----------------------------------------------------------------------------------


def test_no_secret_literals_and_no_default_passwords() -> None:
    raw = COMPOSE_FILE.read_text()
    secret_key = re.compile(r"^\s*(\w*(?:PASSWORD|PASS|SECRET|TOKEN|API_KEY)\w*):\s*(.*)$", re.MULTILINE)
    found = secret_key.findall(raw)
    assert found, "expected the password settings to be found"
    for key, value in found:
        assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", value.strip()), (
            f"{key}: {value} is not a required variable"
        )
    env_example = (ROOT / ".env.example").read_text()
    for name in TEST_ENV:
        assert re.search(rf"^{name}=$", env_example, re.MULTILINE), f".env.example must leave {name} empty"
    # Where the real values live is never committed: .env and the operator's Alertmanager secrets.
    for private in (".env", "alertmanager/secrets/pagerduty-routing-key"):
        ignored = subprocess.run(
            ["git", "-C", str(ROOT), "check-ignore", "--no-index", "-q", private], timeout=30, check=False
        )
        assert ignored.returncode == 0, f"{private} is not gitignored"


# Long-running services without a healthcheck, and why.
NO_HEALTHCHECK = {
    "otel-collector": "distroless image: no shell, wget or curl to probe with",
    "alertmanager-secrets": "one-shot job",
    "stack-secrets": "one-shot job",
}
# Services that start as root, and why (each drops every capability it does not need): the one-shot jobs
# that copy secret files from the host and hand them to the services' users.
ROOT_USERS = {
    "alertmanager-secrets": {"CHOWN", "DAC_READ_SEARCH"},
    "stack-secrets": {"CHOWN", "DAC_READ_SEARCH"},
}
DATA_VOLUMES = {
    "prometheus": "/prometheus",
    "prometheus-2": "/prometheus",
    "victoria-metrics": "/storage",
    "alertmanager": "/alertmanager",
    "alertmanager-2": "/alertmanager",
    "alertmanager-3": "/alertmanager",
    "grafana": "/var/lib/grafana",
    "postgres": "/var/lib/postgresql/data",
    "pager-sink": "/var/lib/redline",
}


def test_services_are_hardened_with_healthchecks_and_named_data_volumes() -> None:
    for name, service in services().items():
        assert service.get("read_only") is True, f"{name}: root filesystem not read-only"
        assert service.get("cap_drop") == ["ALL"], f"{name}: capabilities not dropped"
        assert "no-new-privileges:true" in service.get("security_opt", []), name
        user = str(service.get("user", ""))
        assert user, f"{name}: no explicit user"
        if name in ROOT_USERS:
            assert set(service.get("cap_add", [])) == ROOT_USERS[name]
        else:
            assert user.split(":")[0] not in {"0", "root"}, f"{name}: runs as root"
            assert not service.get("cap_add"), f"{name}: adds capabilities"
        if name not in NO_HEALTHCHECK:
            assert service.get("healthcheck", {}).get("test"), f"{name}: no healthcheck"
        else:
            assert "healthcheck" not in service
    for name, path in DATA_VOLUMES.items():
        assert host_path(services()[name], path) == f"volume:{name}-data", (
            f"{name}: {path} not a named volume"
        )


def test_grafana_requires_login() -> None:
    env = services()["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == TEST_ENV["GRAFANA_ADMIN_PASSWORD"]
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"


def test_prometheus_flags_for_reload_otlp_and_retention() -> None:
    command = services()["prometheus"]["command"]
    for wanted in (
        "--web.enable-lifecycle",
        "--web.enable-otlp-receiver",
        "--web.enable-remote-write-receiver",
    ):
        assert wanted in command
    assert flag(services()["prometheus"], "storage.tsdb.retention.time") == "15d"
    assert flag(services()["prometheus"], "storage.tsdb.path") == "/prometheus"


@pytest.mark.parametrize(("profile", "file"), [("default", "config.yml"), ("scale", "config-scale.yml")])
def test_otel_collector_forwards_otlp_to_prometheus(profile: str, file: str) -> None:
    otel = services(profile)["otel-collector"]
    assert host_path(otel, flag(otel, "config")) == ROOT / "otel-collector" / file
    config = yaml.safe_load((ROOT / "otel-collector" / file).read_text())
    protocols = config["receivers"]["otlp"]["protocols"]
    endpoints = {protocols["grpc"]["endpoint"], protocols["http"]["endpoint"]}
    published = {int(p["target"]) for p in otel["ports"]}
    assert {int(e.rsplit(":", 1)[1]) for e in endpoints} == published == {4317, 4318}
    exporters = {name: e["metrics_endpoint"] for name, e in config["exporters"].items()}
    # into each Prometheus of the profile, at its compose address, which must be a service of it
    replicas = ["prometheus", "prometheus-2"] if profile == "scale" else ["prometheus"]
    assert exporters == {f"otlphttp/{r}": f"http://{r}:9090/api/v1/otlp/v1/metrics" for r in replicas}
    assert set(replicas) <= set(services(profile))
    assert "--web.enable-otlp-receiver" in services(profile)[replicas[-1]]["command"]
    for pipeline in config["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"pipeline uses undefined {kind[:-1]} {component}"


def run_one_shot(name: str, folders: dict[str, Path]) -> subprocess.CompletedProcess[str]:
    """Run a one-shot job's own shell script (from the resolved compose file) with its container folders
    (/provided, /secrets, /stack) replaced by folders here; without root, without the chown."""
    service = services()[name]
    script = service["command"][0].replace("$$", "$")
    for container, host in folders.items():  # a folder of its own, not the end of /etc/secrets
        script = re.sub(rf"(?<![\w.-]){re.escape(container)}\b", str(host), script)
    if os.geteuid() != 0:
        script = re.sub(r"&& chown \S+ \./\*", "", script)
    return subprocess.run([*service["entrypoint"], script], capture_output=True, text=True, timeout=30)


def test_alertmanager_secrets_job_fills_the_volume(tmp_path: Path) -> None:
    provided, secrets, stack = tmp_path / "provided", tmp_path / "secrets", tmp_path / "run-secrets"
    for folder in (provided, secrets, stack):
        folder.mkdir()
    (secrets / "stale-file").write_text("old")
    (provided / "pagerduty-routing-key").write_text("from-the-operator\n")
    (provided / "ticket-webhook-url").write_text("https://tickets.example.invalid/hook\n")
    token = "sink-token"
    (stack / "pager-sink-token").write_text(token)
    result = run_one_shot(
        "alertmanager-secrets", {"/provided": provided, "/secrets": secrets, "/stack": stack}
    )
    assert result.returncode == 0, result.stderr
    files = {p.name: p.read_text() for p in secrets.iterdir()}
    # The local sink's URLs carry its token as the basic-auth password (the pager-sink checks it).
    assert files == {
        "pagerduty-routing-key": "from-the-operator\n",
        "ticket-webhook-url": "https://tickets.example.invalid/hook\n",
        "pager-webhook-url": f"http://alertmanager:{token}@pager-sink:9097/pager\n",
        "watchdog-webhook-url": f"http://alertmanager:{token}@pager-sink:9097/watchdog\n",
    }
    for path in secrets.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o400
        if os.geteuid() == 0:
            assert path.stat().st_uid == 65534


STACK_SECRETS = ("web-password", "web-config.yml", "pager-sink-token", "demo-token")


def test_stack_secrets_job_copies_the_credentials_for_the_group(tmp_path: Path) -> None:
    provided, secrets = tmp_path / "provided", tmp_path / "secrets"
    provided.mkdir()
    secrets.mkdir()
    for name in STACK_SECRETS:
        (provided / name).write_text(f"value of {name}")
    (provided / "postgres-password").write_text("not for the containers")
    assert run_one_shot("stack-secrets", {"/provided": provided, "/secrets": secrets}).returncode == 0
    files = {p.name: p.read_text() for p in secrets.iterdir()}
    assert files == {
        **{name: f"value of {name}" for name in STACK_SECRETS},
        "http-client.yml": "basic_auth:\n  username: redline\n  password_file: /etc/secrets/web-password\n",
    }
    for path in secrets.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o440
        if os.geteuid() == 0:
            assert (path.stat().st_uid, path.stat().st_gid) == (0, 10100)
    # Without the run folder's credentials nothing starts, and the message says what to do.
    (provided / "demo-token").unlink()
    result = run_one_shot("stack-secrets", {"/provided": provided, "/secrets": secrets})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "stack-secrets: no demo-token in the run folder's secrets/: run 'redline secrets' first"
    )


# What reads the stack's credentials in compose, and from where (/etc/secrets: the stack-secrets volume).
AUTHENTICATED = {
    "prometheus": ["--web.config.file=/etc/secrets/web-config.yml"],
    "prometheus-2": ["--web.config.file=/etc/secrets/web-config.yml"],
    "victoria-metrics": ["-httpAuth.password=file:///etc/secrets/web-password"],
    "vmalert": [
        "-httpAuth.password=file:///etc/secrets/web-password",
        "-datasource.basicAuth.passwordFile=/etc/secrets/web-password",
        "-remoteWrite.basicAuth.passwordFile=/etc/secrets/web-password",
    ],
    "alertmanager": ["--web.config.file=/etc/secrets/web-config.yml"],
    "alertmanager-2": ["--web.config.file=/etc/secrets/web-config.yml"],
    "alertmanager-3": ["--web.config.file=/etc/secrets/web-config.yml"],
    "blackbox": ["--web.config.file=/etc/secrets/web-config.yml"],
    "pager-sink": ["--token-file=/etc/secrets/pager-sink-token"],
    "console": [
        "--web-config=/etc/secrets/web-config.yml",
        "--upstream-password-file=/etc/secrets/web-password",
    ],
    "demo": [
        "--control-token-file=/etc/secrets/demo-token",
        "--otlp-password-file=/etc/secrets/web-password",
    ],
    "otel-collector": [],  # otel-collector/config.yml: basic auth on OTLP in and on the export to Prometheus
    "grafana": [],  # its entrypoint reads web-password for the provisioned datasources
}


def test_every_authenticating_service_reads_the_stack_secrets_volume_through_its_group() -> None:
    for name, service in services().items():
        mount = next((m for m in service.get("volumes") or [] if m["target"] == "/etc/secrets"), None)
        mounted = mount is not None and (mount["type"], mount["source"]) == ("volume", "stack-secrets")
        assert mount is None or mount.get("read_only") is True, f"{name}: /etc/secrets writable"
        if name not in AUTHENTICATED:
            assert not mounted, f"{name} mounts the stack's credentials without needing them"
            continue
        assert mounted, f"{name}: /etc/secrets is not the stack-secrets volume"
        assert "10100" in [str(g) for g in service.get("group_add") or []], f"{name}: no group_add 10100"
        for wanted in AUTHENTICATED[name]:
            assert wanted in (service.get("command") or []), f"{name}: {wanted} missing"
    # prometheus.yml's password_file (../secrets/web-password beside /etc/prometheus) is in that volume.
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    files = {auth["password_file"] for auth in _basic_auths(config)}
    assert files == {"../secrets/web-password"}
    resolved = posixpath.normpath(posixpath.join("/etc/prometheus", files.pop()))
    assert host_path(services()["prometheus"], resolved) == "volume:stack-secrets"
    for file in ("config.yml", "config-scale.yml"):
        collector = (ROOT / "otel-collector" / file).read_text()
        assert collector.count("${file:/etc/secrets/web-password}") == 2, file


def _basic_auths(node: Any) -> list[dict]:
    if isinstance(node, dict):
        found = [node["basic_auth"]] if "basic_auth" in node else []
        return found + [a for value in node.values() for a in _basic_auths(value)]
    if isinstance(node, list):
        return [a for item in node for a in _basic_auths(item)]
    return []


def test_healthchecks_authenticate_from_files_not_from_the_command_line() -> None:
    """A password in a healthcheck's arguments would show in `ps` on the host."""
    for name, service in services().items():
        test = " ".join(service.get("healthcheck", {}).get("test") or [])
        assert "@127.0.0.1" not in test and "Authorization" not in test, f"{name}: {test}"
    assert (
        "--http.config.file=/etc/secrets/http-client.yml" in services()["prometheus"]["healthcheck"]["test"]
    )
    assert (
        "--http.config.file=/etc/secrets/http-client.yml" in services()["alertmanager"]["healthcheck"]["test"]
    )


def test_redline_image_runs_as_non_root() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".env", "secrets", ".venv", ".tools", ".run"} <= set(ignored)
    for name in ("pager-sink", "host-exporter", "job-exporter", "demo"):
        assert services()[name]["user"] == users[-1]
