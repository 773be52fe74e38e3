"""timex: the kernel clock discipline from adjtimex(2): offset, sync status, max error, PPS counters."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client.metrics_core import Metric

from redline.exporters.host.collectors.base import CollectFn, NoDataError, collector, counter, gauge
from redline.exporters.host.config import HostConfig

TIME_ERROR = 5  # adjtimex's return value while the clock is not synchronised
STA_NANO = 0x2000  # offset and jitter are in nanoseconds (microseconds otherwise)
PPM16FRAC = 1_000_000.0 * 65536.0  # frequency fields: parts per million with a 16-bit fraction


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """struct timex of <sys/timex.h> (Linux, 64-bit longs), with its 11 reserved ints."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
        ("time", _Timeval), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long), ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int), ("stabil", ctypes.c_long), ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long), ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int), ("_reserved", ctypes.c_int * 11),
    ]  # fmt: skip


@dataclass(frozen=True)
class Timex:
    """What adjtimex(2) returned (modes 0: read only)."""

    state: int
    offset: int
    freq: int
    maxerror: int
    esterror: int
    status: int
    constant: int
    tick: int
    ppsfreq: int
    jitter: int
    shift: int
    stabil: int
    jitcnt: int
    calcnt: int
    errcnt: int
    stbcnt: int
    tai: int


@functools.cache
def _adjtimex_call() -> Callable[..., int]:
    # find_library runs ldconfig: look libc up once, not on every scrape
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).adjtimex


def adjtimex() -> Timex:
    """Read the kernel's clock state; NoDataError where the call is not permitted (some sandboxes)."""
    buf = _Timex()
    state = _adjtimex_call()(ctypes.byref(buf))
    if state < 0:
        err = ctypes.get_errno()
        raise NoDataError(f"adjtimex: {os.strerror(err)}")
    fields = {name: getattr(buf, name) for name in Timex.__dataclass_fields__ if name != "state"}
    return Timex(state=state, **fields)


def timex_families(t: Timex) -> list[Metric]:
    """node_timex_* for one adjtimex reading, scaled as node_exporter does."""
    divisor = 1e9 if t.status & STA_NANO else 1e6
    return [
        gauge("node_timex_sync_status", "Is clock synchronized to a reliable server (1 = yes, 0 = no).",
              0.0 if t.state == TIME_ERROR else 1.0),
        gauge("node_timex_offset_seconds", "Time offset in between local system and reference clock.",
              t.offset / divisor),
        gauge("node_timex_frequency_adjustment_ratio", "Local clock frequency adjustment.",
              1 + t.freq / PPM16FRAC),
        gauge("node_timex_maxerror_seconds", "Maximum error in seconds.", t.maxerror / 1e6),
        gauge("node_timex_estimated_error_seconds", "Estimated error in seconds.", t.esterror / 1e6),
        gauge("node_timex_status", "Value of the status array bits.", float(t.status)),
        gauge("node_timex_loop_time_constant", "Phase-locked loop time constant.", float(t.constant)),
        gauge("node_timex_tick_seconds", "Seconds between clock ticks.", t.tick / 1e6),
        gauge("node_timex_pps_frequency_hertz", "Pulse per second frequency.", t.ppsfreq / PPM16FRAC),
        gauge("node_timex_pps_jitter_seconds", "Pulse per second jitter.", t.jitter / divisor),
        gauge("node_timex_pps_shift_seconds", "Pulse per second interval duration.", float(t.shift)),
        gauge("node_timex_pps_stability_hertz",
              "Pulse per second stability, average of recent frequency changes.", t.stabil / PPM16FRAC),
        counter("node_timex_pps_jitter_total",
                "Pulse per second count of jitter limit exceeded events.", float(t.jitcnt)),
        counter("node_timex_pps_calibration_total",
                "Pulse per second count of calibration intervals.", float(t.calcnt)),
        counter("node_timex_pps_error_total",
                "Pulse per second count of calibration errors.", float(t.errcnt)),
        counter("node_timex_pps_stability_exceeded_total",
                "Pulse per second count of stability limit exceeded events.", float(t.stbcnt)),
        gauge("node_timex_tai_offset_seconds", "International Atomic Time (TAI) offset.", float(t.tai)),
    ]  # fmt: skip


@collector("timex")
def make_timex(config: HostConfig, read: Callable[[], Timex] = adjtimex) -> CollectFn:
    # a system call, not a file: the procfs/sysfs paths do not apply
    def collect_timex() -> list[Metric]:
        return timex_families(read())

    return collect_timex
