"""`redline reload` and `redline rollback`: change the running stack's configuration safely.

reload:   check the checkout's prometheus/ and alertmanager/ configs, and only when all checks pass POST
          /-/reload to the running Prometheus, Alertmanager(s), blackbox_exporter and (with --scale)
          vmalert, the long-term rules' evaluator, then check from
          their own metrics that the reload took. The checks, in order:
          1. syntax: promtool check config and check rules, amtool check-config, blackbox_exporter
             --config.check, vmalert -dryRun of prometheus/long-term/rules.yml. Never skipped.
          2. the repository's own tests: promtool test rules prometheus/tests/*.yml and the Alertmanager
             route tests (alertmanager/tests/routes.yml).
          3. paging invariants, what silently disables paging: no rule file, no Alertmanager to send to
             (or none it may authenticate with), no Watchdog rule, a critical alert or the Watchdog routed
             only to receivers without any integration.
          --force reloads despite failures of 2 and 3, with a warning per failure.
rollback: take prometheus/ and alertmanager/ from an earlier commit (default HEAD~1), check them in a
          scratch folder, write them into the checkout, reload, and report how long it took. It refuses
          while prometheus/ or alertmanager/ have uncommitted changes, which it would overwrite. If a
          reload fails anyway, the files are put back as they were and reloaded again.

Both work for the native stack (`redline up` links the checkout's files into its run folder; reload also
reads the inventory again into the target files and writes the run folder's Alertmanager profile) and for
docker compose (the containers mount the same files; ports are published on the same 127.0.0.1 ports),
and authenticate with the run folder's credentials (redline/credentials.py).
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from redline import checks, credentials, inventory, storage, tools, topology
from redline.argtypes import add_run_dir
from redline.paths import LONG_TERM_RULES, ROOT
from redline.stack import rundir
from redline.topology import TopologyError

CONFIG_DIRS = ("prometheus", "alertmanager")
HTTP_TIMEOUT_S = 10.0
RELOAD_WAIT_S = 5.0  # how long a component may take to show that a reload it accepted took
EXIT_INVALID = 2  # a config or usage error
EXIT_FAILED = 1  # the running stack could not be reached or did not take the change
MAX_FAILURES_SHOWN = 5  # failed route test cases listed in a refusal; the count says how many more

Log = Callable[[str], None]


class ReloadError(Exception):
    """A reason to stop, worded for the on-call engineer; carries the exit status."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Target:
    """One running component to reload: kind is prometheus, alertmanager, blackbox or vmalert."""

    kind: str
    url: str
    headers: dict[str, str] = field(default_factory=dict, compare=False)  # the stack's basic auth


# ----- validation ---------------------------------------------------------------------------------


def find_tool(name: str) -> str:
    """A validator binary: the pinned one in .tools/bin, else PATH."""
    return tools.require(name, ReloadError)


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


def _syntax(root: Path) -> list[str]:
    """The validators' syntax checks: one line each; ReloadError (never skipped) on the first failure."""
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
    long_term = root / LONG_TERM_RULES.relative_to(ROOT)
    if long_term.is_file():  # vmalert's, with --scale: it loads them as it would (promtool cannot tell)
        cmd = [find_tool("vmalert"), "-dryRun", "-loggerLevel=ERROR", f"-rule={long_term}"]
        lines.append(_check(cmd, f"long-term rules ({long_term.relative_to(root)})", root))
    return lines


