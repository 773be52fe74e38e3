"""`redline reload` and `redline rollback` against a real Prometheus and Alertmanager.

The repo's own prometheus/ and alertmanager/ folders are copied into a throwaway git checkout; the
processes read their configs from there, as the native stack reads the repository's files.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from redline.stack import reload
from redline.testing.components import prometheus
from redline.testing.processes import ROOT, free_port, http_get, running, tool

pytestmark = pytest.mark.timeout(120)

RULES_V1 = """groups:
  - name: reload_test_v1
    interval: 1s
    rules:
      - record: reload_test:v1
        expr: vector(1)
"""
RULES_V2 = """groups:
  - name: reload_test_v2
    interval: 1s
    rules:
      - record: reload_test:v2
        expr: vector(2)
"""
RULES_BROKEN = """groups:
  - name: reload_test_broken
    rules:
      - record: reload_test:broken
        expr: rate(up[5m]
"""


@dataclass
class Stack:
    repo: Path
    prometheus: str
    alertmanager: str

    def args(self) -> list[str]:
        return [
            "--root",
            str(self.repo),
            "--prometheus",
            self.prometheus,
            "--alertmanager",
            self.alertmanager,
        ]

    def git(self, *args: str) -> str:
        cmd = ["git", "-C", str(self.repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


def _rule_groups(base: str) -> set[str]:
    status, body = http_get(f"{base}/api/v1/rules")
    assert status == 200, body
    return {group["name"] for group in json.loads(body)["data"]["groups"]}


def _metric(base: str, name: str) -> float:
    status, body = http_get(f"{base}/metrics")
    assert status == 200
    match = re.search(rf"^{name} (\S+)$", body, re.MULTILINE)
    assert match, f"{name} not on {base}/metrics"
    return float(match.group(1))


def _am_config(base: str) -> str:
    status, body = http_get(f"{base}/api/v2/status")
    assert status == 200, body
    return str(json.loads(body)["config"]["original"])


def _test_groups(base: str) -> set[str]:
    return {g for g in _rule_groups(base) if g.startswith("reload_test")}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("reload")
    repo = tmp / "repo"
    for folder in ("prometheus", "alertmanager"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("targets", "secrets"))
    (repo / "prometheus" / "rules").mkdir(exist_ok=True)
    (repo / "prometheus" / "rules" / "reload-test-v1.yml").write_text(RULES_V1)
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    prom_port, am_port = free_port(), free_port()
    s = Stack(repo, f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}")
    s.git("add", "-A")
    s.git("commit", "-q", "-m", "base configs")
    alertmanager = [
        tool("alertmanager"),
        f"--config.file={repo / 'alertmanager' / 'alertmanager.yml'}",
        f"--storage.path={tmp / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=",
    ]
    with (
        prometheus(tmp, repo / "prometheus" / "prometheus.yml", "--web.enable-lifecycle", port=prom_port),
        running(alertmanager, ready_url=f"{s.alertmanager}/-/ready", log=tmp / "alertmanager.log"),
    ):
        yield s


@pytest.fixture
def base(stack: Stack) -> Stack:
    """The checkout back at its first commit, and the processes reloaded with it."""
    first = stack.git("rev-list", "--max-parents=0", "HEAD")
    stack.git("reset", "-q", "--hard", first)
    stack.git("clean", "-qfdx", "--", "prometheus", "alertmanager")
    assert reload.main(["reload", *stack.args()]) == 0
    assert _test_groups(stack.prometheus) == {"reload_test_v1"}
    return stack


def test_valid_change_is_applied_and_verified(base: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    (base.repo / "prometheus" / "rules" / "reload-test-v2.yml").write_text(RULES_V2)
    am_yml = base.repo / "alertmanager" / "alertmanager.yml"
    am_yml.write_text(am_yml.read_text().replace("resolve_timeout: 5m", "resolve_timeout: 7m"))
    am_hash = _metric(base.alertmanager, "alertmanager_config_hash")

    assert reload.main(["reload", *base.args()]) == 0

    assert _test_groups(base.prometheus) == {"reload_test_v1", "reload_test_v2"}
    assert "resolve_timeout: 7m" in _am_config(base.alertmanager)
    assert _metric(base.alertmanager, "alertmanager_config_hash") != am_hash
    out = capsys.readouterr().out
    assert "prometheus.yml: valid" in out
    assert "rules (" in out and "reload-test-v2.yml" in out
    assert "alertmanager.yml: valid" in out
    assert f"Prometheus {base.prometheus}: reloaded" in out
    assert f"Alertmanager {base.alertmanager}: reloaded" in out


def test_broken_rule_is_refused_and_nothing_reloads(base: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    prom_ts = _metric(base.prometheus, "prometheus_config_last_reload_success_timestamp_seconds")
    am_ts = _metric(base.alertmanager, "alertmanager_config_last_reload_success_timestamp_seconds")
    (base.repo / "prometheus" / "rules" / "reload-test-v2.yml").write_text(RULES_V2)
    (base.repo / "prometheus" / "rules" / "broken.yml").write_text(RULES_BROKEN)
    capsys.readouterr()

    assert reload.main(["reload", *base.args()]) == 2

    err = capsys.readouterr().err
    assert "nothing was reloaded" in err
    assert "broken.yml" in err
    assert "Traceback" not in err
    # Not even attempted: the running processes keep the old config, rules and reload time.
    assert _test_groups(base.prometheus) == {"reload_test_v1"}
    assert _metric(base.prometheus, "prometheus_config_last_reload_success_timestamp_seconds") == prom_ts
    assert _metric(base.alertmanager, "alertmanager_config_last_reload_success_timestamp_seconds") == am_ts


def test_broken_alertmanager_config_is_refused(base: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    prom_ts = _metric(base.prometheus, "prometheus_config_last_reload_success_timestamp_seconds")
    am_hash = _metric(base.alertmanager, "alertmanager_config_hash")
    (base.repo / "prometheus" / "rules" / "reload-test-v2.yml").write_text(RULES_V2)
    am_yml = base.repo / "alertmanager" / "alertmanager.yml"
    am_yml.write_text(am_yml.read_text().replace("receiver: ticket", "receiver: no-such-receiver", 1))
    capsys.readouterr()

    assert reload.main(["reload", *base.args()]) == 2

    err = capsys.readouterr().err
    assert "alertmanager.yml is invalid, nothing was reloaded" in err
    assert "no-such-receiver" in err
    assert _metric(base.alertmanager, "alertmanager_config_hash") == am_hash
    assert _metric(base.prometheus, "prometheus_config_last_reload_success_timestamp_seconds") == prom_ts
    assert _test_groups(base.prometheus) == {"reload_test_v1"}


def test_rollback_restores_previous_commit(base: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    first = base.git("rev-parse", "--short", "HEAD")
    (base.repo / "prometheus" / "rules" / "reload-test-v2.yml").write_text(RULES_V2)
    (base.repo / "prometheus" / "rules" / "reload-test-v1.yml").unlink()
    am_yml = base.repo / "alertmanager" / "alertmanager.yml"
    am_yml.write_text(am_yml.read_text().replace("resolve_timeout: 5m", "resolve_timeout: 9m"))
    base.git("add", "-A")
    base.git("commit", "-q", "-m", "v2 rules")
    assert reload.main(["reload", *base.args()]) == 0
    assert _test_groups(base.prometheus) == {"reload_test_v2"}
    head = base.git("rev-parse", "HEAD")
    capsys.readouterr()

    assert reload.main(["rollback", *base.args()]) == 0

    out = capsys.readouterr().out
    match = re.search(
        rf"rolled back to {first} base configs: 3 file\(s\) changed, reloaded in ([\d.]+)s", out
    )
    assert match, out  # the duration is reported; bench/rollback.py measures it
    assert _test_groups(base.prometheus) == {"reload_test_v1"}
    assert "resolve_timeout: 5m" in _am_config(base.alertmanager)
    assert not (base.repo / "prometheus" / "rules" / "reload-test-v2.yml").exists()
    # git's HEAD and index are left alone: the restored files show as working-tree changes.
    assert base.git("rev-parse", "HEAD") == head
    assert base.git("diff", "--cached", "--name-only") == ""
    assert {line.strip() for line in base.git("status", "--porcelain").splitlines()} == {
        "M alertmanager/alertmanager.yml",
        "D prometheus/rules/reload-test-v2.yml",
        "?? prometheus/rules/reload-test-v1.yml",
    }
    assert "untracked" not in out


def test_rollback_to_a_broken_commit_changes_nothing(base: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    (base.repo / "prometheus" / "rules" / "broken.yml").write_text(RULES_BROKEN)
    base.git("add", "-A")
    base.git("commit", "-q", "-m", "broken rules")
    broken = base.git("rev-parse", "--short", "HEAD")
    (base.repo / "prometheus" / "rules" / "broken.yml").unlink()
    base.git("commit", "-q", "-a", "-m", "fix")
    prom_ts = _metric(base.prometheus, "prometheus_config_last_reload_success_timestamp_seconds")
    capsys.readouterr()

    assert reload.main(["rollback", "--to", broken, *base.args()]) == 2

    err = capsys.readouterr().err
    assert f"commit {broken} broken rules" in err and "broken.yml" in err
    assert not (base.repo / "prometheus" / "rules" / "broken.yml").exists()
    assert base.git("status", "--porcelain") == ""
    assert _metric(base.prometheus, "prometheus_config_last_reload_success_timestamp_seconds") == prom_ts


def test_rollback_unknown_revision_is_a_usage_error(base: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert reload.main(["rollback", "--to", "no-such-rev", *base.args()]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"redline rollback: --to no-such-rev: no such commit in {base.repo}"


def test_unreachable_prometheus_reloads_nothing(base: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    am_ts = _metric(base.alertmanager, "alertmanager_config_last_reload_success_timestamp_seconds")
    dead = f"http://127.0.0.1:{free_port()}"
    args = ["--root", str(base.repo), "--prometheus", dead, "--alertmanager", base.alertmanager]
    capsys.readouterr()
    assert reload.main(["reload", *args]) == 1
    err = capsys.readouterr().err
    assert f"not reachable: Prometheus at {dead}; nothing was reloaded" in err
    assert _metric(base.alertmanager, "alertmanager_config_last_reload_success_timestamp_seconds") == am_ts


def test_prometheus_without_lifecycle_api_is_explained(
    base: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with prometheus(tmp_path, base.repo / "prometheus" / "prometheus.yml") as url:
        capsys.readouterr()
        assert reload.main(["reload", "--root", str(base.repo), "--prometheus", url]) == 1
    err = capsys.readouterr().err
    assert "start Prometheus with --web.enable-lifecycle" in err


def test_cli_dispatches_reload_and_rollback() -> None:
    for action in ("reload", "rollback"):
        result = subprocess.run(
            [sys.executable, "-m", "redline.cli", action, "--help"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        assert f"usage: redline {action}" in result.stdout
    assert "--to REV" in result.stdout


def test_failed_reload_during_rollback_puts_the_files_back(
    base: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A Prometheus that reads another copy of the configs: its rule groups cannot match the checkout's
    # after the rollback, which must then restore the checkout's files as they were.
    (base.repo / "prometheus" / "rules" / "reload-test-v2.yml").write_text(RULES_V2)
    base.git("add", "-A")
    base.git("commit", "-q", "-m", "v2 rules")
    other = tmp_path / "other"
    shutil.copytree(base.repo / "prometheus", other / "prometheus")
    before = {p: p.read_bytes() for p in (base.repo / "prometheus" / "rules").iterdir()}
    with prometheus(tmp_path, other / "prometheus" / "prometheus.yml", "--web.enable-lifecycle") as url:
        capsys.readouterr()
        args = ["--root", str(base.repo), "--prometheus", url]
        assert reload.main(["rollback", *args]) == 1
    captured = capsys.readouterr()
    assert "rule groups differ from the checkout's" in captured.err
    assert "putting the files back as they were" in captured.out
    assert {p: p.read_bytes() for p in (base.repo / "prometheus" / "rules").iterdir()} == before
    assert base.git("status", "--porcelain") == ""
