"""Evans Blue (EvB) extravasation: how much albumin-bound dye has left the capillaries.

Per image × region the assay reports the EvB-positive area (µm² and % of the region), the
background-corrected mean and integrated intensity, and — with a vessel channel — how much of
the positive area and intensity lies outside the vessels (extravascular) and a perivascular
profile (mean EvB intensity against distance from the nearest vessel).

Pipeline (each step's reason is in ``docs/evans_blue.md``):

1. The EvB channel (Z-stacks projected) is read as float32; saturation and bit depth are
   measured on the raw values.
2. Background: a coarse robust estimate (sigma-clipped median of 200 µm tiles of block means,
   measured only inside the regions) is subtracted, or the median of a reference region, or
   only the camera offset. With ``flatfield="background"`` the image is also divided by the
   background's shape (normalised to its mean), which evens out uneven illumination.
3. Threshold on the corrected image: automatic per image (median + k robust SD of the
   corrected region pixels, or Otsu/triangle), fixed, or study-wide (one value from
   :func:`study_threshold`). Positive patches are grown from seeds above
   ``seed_ratio × threshold`` into pixels above the threshold (hysteresis), and patches smaller
   than ``min_patch_area_um2`` are dropped.
   With a pixel classifier (``model=``, ``--model m.hqm``; :data:`LEAK_CLASSES`), the
   positive pixels are those where the leak class is the most probable one instead, and
   patches smaller than ``min_patch_area_um2`` are dropped as before.
4. With a vessel channel: vessels are thresholded, small specks dropped, lumens filled, and the
   mask dilated by ``vessel_margin_um``; positive pixels inside are intravascular, the rest
   extravascular. Distances to the nearest vessel give the profile and each patch's distance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..calibration import region_view, tile_origin
from ..errors import EmptyImageError, ParamsError, RegionError
from ..io.image import Image, check_not_empty
from ..params import AssayParams, param
from ..results import AssayResult
from ..segment.coarse_background import CoarseField, coarse_background
from ..segment.padding import padding_of_image
from ..segment.statistics import (
    CLIP_FRACTION,
    background_stats,
    block_any,
    block_counts,
    block_mean,
    block_sum,
    quantisation_step,
    sample_pixels,
)
from ._pixel_step import check_model_image, fluorescence_class_check, model_record
from .base import (
    AssaySpec,
    ChannelRole,
    ModelStep,
    Progress,
    prepare_image,
    region_table,
    resolve_channels,
    resolve_params,
    resolve_regions,
)
from .contract import REGION_AREA, Endpoint, ExtraTable, Measure

__all__ = ["EvansBlueParams", "run", "calibrate", "study_threshold", "threshold_sample",
           "pooled_threshold", "ThresholdSample", "corrected_channel", "SPEC", "LEAK_CLASSES"]

#: Names a pixel classifier's class may have for the positive (leaked tracer) pixels.
LEAK_CLASSES = ("leak", "evans_blue", "extravasation", "tracer")

# Pixels positive in 8 directions belong to one patch: a leak is a blob, not a lattice.
_CONN8 = np.ones((3, 3), dtype=bool)
_CONN4 = ndi.generate_binary_structure(2, 1)


@dataclass(frozen=True)
class EvansBlueParams(AssayParams):
    """Parameters of the Evans Blue assay (defaults explained in ``help``)."""

    #: Shown first in the GUI; the rest are folded away (AssayParams.common).
    common = ("reference_region", "threshold_method", "threshold", "vessel_margin_um",
              "saturation_warn_pct")

    background_method: str = param(
        "coarse", choices=("coarse", "reference", "none"),
        help="coarse: robust large-scale estimate inside the regions (follows uneven "
             "illumination and autofluorescence without absorbing leaks); reference: the "
             "median of the region named reference_region (a constant); none: subtract only "
             "dark_level (the ImageJ-macro rule).")
    background_scale_um: float = param(
        200.0, unit="µm", minimum=1.0,
        help="Tile size of the coarse background. Perivascular EvB deposits are 10–50 µm "
             "(Winkler et al. 2013, Acta Neuropathol) and a diffuse leak rarely exceeds "
             "~100 µm, so a 200 µm tile is mostly background even around a large leak, "
             "while illumination varies over mm [U].")
    reference_region: str = param(
        "white_matter",
        help="Region whose median is the background when background_method='reference'. "
             "White matter has few capillaries and little leak in this model [U]; any region "
             "name given in the regions works.")
    flatfield: str = param(
        "background", choices=("background", "none"),
        help="background: divide by the coarse background (less dark_level) normalised to its "
             "mean over the regions, so a leak reads the same at the field's edge as in its "
             "centre (widefield vignetting is often 10–30 % [U]); assumes autofluorescence is "
             "even inside the regions. none: no division.")
    dark_level: float = param(
        0.0, minimum=0.0,
        help="Camera offset in counts, subtracted before the flat-field division (0 suits "
             "confocal PMTs; set the sCMOS/CCD offset, e.g. 100, for widefield cameras).")
    threshold_method: str = param(
        "mad", choices=("mad", "triangle", "otsu", "fixed"),
        help="mad: median + threshold_k robust SDs of the corrected region pixels — anchored "
             "on the background, so it stays put when leaks are tiny (< 0.5 % area) where Otsu "
             "splits the noise in two and triangle depends on the histogram tail; fixed: the "
             "'threshold' value (for a study-wide threshold from study_threshold()).")
    threshold_k: float = param(
        2.5, minimum=0.0,
        help="Robust SDs above the background for a pixel to be positive. With hysteresis "
             "seeds at seed_ratio × this (4 SD) and a minimum patch area, pure noise gives "
             "< 0.01 % positive area, while leak pixels 5 SD bright are kept at > 99 %.")
    threshold: float = param(
        0.0,
        help="Fixed threshold in corrected intensity units (counts at mean illumination, "
             "background subtracted); used when threshold_method='fixed'.")
    seed_ratio: float = param(
        1.6, minimum=1.0,
        help="A patch must hold at least one pixel above seed_ratio × threshold (hysteresis, "
             "as in Canny edge detection): isolated noise pixels above the threshold are "
             "rejected, leak pixels near the threshold are kept. 1 = plain threshold.")
    min_patch_area_um2: float = param(
        5.0, unit="µm²", minimum=0.0,
        help="Patches smaller than this are dropped as noise: a quarter of the cross-section "
             "of one 6.4 µm capillary (Mayhew & Momoh 1974), far below a 10 µm perivascular "
             "deposit.")
    saturation_level: float = param(
        0.0, minimum=0.0,
        help="Raw value at which the camera saturates; 0 = automatic (the largest value of "
             "the file's bit depth, or 2^b − 1 for b = 8, 10, 12, 14 when the image reaches "
             "exactly that value, the mark of a 12-bit camera in a 16-bit file).")
    saturation_warn_pct: float = param(
        1.0, unit="%", minimum=0.0, maximum=100.0,
        help="Warn and flag the row when saturated pixels exceed this % of the positive area: "
             "their true intensity is unknown, so the integrated intensity is biased low "
             "by about this fraction or more.")
    vessel_threshold_method: str = param(
        "otsu", choices=("otsu", "mad", "triangle", "fixed"),
        help="Vessel channel threshold. Otsu: vessel stains are bright and cover 4–10 % of "
             "grey matter (≈ 4 % volume, Mayhew & Momoh 1974), a two-class histogram Otsu "
             "splits well.")
    vessel_threshold_k: float = param(
        3.0, minimum=0.0, help="Robust SDs above background when vessel_threshold_method='mad'.")
    vessel_threshold: float = param(
        0.0, help="Fixed vessel threshold (corrected units) when vessel_threshold_method="
                  "'fixed'.")
    vessel_min_area_um2: float = param(
        20.0, unit="µm²", minimum=0.0,
        help="Vessel specks smaller than this are dropped: a capillary seen over 4 µm of its "
             "6.4 µm width is ≈ 25 µm² (Mayhew & Momoh 1974).")
    vessel_lumen_max_um2: float = param(
        300.0, unit="µm²", minimum=0.0,
        help="Holes in the vessel mask up to this area are filled as lumens (an endothelial "
             "stain outlines a vessel cut across as a ring): ≈ a 20 µm wide venule. Larger "
             "holes are parenchyma enclosed by a capillary loop (intercapillary distance "
             "≈ 40 µm) and stay extravascular [U].")
    vessel_margin_um: float = param(
        1.0, unit="µm", minimum=0.0,
        help="The vessel mask is dilated by this much before splitting intra- from "
             "extravascular EvB: the endothelium and optical blur (≈ 0.5 µm at NA 0.75) "
             "make intravascular dye spill just outside the stained wall [U].")
    max_glow_margin_um: float = param(
        10.0, unit="µm", minimum=0.0, maximum=50.0,
        help="The vessel margin widens to the glow of dye inside the vessels: the distance at "
             "which the median EvB intensity of 1 µm rings around the vessels falls below the "
             "threshold, at most this much (0: never widen). Glow (blur of a bright lumen, "
             "≈ 2–5 µm in a widefield image) rings nearly every filled vessel, so it moves "
             "the median; a leak surrounds only some vessels and does not. 10 µm is twice "
             "the widest blur seen on real 8-bit fields and a quarter of the intercapillary "
             "distance (≈ 40 µm).")
    profile_bin_um: float = param(
        2.0, unit="µm", minimum=0.1,
        help="Bin width of the perivascular profile; a 10–50 µm halo spans 5–25 bins.")
    profile_max_um: float = param(
        50.0, unit="µm", minimum=0.0,
        help="Profile range from the vessel wall: perivascular deposits reach 10–50 µm "
             "(Winkler et al. 2013, Acta Neuropathol).")
    projection: str = param(
        "max", choices=("max", "mean", "sum"),
        help="How a Z-stack is reduced to 2D; max keeps each leak's in-focus intensity.")


# --------------------------------------------------------------------------------------------
# Corrected channels
# --------------------------------------------------------------------------------------------


@dataclass
class _Channel:
    """A background-corrected channel and what the correction found."""

    corrected: np.ndarray
    raw_max: float
    bit_depth: int
    saturation_level: float
    saturated: np.ndarray | None
    background_grid: Any  # CoarseField of raw background, or None
    background_const: float | None
    loc: float
    sd: float
    notes: tuple[str, ...] = ()
    clipped: bool = False
    field_norm: float | None = None  # the flat-field's mean background (less dark_level)
    ref_level: float | None = None  # the reference region's median, subtracted


def _channel_record(ch: _Channel, origin_yx: tuple[float, float], step: int) -> dict[str, Any]:
    """Return what :func:`_correct` measured on a channel, as plain full-resolution data.

    ``origin_yx``: full-resolution position of the measured array's pixel (0, 0); ``step``:
    full-resolution pixels per pixel of it.
    """
    field = None
    f = ch.background_grid
    if f is not None:
        field = {"grid": np.asarray(f.grid, np.float32).tolist(),
                 "spacing_px": float(f.spacing_px * step), "offset_px": float(f.offset_px * step),
                 "block_px": int(f.block_px * step), "valid": np.asarray(f.valid).tolist(),
                 "origin_yx": [float(origin_yx[0]), float(origin_yx[1])]}
    return {"raw_max": float(ch.raw_max), "bit_depth": int(ch.bit_depth),
            "saturation_level": float(ch.saturation_level), "clipped": bool(ch.clipped),
            "background_const": None if ch.background_const is None
            else float(ch.background_const),
            "field": field, "field_norm": None if ch.field_norm is None else float(ch.field_norm),
            "ref_level": None if ch.ref_level is None else float(ch.ref_level),
            "loc": float(ch.loc), "sd": float(ch.sd), "notes": list(ch.notes)}


def _apply_record(raw: np.ndarray, c: Mapping[str, Any], p: EvansBlueParams,
                  origin_yx: tuple[int, int]) -> _Channel:
    """Correct ``raw`` with the statistics of a calibration (``_channel_record``).

    As :func:`_correct`, without estimating them from ``raw`` (a tile whose pixel (0, 0) is at
    ``origin_yx``).
    """
    sat_level = float(c["saturation_level"])
    saturated = None
    if np.isfinite(sat_level) and raw.size and float(raw.max()) >= sat_level:
        saturated = raw >= sat_level
    bits = int(c["bit_depth"])
    if c["clipped"]:
        if p.dark_level:
            raw -= np.float32(p.dark_level)
        return _Channel(raw, float(c["raw_max"]), bits, sat_level, saturated, None,
                        float(p.dark_level), float(c["loc"]), float(c["sd"]), (), True)
    field = None
    rec = c["field"]
    if rec is not None:
        field = CoarseField(np.asarray(rec["grid"], np.float32), rec["spacing_px"],
                            rec["offset_px"], raw.shape, rec["block_px"],
                            np.asarray(rec["valid"], bool)).for_window(
            (origin_yx[0] - rec["origin_yx"][0], origin_yx[1] - rec["origin_yx"][1]), raw.shape)
    gain = None
    if p.flatfield == "background":
        norm = float(c["field_norm"])
        gain = field.map(lambda g: 1.0 / np.clip((g - p.dark_level) / norm, 0.25, 4.0))
    if p.background_method == "coarse":
        field.apply(raw, np.subtract)
    elif p.dark_level:
        raw -= np.float32(p.dark_level)
    if gain is not None:
        gain.apply(raw, np.multiply)
    if p.background_method == "reference":
        raw -= np.float32(c["ref_level"])
    const = c["background_const"]
    return _Channel(raw, float(c["raw_max"]), bits, sat_level, saturated, field, const,
                    float(c["loc"]), float(c["sd"]), (), False, c["field_norm"], c["ref_level"])


def _raw_channel(image: Image, index: int, p: EvansBlueParams) -> np.ndarray:
    arr = image.channel(index, projection=p.projection)
    if np.may_share_memory(arr, image.data):
        arr = arr.copy()  # corrected in place below; never touch the caller's pixels
    return arr


def _saturation_level(dtype: np.dtype, raw_max: float, p: EvansBlueParams) -> float:
    if p.saturation_level > 0:
        return float(p.saturation_level)
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.integer):
        return float("nan")
    bits = 8 * dtype.itemsize
    for b in (8, 10, 12, 14, 16):
        if b < bits and raw_max == 2**b - 1:
            return float(2**b - 1)
    return float(np.iinfo(dtype).max)


def _correct(raw: np.ndarray, *, dtype: np.dtype, support: np.ndarray,
             reference: np.ndarray | None, p: EvansBlueParams, px: float, source: str,
             role: str) -> _Channel:
    """Saturation, background subtraction and flat-field of one channel (in place)."""
    lo, raw_max = float(raw.min()), float(raw.max())
    sat_level = _saturation_level(dtype, raw_max, p)
    saturated = None
    if np.isfinite(sat_level) and raw_max >= sat_level:
        if lo >= sat_level:
            raise EmptyImageError(
                f"{source}: every pixel of the {role} channel is saturated "
                f"({sat_level:g}); nothing can be measured. Re-image with a shorter exposure "
                "or lower gain.")
        saturated = raw >= sat_level
    if lo == raw_max:
        check_not_empty(raw, f"{source} ({role} channel)")  # raises, naming the value
    # The raw values' quantisation step (1 for 8-bit and 12-in-16-bit data) and whether the
    # channel is clipped at its minimum (an 8-bit export's zero-clipped background): both
    # are properties of the raw data, read before any correction.
    raw_sample = sample_pixels(raw, support)
    step = quantisation_step(raw_sample, dtype)
    clipped = raw_sample.size > 0 and float(np.mean(raw_sample <= lo)) >= CLIP_FRACTION \
        and p.background_method != "reference"
    notes: list[str] = []
    if clipped:
        # A clipped background has no level to subtract or divide by: the clip is the
        # background. Subtract only the dark level and fit the background as a normal
        # distribution censored at the clip (segment.statistics.background_stats).
        frac = float(np.mean(raw_sample <= lo))
        notes.append(f"{source}: {100 * frac:.0f} % of the {role} channel's tissue pixels sit at "
                     f"its minimum ({lo:g}): a clipped background; its level and noise come "
                     "from the clipped-normal fit, and the flat-field and coarse background "
                     "are skipped")
        if p.dark_level:
            raw -= np.float32(p.dark_level)
        st = background_stats(sample_pixels(raw, support), step=step, dtype=dtype)
        return _Channel(raw, raw_max, 8 * np.dtype(dtype).itemsize, sat_level, saturated, None,
                        float(p.dark_level), st.level, st.sd, tuple(notes), True)
    field = None
    if p.background_method == "coarse" or p.flatfield == "background":
        cell = max(1, round(p.background_scale_um / px))
        field = coarse_background(raw, cell, support, source=source)
    gain = norm = None
    if p.flatfield == "background":
        norm = field.mean_over(support) - p.dark_level
        if not norm > 0:
            raise ParamsError(
                f"{source}: dark_level {p.dark_level:g} is not below the background of the "
                f"{role} channel ({norm + p.dark_level:.4g}); lower dark_level or use "
                "flatfield='none'")
        # Limit the correction to 4× either way: beyond that the 'background' is not
        # illumination but missing tissue or glass.
        gain = field.map(lambda g: 1.0 / np.clip((g - p.dark_level) / norm, 0.25, 4.0))
    if p.background_method == "coarse":
        field.apply(raw, np.subtract)
    elif p.dark_level:
        raw -= np.float32(p.dark_level)
    if gain is not None:
        gain.apply(raw, np.multiply)
    const = ref_level = None
    if p.background_method == "reference":
        ref_level = float(np.median(sample_pixels(raw, reference)))
        raw -= np.float32(ref_level)
        const = ref_level + p.dark_level  # back in raw counts (at mean illumination)
    elif p.background_method == "none":
        const = float(p.dark_level)
    # Median and MAD with high outliers clipped; the SD never below one quantisation step
    # (segment.statistics: a one-level JPEG ripple is not noise to threshold on).
    st = background_stats(sample_pixels(raw, support), step=step, dtype=dtype)
    return _Channel(raw, raw_max, 8 * np.dtype(dtype).itemsize, sat_level, saturated, field, const,
                    st.level, st.sd, tuple(notes), False, norm, ref_level)


def _threshold(ch: _Channel, support: np.ndarray, method: str, k: float,
               fixed: float) -> float:
    if method == "fixed":
        return float(fixed)
    if method == "mad":
        return ch.loc + k * ch.sd
    return _histogram_threshold(sample_pixels(ch.corrected, support), method)


def _histogram_threshold(values: np.ndarray, method: str) -> float:
    from skimage.filters import threshold_otsu, threshold_triangle

    values = np.asarray(values, dtype=np.float32)
    if values.size == 0 or float(values.min()) == float(values.max()):
        return float(values.max()) if values.size else float("nan")
    return float(threshold_otsu(values) if method == "otsu" else threshold_triangle(values))


# --------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------


def _positive_patches(corrected: np.ndarray, support: np.ndarray, threshold: float,
                      seed: float, min_px: float) -> tuple[np.ndarray, int]:
    """Hysteresis threshold + minimum area; returns (labels int32, count)."""
    low = corrected >= np.float32(threshold)
    low &= support
    labels, n = ndi.label(low, structure=_CONN8, output=np.int32)
    if n == 0:
        return labels, 0
    # Positive pixels are few: count and relabel only them, not the whole image.
    idx = np.flatnonzero(low)
    del low
    lab = labels.ravel()[idx]
    sizes = np.bincount(lab, minlength=n + 1)
    keep = sizes >= max(min_px, 1)
    if seed > threshold:
        seeded = np.zeros(n + 1, dtype=bool)
        seeded[lab[corrected.ravel()[idx] >= np.float32(seed)]] = True
        keep &= seeded
    keep[0] = False
    lut = np.zeros(n + 1, dtype=np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    labels.ravel()[idx] = lut[lab]
    return labels, int(keep.sum())


def _vessel_mask(corrected: np.ndarray, threshold: float, p: EvansBlueParams,
                 px: float) -> np.ndarray:
    vessel = corrected >= np.float32(threshold)
    area_px = px * px
    min_px = p.vessel_min_area_um2 / area_px
    if min_px > 1:
        lab, n = ndi.label(vessel, structure=_CONN8, output=np.int32)
        idx = np.flatnonzero(vessel)
        sizes = np.bincount(lab.ravel()[idx], minlength=n + 1)
        vessel.ravel()[idx[sizes[lab.ravel()[idx]] < min_px]] = False
        del lab, idx
    lumen_px = p.vessel_lumen_max_um2 / area_px
    if lumen_px >= 1:
        # Holes are background components not touching the image edge (4-connected, as
        # ImageJ's Fill Holes); only lumen-sized ones are filled.
        lab, n = ndi.label(~vessel, structure=_CONN4, output=np.int32)
        if n > 1:
            inner = np.ones(n + 1, dtype=bool)
            inner[0] = False
            inner[np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])] = False
            # Hole pixels are few: size them without counting the whole background.
            idx = np.flatnonzero(inner[lab])
            if idx.size:
                hole = lab.ravel()[idx]
                sizes = np.bincount(hole, minlength=n + 1)
                vessel.ravel()[idx[sizes[hole] <= lumen_px]] = True
        del lab
    return vessel


def _disk(radius_px: float) -> np.ndarray:
    r = int(np.floor(radius_px))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return yy**2 + xx**2 <= radius_px**2


def _dilate(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Dilation by a disk; small disks as an OR of shifted copies (faster than scipy's)."""
    if radius_px < 1:
        return mask.copy()
    disk = _disk(radius_px)
    if disk.shape[0] > 9:
        return ndi.binary_dilation(mask, structure=disk)
    r = disk.shape[0] // 2
    h, w = mask.shape
    out = mask.copy()
    for dy, dx in zip(*np.nonzero(disk)):
        dy, dx = int(dy) - r, int(dx) - r
        if dy == 0 and dx == 0:
            continue
        src = mask[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
        out[max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)] |= src
    return out


