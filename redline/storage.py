"""How long and how much each store keeps, and how the HA pair writes into the long-term store.

The only place these numbers are written (docs/scale.md). The native runner (redline/stack/services.py)
passes them as flags; docker-compose.yml's defaults are compared with them by
tests/unit/test_storage.py; `redline generate` renders prometheus/prometheus-scale.yml for compose with
scale_config(), and `redline up --scale` writes the native one into its run folder with the same function.

`redline up --scale` (and the compose profile `scale`): two Prometheus replicas run the same rendered
configuration, told apart only by the external label `replica` (A, B; from the environment variable
REDLINE_REPLICA, which Prometheus 3 expands in external labels). Both evaluate every rule and send to the
Alertmanager cluster with `replica` dropped from their alerts, so Alertmanager sees one alert and
notifies once. Both remote-write into VictoriaMetrics single-node with `replica` dropped too, so the two
copies of a series are one series there, and `-dedup.minScrapeInterval` (the shortest scrape interval of
redline/topology.py) keeps one sample per interval of it.
"""

from __future__ import annotations

import copy
from typing import Any

from redline import credentials, durations, topology

# Prometheus' local store: long enough for the alerts' windows and a fortnight of incident review.
PROMETHEUS_RETENTION_TIME = "15d"
PROMETHEUS_RETENTION_SIZE = "10GB"  # the disk budget of each replica: oldest blocks go first beyond it
# The long-term store (VictoriaMetrics single-node): a year and a month, for year-on-year capacity reviews.
LONG_TERM_RETENTION = "400d"
# VictoriaMetrics refuses new samples (and says so in its log and metrics) below this much free disk,
# instead of filling the disk; the remote-write queues of the replicas buffer meanwhile.
LONG_TERM_MIN_FREE_DISK = "1GB"

REPLICA_LABEL = "replica"
REPLICA_ENV = "REDLINE_REPLICA"  # expanded by Prometheus in external_labels
# service (redline/topology.py) -> its value of the replica label
REPLICAS: dict[str, str] = {"prometheus": "A", "prometheus-2": "B"}
LONG_TERM = "victoria-metrics"  # the endpoint of the long-term store
# The long-range recording rules (prometheus/long-term/rules.yml: 30-day SLO budgets, monthly compliance
# with each documented target) run in vmalert against the store, reading from it and writing into it, as
# their windows exceed the replicas' local retention. How often it evaluates them (each group's interval).
LONG_TERM_RULER = "vmalert"
LONG_TERM_EVAL_INTERVAL = "30s"

# Remote write from each replica: small batches sent at least every second, so the store is seconds behind;
# a queue that keeps retrying (with backoff up to 5 s) while the store is away. Prometheus keeps reading
# its WAL for what is not yet sent, so an outage shorter than the WAL's two hours loses nothing.
REMOTE_WRITE_QUEUE: dict[str, int | str] = {
    "capacity": 10000,
    "max_samples_per_send": 2000,
    "batch_send_deadline": "1s",
    "min_backoff": "100ms",
    "max_backoff": "5s",
}

# Agents on other hosts (`redline agent-config`, docs/scale.md): what each keeps on its disk while the
# stack cannot be reached, and is sent once it answers again.
AGENT_BUFFER_SIZE = "1GB"  # vmagent: -remoteWrite.maxDiskUsagePerURL (beyond it the oldest data goes)
AGENT_BUFFER_TIME = "6h"  # Prometheus --agent: --storage.agent.retention.max-time of its WAL


def receivers(scale: bool) -> tuple[str, ...]:
    """The Prometheus services that receive remote-written samples (OTLP through vmagent, the agents):
    with the HA pair both replicas, so both evaluate every rule over the same data, and the store gets
    them through the replicas' own remote write, deduplicated like scraped series."""
    return tuple(REPLICAS) if scale else ("prometheus",)


def history(scale: bool) -> str:
    """The endpoint long-term data is read from (Grafana's history datasource, the console's charts,
    `redline backtest`): the store with the HA pair, which holds both replicas' samples for 400 days
    and never loses the history of a replica that was down; the one Prometheus otherwise."""
    return LONG_TERM if scale else "prometheus"


def dedup_interval() -> str:
    """-dedup.minScrapeInterval: the shortest scrape interval of any job, so that the two replicas'
    samples of the fastest series collapse into one per interval and no job loses resolution."""
    intervals = [job.interval or topology.SCRAPE_INTERVAL for job in topology.JOBS]
    return min(intervals, key=durations.seconds)


def scale_config(base: dict[str, Any], long_term_address: str) -> dict[str, Any]:
    """The HA replicas' configuration: prometheus.yml (`base`, parsed) with the replica external label,
    the label dropped from alerts, and remote write into the long-term store at HOST:PORT."""
    config = copy.deepcopy(base)
    config["global"].setdefault("external_labels", {})[REPLICA_LABEL] = "${" + REPLICA_ENV + "}"
    drop = [{"action": "labeldrop", "regex": REPLICA_LABEL}]
    config["alerting"]["alert_relabel_configs"] = drop
    config["remote_write"] = [
        {
            "name": LONG_TERM,
            "url": f"http://{long_term_address}/api/v1/write",
            "basic_auth": {
                "username": credentials.USER,
                "password_file": f"../{credentials.SECRETS}/{credentials.WEB_PASSWORD_FILE}",
            },
            "write_relabel_configs": drop,
            "queue_config": dict(REMOTE_WRITE_QUEUE),
        }
    ]
    return config
