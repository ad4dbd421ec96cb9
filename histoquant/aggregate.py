"""Combine summary rows as each assay declares: tiles into a region, sections into an animal.

The rules live with the assay (:class:`~histoquant.assays.contract.Measure` in its ``SPEC``);
this module only applies them, so a tiled run, the batch's animal table and the plugin all
combine a column the same way. A column no rule covers is an error, never a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from .assays.contract import Measure
from .errors import HistoquantError

__all__ = ["measure_columns", "combine_tiles", "combine_sections"]

#: Looks up the declaration of a column (``AssaySpec.measure``); raises when there is none.
MeasureLookup = Callable[[str], Measure]


def measure_columns(df: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Numeric columns of ``df`` that are measurements (not identifiers or ``exclude``).

    Parameters
    ----------
    df : DataFrame
        A summary or objects table.
    exclude : sequence of str
        Further columns to leave out.

    Returns
    -------
    list of str
        The numeric, non-boolean columns of ``df`` other than the identifiers
        (:data:`~histoquant.results.ID_COLUMNS`, ``label``, ``assay``, ``file``, ``tile``) and
        ``exclude``, in table order.
    """
    from .results import ID_COLUMNS

    skip = set(ID_COLUMNS) | set(exclude) | {"label", "assay", "file", "tile"}
    return [c for c in df.columns if c not in skip and pd.api.types.is_numeric_dtype(df[c])
            and not pd.api.types.is_bool_dtype(df[c])]


def _weighted(values: pd.Series, weights: pd.Series, keys: list[pd.Series]) -> np.ndarray:
    values = pd.to_numeric(values, errors="coerce").astype(float)
    weights = pd.to_numeric(weights, errors="coerce").astype(float)
    valid = values.notna() & weights.notna()
    num = (values.where(valid, 0.0) * weights.where(valid, 0.0)).groupby(
        keys, sort=False, dropna=False).sum()
    den = weights.where(valid, 0.0).groupby(keys, sort=False, dropna=False).sum()
    return (num / den.replace(0.0, np.nan)).to_numpy()


def _join(values: pd.Series) -> str:
    seen: list[str] = []
    for v in values.dropna().astype(str):
        for part in v.split(";"):
            if part and part not in seen:
                seen.append(part)
    return ";".join(seen)


def _common(values: pd.Series) -> str:
    sets = [[p for p in str(v).split(";") if p] if isinstance(v, str) else []
            for v in values]
    if not sets:
        return ""
    return ";".join(p for p in sets[0] if all(p in s for s in sets[1:]))


def combine_tiles(rows: pd.DataFrame, objects: pd.DataFrame, measure: MeasureLookup,
                  by: Sequence[str] = ("image", "region")) -> pd.DataFrame:
    """One summary row per ``by`` group from the rows of its tiles, by the declared rules.

    Parameters
    ----------
    rows : DataFrame
        The summary rows of every tile (a ``tile`` column is ignored).
    objects : DataFrame
        The stitched objects (each counted once), with a ``region`` column; read by the
        ``objects`` rule.
    measure : callable
        ``measure(column) -> Measure`` (:meth:`AssaySpec.measure`).
    by : sequence of str
        Columns that identify one region's rows.

    Returns
    -------
    DataFrame
        One row per group, the columns of ``rows`` in their order.
    """
    by = [b for b in by if b in rows.columns]
    rows = rows.drop(columns=[c for c in ("tile",) if c in rows.columns])
    if rows.empty:
        return rows.reset_index(drop=True)
    groups = rows.groupby(by, sort=False, dropna=False)
    out = groups.size().reset_index()[by]
    keys = [rows[b] for b in by]
    for col in rows.columns:
        if col in by:
            continue
        m = measure(col)
        series = rows[col]
        rule = m.tiles
        if rule == "sum":
            out[col] = groups[col].sum(min_count=1).to_numpy()
        elif rule == "ratio":
            num, den = (rows[c].astype(float).groupby(keys, sort=False, dropna=False)
                        .sum(min_count=1) for c in m.of)
            with np.errstate(divide="ignore", invalid="ignore"):
                out[col] = (m.scale * num / den.where(den > 0)).to_numpy()
        elif rule == "weighted":
            out[col] = _weighted(series, rows[m.of[0]], keys)
        elif rule == "image":
            if "region_area_mm2" in rows.columns and pd.api.types.is_numeric_dtype(series):
                out[col] = _weighted(series, rows["region_area_mm2"], keys)
            else:
                out[col] = groups[col].first().to_numpy()
        elif rule == "objects":
            out[col] = _object_stat(out, by, objects, m)
        elif rule == "any":
            out[col] = groups[col].agg(lambda s: bool(s.fillna(False).astype(bool).any())) \
                .to_numpy()
        elif rule in ("min", "max", "first"):
            out[col] = getattr(groups[col], rule)().to_numpy()
        elif rule == "common":
            out[col] = groups[col].agg(_common).to_numpy()
        else:  # join
            out[col] = groups[col].agg(_join).to_numpy()
    return out[[c for c in rows.columns]]


def _object_stat(out: pd.DataFrame, by: list[str], objects: pd.DataFrame,
                 m: Measure) -> np.ndarray:
    column = m.of[0]
    if objects is None or objects.empty:
        return np.full(len(out), np.nan)
    if column not in objects.columns:
        raise HistoquantError(f"summary column {m.name!r} is declared as a mean of object "
                              f"column {column!r}, which the objects table lacks")
    sel = objects
    for key, value in m.where:
        sel = sel[sel[key] == value]
    obj_by = [b for b in by if b in sel.columns]
    means = sel.groupby(obj_by, sort=False, dropna=False)[column].mean()
    idx = pd.MultiIndex.from_frame(out[obj_by]) if len(obj_by) > 1 else out[obj_by[0]]
    return means.reindex(idx).to_numpy(dtype=float)


def combine_sections(sections: pd.DataFrame, by: Sequence[str],
                     measure: MeasureLookup) -> pd.DataFrame:
    """One row per ``by`` group (an animal × level × region) from its sections' rows.

    Measurement columns combine by their declared animal rule (``sum``, ``mean``,
    ``weighted``); ``none`` columns and non-numeric columns are left out.

    Parameters
    ----------
    sections : DataFrame
        One row per section × region of one assay.
    by : sequence of str
        Identifier columns of a group.
    measure : callable
        ``measure(column) -> Measure`` (:meth:`AssaySpec.measure`).

    Returns
    -------
    DataFrame
        ``by`` columns, then the combined measures in their order in ``sections``.
    """
    by = list(by)
    cols = measure_columns(sections, exclude=by)
    if sections.empty:
        return pd.DataFrame(columns=[*by, *cols])
    groups = sections.groupby(by, sort=False, dropna=False)
    out = groups.size().reset_index()[by]
    keys = [sections[b] for b in by]
    for col in cols:
        m = measure(col)
        if m.animal == "none":
            continue
        if m.animal == "sum":
            out[col] = groups[col].sum(min_count=1).to_numpy()
        elif m.animal == "weighted":
            out[col] = _weighted(sections[col], sections[m.animal_weight], keys)
        else:
            out[col] = groups[col].mean().to_numpy()
    return out