def _tests(root: Path) -> tuple[list[str], list[str]]:
    """The repository's own tests of these configs: (lines for the passed ones, problems)."""
    passed: list[str] = []
    problems: list[str] = []
    results = []
    try:
        test_files = sorted((root / "prometheus" / "tests").glob("*.yml"))
        if test_files:
            results.append(checks.promtool_tests(test_files))
        cases = root / "alertmanager" / "tests" / "routes.yml"
        if cases.is_file():
            results.append(checks.route_tests(root / "alertmanager" / "alertmanager.yml", cases))
    except checks.CheckError as err:
        raise ReloadError(str(err)) from None
    for result in results:
        if result.ok:
            passed.append(result.summary())
            continue
        problems.append(f"{result.what}: {len(result.failures)} of {result.count} failed")
        shown = result.failures[:MAX_FAILURES_SHOWN]
        more = len(result.failures) - len(shown)
        problems += [f"    {line}" for line in shown + ([f"... and {more} more"] if more else [])]
        problems += [f"    {line}" for line in result.details]
    return passed, problems


def _targets_listed(pattern: str, bases: list[Path]) -> bool:
    """Whether a file_sd pattern, resolved against any of `bases`, matches a file that lists a target."""
    for base in bases:
        for match in glob.glob(os.path.join(base, pattern)):
            try:
                groups = yaml.safe_load(Path(match).read_text())
            except (OSError, yaml.YAMLError):
                continue
            if isinstance(groups, list) and any(isinstance(g, dict) and g.get("targets") for g in groups):
                return True
    return False


def _has_target(entry: dict, config_dir: Path, run_dir: Path) -> bool:
    """Whether an alerting.alertmanagers entry names at least one Alertmanager.

    file_sd paths are relative to the config's folder: the checkout's, the native run folder's (where
    `redline up` writes targets/) and, for a `targets/` path, compose's targets/compose/ (mounted there).
    Other service discovery cannot be checked here and counts as a target.
    """
    if any(isinstance(g, dict) and g.get("targets") for g in entry.get("static_configs") or []):
        return True
    if any(key.endswith("_sd_configs") and key != "file_sd_configs" and entry[key] for key in entry):
        return True
    for sd in entry.get("file_sd_configs") or []:
        for pattern in (sd or {}).get("files") or []:
            compose = str(pattern).replace("targets/", "targets/compose/", 1)
            bases = [config_dir, run_dir / "prometheus"]
            if _targets_listed(str(pattern), bases) or _targets_listed(compose, [config_dir]):
                return True
    return False


def _alerting_rules(files: list[Path]) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for path in files:
        data = yaml.safe_load(path.read_text()) or {}
        for group in data.get("groups") or []:
            rules += [rule for rule in group.get("rules") or [] if "alert" in rule]
    return rules


def _integrations(receiver: dict[str, Any] | None) -> bool:
    """Whether a receiver notifies anyone: at least one *_configs entry."""
    return bool(receiver) and any(k.endswith("_configs") and v for k, v in (receiver or {}).items())


def paging_problems(root: Path, run_dir: Path) -> list[str]:
    """What in these configs would silently stop pages: one line per problem, [] when none."""
    prometheus_yml = root / "prometheus" / "prometheus.yml"
    config = yaml.safe_load(prometheus_yml.read_text()) or {}
    problems = []
    files = rule_files(prometheus_yml)
    if not files:
        problems.append("prometheus.yml: rule_files selects no rule file: no alert would ever fire")
    alertmanagers = (config.get("alerting") or {}).get("alertmanagers") or []
    if not any(_has_target(entry, prometheus_yml.parent, run_dir) for entry in alertmanagers):
        problems.append(
            "prometheus.yml: alerting.alertmanagers lists no Alertmanager (no static target, no file_sd "
            "file with one): alerts would reach nobody"
        )
    elif credentials.Credentials(run_dir).exists():
        for index, entry in enumerate(alertmanagers):
            if not {"basic_auth", "authorization", "oauth2"} & set(entry):
                problems.append(
                    f"prometheus.yml: alerting.alertmanagers[{index}] sends no credentials, but the stack's "
                    "Alertmanagers require them: every alert would be refused (401)"
                )
    rules = _alerting_rules(files)
    if not any((rule.get("labels") or {}).get("watchdog") == "true" for rule in rules):
        problems.append(
            'rules: no alerting rule has the label watchdog="true" (the Watchdog): the dead man\'s switch '
            "would hear nothing"
        )
    problems += _unrouted_pages(root / "alertmanager" / "alertmanager.yml", rules)
    return problems


