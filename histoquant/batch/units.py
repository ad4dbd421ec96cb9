"""One unit of work — one image through one assay — and how a worker carries it out.

:func:`process_unit` is a pure function of its :class:`Unit`: it reads the image, runs the
assay (in one piece, or section by section and tile by tile for whole slides), and returns the
tables, a QC picture and a record of what happened. It never writes files, so it runs the same
in this process, in a process pool or on a Dask worker on another machine; the caller persists
the result. Any error becomes part of the returned record instead of stopping the study.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import math
import re
import time
import traceback
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..assays.base import AssaySpec
from ..errors import HistoquantError
from ..io import Image, limits, read_image
from ..io.readers import LAZY_BYTES
from ..output import PNG_COMPRESS_LEVEL
from ..params import AssayParams
from ..results import AssayResult
from .config import QCOptions, SlideOptions
from .samples import NO_LEVEL, Sample

if TYPE_CHECKING:
    from ..slides import Overview
    from ..tiling import MaskSource, RegionSource

__all__ = ["Unit", "UnitOutput", "UNIT_FILES", "process_unit", "unit_key", "failed_output",
           "calibration_summary"]

log = logging.getLogger(__name__)

# Slide kept around a section handed to the anatomy (the rat cord is ≈ 4 mm wide).
_ANATOMY_MARGIN_UM = 500.0


@dataclass(frozen=True)
class Unit:
    """Everything a worker needs to measure one image with one assay."""

    key: str
    sample: Sample
    assay: str
    spec: AssaySpec
    params: AssayParams
    channels: dict[str, Any]
    regions: Any
    pixel_size_um: float | None
    split_sections: bool
    slides: SlideOptions
    qc: QCOptions
    modality: str | None = None  # the study's override; None detects from the pixels
    #: also return the label image and the regions the assay found, as files (the
    #: single-assay command writes them beside its tables; a study keeps only its tables)
    label_files: bool = False
    #: a model file (``histoquant train objects``) applied to every result; None: the rules
    model: str | None = None
    #: the study-wide threshold this unit is measured with (``params`` already hold its
    #: value): its record (:meth:`histoquant.batch.thresholds.StudyThreshold.unit_record`),
    #: whose ``label`` replaces the summary's ``column`` (``threshold_method``); None: the
    #: assay sets its threshold per image
    study_threshold: dict[str, Any] | None = None


@dataclass
class UnitOutput:
    """What a unit produced: tables (with ``section``), pictures, and a record."""

    key: str
    ok: bool
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    objects: pd.DataFrame = field(default_factory=pd.DataFrame)
    qc_png: bytes | None = None
    thumb_png: bytes | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: the part file's bytes, encoded by the worker so that the process collecting results
    #: only writes them (see :func:`histoquant.batch.store.encode_part`)
    part: bytes | None = None
    #: encoded files of the result, by name (:data:`UNIT_FILES`), when ``Unit.label_files``
    files: dict[str, bytes] = field(default_factory=dict)


#: The files a unit may return beside its tables: the label image (ImageJ TIFF with its
#: calibration) and the regions the assay found (QuPath GeoJSON and ImageJ RoiSet).
UNIT_FILES = ("labels.tif", "regions.geojson", "regions.zip")


def failed_output(unit: Unit, error: str, message: str, flag: str) -> UnitOutput:
    """Return the record of a unit that failed without being measured.

    Parameters
    ----------
    unit : Unit
        The unit.
    error : str
        The error's name (``ImageReadError``, ``WorkerDied``).
    message : str
        What happened, for ``errors.csv``.
    flag : str
        The report's flag (``failed: unreadable``).

    Returns
    -------
    UnitOutput
        ``ok`` False, with ``meta['error']``.
    """
    s = unit.sample
    return UnitOutput(key=unit.key, ok=False, meta={
        "image": s.image, "file": s.rel, "assay": unit.assay, "key": unit.key,
        "flags": [flag],
        "error": {"image": s.image, "file": s.rel, "assay": unit.assay, "error": error,
                  "message": message}})


def unit_key(input_sha256: str, spec_name: str, settings: dict[str, Any]) -> str:
    """Return a result's identity: the input's hash, the assay and every setting that shapes it.

    Parameters
    ----------
    input_sha256 : str
        The input file's SHA-256.
    spec_name : str
        The assay's name.
    settings : dict
        Every setting that changes the result (parameters, regions, channels, ...).

    Returns
    -------
    str
        A 24-character hex digest (also the name of the unit's part file).
    """
    from .. import __version__

    blob = json.dumps({"input": input_sha256, "assay": spec_name, "histoquant": __version__,
                       **settings}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _png(rgb: np.ndarray, max_px: int) -> bytes:
    from PIL import Image as PILImage

    im = PILImage.fromarray(np.ascontiguousarray(rgb.astype(np.uint8)))
    if max(im.size) > max_px:
        im.thumbnail((max_px, max_px), PILImage.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def _caption(sample: Sample, assay: str, summary: pd.DataFrame) -> list[str]:
    from ..aggregate import measure_columns

    ids = [x for x in (sample.animal, sample.group, sample.level) if x and x != NO_LEVEL]
    lines = [" · ".join([sample.image, assay, *([" ".join(ids)] if ids else [])])]
    cols = [c for c in measure_columns(summary, exclude=("region_area_mm2",))][:2]
    for _, row in summary.head(4).iterrows():
        vals = ", ".join(f"{c} {row[c]:.4g}" for c in cols if pd.notna(row[c]))
        lines.append(f"{row.get('section', '')} {row.get('region', '')}: {vals}")
    return lines


def _flags(summary: pd.DataFrame, warnings: list[str], saturated: float,
           qc: QCOptions, anatomy_quality: list[float] | None = None) -> list[str]:
    flags = []
    if saturated > qc.max_saturated_pct:
        flags.append(f"saturated {saturated:.2f} % of pixels")
    if anatomy_quality and min(anatomy_quality) < qc.min_anatomy_score:
        flags.append(f"low anatomy score {min(anatomy_quality):.2f}")
    for col in summary.columns:
        if col.lower().endswith("score") and pd.api.types.is_numeric_dtype(summary[col]):
            low = summary[col].min()
            if pd.notna(low) and low < qc.min_anatomy_score:
                flags.append(f"low {col} {low:.2f}")
    flags.extend(f"warning: {w}" for w in dict.fromkeys(warnings))
    return flags


def _region_source(unit: Unit, image: Image, view: Overview, section_mask: np.ndarray | None,
                   info: dict[str, Any]) -> RegionSource:
    """Regions for a tiled run, at full resolution, limited to one section."""
    from ..rois import read_regions
    from ..tiling import MaskSource, PolygonSource, WholeImage

    section = MaskSource({"section": section_mask}, view.scale) \
        if section_mask is not None else None
    regions = unit.sample.roi if unit.sample.roi is not None else unit.regions
    if regions is None:
        return MaskSource({"tissue": section_mask}, view.scale) if section is not None \
            else WholeImage()
    if isinstance(regions, str) and regions == "auto":
        src = _auto_regions(unit, image, view, section, info)
    else:
        polys = {}
        for r in read_regions(regions):
            polys.setdefault(r.name, []).extend(r.to_polygons())
        src = PolygonSource(polys)
    return src.restrict(section) if section is not None else src


def _auto_regions(unit: Unit, image: Image, view: Overview, section: MaskSource | None,
                  info: dict[str, Any]) -> MaskSource:
    """Anatomy on a reduced copy of one section (or the image) → low-resolution masks.

    The copy has about ``slides.anatomy_pixel_um`` per pixel, so the anatomy never sees the
    full-resolution slide; other sections inside the crop are painted with the background
    so that the anatomy sees one section.
    """
    from ..errors import RegionError
    from ..slides import read_region
    from ..tiling import MaskSource

    try:
        from .. import anatomy
    except ImportError as exc:
        raise RegionError("regions: auto needs histoquant.anatomy, which is missing") from exc
    px = image.require_pixel_size()
    h, w = image.shape_yx
    # a margin of slide around the section: the anatomy treats tissue touching the image
    # edge as a cut (partial) section
    margin = math.ceil(_ANATOMY_MARGIN_UM / (px * max(view.scale)))
    bounds = section.bounds(pad=margin) if section is not None else (0, h, 0, w)
    bounds = (max(0, bounds[0]), min(h, bounds[1]), max(0, bounds[2]), min(w, bounds[3]))
    factor = max(1, int(unit.slides.anatomy_pixel_um // px))
    data, scale = read_region(image, bounds, factor)
    if section is not None:
        # which crop pixels belong to this section: sample the section mask at their centres
        smask = next(iter(section.masks.values()))
        rows = (bounds[0] + (np.arange(data.shape[0]) + 0.5) * scale[0]) / section.scale[0]
        cols = (bounds[2] + (np.arange(data.shape[1]) + 0.5) * scale[1]) / section.scale[1]
        keep = smask[np.ix_(np.clip(rows.astype(np.intp), 0, smask.shape[0] - 1),
                            np.clip(cols.astype(np.intp), 0, smask.shape[1] - 1))]
        if (~keep).any() and (~smask).any():
            bg = np.median(view.data[~smask], axis=0)
            data = np.where(keep[..., None] if data.ndim == 3 else keep, data, bg)
    dtype = image.dtype
    if np.issubdtype(dtype, np.integer):
        data = np.clip(np.round(data), np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
    small = Image(data, axes="YXC" if data.ndim == 3 else "YX", pixel_size_um=px * scale[1],
                  channel_names=image.channel_names, rgb=image.rgb,
                  metadata={"name": image.name})
    masks = anatomy.auto_regions(small, unit.spec.auto_regions)
    quality = _anatomy_quality(anatomy, small)
    if quality is not None:
        info.setdefault("anatomy_quality", []).append(round(quality, 3))
    return MaskSource({k: np.asarray(v, bool) for k, v in masks.items()}, scale,
                      origin=(bounds[0], bounds[2]))


def _anatomy_quality(anatomy: ModuleType, small: Image) -> float | None:
    """Return the anatomy's quality score of the section, when it offers one."""
    find = getattr(anatomy, "find_sections", None)
    if find is None:
        return None
    try:
        found = find(small)
        scores = [float(s.quality) for s in getattr(found, "sections", [])]
    except Exception:  # a score is a QC extra: its absence must not fail the measurement
        return None
    return min(scores) if scores else None


def _section_ids(base: str, n: int) -> list[str]:
    if n == 1:
        return [base or "1"]
    return [f"{base}.{i}" if base else str(i) for i in range(1, n + 1)]


def _with_section(df: pd.DataFrame, base: str) -> pd.DataFrame:
    """Add the sample's section to a table.

    An assay that numbers sections itself keeps its numbers (prefixed by the sheet's section
    when the image holds several).
    """
    if "section" in df.columns and df["section"].notna().any():
        theirs = df["section"].astype(str)
        if not base:
            return df.assign(section=theirs)
        if theirs.nunique() <= 1:
            return df.assign(section=base)
        return df.assign(section=base + "." + theirs)
    return df.assign(section=base or "1")


def _run_direct(unit: Unit, image: Image) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray,
                                                    list[str], float, dict]:
    from ..qc import draw_mask_outlines
    from ..slides import display_rgb, saturated_pct

    regions = str(unit.sample.roi) if unit.sample.roi is not None else unit.regions
    res = _with_model(unit, unit.spec.run(image, regions=regions, params=unit.params,
                                          channels=unit.channels, **_run_kwargs(unit)))
    summary = _with_section(res.summary, unit.sample.section)
    objects = _with_section(res.objects, unit.sample.section)
    if res.qc is not None:
        qc = np.asarray(res.qc)
    else:
        data = np.asarray(image.data)
        if image.axes.startswith("Z"):
            data = data.max(axis=0)
        # max_value, not the dtype's: a float image may hold 0–255 values
        qc = display_rgb(data, image.rgb, image.max_value())
        if res.masks:
            masks = {k: v for k, v in res.masks.items()
                     if getattr(v, "shape", None) == qc.shape[:2] and v.dtype == bool}
            draw_mask_outlines(qc, masks)
    sat = saturated_pct(np.asarray(image.data), image.dtype)
    extra = {name: _with_section(t, unit.sample.section) for name, t in
             res.tables.items() if isinstance(t, pd.DataFrame)}
    info = {"mode": "direct", "n_tiles": 1, "n_sections": 1, "extra": extra}
    if unit.label_files:
        info["files"] = _result_files(res)
    return summary, objects, qc, list(res.warnings), sat, info


