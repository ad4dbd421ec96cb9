"""Per-animal dot plots for the study report, written directly as inline SVG.

A report plots every measure of every assay and region (often 40 or more plots); drawn with
matplotlib, their layout and PNG encoding made the report the slowest serial step of a
parallel run (figures in ``benchmarks/RESULTS.md``). The plot itself is simple — points, a
mean ± SEM bar, a linear y axis — so it is written as SVG: cheap, sharp at any zoom,
searchable text, and each point names its animal and value when the pointer rests on it.
``tests/test_dotplot.py`` checks that every animal is drawn once at its value and that the
mean and SEM are right.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["dot_plot_svg", "nice_ticks"]

# Okabe–Ito: distinguishable with the common colour-vision deficiencies.
COLOURS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442"]

_PANEL_W_PER_GROUP = 62
_PANEL_H = 170
_RIGHT, _TOP, _BOTTOM, _GAP = 12, 40, 58, 14


def nice_ticks(lo: float, hi: float, n: int = 5) -> np.ndarray:
    """Return round tick values (steps of 1, 2, 2.5 or 5 × 10^k) covering ``[lo, hi]``.

    Parameters
    ----------
    lo, hi : float
        The range.
    n : int
        About how many ticks.

    Returns
    -------
    numpy.ndarray
        The tick values, ascending.
    """
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return np.array([0.0, 1.0])
    if hi <= lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(1, n - 1)
    mag = 10.0 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step) * step
    stop = math.ceil(hi / step) * step
    count = round((stop - start) / step) + 1
    return start + step * np.arange(count)


def _num(v: float) -> str:
    return f"{v:.4g}"


def _tick_labels(ticks: np.ndarray) -> list[str]:
    """Tick labels with as many decimals as the step needs, thousands separated."""
    step = float(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    if max(abs(ticks[0]), abs(ticks[-1])) >= 1e7 or step < 1e-4:
        return [f"{t:.3g}" for t in ticks]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if not math.isclose(round(step, decimals), step, rel_tol=1e-9):
        decimals += 1  # a step of 2.5 × 10^k
    return [f"{t:,.{decimals}f}" for t in ticks]


def dot_plot_svg(df: pd.DataFrame, measure: str, groups: Sequence[str],
                 levels: Sequence[str], title: str = "") -> str:
    """SVG of per-animal values by group: one panel per level, points and mean ± SEM.

    Parameters
    ----------
    df : DataFrame
        One row per animal and level, with columns ``animal``, ``group``, ``level`` and
        ``measure``.
    measure : str
        Column to plot (the y axis label).
    groups : sequence of str
        Groups in display order (x axis of each panel).
    levels : sequence of str
        Spinal levels, one panel each; the panels share the y axis.
    title : str
        Title above the panels.

    Returns
    -------
    str
        A standalone ``<svg>`` element. The SEM is the sample SD / √n (no bar for n = 1).
    """
    levels = list(levels) or [""]
    groups = list(groups)
    values = df[measure].to_numpy(float) if len(df) else np.array([])
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    ticks = nice_ticks(min(lo, 0.0) if lo >= 0 and lo < 0.25 * hi else lo, hi)
    y0, y1 = float(ticks[0]), float(ticks[-1])
    panel_w = _PANEL_W_PER_GROUP * max(2, len(groups))
    labels = _tick_labels(ticks)
    left = 30 + int(6.5 * max(len(label) for label in labels))  # y label + widest tick
    natural = left + len(levels) * panel_w + (len(levels) - 1) * _GAP + _RIGHT
    width = max(natural, int(6.6 * len(title)) + 20)
    shift = (width - natural) // 2  # a long title widens the picture; panels stay centred
    height = _TOP + _PANEL_H + _BOTTOM

    def y_px(v: float) -> float:
        return _TOP + _PANEL_H * (1 - (v - y0) / (y1 - y0))

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
           f"viewBox='0 0 {width} {height}' font-family='sans-serif' font-size='11' "
           f"role='img' aria-label='{html.escape(title or measure)}'>",
           f"<rect width='{width}' height='{height}' fill='white'/>",
           f"<g transform='translate({shift} 0)'>"]
    if title:
        out.append(f"<text x='{natural / 2:.0f}' y='14' text-anchor='middle' "
                   f"font-size='12'>{html.escape(title)}</text>")
    for t, label in zip(ticks, labels):
        y = y_px(float(t))
        out.append(f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end' "
                   f"data-value='{float(t)!r}'>{label}</text>")
    yl = _TOP + _PANEL_H / 2
    # long column names shrink to the panel height rather than run off the picture
    size = min(11.0, (_PANEL_H + 30) / (0.6 * max(1, len(measure))))
    out.append(f"<text x='12' y='{yl:.0f}' font-size='{size:.1f}' text-anchor='middle' "
               f"transform='rotate(-90 12 {yl:.0f})'>{html.escape(measure)}</text>")
    for k, level in enumerate(levels):
        x0 = left + k * (panel_w + _GAP)
        out.append(f"<g class='panel' data-level='{html.escape(str(level))}'>")
        out.append(f"<text x='{x0 + panel_w / 2:.0f}' y='{_TOP - 8}' text-anchor='middle'>"
                   f"{html.escape(str(level))}</text>")
        for t in ticks:
            y = y_px(float(t))
            out.append(f"<line x1='{x0}' x2='{x0 + panel_w}' y1='{y:.1f}' y2='{y:.1f}' "
                       "stroke='#e6e6e6'/>")
        out.append(f"<line x1='{x0}' x2='{x0}' y1='{_TOP}' y2='{_TOP + _PANEL_H}' "
                   "stroke='#444'/>")
        sub = df[df["level"] == level] if "level" in df else df
        for i, g in enumerate(groups):
            xc = x0 + (i + 0.5) * panel_w / len(groups) if groups else x0
            out.append(f"<text x='{xc:.1f}' y='{_TOP + _PANEL_H + 14}' text-anchor='end' "
                       f"transform='rotate(-30 {xc:.1f} {_TOP + _PANEL_H + 14})'>"
                       f"{html.escape(str(g))}</text>")
            rows = sub[sub["group"] == g]
            v = rows[measure].to_numpy(float)
            keep = np.isfinite(v)
            v, animals = v[keep], rows["animal"].astype(str).to_numpy()[keep]
            if not v.size:
                continue
            colour = COLOURS[i % len(COLOURS)]
            spread = np.linspace(-9, 9, v.size) if v.size > 1 else np.zeros(1)
            for dx, val, animal in zip(spread, v, animals):
                out.append(f"<circle cx='{xc - 8 + dx:.1f}' cy='{y_px(val):.2f}' r='3.5' "
                           f"fill='{colour}' fill-opacity='0.85' stroke='white' "
                           f"stroke-width='0.5' data-value='{val!r}'><title>"
                           f"{html.escape(animal)}: {_num(val)}</title></circle>")
            mean = float(v.mean())
            sem = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else 0.0
            xb = xc + 16
            ym = y_px(mean)
            out.append(f"<g class='mean' data-mean='{mean!r}' data-sem='{sem!r}' "
                       "stroke='black' stroke-width='1.3'>"
                       f"<title>{html.escape(str(g))}: mean {_num(mean)} ± SEM {_num(sem)}, "
                       f"n = {v.size}</title>"
                       f"<line x1='{xb - 7:.1f}' x2='{xb + 7:.1f}' y1='{ym:.2f}' "
                       f"y2='{ym:.2f}'/>")
            if sem > 0:
                ya, yb = y_px(mean - sem), y_px(mean + sem)
                out.append(f"<line x1='{xb:.1f}' x2='{xb:.1f}' y1='{ya:.2f}' y2='{yb:.2f}'/>"
                           f"<line x1='{xb - 4:.1f}' x2='{xb + 4:.1f}' y1='{ya:.2f}' "
                           f"y2='{ya:.2f}'/><line x1='{xb - 4:.1f}' x2='{xb + 4:.1f}' "
                           f"y1='{yb:.2f}' y2='{yb:.2f}'/>")
            out.append("</g>")
        out.append("</g>")
    out.append("</g></svg>")
    return "".join(out)
