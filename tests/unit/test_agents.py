"""Agents on other hosts (inventory `agents:`, `redline agent-config`): the schema, the split of scrape
targets between the stack and its agents, and the rendered configs and command lines."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from redline import inventory, storage, topology
from redline.generate.load import load_catalogue
from redline.paths import PROMETHEUS
from redline.stack import agents

SYSTEMS = """\
systems:
  gamebook:
    - env: production
      scrape: [gb-1.example.org:9464, gb-2.example.org:9464]
      probes: [https://gamebook.example.org/health]
      labels: {team: games}
  qerrors:
    - env: staging
      scrape: [api-1.example.org:9100]
      metrics_path: /custom
  host:
    - scrape: [gb-1.example.org:9100, api-1.example.org:9110]
"""
AGENTS = """\
agents:
  - name: gb-1
    kind: vmagent
    host: gb-1.example.org
    scrape: [gb-1.example.org:9464, gb-1.example.org:9100]
  - name: api-1
    kind: prometheus-agent
    host: api-1.example.org
    scrape: [api-1.example.org:9100]
    dir: /srv/agent
    listen: 127.0.0.1:9095
"""


def load(tmp_path: Path, text: str) -> inventory.Inventory:
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    return inventory.load(path)


@pytest.fixture
def inv(tmp_path: Path) -> inventory.Inventory:
    return load(tmp_path, SYSTEMS + AGENTS)


def test_the_stack_stops_scraping_what_agents_scrape_and_they_get_the_same_labels(
    tmp_path: Path, inv: inventory.Inventory
) -> None:
    alone = inventory.target_files(load(tmp_path, SYSTEMS), "blackbox:9115")
    central = inventory.target_files(inv, "blackbox:9115")
    assert central["gamebook"] == [
        {
            "targets": ["gb-2.example.org:9464"],
            "labels": {"system": "gamebook", "env": "production", "team": "games"},
        }
    ]
    assert "qerrors" not in central
    assert central["node"] == [{"targets": ["api-1.example.org:9110"], "labels": {"system": "host"}}]
    assert central["probes"] == alone["probes"]  # probes stay with the stack's blackbox_exporter
    # every address is scraped exactly once, by the stack or one agent, in the same job with the same labels
    split = [(job.target_file, group) for job, group in inventory.scrape_groups(inv)]
    for agent in inv.agents:
        split += [(job.target_file, group) for job, group in inventory.scrape_groups(inv, agent.name)]
    by_address = {(stem, address): group["labels"] for stem, group in split for address in group["targets"]}
    expected = {
        (stem, address): group["labels"]
        for stem, groups in alone.items()
        if stem != "probes"
        for group in groups
        for address in group["targets"]
    }
    assert by_address == expected
    assert sum(len(group["targets"]) for _, group in split) == len(expected)


def test_an_agent_scrapes_with_the_central_jobs_settings(inv: inventory.Inventory) -> None:
    central = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in central["scrape_configs"]}
    gb1, api1 = inv.agents
    config = yaml.safe_load(agents.render(inv, gb1, scale=False)["scrape.yml"])
    assert config["global"] == {"scrape_interval": topology.SCRAPE_INTERVAL, "scrape_timeout": "4s"}
    assert [job["job_name"] for job in config["scrape_configs"]] == ["gamebook", "node", "redline-agent"]
    gamebook, node, _own = config["scrape_configs"]
    assert {k: v for k, v in gamebook.items() if k != "static_configs"} == {
        k: v for k, v in jobs["gamebook"].items() if k != "file_sd_configs"
    }
    assert gamebook["scrape_interval"] == topology.job_serving("gamebook").interval == "1s"
    assert gamebook["static_configs"] == [
        {
            "targets": ["gb-1.example.org:9464"],
            "labels": {"system": "gamebook", "env": "production", "team": "games"},
        }
    ]
    assert node["static_configs"] == [{"targets": ["gb-1.example.org:9100"], "labels": {"system": "host"}}]
    assert "remote_write" not in config  # vmagent takes it on its command line
    api = yaml.safe_load(agents.render(inv, api1, scale=False)["prometheus-agent.yml"])
    qerrors, _own = api["scrape_configs"]
    assert qerrors["static_configs"] == [
        {
            "targets": ["api-1.example.org:9100"],
            "labels": {"system": "qerrors", "env": "staging", "__metrics_path__": "/custom"},
        }
    ]


def test_an_agent_scrapes_itself_with_its_name_and_host(inv: inventory.Inventory) -> None:
    """Its own `up` is what tells the stack it delivers (RedlineAgentSilent); the labels name it."""
    gb1, api1 = inv.agents
    for agent, config_file, listen in (
        (gb1, "scrape.yml", inventory.AGENT_LISTEN),
        (api1, "prometheus-agent.yml", "127.0.0.1:9095"),
    ):
        config = yaml.safe_load(agents.render(inv, agent, scale=False)[config_file])
        own = config["scrape_configs"][-1]
        assert own == {
            "job_name": "redline-agent",
            "basic_auth": {"username": "redline", "password_file": f"{agent.dir}/web-password"},
            "static_configs": [
                {
                    "targets": [listen],
                    "labels": {"system": "redline", "agent": agent.name, "host": agent.host},
                }
            ],
        }


@pytest.mark.parametrize("scale", [False, True])
def test_remote_write_goes_to_every_prometheus_that_evaluates_rules_with_the_stacks_auth(
    inv: inventory.Inventory, scale: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDLINE_PORT_PROMETHEUS_2", "19190")
    names = ["prometheus", "prometheus-2"] if scale else ["prometheus"]
    urls = [f"http://127.0.0.1:{topology.port(name)}/api/v1/write" for name in names]
    assert urls[-1].endswith(":19190/api/v1/write") == scale
    _, api1 = inv.agents
    config = yaml.safe_load(agents.render(inv, api1, scale)["prometheus-agent.yml"])
    assert [(rw["name"], rw["url"]) for rw in config["remote_write"]] == list(zip(names, urls, strict=True))
    for rw in config["remote_write"]:
        assert rw["basic_auth"] == {"username": "redline", "password_file": "/srv/agent/web-password"}
        assert rw["queue_config"] == storage.REMOTE_WRITE_QUEUE
    gb1, _ = inv.agents
    args = agents.command(gb1, urls)
    assert [a.removeprefix("-remoteWrite.url=") for a in args if a.startswith("-remoteWrite.url=")] == urls
    per_url = [
        "-remoteWrite.basicAuth.username=redline",
        "-remoteWrite.basicAuth.passwordFile=/var/lib/redline-agent/web-password",
        f"-remoteWrite.maxDiskUsagePerURL={storage.AGENT_BUFFER_SIZE}",
        "-remoteWrite.queues=1",
    ]
    for flag in per_url:  # vmagent pairs per-URL flags by position: each once per URL
        assert args.count(flag) == len(urls), flag
    assert "-remoteWrite.tmpDataPath=/var/lib/redline-agent/buffer" in args


def test_the_inventory_names_where_agent_hosts_reach_the_stack(tmp_path: Path) -> None:
    inv = load(tmp_path, SYSTEMS + AGENTS + "remote_write: {prometheus-2: https://prom-b.example.org}\n")
    assert (
        agents.remote_write_urls(inv, scale=True)["prometheus-2"] == "https://prom-b.example.org/api/v1/write"
    )
    assert agents.remote_write_urls(inv, scale=False) == {
        "prometheus": f"http://127.0.0.1:{topology.port('prometheus')}/api/v1/write"
    }


def test_unknown_agent_names_are_refused(inv: inventory.Inventory, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no agent 'gb-9' in the inventory"):
        agents.write(inv, ["gb-1", "gb-9"], tmp_path / "out", scale=False)
    assert not (tmp_path / "out").exists()  # nothing written, not even the known one


@pytest.mark.parametrize(
    ("agents_text", "message"),
    [
        (
            "agents: [{name: a, kind: telegraf, host: h, scrape: ['gb-1.example.org:9464']}]",
            "agents.0.kind: Input should be 'vmagent' or 'prometheus-agent'",
        ),
        (
            "agents: [{name: a, kind: vmagent, host: h, scrape: ['elsewhere:1']}]",
            "agents.0.scrape.0: 'elsewhere:1' is not a scrape address of any system",
        ),
        (
            "agents: [{name: a, kind: vmagent, host: h, scrape: ['gb-1.example.org:9464']},"
            " {name: b, kind: vmagent, host: h, scrape: ['gb-2.example.org:9464', 'gb-1.example.org:9464']}]",
            "agents.1.scrape.1: 'gb-1.example.org:9464' is scraped by agent 'a' already",
        ),
        (
            "agents: [{name: a, kind: vmagent, host: h, scrape: ['gb-1.example.org:9464']},"
            " {name: a, kind: vmagent, host: h, scrape: ['gb-2.example.org:9464']}]",
            "agents.1.name: 'a' is the name of an earlier agent",
        ),
        (
            "agents: [{name: a, kind: vmagent, host: h, scrape: []}]",
            "agents.0.scrape: List should have at least 1",
        ),
        ("agents: [{name: a, kind: vmagent, host: h}]", "agents.0.scrape: Field required"),
        (
            "agents: [{name: a, kind: vmagent, host: h, scrape: ['gb-1.example.org:9464'], dir: rel}]",
            "agents.0.dir: String should match pattern",
        ),
        (
            "remote_write: {prometheus-3: 'http://x'}",
            "remote_write.prometheus-3: Input should be 'prometheus'",
        ),
        (
            "remote_write: {prometheus: 'http://x/api/v1/write'}",
            "remote_write.prometheus: String should match",
        ),
    ],
)
def test_bad_agents_are_one_line_naming_file_entry_and_field(
    tmp_path: Path, agents_text: str, message: str
) -> None:
    with pytest.raises(inventory.InventoryError) as caught:
        load(tmp_path, SYSTEMS + agents_text + "\n")
    line = str(caught.value)
    assert "\n" not in line and line.startswith("inventory.yml: ") and message in line, line


def test_the_example_inventory_names_an_agent() -> None:
    example = inventory.load(inventory.ROOT / "inventory.example.yml")
    assert [agent.kind for agent in example.agents] == ["vmagent"]
    (agent,) = example.agents
    assert all(address not in str(inventory.target_files(example, None)) for address in agent.scrape)


def test_agent_config_follows_how_the_stack_was_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory_file = tmp_path / "inventory.yml"
    inventory_file.write_text(SYSTEMS + AGENTS)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "stack.yml").write_text(yaml.safe_dump({"scale": True, "inventory_file": str(inventory_file)}))
    assert agents.main(["api-1", f"--run-dir={run_dir}"]) == 0
    written = yaml.safe_load((run_dir / "agents" / "api-1" / "prometheus-agent.yml").read_text())
    assert [rw["name"] for rw in written["remote_write"]] == list(storage.REPLICAS)  # --scale, from stack.yml
    assert not (run_dir / "agents" / "gb-1").exists()
    assert agents.main(["api-1", "--no-scale", f"--run-dir={run_dir}", f"--out={tmp_path / 'out'}"]) == 0
    written = yaml.safe_load((tmp_path / "out" / "api-1" / "prometheus-agent.yml").read_text())
    assert [rw["name"] for rw in written["remote_write"]] == ["prometheus"]
    assert "api-1: " in capsys.readouterr().out
    bad = tmp_path / "bad.yml"
    bad.write_text(SYSTEMS + "agents: [{name: a, kind: vmagent, host: h, scrape: ['nowhere:1']}]\n")
    assert agents.main([f"--inventory={bad}", f"--run-dir={run_dir}"]) == 2
    err = capsys.readouterr().err.strip()
    where = "redline agent-config: bad.yml: agents.0.scrape.0: "
    assert err == where + "'nowhere:1' is not a scrape address of any system"


def test_the_silence_alert_reads_what_the_agents_send_about_themselves() -> None:
    """RedlineAgentSilent selects the job and keeps the labels agent-config gives the self-scrape."""
    (entry,) = [t for t in load_catalogue().thresholds() if t.alert_name == "RedlineAgentSilent"]
    selector = f'up{{job="{agents.SELF_JOB}"}}'
    assert entry.signal.count(selector) == 2, entry.signal
    assert entry.system == agents.SELF_SYSTEM
    assert entry.fixture is not None and entry.fixture.kind == "silence"
    assert {"agent", "host", "system"} <= set(entry.fixture.keeps)
    assert all(f'job="{agents.SELF_JOB}"' in item.series for item in entry.fixture.series)