def _loaded_model(unit: Unit) -> Any:
    """Return the unit's model (checked when the run was planned), read once per process."""
    if unit.model is None:
        return None
    from ..learn.assay_models import cached_assay_model

    return cached_assay_model(unit.model, unit.spec.name)


def _run_kwargs(unit: Unit) -> dict[str, Any]:
    """``model=`` for the assay's run when the unit's model replaces a step inside it."""
    if unit.model is None:
        return {}
    from ..learn.assay_models import run_kwargs

    return run_kwargs(_loaded_model(unit))


def _with_model(unit: Unit, res: AssayResult) -> AssayResult:
    """Apply the unit's ``objects`` model to one result (other kinds ran inside the run)."""
    if unit.model is None:
        return res
    from ..learn.assay_models import apply_assay_model

    return apply_assay_model(res, _loaded_model(unit))


def _result_files(res: AssayResult) -> dict[str, bytes]:
    """Encode a result's label image and found regions as :data:`UNIT_FILES`."""
    import tempfile
    from pathlib import Path

    from ..output import encode_label_image

    files = {}
    if res.labels is not None:
        files["labels.tif"] = encode_label_image(res.labels, res.pixel_size_um)
    regions = res.extra.get("regions") if isinstance(res.extra, dict) else None
    if regions:
        from ..rois import write_regions

        # the region writers take paths; a private scratch folder keeps the worker's
        # promise to write nothing the run can see
        with tempfile.TemporaryDirectory(prefix="histoquant-") as tmp:
            for name in ("regions.geojson", "regions.zip"):
                files[name] = write_regions(list(regions), Path(tmp) / name).read_bytes()
    return files