# --------------------------------------------------------------------------------------------
# Regions
# --------------------------------------------------------------------------------------------


def _regions(image: Image, regions: Any, p: EvansBlueParams,
             need_reference: bool = True) -> tuple[dict[str, np.ndarray],
                                                                      np.ndarray | None]:
    """Measured regions and the reference-region mask (when background_method='reference')."""
    if isinstance(regions, str) and regions == "auto":
        wanted = SPEC.auto_regions
        if p.background_method == "reference" and p.reference_region not in wanted:
            wanted = (*wanted, p.reference_region)
        masks = resolve_regions(image, "auto", wanted)
    else:
        masks = resolve_regions(image, regions, SPEC.auto_regions)
    masks = {name: np.asarray(m, dtype=bool) for name, m in masks.items()}
    # Padding, tile frames and the outside of a field of view are never tissue: out of the
    # measured areas and out of every background and noise estimate.
    pad = padding_of_image(image)
    if pad.any() and not pad.all():
        masks = {name: m & ~pad for name, m in masks.items()}
    reference = None
    # A calibrated tile has the reference level already; its part of the slide may not
    # reach the reference region.
    if p.background_method == "reference" and (need_reference or p.reference_region in masks):
        if p.reference_region not in masks:
            raise RegionError(
                f"{image.source}: background_method='reference' needs a region named "
                f"{p.reference_region!r}, but the regions are {', '.join(masks)}. Draw it, or "
                "set reference_region to one of these names.")
        reference = masks[p.reference_region]
    return masks, reference


