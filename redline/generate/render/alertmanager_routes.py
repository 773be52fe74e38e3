"""Render the Alertmanager route test cases: for every alert of the catalogue, its labels and receivers.

The expected receivers follow the paging policy (below), independently of alertmanager/alertmanager.yml;
tests/integration/test_alertmanager_config.py runs `amtool config routes test --verify.receivers` on
every case, so the hand-written route tree and the catalogue can never disagree about who gets woken up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from redline.generate.alerts import catalogue_alerts
from redline.generate.render.common import header, yaml_dump

if TYPE_CHECKING:
    from redline.generate.model import Catalogue

ROUTES_TEST_PATH = "alertmanager/tests/routes.yml"

# The paging policy: severity -> receiver of alertmanager/alertmanager.yml.
RECEIVER_BY_SEVERITY = {"critical": "pager", "warning": "ticket", "info": "null"}
WATCHDOG_RECEIVER = "deadmans-switch"
DEFAULT_RECEIVER = "ticket"  # an alert without a known severity still reaches a human


def expected_receivers(labels: Mapping[str, str]) -> list[str]:
    """The receivers an alert with these labels must reach."""
    if labels.get("watchdog") == "true":
        return [WATCHDOG_RECEIVER]
    return [RECEIVER_BY_SEVERITY.get(labels.get("severity", ""), DEFAULT_RECEIVER)]


def route_cases(catalogue: Catalogue) -> list[dict]:
    """One case per alerting rule (a name with two severities gives two cases), in catalogue order."""
    cases, seen = [], set()
    for alert in catalogue_alerts(catalogue):
        labels = {**alert.labels, "alertname": alert.alert_name, "severity": alert.severity}
        labels = dict(sorted({**labels, "system": alert.system}.items()))
        key = tuple(labels.items())
        if key in seen:
            continue
        seen.add(key)
        cases.append({"alert": alert.alert_name, "labels": labels, "receivers": expected_receivers(labels)})
    return cases


def render_alertmanager_route_tests(catalogue: Catalogue) -> dict[str, str]:
    """{alertmanager/tests/routes.yml: the route test cases as YAML}."""
    text = (
        header("#", ["thresholds/*.yml"])
        + "# For every alert: the labels its rule sets and the receivers alertmanager/alertmanager.yml must\n"
        + "# route it to. Checked with `amtool config routes test --verify.receivers` by\n"
        + "# tests/integration/test_alertmanager_config.py.\n"
        + yaml_dump({"cases": route_cases(catalogue)})
    )
    return {ROUTES_TEST_PATH: text}
