"""The report's dot plots: every animal drawn once, at its value, with the right mean ± SEM."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from histoquant.batch.dotplot import dot_plot_svg, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"


@pytest.mark.parametrize(("lo", "hi"), [(0, 1), (0.013, 0.0171), (-3.2, 47.0), (5, 5),
                                         (120.0, 9_870.0)])
def test_nice_ticks_cover_the_range_in_round_steps(lo, hi):
    t = nice_ticks(lo, hi)
    assert t[0] <= lo and t[-1] >= hi and 2 <= len(t) <= 11
    step = np.diff(t)
    assert np.allclose(step, step[0])
    mantissa = step[0] / 10 ** np.floor(np.log10(step[0]))
    assert any(np.isclose(mantissa, m) for m in (1, 2, 2.5, 5, 10))


def _frame():
    rng = np.random.default_rng(3)
    rows = []
    for level in ("L3", "L4"):
        for g, mu, n in (("vehicle", 40.0, 4), ("MSC", 70.0, 3)):
            for i in range(n):
                rows.append({"animal": f"{g[0]}{i}", "group": g, "level": level,
                             "n_mn": mu + rng.normal(0, 8)})
    rows.append({"animal": "x9", "group": "MSC", "level": "L4", "n_mn": np.nan})
    return pd.DataFrame(rows)


def test_points_and_means_are_where_the_values_are():
    df = _frame()
    root = ET.fromstring(dot_plot_svg(df, "n_mn", ["vehicle", "MSC"], ["L3", "L4"],
                                      title="t"))
    panels = root.findall(f".//{SVG}g[@class='panel']")
    assert [p.get("data-level") for p in panels] == ["L3", "L4"]
    # the y axis is linear: recover it from two tick labels and check every point against it
    ticks = [(float(t.get("data-value")), float(t.get("y")) - 4)
             for t in root.findall(f".//{SVG}text") if t.get("data-value")]
    assert all(re.fullmatch(r"-?[\d,]+(\.\d+)?", t.text) for t in root.findall(f".//{SVG}text")
               if t.get("data-value"))
    (v0, y0), (v1, y1) = ticks[0], ticks[-1]

    def to_value(y):
        return v0 + (float(y) - y0) * (v1 - v0) / (y1 - y0)

    for panel, level in zip(panels, ["L3", "L4"]):
        circles = panel.findall(f"{SVG}circle")
        truth = df[(df["level"] == level) & df["n_mn"].notna()]
        assert len(circles) == len(truth)  # NaN animal not drawn
        drawn = sorted(to_value(c.get("cy")) for c in circles)
        np.testing.assert_allclose(drawn, sorted(truth["n_mn"]), atol=0.05)
        assert {c.find(f"{SVG}title").text.split(":")[0] for c in circles} == \
            set(truth["animal"])
        for bar, g in zip(panel.findall(f"{SVG}g[@class='mean']"), ["vehicle", "MSC"]):
            v = truth.loc[truth["group"] == g, "n_mn"].to_numpy()
            assert float(bar.get("data-mean")) == pytest.approx(v.mean())
            assert float(bar.get("data-sem")) == pytest.approx(v.std(ddof=1) / np.sqrt(len(v)))
            line = bar.find(f"{SVG}line")
            assert to_value(line.get("y1")) == pytest.approx(v.mean(), abs=0.05)


def test_empty_and_constant_measures_still_draw():
    df = _frame().assign(n_mn=np.nan)
    root = ET.fromstring(dot_plot_svg(df, "n_mn", ["vehicle", "MSC"], ["L3"]))
    assert not root.findall(f".//{SVG}circle")
    df = _frame().assign(n_mn=5.0)
    root = ET.fromstring(dot_plot_svg(df, "n_mn", ["vehicle", "MSC"], ["L3", "L4"]))
    assert len(root.findall(f".//{SVG}circle")) == len(df)