# --------------------------------------------------------------------------------------------
# The assay
# --------------------------------------------------------------------------------------------


def _check_params(p: EvansBlueParams, vessel: bool) -> None:
    if p.threshold_method == "fixed" and not p.threshold > 0:
        raise ParamsError(
            "threshold_method='fixed' needs threshold > 0 (in corrected intensity units); "
            "compute a study-wide one with histoquant.assays.evans_blue.study_threshold()")
    if vessel and p.vessel_threshold_method == "fixed" and not p.vessel_threshold > 0:
        raise ParamsError("vessel_threshold_method='fixed' needs vessel_threshold > 0")


def corrected_channel(image: Image | np.ndarray, params: Any = None, *,
                      channels: Mapping[str, str | int] | None = None, regions: Any = None,
                      pixel_size_um: float | None = None, role: str = "evb") -> np.ndarray:
    """Return the background-corrected (and flat-fielded) channel the assay thresholds.

    Parameters
    ----------
    image : Image or ndarray
        The image.
    params : EvansBlueParams, dict or path, optional
        Assay parameters.
    channels : mapping, optional
        Channel role → name or index (``{"evb": "Cy5"}``).
    regions : optional
        As for :func:`run`; the background is measured inside them.
    pixel_size_um : float, optional
        Pixel size override.
    role : {"evb", "vessel"}
        Which channel.

    Returns
    -------
    ndarray
        float32 image in corrected intensity units (counts at mean illumination, background
        ≈ 0).
    """
    p = resolve_params(EvansBlueParams, params)
    image = prepare_image(image, pixel_size_um)
    chans = resolve_channels(image, SPEC.channel_roles, channels)
    if role not in chans:
        raise ParamsError(f"no {role!r} channel in this image")
    masks, reference = _regions(image, regions, p)
    support = _union(masks.values())
    ch = _correct(_raw_channel(image, chans[role], p), dtype=image.dtype,
                  support=support, reference=reference, p=p, px=image.pixel_size_um,
                  source=image.source, role=role)
    return ch.corrected


