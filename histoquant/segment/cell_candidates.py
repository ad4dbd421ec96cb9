"""Fluorescent cell candidates: full-resolution refinement, measurement and classification.

The second half of the fluorescent-cell engine (:mod:`histoquant.segment.fluorescent_cells`
finds the candidates on a block grid). For each candidate, :class:`CandidateMeasurer`

1. refines its outline at full resolution in a crop (hysteresis extent, granule gaps closed,
   holes filled), keeps the parts as wide as a cell body and lists the rest (fibres,
   neuropil) as rejected, and separates touching cells (watershed on the distance
   transform, then one piece per nucleus when a GFP+ object holds several);
2. measures each object: area, GFP and reference-channel signal over the local background,
   their ratio, granularity (share of the GFP signal in puncta the size of lipofuscin
   granules), cell-body shape (solidity, elongation, thin and texture fractions), contrast
   to the ring of tissue around it, maxima per area and — with DAPI — the nuclei inside;
3. classes it (:func:`classify_object`, classes :data:`CLASSES`).

Cellpose masks go through the same measurement and classification
(:meth:`CandidateMeasurer.measure_mask`), so both engines give the same tables. Every
threshold is a parameter of :class:`histoquant.assays.gfp_cells.GfpCellParams`, where each
default is justified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..errors import EmptyImageError
from ..io.image import Image
from ..measure.objects import measure_objects
from .local_background import NoiseMap, SmoothBackground, background_grid
from .nuclei import nuclear_threshold, segment_nuclei, smooth_sigma_px
from .statistics import P10_TO_SD, block_mean, robust_location_scale

if TYPE_CHECKING:
    from ..assays.gfp_cells import GfpCellParams

__all__ = ["CLASSES", "REJECT_REASONS", "CandidateMeasurer", "DapiReader", "channel_plane",
           "check_channel", "classify_object", "soma_radius_px"]

CLASSES = ("gfp_cell", "no_nucleus", "autofluorescent", "too_small", "too_large", "fibre",
           "texture", "low_contrast", "edge")
"""Object classes; only ``gfp_cell`` is counted as a GFP+ cell."""

REJECT_REASONS = ("too_small", "too_large", "thin", "elongated", "low_solidity", "texture",
                  "punctate", "low_contrast", "padding_edge")
"""Shape and size reasons counted per region as ``n_rejected_<reason>`` in the summary (an
object whose ``reason`` names several counts under each)."""


def channel_plane(image: Image, index: int) -> np.ndarray:
    """One channel as a 2D array (a view where possible, Z max-projected).

    Unlike :meth:`histoquant.io.image.Image.channel`, no float copy is made and nothing is
    scanned: the engine block-averages the plane first and checks the small copy
    (:func:`check_channel`), which keeps whole-slide images cheap.

    Parameters
    ----------
    image : Image
        The image.
    index : int
        Channel index.

    Returns
    -------
    ndarray
        (Y, X) in the image's dtype.
    """
    data = image.data
    arr = data[..., index] if image.axes.endswith("C") else data
    arr = np.asarray(arr)
    if "Z" in image.axes:
        arr = arr.max(axis=0)
    return arr


def check_channel(arr: np.ndarray, image: Image, role: str) -> None:
    """NaN/blank checks on the block-averaged channel (cheap, and NaN survives averaging).

    Parameters
    ----------
    arr : ndarray
        Block-averaged channel.
    image : Image
        The image (its source is named in the message).
    role : str
        Channel role named in the message (``"GFP"``, ``"reference"``, ``"DAPI"``).

    Raises
    ------
    EmptyImageError
        NaN or infinite pixels, or one constant value.
    """
    if not np.isfinite(arr).all():
        raise EmptyImageError(
            f"{image.source}: the {role} channel holds NaN or infinite pixels. Fill or mask "
            "them before analysis.")
    if arr.size == 0 or float(arr.max()) == float(arr.min()):
        raise EmptyImageError(
            f"{image.source}: the {role} channel is blank (one constant value); there is "
            "nothing to measure. Check the exposure and that the right channel was chosen.")


def _slices_up(sl: tuple[slice, slice], f: int, margin: int,
               shape: tuple[int, int]) -> tuple[slice, slice]:
    """Full-resolution slices of a block-grid bounding box, grown by ``margin`` pixels."""
    return tuple(slice(max(0, s.start * f - margin), min(n, s.stop * f + margin))
                 for s, n in zip(sl, shape))


def _upsample_mask(low: np.ndarray, f: int, rows: slice, cols: slice) -> np.ndarray:
    """Nearest-neighbour full-resolution mask for the crop ``rows, cols``.

    Made from a block-grid array ``low`` whose element ``[0, 0]`` is block
    ``(rows.start // f, cols.start // f)``.
    """
    r = np.arange(rows.start, rows.stop) // f - rows.start // f
    c = np.arange(cols.start, cols.stop) // f - cols.start // f
    return low[np.ix_(np.clip(r, 0, low.shape[0] - 1), np.clip(c, 0, low.shape[1] - 1))]


def _low_slices(rows: slice, cols: slice, f: int) -> tuple[slice, slice]:
    """Block-grid slices covering full-resolution ``rows, cols``."""
    return (slice(rows.start // f, (rows.stop - 1) // f + 1),
            slice(cols.start // f, (cols.stop - 1) // f + 1))


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


def soma_radius_px(p: GfpCellParams, pixel_size_um: float) -> int:
    """Radius in pixels of the disk of the smallest cell (at least 1).

    Parameters
    ----------
    p : GfpCellParams
        Parameters (``min_cell_diameter_um``).
    pixel_size_um : float
        Pixel size of the grid the disk is used on.

    Returns
    -------
    int
    """
    return max(1, round(p.min_cell_diameter_um / 2 / pixel_size_um))


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


class DapiReader:
    """DAPI background and one image-wide nucleus threshold, read per crop.

    Both are computed on first use: most sections need neither (no candidate survives the
    autofluorescence tests).

    Parameters
    ----------
    img : Image
        The image.
    index : int
        Index of the DAPI channel.
    p : GfpCellParams
        Parameters (nucleus diameters and threshold).
    f : int
        Block size of the engine's block grid.
    union_low : ndarray of bool
        Regions on the block grid (where the threshold is sampled).
    """

    def __init__(self, img: Image, index: int, p: GfpCellParams, f: int,
                 union_low: np.ndarray, *, background: np.ndarray | None = None,
                 threshold: float | None = None) -> None:
        self.img, self.p, self.f, self.union_low = img, p, f, union_low
        self.px = img.pixel_size_um
        self.plane = channel_plane(img, index)
        self.diam = (p.min_nucleus_diameter_um, p.max_nucleus_diameter_um)
        self._bg: SmoothBackground | None = None
        self._low: np.ndarray | None = None
        self._threshold_value: float | None = None
        #: the background as (grid, block) of :func:`background_grid`, once measured here
        self.grid: tuple[np.ndarray, int] | None = None
        if background is not None and threshold is not None:
            # a tile of a calibrated run: the whole image's background and threshold
            self._bg = SmoothBackground(np.asarray(background, np.float32), f, img.shape_yx)
            self._threshold_value = float(threshold)

    @property
    def low(self) -> np.ndarray:
        """The DAPI channel block-averaged like the GFP channel."""
        if self._low is None:
            self._low = block_mean(self.plane, self.f)
            check_channel(self._low, self.img, "DAPI")
        return self._low

    def _prepare(self) -> None:
        """Background and threshold, computed on first use.

        Most sections need neither (no candidate survives the autofluorescence tests).
        """
        if self._bg is not None:
            return
        low = self.low
        # nuclei are small against the background scale: a coarse grid is plenty
        grid, k = background_grid(low, self.p.max_nucleus_diameter_um / (self.f * self.px),
                                  max_filter_px=4)
        self.grid = (grid, k)
        self._bg = SmoothBackground(
            grid if k == 1 else SmoothBackground(grid, k, low.shape).full(),
            self.f, self.img.shape_yx)
        self._threshold_value = self._threshold(self.p, self.union_low, self.f)

    @property
    def bg(self) -> SmoothBackground:
        """DAPI background (smooth, block grid)."""
        self._prepare()
        return self._bg

    @property
    def threshold(self) -> float:
        """Image-wide nucleus threshold on the background-subtracted, smoothed DAPI."""
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
        """Nucleus labels of the crop ``rows, cols``.

        Parameters
        ----------
        rows, cols : slice
            Full-resolution crop.

        Returns
        -------
        ndarray of int
            Labels (:func:`histoquant.segment.nuclei.segment_nuclei` with the image-wide
            threshold and background).
        """
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
        """White top-hat of the lightly smoothed GFP crop with a disk of ``radius_px``.

        What is left is signal in structures narrower than the disk (granules), computed
        once per crop, over the support's bounding box only.
        """
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
class CandidateMeasurer:
    """Full-resolution context of a detection: channels, backgrounds, noise and DAPI.

    Measures and classes candidates (:meth:`measure_candidate`, classical engine), masks
    (:meth:`measure_mask`, cellpose engine) and block-grid objects (:meth:`measure_low`),
    and paints each listed object into the label image it is given. Rows hold the
    measurements of the objects table plus ``_row``/``_col``, the centre pixel the region
    is read at.

    Attributes
    ----------
    img : Image
        The image.
    p : GfpCellParams
        Parameters.
    px : float
        Pixel size (µm).
    f : int
        Block size of the block grid.
    shape : (int, int)
        Image shape.
    gfp, ref : ndarray
        GFP and reference planes (``ref`` None without reference).
    bg_gfp, bg_ref : SmoothBackground
        Their backgrounds.
    noise : NoiseMap
        Local GFP noise, in full-resolution pixels.
    dapi : DapiReader or None
        DAPI reader.
    """

    img: Image
    p: GfpCellParams
    px: float
    f: int
    shape: tuple[int, int]
    gfp: np.ndarray
    ref: np.ndarray | None
    bg_gfp: SmoothBackground
    bg_ref: SmoothBackground | None
    noise: NoiseMap
    dapi: DapiReader | None
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
        """Refine one candidate at full resolution, measure it and split and class it.

        The candidate is split when it may be touching cells, and each part is classed.

        Parameters
        ----------
        comp : ndarray of int
            Block-grid components.
        i : int
            The candidate's component label.
        sl : (slice, slice)
            Its bounding box on the block grid.
        labels : ndarray of int
            Full-resolution label image, painted in place.
        next_label : int
            Label of the first row.

        Returns
        -------
        list of dict
            One row per listed object (parts, and pieces rejected as fibre or neuropil).
        """
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
        """One rejected row per connected piece of ``rest``.

        ``rest`` is what is left of a component once its cell bodies are taken out
        (fibres, neuropil); only pieces at least ``min_object_area_um2`` large are listed.
        """
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
            classify_object(row, self.p, crop.ref is not None, False)
            if self.dapi is not None:
                row["n_nuclei"], row["nucleated"] = pd.NA, pd.NA
            self._paint(labels, crop, piece, row["label"])
            out.append(row)
        return out

    def measure_mask(self, masks: np.ndarray, j: int, sl: tuple[slice, slice],
                     labels: np.ndarray, next_label: int) -> list[dict[str, Any]]:
        """Measure and class object ``j`` of a full-resolution label image ``masks``.

        ``masks`` is the cellpose engine's; the same code is used as for a classical
        candidate's parts.

        Parameters
        ----------
        masks : ndarray of int
            Full-resolution label image.
        j : int
            The mask's label.
        sl : (slice, slice)
            Its bounding box.
        labels : ndarray of int
            Output label image, painted in place.
        next_label : int
            Label of the first row.

        Returns
        -------
        list of dict
            One row per listed object (more than one when it holds several nuclei).
        """
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
        """Measure, class and paint each object mask of ``work`` (full resolution, in ``crop``).

        These are the criteria both engines share. A GFP+ object holding several nuclei is
        cut into one piece per nucleus (``split_touching``); objects below
        ``min_object_area_um2`` are not listed.
        """
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
                    classify_object(row, p, self.ref is not None, True)
            self._paint(labels, crop, part, row["label"])
            out.append(row)
        return out

    @staticmethod
    def _paint(labels: np.ndarray, crop: _Crop, part: np.ndarray, label: int) -> None:
        view = labels[crop.rows, crop.cols]
        view[part & (view == 0)] = label

    def _measure_part(self, crop: _Crop, part: np.ndarray, *, label: int,
                      granularity: bool, shape: bool = True) -> dict[str, Any]:
        """Measurements and class of one full-resolution object (``part`` in ``crop``).

        With ``shape``, also its cell-body shape (solidity, elongation, thin and texture
        fractions).
        """
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
        classify_object(row, self.p, crop.ref is not None, False)
        if row["class"] != "autofluorescent" or granularity:
            pos = float(np.maximum(s_vals, 0).sum())
            tophat = crop.tophat(self.p.granule_diameter_um / px)
            row["granularity"] = float(tophat[part].sum() / pos) if pos > 0 else np.nan
            classify_object(row, self.p, crop.ref is not None, False)
        if shape and row["class"] not in ("autofluorescent", "too_small", "too_large"):
            # the shape can change only the class of an object that could still be a cell
            row.update(self._shape(crop, part))
            classify_object(row, self.p, crop.ref is not None, False)
        return row

    def _shape(self, crop: _Crop, part: np.ndarray) -> dict[str, float]:
        """Cell-body shape of ``part``.

        Solidity, elongation (major/minor axis of the ellipse of the same second moments),
        thin fraction (share of the area an opening with a disk of the smallest cell removes)
        and texture fraction (share of the smoothed significance a grey opening of that size
        removes, on the block grid).
        """
        box = ndi.find_objects(part.astype(np.uint8))[0]
        sub = part[box]
        m = measure_objects(sub.astype(np.int32), self.px).iloc[0]
        ecc = float(m["eccentricity"])
        elong = 1.0 / np.sqrt(max(1.0 - ecc ** 2, 1e-12))
        r = soma_radius_px(self.p, self.px)
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
        """Measure an object on the blocks only.

        Done for objects far larger than a cell (folds, edges, clumps), objects plainly
        brighter in the reference channel than a GFP cell can be, and (``no_body``) objects
        with no part as wide as the smallest cell (fibres, neuropil, specks). None can become
        a counted cell, so the full-resolution work is skipped.

        Parameters
        ----------
        comp : ndarray of int
            Block-grid components.
        i : int
            The object's component label.
        sl : (slice, slice)
            Its bounding box on the block grid.
        gfp_low, ref_low, bg_g : ndarray
            Block-averaged GFP and reference channels (``ref_low`` may be None) and the GFP
            background.
        labels : ndarray of int
            Full-resolution label image, painted in place (the object's blocks).
        label : int
            The object's label.
        no_body : bool
            Nothing in it is as wide as a cell body (a fibre unless smaller than a cell).

        Returns
        -------
        list of dict
            One row.
        """
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
        classify_object(row, p, ref_low is not None, self.dapi is not None)
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


def classify_object(row: dict[str, Any], p: GfpCellParams, has_ref: bool, has_dapi: bool) -> None:
    """Set ``class`` and ``reason`` of one object row (see :data:`CLASSES`), in place.

    The class names the first kind of reason: autofluorescence (reference ratio,
    granularity), size, shape (fibre, texture, contrast, padding edge), then a missing
    nucleus; ``reason`` lists every reason of that kind joined by ``+``.

    Parameters
    ----------
    row : dict
        Measurements of one object (missing ones are not judged).
    p : GfpCellParams
        Parameters (the limits).
    has_ref, has_dapi : bool
        Whether a reference / DAPI channel was read.
    """
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
