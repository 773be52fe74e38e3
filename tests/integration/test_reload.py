"""`redline reload` and `redline rollback` against a real Prometheus and Alertmanager.

The repo's own prometheus/ and alertmanager/ folders are copied into a throwaway git checkout; the
processes read their configs from there, as the native stack reads the repository's files, and require
basic auth as the native stack's do (--web.config.file; the password in a run folder's secrets/, which
the commands read through --run-dir). Every refused change is checked on the running processes: same
reload timestamp, rule groups and Alertmanager config hash as before.
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
import yaml

from redline import credentials
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
    run_dir: Path
    prometheus: str
    alertmanager: str

    def args(self) -> list[str]:
        return [
            "--root",
            str(self.repo),
            "--run-dir",
            str(self.run_dir),
            "--prometheus",
            self.prometheus,
            "--alertmanager",
            self.alertmanager,
        ]

    def git(self, *args: str) -> str:
        cmd = ["git", "-C", str(self.repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


AUTH: dict[str, str] = {}  # the fixture's basic auth, for the assertions' own requests


def _get(url: str) -> str:
    status, body = http_get(url, headers=AUTH)
    assert status == 200, f"{url}: {status} {body[:200]}"
    return body


def _rule_groups(base: str) -> set[str]:
    return {group["name"] for group in json.loads(_get(f"{base}/api/v1/rules"))["data"]["groups"]}


def _metric(base: str, name: str) -> float:
    body = _get(f"{base}/metrics")
    match = re.search(rf"^{name} (\S+)$", body, re.MULTILINE)
    assert match, f"{name} not on {base}/metrics"
    return float(match.group(1))


def _am_config(base: str) -> str:
    return str(json.loads(_get(f"{base}/api/v2/status"))["config"]["original"])


def _running_state(stack: Stack) -> tuple[float, set[str], float, float]:
    """What a refused reload must leave as it was: Prometheus' last reload and rule groups, Alertmanager's
    config hash and last reload."""
    return (
        _metric(stack.prometheus, "prometheus_config_last_reload_success_timestamp_seconds"),
        _rule_groups(stack.prometheus),
        _metric(stack.alertmanager, "alertmanager_config_hash"),
        _metric(stack.alertmanager, "alertmanager_config_last_reload_success_timestamp_seconds"),
    )


def _test_groups(base: str) -> set[str]:
    return {g for g in _rule_groups(base) if g.startswith("reload_test")}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("reload")
    repo, run = tmp / "repo", tmp / "run"
    for folder in ("prometheus", "alertmanager"):
        shutil.copytree(ROOT / folder, repo / folder, ignore=shutil.ignore_patterns("targets", "secrets"))
    (repo / "prometheus" / "rules").mkdir(exist_ok=True)
    (repo / "prometheus" / "rules" / "reload-test-v1.yml").write_text(RULES_V1)
    # The run folder's credentials, as `redline up` makes them; prometheus.yml reads the password from
    # ../secrets/ next to its folder, here the checkout's (git-ignored) secrets/.
    password = credentials.ensure_secret(credentials.secret_path(run, credentials.WEB_PASSWORD_FILE), True)
    web_config = credentials.secret_path(run, credentials.WEB_CONFIG)
    credentials.write_private(web_config, credentials.web_config(password))
    (repo / "secrets").symlink_to(run / "secrets")
    (repo / ".gitignore").write_text("secrets\n")
    AUTH.update(credentials.Credentials(run).web_headers())
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    prom_port, am_port = free_port(), free_port()
    s = Stack(repo, run, f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{am_port}")
    # Where the processes look for their Alertmanager (the native stack writes this file into its run
    # folder; here it is part of the checkout).
    (repo / "prometheus" / "targets").mkdir()
    (repo / "prometheus" / "targets" / "alertmanagers.yml").write_text(
        f"- targets: ['127.0.0.1:{am_port}']\n"
    )
    s.git("add", "-A")
    s.git("commit", "-q", "-m", "base configs")
    alertmanager = [
        tool("alertmanager"),
        f"--config.file={repo / 'alertmanager' / 'alertmanager.yml'}",
        f"--storage.path={tmp / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{am_port}",
        f"--web.config.file={web_config}",
        "--cluster.listen-address=",
    ]
    with (
        prometheus(
            tmp,
            repo / "prometheus" / "prometheus.yml",
            "--web.enable-lifecycle",
            f"--web.config.file={web_config}",
            port=prom_port,
            headers=AUTH,
        ),
        running(
            alertmanager, ready_url=f"{s.alertmanager}/-/ready", log=tmp / "alertmanager.log", headers=AUTH
        ),
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
    tests = len(list((ROOT / "prometheus" / "tests").glob("*.yml")))
    assert re.search(rf"promtool test rules: {tests} passed", out), out
    cases = (ROOT / "alertmanager" / "tests" / "routes.yml").read_text().count("- alert: ")
    assert f"route tests: {cases} passed" in out
    assert "paging invariants: hold" in out
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
    args = ["--root", str(base.repo), "--run-dir", str(base.run_dir)]
    args += ["--prometheus", dead, "--alertmanager", base.alertmanager]
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
        args = ["--root", str(base.repo), "--run-dir", str(base.run_dir), "--prometheus", url]
        assert reload.main(["reload", *args]) == 1
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
        args = ["--root", str(base.repo), "--run-dir", str(base.run_dir), "--prometheus", url]
        assert reload.main(["rollback", *args]) == 1
    captured = capsys.readouterr()
    assert "rule groups differ from the checkout's" in captured.err
    assert "putting the files back as they were" in captured.out
    assert {p: p.read_bytes() for p in (base.repo / "prometheus" / "rules").iterdir()} == before
    assert base.git("status", "--porcelain") == ""


# ----- what silently disables paging is refused ----------------------------------------------------


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} not once in {path}"
    path.write_text(text.replace(old, new))


def _empty_prometheus_yml(repo: Path) -> None:
    (repo / "prometheus" / "prometheus.yml").write_text("")


def _no_rule_files(repo: Path) -> None:
    _edit(repo / "prometheus" / "prometheus.yml", "rule_files:\n  - rules/*.yml\n", "rule_files: []\n")


def _critical_to_null(repo: Path) -> None:
    _edit(
        repo / "alertmanager" / "alertmanager.yml",
        """['severity="critical"']\n      receiver: pager""",
        """['severity="critical"']\n      receiver: "null\"""",
    )


