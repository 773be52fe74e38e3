"""The tools manifest records binaries relative to the tools folder, so a moved checkout keeps them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from packaging.version import Version

from redline import tools


def _vmagent() -> tools.Tool:
    found = {tool.name: tool for tool in tools.load_versions()[1]}
    assert found["vmagent"].version_from_package  # vmagent reports no version; the package's is recorded
    return found["vmagent"]


def _folder(root: Path, binary: str) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "vmagent").write_bytes(b"#!/bin/sh\n")
    manifest = {"vmagent": {"binary": binary, "package_version": "1.145.0+ds1-2"}}
    (root / tools.MANIFEST_NAME).write_text(json.dumps(manifest))
    return root


def test_a_moved_tools_folder_keeps_its_recorded_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _folder(tmp_path / "old" / ".tools", "bin/vmagent")
    after = tmp_path / "moved" / ".tools"
    shutil.copytree(before, after)
    shutil.rmtree(before)
    monkeypatch.setattr(tools, "TOOLS_DIR", after)
    assert tools.installed_version(_vmagent(), after / "bin" / "vmagent") == Version("1.145.0")


def test_an_absolute_entry_of_an_older_manifest_still_counts_where_it_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / ".tools"
    _folder(folder, str(folder / "bin" / "vmagent"))
    monkeypatch.setattr(tools, "TOOLS_DIR", folder)
    assert tools.installed_version(_vmagent(), folder / "bin" / "vmagent") == Version("1.145.0")
    moved = tmp_path / "elsewhere" / ".tools"
    shutil.copytree(folder, moved)
    shutil.rmtree(folder)
    monkeypatch.setattr(tools, "TOOLS_DIR", moved)
    assert tools.installed_version(_vmagent(), moved / "bin" / "vmagent") is None  # fetched again
