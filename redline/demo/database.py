"""Faults of the simulated job pipeline that act on its real PostgreSQL database (needs --pipeline-dsn).

- job-table-locked: one session holds ACCESS EXCLUSIVE on the job table in an open transaction, so every
  reader (the job exporter's read-only query, the demo's own workers) waits; the job exporter's query
  runs into its statement timeout and it reports `redline_jobs_up 0`.
- db-connections: idle sessions are opened and held until the connections in use (the sum of
  pg_stat_database.numbackends, what postgres_exporter reports) are past the alert ratio of
  max_connections; a thread tops them up if others disappear.
- db-down: from a maintenance database (postgres, else template1) `ALTER DATABASE ... ALLOW_CONNECTIONS
  false`, then every other session of the pipeline database is terminated: postgres_exporter reports
  pg_up 0, the job exporter redline_jobs_up 0. This also ends the sessions of the two faults above; those
  still on come back when db-down is cleared (the lock is taken again, the filler closes the sessions the
  server ended and opens new ones). If ending the sessions fails, the ALTER is undone (FaultError 503).

Clearing undoes each one completely (transaction rolled back, sessions closed, connections allowed
again). Every session these faults open has application_name 'redline-demo-fault'. A role without the
privileges a fault needs gets a FaultError saying which privilege is missing; nothing stays changed.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import math
import os
import threading
import time

import psycopg
from psycopg import sql

from redline.demo.system import FaultError
from redline.exporters.jobs.dsn import redact
from redline.telemetry.contract import ALERT_VALUES

log = logging.getLogger("redline.demo.pipeline")

FAULT_APPLICATION = "redline-demo-fault"
# PipelinePostgresConnectionsHigh fires above this share of max_connections (thresholds/pipeline.yml).
CONNECTIONS_ALERT_RATIO = ALERT_VALUES["PipelinePostgresConnectionsHigh"]["warning"]
# Aim this share of max_connections above it, so that a worker reconnecting does not dip below.
CONNECTIONS_MARGIN = 0.02
# Connections left free, so that the demo's workers and the exporters can still reconnect.
CONNECTIONS_HEADROOM = 2
MAINTENANCE_DATABASES = ("postgres", "template1")
LOCK_TIMEOUT = "3s"  # how long job-table-locked waits for the sessions using the table right now
CONNECT_TIMEOUT = 3
# Whether a session (the lock's own) holds ACCESS EXCLUSIVE on a table: the lock is gone with its session.
HOLDS_LOCK = """
SELECT EXISTS (SELECT FROM pg_locks
               WHERE pid = pg_backend_pid() AND locktype = 'relation' AND relation = to_regclass(%s)
                 AND mode = 'AccessExclusiveLock' AND granted)
"""
# The fault's own sessions the server still has (a session it ended stays open on the client side).
FAULT_SESSIONS = (
    "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()"
)
USED_CONNECTIONS = "SELECT coalesce(sum(numbackends), 0)::int FROM pg_stat_database"
LIMITS = """
SELECT current_setting('max_connections')::int,
       current_setting('superuser_reserved_connections')::int
         + coalesce(current_setting('reserved_connections', true), '0')::int,
       r.rolsuper, r.rolconnlimit, d.datconnlimit,
       (SELECT count(*) FROM pg_stat_activity WHERE usename = current_user)::int,
       (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database())::int
