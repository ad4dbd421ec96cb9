"""Cell counts from classed object rows.

Counts per object and region, per region, per nucleus, and per animal × spinal level.

Used by the gfp-cells assay (:mod:`histoquant.assays.gfp_cells`):

- :func:`objects_table`: one row per object and region holding its centre (regions may
  overlap);
- :func:`summarize_cells`: per region, counted cells, their density, nucleated GFP+ objects
  and rejections by class and reason;
- :func:`perinuclear_calls` / :func:`add_nuclei_counts`: every nucleus in the regions,
  GFP+ when the ring of cytoplasm around it is GFP-bright (``count_nuclei``);
- :func:`aggregate_by_level`: sections summed per animal × level × region, sections with no
  cell counted as sections.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ParamsError
from ..results import normalize_level
from ..segment.cell_candidates import REJECT_REASONS, CandidateMeasurer

__all__ = ["caption_lines",
           "objects_table", "summarize_cells", "perinuclear_calls", "add_nuclei_counts",
           "aggregate_by_level"]


_OBJECT_COLUMNS = ["image", "region", "label", "centroid_y_um", "centroid_x_um", "area_um2",
                   "equivalent_diameter_um", "gfp_mean", "gfp_background", "gfp_signal",
                   "gfp_peak_sigma", "reference_signal", "reference_ratio", "granularity",
                   "solidity", "elongation", "thin_fraction", "texture_fraction",
                   "ring_contrast", "ring_textured", "n_maxima", "peak_density", "padding_edge",
                   "n_nuclei", "nucleated", "class", "reason"]


def objects_table(rows: list[dict[str, Any]], masks: Mapping[str, np.ndarray], name: str,
                  has_ref: bool, has_dapi: bool) -> pd.DataFrame:
    """One row per object and region holding its centroid (regions may overlap).

    Parameters
    ----------
    rows : list of dict
        Measured objects; keys ``_row``/``_col`` give the centre pixel the region is read at.
    masks : mapping of str to ndarray of bool
        Regions.
    name : str
        Image name (``image`` column).
    has_ref, has_dapi : bool
        Whether the reference / DAPI columns exist.

    Returns
    -------
    DataFrame
        Columns ``image``, ``region`` and the measurements, in a fixed order.
    """
    cols = [c for c in _OBJECT_COLUMNS
            if (has_ref or c not in ("reference_signal", "reference_ratio"))
            and (has_dapi or c not in ("n_nuclei", "nucleated"))]
    out = []
    for row in rows:
        r, c = row["_row"], row["_col"]
        for region, m in masks.items():
            if m[min(r, m.shape[0] - 1), min(c, m.shape[1] - 1)]:
                out.append({**{k: v for k, v in row.items() if not k.startswith("_")},
                            "image": name, "region": region})
    df = pd.DataFrame(out, columns=cols)
    if has_dapi and len(df):
        df["nucleated"] = df["nucleated"].astype("boolean")
        df["n_nuclei"] = df["n_nuclei"].astype("Int64")
    return df


def summarize_cells(objects: pd.DataFrame, regions: pd.DataFrame, has_dapi: bool,
                    flag: str) -> pd.DataFrame:
    """Count cells per region from an objects table.

    Parameters
    ----------
    objects : DataFrame
        :func:`objects_table` output.
    regions : DataFrame
        One row per region with ``region`` and ``region_area_mm2`` (the assay's region
        table); the count columns are added to it.
    has_dapi : bool
        Whether a DAPI channel was read (else ``n_gfp_nucleated`` is NA).
    flag : str
        Written to the ``flag`` column.

    Returns
    -------
    DataFrame
        ``regions`` with ``n_gfp_cells``, ``gfp_cells_per_mm2``, ``n_gfp_objects``,
        ``n_gfp_nucleated``, ``n_rejected_autofluorescent``, ``n_rejected_size``,
        ``n_rejected_<reason>`` per :data:`REJECT_REASONS`, ``n_objects`` and ``flag``.
    """
    summary = regions
    cls = objects["class"] if len(objects) else pd.Series(dtype=str)

    def count(sel: pd.Series) -> list[int]:
        return [int((sel & (objects["region"] == r)).sum()) if len(objects) else 0
                for r in summary["region"]]

    gfp_obj = cls.isin(["gfp_cell", "no_nucleus"])
    summary["n_gfp_cells"] = count(cls == "gfp_cell")
    area = summary["region_area_mm2"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        summary["gfp_cells_per_mm2"] = np.where(area > 0, summary["n_gfp_cells"] / area, np.nan)
    summary["n_gfp_objects"] = count(gfp_obj)
    if has_dapi:
        nucleated = objects["nucleated"].fillna(False).astype(bool) if len(objects) \
            else pd.Series(dtype=bool)
        summary["n_gfp_nucleated"] = count(gfp_obj & nucleated)
    else:
        summary["n_gfp_nucleated"] = pd.array([pd.NA] * len(summary), dtype="Int64")
    summary["n_rejected_autofluorescent"] = count(cls == "autofluorescent")
    summary["n_rejected_size"] = count(cls.isin(["too_small", "too_large"]))
    reason = objects["reason"].fillna("") if len(objects) else pd.Series(dtype=str)
    for r in REJECT_REASONS:
        named = reason.str.contains(rf"(?:^|\+){r}(?:\+|$)", regex=True) if len(objects) \
            else reason
        summary[f"n_rejected_{r}"] = count(named & (cls != "gfp_cell")) if len(objects) else 0
    summary["n_objects"] = count(cls.notna()) if len(objects) else 0
    summary["flag"] = flag
    return summary


def perinuclear_calls(ctx: CandidateMeasurer, masks: Mapping[str, np.ndarray],
                      union: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Segment every nucleus in the regions; GFP+ when its perinuclear ring is GFP-bright.

    Parameters
    ----------
    ctx : CandidateMeasurer
        The detection's context (with a DAPI reader): channels, backgrounds, noise σ.
    masks : mapping of str to ndarray of bool
        Regions.
    union : ndarray of bool
        All regions together; nuclei outside are dropped.

    Returns
    -------
    table : DataFrame
        One row per nucleus and region: centroid, area, mean GFP signal of the ring of
        ``ring_um`` around it and that in local σ, reference/GFP ratio of the ring, and
        ``gfp_positive`` (ring at least ``detection_sigma``, ratio not above
        ``max_reference_ratio``).
    labels : ndarray
        The nucleus label image.
    """
    from skimage.segmentation import expand_labels

    p, px, dapi = ctx.p, ctx.px, ctx.dapi
    full = (slice(0, ctx.shape[0]), slice(0, ctx.shape[1]))
    nuc = dapi.nuclei(*full)
    if not union.all():
        nuc[~union] = 0
    n = int(nuc.max())
    cols = ["region", "label", "centroid_y_um", "centroid_x_um", "area_um2",
            "ring_gfp_signal", "ring_gfp_sigma", "ring_reference_ratio", "gfp_positive"]
    if n == 0:
        return pd.DataFrame(columns=cols), nuc
    grown = expand_labels(nuc, distance=max(1.0, p.ring_um / px))
    ring = (grown > 0) & (nuc == 0)
    gfp_sig = ctx.gfp.astype(np.float32) - ctx.bg_gfp.full()
    sums = np.bincount(grown[ring], weights=gfp_sig[ring], minlength=n + 1)
    counts = np.bincount(grown[ring], minlength=n + 1)
    area = np.bincount(nuc.ravel(), minlength=n + 1)
    yy, xx = np.indices(nuc.shape)
    cy = np.bincount(nuc.ravel(), weights=yy.ravel(), minlength=n + 1)
    cx = np.bincount(nuc.ravel(), weights=xx.ravel(), minlength=n + 1)
    del yy, xx
    ids = np.arange(1, n + 1)
    ok = area[ids] > 0
    ids = ids[ok]
    with np.errstate(divide="ignore", invalid="ignore"):
        ring_mean = sums[ids] / np.maximum(counts[ids], 1)
        r = (cy[ids] / area[ids])
        c = (cx[ids] / area[ids])
    ri, ci = np.round(r).astype(int), np.round(c).astype(int)
    t = ctx.noise.sigma.factor
    ti = np.minimum(ri // t, ctx.noise.sigma.values.shape[0] - 1)
    tj = np.minimum(ci // t, ctx.noise.sigma.values.shape[1] - 1)
    sg = ctx.noise.sigma.values[ti, tj]
    # the ring mean averages many pixels, the block σ a block of f² pixels: comparable noise
    z = ring_mean / sg
    positive = z >= p.detection_sigma
    table = pd.DataFrame({"label": ids, "centroid_y_um": r * px, "centroid_x_um": c * px,
                          "area_um2": area[ids] * px ** 2, "ring_gfp_signal": ring_mean,
                          "ring_gfp_sigma": z})
    if ctx.ref is not None:
        ref_sig = ctx.ref.astype(np.float32) - ctx.bg_ref.full()
        rsum = np.bincount(grown[ring], weights=ref_sig[ring], minlength=n + 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (rsum[ids] / np.maximum(counts[ids], 1)) / ring_mean
        table["ring_reference_ratio"] = ratio
        positive &= ~(ratio > p.max_reference_ratio)
    else:
        table["ring_reference_ratio"] = np.nan
    table["gfp_positive"] = positive
    out = []
    for region, m in masks.items():
        inside = m[ri, ci]
        out.append(table[inside].assign(region=region))
    return pd.concat(out, ignore_index=True)[cols], nuc


def add_nuclei_counts(summary: pd.DataFrame, nuclei: pd.DataFrame) -> pd.DataFrame:
    """Add ``n_nuclei``, ``n_gfp_positive_nuclei`` and ``gfp_positive_nuclei_pct`` per region.

    Parameters
    ----------
    summary : DataFrame
        One row per region (``region`` column).
    nuclei : DataFrame
        :func:`perinuclear_calls` table.

    Returns
    -------
    DataFrame
        A copy of ``summary`` with the three columns.
    """
    summary = summary.copy()
    n_all, n_pos = [], []
    for region in summary["region"]:
        sel = nuclei[nuclei["region"] == region]
        n_all.append(len(sel))
        n_pos.append(int(sel["gfp_positive"].sum()))
    summary["n_nuclei"] = n_all
    summary["n_gfp_positive_nuclei"] = n_pos
    with np.errstate(divide="ignore", invalid="ignore"):
        summary["gfp_positive_nuclei_pct"] = np.where(
            np.asarray(n_all) > 0, 100.0 * np.asarray(n_pos) / np.maximum(n_all, 1), np.nan)
    return summary


_SUM_COLUMNS = ("n_gfp_cells", "n_gfp_objects", "n_gfp_nucleated", "n_rejected_autofluorescent",
                "region_area_mm2")


def aggregate_by_level(
    table: pd.DataFrame,
    *,
    sections: pd.DataFrame | None = None,
    levels: Sequence[str] | None = None,
    by: Sequence[str] = ("animal", "level", "region"),
) -> pd.DataFrame:
    """GFP+ cell counts per animal × spinal level × region, summed over sections.

    Parameters
    ----------
    table : DataFrame
        The assay's summary table (one row per image × region; sections with no cell are rows
        with ``n_gfp_cells = 0``), or its objects table (one row per object; pass
        ``sections`` then, since a section with no object at all has no row there).
    sections : DataFrame, optional
        With an objects table: the summary table (or any table with the ``by`` columns and
        ``section``/``image``) listing every section that was measured.
    levels : sequence of str, optional
        Keep only these levels, in this order (``("L2", "L3", "L4")``).
    by : sequence of str
        Grouping columns; ``level`` is required, absent others are skipped.

    Returns
    -------
    DataFrame
        ``by`` columns, ``n_sections``, ``n_gfp_cells``, ``gfp_cells_per_section``,
        ``n_gfp_objects``, ``n_gfp_nucleated``, ``n_rejected_autofluorescent``,
        ``region_area_mm2`` and ``gfp_cells_per_mm2`` (cells over the summed area).

    Raises
    ------
    ParamsError
        No ``level`` column, or an objects table without ``sections``.
    """
    df = table.copy()
    is_objects = "class" in df.columns and "n_gfp_cells" not in df.columns
    if is_objects:
        if sections is None:
            raise ParamsError(
                "aggregate_by_level got an objects table without sections=: a section with "
                "no object has no row there and would not be counted. Pass the summary "
                "table as sections=summary (or aggregate the summary table itself).")
        base = sections.copy()
    else:
        base = df
    if "level" not in base.columns:
        raise ParamsError("aggregate_by_level needs a 'level' column: give the level with "
                          "--level L3 / --meta level=L3 or run(..., level='L3')")
    keys = [k for k in by if k in base.columns]
    section_key = "section" if "section" in base.columns and base["section"].notna().all() \
        else "image"
    for t in (base, df):
        if "level" in t.columns:
            t["level"] = t["level"].map(normalize_level)
    if is_objects:
        group_cols = list(dict.fromkeys([*keys, section_key]))
        per_section = base.groupby(group_cols, dropna=False).agg(
            region_area_mm2=("region_area_mm2", "sum") if "region_area_mm2" in base.columns
            else (section_key, "size")).reset_index()
        if "region_area_mm2" not in base.columns:
            per_section["region_area_mm2"] = np.nan
        counts = df.assign(
            n_gfp_cells=df["class"].eq("gfp_cell"),
            n_gfp_objects=df["class"].isin(["gfp_cell", "no_nucleus"]),
            n_gfp_nucleated=df["class"].isin(["gfp_cell", "no_nucleus"])
            & (df["nucleated"].fillna(False).astype(bool) if "nucleated" in df.columns
               else False),
            n_rejected_autofluorescent=df["class"].eq("autofluorescent"),
        ).groupby(group_cols, dropna=False)[list(_SUM_COLUMNS[:4])].sum().reset_index()
        base = per_section.merge(counts, on=group_cols, how="left")
        base[list(_SUM_COLUMNS[:4])] = base[list(_SUM_COLUMNS[:4])].fillna(0).astype(int)
    if levels is not None:
        wanted = [normalize_level(v) for v in levels]
        base = base[base["level"].isin(wanted)]
    agg = {c: (c, "sum") for c in _SUM_COLUMNS if c in base.columns}
    out = base.groupby(keys, dropna=False).agg(
        n_sections=(section_key, "nunique"), **agg).reset_index()
    out["gfp_cells_per_section"] = out["n_gfp_cells"] / out["n_sections"]
    if "region_area_mm2" in out.columns:
        with np.errstate(divide="ignore", invalid="ignore"):
            out["gfp_cells_per_mm2"] = np.where(out["region_area_mm2"] > 0,
                                                out["n_gfp_cells"] / out["region_area_mm2"],
                                                np.nan)
    if levels is not None:
        order = {v: i for i, v in enumerate(wanted)}
        out = out.sort_values(by=[k for k in keys if k != "level"] + ["level"],
                              key=lambda s: s.map(order) if s.name == "level" else s)
    first = [*keys, "n_sections", "n_gfp_cells", "gfp_cells_per_section"]
    return out[first + [c for c in out.columns if c not in first]].reset_index(drop=True)


def caption_lines(name: str, objects: pd.DataFrame, summary: pd.DataFrame) -> list[str]:
    """Return the QC caption of the gfp-cells assay: counted cells and rejections per region.

    Parameters
    ----------
    name : str
        The image's name (the first line starts with it).
    objects : DataFrame
        The assay's objects table (``class`` and ``region`` columns are read).
    summary : DataFrame
        The assay's summary, one row per region.

    Returns
    -------
    list of str
        Three lines: counted cells, rejected autofluorescent objects, and the other rejection
        classes, each per region.
    """
    def per_region(col: str) -> str:
        return ", ".join(f"{r}={n}" for r, n in zip(summary["region"], summary[col]))

    def per_class(cls: str) -> str:
        sel = objects[objects["class"] == cls] if len(objects) else objects
        return ", ".join(f"{r}={int((sel['region'] == r).sum()) if len(sel) else 0}"
                         for r in summary["region"])

    lines = [f"{name}: GFP+ cells (green circle = the cell's own size) "
             f"{per_region('n_gfp_cells')}",
             f"rejected: autofluorescent (vermillion x) {per_region('n_rejected_autofluorescent')}",
             f"fibre (sky blue) {per_class('fibre')}; texture (purple) {per_class('texture')}"
             f"; low contrast (blue) {per_class('low_contrast')}"
             f"; size (grey) {per_region('n_rejected_size')}"]
    return lines
