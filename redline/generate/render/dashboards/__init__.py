"""Grafana dashboards generated from the catalogue with grafana-foundation-sdk.

One module per dashboard kind: `system` (one per monitored system), `hosts` (the host system plus
node_exporter-style resources), `overview` (the on-call board); `common` holds the shared builders.
`render_dashboards` is the renderer registered in redline/generate/render/__init__.py.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders.dashboard import Dashboard

from redline.generate.model import Catalogue
from redline.generate.render.dashboards.common import to_json
from redline.generate.render.dashboards.hosts import HOST_SYSTEM, hosts_dashboard
from redline.generate.render.dashboards.overview import overview_dashboard
from redline.generate.render.dashboards.system import system_dashboard

DASHBOARDS_DIR = "grafana/dashboards"


def dashboard_path(uid: str) -> str:
    """Repository-relative path of a generated dashboard."""
    return f"{DASHBOARDS_DIR}/{uid}.json"


def build_dashboards(catalogue: Catalogue) -> list[Dashboard]:
    """Every dashboard: overview, hosts, then one per system that has catalogue entries."""
    dashboards = [overview_dashboard(catalogue), hosts_dashboard(catalogue)]
    for system in catalogue.systems:
        if system.id != HOST_SYSTEM and (system.thresholds or system.slos):
            dashboards.append(system_dashboard(catalogue, system))
    return dashboards


def render_dashboards(catalogue: Catalogue) -> dict[str, str]:
    """Renderer: grafana/dashboards/<uid>.json for every dashboard (deterministic JSON)."""
    files: dict[str, str] = {}
    for builder in build_dashboards(catalogue):
        built = builder.build()
        assert built.uid is not None
        files[dashboard_path(built.uid)] = to_json(built)
    return files
