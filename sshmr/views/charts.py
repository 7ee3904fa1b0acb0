"""Geometry of the HTML report's inline SVG charts: the per-slot timeline and the runtime
histogram. Pure functions from attempt rows to shapes; the template only draws them.

A timeline lane (one host slot) with more attempts than it has pixels is aggregated:
attempts wide enough to see stay single bars, the narrow ones are counted into buckets of
a few pixels, each drawn as a stack coloured by the share of each outcome. So the SVG
never holds more shapes than the chart has pixels, whatever the number of jobs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

PLOT_W = 1000  # plot width in SVG user units (about pixels at the report's layout width)
LABEL_W = 190  # lane labels on the left
HOST_LABEL_W = 140  # a longer host name is clipped (its full name is its tooltip)
LANE_H = 16
BAR_H = 12
AXIS_H = 22
BUCKET_PX = 3  # aggregated lanes: one stacked bar per this many pixels
MIN_BAR_PX = 1.0
TICK_FONT_PX = 11  # the template's ``svg text`` size

# Attempt outcome -> (label, colour). The order is the legend's and the stacking order.
OUTCOMES: dict[str, tuple[str, str]] = {
    "ok": ("succeeded", "#2f9e5b"),
    "error": ("raised", "#d64545"),
    "timeout": ("timed out", "#e8912d"),
    "lost": ("worker/host lost", "#8e5cc9"),
    "killed": ("cancelled / lost race", "#98a2ad"),
    "discarded": ("duplicate discarded", "#c9d1d9"),
    "running": ("running", "#3b82f6"),
}
_LOST = {"worker_died", "host_lost", "corrupt", "system", "max_living"}


def outcome(state: str, reason: str | None) -> str:
    """The timeline colour class of an attempt."""
    if state == "SUCCEEDED":
        return "ok"
    if state == "DISCARDED":
        return "discarded"
    if state in ("DISPATCHED", "RUNNING"):
        return "running"
    if reason == "timeout":
        return "timeout"
    if reason in _LOST:
        return "lost"
    if reason in ("cancelled", "speculation"):
        return "killed"
    return "error"


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "–"
    if s < 1:
        return f"{s * 1000:.0f} ms" if s >= 0.001 else f"{s * 1000:.2f} ms"
    if s < 120:
        return f"{s:.2f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile of sorted ``values`` (q in 0..100)."""
    if not values:
        return None
    k = (len(values) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


_STEPS = [m * 10.0 ** e for e in range(-3, 1) for m in (1, 2, 5)] + [
    10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]


def _ticks(span: float, width: float, target: int = 8) -> list[tuple[float, str]]:
    """Round tick positions (x, label) for a time axis of ``span`` seconds."""
    if span <= 0:
        return [(0.0, "0 s")]
    step = next((s for s in _STEPS if s >= span / target), _STEPS[-1])
    ticks, i = [], 0
    while i * step <= span + 1e-9:
        ticks.append((i * step / span * width, _tick_label(i * step, step)))
        i += 1
    return ticks


def label_width(text: str) -> float:
    """A generous estimate of ``text``'s width in the charts' 11 px sans-serif."""
    return len(text) * TICK_FONT_PX * 0.62


def _anchored(ticks: list[tuple[float, str]], left: float,
              right: float) -> list[tuple[float, str, str]]:
    """Each tick with the text-anchor that keeps its label inside ``[left, right]``: centred
    on its tick, else ending at it (the last) or starting at it (the first)."""
    out = []
    for x, label in ticks:
        half = label_width(label) / 2
        anchor = "end" if x + half > right else "start" if x - half < left else "middle"
        out.append((x, label, anchor))
    return out


def _tick_label(t: float, step: float) -> str:
    if t == 0:
        return "0"
    if step < 1:
        return f"{t * 1000:g} ms" if t < 1 else f"{t:g} s"
    if step < 60:
        return f"{t:g} s"
    if step < 3600:
        return f"{t / 60:g} min"
    return f"{t / 3600:g} h"


@dataclass(frozen=True)
class Bar:
    x: float
    w: float
    y: float
    h: float
    cls: str
    title: str
    job: int | None = None  # set for a single attempt's bar, None for an aggregate
    attempt: int | None = None  # the attempt's number (1 = first launch of the job)


def span(a: Any, now: float) -> tuple[float, float]:
    """When an attempt ran on its slot, by the master's clock: from its start (the host's
    acknowledgement) for its measured runtime; to its end (or ``now``) when it has none."""
    t0 = a["started"] or a["dispatched"]
    if a["duration"] is not None:
        return t0, t0 + a["duration"]
    return t0, max(a["ended"] or now, t0)


def timeline(attempts: Sequence[Any], hosts: Sequence[str], now: float,
             marks: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Lanes (one per host slot seen) and their bars; ``attempts`` are journal rows;
    ``marks`` (``ts``, ``what``, ``host``) are drawn as vertical lines (host changes)."""
    spans = {a["id"]: span(a, now) for a in attempts}
    start = min((t0 for t0, _ in spans.values()), default=now)
    end = max((t1 for _, t1 in spans.values()), default=now)
    span_s = max(end - start, 1e-6)
    scale = PLOT_W / span_s
    by_lane: dict[tuple[str, int], list[Any]] = {}
    for a in attempts:
        by_lane.setdefault((a["host"], a["slot"]), []).append(a)
    order = {h: i for i, h in enumerate(hosts)}
    keys = sorted(by_lane, key=lambda k: (order.get(k[0], len(order)), k[0], k[1]))
    lanes, bars = [], []
    aggregated = 0
    for i, (host, slot) in enumerate(keys):
        y = AXIS_H + i * LANE_H
        first = i == 0 or keys[i - 1][0] != host
        lanes.append({"host": host, "slot": slot, "y": y, "first": first})
        rows = by_lane[(host, slot)]
        many = len(rows) > PLOT_W / BUCKET_PX
        aggregated += many
        buckets: dict[int, dict[str, int]] = {}
        for a in rows:
            t0, t1 = spans[a["id"]]
            x, w = (t0 - start) * scale, max((t1 - t0) * scale, 0.0)
            cls = outcome(a["state"], a["reason"])
            if many and w < 2 * BUCKET_PX:
                counts = buckets.setdefault(int(x // BUCKET_PX), {})
                counts[cls] = counts.get(cls, 0) + 1
                continue
            dur = t1 - t0
            what = a["reason"] or a["state"].lower()
            title = (f"job {a['job']} attempt {a['number']} · {host} slot {slot} · "
                     f"{fmt_seconds(dur)} · {what}")
            bars.append(Bar(round(x, 2), round(max(w, MIN_BAR_PX), 2), y + 2, BAR_H, cls,
                            title, a["job"], a["number"]))
        for b, counts in sorted(buckets.items()):
            bars.extend(_stack(b, counts, y, start, scale))
    height = AXIS_H + len(keys) * LANE_H + 4
    drawn = [{"x": round(min(max((m["ts"] - start) * scale, 0.0), PLOT_W), 2),
              "cls": m["kind"], "title": f"{m['host']} {m['what']} at "
              f"{fmt_seconds(m['ts'] - start)}"} for m in marks]
    return {"lanes": lanes, "bars": bars, "marks": drawn, "width": LABEL_W + PLOT_W + 10,
            "height": height,
            "plot_x": LABEL_W, "plot_w": PLOT_W, "host_label_w": HOST_LABEL_W,
            "ticks": _anchored(_ticks(span_s, PLOT_W), -LABEL_W, PLOT_W + 10),
            "aggregated_lanes": aggregated,
            "legend": OUTCOMES, "bucket_px": BUCKET_PX}


def _stack(bucket: int, counts: dict[str, int], y: float, start: float,
           scale: float) -> list[Bar]:
    total = sum(counts.values())
    t0 = start + bucket * BUCKET_PX / scale
    parts = ", ".join(f"{counts[c]} {OUTCOMES[c][0]}" for c in OUTCOMES if c in counts)
    title = f"{total} short attempts from +{fmt_seconds(t0 - start)}: {parts}"
    out, top = [], y + 2
    for cls in OUTCOMES:
        if cls in counts:
            h = BAR_H * counts[cls] / total
            out.append(Bar(bucket * BUCKET_PX, BUCKET_PX, round(top, 2), round(h, 2), cls, title))
            top += h
    return out


STRAGGLERS = "stragglers ›"


def histogram(durations: Sequence[float], straggler_at: float | None,
              bins: int = 40) -> dict[str, Any] | None:
    """Bins of the runtimes (sorted), and which bins hold stragglers."""
    if not durations:
        return None
    width, height, pad = 1100, 180, 36
    hi = max(durations[-1], 1e-6)
    step = hi / bins
    counts = [0] * bins
    for d in durations:
        counts[min(int(d / step), bins - 1)] += 1
    peak = max(counts)
    bw = (width - pad) / bins
    rects = []
    for i, c in enumerate(counts):
        h = (height - 30) * c / peak
        lo = i * step
        rects.append({"x": round(pad + i * bw, 2), "w": round(bw - 1, 2),
                      "y": round(height - 20 - h, 2), "h": round(h, 2), "count": c,
                      "slow": straggler_at is not None and lo >= straggler_at,
                      "title": f"{fmt_seconds(lo)} – {fmt_seconds(lo + step)}: {c} attempts"})
    line = line_label = None
    if straggler_at is not None and straggler_at <= hi:
        line = round(pad + straggler_at / step * bw, 2)
        # "stragglers ›" right of the line, or left of it when it would cross the edge
        fits = line + 4 + label_width(STRAGGLERS) <= width
        line_label = {"x": line + 4 if fits else line - 4, "anchor": "start" if fits else "end"}
    ticks = [(round(pad + x * (width - pad), 2), label) for x, label in _ticks(hi, 1.0, 6)]
    return {"rects": rects, "width": width, "height": height, "line": line, "peak": peak,
            "line_label": line_label, "ticks": _anchored(ticks, 0, width), "pad": pad}
