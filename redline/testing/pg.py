"""A throwaway PostgreSQL 15 cluster for tests: initdb into a temp dir, `postgres` on a free port.

initdb refuses to run as root, so under uid 0 the cluster runs as `nobody` in a directory owned by it.
Loopback connections use trust authentication: the cluster lives only for the test.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from redline.testing.processes import free_port, wait_until

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class PgCluster:
    """One cluster: `start()`, `stop()`, `dsn`, `execute(sql)`; the data survives stop/start."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.log = root / "postgres.log"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self._as_user: dict[str, Any] = {}
        if os.getuid() == 0:
            nobody = pwd.getpwnam("nobody")
            self._as_user = {"user": nobody.pw_uid, "group": nobody.pw_gid}

    @property
    def dsn(self) -> str:
        """Superuser DSN over TCP on 127.0.0.1."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres connect_timeout=3"

    def init(self) -> None:
        self.sockets.mkdir(parents=True)
        if self._as_user:
            for path in (self.root, self.sockets):
                os.chown(path, self._as_user["user"], self._as_user["group"])
        subprocess.run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-N",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
            timeout=60,
            cwd=self.root,
            **self._as_user,
        )

    def start(self) -> None:
        """Start postgres and wait until it accepts connections."""
        log = open(self.log, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            [
                str(PG_BIN / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.sockets),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            start_new_session=True,
            **self._as_user,
        )
        log.close()
        wait_until(self._accepts, timeout=30, what=f"postgres on port {self.port} ({self.log})")

    def _accepts(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"postgres exited: {self.log.read_text()[-1500:]}")
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True

    def stop(self) -> None:
        """Fast shutdown (SIGINT), waits for the process to exit."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def execute(self, sql: str, params: tuple | None = None) -> list[tuple]:
        """Run one statement in autocommit; returns the rows (empty for commands)."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(sql.encode(), params)
            return cur.fetchall() if cur.description else []


@contextlib.contextmanager
def pg_cluster() -> Iterator[PgCluster]:
    """A started throwaway cluster, stopped and removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="redline-pg-"))
    cluster = PgCluster(root)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
