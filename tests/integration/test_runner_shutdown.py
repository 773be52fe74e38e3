"""`redline down` leaves no service behind, also when supervisord itself does not stop in time: a real
supervisord whose program ignores SIGTERM (and has a child of its own) for longer than the runner waits."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from redline.stack import runner
from redline.stack.services import Context

# Ignores SIGTERM, starts a child (as any service's helper would; its command line names the script, so
# the fixture can find it), prints the child's pid and waits.
STUBBORN = textwrap.dedent(
    """
    import signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", sys.argv[0]])
    print(child.pid, flush=True)
    time.sleep(600)
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has stopped; its parent just has not reaped it yet


def _wait(predicate: Callable[[], object], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


@pytest.fixture
def stubborn_stack(tmp_path: Path) -> Iterator[Context]:
    ctx = Context(run_dir=tmp_path)
    (tmp_path / "logs").mkdir()
    script = tmp_path / "stubborn.py"
    script.write_text(STUBBORN)
    conf = tmp_path / "supervisord.conf"
    conf.write_text(
        "\n".join(
            [
                "[unix_http_server]",
                f"file={ctx.path('supervisor.sock')}",
                "chmod=0700",
                "[supervisord]",
                f"logfile={ctx.path('logs', 'supervisord.log')}",
                f"pidfile={ctx.path('supervisord.pid')}",
                "[rpcinterface:supervisor]",
                "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
                "[program:stubborn]",
                f"command={sys.executable} {script}",
                "stopwaitsecs=600",  # supervisord waits far longer than the runner does
                "stopasgroup=true",
                "killasgroup=true",
                f"stdout_logfile={ctx.path('logs', 'stubborn.log')}",
                "",
            ]
        )
    )
    subprocess.run([sys.executable, "-m", "supervisor.supervisord", "-c", str(conf)], check=True, timeout=30)
    yield ctx
    # Whatever the test left (it failed half-way): never leak a process of this stack.
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if proc.name.isdigit() and str(tmp_path).encode() in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), 9)


def test_down_kills_every_program_group_when_supervisord_outstays_its_deadline(
    stubborn_stack: Context, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = stubborn_stack
    log = ctx.path("logs", "stubborn.log")
    assert _wait(lambda: log.exists() and log.read_text().strip(), 30), "the program did not start"
    child = int(log.read_text().split()[0])
    program = runner._process_infos(ctx)["stubborn"]["pid"]
    supervisord = runner._supervisord_pid(ctx)
    assert supervisord and _alive(program) and _alive(child)

    monkeypatch.setattr(runner, "STOP_WAIT_S", 1)
    monkeypatch.setattr(runner, "SHUTDOWN_MARGIN_S", 1.0)
    assert runner._shutdown(ctx) is True

    assert _wait(lambda: not _alive(supervisord), 5), "supervisord is still running"
    assert _wait(lambda: not _alive(program) and not _alive(child), 5), "a program outlived redline down"
    assert "supervisord did not stop in time; killed stubborn" in capsys.readouterr().err


def test_down_of_a_stack_that_is_not_running_says_so(tmp_path: Path) -> None:
    assert runner._shutdown(Context(run_dir=tmp_path)) is False
