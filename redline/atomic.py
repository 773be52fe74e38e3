"""Files replaced whole: a reader (Prometheus' file_sd, a monitor loop, the next `redline generate`) sees
the old text or the new one, never half of it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_text(path: Path, text: str) -> None:
    """Write `text` to a hidden file beside `path`, then rename it over `path` (atomic on one filesystem)."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, prefix=f".{path.name}.") as staged:
        staged.write(text)
    os.replace(staged.name, path)
