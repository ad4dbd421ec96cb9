"""Microvasculature: endothelial length, pericyte length and pericyte coverage, in µm.

One image in (an endothelial channel, optionally a pericyte channel and DAPI), one row per
region out: vessel length and length density, segments, branch points, mean diameter,
pericyte length, pericyte coverage by length and by area, pericyte cell bodies per mm of
vessel; one row per vessel segment. The method is described in ``docs/vasculature.md``;
the building blocks are :func:`histoquant.segment.vessels.segment_tubes` and
:func:`histoquant.measure.skeleton.trace_skeleton`.

A pixel classifier (``histoquant train pixels``; ``run(..., model=...)``, ``--model m.hqm``)
can replace the ridge-filter segmentation: the vessel mask is where its vessel class
(:data:`VESSEL_CLASSES`) or its pericyte class (:data:`PERICYTE_CLASSES`, pericytes lie on
the vessel wall) is the most probable one, and the pericyte mask where the pericyte class is;
without a pericyte class the pericyte channel keeps its ridge filter. Skeletons, lengths,
coverage and bodies are computed on those masks as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..calibration import grid_positions, grid_record, region_view, tile_origin
from ..errors import ChannelError, ParamsError
from ..io.image import Image, check_not_empty
from ..learn.foreground import find_class
from ..measure.rays import first_hits, padded_flat
from ..measure.skeleton import SkeletonTrace, trace_skeleton
from ..params import AssayParams, param
from ..results import AssayResult
from ..segment.padding import padding_of_image
from ..segment.vessels import (
    TubeSegmentation,
    TubeStats,
    background_grid,
    background_window,
    remove_small,
    segment_tubes,
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
from .contract import REGION_AREA, Endpoint, Measure

__all__ = ["VasculatureParams", "run", "calibrate", "SPEC", "covered_entries",
           "VESSEL_CLASSES", "PERICYTE_CLASSES"]

#: Names a pixel classifier's class may have for the vessel (endothelium) pixels.
VESSEL_CLASSES = ("vessel", "endothelium", "capillary")
#: Name of the optional pericyte class of a pixel classifier.
PERICYTE_CLASSES = ("pericyte",)
#: A gap in the classifier's vessel mask is bridged where the vessel (or pericyte) class
#: keeps at least this probability along it: half of what wins a two-class pixel, the
#: classifier's counterpart of ``threshold_low`` (the ridge filter still answers).
_GAP_PROBABILITY = 0.25

_FILTERS = ("sato", "frangi", "meijering")
_QC_MAX_SIDE = 1600


@dataclass(frozen=True)
class VasculatureParams(AssayParams):
    """Parameters of the vasculature assay (every length in µm, every area in µm²)."""

    #: Shown first in the GUI; the rest are folded away (AssayParams.common).
    common = ("vessel_scales_um", "threshold_high", "threshold_low", "min_spur_length_um",
              "coverage_tolerance_um")

    vessel_scales_um: tuple[float, ...] = param(
        (1.5, 3.0, 6.0), unit="µm", minimum=0.1, maximum=200.0,
        help="Gaussian scales of the ridge filter. A tube of diameter d answers best at "
             "σ ≈ d/2, so 1.5–6 µm covers capillaries (3–8 µm; 6.4 µm in rat anterior horn "
             "[S]) up to ≈ 20 µm vessels, which still answer at 6 µm. Add 10 for larger "
             "vessels; a smallest scale under 1 µm follows noise.")
    ridge_filter: str = param(
        "sato", choices=_FILTERS,
        help="scikit-image Hessian ridge filter. Sato answers to tubes of every width "
             "evenly; Frangi suppresses blobs (cell bodies) but also vessel junctions; "
             "Meijering is made for thin neurites.")
    threshold_high: float = param(
        8.0, minimum=0.0,
        help="Hysteresis seed threshold in noise units (robust z-score of the ridge "
             "response). 8 keeps pure noise out of large images: on 4–16-megapixel white "
             "noise the maximum is 5.0–6.6 [measured].")
    threshold_low: float = param(
        3.0, minimum=0.0,
        help="Hysteresis growth threshold in noise units: a faint stretch of a vessel stays "
             "attached down to 3 noise units, where noise alone rarely forms long lines.")
    ridge_core: bool = param(
        True,
        help="Add the ridge centreline to the half-maximum outline, so that an unevenly "
             "stained vessel stays one connected vessel where its outline breaks (on a "
             "real tumour CD31 field without it: 152 pieces, 92 free ends per mm; with it "
             "44 [measured]). Off: outlines only, as before.")
    ridge_core_threshold: float = param(
        5.0, minimum=0.0,
        help="Noise units a ridge (grown from a seed above threshold_high) must keep all "
             "along for its centreline to join two vessel outlines: the lowest "
             "maximum of pure noise (5.0–6.6 on 4–16 MP [measured]), well above "
             "threshold_low, because the core adds length where the outline has none. "
             "Measured: 4 gave +2.8 % length on the vesselNN stack (5: +0.2 %, 6: −3.1 %; "
             "before dangling core branches were pruned, 4 gave +12 %); 6 left 46.8 free "
             "ends per mm on a tumour CD31 field (5: 44.1, 4: 37.7).")
    edge_level_pct: float = param(
        50.0, unit="%", minimum=5.0, maximum=95.0,
        help="Vessel edge where the background-corrected intensity falls to this percentage "
             "of its local centreline value. 50 % (full width at half maximum) puts the "
             "edge of a blurred flat-topped profile at its true place, whatever the "
             "staining brightness.")
    background_radius_um: float = param(
        50.0, unit="µm", minimum=1.0,
        help="Window of the smooth-background estimate: wider than the largest vessel and "
             "than the spaces between capillaries (≈ 40–80 µm), so it reaches background "
             "between them.")
    min_vessel_area_um2: float = param(
        50.0, unit="µm²", minimum=0.0,
        help="Smaller objects are debris or vessels cut across (a 6.4 µm capillary cut "
             "across is ≈ 32 µm²), which have no length in the section.")
    max_hole_um2: float = param(
        30.0, unit="µm²", minimum=0.0,
        help="Holes up to this area are filled (a dim lumen, noise); meshes of the "
             "capillary network are hundreds of µm² and stay open. Larger holes brighter "
             "than edge_level_pct of the vessel's maximum (the inside of a vessel wider "
             "than the scales) are filled too.")
    max_gap_um: float = param(
        5.0, unit="µm", minimum=0.0,
        help="Gaps in a vessel up to this length are bridged when a vessel end points at "
             "another vessel and the ridge filter still answers (above threshold_low) along "
             "the gap (patchy endothelial staining, not background). [U] — about one "
             "capillary diameter; 0 turns bridging off.")
    gap_angle_deg: float = param(
        45.0, unit="°", minimum=0.0, maximum=90.0,
        help="Largest angle between a vessel end's direction and a bridge.")
    min_spur_length_um: float = param(
        4.0, unit="µm", minimum=0.0,
        help="Skeleton side branches that stick out of their vessel by less than this are "
             "pruned (edge noise, pericyte bumps). [U] — below a capillary radius + 1 µm.")
    path_smoothing_um: float = param(
        1.0, unit="µm", minimum=0.0,
        help="Gaussian smoothing along the skeleton before lengths are summed (at least one "
             "pixel). Removes the staircase bias of 8-connected pixel chains (+4 % on "
             "average, up to +8 % at 22.5°, measured on straight tubes).")
    end_correction: bool = param(
        True,
        help="Extend each free vessel end to the mask edge along the vessel: a skeleton "
             "stops about one radius short of an end.")
    pericyte_scales_um: tuple[float, ...] = param(
        (1.0, 2.0, 4.0), unit="µm", minimum=0.1, maximum=200.0,
        help="Ridge scales for the pericyte channel: processes are 1–3 µm wide, sleeves and "
             "somata up to ≈ 10 µm [U].")
    min_pericyte_area_um2: float = param(
        20.0, unit="µm²", minimum=0.0,
        help="Smaller pericyte-channel objects are removed as debris.")
    min_pericyte_spur_length_um: float = param(
        1.0, unit="µm", minimum=0.0,
        help="Pruning of the pericyte skeleton. Lower than for vessels: a short stretch of "
             "sleeve just past a crossing is real pericyte length (pruning it at 4 µm loses "
             "≈ 5 % of pericyte length on phantoms), while edge noise makes spurs under 1 µm.")
    coverage_tolerance_um: float = param(
        1.0, unit="µm", minimum=0.0,
        help="A vessel point counts as covered when pericyte signal lies on the vessel's "
             "cross-section there, up to this far beyond the vessel edge (the pericyte "
             "wraps the outside of the endothelium; 1 µm allows for registration between "
             "channels and the PSF). Pericyte signal further from the wall is not counted: "
             "pericyte length is the covered vessel length.")
    coverage_max_angle_deg: float = param(
        30.0, unit="°", minimum=0.0, maximum=90.0,
        help="Pericyte cover must run along the vessel: a pericyte centreline within this "
             "angle of the vessel's direction. Keeps the sleeve of a crossing or joining "
             "vessel from covering this one; on phantoms 30° gives coverage within ≈ 1 "
             "percentage point of the truth, 45° over-counts at acute crossings.")
    nucleus_min_area_um2: float = param(
        12.0, unit="µm²", minimum=0.0,
        help="DAPI objects smaller than this are not nuclei (a 4 µm disc is 12.6 µm²).")
    nucleus_wall_distance_um: float = param(
        3.0, unit="µm", minimum=0.0,
        help="A nucleus counts as on the vessel wall when it comes this close to the vessel "
             "mask.")
    nucleus_pericyte_overlap_pct: float = param(
        30.0, unit="%", minimum=0.0, maximum=100.0,
        help="A wall nucleus is a pericyte body when this share of its area has pericyte "
             "signal (endothelial nuclei lie in uncovered stretches).")
    z_projection: str = param(
        "max", choices=("max", "mean"),
        help="How a Z-stack is made 2D. Maximum projection keeps every vessel of a thick "
             "section; lengths are then projected lengths (see docs).")

    def __post_init__(self) -> None:
        """Check that the vessel and pericyte ridge filters each have at least one scale."""
        super().__post_init__()
        # The ridge filter takes the maximum over its scales: with none there is no filter.
        for name in ("vessel_scales_um", "pericyte_scales_um"):
            if not getattr(self, name):
                raise ParamsError(f"VasculatureParams: {name}: give at least one scale in µm")


SPEC_ROLES = (
    ChannelRole("endothelium", True,
                "endothelial or vessel-wall marker: RECA-1, CD31, lectin, collagen IV"),
    ChannelRole("pericyte", False, "pericyte marker: PDGFRβ, NG2, desmin"),
    ChannelRole("dapi", False, "nuclei (DAPI, Hoechst), to count pericyte cell bodies"),
)


@dataclass
class _Channel:
    seg: TubeSegmentation | None
    trace: SkeletonTrace | None


def _report(progress: Progress | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(fraction, message)


def covered_entries(trace: SkeletonTrace, pericyte_mask: np.ndarray, tolerance_um: float,
                    pericyte_trace: SkeletonTrace | None = None, *, max_angle_deg: float = 30.0,
                    step_px: float = 0.5, k_nearest: int = 16) -> np.ndarray:
    """Whether a pericyte covers the vessel at each skeleton entry.

    An entry is covered when pericyte signal lies on the vessel's cross-section there (the
    segment through the centreline point, perpendicular to the vessel, reaching
    ``radius + tolerance_um`` on both sides) and, when ``pericyte_trace`` is given, that
    signal belongs to a pericyte structure running along this vessel: one of the pericyte
    centreline pieces whose tube holds the innermost hit on either side runs within
    ``max_angle_deg`` of the vessel. Measuring across the vessel (not along it) means a
    thin process on one side of a capillary covers that stretch while a sleeve's end covers
    no more than its own length; the direction test keeps the sleeve of a vessel that
    crosses or joins this one from counting as its cover.

    Parameters
    ----------
    trace : SkeletonTrace
        The vessel centreline (entries with position, radius and tangent).
    pericyte_mask : ndarray of bool
        Pericyte signal, on the trace's pixel grid.
    tolerance_um : float
        How far beyond the vessel's radius the cross-section reaches on each side, in µm.
    pericyte_trace : SkeletonTrace, optional
        The pericyte centreline; None skips the direction test.
    max_angle_deg : float
        Largest angle between the vessel and the covering pericyte piece, in degrees.
    step_px : float
        Sampling step along the cross-section, in px.
    k_nearest : int
        Pericyte centreline entries looked at per hit.

    Returns
    -------
    ndarray of bool
        One value per skeleton entry (``trace.entry_path``).
    """
    n = len(trace.entry_path)
    if n == 0 or not pericyte_mask.any():
        return np.zeros(n, bool)
    hits = _cross_section_hits(trace, pericyte_mask, tolerance_um, step_px)
    covered = np.isfinite(hits[:, :, 0]).any(axis=1)
    if pericyte_trace is None:
        return covered
    if len(pericyte_trace.entry_path) == 0:
        return np.zeros(n, bool)
    from scipy.spatial import cKDTree

    tree = cKDTree(pericyte_trace.entry_yx)
    p_rad = np.nan_to_num(pericyte_trace.entry_radius_um) / trace.pixel_size_um
    cos_min = np.cos(np.deg2rad(max_angle_deg))
    n_p = len(pericyte_trace.entry_path)
    k = min(k_nearest, n_p)
    # no tube reaches further than this: the search can stop there (missing neighbours come
    # back with d = inf and index n_p)
    bound = float(p_rad.max(initial=0.0)) + 1.0 + 1e-6
    along = np.zeros(n, bool)
    for side in range(2):
        pos = hits[:, side]
        ok = np.flatnonzero(np.isfinite(pos[:, 0]))
        for s in range(0, len(ok), 200_000):
            sel = ok[s:s + 200_000]
            d, j = tree.query(pos[sel], k=k, distance_upper_bound=bound)
            d, j = d.reshape(len(sel), -1), j.reshape(len(sel), -1)
            # pericyte centreline pieces whose tube holds the hit, running along the vessel
            row, col = np.nonzero(np.isfinite(d))
            jj = j[row, col]
            inside = d[row, col] <= p_rad[jj] + 1.0
            row, jj = row[inside], jj[inside]
            cos = np.abs(np.einsum("ij,ij->i", trace.entry_tangent[sel[row]],
                                   pericyte_trace.entry_tangent[jj]))
            along[sel[row[cos >= cos_min]]] = True
    return covered & along


def _cross_section_hits(trace: SkeletonTrace, pericyte_mask: np.ndarray, tolerance_um: float,
                        step_px: float) -> np.ndarray:
    """Innermost pericyte-mask point on each side of each entry's cross-section.

    Returns an array (entries, 2 sides, row/col) in pixels, NaN where that side has none
    within radius + tolerance.
    """
    n = len(trace.entry_path)
    out = np.full((n, 2, 2), np.nan)
    if n == 0 or not pericyte_mask.any():
        return out
    px = trace.pixel_size_um
    reach = (np.nan_to_num(trace.entry_radius_um) + tolerance_um) / px  # px, per entry
    normal = np.stack([-trace.entry_tangent[:, 1], trace.entry_tangent[:, 0]], axis=1)
    flat = padded_flat(pericyte_mask)
    for side, sign in ((0, 1.0), (1, -1.0)):
        out[:, side] = first_hits(flat, pericyte_mask.shape, trace.entry_yx, sign * normal,
                                  reach, step_px)
    return out


def _dapi_radius_um(p: VasculatureParams) -> float:
    return max(20.0, p.background_radius_um)


def _dapi_corrected(dapi: np.ndarray, px: float, p: VasculatureParams,
                    cal: Mapping[str, Any] | None = None, origin: tuple[int, int] = (0, 0),
                    ) -> tuple[np.ndarray, float | None, tuple[np.ndarray, int] | None]:
    """Background-corrected, smoothed DAPI and its nucleus threshold (Otsu).

    Without ``cal`` both are estimated from ``dapi`` (whose background grid is returned as
    well); with it (a tile) the calibration's background and threshold are applied. A
    threshold of None: the channel is flat, no nuclei.
    """
    raw = np.asarray(dapi, dtype=np.float32)
    grid = None
    if cal is None:
        grid = background_grid(raw, px, _dapi_radius_um(p))
        img = raw - background_window(*grid, (0, 0), raw.shape)
    else:
        img = raw - _background_of(cal["background"], origin, raw.shape)
    img = ndi.gaussian_filter(img, max(0.5, 0.5 / px))
    if cal is not None:
        thr = cal["threshold"]
        return img, None if thr is None else float(thr), None
    from skimage.filters import threshold_otsu

    sample = img[:: max(1, img.shape[0] // 1024), :: max(1, img.shape[1] // 1024)]
    if float(sample.max()) <= float(sample.min()):
        return img, None, grid
    return img, float(threshold_otsu(sample)), grid


def _pericyte_bodies(dapi: np.ndarray, vessels: np.ndarray, pericytes: np.ndarray, px: float,
                     p: VasculatureParams, cal: Mapping[str, Any] | None = None,
                     origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """Centroids (row, col) of DAPI nuclei on the vessel wall with pericyte signal."""
    img, threshold, _ = _dapi_corrected(dapi, px, p, cal, origin)
    if threshold is None:
        return np.zeros((0, 2))
    nuclei = img > threshold
    nuclei = remove_small(nuclei, p.nucleus_min_area_um2 / px**2)
    labels, n = ndi.label(nuclei)
    if n == 0:
        return np.zeros((0, 2))
    near = ndi.distance_transform_edt(~vessels) * px <= p.nucleus_wall_distance_um
    idx = np.arange(1, n + 1)
    area = ndi.sum(np.ones_like(labels, dtype=np.float32), labels, idx)
    on_wall = ndi.maximum(near, labels, idx) > 0
    peri_frac = ndi.sum(pericytes.astype(np.float32), labels, idx) / np.maximum(area, 1)
    keep = on_wall & (100.0 * peri_frac >= p.nucleus_pericyte_overlap_pct)
    if not keep.any():
        return np.zeros((0, 2))
    cent = np.asarray(ndi.center_of_mass(nuclei, labels, idx[keep]))
    return cent.reshape(-1, 2)


# --------------------------------------------------------------------------------------------
# Image-wide statistics (calibration)
# --------------------------------------------------------------------------------------------


def _tube_kw(p: VasculatureParams, role: str) -> dict[str, Any]:
    """segment_tubes' parameters for the endothelium or the pericyte channel."""
    common = dict(method=p.ridge_filter, threshold_low=p.threshold_low,
                  threshold_high=p.threshold_high, edge_level_pct=p.edge_level_pct,
                  background_radius_um=p.background_radius_um, max_hole_um2=p.max_hole_um2)
    if role == "endothelium":
        return dict(common, scales_um=p.vessel_scales_um, min_area_um2=p.min_vessel_area_um2,
                    core_threshold=p.ridge_core_threshold if p.ridge_core else None)
    return dict(common, scales_um=p.pericyte_scales_um, min_area_um2=p.min_pericyte_area_um2)


