"""`redline console`: the on-call console, a web application on 127.0.0.1.

It needs the stack's Prometheus and Alertmanager(s) (their URLs and, when the stack authenticates them,
the credentials), the alert ledger the pager-sink writes, and the catalogue (thresholds/) for each
alert's signal, target and runbook. Exit status: 0 after SIGTERM/SIGINT, 1 when the address cannot be
bound, 2 for bad arguments (one line).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

from redline import topology
from redline.console.app import build_app
from redline.console.runbooks import RUNBOOKS, Runbooks
from redline.console.security import Authenticator, Csrf
from redline.console.upstream import Alertmanagers, Credentials, Prometheus
from redline.console.views import Console
from redline.credentials import CredentialsError, read_secret
from redline.generate.load import CatalogueError, load_catalogue
from redline.paths import ROOT, ledger_url
from redline.stack.rundir import history_url
from redline.telemetry.web import WebConfigError, parse_listen

PROG = "redline console"


def _parser() -> argparse.ArgumentParser:
    local = "http://127.0.0.1:{}".format
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="The on-call console: alerts as Alertmanager groups them with their signal and runbook, "
        "silences, acknowledgements and the alert ledger's history, on 127.0.0.1.",
    )
    default_listen = f"127.0.0.1:{topology.endpoint('console').port}"
    parser.add_argument("--listen", default=default_listen, help=f"HOST:PORT (default {default_listen})")
    parser.add_argument(
        "--prometheus",
        default=local(topology.port("prometheus")),
        help="Prometheus URL (default: the stack's)",
    )
    parser.add_argument(
        "--history",
        metavar="URL",
        help="where the signal charts are read over time, a Prometheus-compatible API (default: the stack's "
        "VictoriaMetrics when it runs with --scale, else --prometheus)",
    )
    parser.add_argument(
        "--alertmanager",
        action="append",
        metavar="URL",
        help="an Alertmanager; repeat for each peer of a cluster (default: the stack's first)",
    )
    parser.add_argument(
        "--ledger", help="alert ledger URL (default: the run folder's, REDLINE_RUN_DIR or .run/)"
    )
    parser.add_argument(
        "--web-config", help="web-config YAML with basic_auth_users (bcrypt): who may use the console"
    )
    parser.add_argument("--upstream-user", help="basic-auth user for Prometheus and Alertmanager")
    parser.add_argument("--upstream-password-file", type=Path, help="file holding that user's password")
    parser.add_argument("--catalogue", type=Path, default=None, help="catalogue folder (default thresholds/)")
    parser.add_argument(
        "--runbooks", type=Path, default=ROOT / RUNBOOKS, help="rendered runbooks (default docs/runbooks)"
    )
    return parser


def main(argv: list[str]) -> int:
    """Serve the console until SIGTERM/SIGINT."""
    args = _parser().parse_args(argv)
    try:
        host, port = parse_listen(args.listen)
        credentials = None
        if args.upstream_user:
            if args.upstream_password_file is None:
                raise ValueError("--upstream-user needs --upstream-password-file")
            credentials = Credentials(args.upstream_user, read_secret(args.upstream_password_file))
        alertmanagers = args.alertmanager or [f"http://127.0.0.1:{topology.port('alertmanager')}"]
        history = args.history or history_url(otherwise=args.prometheus)
        console = Console(
            load_catalogue(args.catalogue),
            Prometheus(args.prometheus.rstrip("/"), credentials),
            Alertmanagers([u.rstrip("/") for u in alertmanagers], credentials),
            args.ledger or ledger_url(),
            history=Prometheus(history.rstrip("/"), credentials),
        )
        app = build_app(console, Runbooks(args.runbooks), Authenticator(args.web_config), Csrf())
    except (
        ValueError,
        OSError,
        CredentialsError,
        CatalogueError,
        WebConfigError,
        topology.TopologyError,
    ) as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1
