"""The stack's credentials: generated once per run folder, read by everything that talks to the stack.

`redline up` (and `redline secrets`, for docker compose) creates them in RUN/secrets/ (mode 0700, each
file 0600; RUN is `.run/`, `--run-dir` or REDLINE_RUN_DIR) and keeps them across restarts:

    web-password      user `redline` on Prometheus, Alertmanager, blackbox_exporter and vmagent
    web-config.yml    the bcrypt hash of that password: their --web.config.file (no password in it)
    http-client.yml   promtool's and amtool's --http.config.file: that user and password file
    pager-sink-token  what the pager-sink accepts on POST (Bearer token, or as a basic-auth password)
    demo-token        what the demo's control endpoint accepts on POST and DELETE

Every redline command that calls the stack (reload, rollback, demo fault, the test sandbox) reads them
through this module, so none re-implements where they live.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

USER = "redline"  # the basic-auth user of the stack's HTTP endpoints
SECRETS = "secrets"
WEB_PASSWORD_FILE = "web-password"
WEB_CONFIG = "web-config.yml"
HTTP_CLIENT = "http-client.yml"
PAGER_SINK_TOKEN_FILE = "pager-sink-token"
DEMO_TOKEN_FILE = "demo-token"
BCRYPT_COST = 10  # exporter-toolkit verifies once per connection and caches; 10 keeps start-up quick


class CredentialsError(Exception):
    """A credential that is missing or unreadable; the message names the file."""


def secret_path(run_dir: Path, name: str) -> Path:
    return run_dir / SECRETS / name


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (0600 from the start: never briefly world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)  # an existing file keeps its mode through O_CREAT
        out.write(text)


def ensure_secret(path: Path, make_folder: bool = False) -> str:
    """The secret in `path`, generated (random, URL-safe, no newline) when the file does not exist; with
    `make_folder`, its folder too (mode 0700). CredentialsError naming the file when neither works."""
    if not path.exists():
        try:
            if make_folder:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_private(path, secrets.token_urlsafe(24))
        except OSError as err:
            raise CredentialsError(f"{path}: {err.strerror}") from None
    return read_secret(path)


def read_secret(path: Path) -> str:
    """A secret file's value without surrounding whitespace; CredentialsError naming the file."""
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        raise CredentialsError(f"{path}: no such file") from None
    except OSError as err:
        raise CredentialsError(f"{path}: {err.strerror}") from None
    if not value:
        raise CredentialsError(f"{path}: empty")
    return value


def web_config(password: str) -> str:
    """A web-config file (exporter-toolkit format) that admits USER with `password`, as a bcrypt hash."""
    import bcrypt  # only `redline up`/`redline secrets` hash; the exporter image's commands never do

    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()
    return (
        "# Written by redline from secrets/web-password: basic auth of Prometheus, Alertmanager and\n"
        f"# blackbox_exporter (--web.config.file). Only the bcrypt hash is here.\nbasic_auth_users:\n"
        f"  {USER}: '{hashed}'\n"
    )


def http_client_config(password_file: Path) -> str:
    """An HTTP client config (Prometheus' http_config format) for promtool and amtool --http.config.file."""
    return f"basic_auth:\n  username: {USER}\n  password_file: {password_file}\n"


def basic_auth(user: str, password: str) -> str:
    """The Authorization header value for HTTP basic auth."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def token_matches(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries `token`: `Bearer TOKEN`, or basic auth with TOKEN as the
    password (any user name: a webhook URL with user:TOKEN@ in it sends that). Constant-time compare."""
    if not header:
        return False
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        offered = value.strip()
    elif scheme.lower() == "basic":
        try:
            offered = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return False
    else:
        return False
    return hmac.compare_digest(offered.encode(), token.encode())


@dataclass(frozen=True)
class Credentials:
    """The run folder's credentials, as redline's own commands use them."""

    run_dir: Path

    def path(self, name: str) -> Path:
        return secret_path(self.run_dir, name)

    def exists(self) -> bool:
        """Whether the run folder has a stack password (a stack started by `redline up`, or prepared for
        docker compose by `redline secrets`)."""
        return self.path(WEB_PASSWORD_FILE).is_file()

    @property
    def web_password(self) -> str:
        return read_secret(self.path(WEB_PASSWORD_FILE))

    def web_headers(self) -> dict[str, str]:
        """Headers for Prometheus, Alertmanager, blackbox_exporter and vmagent; {} without a password."""
        return {"Authorization": basic_auth(USER, self.web_password)} if self.exists() else {}
