"""`redline targets`: configured targets Prometheus has not discovered yet are shown and counted as down."""

from __future__ import annotations

from pathlib import Path

from redline.stack.targets import Target, configured_targets, not_yet_discovered


def test_a_target_written_but_not_yet_discovered_is_a_pending_row(tmp_path: Path) -> None:
    (tmp_path / "node.yml").write_text(
        "# Written by redline\n- labels: {system: host}\n  targets: ['10.0.0.7:9100', '10.0.0.8:9100']\n"
    )
    (tmp_path / "probes.yml").write_text(
        "- labels: {system: tmux, env: prod}\n  targets: ['http://t:1/health']\n"
    )
    (tmp_path / ".node-x.tmp").write_text("not: [yaml")  # a file being replaced is not read
    configured = configured_targets(tmp_path)
    assert sorted(configured) == [
        ("10.0.0.7:9100", "host", ""),
        ("10.0.0.8:9100", "host", ""),
        ("http://t:1/health", "tmux", "prod"),
    ]
    active = [Target("node", "10.0.0.7:9100", "host", "", True, "", "10.0.0.7:9100")]
    pending = not_yet_discovered(configured, active, "host")
    assert [(t.address, t.up, t.error) for t in pending] == [
        ("10.0.0.8:9100", False, "not yet discovered by Prometheus")
    ]
    assert [t.address for t in not_yet_discovered(configured, active, None)] == [
        "10.0.0.8:9100",
        "http://t:1/health",
    ]