def _run_slide(unit: Unit, image: Image) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray,
                                                   list[str], float, dict]:
    from ..qc import draw_mask_outlines
    from ..slides import display_rgb, find_sections, overview
    from ..tiling import run_tiled

    opts = unit.slides
    px = image.require_pixel_size()
    view = overview(image, opts.overview_max_px)
    if unit.split_sections:
        labels = find_sections(view, min_area_mm2=opts.min_section_area_mm2)
        masks = [labels == i for i in range(1, int(labels.max()) + 1)]
    else:
        masks = [None]
    ids = _section_ids(unit.sample.section, len(masks))
    overlap_px = math.ceil(opts.overlap_um / px)
    info: dict[str, Any] = {}
    summaries, objects, warnings = [], [], []
    n_tiles = saturated = measured = 0
    for sid, mask in zip(ids, masks):
        src = _region_source(unit, image, view, mask, info)
        bounds = None
        if mask is not None:
            from ..tiling import MaskSource

            bounds = MaskSource({"s": mask}, view.scale).bounds()
        res = run_tiled(unit.spec, image, src, params=unit.params, channels=unit.channels,
                        tile_px=opts.tile_px, overlap_px=overlap_px, bounds=bounds,
                        run_kwargs=_run_kwargs(unit))
        n_tiles += res.n_tiles
        if res.calibration is not None:
            info.setdefault("calibration", {})[sid] = calibration_summary(res.calibration)
        saturated += res.saturated_px
        measured += res.measured_px
        warnings.extend(res.warnings)
        summary, objs = res.summary, res.objects
        if unit.model is not None:  # on the section's stitched objects, as on a whole image
            applied = _with_model(unit, AssayResult(unit.spec.name, image.name, objs, summary,
                                                    pixel_size_um=px))
            summary, objs = applied.summary, applied.objects
            warnings.extend(applied.warnings)
        summaries.append(summary.assign(section=sid))
        if len(objs):
            objects.append(objs.assign(section=sid))
    summary = pd.concat(summaries, ignore_index=True)
    objs = pd.concat(objects, ignore_index=True) if objects else pd.DataFrame(
        columns=["image", "region", "section"])
    if len(objs) and "label" in objs.columns:
        objs["label"] = np.arange(1, len(objs) + 1)
    # QC: the overview with section outlines and a dot on every object
    qc = display_rgb(view.data, image.rgb, view.dtype_max)
    if masks[0] is not None:
        draw_mask_outlines(qc, {sid: m for sid, m in zip(ids, masks)})
    _draw_dots(qc, objs, px, view.scale, unit.spec.positions[0])
    sat = 100.0 * saturated / measured if measured else 0.0
    info.update(mode="tiled", n_tiles=n_tiles, n_sections=len(masks),
                overview_scale=list(view.scale))
    return summary, objs, qc, warnings, sat, info


