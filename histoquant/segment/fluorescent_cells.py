"""Rare fluorescent cells among autofluorescent decoys: the detection engine.

Finds GFP+ (or any cytoplasmic-fluorescence) cells the way the gfp-cells assay needs them
(see :mod:`histoquant.assays.gfp_cells` for the biology and the parameters):

1. every channel is block-averaged (blocks of about a quarter of the smallest cell); the
   background is a smooth lower envelope over the tissue blocks and the noise a *local* σ
   per tile (:func:`histoquant.segment.local_background.background_and_noise`);
2. classical engine: objects are seeded at ``detection_sigma`` and extended to
   ``extent_sigma`` (hysteresis) on the blocks; cell bodies are what stays significant after
   a grey opening with a disk of the smallest cell; components with no body (fibres,
   neuropil), far larger than a cell, or plainly brighter in the reference channel are
   measured on the blocks only, after cutting the cell-sized compact (or green-only) parts
   off big or reddish ones as candidates of their own;
3. cellpose engine: Cellpose-SAM masks of the GFP channel replace step 2;
4. every candidate is refined, split, measured and classed at full resolution by
   :class:`histoquant.segment.cell_candidates.CandidateMeasurer`, the same code for both
   engines.

:func:`detect_fluorescent_cells` runs it all and returns a :class:`FluorescentCellDetection`:
the object rows, the label image, and the block-grid statistics the assay reports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..errors import ChannelError
from ..io.image import Image
from ..qc import (
    FLUORESCENT_CELL_COLOURS,
    add_caption,
    composite,
    draw_cell_marks,
    draw_mask_outlines,
    draw_outlines,
    draw_point_marks,
)
from .background import sample_block_grid
from .cell_candidates import (
    CandidateMeasurer,
    DapiReader,
    _split_touching,
    channel_plane,
    check_channel,
    soma_radius_px,
)
from .cellpose_engine import CellposeOptions, require_cellpose, segment_cellpose
from .local_background import NoiseMap, SmoothBackground, background_grid, local_noise
from .padding import padding_of_image
from .statistics import block_any, block_mean

if TYPE_CHECKING:
    from ..assays.gfp_cells import GfpCellParams

__all__ = ["FluorescentCellDetection", "FieldCalibration", "detect_fluorescent_cells",
           "measure_field", "calibrate_fluorescent_cells", "without_padding", "align_to_field",
           "block_factor", "check_roles", "untile", "cellpose_options", "preflight"]

Report = Callable[[float, str], None]
"""``report(fraction, message)``: progress of a detection."""

_QC_MAX_SIDE = 2048
"""Longest side of the QC display; larger images are shown reduced."""

_GREEN, _MAGENTA, _BLUE = (0, 255, 0), (255, 0, 255), (40, 90, 255)


@dataclass
class FluorescentCellDetection:
    """What :func:`detect_fluorescent_cells` found, and the statistics it found it with.

    Attributes
    ----------
    rows : list of dict
        One measured, classed object per row (keys ``_row``/``_col``: its centre pixel).
    labels : ndarray
        Label image of every listed object (uint16, int32 beyond 60,000 objects).
    measurer : CandidateMeasurer
        The full-resolution context the objects were measured in (channels, backgrounds,
        noise, DAPI reader), reused to count nuclei.
    block_factor : int
        Block size (pixels) of the block grid.
    gfp_low, ref_low : ndarray
        Block-averaged GFP and reference channels (``ref_low`` None without reference).
    field : FieldCalibration
        The image-wide statistics the objects were found with (the image's own, or a
        calibration of the whole image when this is a tile of it).
    """

    rows: list[dict[str, Any]]
    labels: np.ndarray
    measurer: CandidateMeasurer
    block_factor: int
    gfp_low: np.ndarray
    ref_low: np.ndarray | None
    field: FieldCalibration

    @property
    def noise_sigma_median(self) -> float:
        """Median local GFP noise σ over the regions (of the whole image)."""
        return self.field.noise_sigma_median

    def flat_background(self) -> bool:
        """Tell whether the GFP background has no structure (of the whole image).

        True when its 1–99 % range inside the regions is below 3 noise σ (no tissue, or the
        wrong channel or exposure).

        Returns
        -------
        bool
            The calibration's ``flat_background``.
        """
        return self.field.flat_background

    def check(self, objects: pd.DataFrame, source: str) -> tuple[str, list[str]]:
        """Flag and warnings about what was found.

        Parameters
        ----------
        objects : DataFrame
            The objects table made from :attr:`rows`.
        source : str
            The image's source, quoted in the warnings.

        Returns
        -------
        flag : str
            ``"no_tissue_or_signal"`` when nothing was found on a flat background, else "".
        warnings : list of str
            Also when every object is as bright in the reference channel as in GFP
            (median ratio > 0.9, at least 5 objects, all autofluorescent): bleed-through or
            the wrong reference channel.
        """
        out: list[str] = []
        flag = ""
        if not self.rows and self.flat_background():
            flag = "no_tissue_or_signal"
            out.append(
                f"{source}: no object and no structure in the GFP channel (flat "
                "background): no tissue, or the wrong channel / exposure. Counted as zero "
                "cells; check the image.")
        if self.ref_low is not None and self.rows:
            ratio = objects["reference_ratio"].to_numpy(float)
            if np.isfinite(ratio).any() and np.nanmedian(ratio) > 0.9 and \
                    (objects["class"] == "autofluorescent").all() and len(objects) >= 5:
                out.append(
                    f"{source}: every object is as bright in the reference channel as in GFP "
                    "(median ratio > 0.9); the reference may hold GFP bleed-through or be the "
                    "wrong channel.")
        return flag, out

    def display_layers(self) -> tuple[int, list[tuple[np.ndarray, tuple[int, int, int]]]]:
        """Display channels for QC (GFP green, reference magenta, DAPI blue).

        Returns
        -------
        q : int
            Reduction factor of the display (display pixel = ``q`` image pixels): 1 up to
            ``_QC_MAX_SIDE`` px; a larger image reuses the detection's block means instead
            of reading the channels again.
        layers : list of (ndarray, colour)
            One plane per channel.
        """
        m, f = self.measurer, self.block_factor
        h, w = m.shape
        if max(h, w) <= _QC_MAX_SIDE:
            layers = [(m.gfp, _GREEN)]
            if m.ref is not None:
                layers.append((m.ref, _MAGENTA))
            if m.dapi is not None:
                layers.append((m.dapi.plane, _BLUE))
            return 1, layers
        k = int(np.ceil(np.ceil(max(h, w) / _QC_MAX_SIDE) / f))
        layers = [(block_mean(self.gfp_low, k), _GREEN)]
        if self.ref_low is not None:
            layers.append((block_mean(self.ref_low, k), _MAGENTA))
        if m.dapi is not None:
            layers.append((block_mean(m.dapi.low, k), _BLUE))
        return f * k, layers

    def qc_overlay(self, objects: pd.DataFrame, masks: Mapping[str, np.ndarray],
                   caption: Sequence[str], nuclei: pd.DataFrame | None = None) -> np.ndarray:
        """QC picture of the detection.

        Composite (GFP green, reference magenta, DAPI blue; :meth:`display_layers`), object
        outlines by class (:data:`histoquant.qc.FLUORESCENT_CELL_COLOURS`), counted cells
        circled at their equivalent diameter, autofluorescent objects crossed vermillion,
        nuclei dotted (yellow GFP+, dark GFP−) and a caption.

        Parameters
        ----------
        objects : DataFrame
            The objects table.
        masks : mapping of str to ndarray of bool
            Regions, outlined.
        caption : sequence of str
            Caption lines.
        nuclei : DataFrame, optional
            Per-nucleus calls (``count_nuclei``).

        Returns
        -------
        ndarray
            (Y, X, 3) uint8, the caption band on top.
        """
        q, layers = self.display_layers()
        rgb = composite(layers)
        small = self.labels[::q, ::q][: rgb.shape[0], : rgb.shape[1]]
        per_label = {int(lab): FLUORESCENT_CELL_COLOURS.get(cls, (255, 255, 255))
                     for lab, cls in zip(objects.get("label", []), objects.get("class", []))}
        draw_outlines(rgb, small.astype(np.int32), per_label, thickness_px=1)
        draw_mask_outlines(rgb, {k: v[::q, ::q][: rgb.shape[0], : rgb.shape[1]]
                                 for k, v in masks.items()})
        px = self.measurer.px
        draw_cell_marks(rgb, objects, px, q)
        if nuclei is not None and len(nuclei):
            pos = nuclei.drop_duplicates("label")
            draw_point_marks(rgb, pos["centroid_y_um"], pos["centroid_x_um"],
                             pos["gfp_positive"].to_numpy(bool), px, q)
        return add_caption(rgb, caption)


def without_padding(img: Image, masks: Mapping[str, np.ndarray],
                    ) -> tuple[dict[str, np.ndarray], np.ndarray | None, np.ndarray]:
    """Regions less the image's padding, the padding, and the union of the regions.

    Padding, tile frames and the outside of a round field of view are never tissue: out of
    the measured areas, of the background and of every noise statistic (a black canvas
    pulled the opening's background down along the tissue edge and, counted as tiles of
    σ ≈ 0, lowered the noise floor).

    Parameters
    ----------
    img : Image
        The image (its padding is found by :func:`histoquant.segment.padding.padding_of_image`).
    masks : mapping of str to ndarray of bool
        Regions.

    Returns
    -------
    masks : dict of str to ndarray of bool
        The regions less the padding (unchanged when there is none).
    padding : ndarray of bool or None
        None when no pixel, or every pixel, is padding.
    union : ndarray of bool
        All regions together.
    """
    pad = padding_of_image(img)
    if not pad.any() or pad.all():
        pad = None
    else:
        masks = {name: np.asarray(m, dtype=bool) & ~pad for name, m in masks.items()}
    union = np.zeros(img.shape_yx, bool)
    for m in masks.values():
        union |= m
    return masks, pad, union


def block_factor(p: GfpCellParams, pixel_size_um: float) -> int:
    """Block size (pixels) of the engine's block grid: about a quarter of the smallest cell.

    Parameters
    ----------
    p : GfpCellParams
        The assay's parameters (``min_cell_diameter_um`` is read).
    pixel_size_um : float
        Pixel size in µm.

    Returns
    -------
    int
        Block side in px, at least 1.
    """
    return max(1, int(p.min_cell_diameter_um / 4.0 / pixel_size_um))


@dataclass
class FieldCalibration:
    """Image-wide statistics of the engine: backgrounds, local noise, DAPI threshold.

    Measured once over the whole image (or the box of a section, :func:`measure_field`) and
    read by every tile of it at its own position, so that a tiled run finds what a whole run
    finds. The grids are kept as the backgrounds are computed — on blocks of ``k`` cells of
    the calibration's block grid — and read back with the same bilinear interpolation: a
    tile whose blocks fall on the calibration's (:func:`align_to_field`) gets the whole
    image's values exactly.

    Attributes
    ----------
    cell_px : int
        Full-resolution pixels per cell of the calibration's block grid (the block factor,
        times the step of a lower-resolution calibration view).
    start_yx : (int, int)
        Full-resolution pixel where cell (0, 0) starts.
    noise_tile : int
        Side of a noise tile, in cells.
    gfp_back, gfp_back_k : ndarray, int
        GFP background grid (:func:`~histoquant.segment.local_background.background_grid`)
        and its block in cells.
    gfp_level, gfp_sigma : ndarray
        Per noise tile: median GFP residual (added to the background) and noise σ.
    ref_back, ref_level : ndarray or None
        The same for the reference channel (same blocks as GFP).
    dapi_back, dapi_back_k, dapi_threshold : ndarray, int, float or None
        DAPI background grid, its block, and the nucleus threshold.
    noise_sigma_median : float
        Median GFP noise σ over the regions.
    flat_background : bool
        The GFP background's 1–99 % range in the regions is below 3 noise σ.
    step : int
        Full-resolution pixels per pixel of the view it was measured on (1: full resolution).
    regions_low : ndarray of bool or None
        The cells objects are detected in (the regions less padding): a tile detects in the
        whole image's regions, not only in its core's, so an object across a tile seam is
        found whole by the tile holding its centre.
    """

    cell_px: int
    start_yx: tuple[int, int]
    noise_tile: int
    gfp_back: np.ndarray
    gfp_back_k: int
    gfp_level: np.ndarray
    gfp_sigma: np.ndarray
    noise_sigma_median: float
    flat_background: bool
    ref_back: np.ndarray | None = None
    ref_level: np.ndarray | None = None
    dapi_back: np.ndarray | None = None
    dapi_back_k: int = 1
    dapi_threshold: float | None = None
    step: int = 1
    regions_low: np.ndarray | None = None

    _ARRAYS = ("gfp_back", "gfp_level", "gfp_sigma", "ref_back", "ref_level", "dapi_back")

    def to_dict(self) -> dict[str, Any]:
        """Return plain JSON data.

        Grids are ``{"shape", "float32"}`` (little-endian float32, base64) and the regions
        ``{"shape", "packed"}`` (bits, base64): a 64-MP region's grids hold about a million
        values, which as decimal lists would make run.json tens of MB.

        Returns
        -------
        dict of str to Any
            One key per field; tuples as lists, NumPy scalars as Python numbers.
        """
        import base64

        out: dict[str, Any] = {}
        for key in self.__dataclass_fields__:
            v = getattr(self, key)
            if key == "regions_low" and v is not None:
                v = {"shape": list(v.shape),
                     "packed": base64.b64encode(np.packbits(v).tobytes()).decode("ascii")}
            elif isinstance(v, np.ndarray):
                raw = np.ascontiguousarray(v, "<f4").tobytes()
                v = {"shape": list(v.shape), "float32": base64.b64encode(raw).decode("ascii")}
            elif isinstance(v, tuple):
                v = [int(x) for x in v]
            elif isinstance(v, (np.floating, np.integer, np.bool_)):
                v = v.item()
            out[key] = v
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FieldCalibration:
        """Read back :meth:`to_dict`.

        Parameters
        ----------
        data : mapping of str to Any
            What :meth:`to_dict` returned (unknown keys are ignored).

        Returns
        -------
        FieldCalibration
            The calibration, grids as float32 arrays and ``regions_low`` as a bool array.
        """
        import base64

        kw = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for key in cls._ARRAYS:
            if kw.get(key) is not None:
                raw = base64.b64decode(kw[key]["float32"])
                kw[key] = np.frombuffer(raw, "<f4").astype(np.float32).reshape(
                    tuple(kw[key]["shape"]))
        kw["start_yx"] = tuple(int(v) for v in kw["start_yx"])
        if kw.get("regions_low") is not None:
            shape = tuple(kw["regions_low"]["shape"])
            bits = np.frombuffer(base64.b64decode(kw["regions_low"]["packed"]), np.uint8)
            kw["regions_low"] = np.unpackbits(bits)[:int(np.prod(shape))].reshape(shape) > 0
        return cls(**kw)

    def regions_at(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Return the detection cells (``regions_low``) at cell positions ``ys`` × ``xs``.

        Outside the calibration's box nothing is a region.

        Parameters
        ----------
        ys, xs : ndarray
            Row and column positions in cells (rounded to the nearest cell).

        Returns
        -------
        ndarray of bool
            ``(len(ys), len(xs))`` mask.
        """
        m = self.regions_low
        iy, ix = np.rint(ys).astype(np.intp), np.rint(xs).astype(np.intp)
        ok = (iy >= 0) & (iy < m.shape[0]), (ix >= 0) & (ix < m.shape[1])
        out = m[np.ix_(np.clip(iy, 0, m.shape[0] - 1), np.clip(ix, 0, m.shape[1] - 1))]
        return out & np.outer(*ok)

    def cells(self, origin_yx: tuple[int, int], n_yx: tuple[int, int], f: int
              ) -> tuple[np.ndarray, np.ndarray]:
        """Return where the blocks of an image lie on the calibration's grid, in cells.

        The image's ``n_yx`` blocks of ``f`` pixels, its pixel (0, 0) at full-resolution
        ``origin_yx``; whole numbers when its blocks are the calibration's cells.

        Parameters
        ----------
        origin_yx : (int, int)
            Full-resolution (row, col) of the image's pixel (0, 0).
        n_yx : (int, int)
            Number of the image's blocks along Y and X.
        f : int
            The image's block side in full-resolution px.

        Returns
        -------
        ys, xs : ndarray
            Positions of the blocks' centres in cells (float64).
        """
        c = self.cell_px
        return tuple(((o - s0) + np.arange(n, dtype=np.float64) * f + (f - c) / 2) / c
                     for o, s0, n in zip(origin_yx, self.start_yx, n_yx))

    def background(self, back: np.ndarray, k: int, level: np.ndarray | None,
                   ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """Background plus the noise tiles' median residual, on blocks at ``ys`` × ``xs``.

        Parameters
        ----------
        back : ndarray
            A background grid (``gfp_back``, ``ref_back`` or ``dapi_back``).
        k : int
            Its block side in cells.
        level : ndarray, optional
            Median residual per noise tile (``gfp_level``, ``ref_level``); None adds nothing.
        ys, xs : ndarray
            Block positions in cells (:meth:`cells`).

        Returns
        -------
        ndarray
            ``(len(ys), len(xs))`` background per block.
        """
        bg = sample_block_grid(back, k, ys, xs)
        if level is not None:
            bg = bg + sample_block_grid(level, self.noise_tile, ys, xs)
        return bg

    def noise_at(self, origin_yx: tuple[int, int], shape: tuple[int, int]) -> NoiseMap:
        """Return the local GFP noise read at full resolution by an image at ``origin_yx``.

        Parameters
        ----------
        origin_yx : (int, int)
            Full-resolution (row, col) of the image's pixel (0, 0).
        shape : (int, int)
            The image's full-resolution (Y, X) shape.

        Returns
        -------
        NoiseMap
            The GFP residual level and noise σ, read from the calibration's noise tiles.
        """
        # positions in full-resolution pixels from the grid's start, a noise tile being
        # noise_tile cells of cell_px pixels
        off = tuple(float(o - s0) for o, s0 in zip(origin_yx, self.start_yx))
        b = self.noise_tile * self.cell_px
        return NoiseMap(SmoothBackground(self.gfp_level, b, shape, off),
                        SmoothBackground(self.gfp_sigma, b, shape, off))


def measure_field(gfp_low: np.ndarray, ref_low: np.ndarray | None, union_low: np.ndarray,
                  tissue_low: np.ndarray | None, p: GfpCellParams, f: int, px: float, *,
                  start_yx: tuple[int, int] = (0, 0), step: int = 1) -> FieldCalibration:
    """Measure the image-wide statistics of the engine on block-averaged channels.

    Parameters
    ----------
    gfp_low, ref_low : ndarray
        Block-averaged GFP and reference channels (``ref_low`` may be None).
    union_low : ndarray of bool
        Blocks of the regions (the noise and the image-wide medians are read there).
    tissue_low : ndarray of bool or None
        Blocks that are not padding (the backgrounds are taken from them only).
    p : GfpCellParams
        Parameters.
    f : int
        Block size in pixels of the image measured.
    px : float
        Its pixel size (µm).
    start_yx : (int, int)
        Full-resolution pixel where its block (0, 0) starts.
    step : int
        Full-resolution pixels per pixel of the image measured.

    Returns
    -------
    FieldCalibration
        Without the DAPI statistics (see :func:`detect_fluorescent_cells`).
    """
    fpx = f * px
    bg_size = p.background_scale_um / fpx
    tile = round(p.noise_tile_um / fpx)

    def channel(low: np.ndarray) -> tuple[np.ndarray, int, NoiseMap]:
        # as local_background.background_and_noise, keeping the grids
        back, k = background_grid(low, bg_size, mask=tissue_low)
        bg = back if k == 1 else SmoothBackground(back, k, low.shape).full()
        return back, k, local_noise(ndi.gaussian_filter(low - bg, 0.7), union_low, tile)

    back, k, noise = channel(gfp_low)
    field = FieldCalibration(f * step, start_yx, noise.level.factor, back, k,
                             noise.level.values, noise.sigma.values, 0.0, False, step=step,
                             regions_low=union_low)
    if ref_low is not None:
        rb, _, rn = channel(ref_low)
        field.ref_back, field.ref_level = rb, rn.level.values
    ys, xs = (np.arange(n, dtype=np.float64) for n in gfp_low.shape)
    stats = union_low if union_low.any() else np.ones(gfp_low.shape, bool)
    sigma = sample_block_grid(field.gfp_sigma, field.noise_tile, ys, xs)
    field.noise_sigma_median = float(np.median(sigma[stats]))
    bg_in = field.background(back, k, field.gfp_level, ys, xs)[stats]
    bg_range = float(np.percentile(bg_in, 99) - np.percentile(bg_in, 1))
    field.flat_background = bool(bg_range < 3 * field.noise_sigma_median)
    return field


def align_to_field(img: Image, masks: Mapping[str, np.ndarray], field: FieldCalibration,
                   f: int) -> tuple[Image, dict[str, np.ndarray], tuple[int, int]]:
    """Cut a tile to start on the calibration's block grid.

    A tile whose blocks fall where the whole image's do gives the same block means, hence
    the same objects, as a whole run. The start moves forward by less than a block (into the
    tile's overlap).

    Parameters
    ----------
    img : Image
        A tile (its ``tile_origin_yx`` is read).
    masks : mapping of str to ndarray of bool
        The tile's region masks, at its full resolution.
    field : FieldCalibration
        The whole image's calibration; a tile is only cut when it was measured at full
        resolution (``step`` 1) on blocks of ``f`` px.
    f : int
        The tile's block side in px.

    Returns
    -------
    image, masks
        The cut tile (its ``tile_origin_yx`` moved) and its regions.
    shift : (int, int)
        Rows and columns cut off the start.
    """
    from ..calibration import tile_origin

    origin = tile_origin(img)
    if field.step != 1 or field.cell_px != f:
        return img, dict(masks), (0, 0)
    dy, dx = ((s0 - o) % f for o, s0 in zip(origin, field.start_yx))
    if not dy and not dx:
        return img, dict(masks), (0, 0)
    data = img.data[:, dy:, dx:] if img.axes.startswith("Z") else img.data[dy:, dx:]
    meta = {k: v for k, v in img.metadata.items() if k != "_padding"}
    meta["tile_origin_yx"] = (origin[0] + dy, origin[1] + dx)
    cut = Image(data, axes=img.axes, pixel_size_um=img.pixel_size_um,
                channel_names=img.channel_names, rgb=img.rgb, z_step_um=img.z_step_um,
                path=img.path, metadata=meta, modality=img.modality)
    return cut, {k: np.asarray(m, bool)[dy:, dx:] for k, m in masks.items()}, (dy, dx)


def calibrate_fluorescent_cells(img: Image, channels: Mapping[str, int], regions: Any,
                                p: GfpCellParams, *,
                                bounds: tuple[int, int, int, int] | None = None
                                ) -> dict[str, Any]:
    """Measure the engine's image-wide statistics over the whole image (or one section).

    What :func:`detect_fluorescent_cells` estimates from its whole input, for a tiled run to
    apply to every tile: the GFP and reference backgrounds and the local GFP noise (grids
    placed in full-resolution coordinates), the DAPI background and nucleus threshold, the
    median noise and the flat-background check (:class:`FieldCalibration`). The padding is
    found, and the regions taken less it, as a whole run does.

    The image (within ``bounds``) is read whole up to
    :data:`histoquant.calibration.CALIBRATION_BUDGET_PX` pixels, which gives exactly the
    whole run's statistics. Beyond, a lower-resolution view (``step`` > 1; a pyramid level no
    coarser than the block grid, else every ``step``-th pixel) gives close backgrounds
    (smooth over tens of µm) and an approximate noise σ (the view's pixels average more or
    less than a block).

    Parameters
    ----------
    img : Image
        Full-resolution image (a lazy array is read only inside the box).
    channels : mapping of str to int
        Channel index per role.
    regions : mapping of masks, RegionSource or None
        Where the assay measures (the noise and the medians are read there).
    p : GfpCellParams
        Parameters.
    bounds : tuple, optional
        (r0, r1, c0, c1): one section of a slide.

    Returns
    -------
    dict
        Plain JSON data: :meth:`FieldCalibration.to_dict`, ``assay``, ``step`` and
        ``pyramid_level_downsample``.
    """
    from ..calibration import region_view

    h, w = img.shape_yx
    # the whole box (or section): the backgrounds fill padding from the nearest tissue
    # and the noise tiles start at its corner, as in a whole run
    view = region_view(img, regions, bounds=bounds, margin_px=max(h, w),
                       max_level_downsample=block_factor(p, img.require_pixel_size()))
    vimg = view.image
    _, pad, union = without_padding(vimg, view.masks)
    f = block_factor(p, vimg.require_pixel_size())
    gfp_low = block_mean(channel_plane(vimg, channels["gfp"]), f)
    check_channel(gfp_low, img, "GFP")
    ref_low = None
    if "reference" in channels:
        ref_low = block_mean(channel_plane(vimg, channels["reference"]), f)
        check_channel(ref_low, img, "reference")
    union_low = block_any(union, f, min_fraction=0.5) if not union.all() \
        else np.ones(gfp_low.shape, bool)
    tissue_low = ~block_any(pad, f, min_fraction=0.5) if pad is not None else None
    start = tuple(int(v) for v in vimg.metadata["calibration_view"]["origin_yx"])
    field = measure_field(gfp_low, ref_low, union_low, tissue_low, p, f,
                          vimg.require_pixel_size(), start_yx=start, step=view.step)
    if "dapi" in channels:
        dapi = DapiReader(vimg, channels["dapi"], p, f, union_low)
        field.dapi_threshold = dapi.threshold
        field.dapi_back, field.dapi_back_k = dapi.grid
    return {"assay": "gfp-cells", "pyramid_level_downsample": view.level_downsample,
            **field.to_dict()}


def check_roles(img: Image, channels: dict[str, int], count_nuclei: bool) -> dict[str, int]:
    """Return ``channels`` after checking the engine can work with them.

    Parameters
    ----------
    img : Image
        The image (for the message).
    channels : dict of str to int
        Channel index per role (:func:`~histoquant.assays.base.resolve_channels`).
    count_nuclei : bool
        Whether nuclei are to be counted (needs ``dapi``).

    Returns
    -------
    dict of str to int
        ``channels`` unchanged.

    Raises
    ------
    ChannelError
        The reference channel is the GFP channel, or nuclei are to be counted without DAPI.
    """
    if "reference" in channels and channels["reference"] == channels["gfp"]:
        raise ChannelError(
            f"{img.source}: the reference channel is the GFP channel itself "
            f"({img.channel_names[channels['gfp']]}). The reference must be a channel where "
            "GFP does not emit (red/far red); with GFP as its own reference every object would "
            "be called autofluorescent. Give another channel, or none.")
    if count_nuclei and "dapi" not in channels:
        raise ChannelError(f"{img.source}: count_nuclei needs a DAPI channel; give it with "
                           "--channel dapi=NAME|INDEX or channels={'dapi': ...}")
    return channels


def untile(item: Any, shift: tuple[int, int], shape: tuple[int, int], px: float) -> Any:
    """Return a table, label image or mask of a cut tile (:func:`align_to_field`) uncut.

    Positions (``centroid_*_um``) are moved by ``shift``, arrays padded to ``shape``.

    Parameters
    ----------
    item : DataFrame, ndarray or None
        What the cut tile's detection returned.
    shift : (int, int)
        Rows and columns cut off the start (the third value of :func:`align_to_field`).
    shape : (int, int)
        The uncut tile's (Y, X) shape.
    px : float
        Pixel size in µm.

    Returns
    -------
    DataFrame, ndarray or None
        A shifted copy of a table; an array zero-padded at the top and left; ``item`` itself
        when ``shift`` is (0, 0) or it is None.
    """
    if not any(shift) or item is None:
        return item
    if isinstance(item, pd.DataFrame):
        item = item.copy()
        for col, d in (("centroid_y_um", shift[0]), ("centroid_x_um", shift[1])):
            if col in item.columns:
                item[col] = item[col] + d * px
        return item
    out = np.zeros(shape, item.dtype)
    out[shift[0]:, shift[1]:] = item
    return out


def cellpose_options(params: GfpCellParams | Mapping[str, Any] | None = None
                     ) -> CellposeOptions:
    """Return the :class:`CellposeOptions` the cellpose engine runs with.

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
    from ..assays.base import resolve_params
    from ..assays.gfp_cells import GfpCellParams

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

    Parameters
    ----------
    params : GfpCellParams, mapping or None
        The run's parameters, as :func:`~histoquant.assays.base.resolve_params` takes them.

    Raises
    ------
    DependencyError
        cellpose or PyTorch not installed, or the weights file missing (the message says
        what to install or where to put the file).
    ParamsError
        ``params`` cannot be read (:func:`~histoquant.assays.base.resolve_params`).
    """
    from ..assays.base import resolve_params
    from ..assays.gfp_cells import GfpCellParams

    p = resolve_params(GfpCellParams, params)
    if p.engine == "cellpose":
        require_cellpose(p.cellpose_model)


def detect_fluorescent_cells(
    img: Image,
    channels: Mapping[str, int],
    union: np.ndarray,
    padding: np.ndarray | None,
    p: GfpCellParams,
    *,
    cellpose: CellposeOptions | None = None,
    report: Report | None = None,
    field: FieldCalibration | None = None,
    foreground: np.ndarray | None = None,
) -> FluorescentCellDetection:
    """Find, measure and class every fluorescent object inside ``union``.

    Parameters
    ----------
    img : Image
        The image, with its pixel size.
    channels : mapping of str to int
        Channel index per role: ``gfp`` (required), ``reference`` and ``dapi`` (optional).
    union : ndarray of bool
        Pixels of all regions together (less padding): objects are detected here.
    padding : ndarray of bool or None
        Padding (never tissue; left out of the background and every statistic), or None.
    p : GfpCellParams
        Parameters (sizes in µm, thresholds in local σ).
    cellpose : CellposeOptions, optional
        Options of the cellpose engine; required when ``p.engine == "cellpose"``.
    report : callable, optional
        ``report(fraction, message)`` progress, fractions 0.05–0.85.
    field : FieldCalibration, optional
        Image-wide statistics of the whole image this is a tile of (its pixel (0, 0) at
        ``img.metadata["tile_origin_yx"]``, on the field's block grid: :func:`align_to_field`).
        None: measured on ``img`` (:func:`measure_field`), the DAPI statistics on first use.
    foreground : ndarray of bool, optional
        Full-resolution candidate foreground from elsewhere (a pixel classifier's GFP+
        class, :func:`histoquant.learn.foreground.model_foreground`): replaces the
        detection (step 2). Its pieces inside ``union`` are the candidates, touching cells
        cut apart as the classical engine does (``split_touching``); each is measured and
        classed by the same code as a classical or cellpose object.

    Returns
    -------
    FluorescentCellDetection

    Raises
    ------
    EmptyImageError
        A channel holds NaN/infinite pixels or is blank (not checked on a tile of a
        calibrated image beyond NaN: a tile may hold only blank slide).
    ChannelError
        The reference channel has the same pixels as the GFP channel.
    """
    from ..calibration import tile_origin

    def progress(frac: float, msg: str) -> None:
        if report is not None:
            report(frac, msg)

    def check(low: np.ndarray, role: str) -> None:
        if field is None:
            check_channel(low, img, role)
        elif not np.isfinite(low).all():
            check_channel(low, img, role)

    px = img.require_pixel_size()
    shape = img.shape_yx
    has_ref, has_dapi = "reference" in channels, "dapi" in channels
    progress(0.05, "block averaging")
    f = block_factor(p, px)
    fpx = f * px
    gfp_plane = channel_plane(img, channels["gfp"])
    gfp_low = block_mean(gfp_plane, f)
    check(gfp_low, "GFP")
    ref_plane = channel_plane(img, channels["reference"]) if has_ref else None
    ref_low = block_mean(ref_plane, f) if has_ref else None
    if has_ref:
        check(ref_low, "reference")
        if field is None and np.array_equal(ref_low, gfp_low):
            raise ChannelError(
                f"{img.source}: the reference channel "
                f"({img.channel_names[channels['reference']]}) has the same pixels as the GFP "
                f"channel ({img.channel_names[channels['gfp']]}) — probably one channel "
                "exported twice. Every object would be called autofluorescent (ratio 1). Give "
                "the real reference channel, or none.")
    # a block counts as in the union / in the padding when at least half its pixels are
    union_low = block_any(union, f, min_fraction=0.5) if not union.all() \
        else np.ones(gfp_low.shape, bool)

    progress(0.15, "background and noise")
    origin = (0, 0)
    if field is None:
        # blocks that are tissue (not padding): the background is estimated over them only,
        # the padding filled with the nearest tissue value first
        tissue_low = ~block_any(padding, f, min_fraction=0.5) if padding is not None else None
        field = measure_field(gfp_low, ref_low, union_low, tissue_low, p, f, px)
        calibrated = False
    else:
        origin = tile_origin(img)
        calibrated = True
    ys, xs = field.cells(origin, gfp_low.shape, f)
    if calibrated and field.regions_low is not None:
        # the whole image's regions: a tile's own end at its core, and would cut an object
        # across the seam in two (the tiler keeps each object in the tile of its centre)
        union_low = field.regions_at(ys, xs)
    bg_g = field.background(field.gfp_back, field.gfp_back_k, field.gfp_level, ys, xs)
    sigma_low = sample_block_grid(field.gfp_sigma, field.noise_tile, ys, xs)
    z = ndi.gaussian_filter(gfp_low - bg_g, 0.7) / sigma_low
    bg_gfp = SmoothBackground(bg_g, f, shape)
    bg_ref = SmoothBackground(field.background(field.ref_back, field.gfp_back_k,
                                               field.ref_level, ys, xs),
                              f, shape) if has_ref else None

    dapi = None
    if has_dapi:
        if calibrated and field.dapi_back is not None:
            dapi = DapiReader(img, channels["dapi"], p, f, union_low,
                              background=sample_block_grid(field.dapi_back, field.dapi_back_k,
                                                           ys, xs),
                              threshold=field.dapi_threshold)
        else:
            dapi = DapiReader(img, channels["dapi"], p, f, union_low)
    ctx = CandidateMeasurer(img, p, px, f, shape, gfp_plane, ref_plane, bg_gfp, bg_ref,
                            field.noise_at(origin, shape), dapi, z_low=z,
                            zo_low=_soma_opening(z, soma_radius_px(p, fpx)),
                            tissue=~padding if padding is not None else None)
    if foreground is not None:
        rows, labels = _foreground_objects(ctx, foreground, union, progress)
    elif p.engine == "cellpose":
        rows, labels = _cellpose_objects(ctx, gfp_plane, union, cellpose, progress)
    else:
        rows, labels = _classical_objects(ctx, z, union_low, gfp_low, ref_low, bg_g, progress)
    return FluorescentCellDetection(rows, labels, ctx, f, gfp_low, ref_low, field)


_DIM_BODY_RETENTION = 0.6
"""Share of its component's peak significance a dim cell body must keep through the
soma-scale opening when it does not reach detection_sigma there. At 0.6 the GFP phantom's dim
cells (0.3-0.6 x the tissue autofluorescence, 4-6 σ) keep their bodies (at 0.7, 2 of 40 are
lost) [phantom]. It does not separate clumps of white-matter axon profiles on ChAT sections
(214_L1_ChAT counted 153 at 0.6, 134 at 0.7, 95 with detection_sigma alone [real]): the ring
contrast and the maxima count do (see min_ring_contrast)."""


def _soma_opening(arr: np.ndarray, radius_px: int) -> np.ndarray:
    """Grey opening of ``arr`` with a disk of ``radius_px``.

    What is narrower than the disk (fibres, puncta, neuropil) is taken down to its
    surroundings; wider blobs keep their level and outline.
    """
    from skimage.morphology import disk, opening

    if radius_px <= 3:
        return ndi.grey_opening(arr, footprint=disk(radius_px))
    # a large disk as a sequence of small footprints: ~ exact and several times faster
    return opening(arr, footprint=disk(radius_px, decomposition="sequence"))


def _classical_objects(ctx: CandidateMeasurer, z: np.ndarray, union_low: np.ndarray,
                       gfp_low: np.ndarray, ref_low: np.ndarray | None, bg_g: np.ndarray,
                       report: Report) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Run the classical engine.

    Hysteresis detection on the blocks (``z`` in local σ), then full-resolution refinement,
    splitting and measurement of each candidate.

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
        # has judged, left out of every candidate's neighbourhood ring
        # (see CandidateMeasurer._surround)
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


def _cellpose_objects(ctx: CandidateMeasurer, gfp_plane: np.ndarray, union: np.ndarray,
                      options: CellposeOptions, report: Report,
                      ) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Run the cellpose engine.

    Cellpose-SAM masks on the GFP channel, each measured and classed by the classical
    engine's own code (:meth:`CandidateMeasurer.measure_mask`).

    Only the GFP channel goes to the network: the objects to find are green, and the DAPI
    and reference channels are read afterwards, per object, by the shared criteria (a DAPI
    channel given to the network would add every GFP-negative nucleus as a mask). A mask
    whose centroid lies outside every region is left out, as the classical engine detects
    only inside them.
    """
    px = ctx.px
    report(0.3, "cellpose")
    masks_cp = segment_cellpose(gfp_plane, px, options,
                                progress=lambda fr, msg: report(0.3 + 0.4 * fr, msg))
    return _measure_masks(ctx, masks_cp, union, report)


def _foreground_objects(ctx: CandidateMeasurer, foreground: np.ndarray, union: np.ndarray,
                        report: Report) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Candidates from a given foreground mask (a pixel classifier's GFP+ class).

    Its pieces, touching cells cut where the distance transform has a neck an eighth of
    the smallest cell deep (the classical engine's rule), each measured and classed by
    :meth:`CandidateMeasurer.measure_mask`.
    """
    p, px = ctx.p, ctx.px
    fg = np.asarray(foreground, bool)
    if ctx.tissue is not None:
        fg = fg & ctx.tissue
    report(0.3, "pixel classifier foreground")
    if p.split_touching:
        masks = _split_touching(fg, 0.125 * p.min_cell_diameter_um / px)
    else:
        masks = ndi.label(fg)[0]
    # specks under the listing floor are never rows: drop them before the per-object work
    sizes = np.bincount(masks.ravel())
    small = sizes * px ** 2 < p.min_object_area_um2
    small[0] = False
    if small.any():
        masks[small[masks]] = 0
    return _measure_masks(ctx, masks, union, report)


def _measure_masks(ctx: CandidateMeasurer, masks_cp: np.ndarray, union: np.ndarray,
                   report: Report) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Measure and class each object of a full-resolution label image inside ``union``."""
    slices = ndi.find_objects(masks_cp)
    n = len(slices)
    report(0.7, f"measuring {n} object mask(s)")
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


def _plain_ratio(comp: np.ndarray, i: int, sl: tuple[slice, slice], gfp_low: np.ndarray,
                 bg_g: np.ndarray, ref_low: np.ndarray, bg_r: np.ndarray) -> float:
    """Reference/GFP signal ratio of a candidate on the blocks (cheap pre-screen)."""
    m = comp[sl] == i
    g = float((gfp_low[sl][m] - bg_g[sl][m]).mean())
    r = float((ref_low[sl][m] - bg_r[sl][m]).mean())
    return r / g if g > 0 else np.inf
