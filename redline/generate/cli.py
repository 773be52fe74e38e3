"""`redline generate` and `redline check`: load -> validate -> render, then write or compare.

Both run the whole pipeline in memory first (load the catalogue, check it across entries, parse its PromQL
with promtool, render every artefact); `generate` writes only when all of that succeeded, so bad input
never leaves a half-written tree. `check` then runs promtool's unit tests of the rendered rules (in a
scratch folder: the rendered rules and tests, whatever tree is compared). Exit status: 0 done, 1 generated
files differ (check), 2 bad input or a failing rendered test (check).
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
from pathlib import Path

from redline import checks
from redline.argtypes import positive_int
from redline.generate.files import compare, write_files
from redline.generate.load import CatalogueError, load_catalogue
from redline.generate.model import Catalogue, for_override, with_for_override, with_window_divisor
from redline.generate.render import RenderError, render_all
from redline.generate.validate import check_promql, validate
from redline.paths import ROOT

EXIT_DRIFT = 1
EXIT_INVALID = 2


DESCRIPTIONS = {
    "generate": "Render the thresholds catalogue (thresholds/*.yml) and the topology (redline/topology.py) "
    "into Prometheus rules and promtool tests, Alertmanager route tests, Grafana dashboards, runbooks, the "
    "metric contract, prometheus.yml and the compose target files, thresholds/schema.json and the README's "
    "schema section. Nothing is written unless the whole catalogue is valid.",
    "check": "Render everything as `redline generate` does, in memory, and fail (exit 1) when a generated "
    "file in the tree differs, is missing or is left over; CI runs this so generated files never drift. "
    "Then run promtool's unit tests (promtool test rules) of the rendered rules; a failing test exits 2.",
}


def _parser(command: str) -> argparse.ArgumentParser:
    description = DESCRIPTIONS[command]
    parser = argparse.ArgumentParser(prog=f"redline {command}", description=description)
    parser.add_argument(
        "--catalogue", type=Path, default=None, help="catalogue folder (default: thresholds/)"
    )
    parser.add_argument(
        "--inventory",
        type=Path,
        default=None,
        help="the real services (default: inventory.yml of the checkout; without it, the demo): the "
        "compose target files and the alert links",
    )
    if command == "generate":
        parser.add_argument("--out", type=Path, default=ROOT, help="output root (default: the repository)")
        parser.add_argument(
            "--for-override",
            metavar="DURATION|/N",
            help="replace every alert's 'for' with DURATION, or divide it by N with /N for a time-scaled "
            "run (end-to-end tests; write to another --out)",
        )
        parser.add_argument(
            "--window-divisor",
            metavar="N",
            type=positive_int,
            help="divide the SLO windows and periods, and the windows and offsets of signals that read "
            "history (the qerrors baseline), by N (never below 5s): a time-scaled run whose history is "
            "minutes old (the client suite's SLO tests; write to another --out)",
        )
    else:
        parser.add_argument(
            "--root", type=Path, default=ROOT, help="tree to compare (default: the repository)"
        )
    return parser


def build(catalogue_dir: Path | None, inventory_path: Path | None = None) -> Catalogue:
    """Load and check the catalogue: schema, cross-entry rules, PromQL. Raises CatalogueError."""
    catalogue = load_catalogue(catalogue_dir, inventory_path)
    validate(catalogue)
    check_promql(catalogue)
    return catalogue


def render_files(
    catalogue_dir: Path | None,
    for_override: str | None = None,
    inventory_path: Path | None = None,
    window_divisor: int | None = None,
) -> dict[str, str]:
    """The whole pipeline in memory; raises CatalogueError / RenderError. Nothing is written."""
    catalogue = build(catalogue_dir, inventory_path)
    if for_override is not None:
        catalogue = with_for_override(catalogue, for_override)
    if window_divisor is not None:
        catalogue = with_window_divisor(catalogue, window_divisor)
    return render_all(catalogue)


def _report_drift(problems: list[str], files: dict[str, str], root: Path) -> None:
    print("redline check: generated files are out of date; run `make generate`:", file=sys.stderr)
    for line in problems:
        print(f"  {line}", file=sys.stderr)
        kind, path = line.split(" ", 1)
        if kind == "changed":
            diff = difflib.unified_diff(
                (root / path).read_text().splitlines(),
                files[path].splitlines(),
                f"committed/{path}",
                f"rendered/{path}",
                lineterm="",
                n=0,
            )
            for diff_line in list(diff)[2:12]:
                print(f"      {diff_line}", file=sys.stderr)


def rendered_tests(files: dict[str, str]) -> checks.Result:
    """promtool test rules on the rendered tests, with the rendered rules beside them (scratch folder)."""
    with tempfile.TemporaryDirectory(prefix="redline-check-") as scratch:
        root = Path(scratch)
        wanted = {path: text for path, text in files.items() if path.startswith("prometheus/")}
        write_files(wanted, root)
        return checks.promtool_tests(sorted((root / "prometheus" / "tests").glob("*.yml")))


def main(argv: list[str]) -> int:
    """`redline generate ...` or `redline check ...` (argv[0] names the command)."""
    command = argv[0] if argv and argv[0] in ("generate", "check") else "generate"
    args = _parser(command).parse_args(argv[1:] if argv and argv[0] == command else argv)
    override = getattr(args, "for_override", None)
    if override is not None:
        try:
            for_override(override)  # the one line naming a bad value, before anything is rendered
        except ValueError as err:
            print(f"redline generate: --for-override: {err}", file=sys.stderr)
            return EXIT_INVALID
    try:
        files = render_files(args.catalogue, override, args.inventory, getattr(args, "window_divisor", None))
    except (CatalogueError, RenderError) as err:
        print(f"redline {command}: {err}", file=sys.stderr)
        return EXIT_INVALID
    if command == "generate":
        changed = write_files(files, args.out)
        print(f"redline generate: {len(files)} files rendered, {len(changed)} written under {args.out}")
        for path in changed:
            print(f"  {path}")
        return 0
    problems = compare(files, args.root)
    if problems:
        _report_drift(problems, files, args.root)
        return EXIT_DRIFT
    print(f"redline check: {len(files)} generated files match the catalogue")
    try:
        result = rendered_tests(files)
    except checks.CheckError as err:
        print(f"redline check: {err}", file=sys.stderr)
        return EXIT_INVALID
    if not result.ok:
        print(f"redline check: the rendered {result.summary()}", file=sys.stderr)
        for line in result.details:
            print(f"  {line}", file=sys.stderr)
        return EXIT_INVALID
    print(f"redline check: {result.summary()}")
    return 0