def _unrouted_pages(alertmanager_yml: Path, rules: list[dict[str, Any]]) -> list[str]:
    """Critical alerts and the Watchdog whose every receiver has no integration (amtool routes them)."""
    receivers = {
        r.get("name"): r for r in (yaml.safe_load(alertmanager_yml.read_text()) or {}).get("receivers") or []
    }
    cases: dict[str, dict[str, str]] = {"severity=critical": {"severity": "critical"}}
    for rule in rules:
        labels = {k: str(v) for k, v in (rule.get("labels") or {}).items() if "{{" not in str(v)}
        if labels.get("severity") == "critical" or labels.get("watchdog") == "true":
            labels["alertname"] = str(rule["alert"])
            cases.setdefault(f"{rule['alert']} ({labels.get('severity', '-')})", labels)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            routed = dict(
                zip(
                    cases, pool.map(lambda c: checks.routes(alertmanager_yml, c), cases.values()), strict=True
                )
            )
    except checks.CheckError as err:
        raise ReloadError(str(err)) from None
    silent: dict[str, list[str]] = {}
    for name, names in routed.items():
        if not any(_integrations(receivers.get(receiver)) for receiver in names):
            silent.setdefault(",".join(names), []).append(name)
    return [
        f"alertmanager.yml: {len(alerts)} alert(s) that must notify would reach only receiver "
        f'"{receiver}", which has no integration: {", ".join(alerts[:4])}{", ..." if len(alerts) > 4 else ""}'
        for receiver, alerts in silent.items()
    ]


def validate(root: Path, run_dir: Path, force: bool = False) -> list[str]:
    """Check the configs under root: one line per check. ReloadError on a syntax error, and on a failed
    test or paging invariant unless `force` (then each failure is a WARNING line)."""
    lines = _syntax(root)
    passed, problems = _tests(root)
    lines += passed
    invariants = paging_problems(root, run_dir)
    lines.append("paging invariants: hold" if not invariants else "paging invariants: violated")
    problems += invariants
    if problems and not force:
        listed = "\n".join(line if line.startswith("  ") else f"  {line}" for line in problems)
        raise ReloadError(
            f"refused, nothing was reloaded:\n{listed}\n  (fix the configs, or reload anyway with --force)",
            EXIT_INVALID,
        )
    if problems:
        lines.append("WARNING: --force: reloading although these checks FAILED; paging may be broken:")
        lines += [f"WARNING: {line if line.startswith('  ') else '  ' + line}" for line in problems]
    return lines


def rule_group_names(root: Path) -> set[str]:
    """Names of the rule groups the checkout's rule files define."""
    names: set[str] = set()
    for path in rule_files(root / "prometheus" / "prometheus.yml"):
        data = yaml.safe_load(path.read_text()) or {}
        names.update(group["name"] for group in data.get("groups") or [])
    return names


# ----- the running stack --------------------------------------------------------------------------


def _http(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=b"" if method == "POST" else None, method=method, headers=headers or {}
    )
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def health(target: Target) -> int | None:
    """The HTTP status of target's /-/healthy, or None when nothing answers."""
    try:
        return _http(target.url + "/-/healthy", headers=target.headers)[0]
    except OSError:
        return None


def metric_values(target: Target, names: set[str]) -> dict[str, float]:
    """The current value of each named (label-less) metric on the target's /metrics."""
    status, body = _http(target.url + "/metrics", headers=target.headers)
    if status != 200:
        raise ReloadError(f"{target.url}/metrics answered {status}")
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
    # vmalert moves its success timestamp only when the rules changed: its count of reloads always moves
    "vmalert": ("vmalert_config_last_reload_successful", "vmalert_config_last_reload_total", None),
}
NAMES = {
    "prometheus": "Prometheus",
    "alertmanager": "Alertmanager",
    "blackbox": "blackbox_exporter",
    "vmalert": "vmalert",
}


