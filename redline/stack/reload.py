"""`redline reload` and `redline rollback`: change the running stack's configuration safely.

reload:   validate the checkout's prometheus/ and alertmanager/ configs (promtool, amtool, blackbox_exporter
          --config.check), and only when all are valid POST /-/reload to the running Prometheus,
          Alertmanager(s) and blackbox_exporter, then check from their own metrics that the reload took.
          A broken change is refused before anything running is touched.
rollback: take prometheus/ and alertmanager/ from an earlier commit (default HEAD~1), validate them
          in a scratch folder, write them into the checkout, reload, and report how long it took.
          If a reload fails anyway, the files are put back as they were and reloaded again.

Both work for the native stack (`redline up` links the checkout's files into its run folder) and for
docker compose (the containers mount the same files; ports are published on the same 127.0.0.1 ports).
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from redline import tools, topology
from redline.paths import ROOT
from redline.topology import TopologyError

CONFIG_DIRS = ("prometheus", "alertmanager")
HTTP_TIMEOUT_S = 10.0
EXIT_INVALID = 2  # a config or usage error
EXIT_FAILED = 1  # the running stack could not be reached or did not take the change

Log = Callable[[str], None]


class ReloadError(Exception):
    """A reason to stop, worded for the on-call engineer; carries the exit status."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Target:
    """One running component to reload: kind is prometheus, alertmanager or blackbox."""

    kind: str
    url: str


# ----- validation ---------------------------------------------------------------------------------


def find_tool(name: str) -> str:
    """A validator binary: the pinned one in .tools/bin, else PATH."""
    found = tools.binary(name)
    if found is None:
        raise ReloadError(f"{name} not found in {tools.BIN_DIR} or on PATH; run 'make setup'")
    return found


