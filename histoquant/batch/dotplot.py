"""Per-animal dot plots for the study report, written directly as inline SVG.

A report plots every measure of every assay and region (often 40 or more plots); drawn with
matplotlib, their layout and PNG encoding made the report the slowest serial step of a
parallel run (figures in ``benchmarks/RESULTS.md``). The plot itself is simple — dots, a
mean ± SEM bar or a median and interquartile box, a linear y axis — so it is written as SVG:
cheap, sharp at any zoom, searchable text; each dot names its animal and value when the
pointer rests on it, and can link to the animal's QC pictures. The dots of one group spread
sideways only as far as needed not to hide each other (:func:`swarm_offsets`, deterministic).
``tests/test_dotplot.py`` checks that every animal is drawn once at its value and that the
mean and SEM are right.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["dot_plot_svg", "group_summary", "nice_ticks", "swarm_offsets"]

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


def group_summary(values: Sequence[float], summary: str = "mean_sem") -> dict[str, float]:
    """Return a group's centre and spread as the report draws and tabulates them.

    Parameters
    ----------
    values : sequence of float
        One value per animal; NaN values are dropped.
    summary : {"mean_sem", "median_iqr"}
        ``mean_sem``: the mean and the standard error of the mean (sample SD / √n, 0 for one
        animal). ``median_iqr``: the median and the first and third quartiles (linear
        interpolation between order statistics, as :func:`numpy.percentile` and R's default).

    Returns
    -------
    dict
        ``n``, ``centre``, ``low`` and ``high`` (the bar's ends), and ``mean`` and ``sem``
        or ``median``, ``q1`` and ``q3``; NaN where there is no value.
    """
    v = np.asarray([x for x in values if pd.notna(x)], dtype=float)
    n = int(v.size)
    if summary == "median_iqr":
        if not n:
            return {"n": 0, "centre": np.nan, "low": np.nan, "high": np.nan, "median": np.nan,
                    "q1": np.nan, "q3": np.nan}
        q1, med, q3 = (float(q) for q in np.percentile(v, [25, 50, 75]))
        return {"n": n, "centre": med, "low": q1, "high": q3, "median": med, "q1": q1,
                "q3": q3}
    if summary != "mean_sem":
        raise ValueError(f"summary must be 'mean_sem' or 'median_iqr', not {summary!r}")
    if not n:
        return {"n": 0, "centre": np.nan, "low": np.nan, "high": np.nan, "mean": np.nan,
                "sem": np.nan}
    mean = float(v.mean())
    sem = float(v.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    return {"n": n, "centre": mean, "low": mean - sem, "high": mean + sem, "mean": mean,
            "sem": sem}


def swarm_offsets(y_px: Sequence[float], radius: float, max_offset: float) -> np.ndarray:
    """Return horizontal offsets that keep dots of nearby values from hiding each other.

    A deterministic beeswarm: the dots are placed in order of value, each at the offset
    nearest the centre line (0, +d, −d, +2d, …, d = radius) where it overlaps no dot placed
    before it. The same values always give the same picture.

    Parameters
    ----------
    y_px : sequence of float
        The dots' vertical positions, in pixels.
    radius : float
        Dot radius, in pixels.
    max_offset : float
        The farthest a dot may move from the centre line (it then overlaps).

    Returns
    -------
    numpy.ndarray
        One offset per dot, in the order given.
    """
    y = np.asarray(y_px, dtype=float)
    out = np.zeros(y.size)
    placed: list[tuple[float, float]] = []
    steps = [0.0]
    k = 1
    while k * radius <= max_offset:
        steps += [k * radius, -k * radius]
        k += 1
    for i in np.argsort(y, kind="stable"):
        for dx in steps:
            if all((dx - px) ** 2 + (y[i] - py) ** 2 >= (2 * radius - 0.5) ** 2
                   for px, py in placed):
                break
        else:
            dx = steps[len(placed) % len(steps)]
        out[i] = dx
        placed.append((dx, y[i]))
    return out


def _wrap(text: str, width: int) -> list[str]:
    """Split a label longer than ``width`` into two lines, at the space nearest its middle."""
    spaces = [i for i, ch in enumerate(text) if ch == " "]
    if len(text) <= width or not spaces:
        return [text]
    cut = min(spaces, key=lambda i: abs(i - len(text) / 2))
    return [text[:cut], text[cut + 1:]]


def dot_plot_svg(df: pd.DataFrame, measure: str, groups: Sequence[str],
                 levels: Sequence[str], title: str = "", *, ylabel: str | None = None,
                 summary: str = "mean_sem", links: Mapping[str, str] | None = None,
                 show_n: bool = False, panel_height: int = _PANEL_H,
                 colours: Mapping[str, str] | None = None) -> str:
    """SVG of per-animal values by group: one panel per level, dots and mean ± SEM.

    Parameters
    ----------
    df : DataFrame
        One row per animal and level, with columns ``animal``, ``group``, ``level`` and
        ``measure``.
    measure : str
        Column to plot.
    groups : sequence of str
        Groups in display order (x axis of each panel).
    levels : sequence of str
        Spinal levels, one panel each; the panels share the y axis. A level named ``""``
        has no panel heading.
    title : str
        Title above the panels.
    ylabel : str, optional
        The y axis label (default ``measure``); a long one is set on two lines.
    summary : {"mean_sem", "median_iqr"}
        The bar beside each group's dots (:func:`group_summary`): mean ± SEM, or the median
        with a box from the first to the third quartile.
    links : mapping of str to str, optional
        Animal → link target (``#animal-R01``): each dot becomes a link.
    show_n : bool
        Write ``n = …`` (animals with a value) under each group.
    panel_height : int
        Height of the plotting area, in pixels.
    colours : mapping of str to str, optional
        Group → colour, so that a group keeps its colour in plots where some groups are
        missing; default: :data:`COLOURS` in the order of ``groups``.

    Returns
    -------
    str
        A standalone ``<svg>`` element. Each dot carries ``data-animal`` and ``data-value``;
        each bar ``data-summary`` and its numbers (``data-mean``/``data-sem`` or
        ``data-median``/``data-q1``/``data-q3``).
    """
    levels = list(levels) or [""]
    groups = list(groups)
    ylabel = measure if ylabel is None else ylabel
    values = df[measure].to_numpy(float) if len(df) else np.array([])
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    ticks = nice_ticks(min(lo, 0.0) if lo >= 0 and lo < 0.25 * hi else lo, hi)
    y0, y1 = float(ticks[0]), float(ticks[-1])
    panel_w = _PANEL_W_PER_GROUP * max(2, len(groups))
    labels = _tick_labels(ticks)
    ylines = _wrap(ylabel, 26)
    left = 18 + 13 * len(ylines) + int(6.5 * max(len(label) for label in labels))
    natural = left + len(levels) * panel_w + (len(levels) - 1) * _GAP + _RIGHT
    width = max(natural, int(6.6 * len(title)) + 20)
    shift = (width - natural) // 2  # a long title widens the picture; panels stay centred
    top = _TOP if (title or any(levels)) else 14
    # names that fit under their group are written level; longer ones slant
    level_names = all(6.5 * len(str(g)) <= panel_w / max(1, len(groups)) - 4 for g in groups)
    bottom = (24 if level_names else _BOTTOM) + (14 if show_n else 0)
    height = top + panel_height + bottom

    def y_px(v: float) -> float:
        return top + panel_height * (1 - (v - y0) / (y1 - y0))

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
           f"viewBox='0 0 {width} {height}' font-family='sans-serif' font-size='11' "
           f"role='img' aria-label='{html.escape(title or ylabel)}'>",
           f"<rect width='{width}' height='{height}' fill='white'/>",
           f"<g transform='translate({shift} 0)'>"]
    if title:
        out.append(f"<text x='{natural / 2:.0f}' y='14' text-anchor='middle' "
                   f"font-size='12'>{html.escape(title)}</text>")
    for t, label in zip(ticks, labels):
        y = y_px(float(t))
        out.append(f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end' "
                   f"data-value='{float(t)!r}'>{label}</text>")
    yl = top + panel_height / 2
    # long labels shrink to the panel height rather than run off the picture
    size = min(11.0, (panel_height + 30) / (0.6 * max(1, max(len(s) for s in ylines))))
    for j, line in enumerate(ylines):
        x = 12 + j * (size + 2)
        out.append(f"<text x='{x:.0f}' y='{yl:.0f}' font-size='{size:.1f}' "
                   f"text-anchor='middle' class='ylabel' transform='rotate(-90 {x:.0f} "
                   f"{yl:.0f})'>{html.escape(line)}</text>")
    for k, level in enumerate(levels):
        x0 = left + k * (panel_w + _GAP)
        out.append(f"<g class='panel' data-level='{html.escape(str(level))}'>")
        if level:
            out.append(f"<text x='{x0 + panel_w / 2:.0f}' y='{top - 8}' "
                       f"text-anchor='middle'>{html.escape(str(level))}</text>")
        for t in ticks:
            y = y_px(float(t))
            out.append(f"<line x1='{x0}' x2='{x0 + panel_w}' y1='{y:.1f}' y2='{y:.1f}' "
                       "stroke='#e6e6e6'/>")
        out.append(f"<line x1='{x0}' x2='{x0}' y1='{top}' y2='{top + panel_height}' "
                   "stroke='#444'/>")
        sub = df[df["level"] == level] if "level" in df and level else df
        for i, g in enumerate(groups):
            xc = x0 + (i + 0.5) * panel_w / len(groups) if groups else x0
            base = top + panel_height + 14
            rows = sub[sub["group"] == g]
            v = rows[measure].to_numpy(float)
            keep = np.isfinite(v)
            v, animals = v[keep], rows["animal"].astype(str).to_numpy()[keep]
            if level_names:
                out.append(f"<text x='{xc:.1f}' y='{base + 2}' text-anchor='middle' "
                           f"class='group'>{html.escape(str(g))}</text>")
            else:
                out.append(f"<text x='{xc:.1f}' y='{base}' text-anchor='end' class='group' "
                           f"transform='rotate(-30 {xc:.1f} {base})'>"
                           f"{html.escape(str(g))}</text>")
            if show_n:
                out.append(f"<text x='{xc:.1f}' y='{height - 6}' text-anchor='middle' "
                           f"class='n' fill='#555'>n = {v.size}</text>")
            if not v.size:
                continue
            colour = (colours or {}).get(str(g), COLOURS[i % len(COLOURS)])
            ys = np.array([y_px(val) for val in v])
            spread = swarm_offsets(ys, 3.6, 14)
            for dx, val, yy, animal in zip(spread, v, ys, animals):
                dot = (f"<circle cx='{xc - 8 + dx:.1f}' cy='{yy:.2f}' r='3.6' "
                       f"fill='{colour}' fill-opacity='0.85' stroke='white' "
                       f"stroke-width='0.5' data-animal='{html.escape(animal)}' "
                       f"data-value='{float(val)!r}'><title>{html.escape(animal)}: {_num(val)}"
                       "</title></circle>")
                target = (links or {}).get(animal)
                out.append(f"<a href='{html.escape(target)}' class='dot'>{dot}</a>"
                           if target else dot)
            out.append(_summary_bar(v, summary, str(g), xc + 16, y_px))
        out.append("</g>")
    out.append("</g></svg>")
    return "".join(out)


def _summary_bar(v: np.ndarray, summary: str, group: str, xb: float, y_px: Any) -> str:
    """Draw one group's mean ± SEM bar, or its median with the interquartile box."""
    s = group_summary(v, summary)
    ym = y_px(s["centre"])
    if summary == "median_iqr":
        attrs = (f"data-summary='median_iqr' data-median='{s['median']!r}' "
                 f"data-q1='{s['q1']!r}' data-q3='{s['q3']!r}'")
        tip = (f"{html.escape(group)}: median {_num(s['median'])} [IQR {_num(s['q1'])}–"
               f"{_num(s['q3'])}], n = {s['n']}")
    else:
        attrs = (f"data-summary='mean_sem' data-mean='{s['mean']!r}' "
                 f"data-sem='{s['sem']!r}'")
        tip = f"{html.escape(group)}: mean {_num(s['mean'])} ± SEM {_num(s['sem'])}, " \
              f"n = {s['n']}"
    out = [f"<g class='mean' {attrs} stroke='black' stroke-width='1.3'><title>{tip}</title>"
           f"<line x1='{xb - 7:.1f}' x2='{xb + 7:.1f}' y1='{ym:.2f}' y2='{ym:.2f}'/>"]
    ya, yb = y_px(s["low"]), y_px(s["high"])
    if summary == "median_iqr":
        if s["high"] > s["low"]:
            out.append(f"<rect x='{xb - 5:.1f}' y='{yb:.2f}' width='10' "
                       f"height='{ya - yb:.2f}' fill='none' stroke-width='1'/>")
    elif s["sem"] > 0:
        out.append(f"<line x1='{xb:.1f}' x2='{xb:.1f}' y1='{ya:.2f}' y2='{yb:.2f}'/>"
                   f"<line x1='{xb - 4:.1f}' x2='{xb + 4:.1f}' y1='{ya:.2f}' "
                   f"y2='{ya:.2f}'/><line x1='{xb - 4:.1f}' x2='{xb + 4:.1f}' "
                   f"y1='{yb:.2f}' y2='{yb:.2f}'/>")
    out.append("</g>")
    return "".join(out)
