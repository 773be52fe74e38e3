"""Hostile catalogue files: `redline generate` refuses each in one line naming the file, within 5 s and a
bounded amount of memory, and writes nothing (issue 15: a ~600-byte YAML bomb used to hang it while its
memory grew ~45 MB/s, a 50 MB file ran past 60 s, a non-UTF-8 byte gave a 21-line traceback).

Each case runs the real command in a child process with its address space capped (RLIMIT_AS, 1 GiB), so
a regression dies of MemoryError instead of taking the machine with it, and measures the child's peak RSS
(VmHWM; under 100 MiB). No binary is needed: these files are refused while reading, before promtool
parses PromQL.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from redline.paths import ROOT, THRESHOLDS

TIME_LIMIT = 5.0  # seconds, the whole command
ADDRESS_SPACE = 1 << 30  # RLIMIT_AS of the child: the interpreter with its imports maps ~0.3 GiB
RSS_LIMIT = 100 << 20  # peak resident memory of the child (~40 MB when it refuses a file at once)


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss: int  # bytes


# The child caps its own address space before it imports redline, and on exit writes its VmHWM (the peak
# RSS of its own memory since exec) to a file: getrusage() and wait4() would count the memory of this
# process too, which the child shares until exec (vfork) or copies (fork).
CHILD = (
    "import atexit, os, resource, shutil, sys; "
    f"resource.setrlimit(resource.RLIMIT_AS, ({ADDRESS_SPACE}, {ADDRESS_SPACE})); "
    "atexit.register(shutil.copyfile, '/proc/self/status', os.environ['REDLINE_TEST_STATUS']); "
    "from redline.cli import main; sys.exit(main(sys.argv[1:]))"
)


def run_bounded(args: list[str], timeout: float = 3 * TIME_LIMIT) -> Outcome:
    """Run `redline ARGS` in a child with its address space capped; its exit, output, time, peak RSS."""
    cmd = [sys.executable, "-c", CHILD, *args]
    with tempfile.TemporaryDirectory() as tmp:
        out, err, status = Path(tmp) / "out", Path(tmp) / "err", Path(tmp) / "status"
        env = {**os.environ, "REDLINE_TEST_STATUS": str(status)}
        started = time.monotonic()
        with out.open("wb") as stdout, err.open("wb") as stderr:
            proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, cwd=ROOT, env=env)
            try:
                returncode = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                pytest.fail(f"redline {' '.join(args)} still running after {timeout:.0f}s")
        seconds = time.monotonic() - started
        hwm = re.search(r"^VmHWM:\s+(\d+) kB", status.read_text(), re.MULTILINE) if status.exists() else None
        return Outcome(
            returncode,
            out.read_text(errors="replace"),
            err.read_text(errors="replace"),
            seconds,
            int(hwm.group(1)) * 1024 if hwm else -1,
        )


def billion_laughs() -> str:
    """The classic bomb: nine levels of nine aliases each, ~600 bytes, 9**9 strings once expanded."""
    lines = ["system: tmux", 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    previous = "a"
    for name in "bcdefghi":
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
        previous = name
    lines.append("laughs: *i")
    return "\n".join(lines) + "\n"


def fifty_megabytes() -> bytes:
    """The real tmux.yml followed by 50 MB of valid YAML (a long comment block)."""
    real = (THRESHOLDS / "tmux.yml").read_bytes()
    filler = b"# " + b"x" * 1021 + b"\n"
    return real + filler * (50 * 1024)


def non_utf8() -> bytes:
    """The real tmux.yml with one Latin-1 byte in a quote."""
    return (THRESHOLDS / "tmux.yml").read_bytes().replace(b"tmux-orchestrator", b"tmux-orchestr\xe9tor", 1)


def deep_nesting() -> str:
    """A value nested 100,000 levels deep (200 KB of brackets)."""
    return "system: tmux\nname: " + "[" * 100_000 + "]" * 100_000 + "\n"


CASES = {
    "yaml-bomb": (billion_laughs, "line 2: YAML anchors and aliases are not allowed"),
    "50-mb-file": (fifty_megabytes, "larger than 1048576 bytes"),
    "non-utf8": (non_utf8, "not UTF-8 (byte 0xe9 at offset"),
    "deep-nesting": (deep_nesting, "nested deeper than 32 levels"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_file_is_refused_in_one_line_quickly_in_bounded_memory(tmp_path: Path, case: str) -> None:
    content, words = CASES[case]
    catalogue = tmp_path / "thresholds"
    shutil.copytree(THRESHOLDS, catalogue)
    data = content()
    target = catalogue / "tmux.yml"
    if isinstance(data, bytes):
        target.write_bytes(data)
    else:
        target.write_text(data)
    out = tmp_path / "out"
    result = run_bounded(["generate", "--catalogue", str(catalogue), "--out", str(out)])
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("redline generate: tmux.yml: "), lines[0]
    assert words in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert result.seconds < TIME_LIMIT, f"{result.seconds:.2f}s"
    assert 0 < result.peak_rss < RSS_LIMIT, f"peak RSS {result.peak_rss >> 20} MiB"
    assert not out.exists(), "nothing may be written on bad input"
    assert result.stdout == ""


def test_the_real_catalogue_renders_under_the_same_limits(tmp_path: Path) -> None:
    """The bounds are not what refuses the files above: the real catalogue passes them (rendering needs
    promtool, which the unit tier does not have, so it stops there with its own one-line error)."""
    out = tmp_path / "out"
    result = run_bounded(["generate", "--out", str(out)])
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "redline generate: (catalogue): entry '(promtool)': field '(tool)': "
        "promtool not found; run 'make setup'"
    )
    assert result.seconds < TIME_LIMIT and 0 < result.peak_rss < RSS_LIMIT
    assert not out.exists()
