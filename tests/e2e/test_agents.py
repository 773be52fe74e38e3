"""Agents on other hosts, run for real: a vmagent and a Prometheus --agent started from the folders
`redline agent-config` writes, each scraping a stand-in service (redline.testing.standin) that the
inventory names, remote-writing into a running stack (`redline up --inventory --only ...`).

- the stack does not scrape the agents' addresses itself; each series arrives once, with the job,
  instance, system and env labels the stack would have given it;
- run.sh refuses a password file others may read;
- the stack's Prometheus stopped for REDLINE_AGENT_OUTAGE_S (default 60 s) and started again: each
  agent's on-disk buffer replays, and the store holds every sample scraped (the stand-in's request
  counter goes up by one per scrape, so its samples in the store must be 1, 2, ... N without a hole,
  and `up` must have one sample more: the first scrape, before the counter had its /metrics child);
- with `redline up --scale` (the replicas and the store only) the agents write into both replicas, and
  the store keeps one series per target (the replicas' copies deduplicated), with the same labels;
- each agent's own `up` (job redline-agent) arrives with its name and host; the vmagent SIGKILLed, the
  RedlineAgentSilent page for it reaches the pager-sink naming that agent and host (none for the other
  agent, which goes on), and resolves once the vmagent runs again (rules rendered with `for: 5s`, the
  signal's 1m window as shipped, Alertmanager's group timers capped at 5 s).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from redline import credentials, durations, storage, topology
from redline.generate.load import load_catalogue
from redline.stack import agents
from redline.testing import scale_ha
from redline.testing.processes import free_port, running, tool, wait_until
from redline.testing.sandbox import Sandbox, alertmanager_config_with_timers, render_rules

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

OUTAGE_S = float(os.environ.get("REDLINE_AGENT_OUTAGE_S", "60"))
# agent name -> (kind, system, env) of the stand-in it scrapes
AGENTS = {
    "edge-vm": ("vmagent", "gamebook", "production"),
    "edge-prom": ("prometheus-agent", "qerrors", "staging"),
}
BINARY = {"vmagent": "vmagent", "prometheus-agent": "prometheus"}
READY = {"vmagent": "/health", "prometheus-agent": "/-/ready"}
COUNTER = 'standin_requests_total{{path="/metrics", instance="{}"}}'
SILENT = "RedlineAgentSilent"
FOR_OVERRIDE, GROUP_TIMER = "5s", "5s"


def host_of(name: str) -> str:
    """The host the inventory says the agent runs on (a label only: every agent runs on 127.0.0.1)."""
    return f"{name}.example.org"


@dataclass
class Agents:
    """A running stack with its agents: the stand-ins' addresses and each agent's process by name;
    start(name) runs an agent again from its folder (stopped with the rest at the end)."""

    stack: Sandbox
    standins: dict[str, str]
    procs: dict[str, subprocess.Popen]
    start: Callable[[str], None]


def inventory_text(standins: dict[str, str], folder: Path, listen: dict[str, str]) -> str:
    systems = {
        system: [{"env": env, "scrape": [standins[name]]}] for name, (_kind, system, env) in AGENTS.items()
    }
    entries = [
        {
            "name": name,
            "kind": kind,
            "host": host_of(name),
            "scrape": [standins[name]],
            "dir": str(folder / name),
            "listen": listen[name],
        }
        for name, (kind, _system, _env) in AGENTS.items()
    ]
    return yaml.safe_dump({"systems": systems, "agents": entries}, sort_keys=False)


def raw_samples(stack: Sandbox, selector: str, at: float, window: int = 900) -> list[tuple[float, float]]:
    """Every stored sample of the one series matching `selector` up to time `at` (a range selector)."""
    url = f"{stack.url('prometheus')}/api/v1/query?" + urllib.parse.urlencode(
        {"query": f"{selector}[{window}s]", "time": f"{at:.3f}"}
    )
    result = stack.get_json(url)["data"]["result"]
    assert len(result) <= 1, f"{selector}: {len(result)} series, want one"
    return [(float(t), float(v)) for t, v in result[0]["values"]] if result else []


@contextmanager
def agents_into(
    tmp_path: Path, services: list[str], scale: bool = False, up_args: tuple[str, ...] = ()
) -> Iterator[Agents]:
    """Stand-ins, `redline up --inventory` with `services` only (and `up_args`), and each agent running
    from the folder `redline agent-config` wrote (after run.sh refused its password file at mode 0644);
    yields the stack, the stand-ins' addresses and the agents. Everything is stopped at the end."""
    stack = Sandbox()
    folder = tmp_path / "agents"
    listen = {name: f"127.0.0.1:{free_port()}" for name in AGENTS}
    with ExitStack() as stop:
        standins = {}
        for name in AGENTS:
            standins[name] = address = f"127.0.0.1:{free_port()}"
            cmd = [sys.executable, "-m", "redline.testing.standin", f"--listen={address}", f"--name={name}"]
            stop.enter_context(running(cmd, f"http://{address}/health", tmp_path / f"standin-{name}.log"))
        inventory_file = tmp_path / "inventory.yml"
        inventory_file.write_text(inventory_text(standins, folder, listen))
        stop.callback(stack.stop, keep=False)
        mode = ["--scale"] if scale else []
        up = stack.redline(
            "up", f"--only={','.join(services)}", *mode, *up_args, f"--inventory={inventory_file}"
        )
        assert up.returncode == 0, up.stdout + up.stderr

        rendered = stack.redline("agent-config", f"--out={folder}", f"--run-dir={stack.run_dir}")
        assert rendered.returncode == 0, rendered.stderr
        assert sorted(p.name for p in folder.iterdir()) == sorted(AGENTS)
        password = stack.credentials.path(credentials.WEB_PASSWORD_FILE)
        procs: dict[str, subprocess.Popen] = {}

        def start(name: str) -> None:
            kind = AGENTS[name][0]
            ready = f"http://{listen[name]}{READY[kind]}"
            binary = {agents.BINARY_ENV: tool(BINARY[kind])}
            script = [str(folder / name / agents.RUN_SCRIPT)]
            procs[name] = stop.enter_context(running(script, ready, tmp_path / f"{name}.log", env=binary))

        for name, (kind, _system, _env) in AGENTS.items():
            config = folder / name / agents.CONFIG[kind]
            if kind == "prometheus-agent":
                check = subprocess.run(
                    [tool("promtool"), "check", "config", "--agent", "--syntax-only", str(config)],
                    capture_output=True,
                    text=True,
                    timeout=30,
                )
                assert check.returncode == 0, check.stdout + check.stderr
            copy = folder / name / agents.PASSWORD
            shutil.copyfile(password, copy)
            copy.chmod(0o644)
            env = {**os.environ, agents.BINARY_ENV: tool(BINARY[kind])}
            script = [str(folder / name / agents.RUN_SCRIPT)]
            refused = subprocess.run(script, capture_output=True, text=True, env=env, timeout=10)
            assert refused.returncode == 1 and "mode 644, want 600" in refused.stderr, refused.stderr
            copy.chmod(0o600)
            start(name)
        yield Agents(stack, standins, procs, start)


