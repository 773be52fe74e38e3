"""An alert's links followed as the on-call would click them in a page, on a sandbox's console.

The links name the console's default port (redline/topology.py); a sandbox runs on free ports, so each
link is fetched from the sandbox's own console with the same path, query and anchor.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from redline.paths import ROOT
from redline.testing.sandbox import Sandbox


def dashboard_panels() -> dict[str, set[int]]:
    """uid -> panel ids of every generated dashboard (rows included)."""
    found = {}
    for path in (ROOT / "grafana" / "dashboards").glob("*.json"):
        dashboard = json.loads(path.read_text())
        ids: set[int] = set()
        panels = list(dashboard.get("panels", []))
        while panels:
            panel = panels.pop()
            ids.add(panel["id"])
            panels.extend(panel.get("panels", []))
        found[dashboard["uid"]] = ids
    return found


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # answer the redirect itself, so the test sees where it points


def follow(stack: Sandbox, url: str) -> tuple[int, str, str]:
    """GET a link of an alert on the sandbox's console (the links name the default port; the sandbox
    runs on free ones): (status, Location or '', body)."""
    parts = urllib.parse.urlsplit(url)
    local = urllib.parse.urlunsplit(
        ("http", f"127.0.0.1:{stack.port('console')}", parts.path, parts.query, "")
    )
    request = urllib.request.Request(local, headers=stack.auth)
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=10) as resp:
            return resp.status, "", resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Location", ""), err.read().decode()


def links_of(stack: Sandbox, annotations: dict[str, str]) -> dict[str, Any]:
    """Follow an alert's runbook_url and dashboard_url as a person clicking them in a page would."""
    runbook = follow(stack, annotations["runbook_url"])
    dashboard = follow(stack, annotations["dashboard_url"])
    landed = (
        follow(stack, urllib.parse.urljoin(f"{stack.url('console')}/", dashboard[1]))
        if dashboard[1]
        else None
    )
    return {"runbook": runbook, "dashboard": dashboard, "landed": landed}


def assert_links_resolve(annotations: dict[str, str], links: dict[str, Any]) -> None:
    """runbook_url opens its alert's runbook section on the console (200, the anchor on the page);
    dashboard_url lands on the system page at the entry of its panel."""
    status, _, page = links["runbook"]
    anchor = urllib.parse.urlsplit(annotations["runbook_url"]).fragment
    assert status == 200 and f'id="{anchor}"' in page, (annotations["runbook_url"], status)
    dashboard = urllib.parse.urlsplit(annotations["dashboard_url"])
    uid = dashboard.path.rsplit("/d/", 1)[1]
    panel = int(urllib.parse.parse_qs(dashboard.query)["viewPanel"][0])
    assert panel in dashboard_panels()[uid], f"no panel {panel} in dashboard {uid}"
    status, location, _ = links["dashboard"]
    assert status == 302 and location.startswith(f"/systems/{uid.removeprefix('redline-')}#entry-"), location
    assert links["landed"] is not None and links["landed"][0] == 200
    assert f'id="{location.split("#", 1)[1]}"' in links["landed"][2], location
