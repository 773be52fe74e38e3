"""`redline agent-config`: a complete, ready-to-copy configuration for each agent the inventory names.

An agent (vmagent, or Prometheus in --agent mode) runs on another host, scrapes the inventory's
addresses it names there, and remote-writes the samples into the stack's Prometheus (with --scale into
both replicas, which write them on into the long-term store), keeping what it cannot send yet in an
on-disk buffer (redline/storage.py sizes it). Its scrape jobs are the central Prometheus' own jobs of
prometheus/prometheus.yml with the inventory's target groups (inventory.scrape_groups), so a series
carries the same job, instance, system and env labels either way; the stack stops scraping those
addresses itself (inventory.target_files), so no series arrives twice. Each agent also scrapes itself
(job SELF_JOB, labels `agent` and `host`): its own `up`, written on like the rest, is how the stack tells
an agent that delivers from one that went silent (RedlineAgentSilent, thresholds/redline.yml).

Per agent, in OUT/NAME/: its config file (vmagent's -promscrape.config or Prometheus' config) and run.sh,
the command line, which refuses a password file that others may read. docs/scale.md says how to run it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

import yaml

from redline import credentials, inventory, storage, topology
from redline.argtypes import add_run_dir
from redline.inventory import Agent, Inventory
from redline.paths import PROMETHEUS
from redline.stack import vmagent
from redline.stack.rundir import load_context

RUN_SCRIPT = "run.sh"
CONFIG = {"vmagent": "scrape.yml", "prometheus-agent": "prometheus-agent.yml"}
BINARY = {"vmagent": "vmagent", "prometheus-agent": "prometheus"}
BINARY_ENV = "REDLINE_AGENT_BINARY"  # run.sh runs this binary instead of the one on PATH
BUFFER = "buffer"  # the on-disk buffer's folder in the agent's folder
PASSWORD = credentials.WEB_PASSWORD_FILE  # the stack's password, copied into the agent's folder
# The agent's scrape of itself; RedlineAgentSilent (thresholds/redline.yml) selects this job.
SELF_JOB = "redline-agent"
SELF_SYSTEM = "redline"  # an agent is part of the stack: its alert routes as the stack's own


def remote_write_urls(inv: Inventory, scale: bool) -> dict[str, str]:
    """Receiving Prometheus service -> its remote-write URL as the agents' hosts reach it."""
    return {
        name: inv.remote_write.get(name, f"http://127.0.0.1:{topology.port(name)}") + "/api/v1/write"
        for name in storage.receivers(scale)
    }


def scrape_configs(inv: Inventory, agent: Agent, central: dict[str, Any]) -> list[dict[str, Any]]:
    """The agent's scrape jobs: each central job (parsed prometheus.yml) that has targets of the agent,
    with its interval, path and relabelling, the targets as static groups instead of target files."""
    jobs = {config["job_name"]: config for config in central["scrape_configs"]}
    found: dict[str, dict[str, Any]] = {}
    for job, group in inventory.scrape_groups(inv, agent.name):
        if job.name not in found:
            config = {k: v for k, v in jobs[job.name].items() if k != "file_sd_configs"}
            if "basic_auth" in config:
                config["basic_auth"] = _basic_auth(agent)
            found[job.name] = config | {"static_configs": []}
        found[job.name]["static_configs"].append(group)
    return list(found.values())


def self_scrape_config(agent: Agent) -> dict[str, Any]:
    """The agent's scrape of its own /metrics: one `up` sample per scrape, whatever the services do,
    labelled with the agent's inventory name and host so that its silence names them."""
    labels = {"system": SELF_SYSTEM, "agent": agent.name, "host": agent.host}
    return {
        "job_name": SELF_JOB,
        # vmagent guards its own endpoints with the stack's basic auth; Prometheus ignores it
        "basic_auth": _basic_auth(agent),
        "static_configs": [{"targets": [agent.listen], "labels": labels}],
    }


def _basic_auth(agent: Agent) -> dict[str, str]:
    return {"username": credentials.USER, "password_file": f"{agent.dir}/{PASSWORD}"}


def render(inv: Inventory, agent: Agent, scale: bool) -> dict[str, str]:
    """File name -> text of the agent's folder: its config and run.sh."""
    central = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    config: dict[str, Any] = {
        "global": {key: central["global"][key] for key in ("scrape_interval", "scrape_timeout")},
        "scrape_configs": [*scrape_configs(inv, agent, central), self_scrape_config(agent)],
    }
    urls = remote_write_urls(inv, scale)
    if agent.kind == "prometheus-agent":
        config["remote_write"] = [
            {
                "name": name,
                "url": url,
                "basic_auth": _basic_auth(agent),
                "queue_config": dict(storage.REMOTE_WRITE_QUEUE),
            }
            for name, url in urls.items()
        ]
    header = (
        f"# Written by `redline agent-config` from the inventory: {agent.kind} {agent.name} on\n"
        f"# {agent.host}, scraping {', '.join(agent.scrape)} (docs/scale.md).\n"
    )
    return {
        CONFIG[agent.kind]: header + yaml.safe_dump(config, sort_keys=False),
        RUN_SCRIPT: run_script(agent, command(agent, list(urls.values()))),
    }


