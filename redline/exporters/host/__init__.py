"""redline host exporter: node_exporter-compatible host metrics and named process groups."""
