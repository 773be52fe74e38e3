"""inventory.yml: the schema, one-line errors, and the target files it gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from redline import inventory
from redline.paths import ROOT


def test_the_example_loads_and_gives_targets_per_job() -> None:
    example = inventory.load(ROOT / "inventory.example.yml")
    assert not example.demo
    assert example.links.grafana_url == "https://grafana.example.org"
    assert example.database() == inventory.Database(dsn_file="/etc/redline/pipeline.dsn")
    files = inventory.target_files(example, prober="127.0.0.1:9115")
    assert files["gamebook"] == [
        {
            "targets": ["gamebook-1.example.org:9464", "gamebook-2.example.org:9464"],
            "labels": {"system": "gamebook", "env": "production", "team": "games"},
        }
    ]
    assert [g["labels"]["env"] for g in files["qerrors"]] == ["production", "staging"]
    assert files["pipeline-api"][0]["labels"] == {"system": "pipeline"}
    assert files["node"][0]["targets"][2] == "api-1.example.org:9110"
    assert files["probes"][0] == {
        "targets": ["https://gamebook.example.org/health"],
        "labels": {
            "system": "gamebook",
            "env": "production",
            "team": "games",
            "__blackbox_address__": "127.0.0.1:9115",
        },
    }
    assert "probes" not in inventory.target_files(example, prober=None)


def test_scheme_path_and_job_overrides(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(
        "systems:\n  host:\n    - scrape: ['h:9110']\n      job: host\n      scheme: https\n"
        "      metrics_path: /probe/metrics\n"
    )
    files = inventory.target_files(inventory.load(path), prober=None)
    assert files == {
        "host": [
            {
                "targets": ["h:9110"],
                "labels": {"system": "host", "__scheme__": "https", "__metrics_path__": "/probe/metrics"},
            }
        ]
    }


def test_no_inventory_means_the_demo(tmp_path: Path) -> None:
    assert inventory.load() is inventory.DEMO or (ROOT / "inventory.yml").exists()
    assert inventory.DEMO.demo and inventory.DEMO.systems == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "systems: {shop: []}",
            "systems.shop: Input should be 'gamebook', 'qerrors', 'pipeline', 'tmux' or 'host'",
        ),
        (
            "systems: {tmux: [{scrape: [orchestrator]}]}",
            "systems.tmux.0.scrape.0: String should match pattern",
        ),
        (
            "systems: {tmux: [{scrape: ['o:1'], labels: {job: x}}]}",
            "systems.tmux.0: labels: 'job' is set by redline",
        ),
        ("systems: {tmux: [{scrape: ['o:1'], job: nope}]}", "job: 'nope' is not a scrape job"),
        ("systems: {tmux: [{env: prod}]}", "give at least one of scrape, probes, database"),
        (
            "systems: {tmux: [{scrape: ['o:1'], database: {dsn_file: /x}}]}",
            "only the pipeline has a job table",
        ),
        ("demo: yes please", "demo: Input should be a valid boolean"),
        ("sistems: {}", "sistems: Extra inputs are not permitted"),
    ],
)
def test_bad_input_is_one_line_naming_file_and_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(text + "\n")
    with pytest.raises(inventory.InventoryError) as caught:
        inventory.load(path)
    line = str(caught.value)
    assert "\n" not in line and line.startswith("inventory.yml: ") and message in line, line
