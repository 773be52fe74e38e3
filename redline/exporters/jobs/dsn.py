"""PostgreSQL connection strings: syntax checks whose messages never show a password."""

from __future__ import annotations

import re

import psycopg

_URI_PASSWORD = re.compile(r"://[^:/@\s]*:([^@\s]*)@")
_KV_PASSWORD = re.compile(r"password\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


class DsnError(ValueError):
    """A connection string libpq cannot parse; the message names where it came from."""


def redact(message: str, dsn: str) -> str:
    """libpq quotes the connection string in its errors: hide any password it contains."""
    secrets = [m.group(1) for m in _URI_PASSWORD.finditer(dsn)] + [
        m.group(1) for m in _KV_PASSWORD.finditer(dsn)
    ]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        message = message.replace(secret, "****")
    return message


def check_dsn(dsn: str, source: str) -> str:
    """The DSN when libpq can parse it (connectivity is not tried), else DsnError naming `source`."""
    try:
        psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else "unparsable"
        raise DsnError(f"{source}: invalid PostgreSQL connection string: {redact(reason, dsn)}") from None
    return dsn