def _background_of(record: Mapping[str, Any], origin: tuple[int, int],
                   shape: tuple[int, int]) -> np.ndarray:
    """Return the calibration's background field over a tile at full-resolution ``origin``.

    A calibration read at full resolution gives the whole image's field bit for bit
    (:func:`histoquant.segment.vessels.background_window`); one read at a lower resolution
    is interpolated bilinearly between its block centres.
    """
    grid = np.asarray(record["values"], np.float32)
    f = int(record["block_px"])
    dy, dx = origin[0] - record["origin_yx"][0], origin[1] - record["origin_yx"][1]
    if float(record["cell_px"]) == 1.0 and float(dy).is_integer() and float(dx).is_integer():
        return background_window(grid, f, (int(dy), int(dx)), shape)
    from ..segment.background import sample_block_grid

    ys, xs = grid_positions(record, origin, shape, 1)
    out = np.empty(shape, np.float32)
    for r0 in range(0, shape[0], 2048):
        out[r0:r0 + 2048] = sample_block_grid(grid, f, ys[r0:r0 + 2048], xs)
    return out


def _applied(cal: Mapping[str, Any] | None, role: str, origin: tuple[int, int],
             shape: tuple[int, int]) -> dict[str, Any]:
    """segment_tubes' ``stats``/``background`` for a calibrated tile; {} uncalibrated."""
    if cal is None:
        return {}
    rec = cal[role]
    noise = [None if n is None else (float(n[0]), float(n[1])) for n in rec["noise"]]
    stats = TubeStats(None, int(rec["background"]["block_px"]), noise,
                      rec["centreline_median"])
    return {"stats": stats, "background": _background_of(rec["background"], origin, shape)}


