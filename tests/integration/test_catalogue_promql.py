"""PromQL that promtool cannot parse: one line naming the file, the entry and the field; nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest

from redline.generate import cli
from redline.testing.catalogue import changed_catalogue, entry


def test_unparsable_promql_names_file_entry_and_field(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    def break_signal(data: dict) -> None:
        entry(data, "cycle-time")["signal"] = (
            "sum by (system, env) (rate(redline_cycle_duration_seconds_sum[5m])"
        )

    catalogue = changed_catalogue(tmp_path, "tmux.yml", break_signal)
    out = tmp_path / "out"
    out.mkdir()
    assert cli.main(["generate", "--catalogue", str(catalogue), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "tmux.yml: entry 'cycle-time': field 'signal': PromQL does not parse" in err, err
    assert list(out.rglob("*")) == []