def reload_target(target: Target, expected_groups: set[str] | None = None) -> str:
    """POST /-/reload and confirm from the component's metrics that the new config is live."""
    name = f"{NAMES[target.kind]} {target.url}"
    ok_metric, ts_metric, hash_metric = RELOAD_METRICS[target.kind]
    wanted = {ok_metric, ts_metric} | ({hash_metric} if hash_metric else set())
    try:
        before = metric_values(target, wanted)
        status, body = _http(target.url + "/-/reload", method="POST", headers=target.headers)
    except OSError as err:
        raise ReloadError(f"{name}: cannot reach it: {err}") from err
    if status in (403, 404) and target.kind == "prometheus":
        raise ReloadError(f"{name}: reload refused ({status}): start Prometheus with --web.enable-lifecycle")
    if status != 200:
        raise ReloadError(f"{name}: reload failed ({status}): {body.strip()}")
    after = metric_values(target, wanted)
    deadline = time.monotonic() + RELOAD_WAIT_S  # vmalert reloads after it answered, the others before
    while after.get(ts_metric, 0.0) <= before.get(ts_metric, 0.0) and time.monotonic() < deadline:
        time.sleep(0.2)
        after = metric_values(target, wanted)
    if after.get(ok_metric) != 1.0 or after.get(ts_metric, 0.0) <= before.get(ts_metric, 0.0):
        raise ReloadError(
            f"{name}: reload answered 200 but {ok_metric}={after.get(ok_metric)} and "
            f"{ts_metric} did not advance; see its log"
        )
    if target.kind == "vmalert":
        detail = f"long-term rules read again, reload {int(after[ts_metric])}"
    else:
        detail = f"config loaded at {time.strftime('%H:%M:%S', time.localtime(after[ts_metric]))}"
    if hash_metric and hash_metric in after:
        detail += f", hash {int(after[hash_metric])}"
    if target.kind == "prometheus" and expected_groups is not None:
        served = _served_rule_groups(target)
        if served != expected_groups:
            missing = sorted(expected_groups - served)
            extra = sorted(served - expected_groups)
            raise ReloadError(
                f"{name}: reloaded, but its rule groups differ from the checkout's (missing {missing}, "
                f"unexpected {extra}): is it reading this checkout's prometheus/ folder?"
            )
        detail += f", {len(served)} rule group{'' if len(served) == 1 else 's'}"
    return f"{name}: reloaded ({detail})"


def _served_rule_groups(target: Target) -> set[str]:
    status, body = _http(target.url + "/api/v1/rules", headers=target.headers)
    if status != 200:
        raise ReloadError(f"{target.url}/api/v1/rules answered {status}")
    return {group["name"] for group in json.loads(body)["data"]["groups"]}


def default_targets(headers: dict[str, str]) -> list[Target]:
    """The stack's components on their default 127.0.0.1 ports; HA peers, the second Prometheus replica and
    blackbox when they answer."""

    def target(kind: str, name: str) -> Target:
        return Target(kind, f"http://127.0.0.1:{topology.port(name)}", headers)

    targets = [target("prometheus", "prometheus"), target("alertmanager", "alertmanager")]
    optional = [target("prometheus", "prometheus-2")]  # the second replica of `redline up --scale`
    optional += [target("alertmanager", n) for n in ("alertmanager-2", "alertmanager-3")]
    optional.append(target("blackbox", "blackbox"))
    optional.append(target("vmalert", storage.LONG_TERM_RULER))  # the long-term rules, with --scale
    return targets + [t for t in optional if health(t) is not None]