def command(agent: Agent, urls: list[str]) -> list[str]:
    """The agent's command line after its binary: config, buffer, remote write with the stack's auth."""
    folder = agent.dir
    password = f"{folder}/{PASSWORD}"
    if agent.kind == "prometheus-agent":
        return [
            "--agent",
            f"--config.file={folder}/{CONFIG[agent.kind]}",
            # the WAL is the buffer: kept until sent, at most this long
            f"--storage.agent.path={folder}/{BUFFER}",
            f"--storage.agent.retention.max-time={storage.AGENT_BUFFER_TIME}",
            f"--web.listen-address={agent.listen}",
        ]
    args = [
        f"-promscrape.config={folder}/{CONFIG[agent.kind]}",
        f"-remoteWrite.tmpDataPath={folder}/{BUFFER}",
        f"-httpListenAddr={agent.listen}",
        *vmagent.auth_flags(password),
        *vmagent.remote_write_flags(urls, password),
    ]
    args += [f"-remoteWrite.maxDiskUsagePerURL={storage.AGENT_BUFFER_SIZE}" for _ in urls]
    return args


def run_script(agent: Agent, args: list[str]) -> str:
    """run.sh: check the password file is the owner's only, then exec the agent (`BINARY_ENV` or PATH)."""
    password = shlex.quote(f"{agent.dir}/{PASSWORD}")
    lines = [
        "#!/bin/sh",
        f"# Written by `redline agent-config`: {agent.kind} {agent.name}, to run on {agent.host} from",
        f"# {agent.dir}/ (this folder), with the stack's password in {PASSWORD} there (mode 0600).",
        "set -eu",
        f"mode=$(stat -c %a {password})",
        f'[ "$mode" = 600 ] || {{ echo "{agent.dir}/{PASSWORD}: mode $mode, want 600" >&2; exit 1; }}',
        f"mkdir -p {shlex.quote(f'{agent.dir}/{BUFFER}')}",
        f'exec "${{{BINARY_ENV}:-{BINARY[agent.kind]}}}" \\',
        *[f"  {shlex.quote(arg)} \\" for arg in args[:-1]],
        f"  {shlex.quote(args[-1])}",
    ]
    return "\n".join(lines) + "\n"


def write(inv: Inventory, names: list[str], out: Path, scale: bool) -> list[Path]:
    """Write each named agent's folder (all agents when `names` is empty) under `out`; the folders."""
    unknown = sorted(set(names) - {agent.name for agent in inv.agents})
    if unknown:
        raise ValueError(f"no agent {unknown[0]!r} in the inventory (agents: {_names(inv) or 'none'})")
    folders = []
    for agent in inv.agents:
        if names and agent.name not in names:
            continue
        folder = out / agent.name
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in render(inv, agent, scale).items():
            (folder / name).write_text(text)
        (folder / RUN_SCRIPT).chmod(0o755)
        folders.append(folder)
    return folders


def _names(inv: Inventory) -> str:
    return ", ".join(agent.name for agent in inv.agents)


DESCRIPTION = (
    "Write, for each agent of the inventory (vmagent or Prometheus --agent on another host), a folder to "
    "copy to that host: its scrape config (the central jobs and labels), remote write into the stack's "
    "Prometheus (both replicas with --scale) with the stack's credentials, its on-disk buffer, and run.sh. "
    "The stack's Prometheus does not scrape those addresses itself. See docs/scale.md."
)


def main(argv: list[str]) -> int:
    """`redline agent-config [NAME...] [--inventory FILE] [--out DIR] [--scale | --no-scale]`."""
    parser = argparse.ArgumentParser(prog="redline agent-config", description=DESCRIPTION)
    parser.add_argument("names", nargs="*", metavar="NAME", help="the agents to render (default: all)")
    parser.add_argument(
        "--inventory",
        type=Path,
        help="the inventory file (default: the one the running stack was started with, else inventory.yml)",
    )
    parser.add_argument("--out", type=Path, help="where the agents' folders go (default RUN/agents)")
    parser.add_argument(
        "--scale",
        action=argparse.BooleanOptionalAction,
        help="write into both HA replicas (default: as the running stack was started, `redline up --scale`)",
    )
    add_run_dir(parser, "how the stack was started (--scale, inventory)")
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    ctx, _ = load_context(run_dir)
    try:
        inv = inventory.load(args.inventory or ctx.inventory_file)
        scale = ctx.scale if args.scale is None else args.scale
        folders = write(inv, args.names, args.out or run_dir / "agents", scale)
    except (inventory.InventoryError, ValueError, topology.TopologyError) as err:
        print(f"redline agent-config: {err}", file=sys.stderr)
        return 2
    if not folders:
        print("redline agent-config: the inventory names no agents (docs/scale.md)", file=sys.stderr)
        return 2
    receivers = ", ".join(remote_write_urls(inv, scale).values())
    for folder in folders:
        agent = next(a for a in inv.agents if a.name == folder.name)
        print(f"{agent.name}: {folder}/ -> {agent.host}:{agent.dir}/ ({agent.kind}, writes to {receivers})")
    print(
        f"Copy each folder to its host, and {credentials.secret_path(run_dir, PASSWORD)} into it as "
        f"{PASSWORD} with mode 0600; then run its run.sh there."
    )
    return 0