def _union(masks: Iterable[np.ndarray]) -> np.ndarray:
    it = iter(masks)
    out = np.array(next(it), dtype=bool)
    for m in it:
        out |= m
    return out


@dataclass
class _Measured:
    """The corrected channels, the image-wide statistics and the masks they give."""

    evb: _Channel
    threshold: float
    seed: float
    labels: np.ndarray | None = None
    n_patches: int = 0
    vessel: np.ndarray | None = None
    zone: np.ndarray | None = None
    grid: Any = None  # _DistanceGrid
    v_threshold: float = float("nan")
    margin_um: float = float("nan")
    vessel_display: np.ndarray | None = None
    vessel_channel: dict[str, Any] | None = None  # the vessel channel's _channel_record


def _measure_channels(image: Image, chans: Mapping[str, int], support: np.ndarray,
                      reference: np.ndarray | None, p: EvansBlueParams, px: float,
                      warnings: list[str], report: Callable[[float, str], None],
                      cal: Mapping[str, Any] | None, *,
                      patches: bool = True, record: tuple[tuple[float, float], int] | None = None,
                      model: Any = None) -> _Measured:
    """Background-correct the channels and threshold them.

    Without ``cal`` every statistic (background field, flat-field, noise, thresholds, glow
    margin) is estimated from ``image``: the whole run, and :func:`calibrate` on the whole
    region. With ``cal`` (a calibration) they are applied to ``image`` (a tile). ``patches``:
    also find the positive patches; ``record`` (origin, step): keep the vessel channel's
    statistics as plain data (for :func:`calibrate`). ``model``: a pixel classifier whose
    leak class gives the positive pixels instead of the threshold (which is still computed:
    it sets the glow margin of the vessel zone, as :func:`calibrate` does for a tiled run).
    """
    origin = tile_origin(image)
    report(0.05, "background")
    raw = _raw_channel(image, chans["evb"], p)
    if cal is None:
        evb = _correct(raw, dtype=image.dtype, support=support, reference=reference, p=p,
                       px=px, source=image.source, role="evb")
        warnings.extend(evb.notes)
        threshold = _threshold(evb, support, p.threshold_method, p.threshold_k, p.threshold)
        seed = max(threshold, p.seed_ratio * threshold)
    else:
        evb = _apply_record(raw, cal["evb"], p, origin)
        threshold, seed = float(cal["threshold"]), float(cal["seed_threshold"])
    del raw
    out = _Measured(evb, threshold, seed)
    report(0.35, "threshold")
    if patches and model is not None:
        from ..learn.foreground import model_foreground

        report(0.2, "pixel classifier")
        # where the leak class wins; no hysteresis (the classifier already weighed each
        # pixel's neighbourhood), the same minimum patch area
        leak, _ = model_foreground(model, image, LEAK_CLASSES)
        out.labels, out.n_patches = _positive_patches(leak, support, 0.5, 0.5,
                                                      p.min_patch_area_um2 / (px * px))
        del leak
    elif patches:
        out.labels, out.n_patches = _positive_patches(evb.corrected, support, threshold, seed,
                                                      p.min_patch_area_um2 / (px * px))
    if "vessel" not in chans:
        return out
    report(0.5, "vessels")
    raw = _raw_channel(image, chans["vessel"], p)
    if cal is None:
        vch = _correct(raw, dtype=image.dtype, support=support, reference=reference, p=p,
                       px=px, source=image.source, role="vessel")
        warnings.extend(vch.notes)
        v_threshold = _threshold(vch, support, p.vessel_threshold_method,
                                 p.vessel_threshold_k, p.vessel_threshold)
        if record is not None:
            out.vessel_channel = _channel_record(vch, *record)
    else:
        vch = _apply_record(raw, cal["vessel"], p, origin)
        v_threshold = float(cal["vessel_threshold"])
    del raw
    vessel = _vessel_mask(vch.corrected, v_threshold, p, px)
    q = _qc_step(image.shape_yx)
    out.vessel_display = vch.corrected[::q, ::q].copy()
    del vch
    margin_um = p.vessel_margin_um
    if cal is not None:
        # the glow is a property of the whole image's vessels, measured by calibrate
        margin_um = float(cal["vessel_margin_um"])
    elif vessel.any() and p.max_glow_margin_um > margin_um:
        out.grid = _DistanceGrid.make(vessel, px, p)
        glow = _glow_margin_um(evb.corrected, support, out.grid, threshold,
                               p.max_glow_margin_um)
        if glow > margin_um:
            warnings.append(f"{image.name}: EvB glows around most vessels (median "
                            f"intensity above the threshold up to {glow:.1f} µm out); the "
                            f"vessel margin is widened from {margin_um:g} to {glow:.1f} µm "
                            "(max_glow_margin_um)")
            margin_um = glow
    out.zone = _dilate(vessel, margin_um / px)
    if not vessel.any() and cal is None:
        warnings.append(f"{image.name}: no vessel found in the vessel channel (threshold "
                        f"{v_threshold:.4g}); intra/extravascular split is empty")
    out.vessel, out.v_threshold, out.margin_um = vessel, v_threshold, margin_um
    return out


