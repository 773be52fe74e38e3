"""Process-wide memory settings of the exporters, observed in a real child process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

# Four threads allocate small blocks with libc malloc; glibc's malloc_stats() then prints one "Arena N:"
# block per arena in use to stderr.
CHILD = """
import ctypes, sys, threading
from redline.exporters.process import share_malloc_arena
applied = share_malloc_arena() if sys.argv[1] == "share" else None
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
kept = []
def allocate():
    kept.extend(libc.malloc(256) for _ in range(2000))
threads = [threading.Thread(target=allocate) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(applied)
sys.stdout.flush()
libc.malloc_stats()
"""


def _arenas(mode: str, env: dict[str, str]) -> tuple[str, int]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, mode], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    arenas = sum(1 for line in result.stderr.splitlines() if line.startswith("Arena "))
    return result.stdout.strip(), arenas


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc arenas")
def test_share_malloc_arena_keeps_threads_on_one_arena() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    assert _arenas("default", env)[1] >= 2, "without it, allocating threads get arenas of their own"
    assert _arenas("share", env) == ("True", 1)
    # an explicit MALLOC_ARENA_MAX is the operator's choice and is left alone
    applied, arenas = _arenas("share", {**env, "MALLOC_ARENA_MAX": "3"})
    assert applied == "False" and arenas >= 2
