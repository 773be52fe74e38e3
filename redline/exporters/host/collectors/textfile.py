"""textfile: the metrics of the *.prom files in a directory (cron jobs, scripts), plus
node_textfile_mtime_seconds{file} and node_textfile_scrape_error, as node_exporter's textfile collector."""

from __future__ import annotations

import logging
import os

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from redline.exporters.host.collectors.base import CollectFn, collector, gauge
from redline.exporters.host.config import HostConfig

log = logging.getLogger(__name__)


def read_directory(directory: str | None) -> list[Metric]:
    """The families of every *.prom file in `directory` (sorted by file name) and the two textfile metrics.

    A file that cannot be read or parsed, or that carries client-side timestamps, is skipped whole and sets
    node_textfile_scrape_error to 1; so does a metric whose HELP differs from the same metric's in an
    earlier file (that file's family is dropped). No directory configured: only the error metric, 0.
    """
    errored = False
    families: dict[str, Metric] = {}
    helps: dict[str, str] = {}
    files_of: dict[str, list[str]] = {}
    mtimes: list[tuple[str, float]] = []
    names: list[str] = []
    if directory:
        try:
            names = sorted(n for n in os.listdir(directory) if n.endswith(".prom"))
        except OSError as err:
            errored = True
            log.error("textfile: cannot read directory %s: %s", directory, err.strerror or err)
    for name in names:
        path = os.path.join(directory or "", name)
        try:
            with open(path) as f:
                text = f.read()
            mtime = os.stat(path).st_mtime
            parsed = list(text_string_to_metric_families(text))
        except (OSError, ValueError) as err:
            errored = True
            log.error("textfile: failed to read %s: %s", path, err)
            continue
        if any(s.timestamp is not None for family in parsed for s in family.samples):
            errored = True
            log.error("textfile: %s contains unsupported client-side timestamps, skipping entire file", path)
            continue
        for family in parsed:
            if family.name in helps and family.documentation and family.documentation != helps[family.name]:
                errored = True
                log.error("textfile: inconsistent help text for %s in %s", family.name, path)
                continue
            if family.documentation:
                helps.setdefault(family.name, family.documentation)
            files_of.setdefault(family.name, []).append(path)
            merged = families.get(family.name)
            if merged is None:
                families[family.name] = family
            else:
                merged.samples.extend(family.samples)
        mtimes.append((path, float(int(mtime))))  # whole seconds, like node_exporter
    out: list[Metric] = []
    for name, family in families.items():
        family.documentation = helps.get(name) or f"Metric read from {', '.join(files_of[name])}"
        # a counter sample without _total cannot be exposed as a counter by prometheus_client
        if family.type == "counter" and any(
            not s.name.endswith(("_total", "_created")) for s in family.samples
        ):
            family.type = "unknown"
        out.append(family)
    if mtimes:
        mtime_family = GaugeMetricFamily(
            "node_textfile_mtime_seconds", "Unixtime mtime of textfiles successfully read.", labels=["file"]
        )
        for path, seconds in mtimes:
            mtime_family.add_metric([path], seconds)
        out.append(mtime_family)
    out.append(
        gauge(
            "node_textfile_scrape_error",
            "1 if there was an error opening or reading a file, 0 otherwise",
            1.0 if errored else 0.0,
        )
    )
    return out


@collector("textfile")
def make_textfile(config: HostConfig) -> CollectFn:
    directory = config.textfile_directory

    def collect_textfile() -> list[Metric]:
        return read_directory(directory)

    return collect_textfile
