"""The unit tier runs without any binary: no promtool, no Prometheus, no PostgreSQL, not on PATH either.

Each unit test sees an empty tools folder (REDLINE_TOOLS_DIR) and a PATH of the virtualenv's bin folder
only, so a test that reaches for a binary fails instead of quietly using one. Python itself
(sys.executable, by absolute path) stays available for tests of the `redline` command.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from redline import tools


@pytest.fixture(autouse=True)
def no_binaries(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    empty = tmp_path_factory.getbasetemp() / "no-tools"
    (empty / "bin").mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("REDLINE_TOOLS_DIR", str(empty))
    monkeypatch.setattr(tools, "TOOLS_DIR", empty)
    monkeypatch.setattr(tools, "BIN_DIR", empty / "bin")
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
