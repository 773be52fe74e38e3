"""Fuzz: generated catalogue documents either render cleanly or are refused in one line naming file,
entry and field, each within 5 s (redline.testing.catalogue_fuzz). A few dozen here, derandomized so
the unit tier stays fast and repeatable; bench/catalogue_fuzz.py runs ten thousand and more."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from redline.testing.catalogue_fuzz import REAL_BYTES, TIME_BOUND, catalogue_copy, documents, run_pipeline

EXAMPLES = 40  # ~0.1 s each; the unit tier must stay under 30 s on 2 cores


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return catalogue_copy(tmp_path_factory.mktemp("fuzz") / "thresholds")


def test_every_generated_document_renders_or_is_refused_in_one_line(workdir: Path) -> None:
    outcomes: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=timedelta(seconds=TIME_BOUND),
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(documents)
    def check(document: tuple[str, bytes]) -> None:
        outcomes[run_pipeline(workdir, *document).kind] += 1

    check()
    assert sum(outcomes.values()) >= EXAMPLES
    assert outcomes["refused"] > 0, outcomes
    # Which derandomized examples happen to render depends on the catalogue's content; the working copy
    # itself must render through the same pipeline, or every refusal above proves nothing.
    for name, content in REAL_BYTES.items():
        assert run_pipeline(workdir, name, content).kind == "rendered", name