def calibrate(image: Image | np.ndarray, regions: Any = None, params: Any = None, *,
              channels: Mapping[str, str | int] | None = None,
              bounds: tuple[int, int, int, int] | None = None,
              pixel_size_um: float | None = None) -> dict[str, Any]:
    """Measure the assay's image-wide statistics over the regions' bounding box.

    What a whole run estimates from the whole image, for a tiled run to apply to every tile
    (``run(tile, calibration=...)``, :func:`histoquant.tiling.run_tiled`), per channel
    (``evb``, ``vessel``): the saturation level and raw maximum, whether the channel is
    clipped at its minimum, the coarse background field (a grid placed in full-resolution
    coordinates; a tile reads its window) and the flat-field's mean, the reference level,
    the background's level and noise SD; and the thresholds (``threshold``,
    ``seed_threshold``, ``vessel_threshold``, whatever their method) and the vessel margin
    widened to the glow around the vessels (``vessel_margin_um``).

    The box (regions grown by one background tile, ``background_scale_um``) is read whole up
    to :data:`histoquant.calibration.CALIBRATION_BUDGET_PX` pixels, and then gives what a
    whole run of that box gives. Beyond, every ``step``-th pixel is read (``step`` > 1; never
    a pyramid level, whose block means would shrink the noise): the background field stays
    close (it is smooth over 200 µm), the noise SD and the thresholds come from fewer pixels
    of the same distribution (close), while the raw maximum (a saturated speck can be
    missed), the clipped-channel test and the glow margin (thin vessels are sampled
    coarsely) are approximate.

    A tiled run with a pixel classifier (``run(tile, model=...)``) uses the background,
    flat-field, vessel threshold and vessel margin measured here, but not ``threshold`` and
    ``seed_threshold``: the model gives the positive pixels (the threshold still sets the
    glow margin, as in a whole run with the model).

    Parameters
    ----------
    image : Image or ndarray
        Full-resolution fluorescence image (lazy arrays are read only inside the box).
    regions : None, mapping of masks, or RegionSource
        Where the assay measures (``None``: the whole image; ``"auto"`` and region files as
        :func:`run` takes them).
    params : EvansBlueParams, dict or path, optional
        Parameters.
    channels : mapping, optional
        As for :func:`run`.
    bounds : tuple, optional
        (r0, r1, c0, c1): one section of a slide.
    pixel_size_um : float, optional
        Pixel size override.

    Returns
    -------
    dict
        Plain numbers and lists (JSON), with ``assay``, ``step`` and ``warnings``.
    """
    from ..tiling import RegionSource

    p = resolve_params(EvansBlueParams, params)
    image = prepare_image(image, pixel_size_um, modalities=SPEC.modalities, assay=SPEC.name)
    px = float(image.pixel_size_um)
    chans = resolve_channels(image, SPEC.channel_roles, channels)
    _check_params(p, "vessel" in chans)
    if regions is not None and not isinstance(regions, (RegionSource, Mapping)):
        regions = _regions(image, regions, p)[0]
    # never a pyramid level: the noise SD and thresholds are statistics of single pixels,
    # which strided reads keep and a level's block means do not
    view = region_view(image, regions, bounds=bounds,
                       margin_px=int(np.ceil(p.background_scale_um / px)),
                       max_level_downsample=1)
    vimg = view.image
    masks, reference = _regions(vimg, view.masks, p)
    support = _union(masks.values())
    warnings: list[str] = []
    m = _measure_channels(vimg, chans, support, reference, p, float(vimg.pixel_size_um),
                          warnings, lambda f, msg: None, None, patches=False,
                          record=(view.origin_yx, view.step))
    return {"assay": SPEC.name, "step": view.step,
            "pyramid_level_downsample": view.level_downsample,
            "origin_yx": [float(v) for v in view.origin_yx],
            "evb": _channel_record(m.evb, view.origin_yx, view.step),
            "threshold": float(m.threshold), "seed_threshold": float(m.seed),
            "vessel": m.vessel_channel, "vessel_threshold": float(m.v_threshold),
            "vessel_margin_um": float(m.margin_um),
            "vessel_found": bool(m.vessel is not None and m.vessel.any()),
            "warnings": warnings}


def run(image: Image | np.ndarray, regions: Any = None, params: Any = None, *,
        channels: Mapping[str, str | int] | None = None, pixel_size_um: float | None = None,
        progress: Progress | None = None,
        calibration: Mapping[str, Any] | None = None, model: Any = None) -> AssayResult:
    """Measure Evans Blue extravasation in one image.

    Parameters
    ----------
    image : Image or ndarray
        Fluorescence image (2D, multichannel, or a Z-stack that is projected) with its pixel
        size.
    regions : None, "auto", path, or regions
        Where to measure: ``None`` = whole image, ``"auto"`` = grey matter found by
        :mod:`histoquant.anatomy`, a region file, or masks / :class:`~histoquant.rois.Region`.
    params : EvansBlueParams, dict or path, optional
        Parameters; defaults when omitted.
    channels : mapping, optional
        ``{"evb": NAME|INDEX, "vessel": NAME|INDEX}``. A single-channel image is the EvB
        channel; channels named ``evb``/``vessel`` are found by name.
    pixel_size_um : float, optional
        Pixel size override in µm.
    progress : callable, optional
        ``progress(fraction, message)``.
    calibration : mapping, optional
        Image-wide statistics from :func:`calibrate` (background field and flat-field, noise,
        thresholds, saturation level, vessel margin), applied instead of estimating them from
        ``image`` — a tile of a larger image (:func:`histoquant.tiling.run_tiled`; the tile's
        place is ``image.metadata["tile_origin_yx"]``). Without it they are estimated from
        ``image`` by the same code as :func:`calibrate`. With ``model``, the calibration's
        EvB threshold and seed are not used for the positive pixels (the model gives them);
        its background, flat-field and vessel statistics still are.
    model : PixelClassifier, optional
        A pixel classifier (``histoquant train pixels``, read with
        :func:`~histoquant.learn.pixels.load_pixel_classifier`; ``--model m.hqm`` on the
        command line) with a class named one of :data:`LEAK_CLASSES`: the positive pixels
        are where that class is the most probable one, in place of the threshold and its
        hysteresis. Everything else is unchanged and computed on that mask: the regions,
        background correction and intensity sums, the vessel mask and its zone (whose glow
        margin still follows the automatic threshold), the minimum patch area, the patches
        and the profile. The summary's ``threshold`` and ``seed_threshold`` are then NaN and
        ``threshold_method`` is ``"classifier"``; ``extra["model"]`` records the model
        (class, classes, hash). The model must have been trained on fluorescence images with
        this image's channels; a tiled run hands it to every tile, each normalising its
        channels on its own pixels (a large tile's percentiles are the image's, closely).

    Returns
    -------
    AssayResult
        ``summary`` (one row per region), ``objects`` (one row per positive patch),
        ``labels`` (patch labels), ``masks`` (``positive``, ``vessel``, ``vessel_zone``),
        ``qc`` (RGB overlay), ``tables["profiles"]`` (the perivascular profile), ``warnings``.

    Raises
    ------
    ChannelError
        No EvB channel can be chosen, or a channel name/index is wrong.
    EmptyImageError
        A blank channel (all one value) or a fully saturated one.
    PixelSizeError
        No pixel size.
    ModelFileError
        ``model`` is not a pixel classifier with a leak class.
    ModalityError
        ``model`` was trained on brightfield images.
    """
    def report(frac: float, msg: str) -> None:
        if progress is not None:
            progress(frac, msg)

    p = resolve_params(EvansBlueParams, params)
    image = prepare_image(image, pixel_size_um, modalities=SPEC.modalities, assay=SPEC.name)
    px = float(image.pixel_size_um)
    chans = resolve_channels(image, SPEC.channel_roles, channels)
    has_vessel = "vessel" in chans
    _check_params(p, has_vessel)
    record = None
    if model is not None:
        # before any pixel is measured: a model that cannot read this image fails here
        record = model_record(model, check_model_image(model, image, LEAK_CLASSES, SPEC.name))
    cal = dict(calibration) if calibration is not None else None
    masks, reference = _regions(image, regions, p, need_reference=cal is None)
    support = _union(masks.values())
    warnings: list[str] = []
    m = _measure_channels(image, chans, support, reference, p, px, warnings, report, cal,
                          model=model)
    glow_threshold = m.threshold
    if model is not None:
        m.threshold = m.seed = float("nan")  # no threshold made the positive mask
    evb, threshold, seed, vessel, zone, grid = m.evb, m.threshold, m.seed, m.vessel, m.zone, \
        m.grid
    v_threshold, margin_um, vessel_display = m.v_threshold, m.margin_um, m.vessel_display
    labels, n_patches = m.labels, m.n_patches
    positive = labels > 0
    report(0.7, "measuring")
    if grid is None and has_vessel and vessel.any():
        grid = _DistanceGrid.make(vessel, px, p)
    summary = _summary(image, masks, evb, positive, n_patches, labels, threshold, seed,
                       v_threshold, vessel, zone, p, px, warnings)
    if model is not None:
        summary["threshold_method"] = "classifier"
    objects = _objects(image.name, labels, n_patches, evb.corrected, masks, zone, grid, px)
    profile = _profile(image.name, masks, evb.corrected, positive, grid, p, px) \
        if grid is not None else _empty_profile()
    report(0.9, "QC overlay")
    qc = _qc_overlay(image.name, evb.corrected, vessel_display, positive, vessel, masks,
                     summary, threshold, p, warnings, record)
    out_masks = {"positive": positive}
    if vessel is not None:
        out_masks.update(vessel=vessel, vessel_zone=zone)
    extra = {"threshold": threshold, "seed_threshold": seed, "noise_sd": evb.sd,
             "vessel_threshold": v_threshold, "vessel_margin_um": margin_um,
             "calibrated": cal is not None, "engine": "threshold"}
    if record is not None:
        extra.update(engine="classifier", model=record, glow_threshold=glow_threshold)
    report(1.0, "done")
    return AssayResult(assay=SPEC.name, image=image.name, objects=objects, summary=summary,
                       labels=labels, masks=out_masks, qc=qc, params=p.to_dict(),
                       pixel_size_um=px, warnings=warnings, tables={"profiles": profile},
                       extra=extra)


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------