def calibration_summary(calibration: dict[str, Any]) -> dict[str, Any]:
    """Return the scalar statistics of a tiled run's calibration, for run.json.

    Thresholds, noise, background levels, the modality and the reading step are kept; grids
    and per-channel lists (a background field can hold thousands of values, as a list or as
    an encoded string) are left out.

    Parameters
    ----------
    calibration : dict
        ``TiledResult.calibration``.

    Returns
    -------
    dict
        The entries that are numbers, strings or booleans, nested dicts flattened with ``.``.
    """
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, (bool, int, float)) or value is None or (
                isinstance(value, str) and len(value) <= 200):
            out[prefix] = value

    walk("", calibration)
    return out


def _draw_dots(rgb: np.ndarray, objects: pd.DataFrame, px: float,
               scale: tuple[float, float], position: tuple[str, str]) -> None:
    ry, rx = position
    if not len(objects) or ry not in objects.columns or rx not in objects.columns:
        return
    r = np.clip((objects[ry].to_numpy(float) / px / scale[0]).astype(int), 0,
                rgb.shape[0] - 1)
    c = np.clip((objects[rx].to_numpy(float) / px / scale[1]).astype(int), 0,
                rgb.shape[1] - 1)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            rgb[np.clip(r + dr, 0, rgb.shape[0] - 1),
                np.clip(c + dc, 0, rgb.shape[1] - 1)] = (0, 158, 115)


