"""What the benchmark scripts share: the repository on sys.path, the pinned binaries, free ports."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redline.sandbox import free_port  # noqa: E402
from redline.tools import binary  # noqa: E402

__all__ = ["ROOT", "free_port", "tool"]


def tool(name: str) -> str:
    """Path of a pinned binary; exits with the reason when `make setup` has not fetched it."""
    return binary(name) or sys.exit(f"{name} not found in .tools/bin or on PATH; run 'make setup'")
