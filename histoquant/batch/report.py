"""The study report: one self-contained HTML file (plots inline SVG, QC thumbnails PNG).

It reads as a paper's results are read:

1. **Endpoints** — the measures each assay declares a paper reports
   (:mod:`histoquant.batch.endpoints`): one plot per endpoint (one panel per level for a
   ``by_level`` endpoint) with a dot per animal and the group's mean ± SEM or median and
   interquartile range as the endpoint declares, a table of the same numbers, and, when
   given, the study's statistics (``statistics.csv``). A dot links to its animal.
2. **Needs attention** — failed images, excluded sections with their reasons, flagged images,
   notes of the run.
3. **Animals** — each animal's sections, group by group: the QC thumbnail of each image
   (linking to the full QC picture in ``qc/``) captioned with its sections' endpoint values.
4. **Agreement with manual counts**, when the results folder holds a ``validation.csv``.
5. **Every other measure**, folded per assay (closed), the technical columns (region area,
   thresholds, noise, background, saturation…) last.

Nothing is fetched from elsewhere: no script, no external style sheet or font, images inline.
"""

from __future__ import annotations

import base64
import fnmatch
import html
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..assays.base import get_assay
from .dotplot import COLOURS, dot_plot_svg, group_summary
from .endpoints import endpoint_animal_values, endpoint_observations
from .samples import natural_key
from .tables import StudyTables, default_measures, describe_measure

__all__ = ["build_report", "validation_section", "with_validation",
           "animal_anchors", "format_summary", "is_technical", "statistics_table",
           "TECHNICAL_MEASURES", "STATISTICS_HEADINGS", "STATS_NOTE"]

#: Measures that describe the measuring rather than the tissue: folded last in the report.
TECHNICAL_MEASURES = ("region_area_*", "*threshold*", "noise*", "background*", "bit_depth",
                      "saturat*", "n_rejected_*", "n_objects", "n_patches", "*_correction_*")

#: Columns of the study statistics (:data:`histoquant.batch.statistics.STATISTICS_COLUMNS`)
#: the report shows, in this order, with their headings.
STATISTICS_HEADINGS = {
    "endpoint": "endpoint", "level": "level", "group": "group", "reference": "vs",
    "n": "n", "ref_n": "n (vs)", "welch_t": "Welch t", "welch_p": "Welch p",
    "welch_p_holm": "Welch p (Holm)", "mwu_u": "Mann–Whitney U", "mwu_p": "Mann–Whitney p",
    "mwu_p_holm": "Mann–Whitney p (Holm)", "hedges_g": "Hedges' g",
    "hedges_g_ci_low": "g 95 % CI low", "hedges_g_ci_high": "g 95 % CI high",
    "mixed_coef": "mixed model estimate", "mixed_ci_low": "estimate 95 % CI low",
    "mixed_ci_high": "estimate 95 % CI high", "mixed_p": "mixed model p",
    "mixed_p_holm": "mixed model p (Holm)", "mixed_note": "mixed model note",
    "note": "note"}
# (value, low, high, heading): shown as one "value [low, high]" cell when all three are there
_CI_CELLS = (("hedges_g", "hedges_g_ci_low", "hedges_g_ci_high", "Hedges' g [95 % CI]"),
             ("mixed_coef", "mixed_ci_low", "mixed_ci_high",
              "mixed model estimate [95 % CI]"))

STATS_NOTE = (
    "Descriptive only: one value per animal; no test is computed on this page for these "
    "measures. The study's statistics are those of the endpoints (statistics.csv); further "
    "analyses belong in the statistics tool (Prism, R) fed by long.csv, prism.pzfx or the "
    "prism/ tables.")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:1.5em 2em;