def rule_files(prometheus_yml: Path) -> list[Path]:
    """The rule files a Prometheus config loads (its rule_files globs, relative to the config's folder)."""
    try:
        config = yaml.safe_load(prometheus_yml.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return []  # promtool reports it
    files: set[Path] = set()
    for pattern in config.get("rule_files") or []:
        # os.path.join keeps an absolute pattern as it is, as Prometheus does.
        files.update(Path(match) for match in glob.glob(str(prometheus_yml.parent / pattern)))
    return sorted(files)


def _check(cmd: list[str], what: str, root: Path) -> str:
    """Run one validator; its output becomes the error message when it fails."""
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired as err:
        raise ReloadError(f"{what}: validator timed out after 60s: {' '.join(cmd)}") from err
    if result.returncode != 0:
        output = (result.stderr + "\n" + result.stdout).replace(str(root) + "/", "")
        raise ReloadError(f"{what} is invalid, nothing was reloaded:\n{_essence(output)}", EXIT_INVALID)
    return f"{what}: valid"


def _essence(output: str) -> str:
    """The validator's error lines, without its progress, warning and success lines."""
    kept = []
    for line in output.splitlines():
        text = line.strip()
        if text.startswith("Checking") and "FAILED:" in text:  # amtool: Checking 'file'  FAILED: reason
            name = text.removeprefix("Checking").split("FAILED:")[0].strip().strip("'")
            text = f"{name}: {text.split('FAILED:', 1)[1].strip()}"
        elif not text or text == "FAILED:" or text.startswith(("Checking", "WARNING", "SUCCESS", "amtool:")):
            continue
        elif text.startswith("time=") and " level=" in text:  # blackbox_exporter's logfmt log
            if " level=ERROR " not in text:
                continue
            text = text.split(" err=", 1)[-1].strip('"').replace("\\n", " ")
        kept.append("  " + text.removeprefix("FAILED: "))
    return "\n".join(kept) or output.strip()


def validate(root: Path) -> list[str]:
    """Validate the configs under root: one line per check; ReloadError on the first invalid one."""
    prometheus_yml = root / "prometheus" / "prometheus.yml"
    alertmanager_yml = root / "alertmanager" / "alertmanager.yml"
    blackbox_yml = root / "prometheus" / "blackbox.yml"
    for required in (prometheus_yml, alertmanager_yml):
        if not required.is_file():
            raise ReloadError(f"{required}: not found", EXIT_INVALID)
    lines = [_check([find_tool("promtool"), "check", "config", str(prometheus_yml)], "prometheus.yml", root)]
    rules = rule_files(prometheus_yml)
    if rules:
        names = ", ".join(p.name for p in rules)
        cmd = [find_tool("promtool"), "check", "rules", *map(str, rules)]
        lines.append(_check(cmd, f"rules ({names})", root))
    lines.append(
        _check([find_tool("amtool"), "check-config", str(alertmanager_yml)], "alertmanager.yml", root)
    )
    if blackbox_yml.is_file():
        cmd = [find_tool("blackbox_exporter"), f"--config.file={blackbox_yml}", "--config.check"]
        lines.append(_check(cmd, "blackbox.yml", root))
    return lines


def rule_group_names(root: Path) -> set[str]:
    """Names of the rule groups the checkout's rule files define."""
    names: set[str] = set()
    for path in rule_files(root / "prometheus" / "prometheus.yml"):
        data = yaml.safe_load(path.read_text()) or {}
        names.update(group["name"] for group in data.get("groups") or [])
    return names


# ----- the running stack --------------------------------------------------------------------------


def _http(url: str, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method)
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def reachable(url: str) -> bool:
    """True when something answers HTTP at url's /-/healthy."""
    try:
        return _http(url + "/-/healthy")[0] == 200
    except OSError:
        return False


def metric_values(url: str, names: set[str]) -> dict[str, float]:
    """The current value of each named (label-less) metric on url's /metrics."""
    status, body = _http(url + "/metrics")
    if status != 200:
        raise ReloadError(f"{url}/metrics answered {status}")
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name in names and not sample.labels:
                values[sample.name] = sample.value
    return values


# The metrics each component updates on a reload: (success flag, success timestamp, optional hash).
RELOAD_METRICS = {
    "prometheus": (
        "prometheus_config_last_reload_successful",
        "prometheus_config_last_reload_success_timestamp_seconds",
        None,
    ),
    "alertmanager": (
        "alertmanager_config_last_reload_successful",
        "alertmanager_config_last_reload_success_timestamp_seconds",
        "alertmanager_config_hash",
    ),
    "blackbox": (
        "blackbox_exporter_config_last_reload_successful",
        "blackbox_exporter_config_last_reload_success_timestamp_seconds",
        None,
    ),
}
NAMES = {"prometheus": "Prometheus", "alertmanager": "Alertmanager", "blackbox": "blackbox_exporter"}


def reload_target(target: Target, expected_groups: set[str] | None = None) -> str:
    """POST /-/reload and confirm from the component's metrics that the new config is live."""
    name = f"{NAMES[target.kind]} {target.url}"
    ok_metric, ts_metric, hash_metric = RELOAD_METRICS[target.kind]
    wanted = {ok_metric, ts_metric} | ({hash_metric} if hash_metric else set())
    try:
        before = metric_values(target.url, wanted)
        status, body = _http(target.url + "/-/reload", method="POST")
    except OSError as err:
        raise ReloadError(f"{name}: cannot reach it: {err}") from err
    if status in (403, 404) and target.kind == "prometheus":
        raise ReloadError(f"{name}: reload refused ({status}): start Prometheus with --web.enable-lifecycle")
    if status != 200:
        raise ReloadError(f"{name}: reload failed ({status}): {body.strip()}")
    after = metric_values(target.url, wanted)
    if after.get(ok_metric) != 1.0 or after.get(ts_metric, 0.0) <= before.get(ts_metric, 0.0):
        raise ReloadError(
            f"{name}: reload answered 200 but {ok_metric}={after.get(ok_metric)} and "
            f"{ts_metric} did not advance; see its log"
        )
    detail = f"config loaded at {time.strftime('%H:%M:%S', time.localtime(after[ts_metric]))}"
    if hash_metric and hash_metric in after:
        detail += f", hash {int(after[hash_metric])}"
    if target.kind == "prometheus" and expected_groups is not None:
        served = _served_rule_groups(target.url)
        if served != expected_groups:
            missing = sorted(expected_groups - served)
            extra = sorted(served - expected_groups)
            raise ReloadError(
                f"{name}: reloaded, but its rule groups differ from the checkout's (missing {missing}, "
                f"unexpected {extra}): is it reading this checkout's prometheus/ folder?"
            )
        detail += f", {len(served)} rule group{'' if len(served) == 1 else 's'}"
    return f"{name}: reloaded ({detail})"


def _served_rule_groups(url: str) -> set[str]:
    status, body = _http(url + "/api/v1/rules")
    if status != 200:
        raise ReloadError(f"{url}/api/v1/rules answered {status}")
    return {group["name"] for group in json.loads(body)["data"]["groups"]}


def default_targets() -> list[Target]:
    """The stack's components on their default 127.0.0.1 ports; HA peers and blackbox when they answer."""

    def url(name: str) -> str:
        return f"http://127.0.0.1:{topology.port(name)}"

    targets = [Target("prometheus", url("prometheus")), Target("alertmanager", url("alertmanager"))]
    targets += [
        Target("alertmanager", url(n)) for n in ("alertmanager-2", "alertmanager-3") if reachable(url(n))
    ]
    if reachable(url("blackbox")):
        targets.append(Target("blackbox", url("blackbox")))
    return targets


def reload_all(root: Path, targets: list[Target], log: Log) -> None:
    """Validate root's configs, then reload every target; nothing is reloaded unless all are valid and up."""
    for line in validate(root):
        log(line)
    down = [t for t in targets if not reachable(t.url)]
    if down:
        names = ", ".join(f"{NAMES[t.kind]} at {t.url}" for t in down)
        raise ReloadError(f"not reachable: {names}; nothing was reloaded (is the stack up? 'redline status')")
    groups = rule_group_names(root)
    for target in targets:
        log(reload_target(target, groups if target.kind == "prometheus" else None))


# ----- rollback -----------------------------------------------------------------------------------


def _git(root: Path, *args: str) -> bytes:
    try:
        result = subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=60, check=False)
    except FileNotFoundError as err:
        raise ReloadError("git not found on PATH", EXIT_INVALID) from err
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise ReloadError(f"git {' '.join(args)}: {message[-1] if message else 'failed'}", EXIT_INVALID)
    return result.stdout


