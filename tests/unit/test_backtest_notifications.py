"""The Alertmanager model of `redline backtest` on the real alertmanager/alertmanager.yml: routes (against
the generated route tests that amtool verifies), grouping timers, deduplication, repeat, inhibition."""

from __future__ import annotations

import pytest
import yaml

from redline.backtest.notifications import (
    ConfigError,
    Episode,
    labels_of,
    load_config,
    parse_config,
    parse_duration,
    parse_matchers,
    receiver_of,
    simulate,
)
from redline.paths import ALERTMANAGER

CONFIG = load_config(ALERTMANAGER / "alertmanager.yml")
DAY = 86400.0


def episode(start: float, end: float | None, for_: float = 0.0, **labels: str) -> Episode:
    return Episode(labels_of(labels), start - for_, start, end)


def page(name: str = "TmuxMonitorDown", **extra: str) -> dict[str, str]:
    return {"alertname": name, "severity": "critical", "system": "tmux", **extra}


def ticket(name: str = "TmuxMonitorCycleSlow", **extra: str) -> dict[str, str]:
    return {"alertname": name, "severity": "warning", "system": "tmux", **extra}


def sent(episodes: list[Episode], until: float = DAY) -> list[tuple[float, str, str, int, int]]:
    """(time, receiver, reason, firing alerts, resolved alerts) of every notification."""
    return [
        (n.time, n.receiver, n.reason, len(n.firing), len(n.resolved))
        for n in simulate(CONFIG, episodes, until)
    ]


def test_every_generated_route_case_reaches_its_receivers() -> None:
    cases = yaml.safe_load((ALERTMANAGER / "tests" / "routes.yml").read_text())["cases"]
    assert len(cases) > 40
    for case in cases:
        assert receiver_of(CONFIG, case["labels"]) == case["receivers"], case["alert"]


def test_the_real_timers_and_receivers_are_read() -> None:
    pager = CONFIG.route.match(page())[0]
    assert (pager.receiver, pager.group_wait, pager.group_interval, pager.repeat_interval) == (
        "pager", 1.0, 30.0, 4 * 3600.0,
    )  # fmt: skip
    assert pager.group_by == frozenset({"alertname", "system", "env"})
    assert CONFIG.receivers["pager"].send_resolved and CONFIG.receivers["null"].integrations == 0
    assert receiver_of(CONFIG, {"alertname": "X", "severity": "other"}) == ["ticket"]  # the root


def test_matchers_and_durations_read_as_alertmanager_reads_them() -> None:
    (m,) = parse_matchers('alertname=~".+Down"', "t")
    assert m.matches({"alertname": "HostDown"}) and not m.matches({"alertname": "Downstream"})
    a, b = parse_matchers('{system!="host", env = staging}', "t")
    assert (a.op, b.name, b.value) == ("!=", "env", "staging")
    assert a.matches({}), "a missing label matches as the empty string"
    assert [parse_duration(x, "t") for x in ("1h30m", "500ms", "0", "2d")] == [5400, 0.5, 0, 2 * DAY]
    with pytest.raises(ConfigError, match="is not a duration"):
        parse_duration("5 minutes", "alertmanager.yml: route.group_wait")


def test_continue_group_by_all_and_inheritance() -> None:
    config = parse_config(
        {
            "route": {
                "receiver": "a",
                "group_by": ["..."],
                "group_wait": "10s",
                "routes": [
                    {"matchers": ["team=x"], "receiver": "b", "continue": True},
                    {"matchers": ["team=~x|y"], "receiver": "c", "group_interval": "1m"},
                ],
            },
            "receivers": [{"name": n, "webhook_configs": [{"url": "http://x"}]} for n in "abc"],
        },
        "am.yml",
    )
    routes = config.route.match({"team": "x", "alertname": "A"})
    assert [r.receiver for r in routes] == ["b", "c"]
    assert routes[1].group_by_all and routes[1].group_wait == 10 and routes[1].group_interval == 60
    assert routes[0].group_labels({"team": "x", "alertname": "A"}) == (("alertname", "A"), ("team", "x"))
    assert [r.receiver for r in config.route.match({"team": "z"})] == ["a"]


