"""redline.telemetry.instrument: exact counts, sums, bucket placement, catalogue buckets, a real scrape."""

from __future__ import annotations

import sys
import textwrap

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from redline.testing.components import prometheus, vmagent
from redline.testing.processes import free_port, prom_query, running, wait_until

SERVICE = textwrap.dedent(
    """
    import sys, time
    from redline.telemetry.instrument import Instrumentation
    from redline.telemetry.web import serve
    from redline.telemetry.otlp_bridge import OtlpBridge

    inst = Instrumentation()
    cycle, cache = inst.cycle("main"), inst.cache("agent_status")
    for seconds in (0.25, 0.5, 1.0, 1.0, 1.5):
        cycle.observe(seconds)
    cache.hit(9)
    cache.miss()
    inst.set_health(True)
    server = serve(inst.registry, sys.argv[1])
    bridge = OtlpBridge(inst.registry, service_name="tmux-monitor", interval_seconds=1, endpoint=sys.argv[2])
    bridge.start()
    time.sleep(120)
    """
)


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.slow
def test_real_prometheus_scrape_and_otlp_bridge(tmp_path):
    """The same values reach Prometheus by scrape and, via the OTLP bridge and vmagent, by remote write."""
    service_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: tmux-monitor\n    static_configs: [{{targets: ['127.0.0.1:{service_port}']}}]\n"
    )
    with (
        prometheus(tmp_path, config) as base,
        vmagent(tmp_path, base) as otlp,
        running(
            [sys.executable, "-c", SERVICE, f"127.0.0.1:{service_port}", otlp],
            ready_url=f"http://127.0.0.1:{service_port}/metrics",
            log=tmp_path / "service.log",
        ),
    ):
        target = f'job="tmux-monitor", instance="127.0.0.1:{service_port}"'
        scraped = f'redline_cycle_duration_seconds_bucket{{{target}, le="1.0"}}'
        wait_until(lambda: prom_query(base, scraped), timeout=20, what="scraped cycle histogram")
        assert float(prom_query(base, scraped)[0]["value"][1]) == 4
        assert float(prom_query(base, 'redline_cycle_duration_seconds_bucket{le="0.75"}')[0]["value"][1]) == 2
        hits = f"redline_cache_hits_total{{{target}}}"
        ratio = prom_query(base, f"{hits} / ({hits} + redline_cache_misses_total{{{target}}})")
        assert float(ratio[0]["value"][1]) == pytest.approx(0.9)
        # vmagent writes OTLP bucket bounds as Go formats them ("1", not Prometheus 3's "1.0"). The copy
        # has the same job (service.name) and its own instance (service.instance.id).
        other = f'job="tmux-monitor", instance!="127.0.0.1:{service_port}"'
        pushed = f'redline_cycle_duration_seconds_bucket{{{other}, le=~"1|1.0"}}'
        got = wait_until(lambda: prom_query(base, pushed), timeout=30, what="OTLP copy via vmagent")
        assert float(got[0]["value"][1]) == 4
        pushed_sum = prom_query(base, f"redline_cycle_duration_seconds_sum{{{other}}}")
        assert float(pushed_sum[0]["value"][1]) == pytest.approx(4.25)
