"""Generated Grafana dashboards: SDK schema, ids, layout, datasources, catalogue thresholds, alert links.

The live half (every query parses and returns data from the real stack) is
tests/integration/test_dashboards_live.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from redline.generate.conventions import dashboard_uid, panel_id
from redline.generate.load import load_catalogue
from redline.generate.model import Catalogue
from redline.generate.render.dashboards import DASHBOARDS_DIR
from redline.testing.processes import ROOT

DASHBOARDS = ROOT / DASHBOARDS_DIR
PROVISIONING = ROOT / "grafana" / "provisioning"
DATASOURCE_VARIABLE_REF = {"type": "prometheus", "uid": "${datasource}"}
FIXED_RANGE = re.compile(r"\[\s*\d+[smhdwy]\s*(?::[^\]]*)?\]")


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def all_panels(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows and panels nested in collapsed rows included."""
    panels = []
    for panel in data.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def panel_by_id(data: dict[str, Any], wanted: int) -> dict[str, Any]:
    matches = [p for p in all_panels(data) if p.get("id") == wanted]
    assert len(matches) == 1, f"{data['uid']}: expected one panel with id {wanted}, found {len(matches)}"
    return matches[0]


def steps_of(panel: dict[str, Any]) -> list[dict[str, Any]]:
    return panel["fieldConfig"]["defaults"]["thresholds"]["steps"]


def test_changing_a_catalogue_number_changes_the_panel_threshold(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    """On a copy: move GameBook's memory alert value, regenerate with `redline generate`, see the panel."""
    copy = tmp_path / "thresholds"
    shutil.copytree(ROOT / "thresholds", copy)
    text = (copy / "gamebook.yml").read_text()
    entry = re.search(r"- id: memory\n(?:.*\n)*?    value: (0\.80?)\n", text)
    assert entry, "the gamebook memory entry changed shape; adapt this test"
    start, end = entry.span(1)
    (copy / "gamebook.yml").write_text(text[:start] + "0.85" + text[end:])
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "redline.cli", "generate", "--catalogue", str(copy), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    uid = dashboard_uid("gamebook")
    before = panel_by_id(load(DASHBOARDS / f"{uid}.json"), panel_id("gamebook", "memory"))
    after = panel_by_id(load(out / DASHBOARDS_DIR / f"{uid}.json"), panel_id("gamebook", "memory"))
    assert {"value": 0.8, "color": "red"} in steps_of(before)
    assert {"value": 0.85, "color": "red"} in steps_of(after)
    assert {"value": 0.8, "color": "red"} not in steps_of(after)
    assert "0.85" in after["description"] or "85%" in after["description"]
    # Everything else in that dashboard is unchanged.
    for panel in all_panels(load(out / DASHBOARDS_DIR / f"{uid}.json")):
        if panel["id"] != panel_id("gamebook", "memory"):
            assert panel == panel_by_id(load(DASHBOARDS / f"{uid}.json"), panel["id"])
