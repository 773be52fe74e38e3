"""Parse every PromQL expression of the catalogue with promtool, in one call, and map errors back.

Each expression goes into its own rule group named e<N>, so promtool's message
('group "e7", rule 1, ...: could not parse expression: ...') names exactly one catalogue field.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from redline.generate.catalogue import ROOT, CatalogueError

if TYPE_CHECKING:
    from redline.generate.catalogue import Catalogue

GROUP_ERROR_RE = re.compile(r'group "e(\d+)", rule \d+, "[^"]*": (.*)')


def promtool_path() -> str:
    """The pinned promtool (.tools/bin first, then PATH)."""
    pinned = ROOT / ".tools" / "bin" / "promtool"
    if pinned.exists():
        return str(pinned)
    found = shutil.which("promtool")
    if not found:
        raise CatalogueError("(catalogue)", "(promtool)", "(tool)", "promtool not found; run 'make setup'")
    return found


def catalogue_expressions(catalogue: Catalogue) -> list[tuple[str, str, str, str]]:
    """(file, entry, field, PromQL) for every expression the catalogue holds."""
    from redline.generate.render.rules import burn_rate_windows

    items = []
    windows = burn_rate_windows(catalogue)
    for system in catalogue.systems:
        seen: set[str] = set()
        for threshold in system.thresholds:
            if threshold.id in seen:
                continue
            seen.add(threshold.id)
            items.append((system.file, threshold.id, "signal", threshold.signal))
        for slo in system.slos:
            for window in [*windows, slo.period]:
                items.append((system.file, slo.id, "error_ratio", slo.error_ratio_for(window)))
    return items


def check_catalogue_promql(catalogue: Catalogue) -> None:
    """Raise CatalogueError for the first expression promtool cannot parse."""
    items = catalogue_expressions(catalogue)
    groups = [
        {"name": f"e{index}", "rules": [{"record": "catalogue:check:expr", "expr": expr}]}
        for index, (_file, _entry, _field, expr) in enumerate(items)
    ]
    with tempfile.TemporaryDirectory(prefix="redline-promql-") as tmp:
        path = Path(tmp) / "catalogue.yml"
        path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        result = subprocess.run(
            [promtool_path(), "check", "rules", "--lint=none", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    if result.returncode == 0:
        return
    output = result.stdout + result.stderr
    for line in output.splitlines():
        match = GROUP_ERROR_RE.search(line)
        if match:
            file, entry, field_name, _expr = items[int(match.group(1))]
            raise CatalogueError(file, entry, field_name, f"PromQL does not parse: {match.group(2)}")
    raise CatalogueError("(catalogue)", "(all)", "(promql)", f"promtool failed: {output.strip()[-500:]}")