def test_a_long_for_pages_at_once_and_resolves_on_the_next_tick() -> None:
    # for 2m: the alert is older than the pager's group_wait (1s) when it arrives, so it flushes at once;
    # then the group ticks every 30s from there.
    assert sent([episode(120, 605, for_=120, **page())]) == [
        (120, "pager", "first", 1, 0),
        (630, "pager", "all resolved", 0, 1),
    ]


def test_for_zero_waits_group_wait_and_a_second_target_is_an_update() -> None:
    first = episode(100, None, **ticket(instance="a"))
    second = episode(150, None, **ticket(instance="b"))
    assert sent([first, second], until=2 * DAY) == [
        (130, "ticket", "first", 1, 0),  # group_wait 30s
        (430, "ticket", "new alerts", 2, 0),  # group_interval 5m: an update, not a new ticket
        (430 + DAY + 300, "ticket", "repeat", 2, 0),  # repeat_interval 24h: the first tick after it
    ]


def test_a_flap_within_group_interval_is_swallowed_and_a_later_one_pages_again() -> None:
    flaps = [
        episode(120, 305, for_=120, **page()),
        episode(320, 1000, for_=120, **page()),  # resolved at 305, firing again before the 330 tick
        episode(5000, 5200, for_=120, **page()),  # after the group was destroyed: a new incident
    ]
    assert [(t, reason) for t, _, reason, *_ in sent(flaps)] == [
        (120, "first"),
        (1020, "all resolved"),
        (5000, "first"),
        (5210, "all resolved"),
    ]


def test_a_critical_level_silences_the_warning_level_of_the_same_target() -> None:
    labels = {"alertname": "TmuxMonitorMemoryHigh", "system": "tmux", "instance": "a"}
    warning = episode(300, 4000, for_=300, severity="warning", **labels)
    critical = episode(600, 2000, for_=300, severity="critical", **labels)
    assert sent([warning, critical]) == [
        (300, "ticket", "first", 1, 0),  # before the critical fired
        (600, "pager", "first", 1, 0),
        (2010, "pager", "all resolved", 0, 1),
        (4200, "ticket", "all resolved", 0, 1),  # muted from 600 to 2000: no update in between
    ]
    late = episode(900, 1500, for_=300, severity="warning", **{**labels, "instance": "a"})
    early = episode(600, 2000, for_=300, severity="critical", **labels)
    assert [r for _, r, *_ in sent([late, early])] == ["pager", "pager"], "muted from its first flush"


def test_a_critical_down_silences_the_symptoms_of_its_system_but_not_another_system() -> None:
    down = episode(120, 3000, for_=60, **page("QerrorsDown", system="qerrors", env="production"))
    symptom = ticket("QerrorsLatencyHigh", system="qerrors", env="production")
    other = ticket("QerrorsLatencyHigh", system="qerrors", env="staging")
    notes = sent([down, episode(600, 2000, for_=300, **symptom), episode(600, 2000, for_=300, **other)])
    assert [(t, r, reason) for t, r, reason, *_ in notes] == [
        (120, "pager", "first"),
        (600, "ticket", "first"),  # staging: another env
        (2100, "ticket", "all resolved"),
        (3000, "pager", "all resolved"),
    ]


def test_info_alerts_notify_nobody() -> None:
    assert sent([episode(100, 500, **{"alertname": "X", "severity": "info", "system": "host"})]) == []


def test_an_unsupported_configuration_is_one_line() -> None:
    data = {"route": {"receiver": "a", "mute_time_intervals": ["night"]}, "receivers": [{"name": "a"}]}
    with pytest.raises(ConfigError, match=r"^am.yml: route.mute_time_intervals: time intervals are not"):
        parse_config(data, "am.yml")
    with pytest.raises(ConfigError, match="receiver 'b' is not defined"):
        parse_config({"route": {"receiver": "b"}, "receivers": [{"name": "a"}]}, "am.yml")