max-width:1240px;color:#222;line-height:1.35}
h1{font-size:1.55em;margin-bottom:.2em}
h2{border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
h3{margin:.2em 0 .3em 0;font-size:1.05em}h4{margin:.8em 0 .3em 0}
table{border-collapse:collapse;margin:.4em 0 .8em 0;font-size:.85em}
td,th{border:1px solid #ccc;padding:.15em .45em;text-align:right;vertical-align:top}
th{background:#f3f3f3}td.l,th.l{text-align:left}
.note{color:#555;font-size:.88em;margin:.2em 0 .5em 0}.flag{color:#b00020}
nav{font-size:.9em;margin:.3em 0 1em 0}nav a{margin-right:1em}
a{color:#0b5cad}
.eps{display:flex;flex-wrap:wrap;gap:14px}
.ep{border:1px solid #d6d6d6;border-radius:6px;padding:.5em .7em;flex:1 1 580px;
max-width:613px;box-sizing:border-box;background:#fcfcfc}
.eprow{display:flex;gap:12px;align-items:flex-start;flex-wrap:wrap}
.eprow table{font-size:.78em}.eprow figure{flex:none}.stat{font-size:.82em;margin:.3em 0 0 0}
svg a.dot circle:hover{stroke:#000;stroke-width:1.5}
.box{border:2px solid #e0a800;background:#fff8e1;border-radius:6px;padding:.3em 1em;
margin:1em 0}.box.bad{border-color:#b00020;background:#fdecee}
.animal{border-top:1px solid #ddd;padding:.5em 0}.animal:target{background:#fff8d6}
.vals{font-size:.85em;margin:.2em 0 .4em 0}
.vals span{display:inline-block;margin-right:1.2em;white-space:nowrap}
.grid{display:flex;flex-wrap:wrap;gap:10px}.card{width:232px;font-size:.78em}
.card img{width:228px;border:1px solid #ddd;display:block}
.card.failed{border:3px solid #b00020;padding:4px}.card .sec{margin-top:.2em;color:#444}
.card.excluded img{opacity:.45}.excl{color:#8a5a00}
details{margin:.5em 0}summary{cursor:pointer;font-weight:600}
details details{margin-left:1em}.wide{overflow-x:auto}
.wide td{white-space:nowrap}figure{margin:.3em 0}.mgrid{display:flex;flex-wrap:wrap;gap:.5em 28px}
.measure{flex:0 1 380px;margin-bottom:.6em}.measure .note{font-size:.8em}
"""


def _b64_png(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _num(v: Any) -> str:
    """Format a number with 4 significant digits, '–' for a missing one."""
    if v is None or (isinstance(v, (float, np.floating)) and not np.isfinite(v)):
        return "–"
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    return html.escape(str(v))


_fmt = _num


def _table(df: pd.DataFrame, left: Sequence[str] = (), raw: Sequence[str] = ()) -> str:
    """Return an HTML table; columns in ``raw`` hold HTML already (links), the rest is escaped."""
    head = "".join(f"<th class='{'l' if c in left else ''}'>{html.escape(str(c))}</th>"
                   for c in df.columns)
    rows = []
    for _, r in df.iterrows():
        rows.append("<tr>" + "".join(
            f"<td class='{'l' if c in left else ''}'>"
            f"{r[c] if c in raw else _fmt(r[c])}</td>" for c in df.columns) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _decimals(spread: float) -> int:
    """Decimals that show two significant digits of ``spread``."""
    if not np.isfinite(spread) or spread <= 0:
        return -1
    return int(min(6, max(0, 1 - math.floor(math.log10(spread)))))


def _fixed(v: float, decimals: int) -> str:
    if not np.isfinite(v):
        return "–"
    return f"{v:.4g}" if decimals < 0 else f"{v:,.{decimals}f}"


def format_summary(s: Mapping[str, float], summary: str) -> str:
    """Return a group's summary as the report prints it.

    Parameters
    ----------
    s : mapping
        From :func:`~histoquant.batch.dotplot.group_summary`.
    summary : {"mean_sem", "median_iqr"}
        Which summary ``s`` holds.

    Returns
    -------
    str
        ``"mean ± SEM"`` with two significant digits of the SEM and the mean to the same
        decimal, or ``"median [Q1–Q3]"``; ``"–"`` without a value.
    """
    if not s["n"]:
        return "–"
    if summary == "median_iqr":
        d = _decimals(s["q3"] - s["q1"])
        return f"{_fixed(s['median'], d)} [{_fixed(s['q1'], d)}–{_fixed(s['q3'], d)}]"
    if s["n"] < 2:
        return f"{_fixed(s['mean'], -1)} (n = 1)"
    d = _decimals(s["sem"])
    return f"{_fixed(s['mean'], d)} ± {_fixed(s['sem'], d)}"


def animal_anchors(animals: Sequence[str]) -> dict[str, str]:
    """Return the HTML id of each animal's block: ``animal-<name>``, safe and unique.

    Parameters
    ----------
    animals : sequence of str
        Animal names as in the tables.

    Returns
    -------
    dict of str to str
        Name → id: letters, digits, ``-`` and ``_`` only (others become ``_``); a name
        that would give an id already taken gets ``-2``, ``-3``….
    """
    out: dict[str, str] = {}
    taken: set[str] = set()
    for a in sorted(dict.fromkeys(str(a) for a in animals), key=natural_key):
        base = "animal-" + (re.sub(r"[^A-Za-z0-9_-]", "_", a) or "_")
        anchor, k = base, 2
        while anchor in taken:
            anchor, k = f"{base}-{k}", k + 1
        taken.add(anchor)
        out[a] = anchor
    return out


def _animal_link(animal: str, anchors: Mapping[str, str]) -> str:
    target = anchors.get(animal)
    name = html.escape(animal)
    return f"<a href='#{target}'>{name}</a>" if target else name


def is_technical(measure: str) -> bool:
    """Return True for a measure of the measuring, not of the tissue (:data:`TECHNICAL_MEASURES`).

    Parameters
    ----------
    measure : str
        Column name.

    Returns
    -------
    bool
        Whether the report folds it with the technical measures.
    """
    return any(fnmatch.fnmatchcase(measure, p) for p in TECHNICAL_MEASURES)


def _unit_text(unit: str) -> str:
    return f" ({unit})" if unit else ""


def _present_groups(groups: Sequence[str], present: Sequence[str]) -> list[str]:
    seen = set(present)
    return [g for g in groups if g in seen] + sorted(seen - set(groups), key=natural_key)


def _colours(groups: Sequence[str]) -> dict[str, str]:
    """One colour per group of the study, the same in every plot."""
    return {str(g): COLOURS[i % len(COLOURS)] for i, g in enumerate(groups)}


def _label_of(values: pd.DataFrame) -> dict[str, str]:
    return dict(zip(values["endpoint"], values["label"])) if len(values) else {}


# ---------------------------------------------------------------------------- endpoints
def _p(v: Any) -> str:
    if v is None or not isinstance(v, (int, float, np.number)) or not np.isfinite(v):
        return "–"
    return "< 0.001" if v < 0.001 else f"{v:.3f}"


def _statistics_line(rows: pd.DataFrame) -> str:
    """One line per comparison under an endpoint's plot: effect size, then p-values."""
    out = []
    for _, r in rows.iterrows():
        bits = []
        head = f"{html.escape(str(r.get('group', '')))}"
        if pd.notna(r.get("reference", np.nan)):
            head += f" vs {html.escape(str(r['reference']))}"
        if "level" in r and str(r["level"]) not in ("all", "", "nan"):
            head = f"{html.escape(str(r['level']))}: {head}"
        if "hedges_g" in r:
            ci = ""
            if {"hedges_g_ci_low", "hedges_g_ci_high"} <= set(r.index):
                ci = f" [{_num(r['hedges_g_ci_low'])}, {_num(r['hedges_g_ci_high'])}]"
            bits.append(f"Hedges' g {_num(r['hedges_g'])}{ci}")
        if "mixed_coef" in r and pd.notna(r["mixed_coef"]):
            ci = ""
            if {"mixed_ci_low", "mixed_ci_high"} <= set(r.index):
                ci = f" [{_num(r['mixed_ci_low'])}, {_num(r['mixed_ci_high'])}]"
            bits.append(f"mixed model difference {_num(r['mixed_coef'])}{ci}")
        for col, name in (("welch_p", "Welch p"), ("mwu_p", "Mann–Whitney p"),
                          ("mixed_p", "mixed model p")):
            if col in r:
                holm = f" (Holm {_p(r[col + '_holm'])})" if col + "_holm" in r else ""
                bits.append(f"{name} {_p(r[col])}{holm}")
        if "note" in r and isinstance(r["note"], str) and r["note"]:
            bits.append(f"<i>{html.escape(r['note'])}</i>")
        out.append(f"<div>{head}: {'; '.join(bits)}</div>")
    return f"<div class='stat'>{''.join(out)}</div>" if out else ""


def statistics_table(statistics: pd.DataFrame, labels: Mapping[str, str] | None = None) -> str:
    """Return the study statistics as an HTML table: the known columns present, then others.

    Parameters
    ----------
    statistics : pandas.DataFrame
        ``statistics.csv``: one row per endpoint × level × group compared with the
        reference group (:data:`STATISTICS_HEADINGS`; any column may be missing).
    labels : mapping of str to str, optional
        Endpoint name → label, shown instead of the name.

    Returns
    -------
    str
        An HTML table; a value with both ends of its 95 % CI present is shown as one cell
        ``value [low, high]``.
    """
    df = statistics.copy()
    if "endpoint" in df.columns and labels:
        df["endpoint"] = df["endpoint"].map(lambda e: labels.get(str(e), e))
    cols: dict[str, pd.Series] = {}
    combined = {}
    for value, low, high, heading in _CI_CELLS:
        if {value, low, high} <= set(df.columns):
            combined[value] = heading
    done: set[str] = set()
    for c in STATISTICS_HEADINGS:
        if c not in df.columns or c in done:
            continue
        if c in combined:
            _, low, high, heading = next(t for t in _CI_CELLS if t[0] == c)
            cols[heading] = [f"{_num(v)} [{_num(lo)}, {_num(hi)}]" for v, lo, hi in
                             zip(df[c], df[low], df[high])]
            done |= {c, low, high}
        elif c.endswith("_p") or c.endswith("_holm"):
            cols[STATISTICS_HEADINGS[c]] = [_p(v) for v in df[c]]
        else:
            cols[STATISTICS_HEADINGS[c]] = df[c].tolist()
        done.add(c)
    # the descriptive columns (group means, SDs, quartiles …) are in statistics.csv and
    # in the endpoint tables above; this table keeps to the comparisons
    out = pd.DataFrame(cols)
    return _table(out, left=[h for h in ("endpoint", "level", "group", "vs", "note")
                             if h in out.columns])


def _endpoint_card(endpoint: str, ev: pd.DataFrame, groups: Sequence[str],
                   anchors: Mapping[str, str], statistics: pd.DataFrame | None) -> str:
    first = ev.iloc[0]
    label, unit, summary = str(first["label"]), str(first["unit"]), str(first["summary"])
    by_level = bool(first["by_level"])
    levels = (sorted(set(ev["level"]), key=natural_key) if by_level else [""])
    plot_df = ev if by_level else ev.assign(level="")
    present = _present_groups(groups, ev["group"].unique())
    links = {a: f"#{anchors[a]}" for a in ev["animal"] if a in anchors}
    svg = dot_plot_svg(plot_df, "value", present, levels, ylabel=f"{label}{_unit_text(unit)}",
                       summary=summary, links=links, show_n=True, panel_height=160,
                       colours=_colours(groups))
    heading = "median [IQR]" if summary == "median_iqr" else "mean ± SEM"
    rows = []
    for lv in levels:
        sub = plot_df[plot_df["level"] == lv]
        for g in present:
            gv = sub[sub["group"] == g]
            s = group_summary(gv["value"].tolist(), summary)
            data = " ".join(f"data-{k}='{float(v)!r}'" for k, v in s.items() if k != "n")
            names = " ".join(_animal_link(a, anchors) for a in
                             sorted(gv["animal"], key=natural_key))
            rows.append(
                f"<tr class='summary' data-endpoint='{html.escape(endpoint)}' "
                f"data-level='{html.escape(str(lv))}' data-group='{html.escape(g)}' "
                f"data-n='{s['n']}' {data}>"
                + (f"<td class='l'>{html.escape(str(lv))}</td>" if by_level else "")
                + f"<td class='l'>{html.escape(g)}</td><td>{s['n']}</td>"
                f"<td>{int(gv['n_sections'].sum())}</td><td>{format_summary(s, summary)}</td>"
                f"<td class='l'>{names}</td></tr>")
    head = (("<th class='l'>level</th>" if by_level else "")
            + f"<th class='l'>group</th><th>n</th><th>sections</th><th>{heading}"
            f"{'<br>' + html.escape(unit) if unit else ''}</th><th class='l'>animals</th>")
    table = f"<table class='ep-table'><tr>{head}</tr>{''.join(rows)}</table>"
    regions = ", ".join(dict.fromkeys(r for rs in ev["regions"] for r in str(rs).split(";")))
    bar = ("median and interquartile range" if summary == "median_iqr"
           else "mean ± SEM")
    stats_html = ""
    if statistics is not None and "endpoint" in statistics.columns:
        stats_html = _statistics_line(statistics[statistics["endpoint"].astype(str)
                                                 == endpoint])
    return (f"<div class='ep' id='ep-{html.escape(endpoint)}' "
            f"data-endpoint='{html.escape(endpoint)}'><h3>{html.escape(label)}</h3>"
            f"<p class='note'>{html.escape(str(first['assay']))} · region "
            f"{html.escape(regions)} · {bar}</p>"
            f"<div class='eprow'><figure>{svg}</figure>{table}</div>{stats_html}</div>")


def _endpoints_section(values: pd.DataFrame, groups: Sequence[str],
                       anchors: Mapping[str, str], statistics: pd.DataFrame | None) -> str:
    out = ["<section id='endpoints'><h2>Endpoints</h2>"]
    if values.empty:
        out.append("<p class='note'>None of the assays of this study declares an endpoint "
                   "with values here: every measure is under <a href='#measures'>All "
                   "measures</a>.</p></section>")
        return "".join(out)
    out.append("<p class='note'>The measures each assay declares a paper reports. One dot "
               "per animal (click it, or the animal's name, to see its sections): the mean of "
               "its sections (and regions), weighted where the endpoint says so; excluded "
               "sections left out. Beside the dots: the group's mean ± SEM, or its median and "
               "interquartile range, as the endpoint declares.</p><div class='eps'>")
    for endpoint, ev in values.groupby("endpoint", sort=False):
        out.append(_endpoint_card(str(endpoint), ev, groups, anchors, statistics))
    out.append("</div>")
    if statistics is not None:
        if len(statistics):
            out.append("<p class='note'>Under each plot: each group against the reference "
                       "group, on animal values (Hedges' g with its 95 % CI, Welch's t-test, "
                       "Mann–Whitney U) and on the sections with the animal as a random effect "
                       "(mixed model); Holm: adjusted across the declared endpoints.</p>"
                       "<details id='statistics'><summary>Statistics table: every comparison "
                       "and column (as in statistics.csv)</summary><div class='wide'>"
                       f"{statistics_table(statistics, _label_of(values))}</div></details>")
        else:
            out.append("<p class='note' id='statistics'>Statistics: no comparison could be "
                       "made (one group, or too few animals).</p>")
    else:
        out.append("<p class='note'>No statistics were given for this report: the summaries "
                   "above describe the groups and test nothing.</p>")
    out.append("</section>")
    return "".join(out)


# ---------------------------------------------------------------------------- attention
def _excluded(sections: pd.DataFrame) -> pd.DataFrame:
    if "excluded" not in sections.columns or sections.empty:
        return pd.DataFrame()
    ex = sections[sections["excluded"].fillna(False).astype(bool)].copy()
    if ex.empty:
        return ex
    if "exclusion_reason" not in ex.columns:
        ex["exclusion_reason"] = ""
    ex["exclusion_reason"] = ex["exclusion_reason"].fillna("").astype(str)
    keys = [c for c in ("assay", "animal", "group", "level", "image", "section")
            if c in ex.columns]
    return (ex.groupby(keys, sort=False, dropna=False)["exclusion_reason"]
            .agg(lambda r: "; ".join(dict.fromkeys(x for x in r if x)))
            .reset_index())


def _attention_section(tables: StudyTables, units: Sequence[Mapping[str, Any]],
                       notes: Sequence[str], anchors: Mapping[str, str],
                       unit_animal: Mapping[str, str]) -> str:
    out = ["<section id='attention'>"]
    if len(tables.errors):
        out.append(f"<div class='box bad'><h3 id='failures' class='flag'>Failures "
                   f"({len(tables.errors)})</h3>"
                   f"{_table(tables.errors, left=list(tables.errors.columns))}</div>")
    ex = _excluded(tables.sections)
    if len(ex):
        shown = ex.copy()
        if "animal" in shown:
            shown["animal"] = [_animal_link(str(a), anchors) for a in shown["animal"]]
        shown = shown.rename(columns={"exclusion_reason": "reason"})
        out.append(f"<div class='box' id='excluded'><h3>Excluded sections ({len(ex)})</h3>"
                   "<p class='note'>Left out of the endpoints and statistics, by the study "
                   f"file's rules.</p>{_table(shown, left=list(shown.columns), raw=['animal'])}"
                   "</div>")
    flagged = [u for u in units if u.get("flags") and not u.get("error")]
    if flagged:
        rows = pd.DataFrame({
            "animal": [_animal_link(unit_animal.get(u.get("key", ""), ""), anchors)
                       for u in flagged],
            "image": [u.get("file", "") for u in flagged],
            "assay": [u.get("assay", "") for u in flagged],
            "flags": ["; ".join(u["flags"]) for u in flagged]})
        out.append(f"<details class='box' id='flagged'><summary>Flagged images "
                   f"({len(flagged)}): look at their QC pictures</summary>"
                   f"{_table(rows, left=list(rows.columns), raw=['animal'])}</details>")
    if notes:
        out.append("<details class='box' id='notes'><summary>Notes of the run "
                   f"({len(notes)})</summary><ul>"
                   + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul></details>")
    out.append("</section>")
    return "".join(out) if len(out) > 2 else ""


# ---------------------------------------------------------------------------- animals
_NO_ROWS = pd.DataFrame(columns=["measure", "section", "region", "label", "value", "unit"])


def _caption(unit: Mapping[str, Any], obs: Mapping[tuple[str, str], pd.DataFrame],
             excluded: pd.DataFrame) -> tuple[str, bool]:
    """Caption one image × assay with its sections' values, as the endpoints read them.

    Returns the caption and whether every section of the image was excluded.
    """
    image, assay = str(unit.get("image", "")), str(unit.get("assay", ""))
    parts = []
    mine = obs.get((image, assay), _NO_ROWS)
    if len(mine):
        # two endpoints may read one column (GFP+ cells per section, and by level)
        mine = mine.drop_duplicates(["measure", "section", "region"])
        many = len(mine[["section", "region"]].drop_duplicates()) > 1
        for (section, region), rows in mine.groupby(["section", "region"], sort=False):
            head = (f"<div class='sec'>section {html.escape(section)} · "
                    f"{html.escape(region)}</div>" if many else "")
            vals = "".join(f"<div>{html.escape(r['label'])}: <b>{_num(r['value'])}</b>"
                           f"{_unit_suffix(r['unit'])}</div>" for _, r in rows.iterrows())
            parts.append(head + vals)
    n_excluded = 0
    if len(excluded):
        ex = excluded[(excluded["image"].astype(str) == image)
                      & (excluded["assay"].astype(str) == assay)]
        n_excluded = len(ex)
        for _, r in ex.iterrows():
            parts.append(f"<div class='excl'>section {html.escape(str(r['section']))} "
                         f"excluded: {html.escape(r['exclusion_reason'] or 'no reason given')}"
                         "</div>")
    return "".join(parts), bool(n_excluded) and not len(mine)


def _unit_suffix(unit: str) -> str:
    return f" {html.escape(unit)}" if unit not in ("", "count") else ""


def _animal_block(animal: str, group: str, units: Sequence[Mapping[str, Any]],
                  thumbnails: Mapping[str, bytes], qc_links: Mapping[str, str],
                  values: pd.DataFrame, obs: Mapping[tuple[str, str], pd.DataFrame],
                  excluded: pd.DataFrame, anchors: Mapping[str, str],
                  rank: Mapping[str, int]) -> str:
    anchor = f" id='{anchors[animal]}'" if animal in anchors else ""
    name = html.escape(animal) if animal else "images of no known animal"
    vals = values[values["animal"] == animal] if len(values) else values
    chips = "".join(
        f"<span>{html.escape(r['label'])}"
        f"{' (' + html.escape(str(r['level'])) + ')' if r['by_level'] else ''}: "
        f"<b>{_num(r['value'])}</b>{_unit_suffix(r['unit'])}</span>"
        for _, r in vals.iterrows())
    out = [f"<div class='animal'{anchor}><h4>{name} <span class='note'>{html.escape(group)}"
           f"</span></h4><div class='vals'>{chips}</div><div class='grid'>"]
    for u in sorted(units, key=lambda u: (rank.get(u.get("assay", ""), len(rank)),
                                          natural_key(u.get("file", "")))):
        key = u.get("key", "")
        err = u.get("error")
        img = thumbnails.get(key)
        pic = f"<img alt='QC picture' src='{_b64_png(img)}'>" if img else ""
        if pic and key in qc_links:
            pic = f"<a href='{html.escape(qc_links[key])}'>{pic}</a>"
        cap, all_excluded = _caption(u, obs, excluded)
        msg = (f"<div class='flag'>{html.escape(str(err.get('error', '')))}: "
               f"{html.escape(str(err.get('message', '')))}</div>" if err else "")
        flags = "".join(f"<div class='flag'>{html.escape(f)}</div>" for f in u.get("flags") or []
                        if not (err and f.startswith("failed")))
        cls = "card failed" if err else ("card excluded" if all_excluded else "card")
        out.append(f"<div class='{cls}'>{pic}<div><b>{html.escape(u.get('assay', ''))}</b> · "
                   f"{html.escape(u.get('file', ''))}</div>{msg}{cap}{flags}</div>")
    out.append("</div></div>")
    return "".join(out)


def _animals_section(units: Sequence[Mapping[str, Any]], thumbnails: Mapping[str, bytes],
                     qc_links: Mapping[str, str], unit_animal: Mapping[str, str],
                     animal_group: Mapping[str, str], groups: Sequence[str],
                     values: pd.DataFrame, obs: pd.DataFrame, excluded: pd.DataFrame,
                     anchors: Mapping[str, str], assay_order: Sequence[str]) -> str:
    out = ["<section id='animals'><h2 id='qc'>Quality control: each animal's sections and "
           "their values</h2><p class='note'>The QC overlay of every image (click it for the "
           "full picture in qc/), captioned with the endpoint values of its sections; the "
           "animal's own values (the dots of the plots above) head its row.</p>"]
    by_animal: dict[str, list[Mapping[str, Any]]] = {}
    for u in units:
        by_animal.setdefault(unit_animal.get(u.get("key", ""), ""), []).append(u)
    rank = {a: i for i, a in enumerate(assay_order)}
    named = [a for a in by_animal if a]
    by_image = ({(str(k[0]), str(k[1])): df for k, df in obs.groupby(["image", "assay"],
                                                                     sort=False)}
                if len(obs) else {})
    for g in _present_groups(groups, [animal_group.get(a, "") for a in named]):
        out.append(f"<h3>{html.escape(g) if g else 'no group'}</h3>")
        for a in sorted((a for a in named if animal_group.get(a, "") == g), key=natural_key):
            out.append(_animal_block(a, g, by_animal[a], thumbnails, qc_links, values,
                                     by_image, excluded, anchors, rank))
    if "" in by_animal:
        out.append(_animal_block("", "", by_animal[""], thumbnails, qc_links, values,
                                 by_image, excluded, anchors, rank))
    out.append("</section>")
    return "".join(out)


# ---------------------------------------------------------------------------- all measures
def _measure_block(assay: str, m: str, df: pd.DataFrame, groups: Sequence[str],
                   levels: Sequence[str], anchors: Mapping[str, str]) -> str:
    spec_unit = ""
    try:
        spec_unit = get_assay(assay).measure(m).unit
    except (KeyError, ValueError):
        pass
    out = [f"<div class='measure'><h4>{html.escape(m)}</h4><p class='note'>One dot per animal "
           f"({html.escape(describe_measure(assay, m))}); bar: mean ± SEM.</p>"]
    links = {a: f"#{anchors[a]}" for a in df["animal"].astype(str) if a in anchors}
    for region in sorted(set(df["region"]), key=natural_key):
        sub = df[df["region"] == region]
        present = _present_groups(groups, sub["group"].unique())
        svg = dot_plot_svg(sub, m, present, levels, title=f"{assay} · {m} · {region}",
                           ylabel=f"{m}{_unit_text(spec_unit)}", links=links, show_n=True,
                           colours=_colours(groups))
        rows = []
        for lv in levels:
            s_lv = sub[sub["level"] == lv]
            for g in present:
                s = group_summary(s_lv.loc[s_lv["group"] == g, m].tolist())
                if s["n"]:
                    rows.append({"level": lv, "group": g, "n": s["n"],
                                 "mean ± SEM": format_summary(s, "mean_sem")})
        table = _table(pd.DataFrame(rows), left=["level", "group"]) if rows else ""
        out.append(f"<div class='eprow'><figure>{svg}</figure>{table}</div>")
    out.append("</div>")
    return "".join(out)


def _measures_section(animals: pd.DataFrame, groups: Sequence[str],
                      measures: Mapping[str, Sequence[str]],
                      anchors: Mapping[str, str]) -> str:
    out = ["<section id='measures'><h2>All measures</h2>"
           f"<p class='note'>Every other measure, per assay (click to open). "
           f"{html.escape(STATS_NOTE)}</p>"]
    for assay in sorted(set(animals["assay"]) if len(animals) else [], key=natural_key):
        df = animals[animals["assay"] == assay]
        levels = sorted(set(df["level"]), key=natural_key)
        cols = list(measures.get(assay) or default_measures(df))
        cols = [c for c in cols if c in df.columns and df[c].notna().any()]
        main = [c for c in cols if not is_technical(c)]
        tech = [c for c in cols if is_technical(c)]
        out.append(f"<details class='assay' id='measures-{html.escape(assay)}'><summary>"
                   f"{html.escape(assay)}: {len(main)} measure(s)"
                   f"{f', {len(tech)} technical' if tech else ''}</summary>"
                   "<h4>Animals and sections per group</h4>"
                   f"{_table(_group_sizes(df, groups, levels), left=['group'])}")
        out.append("<div class='mgrid'>")
        out.extend(_measure_block(assay, m, df, groups, levels, anchors) for m in main)
        out.append("</div>")
        if tech:
            out.append(f"<details><summary>Technical measures of {html.escape(assay)} "
                       f"({len(tech)}): {html.escape(', '.join(tech))}</summary>"
                       "<div class='mgrid'>")
            out.extend(_measure_block(assay, m, df, groups, levels, anchors) for m in tech)
            out.append("</div></details>")
        out.append("</details>")
    out.append("</section>")
    return "".join(out)


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
_VALIDATION_SLOT = "<!-- validation slot -->"


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
        The page, the section placed after the animals' QC pictures, before "All measures".
    """
    section = validation_section(validation)
    start, end = page.find(_VALIDATION_START), page.find(_VALIDATION_END)
    if start >= 0 and end > start:
        return page[:start] + section + page[end + len(_VALIDATION_END):]
    at = page.find(_VALIDATION_SLOT)
    if at >= 0:
        at += len(_VALIDATION_SLOT)
        return page[:at] + section + "\n" + page[at:]
    at = page.find("<h2 id='qc'>")  # a report written before the slot
    at = at if at >= 0 else page.rfind("</body>")
    return page[:at] + section + "\n" + page[at:]



def build_report(tables: StudyTables, units: Sequence[Mapping[str, Any]],
                 thumbnails: Mapping[str, bytes], *, title: str, run_info: Mapping[str, Any],
                 measures: Mapping[str, Sequence[str]] | None = None,
                 notes: Sequence[str] = (),
                 validation: pd.DataFrame | None = None,
                 statistics: pd.DataFrame | None = None,
                 qc_links: Mapping[str, str] | None = None) -> str:
    """Return the HTML report as a string.

    Parameters
    ----------
    tables : StudyTables
        The assembled tables. The endpoints are read from ``tables.sections``
        (:func:`~histoquant.batch.endpoints.endpoint_observations`); an ``excluded`` column
        there (with ``exclusion_reason``) lists the excluded sections and keeps them out of
        the endpoints.
    units : sequence of mapping
        One record per image × assay (``image``, ``file``, ``assay``, ``key``, ``flags``,
        ``error``; ``animal`` and ``group`` when known, else taken from the section table).
    thumbnails : mapping of key → PNG bytes
        QC thumbnails of the finished units.
    title : str
        Heading.
    run_info : mapping
        Shown as a small table (version, date, counts, timings), folded.
    measures : mapping, optional
        Assay → measures to plot under "All measures" (default: all).
    notes : sequence of str
        Things the user should know (skipped files, defaults taken).
    validation : pandas.DataFrame, optional
        ``validation.csv`` of the results folder, shown before "All measures".
    statistics : pandas.DataFrame, optional
        The study statistics (``statistics.csv``): shown under the endpoints, a line under
        each endpoint's plot and the whole table below them; any of
        :data:`STATISTICS_HEADINGS` may be missing and other columns are shown as they are.
        None: no test is shown, and none is computed here.
    qc_links : mapping of key → str, optional
        Unit key → relative link to its full QC picture (``qc/<assay>/<image>.png``).

    Returns
    -------
    str
        A self-contained HTML page (plots as inline SVG, thumbnails inline, no script, nothing
        fetched from elsewhere).
    """
    measures = measures or {}
    qc_links = qc_links or {}
    groups = list(tables.groups)
    sections = tables.sections
    obs = endpoint_observations(sections)
    values = endpoint_animal_values(obs)
    # which animal each image belongs to: the unit's own record, else the section table
    img_animal: dict[tuple[str, str], str] = {}
    animal_group: dict[str, str] = {}
    if len(sections) and {"image", "assay", "animal"} <= set(sections.columns):
        for img, assay, animal, group in zip(
                sections["image"].astype(str), sections["assay"].astype(str),
                sections["animal"].astype(str),
                sections["group"].astype(str) if "group" in sections else [""] * len(sections)):
            img_animal.setdefault((img, assay), animal)
            animal_group.setdefault(animal, group)
    unit_animal = {}
    for u in units:
        a = u.get("animal") or img_animal.get((str(u.get("image", "")),
                                              str(u.get("assay", ""))), "")
        unit_animal[u.get("key", "")] = str(a)
        if a and u.get("group") is not None:
            animal_group.setdefault(str(a), str(u["group"]))
    anchors = animal_anchors([a for a in unit_animal.values() if a])
    assay_order = list(dict.fromkeys([*values.get("assay", pd.Series(dtype=str)),
                                      *sorted({str(u.get("assay", "")) for u in units},
                                              key=natural_key)]))
    has_validation = validation is not None and len(validation)
    attention = _attention_section(tables, units, notes, anchors, unit_animal)
    nav = [("endpoints", "Endpoints")]
    if attention:
        nav.append(("attention", "Needs attention"))
    nav.append(("animals", "Sections of each animal"))
    if has_validation:
        nav.append(("validation", "Validation"))
    nav.append(("measures", "All measures"))
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
           f"<meta name='viewport' content='width=device-width'><title>{html.escape(title)}"
           f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    n_animals = len(anchors)
    n_groups = len({animal_group.get(a, "") for a in anchors})
    n_images = len({u.get("file") for u in units})
    out.append(f"<p class='note'>{n_animals} animal(s) in {n_groups} group(s), {n_images} "
               f"image(s), {len(units)} image × assay result(s).</p>")
    out.append("<nav>" + "".join(f"<a href='#{k}'>{html.escape(v)}</a>" for k, v in nav)
               + "</nav>")
    out.append(_endpoints_section(values, groups, anchors, statistics))
    out.append(attention)
    out.append(_animals_section(units, thumbnails, qc_links, unit_animal, animal_group, groups,
                                values, obs, _excluded(sections), anchors, assay_order))
    out.append(_VALIDATION_SLOT)
    if has_validation:
        out.append(validation_section(validation))
    out.append(_measures_section(tables.animals, groups, measures, anchors))
    info = pd.DataFrame({"": list(run_info), "value": [str(v) for v in run_info.values()]})
    out.append(f"<details id='run'><summary>About this run</summary>"
               f"{_table(info, left=['', 'value'])}</details>")
    out.append("</body></html>")
    return "\n".join(out)
