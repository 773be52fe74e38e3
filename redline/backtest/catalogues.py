"""The catalogue a backtest evaluates: the working tree's, a folder's, or a git ref's thresholds/.

A git ref is read with `git archive REF thresholds` into a temporary folder, then loaded and checked as
`redline check` would (schema, cross-entry rules, PromQL parsed by promtool), so a ref whose catalogue
is invalid is refused with the same one-line message.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
import tempfile
from pathlib import Path

from redline.generate.cli import build
from redline.generate.load import CatalogueError
from redline.generate.model import Catalogue
from redline.paths import ROOT, THRESHOLDS


def load(ref: str | None, workdir: Path) -> tuple[Catalogue, str]:
    """(catalogue, label): None is the working tree; an existing folder is read as it is; anything else
    is a git ref of this repository. Raises CatalogueError (one line) for a bad ref or catalogue."""
    if ref is None:
        return build(THRESHOLDS), "working tree"
    folder = Path(ref)
    if folder.is_dir():
        return build(folder), str(folder)
    result = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", ref, THRESHOLDS.relative_to(ROOT).as_posix()],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines() or ["git archive failed"]
        raise CatalogueError(ref, "(git ref)", "thresholds/", f"cannot read it from git: {message[-1]}")
    target = Path(tempfile.mkdtemp(prefix="catalogue-", dir=workdir))
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as archive:
        archive.extractall(target, filter="data")
    return build(target / THRESHOLDS.relative_to(ROOT)), ref
