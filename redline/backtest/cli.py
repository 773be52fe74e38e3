"""`redline backtest`: what each catalogue alert would have done over real history, and what it should be.

load the catalogue(s) -> render self-contained rules -> check the history covers their windows ->
vmalert -replay into a scratch VictoriaMetrics -> episodes -> Alertmanager model -> report.
Exit status: 0 done, 2 bad input (one line), 1 the datasource, vmalert or the scratch store failed.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from redline import credentials, storage, topology
from redline.backtest import analysis, catalogues, report
from redline.backtest.datasource import DatasourceError, HistoryError, authenticated, check_coverage, iso
from redline.backtest.engine import EngineError, replay
from redline.backtest.notifications import ConfigError, load_config
from redline.backtest.rules import RuleError, RuleSet
from redline.backtest.timeline import Grid
from redline.generate.load import CatalogueError
from redline.generate.model import parse_duration
from redline.paths import ALERTMANAGER, run_dir
from redline.stack.rundir import history_url

EXIT_BACKEND = 1
EXIT_INVALID = 2

DESCRIPTION = """\
Evaluate every alert of the catalogue over real history and report what it would have done: its firing
episodes, the pages and tickets they give after Alertmanager's routing, grouping and inhibition (the
real alertmanager/alertmanager.yml), how well each documented number held, and a suggested value and
`for` that gives at most --max-per-month notifications.

The rules are evaluated by vmalert's replay (the pinned binary in .tools/bin) over the history of
--prometheus, which is only read (range queries); results go to a scratch VictoriaMetrics in a temporary
folder. Evaluations happen every --step: a `for` is rounded up to a whole number of steps and a breach
shorter than a step between two evaluations is not seen (range windows such as [5m] still read every
raw sample). The live stack evaluates every second. See docs/backtest.md.
"""

EPILOG = """\
examples:
  redline backtest --since 7d
  redline backtest --from 2026-11-01T00:00:00Z --to 2026-12-01T00:00:00Z --html report.html
  redline backtest --since 30d --compare origin/main --json diff.json   # a threshold change in review
"""


def parse_time(text: str) -> int:
    """RFC 3339 ('2026-11-01T00:00:00Z') or Unix seconds."""
    try:
        return int(float(text))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected RFC 3339 like 2026-11-01T00:00:00Z, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def duration(text: str) -> int:
    try:
        seconds = parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be longer than 0s, got {text!r}")
    return seconds


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0 or math.isnan(value):
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Bad arguments are one line (and exit status 2), like every other bad input."""
        self.exit(EXIT_INVALID, f"redline backtest: {message} (see redline backtest --help)\n")


def options() -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
    """The options by help section: (flag, help, other argparse keywords)."""
    prometheus, store = (f"http://127.0.0.1:{topology.port(n)}" for n in ("prometheus", storage.LONG_TERM))
    return {
        "history": [
            ("--since", "the last DURATION (default 7d)", {"type": duration, "metavar": "DURATION"}),
            ("--from", "first evaluation (RFC 3339 or Unix seconds)",
             {"dest": "start", "type": parse_time, "metavar": "TIME"}),
            ("--to", "last evaluation (default now)", {"dest": "end", "type": parse_time, "metavar": "TIME"}),
            ("--step", "evaluation interval (default 1m)",
             {"type": duration, "default": 60, "metavar": "DURATION"}),
            ("--prometheus", "datasource, read only (default: where the stack keeps its history, with "
             f"the run folder's credentials: VictoriaMetrics {store} when it runs with --scale, "
             f"else {prometheus})",
             {"metavar": "URL"}),
            ("--bearer-token-file", "a file holding the datasource's bearer token",
             {"type": Path, "metavar": "FILE"}),
            ("--basic-auth-file", "a file holding the datasource's user:password",
             {"type": Path, "metavar": "FILE"}),
            ("--partial-windows", "evaluate even when the history starts after what a rule's windows read "
             "(they see partial data)", {"action": "store_true"}),
        ],
        "catalogue and routing": [
            ("--catalogue", "a git ref or a folder (default: thresholds/)", {"metavar": "REF"}),
            ("--compare", "also evaluate this catalogue (git ref or folder): pages gained and lost per alert",
             {"metavar": "REF"}),
            ("--alertmanager-config", "routes, timers, inhibitions (default alertmanager/alertmanager.yml)",
             {"type": Path, "default": ALERTMANAGER / "alertmanager.yml", "metavar": "FILE"}),
            ("--max-per-month", "the suggestions aim at most N pages (or tickets, for a ticket alert) a "
             "month (default 4)", {"type": non_negative, "default": 4.0, "metavar": "N"}),
            ("--no-suggest", "skip the suggestions (faster)", {"action": "store_true"}),
        ],
        "output": [
            ("--json", "write the JSON report ('-': to stdout, instead of the table)",
             {"type": Path, "metavar": "FILE"}),
            ("--html", "write the self-contained HTML report", {"type": Path, "metavar": "FILE"}),
            ("--quiet", "no progress lines on stderr", {"action": "store_true"}),
        ],
    }  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="redline backtest",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for title, items in options().items():
        group = p.add_argument_group(title)
        for flag, help_text, keywords in items:
            group.add_argument(flag, help=help_text, **keywords)
    return p


