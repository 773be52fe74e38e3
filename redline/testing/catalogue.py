"""A copy of the catalogue with one file changed: what the tests of bad catalogue input start from."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import yaml

from redline.paths import THRESHOLDS


def changed_catalogue(tmp_path: Path, file: str, mutate: Callable[[dict], None]) -> Path:
    """thresholds/ copied under tmp_path, `file` loaded, changed by `mutate` and written back."""
    catalogue = tmp_path / "thresholds"
    shutil.copytree(THRESHOLDS, catalogue)
    data = yaml.safe_load((catalogue / file).read_text())
    mutate(data)
    (catalogue / file).write_text(yaml.safe_dump(data, sort_keys=False))
    return catalogue


def entry(data: dict, entry_id: str, section: str = "thresholds") -> dict:
    """The entry with this id in a loaded catalogue file."""
    return next(e for e in data[section] if e["id"] == entry_id)
