"""redline/storage.py: the one place of retention, disk budgets and the HA pair's long-term store settings,
and every place that uses them (the native runner, compose, the rendered prometheus-scale.yml)."""

from __future__ import annotations

from pathlib import Path

import yaml

from redline import credentials, durations, storage, topology
from redline.paths import ROOT
from redline.stack import services as stack
from redline.testing import scale_ha

COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def _ctx(scale: bool) -> stack.Context:
    return stack.Context(run_dir=Path("/nonexistent"), ha=scale, scale=scale)


def _command(name: str, scale: bool = True) -> list[str]:
    return next(s for s in stack.SERVICES if s.name == name).command(_ctx(scale))


def test_dedup_interval_is_the_shortest_scrape_interval() -> None:
    shortest = min((job.interval or topology.SCRAPE_INTERVAL for job in topology.JOBS), key=durations.seconds)
    assert storage.dedup_interval() == shortest == "1s"


def test_scale_config_labels_the_replica_and_drops_it_from_alerts_and_the_store() -> None:
    base = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    config = storage.scale_config(base, "127.0.0.1:18428")
    assert config["global"]["external_labels"] == {"stack": "redline", "replica": "${REDLINE_REPLICA}"}
    drop = [{"action": "labeldrop", "regex": "replica"}]
    assert config["alerting"]["alert_relabel_configs"] == drop
    (remote,) = config["remote_write"]
    assert remote["url"] == "http://127.0.0.1:18428/api/v1/write"
    assert remote["write_relabel_configs"] == drop
    assert remote["basic_auth"] == {"username": "redline", "password_file": "../secrets/web-password"}
    # everything else is prometheus.yml unchanged, and prometheus.yml itself is left alone
    assert {k: v for k, v in config.items() if k != "remote_write"}["scrape_configs"] == base[
        "scrape_configs"
    ]
    assert "remote_write" not in base and "replica" not in base["global"]["external_labels"]


def test_compose_scale_config_is_the_rendered_one_with_compose_addresses() -> None:
    rendered = yaml.safe_load((ROOT / "prometheus" / "prometheus-scale.yml").read_text())
    assert rendered["remote_write"][0]["url"] == "http://victoria-metrics:8428/api/v1/write"


def test_native_replicas_share_one_config_and_differ_in_the_replica_label_only() -> None:
    a, b = _command("prometheus"), _command("prometheus-2")
    assert [f for f in a if f.startswith("--config.file")] == [f for f in b if f.startswith("--config.file")]
    assert any(f.endswith("/prometheus/prometheus-scale.yml") for f in a)
    envs = {s.name: s.env(_ctx(True)) for s in stack.SERVICES if s.name in storage.REPLICAS}
    assert envs == {"prometheus": {"REDLINE_REPLICA": "A"}, "prometheus-2": {"REDLINE_REPLICA": "B"}}
    assert any(f.endswith("/prometheus/prometheus.yml") for f in _command("prometheus", scale=False))
    assert next(s for s in stack.SERVICES if s.name == "prometheus").env(_ctx(False)) == {}


def test_native_flags_come_from_the_settings() -> None:
    for name in storage.REPLICAS:
        command = _command(name)
        assert f"--storage.tsdb.retention.time={storage.PROMETHEUS_RETENTION_TIME}" in command
        assert f"--storage.tsdb.retention.size={storage.PROMETHEUS_RETENTION_SIZE}" in command
    vm = _command(storage.LONG_TERM)
    assert f"-retentionPeriod={storage.LONG_TERM_RETENTION}" in vm
    assert f"-dedup.minScrapeInterval={storage.dedup_interval()}" in vm
    assert f"-storage.minFreeDiskSpaceBytes={storage.LONG_TERM_MIN_FREE_DISK}" in vm
    assert any(f.startswith("-httpListenAddr=127.0.0.1:") for f in vm)
    assert "-httpAuth.username=redline" in vm and any(f.startswith("-httpAuth.password=file://") for f in vm)


def test_vmagent_writes_pushed_samples_into_every_replica() -> None:
    single = [f for f in _command("vmagent", scale=False) if f.startswith("-remoteWrite.url=")]
    pair = [f for f in _command("vmagent") if f.startswith("-remoteWrite.url=")]
    assert len(single) == 1 and len(pair) == 2
    flags = _command("vmagent")
    assert flags.count("-remoteWrite.basicAuth.username=redline") == 2