def _watchdog_to_null(repo: Path) -> None:
    _edit(repo / "alertmanager" / "alertmanager.yml", "receiver: deadmans-switch", 'receiver: "null"')


def _no_watchdog(repo: Path) -> None:
    path = repo / "prometheus" / "rules" / "redline.yml"
    data = yaml.safe_load(path.read_text())
    for group in data["groups"]:
        group["rules"] = [rule for rule in group["rules"] if rule.get("alert") != "Watchdog"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _no_alertmanager(repo: Path) -> None:
    (repo / "prometheus" / "targets" / "alertmanagers.yml").write_text("[]\n")


NO_RULES = "prometheus.yml: rule_files selects no rule file: no alert would ever fire"
NO_AM = "prometheus.yml: alerting.alertmanagers lists no Alertmanager"
NO_WATCHDOG = 'rules: no alerting rule has the label watchdog="true" (the Watchdog)'
CRITICAL_NULL = (
    'alert(s) that must notify would reach only receiver "null", which has no integration: severity=critical'
)
BAD_CHANGES = {
    "empty-prometheus-yml": (_empty_prometheus_yml, [NO_RULES, NO_AM, NO_WATCHDOG]),
    "rule-files-empty": (_no_rule_files, [NO_RULES, NO_WATCHDOG]),
    "alertmanager-targets-empty": (_no_alertmanager, [NO_AM]),
    "critical-routed-to-null": (_critical_to_null, ["route tests: ", CRITICAL_NULL]),
    "watchdog-routed-to-null": (_watchdog_to_null, ["route tests: ", "Watchdog (info)"]),
    "watchdog-removed": (_no_watchdog, ["promtool test rules: 1 of ", "redline_test.yml", NO_WATCHDOG]),
}


@pytest.mark.parametrize("change", BAD_CHANGES, ids=list(BAD_CHANGES))
def test_a_change_that_disables_paging_is_refused(
    base: Stack, change: str, capsys: pytest.CaptureFixture[str]
) -> None:
    edit, expected = BAD_CHANGES[change]
    before = _running_state(base)
    edit(base.repo)
    capsys.readouterr()

    assert reload.main(["reload", *base.args()]) == 2

    err = capsys.readouterr().err
    assert err.startswith("redline reload: refused, nothing was reloaded:\n"), err
    for line in expected:
        assert line in err, err
    assert "--force" in err.splitlines()[-1]
    assert "Traceback" not in err
    assert _running_state(base) == before


def test_force_reloads_despite_failed_checks_and_says_so(
    base: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    am_hash = _metric(base.alertmanager, "alertmanager_config_hash")
    _critical_to_null(base.repo)
    capsys.readouterr()

    assert reload.main(["reload", "--force", *base.args()]) == 0

    out = capsys.readouterr().out
    assert "WARNING: --force: reloading although these checks FAILED; paging may be broken:" in out
    warnings = [line for line in out.splitlines() if "WARNING:   alertmanager.yml: " in line]
    assert len(warnings) == 1 and CRITICAL_NULL in warnings[0], out
    assert f"Alertmanager {base.alertmanager}: reloaded" in out
    assert _metric(base.alertmanager, "alertmanager_config_hash") != am_hash
    routes = yaml.safe_load(_am_config(base.alertmanager))["route"]["routes"]
    assert [r["receiver"] for r in routes if r.get("matchers") == ['severity="critical"']] == ["null"]


def test_a_syntax_error_is_refused_even_with_force(base: Stack, capsys: pytest.CaptureFixture[str]) -> None:
    before = _running_state(base)
    (base.repo / "prometheus" / "rules" / "broken.yml").write_text(RULES_BROKEN)
    capsys.readouterr()
    assert reload.main(["reload", "--force", *base.args()]) == 2
    assert "prometheus.yml is invalid, nothing was reloaded" in capsys.readouterr().err
    assert _running_state(base) == before


def test_wrong_credentials_reload_nothing(
    base: Stack, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _running_state(base)
    other = tmp_path / "other-run"
    credentials.ensure_secret(credentials.secret_path(other, credentials.WEB_PASSWORD_FILE), True)
    args = [a if a != str(base.run_dir) else str(other) for a in base.args()]
    (base.repo / "prometheus" / "rules" / "reload-test-v2.yml").write_text(RULES_V2)
    capsys.readouterr()

    assert reload.main(["reload", *args]) == 1

    err = capsys.readouterr().err.strip()
    assert err == (
        f"redline reload: Prometheus at {base.prometheus}, Alertmanager at {base.alertmanager} refused the "
        f"credentials (401) of {other / 'secrets' / 'web-password'}; nothing was reloaded (--run-dir: the "
        "stack's run folder)"
    )
    assert _running_state(base) == before


def test_rollback_refuses_to_overwrite_uncommitted_edits(
    base: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    (base.repo / "prometheus" / "rules" / "reload-test-v2.yml").write_text(RULES_V2)
    base.git("add", "-A")
    base.git("commit", "-q", "-m", "v2 rules")
    assert reload.main(["reload", *base.args()]) == 0
    am_yml = base.repo / "alertmanager" / "alertmanager.yml"
    am_yml.write_text(am_yml.read_text().replace("resolve_timeout: 5m", "resolve_timeout: 6m"))
    (base.repo / "prometheus" / "rules" / "draft.yml").write_text(RULES_V1.replace("v1", "draft"))
    edited = {p: p.read_bytes() for p in (am_yml, base.repo / "prometheus" / "rules" / "draft.yml")}
    before = _running_state(base)
    capsys.readouterr()

    assert reload.main(["rollback", *base.args()]) == 2

    err = capsys.readouterr().err.strip()
    assert err == (
        "redline rollback: uncommitted changes in alertmanager/alertmanager.yml, prometheus/rules/draft.yml: "
        "a rollback would overwrite them; nothing was changed. Commit them, or set them aside with: "
        "git stash push --include-untracked -- prometheus alertmanager"
    )
    assert {p: p.read_bytes() for p in edited} == edited
    assert (base.repo / "prometheus" / "rules" / "reload-test-v2.yml").exists()
    assert _running_state(base) == before
