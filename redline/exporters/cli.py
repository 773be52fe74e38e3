"""`redline exporter host|jobs ...`: dispatch to the chosen exporter's own main(argv)."""

from __future__ import annotations

import importlib
import sys

# name -> (module with main(argv) -> int, one-line help); imported lazily so one exporter never loads another
EXPORTERS: dict[str, tuple[str, str]] = {
    "host": ("redline.exporters.host.main", "host metrics (node_exporter names) and named process groups"),
    "jobs": ("redline.exporters.jobs.cli", "job-queue metrics read from the pipeline's PostgreSQL job table"),
}


def _usage() -> str:
    lines = ["usage: redline exporter {" + ",".join(EXPORTERS) + "} [options]", "", "exporters:"]
    lines += [f"  {name:<6} {help_text}" for name, (_module, help_text) in EXPORTERS.items()]
    lines.append("\nRun 'redline exporter NAME --help' for the options of one exporter.")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Run the exporter named by argv[0] with the remaining arguments."""
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in EXPORTERS:
        print(
            f"redline exporter: unknown exporter {name!r}; choose from: {', '.join(EXPORTERS)}",
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(EXPORTERS[name][0])
    return int(module.main(rest) or 0)
