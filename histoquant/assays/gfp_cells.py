"""GFP+ transplanted cells: rare true cells among green autofluorescent decoys.

After intravenous GFP-labelled MSCs, a lumbar section holds a handful of GFP+ cells (often
none), and many things that glow green too: lipofuscin granules, red blood cells, broad tissue
autofluorescence, cut edges. The assay

1. finds bright objects in the GFP channel on a block-averaged copy (blocks of about a quarter
   of the smallest cell), against a smooth local background and a *local* noise level, with
   hysteresis (``detection_sigma`` to seed an object, ``extent_sigma`` for its extent);
2. refines each candidate at full resolution in a crop: outline, separation of touching cells
   (watershed on the distance transform, a neck of more than a quarter cell diameter splits);
3. measures each object: area, GFP and reference-channel signal over the local background,
   their ratio, a granularity (share of the GFP signal in puncta the size of lipofuscin
   granules), and — with DAPI — whether a nucleus lies inside;
4. classes it: ``autofluorescent`` (reference/GFP ratio above ``max_reference_ratio``, or
   granularity above ``max_granularity``), ``too_small`` / ``too_large``, ``no_nucleus``
   (DAPI given, nucleus required, none inside), or ``gfp_cell`` (counted). Nothing is dropped:
   every object above ``min_object_area_um2`` is a row of the objects table with its class and
   the reason.

With ``engine="cellpose"`` steps 1–2 are replaced by Cellpose-SAM masks of the GFP channel
(:mod:`histoquant.segment.cellpose_engine`); each mask is then measured and classed by the
same code as a classical object (steps 3–4, the split of an object holding two nuclei
included), so both engines give the same tables. :func:`preflight` checks cellpose and its
weights before a batch reads any image.

Spinal level, section and animal come from the caller (``run(..., level="L3")`` or the CLI's
``--level`` / ``--meta``); :func:`aggregate_by_level` sums sections per animal × level × region
and counts sections with zero cells as sections.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..errors import ChannelError, EmptyImageError, ParamsError
from ..io.image import Image
from ..params import AssayParams, param
from ..results import AssayResult
from ..segment.cellpose_engine import CellposeOptions, require_cellpose, segment_cellpose
from ..segment.local_background import SmoothBackground, estimate_background
from ..segment.nuclei import nuclear_threshold, segment_nuclei, smooth_sigma_px
from ..segment.padding import padding_of_image
from ..segment.statistics import (
    MAD_TO_SD,
    P10_TO_SD,
    block_any,
    block_mean,
    robust_location_scale,
    sigma_clipped_background,
)
from .base import (
    AssaySpec,
    ChannelRole,
    Progress,
    prepare_image,
    region_table,
    resolve_channels,
    resolve_params,
    resolve_regions,
)
from .contract import REGION_AREA, ExtraTable, Measure

__all__ = ["GfpCellParams", "run", "SPEC", "aggregate_by_level", "normalize_level", "CLASSES",
           "cellpose_options", "preflight"]

# defaults, units and ranges of the cellpose options come from the adapter, so they are
# stated once
_CP = {f["name"]: f for f in CellposeOptions.field_info()}

CLASSES = ("gfp_cell", "no_nucleus", "autofluorescent", "too_small", "too_large", "fibre",
           "texture", "low_contrast", "edge")
"""Object classes; only ``gfp_cell`` is counted as a GFP+ cell."""

REJECT_REASONS = ("too_small", "too_large", "thin", "elongated", "low_solidity", "texture",
                  "punctate", "low_contrast", "padding_edge")
"""Shape and size reasons counted per region as ``n_rejected_<reason>`` in the summary (an
object whose ``reason`` names several counts under each)."""


@dataclass(frozen=True)
class GfpCellParams(AssayParams):
    """Parameters of the GFP+ cell assay (defaults justified in ``help``)."""

    min_cell_diameter_um: float = param(
        8.0, unit="µm", minimum=1.0,
        help="Smallest GFP+ cell profile (equivalent diameter). MSCs are 13–30 µm (≈ 23 µm, "
             "Toma et al. 2009; Ge et al. 2014); a section can graze a cell, so the floor sits "
             "below 13 µm but above a single red blood cell (6–7.5 µm [S]).")
    max_cell_diameter_um: float = param(
        40.0, unit="µm", minimum=2.0,
        help="Largest single GFP+ cell profile: 30 µm (largest cultured MSC [S]) plus room "
             "for cells spread in tissue [U]. Larger objects left after splitting touching "
             "cells are classed too_large (clumps, folds, edge artefacts).")
    min_object_area_um2: float = param(
        20.0, unit="µm²", minimum=0.0,
        help="Objects smaller than this are not listed at all (noise specks, single "
             "granules); 20 µm² keeps a red blood cell (≈ 30–45 µm²) as a listed decoy.")
    background_scale_um: float = param(
        60.0, unit="µm", minimum=5.0,
        help="Size of the opening that estimates the local background: anything narrower "
             "(cells up to max_cell_diameter_um) is signal, anything broader (tissue "
             "autofluorescence, uneven illumination) is background. Must exceed "
             "max_cell_diameter_um.")
    noise_tile_um: float = param(
        150.0, unit="µm", minimum=10.0,
        help="Tile over which the local noise σ is measured; grey and white matter and the "
             "slide differ in autofluorescence texture, so one image-wide σ would be too "
             "strict in one and too lax in another. 150 µm holds several thousand blocks.")
    detection_sigma: float = param(
        4.0, unit="σ", minimum=0.5,
        help="An object must peak this many local σ (noise plus autofluorescence texture) "
             "above the local background, after block averaging. At 4 σ the phantom's dim "
             "cells (0.3–0.6 × the tissue autofluorescence over 5 % mottle) are found; at 5 σ "
             "about a third of them are missed [phantom]. Noise alone passes 4 σ about once "
             "in 30,000 blocks; such specks are mostly below min_object_area_um2 or rejected.")
    extent_sigma: float = param(
        2.5, unit="σ", minimum=0.0,
        help="An object extends over connected pixels above this many σ (hysteresis), so "
             "dim cytoplasm around a bright part belongs to the same cell.")
    max_reference_ratio: float = param(
        0.3, minimum=0.0,
        help="Objects whose reference-channel signal exceeds this fraction of their GFP "
             "signal are autofluorescent. EGFP emits only a few per cent past 570 nm [S: "
             "EGFP spectrum], while lipofuscin and red blood cells emit broadly, in green and "
             "red alike [S: Mochizuki 1995; Whittington & Wray 2017]. 0.3 assumes the two "
             "channels have comparable exposure [U]; check the ratio column of a few known "
             "cells when exposures differ.")
    max_granularity: float = param(
        0.5, minimum=0.0, maximum=1.0,
        help="Objects with more than this share of their GFP signal in puncta no larger than "
             "granule_diameter_um are autofluorescent (lipofuscin is punctate; GFP fills the "
             "cytoplasm [S]). On ten phantoms lipofuscin objects measured 0.63–1.04 and GFP "
             "cells 0.01–0.31 [phantom].")
    granule_diameter_um: float = param(
        2.5, unit="µm", minimum=0.2,
        help="Largest lipofuscin granule: granules are ≈ 1–2.5 µm [U from histology "
             "figures]. Sets the white top-hat that measures granularity.")
    max_elongation: float = param(
        3.0, minimum=1.0,
        help="Largest major/minor axis ratio of a cell body (ellipse of the same second "
             "moments). A soma or a rounded MSC in tissue is at most ≈ 2:1; a spindle MSC "
             "in culture reaches 3–5:1 [U]. Longer objects are fibres (class fibre, reason "
             "elongated): axon and dendrite segments, a glowing fold.")
    min_solidity: float = param(
        0.7, minimum=0.0, maximum=1.0,
        help="Smallest area/convex-hull ratio of a cell body. A soma with the stubs of its "
             "processes measures ≈ 0.75–1 (ChAT somata 0.71–1.0 at 2 µm/px [real]); crossing "
             "or branching fibres fill little of their hull (class fibre, reason "
             "low_solidity).")
    max_thin_fraction: float = param(
        0.5, minimum=0.0, maximum=1.0,
        help="Largest share of an object's area narrower than the smallest cell (what an "
             "opening with a disk of min_cell_diameter_um removes). A cell body is mostly "
             "wider than that; a fibre or a network of fibres is all thin (class fibre, "
             "reason thin).")
    max_texture_fraction: float = param(
        0.35, minimum=0.0, maximum=1.0,
        help="Largest share of an object's significance in structure finer than the smallest "
             "cell (what a grey opening with a disk of min_cell_diameter_um removes). GFP or "
             "ChAT fills the cytoplasm, so a soma keeps most of it (ChAT somata lose "
             "0.02–0.28 [real]; a dim phantom cell up to 0.34, its noise peaks being opened "
             "away [phantom]); a clump of puncta or fibres is bright dots with dark gaps and "
             "loses more, up to 0.6 (class texture).")
    min_ring_contrast: float = param(
        3.0, minimum=0.0,
        help="Smallest ring_contrast of a cell body: its mean significance above the median "
             "of the ring of neuropil_ring_um around it, in units of the spread of the ring's "
             "bulk (1.28 × its MAD-based σ, the 90th percentile − median were it normal; at "
             "least one noise σ), so a fibre crossing the ring, a minority of its pixels, "
             "does not set it. A filled soma is brighter than nearly everything around it "
             "(ChAT objects within 14 µm of a by-eye soma: median 4.2, 10th percentile 2.5; "
             "phantom cells ≥ 9, also on fibres as bright as they are [real, phantom]); a "
             "clump of white-matter axon profiles or a blob of neuropil is made of the same "
             "dots as its surroundings and stands out of them little (the other ChAT objects: "
             "median 2.7 [real]). 3.0 keeps the ChAT counts where the 90th-percentile spread "
             "at 1.5 had them (115/122/123/90/95 vs 115/123/121/92/96); at 2.5 they were "
             "4–9 % higher. Two-photon cells in dense fields, whose rings hold their "
             "neighbours, reach down to 2.1–2.4 (10th percentile per plane): 0–6 % of a "
             "plane's cells fall below 3.0 [real]. Below: class low_contrast.")
    max_peak_density: float = param(
        0.6, unit="1/100 µm²", minimum=0.0,
        help="Largest number of separate maxima (see min_peak_prominence) per 100 µm² of an "
             "object with three or more of them. A filled soma has one or two (ChAT somata: "
             "90th percentile 0.55 per 100 µm² [real]); a clump of axon profiles or puncta is "
             "small dots with dark gaps, one maximum each (median 0.8 per 100 µm² [real]). "
             "Above: class texture, reason punctate.")
    min_peak_prominence: float = param(
        0.3, minimum=0.0, maximum=1.0,
        help="A maximum counts for peak_density when it stands this fraction of the object's "
             "amplitude (95th percentile − ring median) above the saddle to a brighter one, "
             "and at least one noise σ: the dots of a clump are separated by gaps of about "
             "their own height, while the noise of a filled cell makes bumps a small fraction "
             "of it (two-photon cells at 0.3: 80 % one maximum, 17 % two [real]).")
    neuropil_ring_um: float = param(
        10.0, unit="µm", minimum=1.0,
        help="Width of the ring around an object read as its neighbourhood for "
             "ring_contrast: a few neuropil or white-matter structures wide, and about one "
             "cell radius, so the ring sees the tissue the cell sits in, not the next cell.")
    split_touching: bool = param(
        True, help="Separate touching cells by a watershed on the distance transform.")
    require_nucleus: bool = param(
        True, help="With a DAPI channel, count only GFP+ objects that hold a nucleus: a "
                   "transplanted cell has one, debris and a cell's cut-off process do not.")
    min_nucleus_diameter_um: float = param(
        5.0, unit="µm", minimum=0.5,
        help="Smallest nucleus: below glial nuclei (≈ 9 µm [S]) with room for grazing "
             "sections.")
    max_nucleus_diameter_um: float = param(
        20.0, unit="µm", minimum=1.0,
        help="Largest nucleus: motor-neuron nuclei reach ≈ 15–20 µm [S: soma 28 µm].")
    nucleus_threshold_sigma: float = param(
        5.0, unit="σ", minimum=0.5,
        help="DAPI threshold in noise σ above the DAPI background (Otsu when the tissue is "
             "too packed with nuclei to show a background mode); see segment_nuclei.")
    min_nucleus_overlap: float = param(
        0.5, minimum=0.0, maximum=1.0,
        help="A nucleus belongs to a GFP+ object when at least this fraction of its area "
             "lies inside the object: half, so a neighbouring nucleus that the cell only "
             "touches does not count.")
    count_nuclei: bool = param(
        False, help="Also segment every DAPI nucleus in the regions and call each GFP+ or "
                    "GFP− from the GFP in a ring around it (n_nuclei, "
                    "gfp_positive_nuclei_pct). Meant for fields with many labelled cells "
                    "(membrane GFP, reporter lines); slow on whole sections.")
    ring_um: float = param(
        2.0, unit="µm", minimum=0.2,
        help="Width of the perinuclear ring read for count_nuclei: the cytoplasm or "
             "membrane of a small cell lies within ≈ 2 µm of its nucleus [U].")
    engine: str = param(
        "classical", choices=("classical", "cellpose"),
        help="How objects are found. classical: local-background detection with hysteresis "
             "and splitting of touching cells (fast, no extra install). cellpose: "
             "Cellpose-SAM instance masks on the GFP channel (optional extra, weights on "
             "disk; see docs/cellpose.md). Either way every object is measured and classed "
             "by the same code and criteria.")
    cellpose_model: str = param(
        _CP["model"]["default"],
        help="Cellpose model name (weights file in the cellpose models folder) or path of a "
             "model file, e.g. one fine-tuned on GFP sections. engine=cellpose only. "
             "Never downloaded: see docs/cellpose.md.")
    cellpose_diameter_um: float | None = param(
        None, unit="µm", minimum=0.1,
        help="Cell diameter cellpose rescales the image for (objects ≈ 30 px for the "
             "network, which also sets its cost). None: the midpoint of "
             "min_cell_diameter_um and max_cell_diameter_um (24 µm at the defaults, close to "
             "the ≈ 23 µm MSC of Toma et al. 2009). engine=cellpose only.")
    cellpose_flow_threshold: float = param(
        _CP["flow_threshold"]["default"], minimum=_CP["flow_threshold"]["minimum"],
        help="Cellpose flow-error threshold; higher keeps more, worse-shaped masks. "
             "Cellpose's default. engine=cellpose only.")
    cellpose_cellprob_threshold: float = param(
        _CP["cellprob_threshold"]["default"], minimum=_CP["cellprob_threshold"]["minimum"],
        maximum=_CP["cellprob_threshold"]["maximum"],
        help="Cellpose cell-probability logit threshold; lower finds more and larger masks "
             "(dim cells), higher fewer and smaller. Cellpose's default. engine=cellpose only.")
    cellpose_device: str = param(
        _CP["device"]["default"], choices=_CP["device"]["choices"],
        help="Where the network runs: auto picks a CUDA GPU, else Apple MPS, else the CPU "
             "(slow: tens of seconds per 256 px network block). engine=cellpose only.")
    cellpose_batch_size: int = param(
        _CP["batch_size"]["default"], minimum=_CP["batch_size"]["minimum"],
        help="Network blocks run at once; raise on a GPU with memory to spare. Cellpose's "
             "default. engine=cellpose only.")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_cell_diameter_um <= self.min_cell_diameter_um:
            raise ParamsError("GfpCellParams: max_cell_diameter_um must exceed "
                              "min_cell_diameter_um")
        if self.background_scale_um <= self.max_cell_diameter_um:
            raise ParamsError("GfpCellParams: background_scale_um must exceed "
                              "max_cell_diameter_um, or large cells become background")
        if self.max_nucleus_diameter_um <= self.min_nucleus_diameter_um:
            raise ParamsError("GfpCellParams: max_nucleus_diameter_um must exceed "
                              "min_nucleus_diameter_um")
        if self.extent_sigma > self.detection_sigma:
            raise ParamsError("GfpCellParams: extent_sigma must not exceed detection_sigma")


# --------------------------------------------------------------------------------------------
# small helpers


def _plane(image: Image, index: int) -> np.ndarray:
    """One channel as a 2D array (a view where possible, Z max-projected)."""
    data = image.data
    arr = data[..., index] if image.axes.endswith("C") else data
    arr = np.asarray(arr)
    if "Z" in image.axes:
        arr = arr.max(axis=0)
    return arr


def _check_low(arr: np.ndarray, image: Image, role: str) -> None:
    """NaN/blank checks on the block-averaged channel (cheap, and NaN survives averaging)."""
    if not np.isfinite(arr).all():
        raise EmptyImageError(
            f"{image.source}: the {role} channel holds NaN or infinite pixels. Fill or mask "
            "them before analysis.")
    if arr.size == 0 or float(arr.max()) == float(arr.min()):
        raise EmptyImageError(
            f"{image.source}: the {role} channel is blank (one constant value); there is "
            "nothing to measure. Check the exposure and that the right channel was chosen.")


def normalize_level(value: Any) -> Any:
    """Spinal level in one spelling: ``"l3"``, ``"3"``, ``" L3 "`` → ``"L3"``; others as is."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return value
    text = str(value).strip()
    m = re.fullmatch(r"[lL]?\s*(\d+)", text)
    return f"L{int(m.group(1))}" if m else text


