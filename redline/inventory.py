"""The inventory: a team's real services, per monitored system and environment (inventory.yml).

Where the topology table (redline/topology.py) says where the stack's own services listen, the inventory
says where the monitored systems run: the addresses Prometheus scrapes, the URLs blackbox_exporter
probes, extra target labels, the pipeline's database (its DSN in a file, never in the inventory), and
where alert links point (Grafana, runbooks). `redline up` writes the native stack's target files from
it, `redline generate` the compose target files and the links; without an inventory the demo stands in.

    demo: false                 # also run the demo's simulated systems (default: false with an inventory)
    links:                      # optional; default: the on-call console of the stack
      grafana_url: https://grafana.example.org
      runbook_base_url: https://git.example.org/redline/blob/main/docs/runbooks
    systems:
      gamebook:
        - env: production
          scrape: [gb-1.example.org:9100, gb-2.example.org:9100]
          probes: [https://gamebook.example.org/health]
          labels: {team: games}
      pipeline:
        - env: production
          scrape: [pipeline-api.example.org:8000]
          database: {dsn_file: /etc/redline/pipeline.dsn}
    agents:                     # optional: scraped on their own hosts, remote-written (docs/scale.md)
      - name: gb-1
        kind: vmagent           # or prometheus-agent
        host: gb-1.example.org
        scrape: [gb-1.example.org:9100]   # addresses of systems above: the stack no longer scrapes them
    remote_write:               # optional: how agent hosts reach each Prometheus (default 127.0.0.1)
      prometheus: https://prometheus-a.example.org

Errors are one line naming the file, the entry and the field, as for the catalogue.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from redline import safe_yaml, storage, topology
from redline.paths import ROOT

DEFAULT_PATH = ROOT / "inventory.yml"
ADDRESS_PATTERN = r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$"
LABEL_PATTERN = r"^[a-zA-Z_][a-zA-Z0-9_]*$"
RESERVED_LABELS = ("job", "instance", "system", "env")  # set by redline, not by an entry's labels
MONITORED = tuple(s for s in topology.SYSTEMS if s != "redline")  # the stack itself is not inventoried
System = Literal[MONITORED]  # type: ignore[valid-type]
Replica = Literal[tuple(storage.REPLICAS)]  # type: ignore[valid-type]
BaseUrl = Annotated[str, Field(pattern=r"^https?://[^/]+$")]
AGENT_DIR = "/var/lib/redline-agent"  # an agent's folder on its host: config, password file, buffer
AGENT_LISTEN = f"127.0.0.1:{topology.endpoint('vmagent').port}"  # an agent's own port on its host


class InventoryError(ValueError):
    """Bad inventory input: one line naming the file and the field."""

    def __init__(self, file: str, field: str, problem: str) -> None:
        super().__init__(f"{file}: {field}: {problem}")
        self.file, self.field, self.problem = file, field, problem


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class Database(_Strict):
    """The pipeline's job table: the DSN is read from a file (mode 0600), never written here."""

    dsn_file: str = Field(
        pattern=r"^/", description="absolute path of a file whose first line is the libpq DSN"
    )
    sql_file: str | None = Field(
        None,
        pattern=r"^/",
        description="the job exporter's queries for a table of another shape (see docs/instrumenting)",
    )


class Environment(_Strict):
    """One environment of a system: what Prometheus scrapes and probes there."""

    env: str | None = Field(None, description="the env label (production, staging...); none when single")
    scrape: list[Annotated[str, Field(pattern=ADDRESS_PATTERN)]] = Field(
        default_factory=list, description="HOST:PORT of each instance's /metrics"
    )
    scheme: Literal["http", "https"] = "http"
    metrics_path: str = Field("/metrics", pattern=r"^/")
    probes: list[Annotated[str, Field(pattern=r"^https?://")]] = Field(
        default_factory=list, description="URLs blackbox_exporter probes (uptime)"
    )
    labels: dict[Annotated[str, Field(pattern=LABEL_PATTERN)], str] = Field(default_factory=dict)
    job: str | None = Field(None, description="scrape job; default the job that serves the system")
    database: Database | None = Field(None, description="pipeline only: the job table's database")

    @model_validator(mode="after")
    def _checks(self) -> Environment:
        reserved = sorted(set(self.labels) & set(RESERVED_LABELS))
        if reserved:
            raise ValueError(f"labels: {reserved[0]!r} is set by redline")
        if self.job is not None and self.job not in {job.name for job in topology.JOBS}:
            raise ValueError(f"job: {self.job!r} is not a scrape job of redline/topology.py")
        if not (self.scrape or self.probes or self.database):
            raise ValueError("give at least one of scrape, probes, database")
        return self


class Links(_Strict):
    """Where alert links point; default: the stack's own console."""

    grafana_url: str | None = Field(None, pattern=r"^https?://")
    runbook_base_url: str | None = Field(None, pattern=r"^https?://")


