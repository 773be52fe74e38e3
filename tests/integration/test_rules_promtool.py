"""The committed rules and their generated tests, checked by the real promtool; the drift check."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import yaml

from redline.generate.alerts import catalogue_alerts
from redline.generate.load import load_catalogue
from redline.paths import ROOT
from redline.testing.processes import tool


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)


def test_promtool_check_rules():
    files = sorted(str(p) for p in (ROOT / "prometheus/rules").glob("*.yml"))
    assert len(files) == 6
    result = _run([tool("promtool"), "check", "rules", *files])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 6


def test_the_long_term_rules_load_in_promtool_and_in_vmalert():
    """prometheus/long-term/rules.yml: valid Prometheus rules, and accepted by the pinned vmalert, which
    evaluates them against the long-term store (docs/scale.md)."""
    path = str(ROOT / "prometheus/long-term/rules.yml")
    result = _run([tool("promtool"), "check", "rules", path])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    result = _run([tool("vmalert"), "-dryRun", "-loggerLevel=ERROR", f"-rule={path}"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules():
    files = sorted(str(p) for p in (ROOT / "prometheus/tests").glob("*.yml"))
    assert len(files) == 7
    result = _run([tool("promtool"), "test", "rules", *files], timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == 7


def test_every_alert_has_at_least_three_cases_per_level():
    cases: Counter[str] = Counter()
    firing: Counter[tuple[str, str]] = Counter()
    for path in (ROOT / "prometheus/tests").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group["alert_rule_test"]:
                cases[case["alertname"]] += 1
                for alert in case.get("exp_alerts") or []:
                    firing[(case["alertname"], alert["exp_labels"]["severity"])] += 1
    alerts = catalogue_alerts(load_catalogue())
    # threshold alerts: three cases per level; SLO alerts: fast burn, slow burn, within budget
    levels = Counter(a.alert_name for a in alerts if a.kind == "threshold")
    for alert in alerts:
        assert cases[alert.alert_name] >= 3 * max(1, levels[alert.alert_name]), alert.alert_name
        assert firing[(alert.alert_name, alert.severity)] >= 1, (
            f"{alert.alert_name} {alert.severity} never fires"
        )
    silent = sum(
        1
        for path in (ROOT / "prometheus/tests").glob("*.yml")
        for g in yaml.safe_load(path.read_text())["tests"]
        for c in g["alert_rule_test"]
        if not c.get("exp_alerts")
    )
    assert silent >= len(alerts)


def test_redline_check_passes():
    result = _run([sys.executable, "-m", "redline.cli", "check"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "match the catalogue" in result.stdout
