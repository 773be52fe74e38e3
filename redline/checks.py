"""The repository's own tests of its configs, with the pinned promtool and amtool.

- promtool's unit tests of the rules (`promtool test rules prometheus/tests/*.yml`), one process per test
  file in parallel, each result cached by content: a test file whose text, rule files and promtool are
  unchanged since it last passed is not run again (the qerrors baseline test alone takes ~15 s).
- the Alertmanager route tests (alertmanager/tests/routes.yml): `amtool config routes test
  --verify.receivers` per case, and the receivers an alert's labels route to.

`redline check` runs the first on what the catalogue renders; `redline reload` and `rollback` run both
on the configs they are about to load.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from redline import safe_yaml, tools

CACHE_DIR = tools.TOOLS_DIR / "cache" / "promtool-tests"
TIMEOUT_S = 300
MAX_OUTPUT_LINES = 12  # of a failing tool's output, in a message


class CheckError(Exception):
    """A check could not run at all (a tool missing, a file unreadable); the message says which."""


@dataclass
class Result:
    """What one kind of test found: `failures` holds one line per failed file or case."""

    what: str
    count: int
    failures: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # the tools' own words about the failures
    cached: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        if self.ok:
            reused = f", {self.cached} unchanged since they last passed" if self.cached else ""
            return f"{self.what}: {self.count} passed{reused}"
        return f"{self.what}: {len(self.failures)} of {self.count} failed: {'; '.join(self.failures)}"


def _tool(name: str) -> str:
    return tools.require(name, CheckError)


def _run(cmd: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=cwd, check=False)
    except subprocess.TimeoutExpired:
        raise CheckError(f"{Path(cmd[0]).name} timed out after {TIMEOUT_S}s: {' '.join(cmd[1:])}") from None


def _cache_key(promtool: str, test_file: Path) -> str:
    """sha256 over promtool (path, size, mtime), the test file and every rule file it loads."""
    digest = hashlib.sha256()
    stat = Path(promtool).stat()
    digest.update(f"{Path(promtool).resolve()}:{stat.st_size}:{stat.st_mtime_ns}\0".encode())
    text = test_file.read_bytes()
    digest.update(text + b"\0")
    try:
        data = safe_yaml.load_text(text.decode("utf-8", errors="replace"), test_file.name) or {}
    except safe_yaml.YamlInputError:
        data = {}  # promtool reports it; the key still covers the text
    patterns = data.get("rule_files") if isinstance(data, dict) else None
    for pattern in patterns if isinstance(patterns, list) else []:
        for match in sorted(glob.glob(str(test_file.parent / str(pattern)))):
            digest.update(f"{pattern}:{Path(match).name}\0".encode() + Path(match).read_bytes() + b"\0")
    return digest.hexdigest()


def promtool_tests(test_files: list[Path], cache: bool = True) -> Result:
    """`promtool test rules` on each file (in parallel); unchanged files that passed before are skipped."""
    promtool = _tool("promtool")
    result = Result("promtool test rules", len(test_files))
    pending: dict[Path, str] = {}
    for path in sorted(test_files):
        key = _cache_key(promtool, path)
        if cache and (CACHE_DIR / key).exists():
            result.cached += 1
        else:
            pending[path] = key

    def run(path: Path) -> subprocess.CompletedProcess[str]:
        return _run([promtool, "test", "rules", path.name], cwd=path.parent)

    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        outcomes = dict(zip(pending, pool.map(run, pending), strict=True))
    for path, outcome in outcomes.items():
        if outcome.returncode == 0:
            CACHE_DIR.mkdir(parents=True, exist_ok=True)
            (CACHE_DIR / pending[path]).touch()
            continue
        result.failures.append(path.name)
        lines = [line.rstrip() for line in (outcome.stdout + outcome.stderr).splitlines() if line.strip()]
        kept = [line for line in lines if not line.lstrip().startswith(("Unit Testing:", "SUCCESS"))]
        result.details += [f"{path.name}: {line.strip()}" for line in kept[:MAX_OUTPUT_LINES]]
    return result


def matcher_args(labels: Mapping[str, str]) -> list[str]:
    """Label pairs in amtool's matcher syntax: name="value", escaped like a JSON string."""
    return [f"{name}={json.dumps(value, ensure_ascii=False)}" for name, value in labels.items()]


def routes(config: Path, labels: Mapping[str, str]) -> list[str]:
    """The receivers Alertmanager's config routes an alert with these labels to (amtool)."""
    out = _run(
        [_tool("amtool"), "config", "routes", "test", f"--config.file={config}", *matcher_args(labels)]
    )
    if out.returncode != 0:
        raise CheckError(f"amtool config routes test: {out.stderr.strip() or out.stdout.strip()}")
    return [name for name in out.stdout.strip().split(",") if name]


def route_tests(config: Path, cases_file: Path) -> Result:
    """Each case of a route test file (alertmanager/tests/routes.yml) with `--verify.receivers`."""
    try:
        data = safe_yaml.load_file(cases_file) or {}
    except safe_yaml.YamlInputError as err:
        raise CheckError(f"{cases_file}: {err.problem}") from None
    cases = data.get("cases") if isinstance(data, dict) else None
    if not isinstance(cases, list):
        raise CheckError(f"{cases_file}: expected a list under 'cases'")
    amtool = _tool("amtool")

    def run(case: dict) -> subprocess.CompletedProcess[str]:
        cmd = [amtool, "config", "routes", "test", f"--config.file={config}"]
        cmd.append("--verify.receivers=" + ",".join(case["receivers"]))
        return _run([*cmd, *matcher_args(case["labels"])])

    result = Result("route tests", len(cases))
    with ThreadPoolExecutor(max_workers=4) as pool:
        for case, out in zip(cases, pool.map(run, cases), strict=True):
            if out.returncode != 0:
                got = out.stdout.strip().splitlines()[:1] or [out.stderr.strip()]
                wanted = ",".join(case["receivers"])
                result.failures.append(f"{case.get('alert', case['labels'])} -> {got[0]}, expected {wanted}")
    return result