def stack_basic_auth(args: argparse.Namespace, folder: Path) -> Path | None:
    """The run folder's credentials as a user:password file (0600), when the datasource is the stack's
    own (no --prometheus) and no other credentials were given; None otherwise."""
    stack = credentials.Credentials(run_dir().resolve())
    if args.bearer_token_file or args.prometheus is not None or not stack.exists():
        return None
    path = folder / "stack-basic-auth"
    credentials.write_private(path, f"{credentials.USER}:{stack.web_password}")
    return path


def grid_of(args: argparse.Namespace) -> Grid:
    """The evaluation grid: whole multiples of the step between --from/--since and --to."""
    if args.since is not None and args.start is not None:
        raise ValueError("give --since or --from, not both")
    step = args.step
    end = args.end if args.end is not None else int(time.time())
    start = args.start if args.start is not None else end - (args.since or 7 * 86400)
    first, last = math.ceil(start / step) * step, (end // step) * step
    if last <= first:
        raise ValueError(f"--from {iso(start)} is not before --to {iso(end)} by a step ({step}s) at least")
    return Grid(first, last, step)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    started = time.monotonic()

    def progress(message: str) -> None:
        if not args.quiet:
            print(
                f"redline backtest: {message} [{time.monotonic() - started:.0f}s]",
                file=sys.stderr,
                flush=True,
            )

    try:
        return run(args, progress, started)
    except (CatalogueError, ConfigError, RuleError, HistoryError, ValueError) as err:
        print(f"redline backtest: {err}", file=sys.stderr)
        return EXIT_INVALID
    except (DatasourceError, EngineError) as err:
        print(f"redline backtest: {err}", file=sys.stderr)
        return EXIT_BACKEND


def run(args: argparse.Namespace, progress: analysis.Progress, started: float) -> int:
    grid = grid_of(args)
    config = load_config(args.alertmanager_config)
    with tempfile.TemporaryDirectory(prefix="redline-backtest-") as tmp:
        workdir = Path(tmp)
        base, base_label = catalogues.load(args.catalogue, workdir)
        other = catalogues.load(args.compare, workdir) if args.compare else None
        rules = RuleSet(grid.step)
        base_rules = rules.add_catalogue(base)
        other_rules = rules.add_catalogue(other[0]) if other else None
        basic_auth_file = args.basic_auth_file or stack_basic_auth(args, workdir)
        url = args.prometheus or history_url()
        source = authenticated(url, args.bearer_token_file, basic_auth_file, workdir)
        progress(
            f"{len(rules.rules)} alert rules and {len(rules.signals)} signals over {iso(grid.start)} .. "
            f"{iso(grid.end)} every {grid.step}s from {source.url}"
        )
        coverage = check_coverage(source, rules.rules.values(), grid.start, grid.end, args.partial_windows)
        concurrency = max(1, os.cpu_count() or 1)
        replayed = replay(
            rules.rules_yaml(concurrency), source, grid.start, grid.end,
            len(rules.rules) + len(rules.signals), progress, concurrency, workdir=workdir,
        )  # fmt: skip
        analysed = time.monotonic()
        result = analysis.analyse(
            base_label, base_rules, replayed.alerts, replayed.signals, coverage.no_data, grid, config,
            args.max_per_month, progress, suggest=not args.no_suggest,
        )  # fmt: skip
        compared = differences = None
        if other and other_rules:
            compared = analysis.analyse(
                other[1], other_rules, replayed.alerts, replayed.signals, coverage.no_data, grid, config,
                args.max_per_month, progress, suggest=False,
            )  # fmt: skip
            differences = analysis.compare(result, compared)
    seconds = {
        **replayed.seconds,
        "analysis": time.monotonic() - analysed,
        "total": time.monotonic() - started,
    }
    run_info = report.Run(
        datasource=source.url,
        alertmanager_config=str(args.alertmanager_config),
        max_per_month=args.max_per_month,
        seconds=seconds,
        peak_rss={**replayed.peak_rss, "redline": peak_rss_self()},
        samples=replayed.samples,
    )
    document = report.document(result, grid, run_info, differences, compared)
    if args.json is not None:
        text = report.dumps(document)
        if str(args.json) == "-":
            sys.stdout.write(text)
        else:
            args.json.write_text(text)
    if args.html is not None:
        args.html.write_text(report.html(document, result.alerts, grid))
    if str(args.json) != "-":
        sys.stdout.write(report.table(document))
    progress(f"done in {seconds['total']:.1f}s")
    return 0


def peak_rss_self() -> int:
    """This process' peak resident memory in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


if __name__ == "__main__":
    sys.exit(main())
