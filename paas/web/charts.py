"""CPU and memory samples as SVG polylines (drawn by the template, no JS, no library)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from paas.store import Sample

WIDTH, HEIGHT = 600, 120
COLORS = 6  # CSS classes line-0 .. line-5


@dataclass(frozen=True)
class Line:
    dyno: str
    css: str
    points: str  # "x,y x,y ..." in the 600x120 box
    last: str  # the newest value, with its unit
    end: tuple[float, float]  # where the newest point is drawn as a dot (one sample is a dot)


@dataclass(frozen=True)
class Chart:
    title: str
    top: str  # the value at the top of the chart, with its unit
    lines: list[Line]
    minutes: int  # the chart spans this many minutes up to now


MIN_SPAN, MAX_SPAN = 120.0, 600.0  # a page opened a moment ago shows 2 minutes, not a dot


def span_for(history: dict[str, list[Sample]], now: float) -> float:
    oldest = min((ss[0].at for ss in history.values() if ss), default=now)
    span = min(max(now - oldest, MIN_SPAN), MAX_SPAN)
    return math.ceil(span / 60) * 60.0


def nice_ceiling(value: float) -> float:
    """The next 1, 2, 5 x 10^k at or above value: round numbers on the axis."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return float(step * power)
    return float(10 * power)


def _fmt(value: float, unit: str) -> str:
    return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"


def _chart(
    title: str, unit: str, series: dict[str, list[tuple[float, float]]], now: float, span: float, floor: float
) -> Chart:
    peak = max((v for pts in series.values() for _, v in pts), default=0.0)
    top = nice_ceiling(max(peak * 1.1, floor))
    lines = []
    for i, (dyno, pts) in enumerate(series.items()):
        if not pts:
            continue
        xy = [
            (
                round(max(0.0, (t - (now - span)) / span * WIDTH), 1),
                round(HEIGHT - min(v / top, 1.0) * HEIGHT, 1),
            )
            for t, v in pts
        ]
        coords = " ".join(f"{x},{y}" for x, y in xy)
        lines.append(Line(dyno, f"line-{i % COLORS}", coords, _fmt(pts[-1][1], unit), xy[-1]))
    return Chart(title, _fmt(top, unit), lines, int(span // 60))


def charts(history: dict[str, list[Sample]], now: float, span: float | None = None) -> tuple[Chart, Chart]:
    span = span or span_for(history, now)
    cpu = {d: [(s.at, s.cpu_percent) for s in ss if s.cpu_percent is not None] for d, ss in history.items()}
    mem = {d: [(s.at, s.mem_bytes / 2**20) for s in ss] for d, ss in history.items()}
    return (
        _chart("CPU", "%", cpu, now, span, floor=1.0),  # type: ignore[arg-type]
        _chart("Memory", "MiB", mem, now, span, floor=16.0),
    )