def _tube_record(stats: TubeStats, origin_yx: tuple[float, float], step: int
                 ) -> dict[str, Any]:
    return {"background": grid_record(stats.background_grid, stats.background_block_px, step,
                                      origin_yx),
            "noise": [None if n is None else [float(n[0]), float(n[1])] for n in stats.noise],
            "centreline_median": None if stats.centreline_median is None
            else float(stats.centreline_median)}


def _analysed(image: Image, masks: dict[str, np.ndarray]
              ) -> tuple[dict[str, np.ndarray], np.ndarray | None, np.ndarray | None]:
    """Regions without padding, the padding (None: none), and the noise-statistics mask."""
    # Padding, tile frames and the outside of a field of view are never tissue: out of the
    # measured areas, and filled flat for the ridge filter and left out of its noise
    # estimate (zeros outside a round field of view made vessel length +76 %).
    pad = padding_of_image(image)
    if not pad.any() or pad.all():
        pad = None
    else:
        masks = {name: np.asarray(m, dtype=bool) & ~pad for name, m in masks.items()}
    analysed = np.zeros(image.shape_yx, bool)
    for m in masks.values():
        analysed |= m
    # the noise statistics need no mask when every pixel is analysed
    return masks, pad, None if analysed.all() else analysed


def _channel_stats(image: Image, idx: Mapping[str, int], masks: dict[str, np.ndarray],
                   p: VasculatureParams, origin: tuple[int, int]) -> dict[str, Any]:
    """Each channel's statistics, as a whole run of ``image`` (at ``origin``) estimates them."""
    px = float(image.pixel_size_um)
    _, pad, stats_mask = _analysed(image, masks)
    out: dict[str, Any] = {}
    for role in ("endothelium", "pericyte"):
        if role not in idx:
            continue
        chan = image.channel(idx[role], projection=p.z_projection)
        if role == "pericyte" and float(chan.max()) <= float(chan.min()):
            out[role] = None  # blank: no pericytes anywhere
            continue
        seg = segment_tubes(chan, px, mask=stats_mask, padding=pad, origin_yx=origin,
                            **_tube_kw(p, role))
        out[role] = seg.stats
    if "dapi" in idx and "pericyte" in idx:
        _, thr, grid = _dapi_corrected(image.channel(idx["dapi"], projection=p.z_projection),
                                       px, p)
        out["dapi"] = (grid, thr)
    return out


