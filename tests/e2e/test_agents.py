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
  the store keeps one series per target (the replicas' copies deduplicated), with the same labels.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import yaml

from redline import credentials, durations, storage, topology
from redline.stack import agents
from redline.testing import scale_ha
from redline.testing.processes import free_port, running, tool, wait_until
from redline.testing.sandbox import Sandbox

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


def inventory_text(standins: dict[str, str], folder: Path, listen: dict[str, str]) -> str:
    systems = {
        system: [{"env": env, "scrape": [standins[name]]}] for name, (_kind, system, env) in AGENTS.items()
    }
    entries = [
        {
            "name": name,
            "kind": kind,
            "host": "127.0.0.1",
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
def agents_into(tmp_path: Path, services: list[str], scale: bool = False) -> Iterator[tuple[Sandbox, dict]]:
    """Stand-ins, `redline up --inventory` with `services` only, and each agent running from the folder
    `redline agent-config` wrote (after run.sh refused its password file at mode 0644); yields the
    stack and the stand-ins' addresses by agent. Everything is stopped at the end."""
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
        up = stack.redline("up", f"--only={','.join(services)}", *mode, f"--inventory={inventory_file}")
        assert up.returncode == 0, up.stdout + up.stderr

        rendered = stack.redline("agent-config", f"--out={folder}", f"--run-dir={stack.run_dir}")
        assert rendered.returncode == 0, rendered.stderr
        assert sorted(p.name for p in folder.iterdir()) == sorted(AGENTS)
        password = stack.credentials.path(credentials.WEB_PASSWORD_FILE)
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
            ready = f"http://{listen[name]}{READY[kind]}"
            binary = {agents.BINARY_ENV: tool(BINARY[kind])}
            stop.enter_context(running(script, ready, tmp_path / f"{name}.log", env=binary))
        yield stack, standins


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
    with agents_into(tmp_path, ["prometheus"]) as (stack, standins):
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
    with agents_into(tmp_path, [*replicas, storage.LONG_TERM], scale=True) as (stack, standins):
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
