"""``validation.html``: the agreement table, then per measure a Bland–Altman and an identity plot.

One self-contained page, styled like the study report (:mod:`histoquant.batch.report`), whose
tables and CSS it reuses.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd

from ..batch.report import _CSS, _table  # the study report's look
from .agreement import ICC_KIND, BlandAltman
from .objects import ObjectScores
from .pairs import Paired
from .plot import bland_altman_svg, identity_svg

__all__ = ["build_validation_html", "SUMMARY_COLUMNS", "HOW_TO_READ"]

#: The columns of ``validation.csv`` shown in the summary tables.
SUMMARY_COLUMNS = ["measure", "n_pairs", "mean_manual", "mean_auto", "icc", "icc_ci_low",
                   "icc_ci_high", "bias", "loa_low", "loa_high", "mape_pct", "precision",
                   "recall", "f1"]

HOW_TO_READ = (
    f"ICC: {ICC_KIND} (pingouin), with its 95 % CI; 1 is perfect agreement, and above 0.9 is "
    "commonly called excellent, 0.75–0.9 good (Koo & Li 2016) — read the CI's lower end. "
    "Bland–Altman: differences are program − manual; bias is their mean (positive: the "
    "program gives more), the limits of agreement bias ± 1.96 SD hold about 95 % of the "
    "differences between the two on one section. MAPE: mean |program − manual| / manual "
    "in %, over sections with a non-zero manual value. Object scores: one-to-one matches at "
    "IoU ≥ 0.5 against the manual label images, summed over the images.")


def _ba(row: pd.Series) -> BlandAltman:
    return BlandAltman(**{f: float(row[f]) if f != "n" else int(row["n_pairs"])
                          for f in BlandAltman.__dataclass_fields__})


def _drop_blank(df: pd.DataFrame, cols: Sequence[str]) -> pd.DataFrame:
    """``df`` without those of ``cols`` that are blank throughout (no codes, no sections)."""
    return df.drop(columns=[c for c in cols if c in df.columns
                            and not (df[c].astype(str) != "").any()])


def build_validation_html(table: pd.DataFrame, paired: Paired,
                          objects: ObjectScores | None = None, *, title: str,
                          notes: Sequence[str] = ()) -> str:
    """Return ``validation.html`` as a string.

    Parameters
    ----------
    table : pandas.DataFrame
        ``validation.csv``: one row per measure (and one ``objects`` row with labels).
    paired : Paired
        The paired values (the plots' points).
    objects : ObjectScores, optional
        Per-image object matching, shown as a table.
    title : str
        Heading.
    notes : sequence of str
        What the user should know.

    Returns
    -------
    str
        A self-contained HTML page (plots inline SVG).
    """
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
           f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
           f"<p class='note'>Assay {html.escape(paired.assay)}, region "
           f"{html.escape(paired.region)}, {len(paired.table)} section(s) counted by hand."
           "</p>"]
    if notes:
        out.append("<h3>Notes</h3><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes)
                   + "</ul>")
    cols = [c for c in SUMMARY_COLUMNS if c in table.columns and table[c].notna().any()]
    out.append("<h2 id='summary'>Agreement</h2>")
    out.append(_table(table[cols], left=["measure"]))
    out.append(f"<p class='note'>{html.escape(HOW_TO_READ)}</p>")
    names = paired.table["code"].where(paired.table["code"] != "", paired.table["image"])
    for _, row in table[table["measure"].isin(paired.measures)].iterrows():
        m = str(row["measure"])
        man = paired.table[f"{m}__manual"].to_numpy(float)
        auto = paired.table[f"{m}__auto"].to_numpy(float)
        out.append(f"<div class='measure'><h3 id='{html.escape(m)}'>{html.escape(m)}</h3>"
                   f"<p class='note'>n = {int(row['n_pairs'])}; ICC {row['icc']:.3f} "
                   f"(95 % CI {row['icc_ci_low']:.2f}–{row['icc_ci_high']:.2f}); bias "
                   f"{row['bias']:.3g} (95 % CI {row['bias_ci_low']:.3g} to "
                   f"{row['bias_ci_high']:.3g}); limits of agreement {row['loa_low']:.3g} to "
                   f"{row['loa_high']:.3g}; MAPE {row['mape_pct']:.3g} %.</p>")
        out.append("<div class='grid'>")
        out.append(f"<figure>{bland_altman_svg(man, auto, names, _ba(row), m)}</figure>")
        out.append(f"<figure>{identity_svg(man, auto, names, m)}</figure>")
        out.append("</div></div>")
    if objects is not None:
        out.append("<h2 id='objects'>Objects (IoU ≥ 0.5)</h2>")
        out.append(_table(_drop_blank(objects.per_image, ["code"]), left=["code", "image"]))
        if objects.missing:
            out.append(f"<p class='note'>No manual label image for "
                       f"{html.escape(', '.join(objects.missing))}: not scored.</p>")
    pairs = _drop_blank(paired.table, ["code", "section", "region"])
    out.append("<h2 id='pairs'>Paired values</h2>")
    out.append(_table(pairs, left=["code", "image", "section", "region"]))
    out.append("</body></html>")
    return "\n".join(out)