FROM pg_roles r, pg_database d
WHERE r.rolname = current_user AND d.datname = current_database()
"""


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0].strip() if text else type(err).__name__


class DatabaseFaults:
    """The database faults of one demo, over the pipeline DSN. Thread-safe; every method is idempotent."""

    def __init__(self, dsn: str, table: str = "jobs") -> None:
        self.dsn = dsn
        self.table = table
        self.dbname: str | None = None  # learnt from the first connection (the DSN may leave it out)
        self.role: str | None = None
        self._guard = threading.Lock()
        self._lock_conn: psycopg.Connection | None = None
        self._lock_wanted = False  # job-table-locked is on: db-down ending the lock's session takes it again
        self._filler: _ConnectionFiller | None = None
        self._refused: str | None = None  # the database db-down made refuse connections

    # --- helpers ---------------------------------------------------------------------------------

    def learn(self, conn: psycopg.Connection) -> None:
        """Remember the database and role a connection of the pipeline DSN reached."""
        self.dbname, self.role = conn.info.dbname, conn.info.user

    def _why(self, err: BaseException) -> str:
        return redact(first_line(err), self.dsn)

    def _default(self, key: str) -> str:
        params = psycopg.conninfo.conninfo_to_dict(self.dsn)
        user = params.get("user") or os.environ.get("PGUSER") or getpass.getuser()
        if key == "user":
            return str(user)
        return str(params.get("dbname") or os.environ.get("PGDATABASE") or user)

    def _role(self) -> str:
        return self.role or self._default("user")

    def connect(self, *, dbname: str | None = None, autocommit: bool = True) -> psycopg.Connection:
        conninfo = psycopg.conninfo.make_conninfo(self.dsn, dbname=dbname) if dbname else self.dsn
        conn = psycopg.connect(
            conninfo,
            autocommit=autocommit,
            connect_timeout=CONNECT_TIMEOUT,
            application_name=FAULT_APPLICATION,
        )
        if dbname is None:
            self.learn(conn)
        return conn

    def _connect_or_fail(self, autocommit: bool = True) -> psycopg.Connection:
        try:
            return self.connect(autocommit=autocommit)
        except psycopg.Error as err:
            raise FaultError(f"cannot connect to the pipeline database: {self._why(err)}", 503) from None

    def database(self) -> str:
        """Name of the pipeline database (asked from the server when it still accepts connections)."""
        if self.dbname is None:
            with contextlib.suppress(psycopg.Error), self.connect():
                pass
        return self.dbname or self._default("dbname")

    def _maintenance(self, dbname: str) -> psycopg.Connection:
        """A connection to a database other than the pipeline's, from which to ALTER it."""
        errors = []
        for candidate in MAINTENANCE_DATABASES:
            if candidate == dbname:
                continue
            try:
                return self.connect(dbname=candidate)
            except psycopg.Error as err:
                errors.append(f"{candidate}: {self._why(err)}")
        raise FaultError(
            f"cannot connect to a maintenance database to alter database {dbname!r} ({'; '.join(errors)})",
            503,
        )

    # --- job-table-locked ------------------------------------------------------------------------

    def lock_table(self) -> None:
        with self._guard:
            if not self._lock_held():
                self._take_lock()
            self._lock_wanted = True

    def _lock_held(self) -> bool:
        """Whether the lock's session is alive and holds the lock; drops a session the server ended.

        psycopg notices that the server ended a session (db-down, pg_terminate_backend) only when the
        session is used next: `closed` alone says nothing, so this asks the session itself.
        """
        conn = self._lock_conn
        if conn is None:
            return False
        try:
            row = None if conn.closed else conn.execute(HOLDS_LOCK, (self._table_name(conn),)).fetchone()
        except psycopg.Error:
            row = None
        if row is not None and row[0]:
            return True
        self._lock_conn = None
        conn.close()
        return False

    def _table_name(self, conn: psycopg.Connection) -> str:
        return sql.Identifier(self.table).as_string(conn)

    def _take_lock(self) -> None:
        conn = self._connect_or_fail(autocommit=False)
        table = sql.Identifier(self.table)
        try:
            conn.execute("SET idle_in_transaction_session_timeout = 0")
            conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(LOCK_TIMEOUT)))
            conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(table))
        except psycopg.Error as err:
            conn.close()
            if isinstance(err, psycopg.errors.InsufficientPrivilege):
                raise FaultError(
                    f"role {self._role()!r} may not lock table {self.table!r} ({self._why(err)}): "
                    "LOCK ... IN ACCESS EXCLUSIVE MODE needs UPDATE, DELETE or TRUNCATE on it",
                    403,
                ) from None
            if isinstance(err, psycopg.errors.LockNotAvailable):
                raise FaultError(
                    f"another session kept a conflicting lock on table {self.table!r} for {LOCK_TIMEOUT}",
                    409,
                ) from None
            raise FaultError(f"cannot lock table {self.table!r}: {self._why(err)}", 503) from None
        self._lock_conn = conn
        log.info("job table %s locked (ACCESS EXCLUSIVE) until the fault is cleared", self.table)

    def unlock_table(self) -> None:
        with self._guard:
            conn, self._lock_conn = self._lock_conn, None
            self._lock_wanted = False
            if conn is None:
                return
            try:
                with contextlib.suppress(psycopg.Error):
                    conn.rollback()
            finally:
                conn.close()
            log.info("job table %s unlocked", self.table)

    # --- db-connections --------------------------------------------------------------------------

    def fill_connections(self) -> None:
        with self._guard:
            if self._filler is not None and self._filler.is_alive():
                return
            conn = self._connect_or_fail()
            try:
                target = self._connection_target(conn)
            except BaseException:
                conn.close()
                raise
            self._filler = _ConnectionFiller(self, conn, target)
            self._filler.start()

    def _connection_target(self, conn: psycopg.Connection) -> int:
        """Connections in use the fault keeps: past the alert ratio, within what the role may open."""
        try:
            row = conn.execute(LIMITS).fetchone()
            used_row = conn.execute(USED_CONNECTIONS).fetchone()
        except psycopg.Error as err:
            raise FaultError(f"cannot read max_connections: {self._why(err)}", 503) from None
        assert row is not None and used_row is not None
        max_conn, reserved, superuser, role_limit, db_limit, role_count, db_count = row
        used = int(used_row[0])
        needed = math.floor(max_conn * CONNECTIONS_ALERT_RATIO) + 1
        ceiling = max_conn - (0 if superuser else reserved) - CONNECTIONS_HEADROOM
        target = min(needed + max(1, math.ceil(max_conn * CONNECTIONS_MARGIN)), ceiling)
        role = self._role()
        if target < needed:
            raise FaultError(
                f"max_connections is {max_conn}: passing {CONNECTIONS_ALERT_RATIO:.0%} takes {needed} "
                f"connections, but role {role!r} can have at most {ceiling} while leaving "
                f"{CONNECTIONS_HEADROOM} free" + ("" if superuser else f" ({reserved} are reserved)"),
                409,
            )
        adding = max(0, target - used)
        if not superuser:
            for limit, count, what in (
                (role_limit, role_count, f"role {role!r} (CONNECTION LIMIT)"),
                (db_limit, db_count, f"database {self.dbname!r} (CONNECTION LIMIT)"),
            ):
                if limit >= 0 and count + adding > limit:
                    raise FaultError(
                        f"{what} allows {limit} connections; the fault needs {count + adding} "
                        f"to reach {target} of max_connections {max_conn}",
                        409,
                    )
        return int(target)

    def release_connections(self) -> None:
        with self._guard:
            filler, self._filler = self._filler, None
        if filler is not None:
            filler.stop()

    # --- db-down ---------------------------------------------------------------------------------

    def refuse_connections(self) -> None:
        with self._guard:
            dbname = self.database()
            with self._maintenance(dbname) as admin:
                self._alter(admin, dbname, allow=False)
                self._refused = dbname
                try:
                    refused = self._terminate(admin, dbname)
                except psycopg.Error as err:
                    reason = self._why(err)
                    raise FaultError(
                        f"cannot end the sessions of database {dbname!r} ({reason}); "
                        + self._undo_refuse(admin, dbname),
                        503,
                    ) from None
                if refused:
                    self._alter(admin, dbname, allow=True)
                    self._refused = None
                    users = sorted({user for user, _ in refused})
                    raise FaultError(
                        f"role {self._role()!r} may not end {len(refused)} session(s) of role(s) "
                        f"{', '.join(users)} on database {dbname!r} ({refused[0][1]}): that needs a "
                        "superuser or membership in pg_signal_backend; connections to "
                        f"{dbname!r} are allowed again",
                        403,
                    )
            log.info("database %s refuses connections; its sessions were terminated", dbname)

    def _undo_refuse(self, admin: psycopg.Connection, dbname: str) -> str:
        """Allow connections again after db-down failed half-way (from a new session if `admin` broke)."""
        try:
            if admin.closed or admin.broken:
                with self._maintenance(dbname) as fresh:
                    self._alter(fresh, dbname, allow=True)
            else:
                self._alter(admin, dbname, allow=True)
        except FaultError as err:
            log.error("database %s still refuses connections: %s", dbname, err)
            return f"connections to {dbname!r} are still refused ({err}): clear db-down to retry"
        self._refused = None
        return f"connections to {dbname!r} are allowed again"

    def allow_connections(self) -> None:
        """Allow connections again; also repairs a database a killed demo left refusing them."""
        with self._guard:
            dbname = self._refused or self.database()
            with self._maintenance(dbname) as admin:
                try:
                    row = admin.execute(
                        "SELECT datallowconn FROM pg_database WHERE datname = %s", (dbname,)
                    ).fetchone()
                except psycopg.Error as err:
                    raise FaultError(f"cannot read database {dbname!r}: {self._why(err)}", 503) from None
                if row is not None and not row[0]:
                    self._alter(admin, dbname, allow=True)
                    log.info("database %s accepts connections again", dbname)
            self._refused = None
            # db-down ended the lock's session: while job-table-locked is on, take the lock again.
            if self._lock_wanted and not self._lock_held():
                try:
                    self._take_lock()
                except FaultError as err:
                    log.error(
                        "job-table-locked: cannot lock table %s again after db-down: %s", self.table, err
                    )

    def _alter(self, admin: psycopg.Connection, dbname: str, *, allow: bool) -> None:
        statement = sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS {}").format(
            sql.Identifier(dbname), sql.SQL("true" if allow else "false")
        )
        try:
            admin.execute(statement)
        except psycopg.Error as err:
            what = "allow" if allow else "refuse"
            if isinstance(err, psycopg.errors.InsufficientPrivilege):
                raise FaultError(
                    f"role {self._role()!r} may not {what} connections to database {dbname!r} "
                    f"({self._why(err)}): ALTER DATABASE needs the database's owner or a superuser",
                    403,
                ) from None
            raise FaultError(
                f"cannot {what} connections to database {dbname!r}: {self._why(err)}", 503
            ) from None

    def _terminate(self, admin: psycopg.Connection, dbname: str) -> list[tuple[str, str]]:
        """End every other session on the database; the (role, reason) of those it may not end."""
        refused: dict[int, tuple[str, str]] = {}
        for attempt in range(2):  # again, for a session that was authenticating during the ALTER
            if attempt:
                time.sleep(0.2)
            rows = admin.execute(
                "SELECT pid, usename FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            ).fetchall()
            for pid, user in rows:
                if pid in refused:
                    continue
                try:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                except psycopg.errors.InsufficientPrivilege as err:
                    refused[pid] = (str(user), self._why(err))
        return list(refused.values())

    # --- all -------------------------------------------------------------------------------------

    def clear_all(self) -> None:
        """Undo whatever is on (at demo shutdown); errors are logged."""
        self.unlock_table()
        self.release_connections()
        if self._refused is not None:
            try:
                self.allow_connections()
            except FaultError as err:
                log.error("database %s still refuses connections: %s", self._refused, err)


class _ConnectionFiller(threading.Thread):
    """Holds idle sessions so that the connections in use stay at `target`; closes them on stop()."""

    def __init__(self, faults: DatabaseFaults, monitor: psycopg.Connection, target: int) -> None:
        super().__init__(name="pipeline-db-connections", daemon=True)
        self.faults = faults
        self.target = target
        self._monitor: psycopg.Connection | None = monitor
        self._held: list[psycopg.Connection] = []
        self._stop_event = threading.Event()
        self._reached = False
        self._last_error = 0.0

    def run(self) -> None:
        try:
            while not self._stop_event.is_set():
                self._top_up()
                self._stop_event.wait(0.5)
        finally:
            for conn in [self._monitor, *self._held]:
                if conn is not None:
                    conn.close()
            self._held = []
            log.info("db-connections: idle sessions closed")

    def _top_up(self) -> None:
        try:
            if self._monitor is None or self._monitor.closed:
                self._monitor = self.faults.connect()
            self._drop_ended(self._monitor)
            row = self._monitor.execute(USED_CONNECTIONS).fetchone()
            used = int(row[0]) if row else 0
            for _ in range(self.target - used):
                if self._stop_event.is_set():
                    return
                self._held.append(self.faults.connect())
            if not self._reached and used >= self.target:
                self._reached = True
                log.info("db-connections: %d connections in use, holding %d", used, len(self._held) + 1)
        except psycopg.Error as err:
            if self._monitor is not None:
                self._monitor.close()
            self._monitor = None
            now = time.monotonic()
            if now - self._last_error > 30:
                self._last_error = now
                log.warning("db-connections: %s (retrying)", self.faults._why(err))

    def _drop_ended(self, monitor: psycopg.Connection) -> None:
        """Close the held sessions the server ended (db-down, pg_terminate_backend): they count for
        nothing there but keep a socket each here. A pid seen twice belongs to the newest session."""
        rows = monitor.execute(FAULT_SESSIONS, (FAULT_APPLICATION,)).fetchall()
        live = {int(pid) for (pid,) in rows}
        seen = {monitor.info.backend_pid}
        kept: list[psycopg.Connection] = []
        for conn in reversed(self._held):
            pid = None if conn.closed else conn.info.backend_pid
            if pid in live and pid not in seen:
                seen.add(pid)
                kept.append(conn)
            else:
                conn.close()
        if len(kept) < len(self._held):
            log.info("db-connections: %d session(s) ended by the server closed", len(self._held) - len(kept))
        self._held = kept[::-1]

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=15)
