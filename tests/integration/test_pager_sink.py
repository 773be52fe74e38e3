"""`redline pager-sink` as a real process: records webhook POSTs as fsync'ed JSON lines (mode 0600), serves
them back, and answers 401 to every request without its token but the health check."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from redline.testing.processes import free_port, http_get, running

SINK = [sys.executable, "-m", "redline.cli", "pager-sink"]
TOKEN = secrets.token_urlsafe(16)
BEARER = {"Authorization": f"Bearer {TOKEN}"}

ALERTMANAGER_PAYLOAD = {
    "version": "4",
    "receiver": "pager",
    "status": "firing",
    "groupKey": '{}/{severity="critical"}:{alertname="GamebookDown"}',
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "GamebookDown", "severity": "critical", "system": "gamebook", "env": "a"},
            "annotations": {"summary": "GameBook /health fails"},
        },
        {
            "status": "resolved",
            "labels": {"alertname": "GamebookDown", "severity": "critical", "system": "gamebook", "env": "b"},
            "annotations": {"summary": "GameBook /health fails"},
        },
    ],
}


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, str]:
    headers = BEARER if headers is None else headers
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def records(url: str) -> list[dict]:
    status, body = http_get(f"{url}/notifications", headers=BEARER)
    assert status == 200
    return [json.loads(line) for line in body.splitlines()]


def token_file(folder: Path) -> Path:
    path = folder / "pager-sink-token"
    path.write_text(TOKEN + "\n")
    return path


def test_records_each_post_with_its_path_and_serves_them(tmp_path: Path) -> None:
    port, out, log = free_port(), tmp_path / "notifications.jsonl", tmp_path / "sink.log"
    url = f"http://127.0.0.1:{port}"
    cmd = [*SINK, f"--listen=127.0.0.1:{port}", f"--out={out}", f"--token-file={token_file(tmp_path)}"]
    with running(cmd, ready_url=f"{url}/-/healthy", log=log):
        assert post(f"{url}/pager", json.dumps(ALERTMANAGER_PAYLOAD).encode()) == (200, "ok")
        assert post(f"{url}/slack-pager?x=1", b'{"text": "hello"}') == (200, "ok")
        assert post(f"{url}/pager", b"not json")[0] == 400
        assert post(f"{url}/pager", b"")[0] == 400
        assert http_get(f"{url}/nothing-here", headers=BEARER)[0] == 404

        got = records(url)
        assert [r["path"] for r in got] == ["/pager", "/slack-pager"]
        assert got[0]["payload"] == ALERTMANAGER_PAYLOAD
        assert got[1]["payload"] == {"text": "hello"}
        assert all(r["received_at"].endswith("Z") and r["received_at"][:4].isdigit() for r in got)
        # The file is the record (what a 200 promised), identical to what GET /notifications serves.
        assert [json.loads(line) for line in out.read_text().splitlines()] == got

    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    console = log.read_text()
    assert "/pager FIRING critical gamebook GamebookDown {env=a} GameBook /health fails" in console
    assert "/pager RESOLVED critical gamebook GamebookDown {env=b} GameBook /health fails" in console
    assert "/slack-pager non-Alertmanager JSON payload" in console


def test_without_the_token_every_request_but_the_health_check_gets_401(tmp_path: Path) -> None:
    port, out = free_port(), tmp_path / "notifications.jsonl"
    out.write_text("")
    out.chmod(0o644)  # a file from before this version: made private on start
    url = f"http://127.0.0.1:{port}"
    cmd = [*SINK, f"--listen=127.0.0.1:{port}", f"--out={out}", f"--token-file={token_file(tmp_path)}"]
    payload = json.dumps(ALERTMANAGER_PAYLOAD).encode()
    wrong = {
        "none": {},
        "wrong bearer": {"Authorization": "Bearer not-the-token"},
        "wrong password": {"Authorization": "Basic " + base64.b64encode(b"alertmanager:nope").decode()},
        "token as user name": {"Authorization": "Basic " + base64.b64encode(f"{TOKEN}:".encode()).decode()},
    }
    with running(cmd, ready_url=f"{url}/-/healthy"):
        for name, headers in wrong.items():
            assert post(f"{url}/pager", payload, headers)[0] == 401, name
            assert http_get(f"{url}/notifications", headers=headers)[0] == 401, name
        assert out.read_bytes() == b""
        # What Alertmanager sends for a webhook URL http://alertmanager:<token>@host:port/pager.
        basic = {"Authorization": "Basic " + base64.b64encode(f"alertmanager:{TOKEN}".encode()).decode()}
        assert post(f"{url}/pager", payload, basic) == (200, "ok")
        assert [r["path"] for r in records(url)] == ["/pager"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_appends_across_restarts_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    port, out = free_port(), tmp_path / "notifications.jsonl"
    url = f"http://127.0.0.1:{port}"
    cmd = [*SINK, f"--listen=127.0.0.1:{port}", f"--out={out}", f"--token-file={token_file(tmp_path)}"]
    for n in (1, 2):
        with running(cmd, ready_url=f"{url}/-/healthy") as proc:
            assert post(f"{url}/ticket", json.dumps({"n": n}).encode())[0] == 200
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
    assert [json.loads(line)["payload"] for line in out.read_text().splitlines()] == [{"n": 1}, {"n": 2}]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--listen=127.0.0.1:9097", "--out=/nonexistent-folder/x.jsonl"], "no folder /nonexistent-folder"),
        (["--listen=localhost", "--out=x.jsonl"], "invalid listen address 'localhost': missing port"),
        (["--listen=127.0.0.1:99999", "--out=x.jsonl"], "port '99999' is not a number 0-65535"),
        (["--listen=127.0.0.1:9097"], "--out"),
        (
            ["--out=x.jsonl", "--token-file=/nonexistent-folder/token"],
            "--token-file /nonexistent-folder/token",
        ),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    env = {**os.environ, "REDLINE_RUN_DIR": str(tmp_path)}  # the default token file: not the checkout's
    result = subprocess.run([*SINK, *args], cwd=tmp_path, capture_output=True, text=True, timeout=20, env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    token = f"--token-file={token_file(tmp_path)}"
    cmd = [*SINK, f"--listen=127.0.0.1:{port}", f"--out={tmp_path / 'a.jsonl'}", token]
    with running(cmd, ready_url=f"{url}/-/healthy"):
        result = subprocess.run(
            [*SINK, f"--listen=127.0.0.1:{port}", f"--out={tmp_path / 'b.jsonl'}", token],
            capture_output=True,
            text=True,
            timeout=20,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