class Agent(_Strict):
    """A vmagent or Prometheus --agent on another host: scrapes some of the systems' addresses there and
    remote-writes them into the stack with an on-disk buffer (`redline agent-config`, docs/scale.md)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", description="its folder and file names")
    kind: Literal["vmagent", "prometheus-agent"]
    host: str = Field(pattern=r"^[A-Za-z0-9.\-\[\]:]+$", description="the host it runs on")
    scrape: list[Annotated[str, Field(pattern=ADDRESS_PATTERN)]] = Field(
        min_length=1, description="scrape addresses of `systems` it scrapes (the stack then does not)"
    )
    dir: str = Field(AGENT_DIR, pattern=r"^/", description="its folder there: config, password, buffer")
    listen: str = Field(AGENT_LISTEN, pattern=ADDRESS_PATTERN, description="its own HTTP port there")


class Inventory(_Strict):
    """inventory.yml: the monitored systems' real services."""

    demo: bool = Field(False, description="also run the demo's simulated systems")
    links: Links = Links(grafana_url=None, runbook_base_url=None)
    systems: dict[System, list[Environment]] = Field(default_factory=dict)
    agents: list[Agent] = Field(default_factory=list)
    remote_write: dict[Replica, BaseUrl] = Field(  # type: ignore[valid-type]
        default_factory=dict,
        description="base URL at which the agents' hosts reach each Prometheus (a TLS proxy or tunnel in "
        "front of its 127.0.0.1 port); default http://127.0.0.1:PORT, for an agent on the stack's host",
    )

    @model_validator(mode="after")
    def _agents(self) -> Inventory:
        scraped = {a for envs in self.systems.values() for e in envs for a in e.scrape}
        owner: dict[str, str] = {}
        for index, agent in enumerate(self.agents):
            if any(other.name == agent.name for other in self.agents[:index]):
                raise ValueError(f"agents.{index}.name: {agent.name!r} is the name of an earlier agent")
            for position, address in enumerate(agent.scrape):
                where = f"agents.{index}.scrape.{position}"
                if address not in scraped:
                    raise ValueError(f"{where}: {address!r} is not a scrape address of any system")
                if address in owner:
                    raise ValueError(f"{where}: {address!r} is scraped by agent {owner[address]!r} already")
                owner[address] = agent.name
        return self

    @model_validator(mode="after")
    def _one_database(self) -> Inventory:
        databases = [e for envs in self.systems.values() for e in envs if e.database is not None]
        if any(
            system != "pipeline" and any(e.database for e in envs) for system, envs in self.systems.items()
        ):
            raise ValueError("database: only the pipeline has a job table")
        if len(databases) > 1:
            raise ValueError("database: one pipeline database per stack (one job exporter)")
        return self

    def database(self) -> Database | None:
        """The pipeline's job table, when the inventory names one."""
        return next((e.database for envs in self.systems.values() for e in envs if e.database), None)


DEMO = Inventory(demo=True)  # no inventory file: the demo stands in for every system


def load(path: Path | None = None) -> Inventory:
    """The inventory at `path` (default inventory.yml of the checkout; none there: the demo's)."""
    path = path or DEFAULT_PATH
    if not path.exists() and path == DEFAULT_PATH:
        return DEMO
    try:
        data = safe_yaml.load_file(path)
    except safe_yaml.YamlInputError as err:
        raise InventoryError(err.name, "(file)", err.problem) from None
    try:
        return Inventory.model_validate(data if data is not None else {})
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"] if part != "[key]")
        message = first["msg"].removeprefix("Value error, ")
        if not where:  # a check across entries names the entry and field itself: "agents.0.scrape.1: ..."
            found = re.match(r"^([\w.\-]+): (.+)$", message)
            where, message = (found.group(1), found.group(2)) if found else ("(file)", message)
            raise InventoryError(path.name, where, message) from None
        raise InventoryError(path.name, where, f"{message}, got {_short(first.get('input'))}") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def scrape_groups(inventory: Inventory, agent: str | None = None) -> list[tuple[topology.Job, dict]]:
    """(scrape job, target group) of the inventory's scrape addresses: those the stack's Prometheus
    scrapes (agent None) or those the named agent scrapes, each with the labels the other would give."""
    jobs = {job.name: job for job in topology.JOBS}
    owner = {address: a.name for a in inventory.agents for address in a.scrape}
    found = []
    for system, environments in inventory.systems.items():
        for environment in environments:
            targets = [address for address in environment.scrape if owner.get(address) == agent]
            if not targets:
                continue
            job = jobs[environment.job] if environment.job else topology.job_serving(system)
            extra = {"__scheme__": environment.scheme, "__metrics_path__": environment.metrics_path}
            found.append(
                (job, {"targets": targets, "labels": _labels(system, environment) | _non_default(extra)})
            )
    return found


def _labels(system: str, environment: Environment) -> dict[str, str]:
    return {"system": system, **({"env": environment.env} if environment.env else {}), **environment.labels}


def target_files(inventory: Inventory, prober: str | None) -> dict[str, list[dict]]:
    """file_sd groups of the inventory's services, by target file stem (as topology.target_files gives);
    without the addresses its agents scrape, which reach the stack by remote write instead."""
    files: dict[str, list[dict]] = {}
    for job, group in scrape_groups(inventory):
        files.setdefault(job.target_file, []).append(group)
    for system, environments in inventory.systems.items():
        for environment in environments:
            labels = _labels(system, environment)
            if environment.probes and prober is not None:
                probe_labels = labels | {"__blackbox_address__": prober}
                files.setdefault("probes", []).append(
                    {"targets": list(environment.probes), "labels": probe_labels}
                )
    return files


def _non_default(labels: dict[str, str]) -> dict[str, str]:
    defaults = {"__scheme__": "http", "__metrics_path__": "/metrics"}
    return {k: v for k, v in labels.items() if defaults.get(k) != v}


def merge(*parts: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Target files of several sources (stack, demo, inventory) in one set."""
    merged: dict[str, list[dict]] = {}
    for part in parts:
        for stem, groups in part.items():
            merged.setdefault(stem, []).extend(groups)
    return merged
