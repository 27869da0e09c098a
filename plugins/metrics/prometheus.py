"""The Prometheus text format of every app's metrics (admins only), by `prometheus-client`.

Counters come from the history's running totals per app and release (kept while the release had
traffic in the last 7 days), the upstream-time histogram uses the client's default buckets, and
the process gauges are the newest 10 s sample of each process type.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from .history import History
from .stats import CLASSES

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class HistoryCollector(Collector):
    def __init__(self, history: History) -> None:
        self.history = history

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "paas_requests", "Requests through the router, by app, release and status class.",
            labels=["app", "release", "code"],
        )  # fmt: skip
        sent = CounterMetricFamily(
            "paas_response_bytes", "Bytes sent to clients, by app and release.", labels=["app", "release"]
        )
        upstream = HistogramMetricFamily(
            "paas_upstream_response_seconds",
            "Time the app's processes took to answer, by app and release.",
            labels=["app", "release"],
        )
        for app, release, stats in self.history.totals():
            rel = str(release) if release else "unknown"
            for klass, count in zip(CLASSES, stats.classes, strict=True):
                if count or klass != "1xx":
                    requests.add_metric([app, rel, klass], count)
            sent.add_metric([app, rel], stats.bytes)
            upstream.add_metric([app, rel], stats.cumulative(), stats.time_sum)
        yield requests
        yield sent
        yield upstream
        cpu = GaugeMetricFamily(
            "paas_process_cpu_percent", "CPU of an app's processes of one type (100 = one core).",
            labels=["app", "type"],
        )  # fmt: skip
        mem = GaugeMetricFamily(
            "paas_process_memory_bytes", "Memory of an app's processes of one type.", labels=["app", "type"]
        )
        for app, ptype, point in self.history.latest_processes(within=60, now=time.time()):
            cpu.add_metric([app, ptype], round(point.cpu, 3))
            mem.add_metric([app, ptype], point.mem)
        yield cpu
        yield mem


def exposition(history: History) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HistoryCollector(history))
    return generate_latest(registry)
