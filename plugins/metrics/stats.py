"""Request counts of one app and release over some time: what a metrics line adds to, what two
buckets merge into, and the percentiles of the upstream time.

Upstream times go into a histogram with fixed bounds (HISTOGRAM_BOUNDS, seconds), so buckets of
any width merge exactly (10 s into 1 min into 1 h) and percentiles come from the merged counts,
interpolated within their bucket (a p95 is right within its bucket's width: about 30%). The
Prometheus export uses a subset of the same bounds.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass, field
from typing import NamedTuple

HISTOGRAM_BOUNDS = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.35,
    0.5, 0.75, 1.0, 1.5, 2.5, 3.5, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0,
)  # fmt: skip
PROMETHEUS_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # the client's defaults
CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")


@dataclass
class Stats:
    """Counts that add up: requests by status class, bytes sent, upstream time (sum and histogram)."""

    requests: int = 0
    classes: list[int] = field(default_factory=lambda: [0] * len(CLASSES))
    bytes: int = 0
    timed: int = 0  # requests that reached an app process (they have an upstream time)
    time_sum: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * (len(HISTOGRAM_BOUNDS) + 1))

    def add(self, status: int, sent: int, upstream: float | None, n: int = 1) -> None:
        """`n` requests alike."""
        self.requests += n
        klass = status // 100 - 1
        if 0 <= klass < len(CLASSES):
            self.classes[klass] += n
        self.bytes += sent * n
        if upstream is not None:
            self.timed += n
            self.time_sum += upstream * n
            self.histogram[bisect.bisect_left(HISTOGRAM_BOUNDS, upstream)] += n

    def merge(self, other: Stats) -> Stats:
        self.requests += other.requests
        self.classes = [a + b for a, b in zip(self.classes, other.classes, strict=True)]
        self.bytes += other.bytes
        self.timed += other.timed
        self.time_sum += other.time_sum
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]
        return self

    @property
    def errors(self) -> int:
        """5xx answers."""
        return self.classes[4]

    @property
    def error_ratio(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def percentile(self, q: float) -> float | None:
        """The q-quantile (0..1) of the upstream time in seconds; None without timed requests."""
        if not self.timed:
            return None
        rank = q * self.timed
        seen = 0
        for i, count in enumerate(self.histogram):
            if count and seen + count >= rank:
                low = HISTOGRAM_BOUNDS[i - 1] if i > 0 else 0.0
                if i == len(HISTOGRAM_BOUNDS):  # past the last bound: all we know is "more than"
                    return HISTOGRAM_BOUNDS[-1]
                high = HISTOGRAM_BOUNDS[i]
                return low + (high - low) * max(0.0, rank - seen) / count
            seen += count
        return HISTOGRAM_BOUNDS[-1]

    def cumulative(self, bounds: tuple[float, ...] = PROMETHEUS_BOUNDS) -> list[tuple[str, int]]:
        """Prometheus buckets: (le, requests at or under it), `+Inf` last (bounds must be ours)."""
        out, seen, i = [], 0, 0
        for bound in bounds:
            while i < len(HISTOGRAM_BOUNDS) and HISTOGRAM_BOUNDS[i] <= bound:
                seen += self.histogram[i]
                i += 1
            out.append((repr(bound), seen))
        out.append(("+Inf", self.timed))
        return out

    # storage: a compact JSON text of the histogram's non-zero buckets
    def histogram_text(self) -> str:
        return json.dumps({str(i): c for i, c in enumerate(self.histogram) if c}, separators=(",", ":"))

    @staticmethod
    def histogram_from(text: str) -> list[int]:
        counts = [0] * (len(HISTOGRAM_BOUNDS) + 1)
        for key, value in json.loads(text or "{}").items():
            index = int(key)
            if 0 <= index < len(counts):
                counts[index] = int(value)
        return counts

    def summary(self) -> dict:
        """The JSON shape of `metrics --format json` and the API (times in seconds)."""
        return {
            "requests": self.requests,
            **{c: n for c, n in zip(CLASSES[1:], self.classes[1:], strict=True)},
            "error_ratio": round(self.error_ratio, 4),
            "bytes": self.bytes,
            "p50": _round(self.percentile(0.5)),
            "p95": _round(self.percentile(0.95)),
            "p99": _round(self.percentile(0.99)),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


class Line(NamedTuple):  # a tuple: made once per request, so cheap to make (not a dataclass)
    at: float
    app: str
    release: int  # 0: unknown (no process answered, or a retry across processes)
    status: int
    sent: int
    upstream: float | None


def parse(text: str) -> Line | None:
    """One router metrics line (`<msec> <app> <release|-> <status> <bytes> <upstream time> <request
    time>`); the upstream time is `-` without one, and a list (`0.002, 0.001` or `... : ...`)
    when nginx tried more than one process: their sum. None for anything malformed."""
    parts = text.split(" ")
    if len(parts) < 7:
        return None
    try:
        at = float(parts[0])
        status = int(parts[3])
        sent = int(parts[4])
        if len(parts) == 7:  # one upstream (nearly every line): no list to walk
            token = parts[5]
            upstream = float(token) if token[:1].isdigit() else None
        else:
            upstream = None
            for token in parts[5:-1]:
                token = token.rstrip(",")
                if token and token[0].isdigit():
                    upstream = (upstream or 0.0) + float(token)
        release = int(parts[2]) if parts[2].isdigit() else 0
    except ValueError:
        return None
    return Line(at, parts[1], release, status, sent, upstream)
