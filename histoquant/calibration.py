"""Image-wide statistics for tiled runs: the view of a region an assay calibrates on.

A tiled run (:func:`histoquant.tiling.run_tiled`) must give the result of a whole run, so the
statistics an assay estimates over its input — background level and field, noise, automatic
thresholds, stain colour, the white level — are measured once over the whole region (an
assay's ``SPEC.calibrate``) and applied to every tile (``run(tile, calibration=...)``).
This module gives the pixels they are measured on, within a memory budget:

- the bounding box of the regions (grown by a margin) is read whole when it holds at most
  :data:`CALIBRATION_BUDGET_PX` pixels;
- otherwise a lower-resolution view of it is read: a pyramid level of the file when one
  divides the step and is no coarser than the assay allows (a level averages the noise
  down), taken every ``step / level`` pixels, else every ``step``-th pixel of level 0
  (strided reads, which keep each pixel's noise; a lazy zarr array then reads its chunks
  once each).

Block grids (backgrounds that vary over the image) are stored with where their working pixels
lie in full-resolution coordinates (:func:`grid_record`), so a tile reads its window of the
field (:func:`grid_positions`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .io.image import Image

__all__ = ["CALIBRATION_BUDGET_PX", "RegionView", "region_view", "grid_record",
           "grid_positions", "tile_origin"]

#: Most pixels a calibration reads at full resolution (64 MP: an 8-bit RGB region of
#: 192 MiB); a larger region is calibrated on a lower-resolution view.
CALIBRATION_BUDGET_PX = 64_000_000


@dataclass
class RegionView:
    """The pixels and regions a calibration is measured on.

    Attributes
    ----------
    image : Image
        The view: the regions' bounding box, at ``step`` full-resolution pixels per pixel
        (its pixel size is the image's × ``step``).
    masks : dict of str to ndarray
        The regions on the view's grid.
    origin_yx : tuple of float
        Full-resolution position (row, col) of the centre of the view's pixel (0, 0); view
        pixel ``(j, i)`` is centred on ``origin + (j, i) × step``.
    step : int
        Full-resolution pixels per view pixel (1: the region read whole).
    level_downsample : int
        Downsampling of the pyramid level read (1: level 0, whole or strided).
    """

    image: Image
    masks: dict[str, np.ndarray]
    origin_yx: tuple[float, float]
    step: int
    level_downsample: int = 1


def tile_origin(image: Image) -> tuple[int, int]:
    """Full-resolution (row, col) of ``image``'s pixel (0, 0): a tile's origin, else (0, 0).

    Parameters
    ----------
    image : Image
        An image, or a tile of one (``metadata["tile_origin_yx"]``).

    Returns
    -------
    (int, int)
        Row and column in full-resolution px.
    """
    r, c = image.metadata.get("tile_origin_yx", (0, 0))
    return int(r), int(c)


def _source_bounds(regions: Any, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    from .tiling import MaskSource, PolygonSource, WholeImage, _Restricted

    h, w = shape
    if isinstance(regions, _Restricted):
        return regions.section.bounds()
    if isinstance(regions, MaskSource):
        return regions.bounds()
    if isinstance(regions, PolygonSource):
        pts = [p.exterior for polys in regions.polygons.values() for p in polys]
        if not pts:
            return (0, 0, 0, 0)
        allp = np.concatenate([np.asarray(p, float) for p in pts])
        return (int(np.floor(allp[:, 0].min())), int(np.ceil(allp[:, 0].max())) + 1,
                int(np.floor(allp[:, 1].min())), int(np.ceil(allp[:, 1].max())) + 1)
    if isinstance(regions, WholeImage):
        return (0, h, 0, w)
    return (0, h, 0, w)


def _mask_bounds(masks: Mapping[str, np.ndarray]) -> tuple[int, int, int, int]:
    any_r = any_c = None
    for m in masks.values():
        m = np.asarray(m, bool)
        r, c = m.any(axis=1), m.any(axis=0)
        any_r = r if any_r is None else any_r | r
        any_c = c if any_c is None else any_c | c
    if any_r is None or not any_r.any():
        return (0, 0, 0, 0)
    rr, cc = np.nonzero(any_r)[0], np.nonzero(any_c)[0]
    return int(rr[0]), int(rr[-1]) + 1, int(cc[0]), int(cc[-1]) + 1


def region_view(image: Image, regions: Mapping[str, np.ndarray] | Any, *,
                bounds: tuple[int, int, int, int] | None = None, margin_px: int = 0,
                budget_px: int | None = None, max_level_downsample: int = 1 << 30
                ) -> RegionView:
    """Read the regions' bounding box (grown by ``margin_px``), whole or at lower resolution.

    Parameters
    ----------
    image : Image
        Full-resolution image (lazy arrays are read only inside the box).
    regions : mapping or RegionSource
        Full-size masks ``{name: bool array}``, or a :class:`histoquant.tiling.RegionSource`
        (cut out window by window); ``None`` is the whole image as region ``image``.
    bounds : tuple, optional
        (r0, r1, c0, c1): only this part of the image (one section of a slide).
    margin_px : int
        Context read around the regions (for backgrounds measured beside them).
    budget_px : int, optional
        Most pixels read at full resolution (default :data:`CALIBRATION_BUDGET_PX`, read at
        call time); a larger box is read every ``step`` pixels,
        ``step = ceil(sqrt(box / budget))``, from a pyramid level where one fits.
    max_level_downsample : int
        Largest pyramid downsampling to read from. A level's pixel is the mean of ``d × d``
        pixels, whose noise is ``d`` times smaller: an assay whose statistics are those of
        single pixels (a noise SD, a threshold on pixel values) gives 1 (strided reads of
        level 0 keep each pixel's noise), one that works on block means of ``f`` pixels
        gives ``f``.

    Returns
    -------
    RegionView
    """
    from .tiling import RegionSource, Window

    h, w = image.shape_yx
    if regions is None:
        from .tiling import WholeImage

        regions = WholeImage()
    if isinstance(regions, RegionSource):
        box = _source_bounds(regions, (h, w))
    else:
        regions = {k: np.asarray(v, bool) for k, v in regions.items()}
        box = _mask_bounds(regions)
    if bounds is not None:
        box = (max(box[0], bounds[0]), min(box[1], bounds[1]),
               max(box[2], bounds[2]), min(box[3], bounds[3]))
    r0, r1 = max(0, box[0] - margin_px), min(h, box[1] + margin_px)
    c0, c1 = max(0, box[2] - margin_px), min(w, box[3] + margin_px)
    if r1 <= r0 or c1 <= c0:
        r0, r1, c0, c1 = 0, h, 0, w
    n = (r1 - r0) * (c1 - c0)
    budget_px = CALIBRATION_BUDGET_PX if budget_px is None else int(budget_px)
    step = 1 if n <= budget_px else math.ceil(math.sqrt(n / budget_px))
    level, d = None, 1
    if step > 1:
        from .anatomy.working import _pyramid_level

        found = _pyramid_level(image, step)
        if found is not None and step % found[2] == 0 and found[2] <= max_level_downsample:
            level, _, d = found
    # A pyramid pixel covers d × d pixels from a multiple of d: the view starts on one.
    r0, c0 = r0 // d * d, c0 // d * d
    zy = image.axes.startswith("Z")
    src = level if level is not None else image.data
    k = step // d
    sl = (slice(r0 // d, -(-r1 // d), k), slice(c0 // d, -(-c1 // d), k))
    data = np.asarray(src[(slice(None), *sl)] if zy else src[sl])
    hv, wv = data.shape[1:3] if zy else data.shape[:2]
    centre = (d - 1) / 2
    ys = r0 + np.arange(hv) * step + int(centre)
    xs = c0 + np.arange(wv) * step + int(centre)
    ys, xs = np.minimum(ys, h - 1), np.minimum(xs, w - 1)
    if isinstance(regions, RegionSource):
        masks = {name: np.zeros((hv, wv), bool) for name in regions.names}
        chunk = max(1, (1 << 24) // max(1, (xs[-1] - xs[0] + 1) * step))
        for j0 in range(0, hv, chunk):
            j1 = min(hv, j0 + chunk)
            a, b = int(ys[j0]), int(ys[j1 - 1]) + 1
            win = Window(a, b, int(xs[0]), int(xs[-1]) + 1, a, b, int(xs[0]), int(xs[-1]) + 1)
            for name, m in regions.window(win).items():
                masks[name][j0:j1] = m[np.ix_(ys[j0:j1] - a, xs - xs[0])]
    else:
        masks = {name: m[np.ix_(ys, xs)] for name, m in regions.items()}
    kind = image.modality  # the whole image's (detection records its evidence first)
    meta = {key: v for key, v in image.metadata.items() if key not in ("multiscales",
                                                                      "_padding")}
    meta.update(name=image.name, calibration_view={"origin_yx": [r0, c0], "step": step,
                                                   "pyramid_level_downsample": d})
    view = Image(data, axes=image.axes, pixel_size_um=image.require_pixel_size() * step,
                 channel_names=image.channel_names, rgb=image.rgb, z_step_um=image.z_step_um,
                 path=image.path, metadata=meta, modality=kind)
    return RegionView(view, masks, (r0 + centre, c0 + centre), step, d)


def grid_record(values: np.ndarray, block_px: int, cell_px: float,
                origin_yx: tuple[float, float], **more: Any) -> dict[str, Any]:
    """Return a block grid as plain data, placed in full-resolution coordinates.

    ``values[i, j]`` is the value of block ``(i, j)`` of ``block_px`` working pixels; working
    pixel ``u`` is centred on full-resolution ``origin + u × cell_px`` (``cell_px``:
    full-resolution pixels per working pixel of the calibration).

    Parameters
    ----------
    values : ndarray
        (ny, nx) block values.
    block_px : int
        Block side in working px.
    cell_px : float
        Full-resolution px per working px.
    origin_yx : (float, float)
        Full-resolution (row, col) on which working pixel (0, 0) is centred.
    **more : Any
        Further keys stored as given.

    Returns
    -------
    dict
        ``values`` (nested float lists), ``block_px``, ``cell_px``, ``origin_yx`` and ``more``,
        ready for JSON.
    """
    return {"values": np.asarray(values, np.float32).tolist(), "block_px": int(block_px),
            "cell_px": float(cell_px), "origin_yx": [float(origin_yx[0]), float(origin_yx[1])],
            **more}


def grid_positions(record: Mapping[str, Any], start_yx: tuple[float, float], n_yx: tuple[int, int],
                   factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Where a tile's working pixels lie on a calibration grid, in its working-pixel units.

    ``start_yx`` is the full-resolution (row, col) of the first full-resolution pixel of the
    tile's working pixel (0, 0), ``n_yx`` the tile's working shape and ``factor`` its
    full-resolution pixels per working pixel. Feed the result to
    :func:`histoquant.segment.background.sample_block_grid`. A tile measured where the
    calibration was (same start and factor) gets ``arange`` exactly.

    Parameters
    ----------
    record : mapping
        A grid from :func:`grid_record` (its ``cell_px`` and ``origin_yx`` are read).
    start_yx : (float, float)
        Full-resolution (row, col) where the tile's working pixel (0, 0) starts.
    n_yx : (int, int)
        The tile's working shape.
    factor : int
        Full-resolution px per working px of the tile.

    Returns
    -------
    ys, xs : ndarray
        Row and column positions (float64, in the grid's working px) of the tile's working
        pixel centres.
    """
    cell = float(record["cell_px"])
    out = []
    for start, n, origin in zip(start_yx, n_yx, record["origin_yx"]):
        centres = start + np.arange(n, dtype=np.float64) * factor + (factor - 1) / 2
        out.append((centres - float(origin)) / cell)
    return out[0], out[1]
