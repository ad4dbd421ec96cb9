"""Bland–Altman and identity plots as inline SVG, in the style of the study report's dot plots.

Drawn directly as SVG like :mod:`histoquant.batch.dotplot` (same colours, round ticks, fonts):
sharp at any zoom, and each point names its section and values when the pointer rests on it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

from ..batch.dotplot import COLOURS, nice_ticks
from ..batch.dotplot import _tick_labels as tick_labels  # the report's own tick format
from .agreement import BlandAltman

__all__ = ["bland_altman_svg", "identity_svg"]

_W, _H = 450, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 62, 92, 34, 46


def _frame(title: str, xlabel: str, ylabel: str, xt: np.ndarray, yt: np.ndarray,
           x_px, y_px) -> list[str]:  # noqa: ANN001 - local mappings
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{_W}' height='{_H}' "
           f"viewBox='0 0 {_W} {_H}' font-family='sans-serif' font-size='11' role='img' "
           f"aria-label='{html.escape(title)}'>",
           f"<rect width='{_W}' height='{_H}' fill='white'/>",
           f"<text x='{(_LEFT + _W - _RIGHT) / 2:.0f}' y='16' text-anchor='middle' "
           f"font-size='12'>{html.escape(title)}</text>"]
    x0, x1, y0, y1 = _LEFT, _W - _RIGHT, _TOP, _H - _BOTTOM
    for t, lab in zip(yt, tick_labels(yt)):
        y = y_px(float(t))
        out.append(f"<line x1='{x0}' x2='{x1}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e6e6e6'/>"
                   f"<text x='{x0 - 6}' y='{y + 4:.1f}' text-anchor='end'>{lab}</text>")
    for t, lab in zip(xt, tick_labels(xt)):
        x = x_px(float(t))
        out.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{y0}' y2='{y1}' stroke='#f0f0f0'/>"
                   f"<text x='{x:.1f}' y='{y1 + 15}' text-anchor='middle'>{lab}</text>")
    out.append(f"<line x1='{x0}' x2='{x0}' y1='{y0}' y2='{y1}' stroke='#444'/>"
               f"<line x1='{x0}' x2='{x1}' y1='{y1}' y2='{y1}' stroke='#444'/>")
    out.append(f"<text x='{(x0 + x1) / 2:.0f}' y='{_H - 8}' text-anchor='middle'>"
               f"{html.escape(xlabel)}</text>")
    yl = (y0 + y1) / 2
    out.append(f"<text x='13' y='{yl:.0f}' text-anchor='middle' "
               f"transform='rotate(-90 13 {yl:.0f})'>{html.escape(ylabel)}</text>")
    return out


def _scale(lo: float, hi: float, a: float, b: float):  # noqa: ANN202
    return lambda v: a + (b - a) * (v - lo) / (hi - lo)


def _points(xs: np.ndarray, ys: np.ndarray, names: Sequence[str], manual: np.ndarray,
            auto: np.ndarray, x_px, y_px) -> list[str]:  # noqa: ANN001
    return [f"<circle cx='{x_px(x):.2f}' cy='{y_px(y):.2f}' r='3.8' fill='{COLOURS[0]}' "
            f"fill-opacity='0.8' stroke='white' stroke-width='0.5' data-x='{x!r}' "
            f"data-y='{y!r}'><title>{html.escape(str(n))}: manual {m:.4g}, program {a:.4g}"
            f"</title></circle>"
            for x, y, n, m, a in zip(xs, ys, names, manual, auto)]


def bland_altman_svg(manual: Sequence[float], auto: Sequence[float], names: Sequence[str],
                     stats: BlandAltman, measure: str) -> str:
    """SVG of a Bland–Altman plot: difference (program − manual) against the mean of the two.

    Parameters
    ----------
    manual, auto : sequence of float
        Paired values.
    names : sequence of str
        A name per pair (code or image), shown on hover.
    stats : BlandAltman
        The bias and limits to draw (:func:`~histoquant.validate.agreement.bland_altman`).
    measure : str
        The measure (title and axis labels).

    Returns
    -------
    str
        A standalone ``<svg>``: points, the bias (solid) and the 95 % limits of agreement
        (dashed) with their confidence intervals shaded, and zero (grey).
    """
    m, a = np.asarray(manual, float), np.asarray(auto, float)
    mean, diff = (m + a) / 2, a - m
    xt = nice_ticks(float(mean.min()), float(mean.max()))
    ys = [*diff, 0.0, stats.loa_low_ci_low, stats.loa_high_ci_high]
    yt = nice_ticks(float(np.min(ys)), float(np.max(ys)))
    x_px = _scale(float(xt[0]), float(xt[-1]), _LEFT, _W - _RIGHT)
    y_px = _scale(float(yt[0]), float(yt[-1]), _H - _BOTTOM, _TOP)
    out = _frame(f"Bland–Altman · {measure}", f"mean of program and manual ({measure})",
                 "program − manual", xt, yt, x_px, y_px)
    x0, x1 = _LEFT, _W - _RIGHT
    for lo, hi in ((stats.bias_ci_low, stats.bias_ci_high),
                   (stats.loa_low_ci_low, stats.loa_low_ci_high),
                   (stats.loa_high_ci_low, stats.loa_high_ci_high)):
        if hi > lo:
            out.append(f"<rect class='ci' x='{x0}' width='{x1 - x0}' y='{y_px(hi):.2f}' "
                       f"height='{y_px(lo) - y_px(hi):.2f}' fill='{COLOURS[1]}' "
                       "fill-opacity='0.10'/>")
    out.append(f"<line x1='{x0}' x2='{x1}' y1='{y_px(0.0):.2f}' y2='{y_px(0.0):.2f}' "
               "stroke='#999' stroke-width='1'/>")
    for cls, v, dash, lab in (("bias", stats.bias, "", "bias"),
                              ("loa", stats.loa_low, " stroke-dasharray='5 4'", "−1.96 SD"),
                              ("loa", stats.loa_high, " stroke-dasharray='5 4'", "+1.96 SD")):
        y = y_px(v)
        out.append(f"<g class='{cls}' data-value='{v!r}'><line x1='{x0}' x2='{x1}' "
                   f"y1='{y:.2f}' y2='{y:.2f}' stroke='{COLOURS[1]}' stroke-width='1.4'"
                   f"{dash}/><text x='{x1 + 4}' y='{y + 4:.1f}' font-size='10' "
                   f"fill='{COLOURS[1]}'>{lab} {v:.3g}</text></g>")
    out.extend(_points(mean, diff, names, m, a, x_px, y_px))
    out.append("</svg>")
    return "".join(out)


def identity_svg(manual: Sequence[float], auto: Sequence[float], names: Sequence[str],
                 measure: str) -> str:
    """SVG of program against manual values with the line of identity.

    Parameters
    ----------
    manual, auto : sequence of float
        Paired values.
    names : sequence of str
        A name per pair, shown on hover.
    measure : str
        The measure (title and axis labels).

    Returns
    -------
    str
        A standalone ``<svg>`` with equal axes.
    """
    m, a = np.asarray(manual, float), np.asarray(auto, float)
    lo, hi = float(min(m.min(), a.min())), float(max(m.max(), a.max()))
    t = nice_ticks(min(lo, 0.0) if lo >= 0 and lo < 0.25 * hi else lo, hi)
    x_px = _scale(float(t[0]), float(t[-1]), _LEFT, _W - _RIGHT)
    y_px = _scale(float(t[0]), float(t[-1]), _H - _BOTTOM, _TOP)
    out = _frame(f"program vs manual · {measure}", f"manual ({measure})",
                 f"program ({measure})", t, t, x_px, y_px)
    out.append(f"<line class='identity' x1='{x_px(t[0]):.2f}' y1='{y_px(t[0]):.2f}' "
               f"x2='{x_px(t[-1]):.2f}' y2='{y_px(t[-1]):.2f}' stroke='#999' "
               "stroke-dasharray='3 3'/>")
    out.extend(_points(m, a, names, m, a, x_px, y_px))
    out.append("</svg>")
    return "".join(out)