def _check_up(targets: list[Target], run_dir: Path, nothing: str) -> None:
    """ReloadError unless every target answers /-/healthy with the credentials."""
    status = {t: health(t) for t in targets}
    down = [t for t in targets if status[t] is None]
    if down:
        names = ", ".join(f"{NAMES[t.kind]} at {t.url}" for t in down)
        raise ReloadError(f"not reachable: {names}; {nothing} (is the stack up? 'redline status')")
    refused = [t for t in targets if status[t] in (401, 403)]
    if refused:
        names = ", ".join(f"{NAMES[t.kind]} at {t.url}" for t in refused)
        where = credentials.secret_path(run_dir, credentials.WEB_PASSWORD_FILE)
        raise ReloadError(
            f"{names} refused the credentials ({status[refused[0]]}) of {where}"
            f"{'' if where.is_file() else ' (no such file)'}; {nothing} (--run-dir: the stack's run folder)"
        )


def reload_all(root: Path, targets: list[Target], log: Log, run_dir: Path, force: bool = False) -> None:
    """Check root's configs, then reload every target; nothing is reloaded unless all checks pass (or
    `force` overrides the tests and invariants) and every target is up."""
    for line in validate(root, run_dir, force):
        log(line)
    _check_up(targets, run_dir, "nothing was reloaded")
    if (run_dir / rundir.STATE_FILE).is_file():  # a native stack: its run folder derives from the checkout
        try:
            lines = rundir.refresh(run_dir, root / "alertmanager" / "alertmanager.yml")
        except inventory.InventoryError as err:
            raise ReloadError(f"{err}; nothing was reloaded", EXIT_INVALID) from None
        for line in lines:
            log(line)
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


def _uncommitted(root: Path) -> list[str]:
    """Paths under prometheus/ and alertmanager/ that differ from HEAD (staged, modified, untracked)."""
    out = _git(root, "status", "--porcelain", "-z", "--untracked-files=all", "--", *CONFIG_DIRS)
    return sorted(entry[3:] for entry in out.decode().split("\0") if len(entry) > 3 and entry[2] == " ")


def rollback(
    root: Path, rev: str, targets: list[Target], log: Log, run_dir: Path, force: bool = False
) -> str:
    """Restore the config folders from rev, validate, reload; returns a one-line summary."""
    started = time.monotonic()
    if Path(_git(root, "rev-parse", "--show-toplevel").decode().strip()).resolve() != root.resolve():
        raise ReloadError(f"{root} is not the top folder of a git checkout", EXIT_INVALID)
    try:
        commit = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").decode().strip()
    except ReloadError:
        raise ReloadError(f"--to {rev}: no such commit in {root}", EXIT_INVALID) from None
    # The rollback writes these folders: edits not in a commit would be lost without a trace.
    dirty = _uncommitted(root)
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise ReloadError(
            f"uncommitted changes in {shown}: a rollback would overwrite them; nothing was changed. "
            "Commit them, or set them aside with: git stash push --include-untracked -- "
            + " ".join(CONFIG_DIRS),
            EXIT_INVALID,
        )
    subject = _git(root, "log", "-1", "--format=%h %s", commit).decode().strip()
    wanted = files_at(root, commit)
    tracked = _git(root, "ls-files", "-z", "--", *CONFIG_DIRS).decode().split("\0")
    changes: dict[str, bytes | None] = {rel: None for rel in tracked if rel and rel not in wanted}
    changes.update(wanted)

    # Check the commit's configs on their own before the checkout is touched.
    with tempfile.TemporaryDirectory(prefix="redline-rollback-") as scratch:
        _write(Path(scratch), dict(wanted))
        try:
            validate(Path(scratch), run_dir, force)
        except ReloadError as err:
            raise ReloadError(f"commit {subject}: {err}", err.exit_code) from None

    _check_up(targets, run_dir, "nothing was changed")
    previous = {rel: ((root / rel).read_bytes() if (root / rel).is_file() else None) for rel in changes}
    changed = [rel for rel in changes if previous[rel] != changes[rel]]
    _write(root, changes)
    try:
        reload_all(root, targets, log, run_dir, force)
    except ReloadError:
        log("reload failed: putting the files back as they were and reloading them")
        _write(root, previous)
        for target in targets:
            try:
                log(reload_target(target))
            except ReloadError as again:
                log(f"  {again}")
        raise
    elapsed = time.monotonic() - started
    return f"rolled back to {subject}: {len(changed)} file(s) changed, reloaded in {elapsed:.1f}s"


