"""Every code block of docs/instrumenting/*.md names the file it is written to, so the client tests
(tests/clients) run each of them; a block without `file=` would be copied by readers but never run."""

from __future__ import annotations

from redline.paths import ROOT
from redline.testing.snippets import snippets

GUIDES = sorted((ROOT / "docs" / "instrumenting").glob("*.md"))
# guide -> the files its test writes out and runs
RUN_BY_TESTS = {
    "node.md": {"metrics.js", "server.js", "gamebook-metrics.js"},
    "browser.md": {"fps.js", "main.js"},
    "python.md": {"monitor.py"},
    "pipeline.md": {"schema.sql", "queries.sql", "run-exporter.sh"},
}


def test_every_block_names_a_file_that_a_client_test_runs() -> None:
    assert {g.name for g in GUIDES} == {*RUN_BY_TESTS, "README.md"}
    for guide in GUIDES:
        blocks = snippets(guide)
        unnamed = [b.text.splitlines()[0] for b in blocks if b.file is None]
        assert unnamed == [], f"{guide.name}: blocks without file=: {unnamed}"
        assert {b.file for b in blocks} == RUN_BY_TESTS.get(guide.name, set()), guide.name
