"""redline.telemetry.instrument: exact counts, sums, bucket placement, catalogue buckets, a real scrape."""

from __future__ import annotations

import sys
import textwrap

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from redline.telemetry.instrument import CYCLE_DURATION, REQUEST_DURATION, Instrumentation, catalogue_buckets
from redline.testing.processes import ROOT


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def get(found: dict, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


@pytest.fixture(scope="module")
def buckets() -> dict[str, tuple]:
    return catalogue_buckets()


def test_buckets_come_from_the_catalogue(buckets):
    from redline.generate.load import load_catalogue

    catalogue = load_catalogue()
    assert buckets[CYCLE_DURATION] == catalogue.metric(CYCLE_DURATION).buckets
    # Every seconds threshold on the cycle histogram is a bucket bound (so the alert is exact).
    cycle_thresholds = [
        t for t in catalogue.thresholds() if t.metric == CYCLE_DURATION and t.unit == "seconds"
    ]
    assert cycle_thresholds, "the catalogue has no threshold on the cycle histogram"
    for threshold in cycle_thresholds:
        assert threshold.value in buckets[CYCLE_DURATION]
    inst = Instrumentation(CollectorRegistry())
    inst.cycle("main").observe(0.1)
    found = samples(inst.registry)
    les = sorted(float(dict(labels)["le"]) for name, labels in found if name == f"{CYCLE_DURATION}_bucket")
    assert les[:-1] == sorted(buckets[CYCLE_DURATION]) and les[-1] == float("inf")


def test_cycle_values_exact_at_bucket_bounds(buckets):
    inst = Instrumentation(CollectorRegistry(), buckets=buckets)
    cycle = inst.cycle("main")
    bounds = buckets[CYCLE_DURATION]
    threshold = 1.0  # the documented "alert > 1.0 s" cycle time
    assert threshold in bounds
    for seconds in (0.5, threshold, threshold, 1.0000001, 12.0):
        cycle.observe(seconds)
    cycle.set_agents(50)
    found = samples(inst.registry)
    below = max(b for b in bounds if b < threshold)
    above = min(b for b in bounds if b > threshold)
    assert get(found, f"{CYCLE_DURATION}_bucket", loop="main", le=repr(below)) == 1
    assert get(found, f"{CYCLE_DURATION}_bucket", loop="main", le="1.0") == 3  # equal to a bound: in it
    assert get(found, f"{CYCLE_DURATION}_bucket", loop="main", le=repr(above)) == 4
    assert get(found, f"{CYCLE_DURATION}_bucket", loop="main", le="+Inf") == 5
    assert get(found, f"{CYCLE_DURATION}_count", loop="main") == 5
    assert get(found, f"{CYCLE_DURATION}_sum", loop="main") == pytest.approx(15.5000001)
    assert get(found, "redline_cycle_agents", loop="main") == 50

    with cycle.time(agents=7) as timing:
        timing.agents = 8
    found = samples(inst.registry)
    assert get(found, f"{CYCLE_DURATION}_count", loop="main") == 6
    assert get(found, "redline_cycle_agents", loop="main") == 8


def test_http_red_decorator_and_context_manager(buckets):
    inst = Instrumentation(CollectorRegistry(), buckets=buckets)
    index = inst.request("/index", "GET")

    @index
    def handler(fail: bool) -> str:
        if fail:
            raise RuntimeError("boom")
        return "ok"

    assert handler(False) == "ok"
    with pytest.raises(RuntimeError):
        handler(True)
    with index.time() as request:
        request.code = 404
    index.observe(0.1, 200)  # on the 0.1 bound
    index.observe(0.1000001, 503)
    found = samples(inst.registry)
    assert get(found, "redline_requests_total", handler="/index", method="GET", code="200") == 2
    assert get(found, "redline_requests_total", handler="/index", method="GET", code="500") == 1
    assert get(found, "redline_requests_total", handler="/index", method="GET", code="404") == 1
    assert get(found, "redline_requests_total", handler="/index", method="GET", code="503") == 1
    assert get(found, f"{REQUEST_DURATION}_count", handler="/index", method="GET") == 5
    assert get(found, f"{REQUEST_DURATION}_bucket", handler="/index", method="GET", le="0.1") == 4
    assert get(found, f"{REQUEST_DURATION}_sum", handler="/index", method="GET") == pytest.approx(
        0.2, abs=0.01
    )
    assert handler.__name__ == "handler"


def test_operations_pools_caches_health(buckets):
    inst = Instrumentation(CollectorRegistry(), buckets=buckets)
    checks = inst.operation("agent_check")
    checks.succeeded(97)
    checks.failed(2)
    with checks:
        pass
    with pytest.raises(ValueError), checks:
        raise ValueError("agent gone")
    pool = inst.pool("tmux", maximum=20)
    pool.set(size=12, busy=9)
    pool.acquired()
    pool.acquired()
    pool.released()
    cache = inst.cache("agent_status")
    for _ in range(7):
        cache.hit()
    cache.miss(3)
    inst.set_health(False)
    found = samples(inst.registry)
    assert get(found, "redline_operations_total", operation="agent_check") == 101
    assert get(found, "redline_operation_errors_total", operation="agent_check") == 3
    assert get(found, "redline_pool_connections_max", pool="tmux") == 20
    assert get(found, "redline_pool_connections_busy", pool="tmux") == 10
    assert get(found, "redline_pool_connections_size", pool="tmux") == 12
    assert get(found, "redline_cache_hits_total", cache="agent_status") == 7
    assert get(found, "redline_cache_misses_total", cache="agent_status") == 3
    assert get(found, "redline_health_up") == 0


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


def test_instrumentation_module_imports_no_catalogue_when_buckets_given():
    code = (
        "import sys\nfrom prometheus_client import CollectorRegistry\n"
        "from redline.telemetry.instrument import Instrumentation\n"
        "Instrumentation(CollectorRegistry(), buckets={'redline_cycle_duration_seconds': [1.0]})\n"
        "assert 'redline.generate.catalogue' not in sys.modules\n"
    )
    import subprocess

    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=30)
