"""The `redline` command: one entry point that dispatches to each part's own `main(argv)`.

Each subcommand lives in its own module and parses its own arguments, so `redline X --help` shows the
options of X, and starting one part never imports the others.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module with main(argv) -> int, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "setup-tools": ("redline.tools", "fetch the pinned Prometheus, Alertmanager... into .tools/bin"),
    "up": ("redline.stack.runner", "start the native stack (127.0.0.1) and print its status table"),
    "down": ("redline.stack.runner", "stop the native stack"),
    "status": ("redline.stack.runner", "show the native stack's processes and URLs"),
    "restart": ("redline.stack.runner", "stop and start one service of the native stack"),
    "targets": ("redline.stack.targets", "what Prometheus scrapes and probes, and whether each answers"),
    "agent-config": (
        "redline.stack.agents",
        "write the config and command line of each agent (vmagent, Prometheus --agent) the inventory names",
    ),
    "secrets": (
        "redline.stack.runner",
        "create the run folder's credentials without starting anything (docker compose reads them)",
    ),
    "generate": ("redline.generate.cli", "render the catalogue into rules, tests, runbooks, dashboards"),
    "check": ("redline.generate.cli", "fail when generated files differ from what the catalogue renders"),
    "verify-target": (
        "redline.verify_target",
        "scrape a live service and check it against its system's metric contract (exit 1 on a mismatch)",
    ),
    "exporter": ("redline.exporters.cli", "run an exporter: 'host' (host, processes) or 'jobs' (job queue)"),
    "demo": ("redline.demo.cli", "simulate the four monitored systems; 'demo fault' injects faults"),
    "pager-sink": ("redline.receivers.pager_sink", "webhook receiver standing in for the paging service"),
    "ledger": ("redline.receivers.ledger_cli", "pages, tickets, flapping and time to resolve per alert"),
    "console": ("redline.console.cli", "the on-call console: alerts, signals, runbooks, silences, history"),
    "reload": ("redline.stack.reload", "validate configs, then reload the running Prometheus, Alertmanager"),
    "rollback": ("redline.stack.reload", "restore the previous commit's configs and reload"),
    "backtest": (
        "redline.backtest.cli",
        "what each alert would have paged over real history, and what it should be",
    ),
}

# Subcommands that share a module get their own name passed as the first argument.
SHARED_MODULE = {"up", "down", "status", "restart", "secrets", "generate", "check", "reload", "rollback"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="redline",
        description="redline: an observability stack kept as code. Run 'redline COMMAND --help' for details.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not argv or argv[0] in {"-h", "--help"}:
        parser.print_help()
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        parser.error(f"unknown command {name!r}; choose from: {', '.join(COMMANDS)}")
    module = importlib.import_module(COMMANDS[name][0])
    if name in SHARED_MODULE:
        rest = [name, *rest]
    try:
        return int(module.main(rest) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
