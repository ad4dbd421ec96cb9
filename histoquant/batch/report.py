"""The study report: one self-contained HTML file (plots inline SVG, QC thumbnails PNG).

Per assay and measure: a plot of the per-animal values by group (points, mean ± SEM) for each
spinal level, the number of animals per group, and a first look at group differences (Welch's
t-test and the Mann–Whitney U test, two-sided, unadjusted). Then, when the results folder holds
a ``validation.csv`` (``histoquant validate compare``), the agreement with manual counts; then a
QC thumbnail of every image with its flags (failures, saturation, low anatomy score, assay
warnings).
"""

from __future__ import annotations

import base64
import html
import warnings
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd

from .dotplot import dot_plot_svg
from .samples import natural_key
from .tables import StudyTables, default_measures, describe_measure

__all__ = ["build_report", "compare_groups", "validation_section", "with_validation"]

STATS_NOTE = (
    "Group comparisons: Welch's t-test (unequal variances) and the Mann–Whitney U test. "
    "These tests are a first look only: two-sided, unadjusted for the many comparisons on "
    "this page, one value per animal. The study's own statistics (its chosen model, "
    "corrections, covariates) belong in the statistics tool (Prism, R) fed by "
    "animals.csv or the prism/ tables.")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em;
max-width:1200px;color:#222}
h1{font-size:1.6em}h2{border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.5em}table{border-collapse:collapse;margin:.5em 0 1em 0;font-size:.85em}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:right}th{background:#f3f3f3}
td.l,th.l{text-align:left}.note{color:#555;font-size:.9em}.flag{color:#b00020}
.grid{display:flex;flex-wrap:wrap;gap:12px}.card{width:330px;font-size:.8em}
.card img{max-width:320px;border:1px solid #ddd}.bad{border:3px solid #b00020}
figure{margin:.5em 0}.measure{margin-bottom:1.5em}
"""


def _b64_png(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    return html.escape(str(v))


def _table(df: pd.DataFrame, left: Sequence[str] = ()) -> str:
    head = "".join(f"<th class='{'l' if c in left else ''}'>{html.escape(str(c))}</th>"
                   for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        rows.append("<tr>" + "".join(
            f"<td class='{'l' if c in left else ''}'>{_fmt(r[c])}</td>" for c in df.columns)
            + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def compare_groups(values: Mapping[str, Sequence[float]]) -> pd.DataFrame:
    """Pairwise Welch's t-test and Mann–Whitney U (two-sided) between groups.

    Parameters
    ----------
    values : mapping of group → per-animal values
        NaN values are dropped.

    Returns
    -------
    DataFrame
        One row per pair: ``group_a``, ``group_b``, ``n_a``, ``n_b``, ``mean_a``,
        ``mean_b``, ``welch_t``, ``welch_p``, ``mannwhitney_u``, ``mannwhitney_p``; NaN where a
        test needs more animals (t: 2 per group, U: 1 per group) or the data are constant.
    """
    from scipy import stats

    clean = {g: np.asarray([v for v in vs if pd.notna(v)], dtype=float)
             for g, vs in values.items()}
    rows = []
    for a, b in combinations(clean, 2):
        x, y = clean[a], clean[b]
        t = tp = u = up = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if len(x) >= 2 and len(y) >= 2:
                res = stats.ttest_ind(x, y, equal_var=False)
                t, tp = float(res.statistic), float(res.pvalue)
            if len(x) >= 1 and len(y) >= 1:
                res = stats.mannwhitneyu(x, y, alternative="two-sided")
                u, up = float(res.statistic), float(res.pvalue)
        rows.append({"group_a": a, "group_b": b, "n_a": len(x), "n_b": len(y),
                     "mean_a": float(x.mean()) if len(x) else np.nan,
                     "mean_b": float(y.mean()) if len(y) else np.nan,
                     "welch_t": t, "welch_p": tp, "mannwhitney_u": u, "mannwhitney_p": up})
    return pd.DataFrame(rows, columns=["group_a", "group_b", "n_a", "n_b", "mean_a", "mean_b",
                                       "welch_t", "welch_p", "mannwhitney_u", "mannwhitney_p"])


def _group_sizes(df: pd.DataFrame, groups: Sequence[str], levels: Sequence[str]) -> pd.DataFrame:
    rows = []
    for g in groups:
        sub = df[df["group"] == g]
        row: dict[str, Any] = {"group": g, "animals": sub["animal"].nunique()}
        for lv in levels:
            s = sub[sub["level"] == lv]
            row[f"animals {lv}"] = s["animal"].nunique()
            row[f"sections {lv}"] = int(s.drop_duplicates(["animal", "level"])
                                        ["n_sections"].sum()) if len(s) else 0
        rows.append(row)
    return pd.DataFrame(rows)


_VALIDATION_COLUMNS = ["measure", "assay", "region", "n_pairs", "icc", "icc_ci_low",
                       "icc_ci_high", "bias", "loa_low", "loa_high", "mape_pct", "f1"]
_VALIDATION_START, _VALIDATION_END = "<!-- validation -->", "<!-- /validation -->"


def validation_section(validation: pd.DataFrame) -> str:
    """Return the report's section on agreement with manual counts.

    Parameters
    ----------
    validation : pandas.DataFrame
        ``validation.csv`` as ``histoquant validate compare`` writes it.

    Returns
    -------
    str
        An HTML fragment (between comment markers, so that a new comparison replaces it):
        the summary table and a link to ``validation.html``.
    """
    cols = [c for c in _VALIDATION_COLUMNS if c in validation.columns
            and validation[c].notna().any()]
    return (f"{_VALIDATION_START}<h2 id='validation'>Agreement with manual counts</h2>"
            f"{_table(validation[cols], left=['measure', 'assay', 'region'])}"
            "<p class='note'>ICC(2,1), absolute agreement; bias and limits of agreement: "
            "program − manual. Plots and every pair: <a href='validation.html'>"
            f"validation.html</a>.</p>{_VALIDATION_END}")


def with_validation(page: str, validation: pd.DataFrame) -> str:
    """Return a report page with its validation section put in, or replaced.

    Parameters
    ----------
    page : str
        A report from :func:`build_report`.
    validation : pandas.DataFrame
        ``validation.csv``.

    Returns
    -------
    str
        The page, the section placed before the quality control.
    """
    section = validation_section(validation)
    start, end = page.find(_VALIDATION_START), page.find(_VALIDATION_END)
    if start >= 0 and end > start:
        return page[:start] + section + page[end + len(_VALIDATION_END):]
    qc = page.find("<h2 id='qc'>")
    qc = qc if qc >= 0 else page.rfind("</body>")
    return page[:qc] + section + "\n" + page[qc:]


def build_report(tables: StudyTables, units: Sequence[Mapping[str, Any]],
                 thumbnails: Mapping[str, bytes], *, title: str, run_info: Mapping[str, Any],
                 measures: Mapping[str, Sequence[str]] | None = None,
                 notes: Sequence[str] = (),
                 validation: pd.DataFrame | None = None) -> str:
    """Return the HTML report as a string.

    Parameters
    ----------
    tables : StudyTables
        The assembled tables.
    units : sequence of mapping
        One record per image × assay (``image``, ``file``, ``assay``, ``key``, ``flags``,
        ``error``).
    thumbnails : mapping of key → PNG bytes
        QC thumbnails of the finished units.
    title : str
        Heading.
    run_info : mapping
        Shown as a small table (version, date, counts, timings).
    measures : mapping, optional
        Assay → measures to plot (default: all).
    notes : sequence of str
        Things the user should know (skipped files, defaults taken).
    validation : pandas.DataFrame, optional
        ``validation.csv`` of the results folder, shown before the quality control.

    Returns
    -------
    str
        A self-contained HTML page (plots as inline SVG, thumbnails inline).
    """
    measures = measures or {}
    groups = list(tables.groups)
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
           f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    info = pd.DataFrame({"": list(run_info), "value": [str(v) for v in run_info.values()]})
    out.append(_table(info, left=["", "value"]))
    if notes:
        out.append("<h3>Notes</h3><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
                   + "</ul>")
    if len(tables.errors):
        out.append(f"<h2 id='failures' class='flag'>Failures ({len(tables.errors)})</h2>")
        out.append(_table(tables.errors, left=list(tables.errors.columns)))
    animals = tables.animals
    for assay in sorted(set(animals["assay"]) if len(animals) else [], key=natural_key):
        df = animals[animals["assay"] == assay]
        levels = sorted(set(df["level"]), key=natural_key)
        out.append(f"<h2 id='{html.escape(assay)}'>{html.escape(assay)}</h2>")
        out.append("<h3>Animals and sections per group</h3>")
        out.append(_table(_group_sizes(df, groups, levels), left=["group"]))
        cols = list(measures.get(assay) or default_measures(df))
        cols = [c for c in cols if c in df.columns and df[c].notna().any()]
        out.append(f"<p class='note'>{html.escape(STATS_NOTE)}</p>")
        for m in cols:
            out.append(f"<div class='measure'><h3>{html.escape(m)}</h3><p class='note'>"
                       f"One point per animal ({describe_measure(assay, m)}); bar: mean ± SEM.</p>")
            for region in sorted(set(df["region"]), key=natural_key):
                sub = df[df["region"] == region]
                svg = dot_plot_svg(sub, m, [g for g in groups if g in set(sub["group"])],
                                   levels, title=f"{assay} · {m} · {region}")
                out.append(f"<figure>{svg}<figcaption>region "
                           f"{html.escape(region)}</figcaption></figure>")
                stats_rows = []
                for lv in levels:
                    s = sub[sub["level"] == lv]
                    vals = {g: s.loc[s["group"] == g, m].tolist() for g in groups
                            if g in set(s["group"])}
                    if len(vals) >= 2:
                        stats_rows.append(compare_groups(vals).assign(level=lv))
                if stats_rows:
                    st = pd.concat(stats_rows, ignore_index=True)
                    st = st[["level", *[c for c in st.columns if c != "level"]]]
                    out.append(_table(st, left=["level", "group_a", "group_b"]))
            out.append("</div>")
    if validation is not None and len(validation):
        out.append(validation_section(validation))
    out.append("<h2 id='qc'>Quality control</h2><div class='grid'>")
    for u in sorted(units, key=lambda u: (natural_key(u.get("file", "")), u.get("assay", ""))):
        flags = u.get("flags") or []
        err = u.get("error")
        cls = "bad" if err else ""
        img = thumbnails.get(u.get("key", ""))
        pic = f"<img class='{cls}' src='{_b64_png(img)}'>" if img else ""
        msg = f"<div class='flag'>{html.escape(err['error'])}: {html.escape(err['message'])}" \
              "</div>" if err else ""
        flag_html = "".join(f"<div class='flag'>{html.escape(f)}</div>" for f in flags
                            if not (err and f.startswith("failed")))
        out.append(f"<div class='card'>{pic}<div><b>{html.escape(u.get('file', ''))}</b> · "
                   f"{html.escape(u.get('assay', ''))}</div>{msg}{flag_html}</div>")
    out.append("</div></body></html>")
    return "\n".join(out)
