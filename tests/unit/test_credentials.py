"""redline.credentials: the run folder's secrets, the web config's hash, and the token check the pager-sink
and the demo's control use; and the demo control's refusal without its token."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import bcrypt
import pytest
import yaml

from redline import credentials
from redline.demo.control import Control


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a_secret_is_generated_once_private_and_kept(tmp_path: Path) -> None:
    path = credentials.secret_path(tmp_path / "run", credentials.WEB_PASSWORD_FILE)
    with pytest.raises(credentials.CredentialsError) as err:
        credentials.ensure_secret(path)  # the folder is not made unless asked for
    assert str(err.value) == f"{path}: No such file or directory"
    first = credentials.ensure_secret(path, make_folder=True)
    assert len(first) >= 32 and "\n" not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert credentials.ensure_secret(path) == first  # kept across starts
    path.write_text(first + "\n")  # an operator's file with a newline reads the same
    assert credentials.read_secret(path) == first


def test_write_private_makes_an_existing_readable_file_private(tmp_path: Path) -> None:
    path = tmp_path / "conf"
    path.write_text("old")
    path.chmod(0o644)
    credentials.write_private(path, "new")
    assert path.read_text() == "new" and stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize(("content", "problem"), [(None, "no such file"), ("  \n", "empty")])
def test_a_missing_or_empty_secret_is_one_line_naming_the_file(
    tmp_path: Path, content: str | None, problem: str
) -> None:
    path = tmp_path / "demo-token"
    if content is not None:
        path.write_text(content)
    with pytest.raises(credentials.CredentialsError) as err:
        credentials.read_secret(path)
    assert str(err.value) == f"{path}: {problem}"


def test_the_web_config_holds_only_a_bcrypt_hash_of_the_password() -> None:
    text = credentials.web_config("s3cret-pw")
    assert "s3cret-pw" not in text
    hashed = yaml.safe_load(text)["basic_auth_users"][credentials.USER]
    assert hashed.startswith("$2b$10$") and bcrypt.checkpw(b"s3cret-pw", hashed.encode())


def test_headers_for_the_stack_come_from_the_run_folder(tmp_path: Path) -> None:
    creds = credentials.Credentials(tmp_path)
    assert not creds.exists() and creds.web_headers() == {}  # a stack without auth (tests' own processes)
    password = credentials.ensure_secret(creds.path(credentials.WEB_PASSWORD_FILE), make_folder=True)
    assert creds.web_headers() == {"Authorization": basic("redline", password)}
    client = yaml.safe_load(credentials.http_client_config(creds.path(credentials.WEB_PASSWORD_FILE)))
    assert client == {
        "basic_auth": {"username": "redline", "password_file": str(tmp_path / "secrets" / "web-password")}
    }


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer tok-1", True),
        ("bearer  tok-1 ", True),
        (basic("alertmanager", "tok-1"), True),  # a webhook URL http://alertmanager:<token>@host/...
        (basic("anyone", "tok-1"), True),
        (None, False),
        ("", False),
        ("Bearer tok-2", False),
        ("Bearer tok-1x", False),
        (basic("tok-1", ""), False),  # the token as the user name is not the password
        ("Basic !!!not-base64", False),
        ("Token tok-1", False),
    ],
)
def test_token_matches_bearer_or_basic_password(header: str | None, ok: bool) -> None:
    assert credentials.token_matches(header, "tok-1") is ok


def test_demo_control_refuses_changes_without_its_token() -> None:
    control = Control({}, "control-tok")
    request = {"REQUEST_METHOD": "POST", "QUERY_STRING": "system=tmux&fault=cpu"}
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}):
        status, _, body = control.fault({**request, **headers})
        assert status == 401 and "control token" in json.loads(body)["error"]
    # With it, the request gets as far as the demo (no tmux runs in this one: 409).
    status, _, body = control.fault({**request, "HTTP_AUTHORIZATION": "Bearer control-tok"})
    assert status == 409 and "not running" in json.loads(body)["error"]
    # Reading stays open.
    assert control.faults({})[0] == 200