@dataclass
class _DistanceGrid:
    """Distance to the nearest vessel on a grid of ≈ 1 µm blocks.

    An exact full-resolution distance transform is the slowest step by far on large images;
    the profile bins (2 µm) and patch distances need ≈ 1 µm, so distances are computed on
    blocks of ``factor`` pixels (a block is vessel when half of it is).
    """

    factor: int
    vessel: np.ndarray
    distance_um: np.ndarray

    @classmethod
    def make(cls, vessel: np.ndarray, px: float, p: EvansBlueParams) -> _DistanceGrid:
        step_um = min(p.profile_bin_um / 2, 1.0)
        f = max(1, int(step_um / px))
        vgrid = block_sum(vessel, f) >= 0.5 * block_counts(vessel.shape, f)
        dist = ndi.distance_transform_edt(~vgrid, sampling=f * px).astype(np.float32)
        return cls(f, vgrid, dist)


def _glow_margin_um(corrected: np.ndarray, support: np.ndarray, grid: _DistanceGrid,
                    threshold: float, max_um: float) -> float:
    """Distance (µm) out to which the median EvB of rings around the vessels is positive.

    On the ≈ 1 µm grid of :class:`_DistanceGrid`: the EvB block means in 1 µm rings of
    distance from the vessel mask (inside the measured regions); the margin is the inner edge
    of the first ring whose median is below ``threshold``, at most ``max_um``. 0 when the first
    ring already is (no glow).
    """
    f = grid.factor
    dist = grid.distance_um
    near = (dist > 0) & (dist <= max_um + 1.0)
    near &= block_sum(support, f) >= 0.5 * block_counts(support.shape, f)
    if not near.any():
        return 0.0
    vals = block_mean(corrected, f)[near]
    d = dist[near]
    ring_um = max(1.0, float(d.min()))  # 1 µm, or the grid step when coarser
    for k in np.arange(0.0, max_um, ring_um):
        sel = (d > k) & (d <= k + ring_um)
        if sel.sum() < 20:
            continue
        if float(np.median(vals[sel])) < threshold:
            return float(k)
    return float(max_um)


def _region_sum(values: np.ndarray, mask: np.ndarray) -> float:
    return float(np.sum(values, where=mask, dtype=np.float64))


def _summary(image: Image, masks: dict[str, np.ndarray], evb: _Channel, positive: np.ndarray,
             n_patches: int, labels: np.ndarray, threshold: float, seed: float,
             v_threshold: float, vessel: np.ndarray | None, zone: np.ndarray | None,
             p: EvansBlueParams, px: float, warnings: list[str]) -> pd.DataFrame:
    area = px * px
    table = region_table(image.name, masks, px)
    rows: list[dict[str, Any]] = []
    corrected = evb.corrected
    sat = evb.saturated
    for name, m in masks.items():
        n_reg = int(np.count_nonzero(m))
        pos = positive & m
        n_pos = int(np.count_nonzero(pos))
        sum_pos = _region_sum(corrected, pos)
        row: dict[str, Any] = {
            "evb_positive_area_um2": n_pos * area,
            "evb_positive_area_pct": 100.0 * n_pos / n_reg,
            "n_patches": int(np.count_nonzero(np.bincount(labels[pos], minlength=n_patches + 1)
                                              [1:])) if n_pos else 0,
            "mean_intensity": _region_sum(corrected, m) / n_reg,
            "positive_mean_intensity": sum_pos / n_pos if n_pos else float("nan"),
            "integrated_intensity_um2": sum_pos * area,
        }
        if vessel is not None:
            n_v = int(np.count_nonzero(vessel & m))
            intra = pos & zone
            n_in = int(np.count_nonzero(intra))
            sum_in = _region_sum(corrected, intra)
            row.update({
                "vessel_area_pct": 100.0 * n_v / n_reg,
                "intravascular_area_um2": n_in * area,
                "extravascular_area_um2": (n_pos - n_in) * area,
                "extravascular_area_pct": 100.0 * (n_pos - n_in) / n_reg,
                "extravascular_fraction_pct": 100.0 * (n_pos - n_in) / n_pos if n_pos
                else float("nan"),
                "intravascular_integrated_intensity_um2": sum_in * area,
                "extravascular_integrated_intensity_um2": (sum_pos - sum_in) * area,
            })
        else:
            row.update({k: float("nan") for k in (
                "vessel_area_pct", "intravascular_area_um2", "extravascular_area_um2",
                "extravascular_area_pct", "extravascular_fraction_pct",
                "intravascular_integrated_intensity_um2",
                "extravascular_integrated_intensity_um2")})
        n_sat = int(np.count_nonzero(sat & m)) if sat is not None else 0
        n_sat_pos = int(np.count_nonzero(sat & pos)) if sat is not None else 0
        known = np.isfinite(evb.saturation_level)
        sat_pos_pct = 100.0 * n_sat_pos / n_pos if n_pos else 0.0
        flag = bool(known and (sat_pos_pct > p.saturation_warn_pct
                               or (n_pos == 0 and n_sat > 0)))
        row.update({
            "threshold": threshold,
            "seed_threshold": seed,
            "threshold_method": p.threshold_method,
            "noise_sd": evb.sd,
            "background": _background_level(evb, m),
            "background_method": p.background_method,
            "vessel_threshold": v_threshold,
            "bit_depth": evb.bit_depth,
            "saturation_level": evb.saturation_level,
            "saturated_pct": 100.0 * n_sat / n_reg if known else float("nan"),
            "saturated_positive_pct": sat_pos_pct if known else float("nan"),
            "saturation_flag": flag,
        })
        if flag:
            warnings.append(
                f"{image.name}/{name}: {n_sat} saturated pixel(s), {sat_pos_pct:.2f} % of the "
                f"EvB-positive area (limit {p.saturation_warn_pct:g} %); the integrated "
                "intensity is underestimated. Re-image with a shorter exposure.")
        rows.append(row)
    return pd.concat([table, pd.DataFrame(rows)], axis=1)


def _background_level(ch: _Channel, mask: np.ndarray) -> float:
    """Mean raw background (counts) over a region."""
    if ch.background_const is not None:
        return ch.background_const
    if ch.background_grid is None:
        return float("nan")
    return ch.background_grid.mean_over(mask)


_OBJECT_COLUMNS = ["image", "region", "label", "centroid_y_um", "centroid_x_um", "area_um2",
                   "mean_intensity", "max_intensity", "integrated_intensity_um2",
                   "vessel_overlap_pct", "distance_to_vessel_um", "class"]


