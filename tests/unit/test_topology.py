"""redline/topology.py: ports and their overrides, the target files it renders, the tests' targets."""

from __future__ import annotations

import pytest

from redline import topology


def test_port_is_the_table_default_or_its_override() -> None:
    assert topology.port("prometheus", {}) == 9090
    assert topology.port("prometheus", {"REDLINE_PORT_PROMETHEUS": "19090"}) == 19090
    assert topology.port("demo-qerrors-staging", {"REDLINE_PORT_DEMO_QERRORS_STAGING": "1"}) == 1
    for bad in ("0", "65536", "x", "-1", ""):
        with pytest.raises(topology.TopologyError, match="REDLINE_PORT_PROMETHEUS"):
            topology.port("prometheus", {"REDLINE_PORT_PROMETHEUS": bad})
    with pytest.raises(topology.TopologyError, match="no endpoint 'nope'"):
        topology.port("nope", {})


def test_every_port_and_every_job_is_named_once() -> None:
    names = [row.name for row in topology.ENDPOINTS]
    assert len(names) == len(set(names))
    ports = [row.port for row in topology.ENDPOINTS]
    assert len(ports) == len(set(ports)), "two endpoints share a native port"
    jobs = {job.name for job in topology.JOBS}
    assert {row.job for row in topology.ENDPOINTS if row.job} <= jobs
    assert all(row.system in topology.SYSTEMS for row in topology.ENDPOINTS if row.system)


def test_target_files_group_endpoints_by_job_with_alerting_and_probes() -> None:
    rows = [topology.endpoint(n) for n in ("alertmanager", "blackbox", "demo-gamebook", "demo-qerrors")]
    files = topology.target_files(rows, topology.compose_address)
    assert files == {
        "alertmanager-metrics": [{"targets": ["alertmanager:9093"], "labels": {"system": "redline"}}],
        "alertmanagers": [{"targets": ["alertmanager:9093"]}],
        "gamebook": [{"targets": ["demo:9201"], "labels": {"system": "gamebook"}}],
        "qerrors": [{"targets": ["demo:9202"], "labels": {"system": "qerrors", "env": "production"}}],
        "probes": [
            {
                "targets": ["http://demo:9201/health"],
                "labels": {"system": "gamebook", "__blackbox_address__": "blackbox:9115"},
            }
        ],
    }
    # without the prober in the set, nothing is probed
    assert "probes" not in topology.target_files(rows[2:], topology.compose_address)


def test_test_targets_are_the_marked_endpoints_of_a_system() -> None:
    assert topology.test_targets("qerrors") == [
        {"job": "qerrors", "instance": "127.0.0.1:9202", "system": "qerrors", "env": "production"},
        {"job": "qerrors", "instance": "127.0.0.1:9203", "system": "qerrors", "env": "staging"},
    ]
    assert topology.test_targets("host") == [{"job": "node", "instance": "127.0.0.1:9100", "system": "host"}]
    assert topology.demo_parts()["qerrors-staging"] == "demo-qerrors-staging"