@dataclass
class _NoiseMap:
    """Background level and noise σ of the smoothed block-averaged GFP residual, per tile."""

    level: SmoothBackground
    sigma: SmoothBackground

    def at_full_resolution(self, f: int, shape: tuple[int, int]) -> _NoiseMap:
        """The same tiles addressed in full-resolution pixels (blocks of ``f`` pixels)."""
        t = self.level.factor
        return _NoiseMap(SmoothBackground(self.level.values, t * f, shape),
                         SmoothBackground(self.sigma.values, t * f, shape))


def _local_noise(resid: np.ndarray, valid: np.ndarray, tile_px: int) -> _NoiseMap:
    """Per-tile background level and σ (median, MAD_TO_SD·MAD after one 3σ clip) of ``resid``.

    Tiles with too few valid pixels borrow the nearest good tile's values.
    """
    h, w = resid.shape
    t = max(4, int(tile_px))
    nty, ntx = -(-h // t), -(-w // t)
    pad = np.full((nty * t, ntx * t), np.nan, np.float32)
    pad[:h, :w] = np.where(valid, resid, np.nan)
    # every s-th row and column of a tile is plenty for a median (and s² times faster)
    s = max(1, t // 32)
    blocks = pad.reshape(nty, t, ntx, t)[:, ::s, :, ::s].transpose(0, 2, 1, 3)
    blocks = blocks.reshape(nty, ntx, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN tiles
        level = np.nanmedian(blocks, axis=2)
        sigma = MAD_TO_SD * np.nanmedian(np.abs(blocks - level[..., None]), axis=2)
        clipped = np.where(blocks < (level + 3 * sigma)[..., None], blocks, np.nan)
        level = np.nanmedian(clipped, axis=2)
        lower = np.where(clipped <= level[..., None], clipped, np.nan)
        sigma = MAD_TO_SD * np.nanmedian(level[..., None] - lower, axis=2)
        count = np.isfinite(blocks).sum(axis=2)
    good = (count >= max(16, blocks.shape[2] // 8)) & np.isfinite(level) & np.isfinite(sigma)
    if not good.any():
        lv, sg = sigma_clipped_background(resid[valid] if valid.any() else resid)
        level = np.full((nty, ntx), lv, np.float32)
        sigma = np.full((nty, ntx), sg, np.float32)
    elif not good.all():
        idx = ndi.distance_transform_edt(~good, return_distances=False, return_indices=True)
        level, sigma = level[tuple(idx)], sigma[tuple(idx)]
    # a tile of flat slide (σ ≈ 0) must not make every faint speck a detection
    floor = 0.25 * float(np.median(sigma[good])) if good.any() else 0.0
    sigma = np.maximum(sigma, max(floor, 1e-6))
    return _NoiseMap(SmoothBackground(level.astype(np.float32), t, (h, w)),
                     SmoothBackground(sigma.astype(np.float32), t, (h, w)))


def _background_and_noise(low: np.ndarray, size_px: float, valid: np.ndarray,
                          tile_px: int, tissue: np.ndarray | None = None,
                          ) -> tuple[np.ndarray, _NoiseMap]:
    """Background of a block-averaged channel and the local noise of what is left.

    ``valid``: blocks the noise is measured over (the regions, less padding); ``tissue``:
    blocks that are not padding (None: all), the only ones the background is taken from.

    An opening is a lower envelope: over mottled autofluorescence it sits below the mean
    background by about one to two σ of the mottle. That offset (the median residual per
    tile) is added back, so a signal is measured against the mean background, not against
    its dips — which matters for dim cells and for the reference/GFP ratio.
    """
    bg = estimate_background(low, size_px, mask=tissue)
    noise = _local_noise(ndi.gaussian_filter(low - bg, 0.7), valid, tile_px)
    return bg + noise.level.full(), noise


def _slices_up(sl: tuple[slice, slice], f: int, margin: int,
               shape: tuple[int, int]) -> tuple[slice, slice]:
    """Full-resolution slices of a block-grid bounding box, grown by ``margin`` pixels."""
    return tuple(slice(max(0, s.start * f - margin), min(n, s.stop * f + margin))
                 for s, n in zip(sl, shape))


def _upsample_mask(low: np.ndarray, f: int, rows: slice, cols: slice) -> np.ndarray:
    """Nearest-neighbour full-resolution mask for the crop ``rows, cols`` from a block-grid
    array ``low`` whose element ``[0, 0]`` is block ``(rows.start // f, cols.start // f)``."""
    r = np.arange(rows.start, rows.stop) // f - rows.start // f
    c = np.arange(cols.start, cols.stop) // f - cols.start // f
    return low[np.ix_(np.clip(r, 0, low.shape[0] - 1), np.clip(c, 0, low.shape[1] - 1))]


def _low_slices(rows: slice, cols: slice, f: int) -> tuple[slice, slice]:
    """Block-grid slices covering full-resolution ``rows, cols``."""
    return (slice(rows.start // f, (rows.stop - 1) // f + 1),
            slice(cols.start // f, (cols.stop - 1) // f + 1))


def _compact_blobs(comp: np.ndarray, i: int, sl: tuple[slice, slice], cell_px: float,
                   max_area_px: float, min_area_px: float,
                   first_id: int, body: np.ndarray | None = None,
                   ) -> list[tuple[int, tuple[slice, slice]]]:
    """Relabel the compact, cell-sized blobs of large component ``i`` as new components.

    The blobs are the cell bodies ``body`` (block grid, significant after a grey opening
    with a disk of the smallest cell) inside the component; without ``body``, a binary
    opening with a disk about one smallest-cell wide. Either removes thin structures (a
    glowing tissue edge, a fold line, a fibre network) and keeps blobs at least that wide;
    the grey opening also splits bodies joined by dim fibres that a binary opening keeps.
    Each kept blob no larger than ``max_area_px`` gets label ``first_id``, ``first_id +
    1``... in ``comp`` (changed in place). Returns their ``(label, slices)``.
    """
    from skimage.morphology import disk

    sub = comp[sl] == i
    r = max(1, int(cell_px / 2))
    core = body[sl] & sub if body is not None else ndi.binary_opening(sub, structure=disk(r))
    core_lab = ndi.label(core)[0]
    out = []
    view = comp[sl]
    for k, csl in enumerate(ndi.find_objects(core_lab), 1):
        if csl is None:
            continue
        # work in the blob's box grown by the dilation radius: a network component can
        # hold thousands of bodies, and whole-component masks per blob would be quadratic
        box = tuple(slice(max(0, c.start - r), min(n, c.stop + r))
                    for c, n in zip(csl, core_lab.shape))
        blob = core_lab[box] == k
        area = int(blob.sum())
        if area > max_area_px or area < min_area_px:
            continue
        # give the blob back the rim the opening shaved off, inside the component
        blob = ndi.binary_dilation(blob, structure=disk(r)) & sub[box]
        new = first_id + len(out)
        view[box][blob] = new
        rr, cc = np.nonzero(blob)
        r0, c0 = sl[0].start + box[0].start, sl[1].start + box[1].start
        out.append((new, (slice(r0 + rr.min(), r0 + rr.max() + 1),
                          slice(c0 + cc.min(), c0 + cc.max() + 1))))
    return out


def _green_blobs(comp: np.ndarray, i: int, sl: tuple[slice, slice], gfp_res: np.ndarray,
                 ref_res: np.ndarray, max_ratio: float, min_area_px: float,
                 max_area_px: float, first_id: int) -> list[tuple[int, tuple[slice, slice]]]:
    """Relabel the green-only, cell-sized parts of component ``i`` as new components.

    Pixels whose reference signal stays below ``max_ratio`` × their GFP signal are where GFP,
    not autofluorescence, shines; a blob of them at least the smallest cell in area is a cell
    candidate stuck to an autofluorescent neighbour. ``comp`` is changed in place.
    """
    from skimage.morphology import disk

    sub = comp[sl] == i
    g, r = gfp_res[sl], ref_res[sl]
    green = sub & (g > 0) & (r < max_ratio * g)
    green = ndi.binary_opening(green, structure=disk(1))
    lab, n = ndi.label(green)
    if n == 0:
        return []
    out = []
    view = comp[sl]
    for k, csl in enumerate(ndi.find_objects(lab), 1):
        if csl is None:
            continue
        blob = lab == k
        area = int(blob.sum())
        if area < min_area_px or area > max_area_px:
            continue
        # the blob's blurred rim is green-and-red mixed; give it one block back
        blob = ndi.binary_dilation(blob) & sub
        new = first_id + len(out)
        view[blob] = new
        rr, cc = np.nonzero(blob)
        out.append((new, (slice(sl[0].start + rr.min(), sl[0].start + rr.max() + 1),
                          slice(sl[1].start + cc.min(), sl[1].start + cc.max() + 1))))
    return out


def _paint_blocks(labels: np.ndarray, rows_low: np.ndarray, cols_low: np.ndarray, f: int,
                  label: int) -> None:
    """Give the still-unlabelled pixels of blocks ``(rows_low, cols_low)`` the ``label``.

    Touches only the object's blocks, not its bounding box: a tissue-edge artefact spans
    the whole image but covers a thin rim of it.
    """
    h, w = labels.shape
    d = np.arange(f)
    # every pixel of every block at once (the blocks are disjoint, so order does not matter)
    rr, cc = np.broadcast_arrays(rows_low[:, None, None] * f + d[None, :, None],
                                 cols_low[:, None, None] * f + d[None, None, :])
    ok = (rr < h) & (cc < w)
    rr, cc = rr[ok], cc[ok]
    free = labels[rr, cc] == 0
    labels[rr[free], cc[free]] = label


_DIM_BODY_RETENTION = 0.6
"""Share of its component's peak significance a dim cell body must keep through the
soma-scale opening when it does not reach detection_sigma there. At 0.6 the GFP phantom's dim
cells (0.3-0.6 x the tissue autofluorescence, 4-6 σ) keep their bodies (at 0.7, 2 of 40 are
lost) [phantom]. It does not separate clumps of white-matter axon profiles on ChAT sections
(214_L1_ChAT counted 153 at 0.6, 134 at 0.7, 95 with detection_sigma alone [real]): the ring
contrast and the maxima count do (see min_ring_contrast)."""


_PUNCTATE_MIN_MAXIMA = 3
"""Fewest maxima of a punctate object. A cell body may show two (its nucleus splits a ring of
cytoplasm into two bright sides; 52 of 212 two-photon cells have two at a prominence of 0.3
[real]); a clump of axon profiles or puncta has three or more."""

_TEXTURED_SPREAD = 2.0
"""A ring is textured (holds bright structures an object can be mistaken among: axon
profiles, fibres, neuropil, other cells) when its 90th percentile stands more than this many
of its own robust σ above its median; noise and smooth autofluorescence, near-Gaussian, give
1.3. Only in a textured ring does a low ring contrast reject an object: in a plain one the
detection threshold has judged it (a phantom's dim cell, 0.3 x the tissue autofluorescence,
measures 0.2-0.7 against its ring of mottle [phantom])."""

_NEIGHBOUR_SIGMA = 6.0
"""A neighbouring cell body is left out of an object's ring when its mean significance stands
this many robust σ of the ring above the ring's median. A cell touching the object stands
far out of the tissue (the phantoms' touching cells: ring contrast 0.6 with them in the
ring, 18-23 without [phantom]); clumps of axon profiles and neuropil next to one another
differ by about their own texture and stay in each other's ring (214_L1_ChAT counts 45 at
3 σ, 42 at 6 σ, 41 at 10 σ [real])."""


def _soma_radius_px(p: GfpCellParams, pixel_size_um: float) -> int:
    """Radius in pixels of the disk of the smallest cell (at least 1)."""
    return max(1, round(p.min_cell_diameter_um / 2 / pixel_size_um))


def _soma_opening(arr: np.ndarray, radius_px: int) -> np.ndarray:
    """Grey opening of ``arr`` with a disk of ``radius_px``: what is narrower than the disk
    (fibres, puncta, neuropil) is taken down to its surroundings; wider blobs keep their
    level and outline."""
    from skimage.morphology import disk, opening

    if radius_px <= 3:
        return ndi.grey_opening(arr, footprint=disk(radius_px))
    # a large disk as a sequence of small footprints: ~ exact and several times faster
    return opening(arr, footprint=disk(radius_px, decomposition="sequence"))


def _binary_opening_disk(mask: np.ndarray, radius_px: int) -> np.ndarray:
    """Binary opening of ``mask`` with a disk of ``radius_px``."""
    from skimage.morphology import disk

    return ndi.binary_opening(mask, structure=disk(radius_px))


def _split_touching(mask: np.ndarray, h_px: float) -> np.ndarray:
    """Label ``mask``, cutting touching blobs where the distance transform has a neck."""
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    dist = ndi.distance_transform_edt(mask)
    if h_px <= 0 or dist.max() <= h_px:
        return ndi.label(mask)[0]
    peaks = h_maxima(ndi.gaussian_filter(dist, 1.0), h_px)
    markers, n = ndi.label(peaks & mask)
    if n <= 1:
        return ndi.label(mask)[0]
    lab = watershed(-dist, markers, mask=mask)
    # a part with no marker (a separate small piece) keeps its own label
    rest, n_rest = ndi.label(mask & (lab == 0))
    if n_rest:
        lab[rest > 0] = rest[rest > 0] + lab.max()
    return lab


# --------------------------------------------------------------------------------------------
# the assay


def run(
    image: Image | np.ndarray,
    regions: Any = None,
    params: GfpCellParams | Mapping[str, Any] | str | None = None,
    *,
    channels: Mapping[str, str | int] | None = None,
    pixel_size_um: float | None = None,
    progress: Progress | None = None,
    level: str | None = None,
    section: str | None = None,
    animal: str | None = None,
) -> AssayResult:
    """Find and count GFP+ cells, rejecting autofluorescent look-alikes.

    Parameters
    ----------
    image : Image or ndarray
        Fluorescence image with a GFP channel, optionally DAPI and an autofluorescence
        reference channel (one where GFP does not emit: red or far red).
    regions : None, "auto", path or regions
        ``None`` measures the whole image; ``"auto"`` asks :mod:`histoquant.anatomy` for
        tissue, grey and white matter; a file or Region list gives drawn regions.
    params : GfpCellParams, dict or file, optional
    channels : mapping, optional
        Role → channel name or index: ``{"gfp": 1, "dapi": "DAPI", "reference": "TRITC"}``.
        Roles default to channels of the same name.
    pixel_size_um : float, optional
        Overrides the file's pixel size.
    progress : callable, optional
        ``progress(fraction, message)``.
    level, section, animal : str, optional
        Written as identifier columns of both tables (``level`` is normalised to ``L3``).

    Returns
    -------
    AssayResult
        ``objects``: one row per object and region, with class and reason; ``summary``: one
        row per region with ``n_gfp_cells``, ``gfp_cells_per_mm2``, ``n_gfp_objects``,
        ``n_gfp_nucleated``, ``n_rejected_autofluorescent``, ...; ``labels``: every object;
        ``qc``: overlay with counted cells circled green, autofluorescent objects crossed
        in vermillion.
    """
    def report(frac: float, msg: str) -> None:
        if progress is not None:
            progress(frac, msg)

    img = prepare_image(image, pixel_size_um)
    px = img.require_pixel_size()
    p = resolve_params(GfpCellParams, params)
    ch = resolve_channels(img, SPEC.channel_roles, channels)
    has_ref, has_dapi = "reference" in ch, "dapi" in ch
    if has_ref and ch["reference"] == ch["gfp"]:
        raise ChannelError(
            f"{img.source}: the reference channel is the GFP channel itself "
            f"({img.channel_names[ch['gfp']]}). The reference must be a channel where GFP does "
            "not emit (red/far red); with GFP as its own reference every object would be "
            "called autofluorescent. Give another channel, or none.")
    if p.count_nuclei and not has_dapi:
        raise ChannelError(f"{img.source}: count_nuclei needs a DAPI channel; give it with "
                           "--channel dapi=NAME|INDEX or channels={'dapi': ...}")
    masks = resolve_regions(img, regions, SPEC.auto_regions)
    # Padding, tile frames and the outside of a round field of view are never tissue: out of
    # the measured areas, of the background and of every noise statistic (a black canvas
    # pulled the opening's background down along the tissue edge and, counted as tiles of
    # σ ≈ 0, lowered the noise floor)
    pad = padding_of_image(img)
    if not pad.any() or pad.all():
        pad = None
    else:
        masks = {name: np.asarray(m, dtype=bool) & ~pad for name, m in masks.items()}
    shape = img.shape_yx
    union = np.zeros(shape, bool)
    for m in masks.values():
        union |= m

    report(0.05, "block averaging")
    f = max(1, int(p.min_cell_diameter_um / 4.0 / px))
    fpx = f * px
    gfp_plane = _plane(img, ch["gfp"])
    gfp_low = block_mean(gfp_plane, f)
    _check_low(gfp_low, img, "GFP")
    ref_plane = _plane(img, ch["reference"]) if has_ref else None
    ref_low = block_mean(ref_plane, f) if has_ref else None
    if has_ref:
        _check_low(ref_low, img, "reference")
        if np.array_equal(ref_low, gfp_low):
            raise ChannelError(
                f"{img.source}: the reference channel ({img.channel_names[ch['reference']]}) "
                f"has the same pixels as the GFP channel ({img.channel_names[ch['gfp']]}) — "
                "probably one channel exported twice. Every object would be called "
                "autofluorescent (ratio 1). Give the real reference channel, or none.")
    # a block counts as in the union / in the padding when at least half its pixels are
    union_low = block_any(union, f, min_fraction=0.5) if not union.all() \
        else np.ones(gfp_low.shape, bool)
    # blocks that are tissue (not padding): the background is estimated over them only,
    # the padding filled with the nearest tissue value first
    tissue_low = ~block_any(pad, f, min_fraction=0.5) if pad is not None else None

    report(0.15, "background and noise")
    bg_size = p.background_scale_um / fpx
    tile = round(p.noise_tile_um / fpx)
    bg_g, noise = _background_and_noise(gfp_low, bg_size, union_low, tile, tissue_low)
    sigma_low = noise.sigma.full()
    stats_low = union_low if union_low.any() else np.ones(gfp_low.shape, bool)
    z = ndi.gaussian_filter(gfp_low - bg_g, 0.7) / sigma_low
    bg_gfp = SmoothBackground(bg_g, f, shape)
    bg_ref = SmoothBackground(_background_and_noise(ref_low, bg_size, union_low, tile,
                                                    tissue_low)[0], f,
                              shape) if has_ref else None

    dapi = _DapiReader(img, ch["dapi"], p, f, union_low) if has_dapi else None
    ctx = _Context(img, p, px, f, shape, gfp_plane, ref_plane, bg_gfp, bg_ref,
                   noise.at_full_resolution(f, shape), dapi, z_low=z,
                   zo_low=_soma_opening(z, _soma_radius_px(p, fpx)),
                   tissue=~pad if pad is not None else None)
    if p.engine == "cellpose":
        rows, labels = _cellpose_objects(ctx, gfp_plane, union, report)
    else:
        rows, labels = _classical_objects(ctx, z, union_low, gfp_low, ref_low, bg_g, report)

    report(0.85, "tables")
    objects = _objects_table(rows, masks, img.name, has_ref, has_dapi)
    warnings_out: list[str] = []
    flag = ""
    if not rows:
        bg_in = bg_g[stats_low]
        bg_range = float(np.percentile(bg_in, 99) - np.percentile(bg_in, 1))
        if bg_range < 3 * float(np.median(sigma_low[stats_low])):
            flag = "no_tissue_or_signal"
            warnings_out.append(
                f"{img.source}: no object and no structure in the GFP channel (flat "
                "background): no tissue, or the wrong channel / exposure. Counted as zero "
                "cells; check the image.")
    if has_ref and rows:
        ratio = objects["reference_ratio"].to_numpy(float)
        if np.isfinite(ratio).any() and np.nanmedian(ratio) > 0.9 and \
                (objects["class"] == "autofluorescent").all() and len(objects) >= 5:
            warnings_out.append(
                f"{img.source}: every object is as bright in the reference channel as in GFP "
                "(median ratio > 0.9); the reference may hold GFP bleed-through or be the "
                "wrong channel.")
    summary = _summary_table(objects, masks, img.name, px, has_dapi, flag)
    nuclei_table = None
    extra: dict[str, Any] = {"engine": p.engine, "block_factor": f,
                             "gfp_noise_sigma_median": float(np.median(sigma_low[stats_low])),
                             "padding_fraction": float(pad.mean()) if pad is not None else 0.0}
    if p.count_nuclei:
        report(0.9, "counting nuclei")
        nuclei_table, nuc_labels = _count_nuclei(ctx, masks, union)
        summary = _add_nuclei_counts(summary, nuclei_table, masks)
        extra["nuclei"] = nuclei_table
        extra["nuclei_labels"] = nuc_labels
    q, layers = _qc_layers(img, ch, f, gfp_low, ref_low, dapi)
    qc = _qc_overlay(q, layers, labels, objects, masks, summary, p, img, nuclei_table)
    result = AssayResult(
        assay=SPEC.name, image=img.name, objects=objects, summary=summary,
        labels=labels,
        masks={k: v for k, v in masks.items() if not v.all()}, qc=qc, params=p.to_dict(),
        pixel_size_um=px, warnings=warnings_out, extra=extra)
    result.set_ids(animal=animal, level=normalize_level(level), section=section)
    report(1.0, "done")
    return result


def _classical_objects(ctx: _Context, z: np.ndarray, union_low: np.ndarray,
                       gfp_low: np.ndarray, ref_low: np.ndarray | None, bg_g: np.ndarray,
                       report: Progress) -> tuple[list[dict[str, Any]], np.ndarray]:
    """The classical engine: hysteresis detection on the blocks (``z`` in local σ), then
    full-resolution refinement, splitting and measurement of each candidate.

    Returns the object rows and the label image.
    """
    p, f, px, shape = ctx.p, ctx.f, ctx.px, ctx.shape
    fpx = f * px
    has_ref = ref_low is not None
    bg_ref = ctx.bg_ref
    from skimage.filters import apply_hysteresis_threshold
    from skimage.morphology import remove_small_holes

    fg = apply_hysteresis_threshold(z, p.extent_sigma, p.detection_sigma) & union_low
    hole_area = np.pi * (p.max_nucleus_diameter_um / 2 / fpx) ** 2
    fg = remove_small_holes(fg, max_size=max(1, int(hole_area)))
    comp, n_comp = ndi.label(fg)
    # Cell bodies: what stays significant after a grey opening with a disk of the smallest
    # cell. Fibres, neuropil and single granules are narrower than that and vanish; a
    # component holding no body is listed as rejected on the blocks, without the costly
    # full-resolution work (a ChAT section has thousands of fibre pieces).
    # ... and where at least half the signal is in structure that wide: the blurred flanks
    # of a bright fibre can be many σ above a clean background, but they are never half the
    # fibre's own brightness, while a body keeps nearly all of its own
    wide = np.where(ctx.zo_low >= 0.5 * z, ctx.zo_low, 0)
    # A body is a region of `wide` above extent_sigma that peaks detection_sigma after the
    # opening -- or, for a dim cell, keeps most of its component's peak: the opening takes
    # the noise peaks off a dim filled cell (4-6 σ) and would lose it otherwise.
    cand, n_cand = ndi.label((wide >= p.extent_sigma) & fg)
    if n_cand:
        # per-label maxima over the foreground pixels only (ndi.maximum sorts the image)
        on = np.flatnonzero(fg)
        c_lab, k_lab = comp.ravel()[on], cand.ravel()[on]
        peak_open = np.zeros(n_cand + 1, np.float32)
        np.maximum.at(peak_open, k_lab, wide.ravel()[on])
        comp_peak = np.zeros(n_comp + 1, np.float32)
        np.maximum.at(comp_peak, c_lab, z.ravel()[on])
        # the component each candidate lies in (a 4-connected candidate inside fg lies in
        # one 4-connected component)
        owner = np.zeros(n_cand + 1, np.int64)
        owner[k_lab] = c_lab
        need = np.minimum(p.detection_sigma, _DIM_BODY_RETENTION * comp_peak[owner])
        ok = peak_open >= np.maximum(need, p.extent_sigma)
        ok[0] = False
        body = ok[cand]
    else:
        body = np.zeros_like(fg)
    has_body = np.bincount(comp[body], minlength=n_comp + 1) > 0
    ctx.body_low = body

    report(0.3, f"measuring {n_comp} candidate(s)")
    rows: list[dict[str, Any]] = []
    # uint16 holds 65,535 objects (a dense 8k² phantom has ~1,600) at half the memory of int32;
    # the loop widens it if a section ever holds more
    labels = np.zeros(shape, np.uint16)
    min_area_low = p.min_object_area_um2 / fpx ** 2
    big_area_um2 = 4 * np.pi * (p.max_cell_diameter_um / 2) ** 2
    sizes = np.bincount(comp.ravel(), minlength=n_comp + 1)
    queue = [(i, sl) for i, sl in enumerate(ndi.find_objects(comp), 1)
             if sl is not None and sizes[i] >= min_area_low]
    next_id = n_comp + 1
    done = 0
    cell_area_um2 = np.pi * (p.min_cell_diameter_um / 2) ** 2
    if has_ref:
        gfp_res = ndi.gaussian_filter(gfp_low - bg_g, 0.7)
        ref_res = ndi.gaussian_filter(ref_low - bg_ref.values, 0.7)
        # components plainly brighter in the reference channel than a GFP cell can be
        # (a glowing tissue edge, lipofuscin, red blood cells): autofluorescence the reference
        # has judged, left out of every candidate's neighbourhood ring (see _surround)
        on = comp.ravel() > 0
        g_sum = np.bincount(comp.ravel()[on], (gfp_low - bg_g).ravel()[on], n_comp + 1)
        r_sum = np.bincount(comp.ravel()[on], (ref_low - bg_ref.values).ravel()[on], n_comp + 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            red = (r_sum > 1.5 * p.max_reference_ratio * g_sum) & (r_sum > 0)
        red[0] = False
        ctx.autofluorescent_low = red[comp]
    while queue:
        if labels.dtype == np.uint16 and len(rows) > 60_000:
            labels = labels.astype(np.int32)
        i, sl = queue.pop(0)
        area_um2 = float((comp[sl] == i).sum()) * fpx ** 2
        if i <= n_comp and not has_body[i]:
            rows.extend(ctx.measure_low(comp, i, sl, gfp_low, ref_low, bg_g, labels,
                                        len(rows) + 1, no_body=True))
            done += 1
            continue
        # a blob cut out of a big component is never cut again: it was at most
        # max_area before its rim was given back, and cutting it again would find itself
        big = area_um2 > big_area_um2 and i <= n_comp
        reddish = has_ref and not big and _plain_ratio(
            comp, i, sl, gfp_low, bg_g, ref_low, bg_ref.values) > 1.5 * p.max_reference_ratio
        if big or reddish:
            # a cell can touch an edge artefact, a fold or a lipofuscin cluster: cut the
            # compact, cell-sized parts off (green-only parts when a reference channel says
            # which) and treat them as candidates of their own
            if area_um2 < 2 * cell_area_um2:
                found = []  # too small to hold a cell and something else
            elif has_ref:
                found = _green_blobs(comp, i, sl, gfp_res, ref_res, p.max_reference_ratio,
                                     np.pi * (p.min_cell_diameter_um / 2 / fpx) ** 2,
                                     big_area_um2 / fpx ** 2, next_id)
            else:
                found = _compact_blobs(comp, i, sl, p.min_cell_diameter_um / fpx,
                                       big_area_um2 / fpx ** 2, min_area_low, next_id, body)
            next_id += len(found)
            queue = found + queue
            if float((comp[sl] == i).sum()) >= min_area_low:
                rows.extend(ctx.measure_low(comp, i, sl, gfp_low, ref_low, bg_g, labels,
                                            len(rows) + 1))
        else:
            rows.extend(ctx.measure_candidate(comp, i, sl, labels, len(rows) + 1))
        done += 1
        if done % 50 == 0:
            report(0.3 + 0.5 * min(1.0, done / max(n_comp, 1)),
                   f"measured {done}/{n_comp} candidates")
    return rows, labels


def _cellpose_objects(ctx: _Context, gfp_plane: np.ndarray, union: np.ndarray,
                      report: Progress) -> tuple[list[dict[str, Any]], np.ndarray]:
    """The cellpose engine: Cellpose-SAM masks on the GFP channel, each measured and classed
    by the classical engine's own code (:meth:`_Context.measure_mask`).

    Only the GFP channel goes to the network: the objects to find are green, and the DAPI
    and reference channels are read afterwards, per object, by the shared criteria (a DAPI
    channel given to the network would add every GFP-negative nucleus as a mask). A mask
    whose centroid lies outside every region is left out, as the classical engine detects
    only inside them.
    """
    p, px = ctx.p, ctx.px
    report(0.3, "cellpose")
    masks_cp = segment_cellpose(gfp_plane, px, cellpose_options(p),
                                progress=lambda fr, msg: report(0.3 + 0.4 * fr, msg))
    slices = ndi.find_objects(masks_cp)
    n = len(slices)
    report(0.7, f"measuring {n} cellpose mask(s)")
    labels = np.zeros(ctx.shape, np.uint16 if n < 60_000 else np.int32)
    rows: list[dict[str, Any]] = []
    for j, sl in enumerate(slices, 1):
        if sl is None:
            continue
        own = masks_cp[sl] == j
        yy, xx = np.nonzero(own)
        if not union[round(yy.mean()) + sl[0].start, round(xx.mean()) + sl[1].start]:
            continue
        rows.extend(ctx.measure_mask(masks_cp, j, sl, labels, len(rows) + 1))
        if j % 50 == 0:
            report(0.7 + 0.15 * j / n, f"measured {j}/{n} masks")
    return rows, labels


def cellpose_options(params: GfpCellParams | Mapping[str, Any] | None = None
                     ) -> CellposeOptions:
    """The :class:`CellposeOptions` the cellpose engine runs with.

    Parameters
    ----------
    params : GfpCellParams, dict or None

    Returns
    -------
    CellposeOptions
        The ``cellpose_*`` parameters; the diameter defaults to the midpoint of the cell
        diameter limits, and cellpose's smallest mask is ``min_object_area_um2`` (smaller
        objects would not be listed anyway). Every other option keeps the adapter's default.
    """
    p = resolve_params(GfpCellParams, params)
    diameter = p.cellpose_diameter_um
    if diameter is None:
        diameter = 0.5 * (p.min_cell_diameter_um + p.max_cell_diameter_um)
    return CellposeOptions(
        model=p.cellpose_model, diameter_um=diameter,
        flow_threshold=p.cellpose_flow_threshold,
        cellprob_threshold=p.cellpose_cellprob_threshold,
        device=p.cellpose_device, batch_size=p.cellpose_batch_size,
        min_area_um2=p.min_object_area_um2)


def preflight(params: GfpCellParams | Mapping[str, Any] | None = None) -> None:
    """Check, before any image, what the run needs beyond the core.

    With ``engine="cellpose"``: cellpose importable and the model's weights on disk (the batch
    runner calls this once, so a study fails in a second, not after its first image).

    Raises
    ------
    DependencyError
        cellpose or PyTorch not installed, or the weights file missing (the message says
        what to install or where to put the file).
    """
    p = resolve_params(GfpCellParams, params)
    if p.engine == "cellpose":
        require_cellpose(p.cellpose_model)


class _DapiReader:
    """DAPI background and one image-wide nucleus threshold, read per crop."""

    def __init__(self, img: Image, index: int, p: GfpCellParams, f: int,
                 union_low: np.ndarray):
        self.img, self.p, self.f, self.union_low = img, p, f, union_low
        self.px = img.pixel_size_um
        self.plane = _plane(img, index)
        self.diam = (p.min_nucleus_diameter_um, p.max_nucleus_diameter_um)
        self._bg: SmoothBackground | None = None
        self._low: np.ndarray | None = None
        self._threshold_value: float | None = None

    @property
    def low(self) -> np.ndarray:
        """The DAPI channel block-averaged like the GFP channel."""
        if self._low is None:
            self._low = block_mean(self.plane, self.f)
            _check_low(self._low, self.img, "DAPI")
        return self._low

    def _prepare(self) -> None:
        """Background and threshold, computed on first use: most sections need neither
        (no candidate survives the autofluorescence tests)."""
        if self._bg is not None:
            return
        low = self.low
        # nuclei are small against the background scale: a coarse grid is plenty
        self._bg = SmoothBackground(
            estimate_background(low, self.p.max_nucleus_diameter_um / (self.f * self.px),
                                max_filter_px=4),
            self.f, self.img.shape_yx)
        self._threshold_value = self._threshold(self.p, self.union_low, self.f)

    @property
    def bg(self) -> SmoothBackground:
        self._prepare()
        return self._bg

    @property
    def threshold(self) -> float:
        self._prepare()
        return self._threshold_value

    def _threshold(self, p: GfpCellParams, union_low: np.ndarray, f: int) -> float:
        """Nucleus threshold from up to 8 tiles of 256² px inside the regions."""
        h, w = self.plane.shape
        sig = smooth_sigma_px(self.diam[0], self.px)
        t = 256
        if h * w <= 4 * t * t:
            tiles = [(slice(0, h), slice(0, w))]
        else:
            rng = np.random.default_rng(0)
            cand = np.argwhere(union_low)
            pick = cand[rng.choice(len(cand), min(8, len(cand)), replace=False)] if len(cand) \
                else np.array([[0, 0]])
            tiles = []
            for r, c in pick * f:
                r0, c0 = int(np.clip(r - t // 2, 0, max(0, h - t))), \
                    int(np.clip(c - t // 2, 0, max(0, w - t)))
                tiles.append((slice(r0, r0 + t), slice(c0, c0 + t)))
        values = [ndi.gaussian_filter(self.plane[s].astype(np.float32) - self.bg.crop(*s), sig)
                  .ravel() for s in tiles]
        return nuclear_threshold(np.concatenate(values), p.nucleus_threshold_sigma)

    def nuclei(self, rows: slice, cols: slice) -> np.ndarray:
        crop = self.plane[rows, cols].astype(np.float32)
        return segment_nuclei(crop, self.px, self.diam, threshold=self.threshold,
                              background=self.bg.crop(rows, cols))


@dataclass
class _Crop:
    """Full-resolution arrays of one candidate's neighbourhood."""

    rows: slice
    cols: slice
    g: np.ndarray
    bg: np.ndarray
    sig: np.ndarray
    z: np.ndarray
    ref: np.ndarray | None
    support: np.ndarray | None
    nuclei: np.ndarray | None = None
    tissue: np.ndarray | None = None
    groups: np.ndarray | None = None
    neighbours: np.ndarray | None = None
    _tophat: np.ndarray | None = None

    def tophat(self, radius_px: float) -> np.ndarray:
        """White top-hat of the lightly smoothed GFP crop with a disk of ``radius_px``:
        what is left is signal in structures narrower than the disk (granules), computed
        once per crop, over the support's bounding box only."""
        if self._tophat is None:
            from skimage.morphology import disk, white_tophat

            r = max(1, round(radius_px))
            out = np.zeros(self.g.shape, np.float32)
            box = ndi.find_objects(self.support.astype(np.uint8))
            if box and box[0] is not None:
                bsl = tuple(slice(max(0, s.start - r), min(n, s.stop + r))
                            for s, n in zip(box[0], self.g.shape))
                out[bsl] = white_tophat(ndi.gaussian_filter(self.g[bsl], 1.0),
                                        footprint=disk(r, decomposition="crosses"))
            self._tophat = out
        return self._tophat


@dataclass
class _Context:
    img: Image
    p: GfpCellParams
    px: float
    f: int
    shape: tuple[int, int]
    gfp: np.ndarray
    ref: np.ndarray | None
    bg_gfp: SmoothBackground
    bg_ref: SmoothBackground | None
    noise: _NoiseMap
    dapi: _DapiReader | None
    z_low: np.ndarray | None = None
    """Block-grid significance (smoothed signal over local σ)."""
    zo_low: np.ndarray | None = None
    """``z_low`` after a grey opening with a disk of the smallest cell."""
    body_low: np.ndarray | None = None
    """Block-grid cell bodies (classical engine): significant after the opening."""
    tissue: np.ndarray | None = None
    """Full-resolution mask of what is not padding (None: no padding)."""
    autofluorescent_low: np.ndarray | None = None
    """Block-grid components plainly brighter in the reference channel than GFP."""

    def measure_candidate(self, comp: np.ndarray, i: int, sl: tuple[slice, slice],
                          labels: np.ndarray, next_label: int) -> list[dict[str, Any]]:
        """Refine one candidate at full resolution, measure it, split it when it may be
        touching cells, and class each part."""
        p, f, px = self.p, self.f, self.px
        margin = int(np.ceil(p.max_nucleus_diameter_um / 2 / px)) + f
        rows, cols = _slices_up(sl, f, margin, self.shape)
        crop = self._crop(rows, cols)
        z = crop.z
        comp_crop = comp[_low_slices(rows, cols, f)]
        own = _upsample_mask(comp_crop == i, f, rows, cols)
        others = _upsample_mask((comp_crop > 0) & (comp_crop != i), f, rows, cols)
        near = ndi.binary_dilation(own, iterations=f) & ~others
        if crop.tissue is not None:
            near &= crop.tissue
        obj = (z > p.extent_sigma) & near
        if not obj.any():
            obj = own.copy()
        # granules of one lipofuscin cluster belong together: close gaps of a granule size
        r_close = max(1, round(p.granule_diameter_um / px))
        support = ndi.binary_closing(obj, iterations=r_close, border_value=0) | obj
        support = ndi.binary_fill_holes(support)
        crop.support = support
        whole = self._measure_part(crop, support, label=next_label, granularity=False,
                                   shape=False)
        if whole["class"] == "autofluorescent":
            # a clump bright in the reference channel is rejected whole: splitting it, or
            # looking for nuclei in it, cannot make it a GFP+ cell
            self._paint(labels, crop, support, whole["label"])
            return [whole]
        out: list[dict[str, Any]] = []
        if self.body_low is not None:
            # the parts of the component as wide as a cell body are the candidates; the
            # rest (fibres leaving a soma, neuropil around it) is listed as rejected
            low = _low_slices(rows, cols, f)
            body = _upsample_mask(self.body_low[low] & (comp_crop == i), f, rows, cols)
            if f > 1:
                body = ndi.binary_dilation(body, iterations=f)
            body &= support
            rest = support & ~body
            support = body
            if rest.any():
                out = self._measure_rest(crop, rest, labels, next_label)
                next_label += len(out)
        parts = ndi.label(support)[0]
        # the neighbourhood ring is drawn round all the candidate's bodies together, before
        # touching cells are cut apart: a touching cell, or the other half of a cell the
        # body step cut in two, is not the tissue its neighbour sits in
        crop.groups = (parts > 0).astype(np.int32)
        if p.split_touching:
            # only a part with room for two of the smallest cells can hold touching cells
            two_cells = 2 * np.pi * (p.min_cell_diameter_um / 2 / px) ** 2
            sizes = np.bincount(parts.ravel())
            if (sizes[1:] >= two_cells).any():
                # a neck an eighth of the smallest cell (1 µm at the defaults) deeper than
                # both sides splits: touching cells blur into a wide neck; a lobe cut off
                # by mistake is smaller than a cell and is classed too_small, not counted
                parts = _split_touching(support, 0.125 * p.min_cell_diameter_um / px)
        work = [parts == j for j, psl in enumerate(ndi.find_objects(parts), 1)
                if psl is not None]
        return out + self._measure_parts(crop, work, labels, next_label)

    def _measure_rest(self, crop: _Crop, rest: np.ndarray, labels: np.ndarray,
                      next_label: int) -> list[dict[str, Any]]:
        """One rejected row per connected piece of ``rest`` (what is left of a component
        once its cell bodies are taken out: fibres, neuropil) at least
        ``min_object_area_um2`` large."""
        lab, n = ndi.label(rest, structure=np.ones((3, 3)))
        if n == 0:
            return []
        min_px = self.p.min_object_area_um2 / self.px ** 2
        sizes = np.bincount(lab.ravel())
        out = []
        for j in np.nonzero(sizes[1:] >= max(min_px, 1))[0] + 1:
            piece = lab == j
            row = self._measure_part(crop, piece, label=next_label + len(out),
                                     granularity=False, shape=False)
            row["thin_fraction"] = 1.0
            _classify(row, self.p, crop.ref is not None, False)
            if self.dapi is not None:
                row["n_nuclei"], row["nucleated"] = pd.NA, pd.NA
            self._paint(labels, crop, piece, row["label"])
            out.append(row)
        return out

    def measure_mask(self, masks: np.ndarray, j: int, sl: tuple[slice, slice],
                     labels: np.ndarray, next_label: int) -> list[dict[str, Any]]:
        """Measure and class object ``j`` of a full-resolution label image ``masks`` (the
        cellpose engine's), with the same code as a classical candidate's parts."""
        margin = int(np.ceil(self.p.max_nucleus_diameter_um / 2 / self.px)) + self.f
        rows, cols = (slice(max(0, s.start - margin), min(n, s.stop + margin))
                      for s, n in zip(sl, self.shape))
        part = masks[rows, cols] == j
        crop = self._crop(rows, cols, support=part)
        # the other masks are the neighbours a ring may have to leave out
        crop.neighbours = np.where(part, 0, masks[rows, cols])
        return self._measure_parts(crop, [part], labels, next_label)

    def _crop(self, rows: slice, cols: slice, support: np.ndarray | None = None) -> _Crop:
        """GFP, its background, signal, local significance and reference signal of a crop."""
        f = self.f
        g = self.gfp[rows, cols].astype(np.float32)
        bg = self.bg_gfp.crop(rows, cols)
        sig = g - bg
        smooth = ndi.gaussian_filter(sig, 0.56 * f) if f > 1 else sig
        z = smooth / self.noise.sigma.crop(rows, cols)
        ref = self.ref[rows, cols].astype(np.float32) - self.bg_ref.crop(rows, cols) \
            if self.ref is not None else None
        tissue = self.tissue[rows, cols] if self.tissue is not None else None
        return _Crop(rows, cols, g, bg, sig, z, ref, support, tissue=tissue)

    def _measure_parts(self, crop: _Crop, work: list[np.ndarray], labels: np.ndarray,
                       next_label: int) -> list[dict[str, Any]]:
        """Measure, class and paint each object mask of ``work`` (full resolution, in
        ``crop``): the criteria both engines share. A GFP+ object holding several nuclei
        is cut into one piece per nucleus (``split_touching``); objects below
        ``min_object_area_um2`` are not listed."""
        p, px = self.p, self.px
        rows, cols = crop.rows, crop.cols
        out = []
        while work:
            part = work.pop(0)
            if float(part.sum()) * px ** 2 < p.min_object_area_um2:
                continue
            row = self._measure_part(crop, part, label=next_label + len(out), granularity=True)
            if self.dapi is not None:
                row["n_nuclei"], row["nucleated"] = pd.NA, pd.NA
                # nuclei are looked for only where they can change the count: an
                # autofluorescent or mis-sized object is rejected whatever it holds
                if row["class"] == "gfp_cell":
                    if crop.nuclei is None:
                        crop.nuclei = self.dapi.nuclei(rows, cols)
                    inside = _nuclei_inside(crop.nuclei, part, p.min_nucleus_overlap)
                    if len(inside) > 1 and p.split_touching:
                        pieces = _split_by_nuclei(part, crop.nuclei, inside,
                                                  np.pi * (p.min_cell_diameter_um / 2 / px) ** 2)
                        if len(pieces) > 1:
                            work = pieces + work
                            continue
                    row["n_nuclei"] = len(inside)
                    row["nucleated"] = len(inside) > 0
                    _classify(row, p, self.ref is not None, True)
            self._paint(labels, crop, part, row["label"])
            out.append(row)
        return out

    @staticmethod
    def _paint(labels: np.ndarray, crop: _Crop, part: np.ndarray, label: int) -> None:
        view = labels[crop.rows, crop.cols]
        view[part & (view == 0)] = label

    def _measure_part(self, crop: _Crop, part: np.ndarray, *, label: int,
                      granularity: bool, shape: bool = True) -> dict[str, Any]:
        """Measurements and class of one full-resolution object (``part`` in ``crop``);
        ``shape``: also its cell-body shape (solidity, elongation, thin and texture
        fractions)."""
        px = self.px
        area_um2 = float(part.sum()) * px ** 2
        yy, xx = np.nonzero(part)
        s_vals = crop.sig[part]
        gfp_signal = float(s_vals.mean())
        row = {
            "label": label,
            "centroid_y_um": (yy.mean() + crop.rows.start) * px,
            "centroid_x_um": (xx.mean() + crop.cols.start) * px,
            "area_um2": area_um2,
            "equivalent_diameter_um": 2 * np.sqrt(area_um2 / np.pi),
            "gfp_mean": float(crop.g[part].mean()),
            "gfp_background": float(crop.bg[part].mean()),
            "gfp_signal": gfp_signal,
            "gfp_peak_sigma": float(crop.z[part].max()),
            "granularity": np.nan,
            "_row": round(float(yy.mean()) + crop.rows.start),
            "_col": round(float(xx.mean()) + crop.cols.start),
        }
        if crop.ref is not None:
            ref_signal = float(crop.ref[part].mean())
            row["reference_signal"] = ref_signal
            row["reference_ratio"] = ref_signal / gfp_signal if gfp_signal > 0 else np.nan
        _classify(row, self.p, crop.ref is not None, False)
        if row["class"] != "autofluorescent" or granularity:
            pos = float(np.maximum(s_vals, 0).sum())
            tophat = crop.tophat(self.p.granule_diameter_um / px)
            row["granularity"] = float(tophat[part].sum() / pos) if pos > 0 else np.nan
            _classify(row, self.p, crop.ref is not None, False)
        if shape and row["class"] not in ("autofluorescent", "too_small", "too_large"):
            # the shape can change only the class of an object that could still be a cell
            row.update(self._shape(crop, part))
            _classify(row, self.p, crop.ref is not None, False)
        return row

    def _shape(self, crop: _Crop, part: np.ndarray) -> dict[str, float]:
        """Cell-body shape of ``part``: solidity, elongation (major/minor axis of the
        ellipse of the same second moments), thin fraction (share of the area an opening
        with a disk of the smallest cell removes) and texture fraction (share of the
        smoothed significance a grey opening of that size removes, on the block grid)."""
        from ..measure.objects import measure_objects

        box = ndi.find_objects(part.astype(np.uint8))[0]
        sub = part[box]
        m = measure_objects(sub.astype(np.int32), self.px).iloc[0]
        ecc = float(m["eccentricity"])
        elong = 1.0 / np.sqrt(max(1.0 - ecc ** 2, 1e-12))
        r = _soma_radius_px(self.p, self.px)
        padded = np.pad(sub, r + 1)
        kept = _binary_opening_disk(padded, r)
        thin = 1.0 - float(kept.sum()) / max(float(sub.sum()), 1.0)
        texture = np.nan
        if self.z_low is not None:
            rows = slice(crop.rows.start + box[0].start, crop.rows.start + box[0].stop)
            cols = slice(crop.cols.start + box[1].start, crop.cols.start + box[1].stop)
            low = _low_slices(rows, cols, self.f)
            z = np.maximum(_upsample_mask(self.z_low[low], self.f, rows, cols)[sub], 0)
            zo = np.maximum(_upsample_mask(self.zo_low[low], self.f, rows, cols)[sub], 0)
            total = float(z.sum())
            texture = 1.0 - float(zo.sum()) / total if total > 0 else np.nan
        out = {"solidity": float(m["solidity"]), "elongation": float(elong),
               "thin_fraction": thin, "texture_fraction": texture}
        out.update(self._surround(crop, part))
        return out

    def _surround(self, crop: _Crop, part: np.ndarray) -> dict[str, float]:
        """How the object stands out of its own neighbourhood, and how many maxima it holds.

        ``ring_contrast``: the object's mean significance above the median of the ring of
        ``neuropil_ring_um`` around it, in units of the spread of the ring's bulk (1.28 × its
        MAD-based σ: its 90th percentile − median were it normal; at least one noise σ). A
        fibre through the object crosses the ring in two short arcs: a minority of the
        ring's pixels that would be its 90th percentile, not its bulk. The ring is drawn
        round all the candidate's bodies together and leaves out padding, components plainly
        brighter in the reference channel than GFP, and other cell bodies nearby that stand
        far out of it: a soma in a dense motor pool or a touching cell is measured against
        the tissue around it, not against its neighbours. ``peak_density``: maxima of the
        significance inside the object standing at least ``min_peak_prominence`` of the
        object's amplitude (and one σ) above the saddle to a brighter one, merged when closer
        than ``granule_diameter_um``, per 100 µm². A filled soma has one or a few; a clump of
        axon profiles or puncta has one per dot.
        """
        from skimage.morphology import h_maxima

        p, px = self.p, self.px
        z = crop.z
        whole = part
        if crop.groups is not None:
            g = crop.groups[part]
            g = g[g > 0]
            if g.size:
                whole = part | (crop.groups == np.bincount(g).argmax())
        dist = ndi.distance_transform_edt(~whole)
        ring = (dist > 1.5) & (dist <= 1.5 + p.neuropil_ring_um / px)
        # an object touching padding is cut by the edge of the imaged field (its outline and
        # surroundings unknown), and the JPEG ripple and flat canvas along a tile edge make
        # blobs there that are significant only against a σ of almost nothing
        edge = crop.tissue is not None and not crop.tissue[dist <= 1.5].all()
        if crop.tissue is not None:
            ring &= crop.tissue
        if self.autofluorescent_low is not None:
            low = _low_slices(crop.rows, crop.cols, self.f)
            ring &= ~_upsample_mask(self.autofluorescent_low[low], self.f, crop.rows, crop.cols)
        inside = z[part]
        contrast, med, textured = np.nan, 0.0, False
        if ring.sum() >= 8 and (crop.neighbours is not None or self.body_low is not None):
            # another cell body in the ring that stands far out of it (a touching cell, a
            # neighbour in a motor pool) is not the tissue this one sits in: left out. A
            # neighbour as dim as the ring's own texture (the next clump of axon profiles)
            # stays in. Neighbours: the other masks (cellpose), else the other block-grid
            # bodies (classical).
            med, mad = robust_location_scale(z[ring])[:2]
            if crop.neighbours is not None:
                bodies = np.where(whole, 0, crop.neighbours)
            else:
                low = _low_slices(crop.rows, crop.cols, self.f)
                bodies = ndi.label(_upsample_mask(self.body_low[low], self.f, crop.rows,
                                                  crop.cols) & ~whole)[0]
            ids = np.unique(bodies)
            ids = ids[ids > 0]
            if ids.size:
                means = np.asarray(ndi.mean(z, bodies, ids))
                bright = ids[means > med + _NEIGHBOUR_SIGMA * max(mad, 1.0)]
                if bright.size:
                    ring &= ~ndi.binary_dilation(np.isin(bodies, bright))
        if ring.sum() >= 8:
            rv = z[ring]
            # the ring's level and spread from its bulk (median, MAD): a fibre crossing the
            # ring is two short arcs, a minority of its pixels, and must not become the spread
            # a soma on that fibre is measured in (its 90th percentile would be the fibre
            # itself); a ring filled with axon profiles or neuropil, dots over much of it,
            # widens its MAD. The spread is that bulk's 90th percentile − median were it normal
            med, sd_bulk = robust_location_scale(rv, iterations=0)
            p90 = float(np.percentile(rv, 90))
            contrast = (float(inside.mean()) - med) / max(P10_TO_SD * sd_bulk, 1.0)
            # a ring of noise and smooth autofluorescence has no bright structures for an
            # object to be mistaken among: there the detection threshold has judged it
            sd = robust_location_scale(rv)[1]
            textured = bool(p90 - med > _TEXTURED_SPREAD * max(sd, 1e-6))
        amplitude = float(np.percentile(inside, 95)) - med
        h = max(1.0, p.min_peak_prominence * amplitude)
        box = ndi.find_objects(part.astype(np.uint8))[0]
        zb = np.where(part[box], z[box], float(inside.min()) - 1.0).astype(np.float64)
        peaks = h_maxima(zb, h)
        # maxima closer than a granule are one: merge them by a dilation of that size
        r = round(p.granule_diameter_um / 2 / px)
        if r > 0:
            peaks = ndi.binary_dilation(peaks, iterations=r) & part[box]
        n_peaks = int(ndi.label(peaks)[1])
        area = float(part.sum()) * px ** 2
        return {"ring_contrast": float(contrast), "ring_textured": textured, "n_maxima": n_peaks,
                "peak_density": 100.0 * n_peaks / area, "padding_edge": bool(edge)}

    def measure_low(self, comp: np.ndarray, i: int, sl: tuple[slice, slice],
                    gfp_low: np.ndarray, ref_low: np.ndarray | None, bg_g: np.ndarray,
                    labels: np.ndarray, label: int, no_body: bool = False
                    ) -> list[dict[str, Any]]:
        """Measure an object on the blocks only: objects far larger than a cell (folds, edges,
        clumps), objects plainly brighter in the reference channel than a GFP cell can
        be, and (``no_body``) objects with no part as wide as the smallest cell (fibres,
        neuropil, specks). None can become a counted cell, so the full-resolution work is
        skipped."""
        p, f, px = self.p, self.f, self.px
        m = comp[sl] == i
        area_um2 = float(m.sum()) * (f * px) ** 2
        yy, xx = np.nonzero(m)
        g = gfp_low[sl][m]
        bg = bg_g[sl][m]
        gfp_signal = float((g - bg).mean())
        _paint_blocks(labels, yy + sl[0].start, xx + sl[1].start, f, label)
        row = {
            "label": label,
            "centroid_y_um": ((yy.mean() + sl[0].start) + 0.5) * f * px,
            "centroid_x_um": ((xx.mean() + sl[1].start) + 0.5) * f * px,
            "area_um2": area_um2,
            "equivalent_diameter_um": 2 * np.sqrt(area_um2 / np.pi),
            "gfp_mean": float(g.mean()),
            "gfp_background": float(bg.mean()),
            "gfp_signal": gfp_signal,
            "gfp_peak_sigma": np.nan,
            "granularity": np.nan,
            "_row": int(((yy.mean() + sl[0].start) + 0.5) * f),
            "_col": int(((xx.mean() + sl[1].start) + 0.5) * f),
        }
        if ref_low is not None:
            bg_r = self.bg_ref.values[sl][m]
            ref_signal = float((ref_low[sl][m] - bg_r).mean())
            row["reference_signal"] = ref_signal
            row["reference_ratio"] = ref_signal / gfp_signal if gfp_signal > 0 else np.nan
        if self.dapi is not None:
            row["n_nuclei"] = pd.NA
            row["nucleated"] = pd.NA
        if no_body:
            # nothing in it is as wide as a cell body: a fibre (or fibre network) unless
            # it is smaller than a cell anyway
            row["thin_fraction"] = 1.0
        _classify(row, p, ref_low is not None, self.dapi is not None)
        return [row]


def _nuclei_inside(nuclei: np.ndarray, part: np.ndarray, min_overlap: float) -> list[int]:
    """Labels of the nuclei with at least ``min_overlap`` of their area inside ``part``."""
    inside = nuclei[part]
    inside = inside[inside > 0]
    if inside.size == 0:
        return []
    ids, counts = np.unique(inside, return_counts=True)
    total = np.bincount(nuclei.ravel(), minlength=int(ids.max()) + 1)[ids]
    return [int(i) for i in ids[counts / total >= min_overlap]]


def _split_by_nuclei(part: np.ndarray, nuclei: np.ndarray, inside: list[int],
                     min_area_px: float) -> list[np.ndarray]:
    """Cut a GFP+ object holding several nuclei into one piece per nucleus.

    A transplanted cell has one nucleus, so two nuclei in one GFP+ object are two touching
    cells the shape did not separate (their outlines blur into one convex blob). Each nucleus
    seeds a region of the object (geodesic nearest-nucleus). The cut is kept only when every
    piece is at least the smallest cell; otherwise the object stays whole.
    """
    from skimage.segmentation import watershed

    markers = np.where(part & np.isin(nuclei, inside), nuclei, 0)
    pieces_lab = watershed(np.zeros(part.shape, np.float32), markers, mask=part)
    pieces = [pieces_lab == k for k in inside if (pieces_lab == k).any()]
    if len(pieces) < 2 or min(int(pc.sum()) for pc in pieces) < min_area_px:
        return [part]
    return pieces


def _plain_ratio(comp: np.ndarray, i: int, sl: tuple[slice, slice], gfp_low: np.ndarray,
                 bg_g: np.ndarray, ref_low: np.ndarray, bg_r: np.ndarray) -> float:
    """Reference/GFP signal ratio of a candidate on the blocks (cheap pre-screen)."""
    m = comp[sl] == i
    g = float((gfp_low[sl][m] - bg_g[sl][m]).mean())
    r = float((ref_low[sl][m] - bg_r[sl][m]).mean())
    return r / g if g > 0 else np.inf


def _classify(row: dict[str, Any], p: GfpCellParams, has_ref: bool, has_dapi: bool) -> None:
    """Set ``class`` and ``reason`` of one object row (see :data:`CLASSES`)."""
    reasons = []
    ratio = row.get("reference_ratio", np.nan)
    if has_ref and ratio is not None and np.isfinite(ratio) and ratio > p.max_reference_ratio:
        reasons.append("reference_ratio")
    if has_ref and row["gfp_signal"] <= 0 and row.get("reference_signal", 0) > 0:
        reasons.append("reference_ratio")
    gran = row.get("granularity", np.nan)
    if np.isfinite(gran) and gran > p.max_granularity:
        reasons.append("granular")
    d = row["equivalent_diameter_um"]
    fibre = _shape_reasons(row, p)
    if reasons:
        cls = "autofluorescent"
    elif d < p.min_cell_diameter_um:
        cls, reasons = "too_small", ["too_small"]
    elif d > p.max_cell_diameter_um:
        cls, reasons = "too_large", ["too_large"]
    elif fibre:
        # the class names the first kind of reason: shape (fibre), then texture, then
        # contrast; the reason lists them all
        if "padding_edge" in fibre:
            cls = "edge"
        elif set(fibre) & {"thin", "elongated", "low_solidity"}:
            cls = "fibre"
        elif set(fibre) & {"texture", "punctate"}:
            cls = "texture"
        else:
            cls = "low_contrast"
        reasons = fibre
    elif has_dapi and p.require_nucleus and row.get("nucleated") is False:
        cls, reasons = "no_nucleus", ["no_nucleus"]
    else:
        cls = "gfp_cell"
    row["class"] = cls
    row["reason"] = "+".join(dict.fromkeys(reasons))


def _shape_reasons(row: dict[str, Any], p: GfpCellParams) -> list[str]:
    """Why an object is not a cell body (empty when it is one, or was not measured)."""
    out = []

    def above(key: str, limit: float) -> bool:
        v = row.get(key, np.nan)
        return v is not None and np.isfinite(v) and v > limit

    if above("thin_fraction", p.max_thin_fraction):
        out.append("thin")
    if above("elongation", p.max_elongation):
        out.append("elongated")
    v = row.get("solidity", np.nan)
    if v is not None and np.isfinite(v) and v < p.min_solidity:
        out.append("low_solidity")
    if row.get("padding_edge") is True:
        out.append("padding_edge")
    if above("texture_fraction", p.max_texture_fraction):
        out.append("texture")
    if above("peak_density", p.max_peak_density) and row.get("n_maxima", 0) >= _PUNCTATE_MIN_MAXIMA:
        out.append("punctate")
    # the ring contrast rejects what the classical detector finds in textured tissue:
    # clumps that are significant against the local σ only. A cellpose mask has been judged
    # against its surroundings by the network, and a true mask holds a dim cell's whole faint
    # rim (a phantom's dim cell measures 0.14 with it): measured and listed, not used.
    v = row.get("ring_contrast", np.nan)
    if p.engine == "classical" and v is not None and np.isfinite(v) \
            and v < p.min_ring_contrast and row.get("ring_textured") is True:
        out.append("low_contrast")
    return out


_OBJECT_COLUMNS = ["image", "region", "label", "centroid_y_um", "centroid_x_um", "area_um2",
                   "equivalent_diameter_um", "gfp_mean", "gfp_background", "gfp_signal",
                   "gfp_peak_sigma", "reference_signal", "reference_ratio", "granularity",
                   "solidity", "elongation", "thin_fraction", "texture_fraction",
                   "ring_contrast", "ring_textured", "n_maxima", "peak_density", "padding_edge",
                   "n_nuclei", "nucleated", "class", "reason"]


def _objects_table(rows: list[dict[str, Any]], masks: Mapping[str, np.ndarray], name: str,
                   has_ref: bool, has_dapi: bool) -> pd.DataFrame:
    """One row per object and region holding its centroid (regions may overlap)."""
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


def _summary_table(objects: pd.DataFrame, masks: Mapping[str, np.ndarray], name: str,
                   px: float, has_dapi: bool, flag: str) -> pd.DataFrame:
    summary = region_table(name, masks, px)
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


# --------------------------------------------------------------------------------------------
# per-nucleus calls (count_nuclei)


def _count_nuclei(ctx: _Context, masks: Mapping[str, np.ndarray],
                  union: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """Segment every nucleus in the regions; GFP+ when its perinuclear ring is GFP-bright."""
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


def _add_nuclei_counts(summary: pd.DataFrame, nuclei: pd.DataFrame,
                       masks: Mapping[str, np.ndarray]) -> pd.DataFrame:
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


# --------------------------------------------------------------------------------------------
# QC overlay

_QC_MAX_SIDE = 2048


def _qc_layers(img: Image, ch: Mapping[str, int], f: int, gfp_low: np.ndarray,
               ref_low: np.ndarray | None, dapi: _DapiReader | None,
               ) -> tuple[int, list[tuple[np.ndarray, tuple[int, int, int]]]]:
    """Display channels at ≤ ``_QC_MAX_SIDE`` px and their reduction factor.

    A large image reuses the detection's block means instead of reading the channels again.
    """
    h, w = img.shape_yx
    if max(h, w) <= _QC_MAX_SIDE:
        q = 1
        layers = [(_plane(img, ch["gfp"]), _GREEN)]
        if "reference" in ch:
            layers.append((_plane(img, ch["reference"]), _MAGENTA))
        if dapi is not None:
            layers.append((dapi.plane, _BLUE))
        return q, layers
    k = int(np.ceil(np.ceil(max(h, w) / _QC_MAX_SIDE) / f))
    layers = [(block_mean(gfp_low, k), _GREEN)]
    if ref_low is not None:
        layers.append((block_mean(ref_low, k), _MAGENTA))
    if dapi is not None:
        layers.append((block_mean(dapi.low, k), _BLUE))
    return f * k, layers


_GREEN, _MAGENTA, _BLUE = (0, 255, 0), (255, 0, 255), (40, 90, 255)


def _composite(layers: Sequence[tuple[np.ndarray, tuple[int, int, int]]]) -> np.ndarray:
    """Additive colour composite, each layer stretched between its 0.5 and 99.8 percentiles."""
    shape = layers[0][0].shape
    planes = np.zeros((3, *shape), np.float32)
    for arr, colour in layers:
        sample = np.asarray(arr[:: max(1, shape[0] // 512), :: max(1, shape[1] // 512)],
                            np.float32)
        lo, hi = np.percentile(sample, (0.5, 99.8))
        scale = 1.0 / max(float(hi - lo), 1e-6)
        stretched = np.clip((np.asarray(arr, np.float32) - lo) * scale, 0, 1)
        for k in range(3):
            if colour[k]:
                planes[k] += stretched * (colour[k] / 255.0)
    np.clip(planes, 0, 1, out=planes)
    planes *= 255
    return np.ascontiguousarray(np.moveaxis(planes.astype(np.uint8), 0, -1))


QC_COLOURS = {"gfp_cell": (0, 158, 115), "autofluorescent": (213, 94, 0),
              "no_nucleus": (240, 228, 66), "too_small": (150, 150, 150),
              "too_large": (150, 150, 150), "fibre": (86, 180, 233), "texture": (204, 121, 167),
              "low_contrast": (0, 114, 178), "edge": (150, 150, 150)}
"""Outline colour of each class in the QC picture (Okabe–Ito; counted cells also circled)."""


def qc_mark_radius_px(equivalent_diameter_um: float, pixel_size_um: float, q: int) -> int:
    """Radius in QC display pixels of the circle drawn round a counted cell.

    The circle is the disk of the cell's own area (its equivalent diameter), drawn at the
    display's reduction ``q`` (display pixel = ``q`` image pixels), so a 15 µm cell gets a
    15 µm circle: the mark shows the object that was counted, not a fixed symbol. At least
    2 px, so a cell shrunk by a strong reduction still shows a ring.
    """
    return max(2, round(equivalent_diameter_um / 2 / pixel_size_um / q))


def _qc_overlay(q: int, layers: list, labels: np.ndarray, objects: pd.DataFrame,
                masks: Mapping[str, np.ndarray], summary: pd.DataFrame,
                p: GfpCellParams, img: Image, nuclei: pd.DataFrame | None = None) -> np.ndarray:
    """Composite (GFP green, reference magenta, DAPI blue), object outlines by class
    (:data:`QC_COLOURS`), counted cells circled green at their equivalent diameter,
    autofluorescent objects crossed vermillion, and a caption."""
    from skimage.draw import circle_perimeter, line

    from ..qc import CLASS_COLOURS, add_caption, draw_mask_outlines, draw_outlines

    rgb = _composite(layers)
    small = labels[::q, ::q][: rgb.shape[0], : rgb.shape[1]]
    per_label = {}
    for lab, cls in zip(objects.get("label", []), objects.get("class", [])):
        per_label[int(lab)] = QC_COLOURS.get(cls, (255, 255, 255))
    draw_outlines(rgb, small.astype(np.int32), per_label, thickness_px=1)
    draw_mask_outlines(rgb, {k: v[::q, ::q][: rgb.shape[0], : rgb.shape[1]]
                             for k, v in masks.items()})
    px = img.pixel_size_um
    marked = objects.drop_duplicates("label") if len(objects) else objects
    marked = marked[marked["class"].isin(["gfp_cell", "autofluorescent"])] if len(marked) \
        else marked
    for cls, y_um, x_um, d_um in zip(marked.get("class", []), marked.get("centroid_y_um", []),
                                     marked.get("centroid_x_um", []),
                                     marked.get("equivalent_diameter_um", [])):
        r = round(float(y_um) / px / q)
        c = round(float(x_um) / px / q)
        radius = qc_mark_radius_px(d_um, px, q)
        if cls == "gfp_cell":
            # the cell's own disk, one ring inside the other so it reads on any background
            for rad in (radius, radius + 1):
                rr, cc = circle_perimeter(r, c, rad, shape=rgb.shape[:2])
                rgb[rr, cc] = CLASS_COLOURS["gfp_cell"]
        else:
            k = max(2, round(radius / 1.4))
            for r0, c0, r1, c1 in ((r - k, c - k, r + k, c + k), (r - k, c + k, r + k, c - k)):
                rr, cc = line(r0, c0, r1, c1)
                ok = (rr >= 0) & (rr < rgb.shape[0]) & (cc >= 0) & (cc < rgb.shape[1])
                rgb[rr[ok], cc[ok]] = CLASS_COLOURS["autofluorescent"]
    if nuclei is not None and len(nuclei):
        # count_nuclei: a yellow dot on each GFP+ nucleus, a dark one on each GFP- nucleus
        pos = nuclei.drop_duplicates("label")
        rr = np.clip((pos["centroid_y_um"] / img.pixel_size_um / q).astype(int), 0,
                     rgb.shape[0] - 1)
        cc = np.clip((pos["centroid_x_um"] / img.pixel_size_um / q).astype(int), 0,
                     rgb.shape[1] - 1)
        yes = pos["gfp_positive"].to_numpy(bool)
        for dr, dc in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
            r2 = np.clip(rr + dr, 0, rgb.shape[0] - 1)
            c2 = np.clip(cc + dc, 0, rgb.shape[1] - 1)
            rgb[r2[yes], c2[yes]] = (240, 228, 66)
            rgb[r2[~yes], c2[~yes]] = (60, 60, 60)

    def per_region(col: str) -> str:
        return ", ".join(f"{r}={n}" for r, n in zip(summary["region"], summary[col]))

    def per_class(cls: str) -> str:
        sel = objects[objects["class"] == cls] if len(objects) else objects
        return ", ".join(f"{r}={int((sel['region'] == r).sum()) if len(sel) else 0}"
                         for r in summary["region"])

    lines = [f"{img.name}: GFP+ cells (green circle = the cell's own size) "
             f"{per_region('n_gfp_cells')}",
             f"rejected: autofluorescent (vermillion x) {per_region('n_rejected_autofluorescent')}",
             f"fibre (sky blue) {per_class('fibre')}; texture (purple) {per_class('texture')}"
             f"; low contrast (blue) {per_class('low_contrast')}"
             f"; size (grey) {per_region('n_rejected_size')}"]
    return add_caption(rgb, lines)


# --------------------------------------------------------------------------------------------
# aggregation per animal x level


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


SPEC = AssaySpec(
    name="gfp-cells",
    title="GFP+ transplanted cells: count per section and region, autofluorescence rejected",
    params_cls=GfpCellParams,
    run=run,
    channel_roles=(
        ChannelRole("gfp", True, "GFP fluorescence (ex 488 / em 509 nm)"),
        ChannelRole("dapi", False, "nuclear stain; a counted cell must hold a nucleus"),
        ChannelRole("reference", False,
                    "autofluorescence reference: a red/far-red channel where GFP does not "
                    "emit; objects bright here too are autofluorescent"),
    ),
    auto_regions=("tissue", "grey_matter", "white_matter"),
    modalities=("fluorescence",),
    preflight=preflight,
    tables=(ExtraTable("nuclei", "one row per nucleus counted in the DAPI channel (with "
                                 "count_nuclei): position, area, GFP+ or not"),),
    measures=(
        REGION_AREA,
        Measure("n_gfp_cells", "count", "GFP+ cells (objects that pass every criterion)",
                animal="sum"),
        Measure("gfp_cells_per_mm2", "per mm²", "GFP+ cells per mm² of the region",
                tiles="ratio", of=("n_gfp_cells", "region_area_mm2")),
        Measure("n_gfp_objects", "count", "GFP+ objects before the nucleus check",
                animal="sum"),
        Measure("n_gfp_nucleated", "count", "GFP+ objects holding a DAPI nucleus",
                animal="sum"),
        Measure("n_rejected_*", "count", "objects rejected for this reason", animal="sum"),
        Measure("n_objects", "count", "every candidate object measured", animal="sum"),
        Measure("n_nuclei", "count", "DAPI nuclei counted (count_nuclei)", animal="sum"),
        Measure("n_gfp_positive_nuclei", "count", "nuclei inside GFP signal", animal="sum"),
        Measure("gfp_positive_nuclei_pct", "%", "GFP+ nuclei, % of the nuclei",
                tiles="ratio", of=("n_gfp_positive_nuclei", "n_nuclei"), scale=100.0),
        Measure("flag", "", "problems found with the image", tiles="join", animal="none"),
    ),
)
