"""`redline targets`: what the running Prometheus scrapes and probes, and whether each one answers.

The question after pointing the stack at a team's services (inventory.yml): is every service of mine
scraped, with the labels I gave it? One row per target: its job, address, system and env, whether it
answers (a probe target answers when its probe succeeds, not when blackbox_exporter does) and the last
error. Exit status 0 when every target answers, 3 when one does not (after --wait, if given), 1 when
Prometheus cannot be asked. Debian's Prometheus has no web UI, so this is the targets page.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from redline import credentials, topology
from redline.argtypes import add_run_dir

EXIT_DOWN = 3
EXIT_UNREACHABLE = 1
DESCRIPTION = (
    "Show what the running Prometheus scrapes and probes: job, address, system, env, whether it answers "
    "(probe targets: whether the probe succeeds) and the last error. Exit status 0 when every shown "
    "target answers, 3 when one does not, 1 when Prometheus cannot be asked."
)


class PrometheusUnreachable(Exception):
    """Prometheus did not answer (or refused the run folder's credentials)."""


@dataclass(frozen=True)
class Target:
    """One active target as Prometheus sees it."""

    job: str
    address: str
    system: str
    env: str
    up: bool
    error: str
    discovered: str = ""  # the address as written in the target file (a probe's URL)

    @property
    def row(self) -> tuple[str, ...]:
        return (self.job, self.address, self.system, self.env, "up" if self.up else "DOWN", self.error)


def _get(url: str, headers: dict[str, str]) -> Any:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return json.load(resp)["data"]
    except urllib.error.HTTPError as err:
        raise PrometheusUnreachable(f"{url}: HTTP {err.code}") from None
    except (OSError, ValueError, KeyError) as err:
        raise PrometheusUnreachable(f"{url}: {err}") from None


def active_targets(prometheus: str, headers: dict[str, str]) -> list[Target]:
    """Every active scrape target, with probe targets judged by their probe_success."""
    data = _get(f"{prometheus}/api/v1/targets?state=active", headers)
    query = urllib.parse.urlencode({"query": f'probe_success{{job="{topology.PROBE_JOB}"}}'})
    probes = {
        row["metric"].get("instance", ""): row["value"][1] == "1"
        for row in _get(f"{prometheus}/api/v1/query?{query}", headers)["result"]
    }
    found = []
    for target in data["activeTargets"]:
        labels = target["labels"]
        up = target["health"] == "up"
        error = target.get("lastError", "")
        if labels.get("job") == topology.PROBE_JOB and up:
            up = probes.get(labels.get("instance", ""), False)
            error = error or ("" if up else "probe failed (probe_success 0)")
        found.append(
            Target(
                job=labels.get("job", ""),
                address=labels.get("instance", target.get("scrapeUrl", "")),
                system=labels.get("system", ""),
                env=labels.get("env", ""),
                up=up,
                error=error,
                discovered=target.get("discoveredLabels", {}).get("__address__", ""),
            )
        )
    return sorted(found, key=lambda t: (t.system, t.job, t.address))


def configured_targets(folder: Path) -> list[tuple[str, str, str]]:
    """(address, system, env) of every target in the run folder's file_sd files: what Prometheus
    should be scraping once it has read them (file_sd picks a changed file up within seconds)."""
    found = []
    for path in sorted(folder.glob("*.yml")):
        try:
            groups = yaml.safe_load(path.read_text()) or []
        except (OSError, yaml.YAMLError):
            continue  # a file being replaced; Prometheus skips it the same way
        for group in groups if isinstance(groups, list) else []:
            labels = group.get("labels") or {}
            for address in group.get("targets") or []:
                found.append((str(address), str(labels.get("system", "")), str(labels.get("env", ""))))
    return found


def not_yet_discovered(
    configured: list[tuple[str, str, str]], active: list[Target], system: str | None
) -> list[Target]:
    """Rows for the configured targets Prometheus does not scrape yet (just written, or unreadable)."""
    seen = {t.discovered for t in active}
    return [
        Target("?", address, sys_, env, False, "not yet discovered by Prometheus", address)
        for address, sys_, env in configured
        if address not in seen and system in (None, sys_)
    ]


def _print(targets: list[Target]) -> None:
    header = ("JOB", "TARGET", "SYSTEM", "ENV", "STATE", "LAST ERROR")
    rows = [header, *(t.row for t in targets)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*cells, row[-1]]).rstrip())


def main(argv: list[str]) -> int:
    """`redline targets [--system NAME] [--wait SECONDS]`."""
    parser = argparse.ArgumentParser(prog="redline targets", description=DESCRIPTION)
    parser.add_argument("--system", help="only the targets of this system (gamebook, qerrors, ...)")
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait up to this long for every target of the run folder's target files to be scraped "
        "and answer (a target just added by 'redline reload' answers after its first scrape), printing "
        "the table once at the end",
    )
    add_run_dir(parser, "its credentials, and the target files Prometheus reads")
    args = parser.parse_args(argv)
    headers = credentials.Credentials(args.run_dir.resolve()).web_headers()
    prometheus = f"http://127.0.0.1:{topology.port('prometheus')}"
    target_files = args.run_dir.resolve() / "prometheus" / "targets"
    deadline = time.monotonic() + args.wait
    while True:
        try:
            targets = [t for t in active_targets(prometheus, headers) if args.system in (None, t.system)]
            targets += not_yet_discovered(configured_targets(target_files), targets, args.system)
        except PrometheusUnreachable as err:
            print(f"redline targets: Prometheus did not answer: {err} ('redline status')", file=sys.stderr)
            return EXIT_UNREACHABLE
        if (targets and all(t.up for t in targets)) or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    _print(targets)
    if not targets:
        print(f"redline targets: no targets{f' of system {args.system}' if args.system else ''}")
        return EXIT_DOWN
    down = [t for t in targets if not t.up]
    if down:
        print(f"redline targets: {len(down)} of {len(targets)} not answering", file=sys.stderr)
    return EXIT_DOWN if down else 0