def _objects(image_name: str, labels: np.ndarray, n: int, corrected: np.ndarray,
             masks: dict[str, np.ndarray], zone: np.ndarray | None, grid: _DistanceGrid | None,
             px: float) -> pd.DataFrame:
    if n == 0:
        return pd.DataFrame(columns=_OBJECT_COLUMNS)
    idx = np.flatnonzero(labels)
    lab = labels.ravel()[idx]
    val = corrected.ravel()[idx].astype(np.float64)
    w = labels.shape[1]
    ys, xs = np.divmod(idx, w)
    count = np.bincount(lab, minlength=n + 1)[1:].astype(np.float64)
    total = np.bincount(lab, weights=val, minlength=n + 1)[1:]
    cy = np.bincount(lab, weights=ys, minlength=n + 1)[1:] / count
    cx = np.bincount(lab, weights=xs, minlength=n + 1)[1:] / count
    vmax = np.full(n + 1, -np.inf)
    np.maximum.at(vmax, lab, val)
    names = list(masks)
    overlap = np.stack([np.bincount(lab, weights=masks[k].ravel()[idx],
                                    minlength=n + 1)[1:] for k in names])
    region = [names[i] for i in np.argmax(overlap, axis=0)]
    if zone is not None:
        v_pct = 100.0 * np.bincount(lab, weights=zone.ravel()[idx], minlength=n + 1)[1:] / count
        cls = np.where(v_pct > 50, "intravascular", "extravascular")
    else:
        v_pct = np.full(n, np.nan)
        cls = np.full(n, "positive")
    dist = np.full(n, np.nan)
    if grid is not None:
        d = grid.distance_um[ys // grid.factor, xs // grid.factor].astype(np.float64)
        dmin = np.full(n + 1, np.inf)
        np.minimum.at(dmin, lab, d)
        dist = dmin[1:]
    return pd.DataFrame({
        "image": image_name,
        "region": region,
        "label": np.arange(1, n + 1),
        "centroid_y_um": cy * px,
        "centroid_x_um": cx * px,
        "area_um2": count * px * px,
        "mean_intensity": total / count,
        "max_intensity": vmax[1:],
        "integrated_intensity_um2": total * px * px,
        "vessel_overlap_pct": v_pct,
        "distance_to_vessel_um": dist,
        "class": cls,
    })


_PROFILE_COLUMNS = ["image", "region", "compartment", "distance_min_um", "distance_max_um",
                    "area_um2", "mean_intensity", "positive_area_pct"]


def _empty_profile() -> pd.DataFrame:
    return pd.DataFrame(columns=_PROFILE_COLUMNS)


def _profile(image_name: str, masks: dict[str, np.ndarray], corrected: np.ndarray,
             positive: np.ndarray, grid: _DistanceGrid, p: EvansBlueParams, px: float,
             ) -> pd.DataFrame:
    f = grid.factor
    bin_um = p.profile_bin_um
    n_bins = max(1, math.ceil(p.profile_max_um / bin_um))
    d = grid.distance_um
    # Bin 0 is the vessel itself; bin i ≥ 1 holds distances in ((i-1)·bin, i·bin].
    idx = np.where(grid.vessel, 0, np.ceil(d / bin_um).astype(np.int64))
    idx = np.where(idx > n_bins, n_bins + 1, idx).ravel()
    rows = []
    for name, m in masks.items():
        n = block_sum(m, f).ravel()
        s = block_sum(np.where(m, corrected, np.float32(0)), f).ravel()
        pos = block_sum(positive & m, f).ravel()
        cnt = np.bincount(idx, weights=n, minlength=n_bins + 2)
        tot = np.bincount(idx, weights=s, minlength=n_bins + 2)
        npos = np.bincount(idx, weights=pos, minlength=n_bins + 2)
        for b in range(n_bins + 1):
            if cnt[b] == 0:
                continue
            rows.append({
                "image": image_name, "region": name,
                "compartment": "vessel" if b == 0 else "perivascular",
                "distance_min_um": 0.0 if b == 0 else (b - 1) * bin_um,
                "distance_max_um": 0.0 if b == 0 else b * bin_um,
                "area_um2": cnt[b] * px * px,
                "mean_intensity": tot[b] / cnt[b],
                "positive_area_pct": 100.0 * npos[b] / cnt[b],
            })
    return pd.DataFrame(rows, columns=_PROFILE_COLUMNS)


# --------------------------------------------------------------------------------------------
# QC
# --------------------------------------------------------------------------------------------


def _qc_step(shape: tuple[int, int], max_px: int = 1600) -> int:
    return max(1, math.ceil(max(shape) / max_px))


def _qc_overlay(name: str, corrected: np.ndarray, vessel_display: np.ndarray | None,
                positive: np.ndarray, vessel: np.ndarray | None, masks: dict[str, np.ndarray],
                summary: pd.DataFrame, threshold: float, p: EvansBlueParams,
                warnings: list[str], record: dict[str, Any] | None = None) -> np.ndarray:
    from ..qc import CLASS_COLOURS, add_caption, draw_mask_outlines, draw_outlines, to_display_rgb

    q = _qc_step(corrected.shape)
    layers = [(corrected[::q, ::q], (255, 0, 255))]
    if vessel_display is not None:
        layers.append((vessel_display, (0, 190, 0)))
    rgb = to_display_rgb(None, channels=layers, percentiles=(1.0, 99.8))
    if vessel is not None:
        draw_outlines(rgb, block_any(vessel, q)[:rgb.shape[0], :rgb.shape[1]],
                      (0, 114, 178), thickness_px=1)
    draw_outlines(rgb, block_any(positive, q)[:rgb.shape[0], :rgb.shape[1]],
                  CLASS_COLOURS["positive"], thickness_px=1)
    draw_mask_outlines(rgb, {k: block_any(m, q)[:rgb.shape[0], :rgb.shape[1]]
                             for k, m in masks.items()})
    # The caption font has ASCII glyphs only.
    how = f"threshold {threshold:.4g} ({p.threshold_method})" if record is None else \
        f"pixel classifier, class {record['class']} (sha256 {record['sha256'][:12]})"
    lines = [f"{name} - Evans Blue; {how}; yellow = EvB+, blue = vessels"]
    for row in summary.head(4).itertuples():
        text = f"{row.region}: EvB+ {row.evb_positive_area_pct:.2f} % of " \
               f"{row.region_area_mm2:.3f} mm2"
        if np.isfinite(row.extravascular_fraction_pct):
            text += f", {row.extravascular_fraction_pct:.0f} % extravascular"
        if row.saturation_flag:
            text += " - SATURATED"
        lines.append(text)
    if warnings:
        lines.append(f"{len(warnings)} warning(s): see run log")
    return add_caption(rgb, lines)


# --------------------------------------------------------------------------------------------
# Study-wide threshold
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThresholdSample:
    """Corrected region pixels of one image, drawn for a study-wide threshold.

    Attributes
    ----------
    values : ndarray
        float32 corrected intensities (at most ``samples_per_image`` of them, a regular
        subsample of the region pixels).
    step : float
        Quantisation step of the raw channel (the noise floor of the ``mad`` method).
    """

    values: np.ndarray
    step: float


def threshold_sample(image: Image | np.ndarray | str | Path, params: Any = None, *,
                     channels: Mapping[str, str | int] | None = None, regions: Any = None,
                     pixel_size_um: float | None = None,
                     samples_per_image: int = 500_000) -> ThresholdSample:
    """Draw one image's share of a study-wide threshold's pool (the first half of it).

    The EvB channel is background-corrected exactly as :func:`run` corrects it (inside the
    same regions), and a regular subsample of at most ``samples_per_image`` region pixels is
    kept, so that every image weighs the same in :func:`pooled_threshold`.

    Parameters
    ----------
    image : Image, ndarray or path
        One reference image.
    params : EvansBlueParams, dict or path, optional
        Parameters (background correction as for :func:`run`).
    channels : mapping, optional
        Channel role → name or index.
    regions : optional
        Where the assay measures, as for :func:`run` (``"auto"``, a region file, masks).
    pixel_size_um : float, optional
        Pixel size override.
    samples_per_image : int
        Most pixels kept.

    Returns
    -------
    ThresholdSample
        The corrected values and the raw channel's quantisation step.
    """
    from ..io import read_image

    p = resolve_params(EvansBlueParams, params)
    img = read_image(image, pixel_size_um) if isinstance(image, (str, Path)) else image
    img = prepare_image(img, pixel_size_um)
    chans = resolve_channels(img, SPEC.channel_roles, channels)
    masks, reference = _regions(img, regions, p)
    support = _union(masks.values())
    ch = _correct(_raw_channel(img, chans["evb"], p), dtype=img.dtype,
                  support=support, reference=reference, p=p, px=img.pixel_size_um,
                  source=img.source, role="evb")
    step = quantisation_step(sample_pixels(_raw_channel(img, chans["evb"], p),
                                           support, samples_per_image), img.dtype)
    values = sample_pixels(ch.corrected, support, samples_per_image)
    if values.size > samples_per_image:
        values = values[np.linspace(0, values.size - 1, samples_per_image).astype(np.intp)]
    return ThresholdSample(np.asarray(values, dtype=np.float32), float(step))


def pooled_threshold(samples: Sequence[ThresholdSample], params: Any = None) -> float:
    """Apply the automatic method of ``params`` to pooled samples (the second half).

    Parameters
    ----------
    samples : sequence of ThresholdSample
        One per image (:func:`threshold_sample`), in a fixed order.
    params : EvansBlueParams, dict or path, optional
        Parameters: the automatic ``threshold_method`` (``mad``, ``otsu`` or ``triangle``)
        and ``threshold_k``.

    Returns
    -------
    float
        The threshold in corrected intensity units.

    Raises
    ------
    ParamsError
        ``threshold_method`` is ``fixed``, or there is no sample.
    """
    p = resolve_params(EvansBlueParams, params)
    _check_automatic(p)
    samples = list(samples)
    if not samples:
        raise ParamsError("study_threshold needs at least one image")
    pooled = np.concatenate([s.values for s in samples])
    if p.threshold_method == "mad":
        st = background_stats(pooled, step=max(s.step for s in samples))
        return float(st.level + p.threshold_k * st.sd)
    return _histogram_threshold(pooled, p.threshold_method)


def _check_automatic(p: EvansBlueParams) -> None:
    if p.threshold_method == "fixed":
        raise ParamsError("study_threshold computes a threshold: give an automatic "
                          "threshold_method (mad, otsu or triangle), not 'fixed'")


def study_threshold(images: Sequence[Image | np.ndarray | str | Path], params: Any = None, *,
                    channels: Mapping[str, str | int] | None = None, regions: Any = None,
                    regions_per_image: Sequence[Any] | None = None,
                    pixel_size_um: float | None = None,
                    samples_per_image: int = 500_000) -> float:
    """One threshold for a whole study, computed from a set of images (e.g. all vehicles).

    Each image is background-corrected exactly as :func:`run` does; the same number of
    region pixels is drawn from each (so a large image does not outvote a small one), pooled,
    and the automatic method of ``params`` (``mad``, ``otsu`` or ``triangle``) is applied to
    the pool. Run every image with ``params.replace(threshold_method="fixed",
    threshold=value)`` so all groups are measured against the same intensity.
    :func:`threshold_sample` and :func:`pooled_threshold` are its two halves (a study run
    draws the samples in its workers and pools them, ``threshold: {scope: study}``).

    Parameters
    ----------
    images : sequence of Image, ndarray or path
        The reference images.
    params : EvansBlueParams, dict or path, optional
        Parameters (the automatic ``threshold_method`` and ``threshold_k`` are used).
    channels : mapping, optional
        Channel role → name or index, for every image.
    regions : optional
        Regions for every image (as for :func:`run`).
    regions_per_image : sequence, optional
        One regions entry per image instead (for example each section's grey matter).
    pixel_size_um : float, optional
        Pixel size override for every image.
    samples_per_image : int
        Pixels drawn from each image.

    Returns
    -------
    float
        The threshold in corrected intensity units.
    """
    p = resolve_params(EvansBlueParams, params)
    _check_automatic(p)
    images = list(images)
    if not images:
        raise ParamsError("study_threshold needs at least one image")
    if regions_per_image is not None and len(regions_per_image) != len(images):
        raise ParamsError(f"regions_per_image has {len(regions_per_image)} entries for "
                          f"{len(images)} images")
    samples = [threshold_sample(item, p, channels=channels, pixel_size_um=pixel_size_um,
                                regions=regions if regions_per_image is None
                                else regions_per_image[i],
                                samples_per_image=samples_per_image)
               for i, item in enumerate(images)]
    return pooled_threshold(samples, p)


SPEC = AssaySpec(
    name="evans-blue",
    title="Evans Blue extravasation: EvB-positive area, intensity, intra/extravascular split",
    params_cls=EvansBlueParams,
    run=run,
    channel_roles=(
        ChannelRole("evb", True, "Evans Blue fluorescence, far red (ex ≈ 620 / em ≈ 680 nm)"),
        ChannelRole("vessel", False, "vessel stain: lectin, FITC-dextran, RECA-1 or CD31"),
    ),
    auto_regions=("grey_matter",),
    modalities=("fluorescence",),
    tables=(ExtraTable("profiles", "EvB-positive area and intensity by distance band from the "
                                   "vessels (perivascular) and in the rest of the region"),),
    endpoints=(
        Endpoint("extravascular_evb_area_pct", "extravascular_area_pct",
                 "Extravascular Evans Blue area, % of grey matter", regions=("grey_matter",)),
        Endpoint("evb_positive_area_pct", "evb_positive_area_pct",
                 "Evans Blue-positive area, % of grey matter", regions=("grey_matter",)),
    ),
    measures=(
        REGION_AREA,
        Measure("evb_positive_area_um2", "µm²", "EvB-positive area", animal="sum"),
        Measure("evb_positive_area_pct", "%", "EvB-positive area, % of the region",
                tiles="ratio", of=("evb_positive_area_um2", "region_area_mm2"), scale=1e-4),
        Measure("n_patches", "count", "EvB-positive patches (a patch cut by a tile seam counts "
                                      "once per tile)", animal="sum"),
        Measure("mean_intensity", "a.u.", "mean corrected EvB intensity over the region",
                tiles="weighted", of=("region_area_mm2",)),
        Measure("positive_mean_intensity", "a.u.",
                "mean corrected EvB intensity over the positive area", tiles="weighted",
                of=("evb_positive_area_um2",)),
        Measure("integrated_intensity_um2", "a.u. × µm²",
                "corrected EvB intensity summed over the positive area", animal="sum"),
        Measure("vessel_area_pct", "%", "vessel area, % of the region", tiles="weighted",
                of=("region_area_mm2",)),
        Measure("intravascular_area_um2", "µm²", "EvB-positive area within the vessel zone",
                animal="sum"),
        Measure("extravascular_area_um2", "µm²", "EvB-positive area outside the vessel zone",
                animal="sum"),
        Measure("extravascular_area_pct", "%", "extravascular EvB-positive area, % of the "
                "region", tiles="ratio", of=("extravascular_area_um2", "region_area_mm2"),
                scale=1e-4),
        Measure("extravascular_fraction_pct", "%", "extravascular share of the EvB-positive "
                "area", tiles="ratio", of=("extravascular_area_um2", "evb_positive_area_um2"),
                scale=100.0),
        Measure("intravascular_integrated_intensity_um2", "a.u. × µm²",
                "corrected intensity summed over the intravascular positive area",
                animal="sum"),
        Measure("extravascular_integrated_intensity_um2", "a.u. × µm²",
                "corrected intensity summed over the extravascular positive area",
                animal="sum"),
        Measure("threshold", "a.u.", "EvB threshold (corrected units)", tiles="image",
                animal="none"),
        Measure("seed_threshold", "a.u.", "hysteresis seed level", tiles="image",
                animal="none"),
        Measure("threshold_method", "", "how the threshold was set", tiles="first",
                animal="none"),
        Measure("noise_sd", "a.u.", "robust noise SD of the EvB channel", tiles="image",
                animal="none"),
        Measure("background", "grey levels", "mean raw background over the region",
                tiles="weighted", of=("region_area_mm2",), animal="none"),
        Measure("background_method", "", "how the background was estimated", tiles="first",
                animal="none"),
        Measure("vessel_threshold", "a.u.", "vessel channel threshold", tiles="image",
                animal="none"),
        Measure("bit_depth", "bits", "bit depth of the EvB data", tiles="max", animal="none"),
        Measure("saturation_level", "grey levels", "raw level taken as saturated",
                tiles="image", animal="none"),
        Measure("saturated_pct", "%", "saturated pixels, % of the region", tiles="weighted",
                of=("region_area_mm2",), animal="none"),
        Measure("saturated_positive_pct", "%", "saturated pixels, % of the positive area",
                tiles="weighted", of=("evb_positive_area_um2",), animal="none"),
        Measure("saturation_flag", "", "too much of the positive area is saturated",
                tiles="any", animal="none"),
    ),
    calibrate=calibrate,
    model_steps=(ModelStep(
        "pixels", "the EvB threshold: the positive pixels are where the pixel classifier's "
        f"class {' / '.join(LEAK_CLASSES)} is the most probable one; the background, vessel "
        "zone, patches and intensity sums are computed on that mask as before",
        check=fluorescence_class_check("evans-blue", *LEAK_CLASSES)),),
)