def _load(image: Image) -> np.ndarray:
    from ..errors import ImageReadError

    try:
        return np.asarray(image.data[...])
    except MemoryError:
        raise
    except Exception as exc:
        raise ImageReadError(f"{image.source}: the pixels could not be read ({type(exc).__name__}"
                             f": {exc}); the file may be damaged or truncated") from exc


def process_unit(unit: Unit) -> UnitOutput:
    """Measure one image with one assay; never raises for a bad image.

    Parameters
    ----------
    unit : Unit
        The image, the assay and its settings.

    Returns
    -------
    UnitOutput
        ``ok`` False with ``meta['error']`` (type, message) when the image could not be
        measured.
    """
    from ..qc import add_caption

    t0 = time.perf_counter()
    s = unit.sample
    meta: dict[str, Any] = {"image": s.image, "file": s.rel, "assay": unit.assay,
                            "key": unit.key}
    try:
        # opened lazily: a whole slide is read tile by tile, a small image loaded below
        image = read_image(s.path, unit.pixel_size_um, channel_names=s.channel_names,
                           lazy=True, modality=unit.modality)
        image.metadata["name"] = s.image
        meta["shape_yx"] = list(image.shape_yx)
        meta["pixel_size_um"] = image.pixel_size_um
        h, w = image.shape_yx
        nbytes = h * w * image.n_channels * image.dtype.itemsize * (
            image.data.shape[0] if image.axes.startswith("Z") else 1)
        # never in one piece above the readers' in-memory limit, whatever max_direct_mpx says
        big = h * w > min(unit.slides.max_direct_mpx * 1e6, limits.MAX_IN_MEMORY_PIXELS) or \
            nbytes > LAZY_BYTES
        in_memory = nbytes <= unit.slides.in_memory_mb * 1024**2
        if not isinstance(image.data, np.ndarray) and (in_memory or not (
                unit.split_sections or big)):
            # one read of a small file beats many small window reads
            image = dataclasses.replace(image, data=_load(image),
                                        modality=image.known_modality)
        if unit.split_sections or big:
            summary, objects, qc, warnings, sat, info = _run_slide(unit, image)
        else:
            summary, objects, qc, warnings, sat, info = _run_direct(unit, image)
        extra = info.pop("extra", {})
        files = info.pop("files", {})
        meta.update(info)
        summary = summary.assign(image=s.image)
        if unit.study_threshold is not None:
            # "fixed" would hide where the value came from: say study:mad(vehicle)
            column = unit.study_threshold["column"]
            if column in summary.columns:
                summary[column] = unit.study_threshold["label"]
            meta["study_threshold"] = unit.study_threshold
        if len(objects):
            objects = objects.assign(image=s.image)
        # the reader's warnings (an unusual pixel size) first: they concern every number
        warnings = list(image.metadata.get("warnings", [])) + list(warnings)
        meta["warnings"] = warnings
        meta["saturated_pct"] = round(sat, 4)
        meta["flags"] = _flags(summary, warnings, sat, unit.qc, info.get("anatomy_quality"))
        caption = _caption(s, unit.assay, summary)
        if unit.study_threshold is not None:
            # the assay's own overlay says "fixed": say where the value came from
            caption.append(f"study-wide threshold {unit.study_threshold['value']:.4g} "
                           f"({unit.study_threshold['label']})")
        qc = add_caption(np.asarray(qc, dtype=np.uint8), caption)
        out = UnitOutput(key=unit.key, ok=True, summary=summary, objects=objects,
                         qc_png=_png(qc, unit.qc.overlay_max_px),
                         thumb_png=_png(qc, unit.qc.thumbnail_px), meta=meta,
                         extra={k: v.assign(image=s.image) for k, v in extra.items()
                                if re.fullmatch(r"\w+", k)}, files=files)
    except Exception as exc:  # a bad file or an assay bug must not stop the study
        expected = isinstance(exc, HistoquantError)
        if not expected:
            # a bug or an input histoquant does not recognise as bad: the last frames go to
            # the log (and run.json) for the bug report
            log.error("%s (%s): unexpected %s: %s\n%s", s.rel, unit.assay, type(exc).__name__,
                      exc, traceback.format_exc(limit=-8).rstrip())
        meta["error"] = {"image": s.image, "file": s.rel, "assay": unit.assay,
                         "error": type(exc).__name__,
                         "message": " ".join(str(exc).split()) or type(exc).__name__}
        if not expected:
            meta["traceback"] = traceback.format_exc(limit=-8)
        meta["flags"] = [f"failed: {type(exc).__name__}"]
        out = UnitOutput(key=unit.key, ok=False, meta=meta)
    meta["seconds"] = round(time.perf_counter() - t0, 3)
    if out.ok:
        from .store import encode_part

        out.part = encode_part(out)
    return out
