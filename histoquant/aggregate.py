"""How a measurement column combines over pieces: tiles of a slide, sections of an animal.

Counts, areas and lengths add up; densities, fractions, percentages, means and intensities do
not, and are averaged instead. The rule is read from the column name, which by the project's
convention carries its unit (``n_cells``, ``positive_area_um2``, ``density_per_mm2``,
``coverage_pct``, ``mean_soma_area_um2``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["measure_kind", "measure_columns", "combine_rows"]

# Any of these words in a name makes the column an average, whatever its unit.
_MEAN_WORDS = {"mean", "median", "avg", "average", "sd", "std", "sem", "cv", "fraction",
               "ratio", "density", "coverage", "intensity", "score", "threshold", "index",
               "pct", "percent", "per", "background", "snr", "diameter", "width", "radius",
               "circularity", "solidity", "eccentricity", "orientation", "angle", "depth",
               "bit", "bits", "level", "saturation", "flag", "quality", "confidence",
               # positions and sizes of one thing are not amounts either
               "x", "y", "row", "col", "centroid", "position", "height", "pixel", "symmetry"}
_SUM_WORDS = {"n", "count", "number", "total", "sum"}
# An amount summed over pixels adds up even when its name says intensity.
_AMOUNT_WORDS = {"integrated", "total", "sum"}
_SUM_SUFFIXES = ("_um2", "_mm2", "_um", "_mm", "_um3", "_mm3", "_px", "_px2")


def measure_kind(name: str, dtype: np.dtype | None = None) -> str:
    """How column ``name`` combines over pieces: ``"sum"``, ``"mean"``, ``"min"`` or ``"max"``.

    Parameters
    ----------
    name : str
        Column name, with its unit suffix.
    dtype : numpy dtype, optional
        Column type; an integer column with no other hint is a count.

    Returns
    -------
    str
        ``"min"``/``"max"`` for names starting so; ``"sum"`` for integrated or total amounts;
        ``"mean"`` for densities, fractions, percentages, averages, intensities, thresholds
        and scores; ``"sum"`` for counts (``n_*``, ``*_count``), areas, lengths and other
        integer columns; ``"mean"`` otherwise.
    """
    words = re.split(r"[_\W]+", name.lower())
    if words[0] in ("min", "minimum"):
        return "min"
    if words[0] in ("max", "maximum"):
        return "max"
    if _AMOUNT_WORDS.intersection(words):
        return "sum"
    if _MEAN_WORDS.intersection(words):
        return "mean"
    if _SUM_WORDS.intersection(words) or name.lower().endswith(_SUM_SUFFIXES):
        return "sum"
    if dtype is not None and (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, bool)):
        return "sum"
    return "mean"


def measure_columns(df: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Numeric columns of ``df`` that are measurements (not identifiers or ``exclude``)."""
    from .results import ID_COLUMNS

    skip = set(ID_COLUMNS) | set(exclude) | {"label", "assay", "file", "tile"}
    return [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])
            and not pd.api.types.is_bool_dtype(df[c])]


def combine_rows(df: pd.DataFrame, by: Sequence[str], *, weight: str | None = None,
                 mean_only: bool = False) -> pd.DataFrame:
    """Combine the rows of ``df`` within each group of ``by``, column by column.

    Parameters
    ----------
    df : DataFrame
        One row per piece.
    by : sequence of str
        Columns identifying a group (kept, in first-seen order of groups).
    weight : str, optional
        Column whose values weight the averages (``region_area_mm2`` for tiles of one region,
        which makes densities and area fractions exact). NaN values are left out of averages.
    mean_only : bool
        Average min/max columns too (for animals: the mean of the sections' maxima).

    Returns
    -------
    DataFrame
        One row per group; non-numeric columns keep their first value.
    """
    by = list(by)
    if df.empty:
        return df.copy()
    groups = df.groupby(by, sort=False, dropna=False)
    out = groups.size().reset_index()[by]
    w = df[weight].astype(float) if weight and weight in df.columns else None
    for col in df.columns:
        if col in by:
            continue
        series = df[col]
        if not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            out[col] = groups[col].first().to_numpy()
            continue
        kind = measure_kind(col, series.dtype)
        if mean_only and kind in ("min", "max"):
            kind = "mean"
        if kind == "sum":
            out[col] = groups[col].sum(min_count=1).to_numpy()
        elif kind == "min":
            out[col] = groups[col].min().to_numpy()
        elif kind == "max":
            out[col] = groups[col].max().to_numpy()
        elif w is not None and col != weight:
            values = series.astype(float)
            valid = values.notna() & w.notna()
            keys = [df[b] for b in by]
            num = (values.where(valid, 0.0) * w.where(valid, 0.0)).groupby(
                keys, sort=False, dropna=False).sum()
            den = w.where(valid, 0.0).groupby(keys, sort=False, dropna=False).sum()
            out[col] = (num / den.replace(0.0, np.nan)).to_numpy()
        else:
            out[col] = groups[col].mean().to_numpy()
    return out