# ----- command line -------------------------------------------------------------------------------


def _parser(action: str) -> argparse.ArgumentParser:
    checks_text = (
        "Checks, in order: syntax (promtool check config and check rules, amtool check-config, "
        "blackbox_exporter --config.check, vmalert -dryRun of the long-term rules); the repository's "
        "tests (promtool test rules prometheus/tests/*.yml, the route tests of "
        "alertmanager/tests/routes.yml); paging invariants "
        "(rule files, an Alertmanager to send to, the Watchdog, critical alerts and the Watchdog reaching "
        "a receiver with an integration). A failure exits 2 and leaves the running config untouched; "
        "--force overrides failed tests and invariants (never syntax) with a warning."
    )
    if action == "reload":
        description = (
            "Check prometheus/ and alertmanager/ and, only when every check passes, reload the running "
            "Prometheus, Alertmanager(s), blackbox_exporter and vmalert (--scale), then confirm the reload "
            "from their metrics. " + checks_text
        )
    else:
        description = (
            "Restore prometheus/ and alertmanager/ from an earlier commit (default: the previous one), "
            "check them, write them into the checkout and reload the running stack. Refused while those "
            "folders have uncommitted changes. The working tree's other files and git's index and HEAD are "
            "not touched; commit the restored files when satisfied. " + checks_text
        )
    parser = argparse.ArgumentParser(prog=f"redline {action}", description=description)
    if action == "rollback":
        parser.add_argument(
            "--to", default="HEAD~1", metavar="REV", help="commit to restore (default: HEAD~1)"
        )
    parser.add_argument(
        "--force",
        action="store_true",
        help="reload even when the repository's tests or the paging invariants fail (loudly); syntax "
        "errors are never overridden",
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
        "--vmalert",
        metavar="URL",
        help="vmalert (the long-term rules of --scale) to reload (default: 127.0.0.1:8880 when it answers)",
    )
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="checkout whose configs to use (default: this repository)"
    )
    add_run_dir(
        parser,
        "its secrets/web-password authenticates the requests, its prometheus/targets/ are the native "
        "Alertmanager targets",
    )
    return parser


def main(argv: list[str]) -> int:
    """Entry point for `redline reload ...` and `redline rollback ...` (argv[0] is the action)."""
    action = argv[0] if argv and argv[0] in {"reload", "rollback"} else "reload"
    args = _parser(action).parse_args(argv[1:] if argv and argv[0] == action else argv)
    prog = f"redline {action}"

    def log(line: str) -> None:
        print(f"{prog}: {line}", flush=True)

    root, run_dir = args.root.resolve(), args.run_dir.resolve()
    try:
        headers = credentials.Credentials(run_dir).web_headers()
        if args.prometheus or args.alertmanager or args.blackbox or args.vmalert:
            urls = [("prometheus", args.prometheus)] if args.prometheus else []
            urls += [("alertmanager", url) for url in args.alertmanager or []]
            urls += [("blackbox", args.blackbox)] if args.blackbox else []
            urls += [("vmalert", args.vmalert)] if args.vmalert else []
            targets = [Target(kind, url.rstrip("/"), headers) for kind, url in urls]
        else:
            targets = default_targets(headers)
        if action == "reload":
            started = time.monotonic()
            reload_all(root, targets, log, run_dir, args.force)
            log(f"done in {time.monotonic() - started:.1f}s")
        else:
            log(rollback(root, args.to, targets, log, run_dir, args.force))
    except (ReloadError, TopologyError, credentials.CredentialsError) as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return err.exit_code if isinstance(err, ReloadError) else EXIT_INVALID
    return 0