def expected_labels(name: str, address: str) -> dict[str, str]:
    """The labels the stack would give the stand-in's request counter (job, instance, system, env)."""
    _kind, system, env = AGENTS[name]
    return {
        "__name__": "standin_requests_total",
        "path": "/metrics",
        "job": topology.job_serving(system).name,
        "instance": address,
        "system": system,
        "env": env,
    }


def test_agents_scrape_remotely_buffer_through_an_outage_and_lose_nothing(tmp_path: Path) -> None:
    with agents_into(tmp_path, ["prometheus"]) as running_agents:
        stack, standins = running_agents.stack, running_agents.standins
        # every series of each agent's target, once, with the labels the stack would have given it
        for name in AGENTS:
            selector = COUNTER.format(standins[name])
            rows = wait_until(lambda s=selector: stack.query(s), 60, what=f"{name}'s series in the store")
            assert [row["metric"] for row in rows] == [expected_labels(name, standins[name])]
        active = stack.get_json(f"{stack.url('prometheus')}/api/v1/targets?state=active")["data"][
            "activeTargets"
        ]
        scraped = {target["labels"].get("instance") for target in active}
        assert not scraped & set(standins.values()), "the stack scrapes an agent's target itself"

        # the receiving end takes remote write only with the stack's credentials
        anonymous = urllib.request.Request(f"{stack.url('prometheus')}/api/v1/write", data=b"", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused_write:
            urllib.request.urlopen(anonymous, timeout=5)
        assert refused_write.value.code == 401

        stack.halt("prometheus")
        halted = time.time()
        time.sleep(OUTAGE_S)
        stack.start("prometheus")
        restarted = time.time()
        horizon = restarted + 5  # everything scraped before this must be in the store

        for name in AGENTS:
            counter, up = COUNTER.format(standins[name]), f'up{{instance="{standins[name]}"}}'
            wait_until(
                lambda c=counter: (
                    (samples := raw_samples(stack, c, time.time())) and samples[-1][0] > horizon
                ),
                90,
                what=f"{name}'s buffer replayed past the outage",
            )
            samples = raw_samples(stack, counter, horizon)
            values = [value for _, value in samples]
            # one sample per scrape: the counter's values 1..N with no hole and no repeat
            assert values == [float(n) for n in range(1, len(values) + 1)], (name, values)
            assert len(raw_samples(stack, up, horizon)) == len(values) + 1
            during = [t for t, _ in samples if halted < t < restarted]
            scrape_s = durations.seconds(topology.job_serving(AGENTS[name][1]).interval or "")
            assert len(during) >= (OUTAGE_S - 2) / scrape_s, (name, len(during))
            print(f"{name}: {len(values)} samples stored, {len(during)} scraped while the stack was down")


def test_with_scale_agents_write_into_both_replicas_and_the_store_keeps_one_series(tmp_path: Path) -> None:
    replicas = list(storage.REPLICAS)
    with agents_into(tmp_path, [*replicas, storage.LONG_TERM], scale=True) as running_agents:
        stack, standins = running_agents.stack, running_agents.standins
        for name, address in standins.items():
            selector = COUNTER.format(address)
            for replica in replicas:  # each replica has the series, without a replica label of its own
                url = f"{stack.url(replica)}/api/v1/query?" + urllib.parse.urlencode({"query": selector})
                rows = wait_until(
                    lambda u=url: stack.get_json(u)["data"]["result"],
                    60,
                    what=f"{name}'s series in {replica}",
                )
                assert [row["metric"] for row in rows] == [expected_labels(name, address)], replica
            # both replicas write it on; the store holds it once, with the stack's external label only
            stored = wait_until(
                lambda s=selector: scale_ha.store_series(stack, s), 60, what=f"{name}'s series in the store"
            )
            assert stored == [{**expected_labels(name, address), "stack": "redline"}]


def test_a_silent_agent_pages_with_its_name_and_host_and_resolves_when_it_is_back(tmp_path: Path) -> None:
    rules = render_rules(FOR_OVERRIDE, tmp_path / "rendered")
    am = alertmanager_config_with_timers(tmp_path / "alertmanager.yml", GROUP_TIMER, GROUP_TIMER)
    services = ["prometheus", "alertmanager", "pager-sink"]
    up_args = (f"--rules-dir={rules}", f"--alertmanager-config={am}")
    with agents_into(tmp_path, services, up_args=up_args) as running_agents:
        stack = running_agents.stack
        # each agent's own up arrives, named: 1, so the vmagent's self-scrape passed its basic auth
        for name in AGENTS:
            selector = f'up{{job="{agents.SELF_JOB}", agent="{name}"}}'
            rows = wait_until(lambda s=selector: stack.query(s), 60, what=f"{name}'s own up in the stack")
            assert [(row["metric"]["host"], row["metric"]["system"], row["value"][1]) for row in rows] == [
                (host_of(name), "redline", "1")
            ]
        stack.wait_sending_to_alertmanager()
        since = len(stack.notifications())

        silent, going_on = "edge-vm", "edge-prom"
        assert AGENTS[silent][0] == "vmagent"
        proc = running_agents.procs[silent]
        os.killpg(proc.pid, signal.SIGKILL)  # a crash: run.sh exec'd vmagent in its own session
        proc.wait(timeout=10)
        killed = time.time()
        # the 1m window empties, `for` (5s), an evaluation, Alertmanager's 5 s group_wait
        _record, alert = stack.wait_for_notification("/pager", SILENT, timeout=150, since=since, agent=silent)
        paged_after = time.time() - killed
        assert alert["labels"] == {
            "alertname": SILENT,
            "agent": silent,
            "host": host_of(silent),
            "severity": "critical",
            "system": "redline",
            "stack": "redline",  # Prometheus' external label
        }
        assert alert["annotations"]["description"].startswith(f"Agent {silent} on {host_of(silent)}: 0 ")
        # not before the last sample (at most one scrape interval before the kill) left the window
        (entry,) = [t for t in load_catalogue().thresholds() if t.alert_name == SILENT]
        earliest = entry.rate_window_seconds - durations.seconds(topology.SCRAPE_INTERVAL)
        assert earliest <= paged_after <= 150, paged_after
        print(f"{SILENT} for {silent} paged {paged_after:.0f} s after the kill")

        running_agents.start(silent)
        restarted = time.time()
        stack.wait_for_notification(
            "/pager", SILENT, status="resolved", timeout=90, since=since, agent=silent
        )
        print(f"{SILENT} for {silent} resolved {time.time() - restarted:.0f} s after the restart")
        assert not list(stack.matching_alerts(SILENT, since=since, agent=going_on))
