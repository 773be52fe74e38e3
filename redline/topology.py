"""Default 127.0.0.1 ports of the native stack, one place for the runner, the demo and the docs."""

PORTS: dict[str, int] = {
    "prometheus": 9090,
    "alertmanager": 9093,  # cluster gossip on 9094
    "alertmanager-2": 9193,  # HA option, gossip 9194
    "alertmanager-3": 9293,  # HA option, gossip 9294
    "pager-sink": 9097,
    "node-exporter": 9100,
    "host-exporter": 9110,
    "job-exporter": 9111,
    "blackbox": 9115,
    "postgres-exporter": 9187,
    "demo-control": 9200,
    "demo-gamebook": 9201,
    "demo-qerrors": 9202,
    "demo-qerrors-staging": 9203,
    "demo-pipeline": 9204,
    "demo-tmux": 9205,
    "vmagent": 8429,  # OTLP over HTTP at /opentelemetry/v1/metrics
    "postgres": 55432,
    "grafana": 3000,
}
