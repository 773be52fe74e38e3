"""Command-line flags of the host collectors, with node_exporter's names and defaults."""

from __future__ import annotations

import argparse
import dataclasses
import os

from redline.exporters.host.config import (
    DEFAULT_PROCFS,
    DEFAULT_ROOTFS,
    DEFAULT_SYSFS,
    ConfigError,
    HostConfig,
)


def add_collector_arguments(parser: argparse.ArgumentParser) -> None:
    """--path.procfs, --path.sysfs, --path.rootfs, --collector.textfile.directory: node_exporter's flags."""
    group = parser.add_argument_group("collectors (enable and disable them in --config)")
    group.add_argument("--path.procfs", dest="path_procfs", default=DEFAULT_PROCFS, help="procfs mountpoint")
    group.add_argument("--path.sysfs", dest="path_sysfs", default=DEFAULT_SYSFS, help="sysfs mountpoint")
    group.add_argument("--path.rootfs", dest="path_rootfs", default=DEFAULT_ROOTFS, help="rootfs mountpoint")
    group.add_argument(
        "--collector.textfile.directory",
        dest="textfile_directory",
        help="directory of *.prom files (overrides textfile.directory in --config)",
    )


def apply_collector_arguments(config: HostConfig, args: argparse.Namespace) -> HostConfig:
    """The config with the flags of add_collector_arguments applied; ConfigError for a missing path."""
    for flag, value in (
        ("--path.procfs", args.path_procfs),
        ("--path.sysfs", args.path_sysfs),
        ("--path.rootfs", args.path_rootfs),
    ):
        if not os.path.isdir(value):
            raise ConfigError(f"{flag}: {value} is not a directory")
    directory = args.textfile_directory or config.textfile_directory
    if directory is not None:
        directory = os.path.abspath(directory)
    return dataclasses.replace(
        config,
        procfs=args.path_procfs,
        sysfs=args.path_sysfs,
        rootfs=args.path_rootfs,
        textfile_directory=directory,
    )