def files_at(root: Path, rev: str) -> dict[str, bytes]:
    """The regular files under prometheus/ and alertmanager/ at a commit, by repo-relative path."""
    archive = _git(root, "archive", "--format=tar", rev, "--", *CONFIG_DIRS)
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                if extracted is not None:
                    files[member.name] = extracted.read()
    return files


def _write(root: Path, files: dict[str, bytes | None]) -> None:
    """Put file contents in place (None deletes). Writes in place, keeping each file's inode, so that
    a container with the file bind-mounted sees the new content."""
    for rel, content in files.items():
        path = root / rel
        if content is None:
            path.unlink(missing_ok=True)
            continue
        if path.is_file() and path.read_bytes() == content:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            out.write(content)


def rollback(root: Path, rev: str, targets: list[Target], log: Log) -> str:
    """Restore the config folders from rev, validate, reload; returns a one-line summary."""
    started = time.monotonic()
    if Path(_git(root, "rev-parse", "--show-toplevel").decode().strip()).resolve() != root.resolve():
        raise ReloadError(f"{root} is not the top folder of a git checkout", EXIT_INVALID)
    try:
        commit = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").decode().strip()
    except ReloadError:
        raise ReloadError(f"--to {rev}: no such commit in {root}", EXIT_INVALID) from None
    subject = _git(root, "log", "-1", "--format=%h %s", commit).decode().strip()
    wanted = files_at(root, commit)
    tracked = _git(root, "ls-files", "-z", "--", *CONFIG_DIRS).decode().split("\0")
    changes: dict[str, bytes | None] = {rel: None for rel in tracked if rel and rel not in wanted}
    changes.update(wanted)

    # Validate the commit's configs on their own before the checkout is touched.
    with tempfile.TemporaryDirectory(prefix="redline-rollback-") as scratch:
        _write(Path(scratch), dict(wanted))
        try:
            validate(Path(scratch))
        except ReloadError as err:
            raise ReloadError(f"commit {subject}: {err}", err.exit_code) from None

    down = [t for t in targets if not reachable(t.url)]
    if down:
        names = ", ".join(f"{NAMES[t.kind]} at {t.url}" for t in down)
        raise ReloadError(f"not reachable: {names}; nothing was changed (is the stack up? 'redline status')")

    previous = {rel: ((root / rel).read_bytes() if (root / rel).is_file() else None) for rel in changes}
    changed = [rel for rel in changes if previous[rel] != changes[rel]]
    _write(root, changes)
    try:
        reload_all(root, targets, log)
    except ReloadError:
        log("reload failed: putting the files back as they were and reloading them")
        _write(root, previous)
        for target in targets:
            try:
                log(reload_target(target))
            except ReloadError as again:
                log(f"  {again}")
        raise
    untracked = _git(root, "ls-files", "-z", "--others", "--exclude-standard", "--", *CONFIG_DIRS)
    for rel in sorted(set(filter(None, untracked.decode().split("\0"))) - set(changes)):
        log(f"note: untracked file {rel} was left as it is")
    elapsed = time.monotonic() - started
    return f"rolled back to {subject}: {len(changed)} file(s) changed, reloaded in {elapsed:.1f}s"


