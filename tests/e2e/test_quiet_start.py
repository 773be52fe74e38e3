"""A fresh native stack without faults is quiet, and `redline status` tells when a service is not.

The stack runs as `make up` runs it (the demo at its own pace, the shipped Alertmanager configuration
and timers) with one difference: the rules are rendered with every `for` divided by SCALE, so the
first OBSERVED_S seconds stand for the first 15 minutes of a real start. Rate and SLO windows are not
scaled: they hold less data than on a real stack, which makes a start-up blip weigh more, not less.

No operator has configured PagerDuty, Slack or email here, so the run folder's Alertmanager profile
leaves those integrations out (nothing fails to deliver, nothing pages about its own missing secrets);
what remains delivers to the pager-sink.
"""

from __future__ import annotations

import time

import pytest
import yaml

from redline.testing.processes import wait_until
from redline.testing.sandbox import Sandbox, render_rules

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

SCALE = 10
OBSERVED_S = 15 * 60 / SCALE


def _value(stack: Sandbox, expr: str) -> float:
    result = stack.query(expr)
    assert result, f"no data for {expr}"
    return float(result[0]["value"][1])


def test_a_fresh_stack_pages_only_the_watchdog_then_status_names_a_broken_service(tmp_path) -> None:
    rules_dir = render_rules(f"/{SCALE}", tmp_path / "generated")
    with Sandbox(rules_dir=rules_dir) as stack:
        started = time.monotonic()
        profile_path = stack.run_dir / "alertmanager" / "alertmanager.yml"
        profile_text = profile_path.read_text()
        profile = yaml.safe_load(profile_text)
        kinds = {kind for receiver in profile["receivers"] for kind in receiver if kind.endswith("_configs")}
        assert kinds == {"webhook_configs"}, kinds
        assert "pager: pagerduty, pager: slack" in profile_text and "ticket: email" in profile_text

        time.sleep(max(0.0, OBSERVED_S - (time.monotonic() - started)))
        records = stack.notifications()
        alerts_at: dict[str, set[str]] = {}
        for record in records:
            names = {alert["labels"]["alertname"] for alert in record["payload"]["alerts"]}
            alerts_at.setdefault(record["path"], set()).update(names)
        print(f"after {OBSERVED_S:.0f}s (15 scaled minutes): {alerts_at}")
        assert alerts_at.get("/watchdog") == {"Watchdog"}, alerts_at
        assert "/pager" not in alerts_at, f"paged on a quiet start: {alerts_at['/pager']}"
        assert stack.query('ALERTS{alertstate="firing", severity="critical"}') == []
        assert _value(stack, "sum(alertmanager_notifications_failed_total)") == 0
        assert _value(stack, 'sum(alertmanager_notifications_total{integration="webhook"})') >= 1

        # A service killed while its configuration is broken does not come back: status says so.
        profile_path.write_text("route: [this is not a route\n")
        stack.kill("alertmanager")
        log = stack.run_dir / "logs" / "alertmanager.log"
        status = wait_until(
            lambda: (s := stack.redline("status")).returncode == 3 and s, timeout=60, what="status exit 3"
        )
        assert "alertmanager: not ready" in status.stdout and str(log) in status.stdout, status.stdout
        assert "prometheus: not ready" not in status.stdout

        profile_path.write_text(profile_text)
        restarted = stack.redline("restart", "alertmanager")
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        assert stack.redline("status").returncode == 0
