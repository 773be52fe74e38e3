"""argparse types shared by redline's commands, so every command words the same mistake the same way."""

from __future__ import annotations

import argparse


def positive_float(text: str) -> float:
    """A number greater than zero (seconds, a scale factor)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value
