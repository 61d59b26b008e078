"""Charts drawn on the server as inline SVG: no script, nothing fetched, readable by screen readers
(each chart has a title and the page shows the same numbers in a table), a native tooltip per bar."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

__all__ = ["Series", "stacked_bars", "PALETTE"]

# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_W, _H, _LEFT, _BOTTOM, _TOP = 720, 220, 56, 24, 8


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]


def _nice(top: float) -> float:
    """A round axis maximum at or above `top`."""
    if top <= 0:
        return 1.0
    step = 10 ** (len(str(int(top))) - 1)
    for m in (1, 2, 2.5, 5, 10):
        if m * step >= top:
            return m * step
    return 10 * step


def _short(value: float, unit: str) -> str:
    if unit == "$":
        return f"${value:,.2f}" if value < 1000 else f"${value / 1000:,.1f}k"
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def stacked_bars(title: str, days: Sequence[int], series: Sequence[Series], unit: str = "") -> str:
    """A bar per day (UTC starts), its series stacked in order; at most 8 series (more: 'other')."""
    if len(series) > len(PALETTE):
        rest = series[len(PALETTE) - 1 :]
        other = Series("other", [sum(s.values[i] for s in rest) for i in range(len(days))])
        series = [*series[: len(PALETTE) - 1], other]
    totals = [sum(s.values[i] for s in series) for i in range(len(days))]
    top = _nice(max(totals, default=0))
    plot_w, plot_h = _W - _LEFT - 8, _H - _BOTTOM - _TOP
    slot = plot_w / max(len(days), 1)
    bar = max(min(slot * 0.7, 48), 2)
    anchor = "chart-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    parts = [f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" aria-labelledby="{anchor}">',
             f'<title id="{anchor}">{escape(title)}</title>']  # fmt: skip
    for frac in (0, 0.5, 1):
        y = _TOP + plot_h * (1 - frac)
        parts.append(f'<line x1="{_LEFT}" x2="{_W - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_short(top * frac, unit)}</text>')
    label_every = max(1, len(days) // 10)
    for i, day in enumerate(days):
        x = _LEFT + i * slot + (slot - bar) / 2
        y = _TOP + plot_h
        date = time.strftime("%m-%d", time.gmtime(day))
        for color, s in zip(PALETTE, series, strict=False):
            value = s.values[i]
            if value <= 0:
                continue
            h = plot_h * value / top
            y -= h
            tip = f"{date} · {s.name}: {_short(value, unit)}"
            parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{color}">'
                         f"<title>{escape(tip)}</title></rect>")  # fmt: skip
        if i % label_every == 0:
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{_H - 6}" text-anchor="middle">{date}</text>')
    parts.append("</svg>")
    legend = "".join(f'<li><span class="swatch s{i}"></span>{escape(s.name)}</li>' for i, s in enumerate(series))
    return "".join(parts) + f'<ul class="legend">{legend}</ul>'
