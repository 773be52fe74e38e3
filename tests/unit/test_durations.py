"""redline.durations: Prometheus' duration grammar, the one parser every layer uses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from redline import durations
from redline.generate.model import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("1s", 1),
        ("5m", 300),
        ("1h30m", 5400),
        ("400d", 400 * 86400),
        ("1y", 365 * 86400),
        ("2w1d", 15 * 86400),
        ("1m500ms", 60.5),
    ],
)
def test_seconds(text: str, seconds: float) -> None:
    assert durations.seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "1", "s", "-1s", "1.5s", "5m1h", "1h 30m", "1d1d", "5M"])
def test_seconds_refuses_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        durations.seconds(text)


@given(st.integers(min_value=0, max_value=10 * 365 * 86400))
def test_format_duration_round_trips(seconds: int) -> None:
    text = durations.format_duration(seconds)
    assert durations.seconds(text) == seconds
    assert parse_duration(text) == seconds  # what the generator writes, the catalogue's grammar reads


def test_the_catalogue_takes_no_years_or_milliseconds() -> None:
    for text in ("1y", "500ms", "1m500ms"):
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(text)