# ----- command line -------------------------------------------------------------------------------


def _parser(action: str) -> argparse.ArgumentParser:
    if action == "reload":
        description = (
            "Validate prometheus/ and alertmanager/ (promtool check config and check rules, amtool "
            "check-config, blackbox_exporter --config.check) and, only when all pass, reload the running "
            "Prometheus, Alertmanager(s) and blackbox_exporter, then confirm the reload from their metrics. "
            "A broken change exits 2 with the validator's message and leaves the running config untouched."
        )
    else:
        description = (
            "Restore prometheus/ and alertmanager/ from an earlier commit (default: the previous one), "
            "validate them, write them into the checkout and reload the running stack. The working tree's "
            "other files and git's index and HEAD are not touched; commit the restored files when satisfied."
        )
    parser = argparse.ArgumentParser(prog=f"redline {action}", description=description)
    if action == "rollback":
        parser.add_argument(
            "--to", default="HEAD~1", metavar="REV", help="commit to restore (default: HEAD~1)"
        )
    parser.add_argument(
        "--prometheus", metavar="URL", help="Prometheus to reload (default: http://127.0.0.1:9090)"
    )
    parser.add_argument(
        "--alertmanager",
        action="append",
        metavar="URL",
        help="Alertmanager to reload; repeat for each cluster member (default: http://127.0.0.1:9093, "
        "plus the HA members on 9193 and 9293 when they answer)",
    )
    parser.add_argument(
        "--blackbox",
        metavar="URL",
        help="blackbox_exporter to reload (default: 127.0.0.1:9115 when it answers)",
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="checkout whose configs to use (default: this repository)"
    )
    return parser


def main(argv: list[str]) -> int:
    """Entry point for `redline reload ...` and `redline rollback ...` (argv[0] is the action)."""
    action = argv[0] if argv and argv[0] in {"reload", "rollback"} else "reload"
    args = _parser(action).parse_args(argv[1:] if argv and argv[0] == action else argv)
    prog = f"redline {action}"

    def log(line: str) -> None:
        print(f"{prog}: {line}", flush=True)

    root = args.root.resolve()
    try:
        if args.prometheus or args.alertmanager or args.blackbox:
            targets = [Target("prometheus", args.prometheus.rstrip("/"))] if args.prometheus else []
            targets += [Target("alertmanager", url.rstrip("/")) for url in args.alertmanager or []]
            targets += [Target("blackbox", args.blackbox.rstrip("/"))] if args.blackbox else []
        else:
            targets = default_targets()
        if action == "reload":
            started = time.monotonic()
            reload_all(root, targets, log)
            log(f"done in {time.monotonic() - started:.1f}s")
        else:
            log(rollback(root, args.to, targets, log))
    except (ReloadError, TopologyError) as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return err.exit_code if isinstance(err, ReloadError) else EXIT_INVALID
    return 0
