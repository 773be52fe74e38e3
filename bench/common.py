"""What the benchmark scripts share: the repository on sys.path, pinned binaries, free ports, waiting,
percentiles, and one-line failures instead of tracebacks."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redline.testing.sandbox import free_port  # noqa: E402
from redline.tools import binary  # noqa: E402

__all__ = ["ROOT", "free_port", "percentile", "run", "tool", "wait", "wait_ready"]


class BenchError(Exception):
    """A benchmark cannot go on; main() prints the reason in one line."""


def tool(name: str) -> str:
    """Path of a pinned binary; exits with the reason when `make setup` has not fetched it."""
    return binary(name) or sys.exit(f"{name} not found in .tools/bin or on PATH; run 'make setup'")


def wait(predicate: Callable[[], object], timeout: float, what: str) -> object:
    """Poll until predicate() is truthy (connection errors count as not yet); its value, or BenchError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")


def wait_ready(url: str, timeout: float = 30) -> None:
    """Wait until GET url answers 2xx."""

    def ready() -> bool:
        with urllib.request.urlopen(url, timeout=2):
            return True

    wait(ready, timeout, f"{url} to answer")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of the values: the same definition in every benchmark."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(main: Callable[[], int]) -> int:
    """Run a benchmark's main(); a failure of the stack or of a command is one line on stderr, exit 1."""
    try:
        return main()
    except BenchError as err:
        print(f"benchmark failed: {err}", file=sys.stderr)
    except subprocess.CalledProcessError as err:
        output = (err.stderr or err.stdout or b"").strip()
        text = output.decode(errors="replace") if isinstance(output, bytes) else output
        print(
            f"benchmark failed: {' '.join(map(str, err.cmd))} exited {err.returncode}: {text}",
            file=sys.stderr,
        )
    except (
        RuntimeError,
        TimeoutError,
    ) as err:  # redline.testing.sandbox: `redline up` failed, a page never came
        print(f"benchmark failed: {err}", file=sys.stderr)
    return 1