def test_compose_uses_the_same_numbers() -> None:
    for name in storage.REPLICAS:
        command = COMPOSE[name]["command"]
        assert (
            f"--storage.tsdb.retention.time=${{PROMETHEUS_RETENTION_TIME:-{storage.PROMETHEUS_RETENTION_TIME}}}"
            in command
        )
        assert (
            f"--storage.tsdb.retention.size=${{PROMETHEUS_RETENTION_SIZE:-{storage.PROMETHEUS_RETENTION_SIZE}}}"
            in command
        )
        assert COMPOSE[name]["environment"] == {storage.REPLICA_ENV: storage.REPLICAS[name]}
    vm = COMPOSE[storage.LONG_TERM]["command"]
    assert f"-retentionPeriod={storage.LONG_TERM_RETENTION}" in vm
    assert f"-dedup.minScrapeInterval={storage.dedup_interval()}" in vm
    assert f"-storage.minFreeDiskSpaceBytes={storage.LONG_TERM_MIN_FREE_DISK}" in vm
    assert COMPOSE["prometheus-2"]["profiles"] == COMPOSE[storage.LONG_TERM]["profiles"] == ["scale"]
    ruler = COMPOSE[storage.LONG_TERM_RULER]
    assert f"-evaluationInterval={storage.LONG_TERM_EVAL_INTERVAL}" in ruler["command"]
    assert ruler["profiles"] == ["scale"]


def test_scale_endpoints_are_only_in_the_scale_stack() -> None:
    rows = {row.name for row in topology.ENDPOINTS if row.scale_only}
    assert rows == {"prometheus-2", storage.LONG_TERM, storage.LONG_TERM_RULER}
    single = {row.name for s in stack.SERVICES for row in s.endpoints(_ctx(False))}
    scaled = {row.name for s in stack.SERVICES for row in s.endpoints(_ctx(True))}
    assert not rows & single and rows <= scaled


def test_vmalert_reads_and_writes_the_store_with_the_long_term_rules() -> None:
    flags = _command(storage.LONG_TERM_RULER)
    store = _ctx(True).url(storage.LONG_TERM)
    assert f"-datasource.url={store}" in flags and f"-remoteWrite.url={store}" in flags
    assert any(f.endswith("/prometheus/long-term/rules.yml") and f.startswith("-rule=") for f in flags)
    assert f"-evaluationInterval={storage.LONG_TERM_EVAL_INTERVAL}" in flags
    assert flags.count("-datasource.basicAuth.username=redline") == 1
    assert flags.count("-remoteWrite.basicAuth.username=redline") == 1
    assert "-httpAuth.username=redline" in flags
    assert not any("password=" in f and "file://" not in f for f in flags), "a password on the command line"


def test_history_is_the_store_with_scale_and_prometheus_otherwise(tmp_path: Path) -> None:
    assert _ctx(True).history_url == _ctx(True).url(storage.LONG_TERM) == "http://127.0.0.1:8428"
    assert _ctx(False).history_url == _ctx(False).url("prometheus") == "http://127.0.0.1:9090"
    console = next(s for s in stack.SERVICES if s.name == "console")
    grafana = next(s for s in stack.SERVICES if s.name == "grafana")
    password = credentials.secret_path(tmp_path, credentials.WEB_PASSWORD_FILE)
    credentials.ensure_secret(password, make_folder=True)
    for scale in (False, True):
        ctx = stack.Context(run_dir=tmp_path, ha=scale, scale=scale)
        assert f"--history={ctx.history_url}" in console.command(ctx)
        assert f"--prometheus={ctx.url('prometheus')}" in console.command(ctx)  # alerts, now: the replica
        assert grafana.env(ctx)["REDLINE_HISTORY_URL"] == ctx.history_url


def test_dedup_intervals_are_victoriametrics_own_ending_on_a_multiple_and_including_it() -> None:
    """lib/storage/dedup.go keeps one sample per ((k-1)*d, k*d]: a sample at exactly k*d belongs with
    the ones just before it (the HA tests count the store's samples with this)."""
    assert scale_ha.DEDUP_S == 1
    assert [scale_ha.dedup_bucket(t) for t in (11.001, 11.999, 12.0, 12.001)] == [12, 12, 12, 13]
    assert scale_ha.dedup_buckets([11.5, 12.0, 12.4]) == {12, 13}
