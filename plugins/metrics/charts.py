"""The app page's request and process charts as SVG, drawn on the server (no script, no library):
polylines in a fixed 600x150 box that scales as a whole (so the release labels keep their
shape), a vertical line at each release, red where the watch rolled it back."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

W, H, TOP = 600, 150, 16  # the plot spans y TOP..H; release labels sit above it
COLORS = 6


@dataclass(frozen=True)
class Series:
    name: str
    css: str
    points: str  # "x,y x,y ..."
    last: str


@dataclass(frozen=True)
class Marker:
    x: float
    label: str
    css: str  # "marker", or "marker rolled-back"
    title: str


@dataclass(frozen=True)
class Chart:
    title: str
    top: str
    series: list[Series]
    markers: list[Marker]

    @property
    def empty(self) -> bool:
        return not self.series


def nice_ceiling(value: float) -> float:
    """The next 1, 2, 5 x 10^k at or above value: round numbers on the axis."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)


def _x(t: float, start: float, end: float) -> float:
    return round(min(max((t - start) / (end - start), 0.0), 1.0) * W, 1)


LABEL_GAP = 24.0  # a label closer than this to a newer one's is left out (its line and tooltip stay)


def markers(marks: list[dict], start: float, end: float) -> list[Marker]:
    out = []
    labelled = W + LABEL_GAP
    for m in sorted(marks, key=lambda m: (m["at"], m["version"]), reverse=True):
        rolled = m.get("rolled_back")
        title = f"v{m['version']}: {m['description']}" + (f" ({rolled})" if rolled else "")
        x = _x(m["at"], start, end)
        label = f"v{m['version']}" if labelled - x >= LABEL_GAP else ""
        labelled = x if label else labelled
        out.append(Marker(x, label, "marker rolled-back" if rolled else "marker", title))
    return out


def chart(
    title: str,
    lines: dict[str, list[tuple[float, float]]],
    start: float,
    end: float,
    fmt: Callable[[float], str],
    floor: float,
    marks: list[Marker],
) -> Chart:
    peak = max((v for pts in lines.values() for _, v in pts), default=0.0)
    top = nice_ceiling(max(peak * 1.1, floor))
    series = []
    for i, (name, pts) in enumerate(lines.items()):
        if not pts:
            continue
        xy = [(_x(t, start, end), round(H - min(v / top, 1.0) * (H - TOP), 1)) for t, v in sorted(pts)]
        if len(xy) == 1:  # one sample: a short dash, not an invisible point
            xy.append((min(xy[0][0] + 3, W), xy[0][1]))
        coords = " ".join(f"{x},{y}" for x, y in xy)
        series.append(Series(name, f"line-{i % COLORS}", coords, fmt(pts[-1][1])))
    return Chart(title, fmt(top), series, marks)


def charts(report: dict) -> list[Chart]:
    """Requests/s (and 5xx/s), upstream p95, CPU and memory per process type, over the report's range."""
    end, step = report["now"], report["step"]
    start = end - report["since"]
    marks = markers(report["markers"], start, end)
    first = int(start - start % step)
    by_at = {p["at"]: p for p in report["series"]}
    rate: list[tuple[float, float]] = []
    errors: list[tuple[float, float]] = []
    for at in range(first, int(end) + 1, step):
        p = by_at.get(at)
        mid = at + step / 2
        rate.append((mid, (p["requests"] if p else 0) / step))
        errors.append((mid, (p["5xx"] if p else 0) / step))
    p95 = [(p["at"] + step / 2, p["p95"] * 1000) for p in report["series"] if p["p95"] is not None]
    cpu = {
        t: [(p["at"] + step / 2, p["cpu_percent"]) for p in pts]
        for t, pts in report["process_series"].items()
    }
    mem = {
        t: [(p["at"] + step / 2, p["mem_bytes"] / 2**20) for p in pts]
        for t, pts in report["process_series"].items()
    }
    has_requests = bool(report["series"])
    return [
        chart(
            "Requests",
            {"all/s": rate, "5xx/s": errors} if has_requests else {},
            start,
            end,
            lambda v: f"{v:.3g}/s",
            1.0,
            marks,
        ),
        chart("Upstream p95", {"p95": p95}, start, end, lambda v: f"{v:.0f} ms", 10.0, marks),
        chart("CPU", cpu, start, end, lambda v: f"{v:.1f} %", 1.0, marks),
        chart("Memory", mem, start, end, lambda v: f"{v:.0f} MiB", 16.0, marks),
    ]
