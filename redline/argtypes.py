"""argparse types shared by redline's commands, so every command words the same mistake the same way."""

from __future__ import annotations

import argparse
from pathlib import Path

from redline.paths import RUN_DIR_ENV, run_dir


def _positive(text: str, kind: type[float] | type[int], noun: str) -> float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A number greater than zero (seconds, a scale factor)."""
    return float(_positive(text, float, "a number"))


def positive_int(text: str) -> int:
    """A whole number greater than zero (a count, a divisor)."""
    return int(_positive(text, int, "a whole number"))


def add_run_dir(parser: argparse.ArgumentParser, what: str) -> None:
    """--run-dir: the native stack's run folder, `what` saying what the command takes from it."""
    parser.add_argument(
        "--run-dir",
        type=Path,
        default=run_dir(),
        help=f"the stack's run folder: {what} (default .run/ of the checkout, or ${RUN_DIR_ENV})",
    )