def calibrate(image: Image | np.ndarray, regions: Any = None, params: Any = None, *,
              channels: Mapping[str, str | int] | None = None,
              bounds: tuple[int, int, int, int] | None = None,
              pixel_size_um: float | None = None) -> dict[str, Any]:
    """Measure the image-wide statistics of the assay over the regions' bounding box.

    What a whole run estimates from the whole image, for a tiled run to apply to every tile
    (``run(tile, calibration=...)``, :func:`histoquant.tiling.run_tiled`), per channel
    (``endothelium``, ``pericyte``): the smooth background (a block grid placed in
    full-resolution coordinates; a tile reads its window), the ridge response's median and
    robust SD at each scale (the noise units of ``threshold_low``/``threshold_high``/
    ``ridge_core_threshold``), and the median centreline intensity (the level that decides
    whether a large hole is a vessel's inside); for ``dapi``, its background and the
    nucleus threshold.

    The box (the regions grown by the background's reach, twice ``background_radius_um``,
    and four largest ridge scales) is read whole up to
    :data:`histoquant.calibration.CALIBRATION_BUDGET_PX` pixels, and then gives what a
    whole run of that box gives (bit for bit: a tile's background is that of the whole
    image). Beyond, the background comes from every ``step``-th pixel (``step`` > 1; it is
    smooth over ``background_radius_um``), while the noise units, the centreline level and
    the DAPI threshold are measured at full resolution on the budget's worth of pixels
    around the box's centre: a ridge filter's answer to noise depends on the pixel size, so
    a strided view would give other noise units. They then depend on the vessels that
    window holds (on a phantom: noise SDs 2–40 % off, lengths and areas within 0.1 %);
    pooling windows spread over the region would be closer.

    Parameters
    ----------
    image : Image or ndarray
        Full-resolution fluorescence image (lazy arrays are read only inside the box).
    regions : None, mapping of masks, or RegionSource
        Where the assay measures (``None``: the whole image; ``"auto"`` and region files as
        :func:`run` takes them).
    params : VasculatureParams, dict or path, optional
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
    from .. import calibration as cal_mod
    from ..tiling import RegionSource

    p = resolve_params(VasculatureParams, params)
    image = prepare_image(image, pixel_size_um)
    px = float(image.pixel_size_um)
    idx = resolve_channels(image, SPEC.channel_roles, channels)
    _check_distinct(image, idx)
    if regions is not None and not isinstance(regions, (RegionSource, Mapping)):
        regions = resolve_regions(image, regions, SPEC.auto_regions)
    reach_um = 2.0 * p.background_radius_um + 4.0 * max(*p.vessel_scales_um,
                                                        *p.pericyte_scales_um)
    margin = int(np.ceil(reach_um / px))
    # never a pyramid level: the noise units are statistics of single pixels
    view = region_view(image, regions, bounds=bounds, margin_px=margin,
                       max_level_downsample=1)
    vimg = view.image
    check_not_empty(vimg.channel(idx["endothelium"], projection=p.z_projection),
                    f"{image.source} (endothelium channel)")
    warnings: list[str] = []
    if view.step == 1:
        stats = _channel_stats(vimg, idx, view.masks, p,
                               tuple(int(v) for v in view.origin_yx))
    else:
        # background from the strided view, noise units from full-resolution pixels
        budget = cal_mod.CALIBRATION_BUDGET_PX
        r0, c0 = (int(v) for v in view.origin_yx)
        h, w = vimg.shape_yx
        cy, cx = r0 + h * view.step // 2, c0 + w * view.step // 2
        side = max(16, int(np.sqrt(budget)) // 2 - margin)
        box = (cy - side, cy + side, cx - side, cx + side)
        win = region_view(image, regions, bounds=box, margin_px=margin, budget_px=budget,
                          max_level_downsample=1)
        # The statistics come from the box only: the window's own edges (inside the image)
        # answer as ridges, which a whole run sees only at the image's edges.
        wy, wx = (int(v) for v in win.origin_yx)
        inner = np.zeros(win.image.shape_yx, bool)
        inner[max(0, box[0] - wy):max(0, box[1] - wy), max(0, box[2] - wx):max(0, box[3] - wx)] \
            = True
        stats = _channel_stats(win.image, idx, {k: m & inner for k, m in win.masks.items()},
                               p, (wy, wx))
        pxv = float(vimg.pixel_size_um)
        for role in ("endothelium", "pericyte"):
            if stats.get(role) is not None:
                chan = vimg.channel(idx[role], projection=p.z_projection)
                grid, f = background_grid(chan, pxv, p.background_radius_um)
                stats[role].background_grid, stats[role].background_block_px = grid, f
        if "dapi" in stats:
            chan = vimg.channel(idx["dapi"], projection=p.z_projection)
            stats["dapi"] = (background_grid(chan, pxv, _dapi_radius_um(p)), stats["dapi"][1])
        warnings.append(f"the region is larger than the calibration budget: its background "
                        f"was measured on every {view.step}th pixel, its noise units on "
                        f"{win.image.shape_yx[0]} × {win.image.shape_yx[1]} pixels at its "
                        "centre")
    out: dict[str, Any] = {"assay": SPEC.name, "step": view.step,
                           "pyramid_level_downsample": view.level_downsample,
                           "origin_yx": [float(v) for v in view.origin_yx]}
    for role in ("endothelium", "pericyte"):
        if role in stats:
            out[role] = None if stats[role] is None else \
                _tube_record(stats[role], view.origin_yx, view.step)
    if "dapi" in stats:
        (grid, f), thr = stats["dapi"]
        out["dapi"] = {"background": grid_record(grid, f, view.step, view.origin_yx),
                       "threshold": thr}
    out["warnings"] = warnings
    return out


def run(image: Image | np.ndarray, regions: Any = None, params: Any = None, *,
        channels: Mapping[str, str | int] | None = None, pixel_size_um: float | None = None,
        progress: Progress | None = None,
        calibration: Mapping[str, Any] | None = None, model: Any = None) -> AssayResult:
    """Measure vessel length, pericyte length and pericyte coverage in one image.

    Parameters
    ----------
    image : Image or ndarray
        Fluorescence image (2D, multichannel, or a Z-stack that is projected) with its pixel
        size.
    regions : None, "auto", path, or regions
        Where to measure: ``None`` = whole image, ``"auto"`` = grey matter found by
        :mod:`histoquant.anatomy`, a region file, or masks / :class:`~histoquant.rois.Region`.
        Vessels are segmented on the whole image and their lengths split by region, so a
        region's edge does not cut vessels short.
    params : VasculatureParams, dict or path, optional
        Parameters; defaults when omitted.
    channels : mapping, optional
        ``{"endothelium": NAME|INDEX, "pericyte": NAME|INDEX, "dapi": NAME|INDEX}``.
        Without a pericyte channel only the vessels are measured. Channels named
        ``endothelium``/``pericyte``/``dapi`` are found by name; a single-channel image is
        the endothelium.
    pixel_size_um : float, optional
        Pixel size override in µm.
    progress : callable, optional
        ``progress(fraction, message)``.
    calibration : mapping, optional
        Image-wide statistics from :func:`calibrate` (each channel's background, noise units
        and centreline level, the DAPI threshold), applied instead of estimating them from
        ``image`` — a tile of a larger image (:func:`histoquant.tiling.run_tiled`; the
        tile's place is ``image.metadata["tile_origin_yx"]``). Without it they are
        estimated from ``image`` by the same code as :func:`calibrate`. With ``model``, the
        calibration's noise units and background of a channel the model segments are not
        used (the model gives that channel's mask); the DAPI threshold still is.
    model : PixelClassifier, optional
        A pixel classifier (``histoquant train pixels``, read with
        :func:`~histoquant.learn.pixels.load_pixel_classifier`; ``--model m.hqm`` on the
        command line) with a class named one of :data:`VESSEL_CLASSES`, in place of the
        ridge filter, hysteresis and half-maximum edges: the vessel mask is where the vessel
        class, or the pericyte class (:data:`PERICYTE_CLASSES`, when the model has one:
        pericytes lie on the vessel wall), is the most probable one; the pericyte mask is
        where the pericyte class is (without one, the pericyte channel keeps its ridge
        filter). ``min_vessel_area_um2``, ``max_hole_um2`` and ``min_pericyte_area_um2``
        still clean the masks; a gap is bridged where the vessel and pericyte classes keep
        a probability of at least 0.25 along it (in place of ``threshold_low``).
        Skeletons, lengths, diameters, coverage and bodies are then computed as before.
        ``extra["model"]`` records the model (class, classes, hash). The model must have
        been trained on fluorescence images with this image's channels; a tiled run hands
        it to every tile, each normalising its channels on its own pixels.

    Returns
    -------
    AssayResult
        ``summary``: one row per region; ``objects``: one row per vessel segment and region;
        ``labels``: skeleton pixels labelled by segment (``segment`` column); ``masks``:
        ``vessels``, ``vessel_skeleton``, ``covered_skeleton``, ``pericytes``,
        ``pericyte_skeleton``; ``qc``: overlay; ``extra``: per-channel details.

    Raises
    ------
    PixelSizeError
        The pixel size is unknown.
    ChannelError
        No endothelium channel can be identified, a named channel does not exist, or the
        same channel is given for two roles.
    EmptyImageError
        The endothelium channel is blank or not finite.
    ModelFileError
        ``model`` is not a pixel classifier with a vessel class.
    ModalityError
        ``model`` was trained on brightfield images.
    """
    p = resolve_params(VasculatureParams, params)
    image = prepare_image(image, pixel_size_um)
    px = float(image.pixel_size_um)
    idx = resolve_channels(image, SPEC.channel_roles, channels)
    _check_distinct(image, idx)
    record = None
    if model is not None:
        # before any pixel is measured: a model that cannot read this image fails here
        record = model_record(model, check_model_image(model, image, VESSEL_CLASSES,
                                                       SPEC.name))
    has_peri_class = model is not None and find_class(model, PERICYTE_CLASSES) is not None
    warnings: list[str] = []
    named = set(idx.values())
    if "pericyte" not in idx and not has_peri_class and image.n_channels > len(named):
        warnings.append(
            f"no pericyte channel given (the image has {image._channel_list()}); only vessels "
            "were measured. Give --channel pericyte=NAME|INDEX to measure coverage.")
    cal = dict(calibration) if calibration is not None else None
    origin = tile_origin(image)
    _report(progress, 0.02, "reading channels")
    endo = image.channel(idx["endothelium"], projection=p.z_projection)
    if cal is None:
        # a calibrated tile may be flat (background only); the whole image was checked
        check_not_empty(endo, f"{image.source} (endothelium channel)")
    masks = resolve_regions(image, regions, SPEC.auto_regions)
    masks, pad, stats_mask = _analysed(image, masks)

    model_peri = None
    if model is None:
        _report(progress, 0.05, "segmenting vessels")
        vseg = segment_tubes(endo, px, mask=stats_mask, padding=pad, origin_yx=origin,
                             **_tube_kw(p, "endothelium"),
                             **_applied(cal, "endothelium", origin, image.shape_yx))
        gap_support = vseg.zscore > np.float32(p.threshold_low)
    else:
        _report(progress, 0.05, "pixel classifier")
        vseg, model_peri = _classified(model, image, p, px, pad)
        gap_support = vseg.zscore >= np.float32(_GAP_PROBABILITY)
    _report(progress, 0.35, "tracing vessel skeleton")
    vtrace = trace_skeleton(vseg.mask, px, min_spur_length_um=p.min_spur_length_um,
                            smoothing_um=p.path_smoothing_um, end_correction=p.end_correction,
                            max_gap_um=p.max_gap_um, gap_angle_deg=p.gap_angle_deg,
                            gap_support=gap_support)
    del gap_support
    display = [(_qc_plane(endo), (150, 150, 150))]  # kept small for the QC overlay
    del endo

    peri = _Channel(None, None)
    covered = np.zeros(len(vtrace.entry_path), bool)
    if "pericyte" in idx or model_peri is not None:
        _report(progress, 0.5, "segmenting pericytes")
        pimg = image.channel(idx["pericyte"], projection=p.z_projection) \
            if "pericyte" in idx else None
        # blank over the whole image (a calibrated tile may be flat where the image is not)
        blank = model_peri is None and (float(pimg.max()) <= float(pimg.min()) if cal is None
                                        else cal["pericyte"] is None)
        if model_peri is not None:
            peri = _Channel(model_peri, None)
        elif blank:
            warnings.append("the pericyte channel is blank: pericyte length and coverage are 0")
            pmask = np.zeros(image.shape_yx, bool)
            peri = _Channel(TubeSegmentation(pmask, pmask, np.zeros(pmask.shape, np.float32),
                                             np.zeros(pmask.shape, np.float32)), None)
        else:
            pseg = segment_tubes(pimg, px, mask=stats_mask, padding=pad, origin_yx=origin,
                                 **_tube_kw(p, "pericyte"),
                                 **_applied(cal, "pericyte", origin, image.shape_yx))
            peri = _Channel(pseg, None)
        if pimg is not None:
            display.append((_qc_plane(pimg), (70, 70, 200)))
        del pimg
        _report(progress, 0.7, "tracing pericytes")
        peri.trace = trace_skeleton(peri.seg.mask, px,
                                    min_spur_length_um=p.min_pericyte_spur_length_um,
                                    smoothing_um=p.path_smoothing_um,
                                    end_correction=p.end_correction, max_gap_um=0.0)
        covered = covered_entries(vtrace, peri.seg.mask, p.coverage_tolerance_um, peri.trace,
                                  max_angle_deg=p.coverage_max_angle_deg)
        if not peri.seg.mask.any() and not any("blank" in w for w in warnings):
            warnings.append("no pericyte signal was found: pericyte length and coverage are 0")

    bodies = None
    if "dapi" in idx:
        _report(progress, 0.8, "counting pericyte cell bodies")
        if peri.seg is None:
            warnings.append("a DAPI channel was given without a pericyte channel: pericyte "
                            "bodies are not counted")
        else:
            dapi = image.channel(idx["dapi"], projection=p.z_projection)
            bodies = _pericyte_bodies(dapi, vseg.mask, peri.seg.mask, px, p,
                                      None if cal is None else cal["dapi"], origin)

    _report(progress, 0.9, "measuring")
    # A tile's row is a part of its region's: the region has no vessels only when no tile
    # has any (its declared tile rule keeps the flags every tile shares), so a tile's flags
    # go into its row but not into the run's warnings.
    summary = _summary(image.name, masks, px, vseg, vtrace, peri, covered, bodies, warnings,
                       flag="tile_origin_yx" not in image.metadata)
    objects = _objects(image.name, masks, px, vtrace, covered)
    masks_out = {"vessels": vseg.mask, "vessel_skeleton": vtrace.skeleton}
    if peri.seg is not None:
        cov_img = np.zeros(image.shape_yx, bool)
        rc = vtrace.entry_rc[covered]
        cov_img[rc[:, 0], rc[:, 1]] = True
        masks_out.update(covered_skeleton=cov_img, pericytes=peri.seg.mask,
                         pericyte_skeleton=peri.trace.skeleton)
    qc = _qc_overlay(image, display, p, masks, vtrace, peri, covered, bodies, summary, record)
    extra = {
        "segments": vtrace.paths,
        "trace": vtrace,
        "pericyte_trace": peri.trace,
        "branch_points_um": vtrace.branch_points_rc * px,
        "free_ends_um": vtrace.free_ends_rc * px,
        "pericyte_bodies_um": None if bodies is None else bodies * px,
        "channels": {role: image.channel_names[i] for role, i in idx.items()},
        "engine": "ridge filter" if record is None else "classifier",
    }
    if record is not None:
        record["pericyte_class"] = find_class(model, PERICYTE_CLASSES)
        extra["model"] = record
    _report(progress, 1.0, "done")
    return AssayResult(assay=SPEC.name, image=image.name, objects=objects, summary=summary,
                       labels=vtrace.label_image(), masks=masks_out, qc=qc,
                       params=p.to_dict(), pixel_size_um=px, warnings=warnings, extra=extra)


def _classified(model: Any, image: Image, p: VasculatureParams, px: float,
                pad: np.ndarray | None) -> tuple[TubeSegmentation, TubeSegmentation | None]:
    """Return the vessel (and pericyte) masks of a pixel classifier, cleaned as usual.

    ``zscore`` of the returned segmentations holds the class's probability (vessel: vessel +
    pericyte), which bridges gaps in place of the ridge response.
    """
    from ..learn.pixels import predict_proba

    prob = predict_proba(model, image)
    classes = list(model.classes)
    kv = classes.index(find_class(model, VESSEL_CLASSES))
    pname = find_class(model, PERICYTE_CLASSES)
    kp = None if pname is None else classes.index(pname)
    win = np.argmax(prob, axis=-1)
    keep = ~pad if pad is not None else np.ones(win.shape, bool)
    vessel = (win == kv) if kp is None else (win == kv) | (win == kp)
    vessel &= keep
    vessel = remove_small(vessel, p.min_vessel_area_um2 / px**2)
    # holes up to max_hole_um2 (4-connected background pieces) are filled, as segment_tubes does
    vessel = ~remove_small(~vessel, p.max_hole_um2 / px**2, connectivity=1)
    vessel &= keep
    vprob = prob[..., kv] if kp is None else prob[..., kv] + prob[..., kp]
    vseg = TubeSegmentation(vessel, vessel, np.ascontiguousarray(vprob, np.float32),
                            np.ascontiguousarray(vprob, np.float32))
    if kp is None:
        return vseg, None
    peri = (win == kp) & keep
    peri = remove_small(peri, p.min_pericyte_area_um2 / px**2)
    pprob = np.ascontiguousarray(prob[..., kp], np.float32)
    return vseg, TubeSegmentation(peri, peri, pprob, pprob)


def _check_distinct(image: Image, idx: dict[str, int]) -> None:
    seen: dict[int, str] = {}
    for role, i in idx.items():
        if i in seen:
            raise ChannelError(
                f"{image.source}: channel {i} ({image.channel_names[i]}) is given both as "
                f"{seen[i]!r} and as {role!r}; each role needs its own channel "
                f"(the image has {image._channel_list()})")
        seen[i] = role


def _summary(name: str, masks: dict[str, np.ndarray], px: float, vseg: TubeSegmentation,
             vtrace: SkeletonTrace, peri: _Channel, covered: np.ndarray,
             bodies: np.ndarray | None, warnings: list[str], flag: bool = True
             ) -> pd.DataFrame:
    table = region_table(name, masks, px)
    rows = []
    px2 = px * px
    seg_len = vtrace.paths["length_um"].to_numpy() if len(vtrace.paths) else np.zeros(0)
    diam = vtrace.paths["diameter_um"].to_numpy() if len(vtrace.paths) else np.zeros(0)
    for (rname, mask), area_mm2 in zip(masks.items(), table["region_area_mm2"]):
        inside = vtrace.entries_in(mask)
        w = vtrace.entry_length_um[inside]
        length = float(w.sum())
        in_paths = vtrace.path_lengths_in(mask)
        n_seg = int(np.sum(in_paths > 0.5 * seg_len)) if len(seg_len) else 0
        bp = vtrace.branch_points_rc
        # refined centres can sit a fraction of a pixel outside the image
        br = np.clip(np.rint(bp[:, 0]).astype(int), 0, mask.shape[0] - 1)
        bc = np.clip(np.rint(bp[:, 1]).astype(int), 0, mask.shape[1] - 1)
        n_bp = int(mask[br, bc].sum()) if len(bp) else 0
        fe = vtrace.free_ends_rc
        n_ends = int(mask[fe[:, 0], fe[:, 1]].sum()) if len(fe) else 0
        d = diam[vtrace.entry_path[inside]] if inside.any() else np.zeros(0)
        good = np.isfinite(d)
        mean_d = float(np.average(d[good], weights=w[good])) if good.any() and \
            w[good].sum() > 0 else float("nan")
        vessel_px = float((vseg.mask & mask).sum())
        region_px = float(mask.sum())
        row = {
            "vessel_length_um": length,
            "vessel_length_density_mm_per_mm2": length / 1000.0 / area_mm2 if area_mm2 else
            float("nan"),
            "n_vessel_segments": n_seg,
            "n_branch_points": n_bp,
            "n_vessel_ends": n_ends,
            "vessel_diameter_mean_um": mean_d,
            "vessel_area_um2": vessel_px * px2,
            "vessel_area_fraction_pct": 100.0 * vessel_px / region_px if region_px else
            float("nan"),
            "vessel_end_correction_um": float(vtrace.entry_end_um[inside].sum()),
        }
        flags = []
        if length == 0:
            flags.append("no_vessels")
        nan = float("nan")
        if peri.seg is not None:
            # Pericyte length is the vessel length the pericytes cover (pericyte signal on
            # the vessel's cross-section, up to coverage_tolerance_um beyond its wall, running
            # along it): NG2/PDGFRβ signal away from vessels (other cells, processes off the
            # wall) is not pericyte length, and pericyte length can never exceed the vessel
            # length (on a tumour CD31/NG2 field the pericyte channel's own skeleton was
            # 4.2 mm against 3.1 mm of vessel).
            cov_len = float(vtrace.entry_length_um[inside & covered].sum())
            plen = cov_len
            peri_px = float((peri.seg.mask & vseg.mask & mask).sum())
            row.update(
                pericyte_length_um=plen,
                pericyte_length_density_mm_per_mm2=plen / 1000.0 / area_mm2 if area_mm2
                else nan,
                pericyte_coverage_length_pct=min(100.0, 100.0 * cov_len / length)
                if length > 0 else nan,
                pericyte_coverage_area_pct=100.0 * peri_px / vessel_px if vessel_px > 0
                else nan,
            )
            if not (peri.seg.mask & mask).any():
                flags.append("no_pericytes")
        else:
            row.update(pericyte_length_um=nan, pericyte_length_density_mm_per_mm2=nan,
                       pericyte_coverage_length_pct=nan, pericyte_coverage_area_pct=nan)
        if bodies is not None:
            r = np.rint(bodies[:, 0]).astype(int)
            c = np.rint(bodies[:, 1]).astype(int)
            n_b = int(mask[r, c].sum()) if len(bodies) else 0
            row.update(n_pericyte_bodies=n_b,
                       pericyte_bodies_per_mm=n_b / (length / 1000.0) if length > 0 else nan)
        else:
            row.update(n_pericyte_bodies=nan, pericyte_bodies_per_mm=nan)
        row["flags"] = ";".join(flags)
        if flags and flag:
            warnings.append(f"region {rname!r}: {', '.join(flags)}")
        rows.append(row)
    return pd.concat([table, pd.DataFrame(rows)], axis=1)


def _objects(name: str, masks: dict[str, np.ndarray], px: float, trace: SkeletonTrace,
             covered: np.ndarray) -> pd.DataFrame:
    cols = ["image", "region", "segment", "length_um", "segment_length_um", "diameter_um",
            "pericyte_coverage_pct", "branch_type", "centroid_y_um", "centroid_x_um",
            "start_y_um", "start_x_um", "end_y_um", "end_x_um", "class"]
    if len(trace.paths) == 0:
        return pd.DataFrame(columns=cols)
    paths = trace.paths
    n = len(paths)
    frames = []
    for rname, mask in masks.items():
        inside = trace.entries_in(mask)
        w = np.where(inside, trace.entry_length_um, 0.0)
        length = np.bincount(trace.entry_path, weights=w, minlength=n)
        cov = np.bincount(trace.entry_path, weights=w * covered, minlength=n)
        sel = length > 0
        if not sel.any():
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            cov_pct = np.where(length > 0, np.clip(100.0 * cov / np.maximum(length, 1e-12),
                                                    0.0, 100.0), np.nan)
        frames.append(pd.DataFrame({
            "image": name,
            "region": rname,
            "segment": paths["path"].to_numpy()[sel] + 1,
            "length_um": length[sel],
            "segment_length_um": paths["length_um"].to_numpy()[sel],
            "diameter_um": paths["diameter_um"].to_numpy()[sel],
            "pericyte_coverage_pct": cov_pct[sel],
            "branch_type": paths["branch_type"].to_numpy()[sel],
            "centroid_y_um": paths["centroid_row"].to_numpy()[sel] * px,
            "centroid_x_um": paths["centroid_col"].to_numpy()[sel] * px,
            "start_y_um": paths["start_row"].to_numpy()[sel] * px,
            "start_x_um": paths["start_col"].to_numpy()[sel] * px,
            "end_y_um": paths["end_row"].to_numpy()[sel] * px,
            "end_x_um": paths["end_col"].to_numpy()[sel] * px,
            "class": "vessel_segment",
        }))
    if not frames:
        return pd.DataFrame(columns=cols)
    return pd.concat(frames, ignore_index=True)[cols]


def _qc_step(shape: tuple[int, int]) -> int:
    # Drawn at ≤ _QC_MAX_SIDE px, like the other assays' overlays: a full-resolution
    # composite of an 8k image is 200 MB and no screen shows it whole.
    return max(1, -(-max(shape) // _QC_MAX_SIDE))


def _qc_plane(channel: np.ndarray) -> np.ndarray:
    """Reduce a channel to the QC overlay's size (block means)."""
    from ..segment.statistics import block_mean

    q = _qc_step(channel.shape)
    return block_mean(channel, q) if q > 1 else channel


def _qc_overlay(image, layers, p, masks, vtrace, peri, covered, bodies, summary,
                record=None):
    from ..qc import CLASS_COLOURS, add_caption, draw_mask_outlines, to_display_rgb
    from ..segment.statistics import block_any

    q = _qc_step(image.shape_yx)
    rgb = to_display_rgb(None, channels=layers)
    shape = rgb.shape[:2]
    thick = max(1, round(max(shape) / 1500))
    if peri.seg is not None and peri.seg.mask.any():
        pmask = block_any(peri.seg.mask, q) if q > 1 else peri.seg.mask
        edge = pmask & ~ndi.binary_erosion(pmask)
        if thick > 1:
            edge = ndi.binary_dilation(edge, iterations=thick - 1)
        rgb[edge] = (240, 228, 66)
    if len(vtrace.entry_rc):
        for flag, colour in ((False, CLASS_COLOURS["uncovered"]),
                             (True, CLASS_COLOURS["covered"])):
            if peri.seg is None and flag:
                continue
            sel = covered == flag if peri.seg is not None else np.ones(len(covered), bool)
            img = np.zeros(shape, bool)
            rc = vtrace.entry_rc[sel] // q
            img[rc[:, 0], rc[:, 1]] = True
            if thick > 1:
                img = ndi.binary_dilation(img, iterations=thick - 1)
            rgb[img] = colour
    if bodies is not None and len(bodies):
        r = np.rint(bodies[:, 0] / q).astype(int)
        c = np.rint(bodies[:, 1] / q).astype(int)
        s = 2 * thick + 1
        for dr in range(-s, s + 1):
            for dc in (-s, s):
                rgb[np.clip(r + dr, 0, shape[0] - 1), np.clip(c + dc, 0, shape[1] - 1)] \
                    = (255, 255, 255)
                rgb[np.clip(r + dc, 0, shape[0] - 1), np.clip(c + dr, 0, shape[1] - 1)] \
                    = (255, 255, 255)
    draw_mask_outlines(rgb, {k: block_any(m, q) if q > 1 else m for k, m in masks.items()})
    # plain ASCII: the default caption font has no µ or ²
    how = (f"{p.ridge_filter}, scales {', '.join(f'{s:g}' for s in p.vessel_scales_um)} um"
           if record is None else
           f"pixel classifier, class {record['class']}, sha256 {record['sha256'][:12]}")
    lines = [f"vasculature  {image.name}  ({how})"]
    for _, row in summary.iterrows():
        text = (f"{row['region']}: vessels {row['vessel_length_um'] / 1000:.2f} mm, "
                f"{row['vessel_length_density_mm_per_mm2']:.1f} mm/mm2, "
                f"d {row['vessel_diameter_mean_um']:.1f} um")
        if np.isfinite(row["pericyte_coverage_length_pct"]):
            text += (f"; pericyte coverage {row['pericyte_coverage_length_pct']:.0f} % length, "
                     f"{row['pericyte_coverage_area_pct']:.0f} % area")
        lines.append(text)
    lines.append("green: covered vessel, orange: uncovered, yellow: pericyte outline")
    return add_caption(rgb, lines)


SPEC = AssaySpec(
    name="vasculature",
    title="Microvasculature: endothelial length, pericyte length and pericyte coverage",
    params_cls=VasculatureParams,
    run=run,
    channel_roles=SPEC_ROLES,
    auto_regions=("grey_matter",),
    modalities=("fluorescence",),
    # a segment's ends move with it when a tile is put back into slide coordinates
    positions=(("centroid_y_um", "centroid_x_um"), ("start_y_um", "start_x_um"),
               ("end_y_um", "end_x_um")),
    calibrate=calibrate,
    model_steps=(ModelStep(
        "pixels", "the ridge-filter vessel segmentation (and the pericyte one when the model "
        "has a pericyte class): the masks are where the pixel classifier's class "
        f"{' / '.join(VESSEL_CLASSES)} (or pericyte) is the most probable one; skeletons, "
        "lengths and coverage are computed on them as before",
        check=fluorescence_class_check("vasculature", *VESSEL_CLASSES)),),
    endpoints=(
        Endpoint("capillary_length_density", "vessel_length_density_mm_per_mm2",
                 "Capillary length density", regions=("grey_matter",)),
        Endpoint("pericyte_coverage_length", "pericyte_coverage_length_pct",
                 "Pericyte coverage of capillary length", regions=("grey_matter",),
                 weight="vessel_length_um"),
        Endpoint("pericyte_coverage_area", "pericyte_coverage_area_pct",
                 "Pericyte coverage of capillary area", regions=("grey_matter",),
                 weight="vessel_area_um2"),
    ),
    measures=(
        REGION_AREA,
        Measure("vessel_length_um", "µm", "vessel centreline length", animal="sum"),
        Measure("vessel_length_density_mm_per_mm2", "mm/mm²",
                "vessel length per area of the region", tiles="ratio",
                of=("vessel_length_um", "region_area_mm2"), scale=1e-3),
        Measure("n_vessel_segments", "count", "centreline segments between branch points "
                "and ends (a segment cut by a tile seam counts once per tile)", animal="sum"),
        Measure("n_branch_points", "count", "centreline branch points", animal="sum"),
        Measure("n_vessel_ends", "count", "free ends of the centreline", animal="sum"),
        Measure("vessel_diameter_mean_um", "µm", "length-weighted mean vessel diameter",
                tiles="weighted", of=("vessel_length_um",), animal="weighted",
                animal_weight="vessel_length_um"),
        Measure("vessel_area_um2", "µm²", "vessel (endothelial) area", animal="sum"),
        Measure("vessel_area_fraction_pct", "%", "vessel area, % of the region",
                tiles="ratio", of=("vessel_area_um2", "region_area_mm2"), scale=1e-4),
        Measure("vessel_end_correction_um", "µm", "length added at free ends (half a "
                "vessel width each)", animal="none"),
        Measure("pericyte_length_um", "µm", "vessel length covered by pericytes",
                animal="sum"),
        Measure("pericyte_length_density_mm_per_mm2", "mm/mm²",
                "pericyte-covered vessel length per area of the region", tiles="ratio",
                of=("pericyte_length_um", "region_area_mm2"), scale=1e-3),
        Measure("pericyte_coverage_length_pct", "%",
                "pericyte coverage by length: covered / vessel length", tiles="ratio",
                of=("pericyte_length_um", "vessel_length_um"), scale=100.0),
        Measure("pericyte_coverage_area_pct", "%",
                "pericyte coverage by area: pericyte signal on the vessel / vessel area",
                tiles="weighted", of=("vessel_area_um2",)),
        Measure("n_pericyte_bodies", "count", "pericyte cell bodies on the vessels",
                animal="sum"),
        Measure("pericyte_bodies_per_mm", "per mm", "pericyte bodies per mm of vessel",
                tiles="ratio", of=("n_pericyte_bodies", "vessel_length_um"), scale=1e3),
        Measure("flags", "", "problems found in the region (no_vessels, no_pericytes); a "
                "tiled run keeps those every tile of the region has", tiles="common",
                animal="none"),
    ),
)
