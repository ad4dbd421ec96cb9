"""Run an instance segmenter tile by tile on a large image and stitch the label images.

A whole spinal cord section at 0.5 µm/px is tens of megapixels; a deep-learning segmenter
holds several float copies of its input (flows, probabilities, pixel tracks), so it runs on
overlapping tiles instead. Each tile *owns* the part of the image closer to its own centre than
to its neighbours' (the seams run through the middle of the overlaps). An object is kept only
by the tile that owns its centroid, so an object on a seam is counted once; when the overlap is
wider than the largest object, the owning tile saw the whole object, so its outline is not cut.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

__all__ = ["Tile", "tile_grid", "segment_in_tiles"]

SegmentFn = Callable[[np.ndarray], np.ndarray]
"""``segment(tile_pixels) -> labels`` with labels the tile's (Y, X) shape, 0 = background."""


@dataclass(frozen=True)
class Tile:
    """One tile: the pixels it reads and the pixels it owns, as (start, stop) per axis."""

    read_y: tuple[int, int]
    read_x: tuple[int, int]
    own_y: tuple[float, float]
    own_x: tuple[float, float]

    @property
    def read_slice(self) -> tuple[slice, slice]:
        """The (Y, X) slices to read from the whole image."""
        return slice(*self.read_y), slice(*self.read_x)


_Span = tuple[tuple[int, int], tuple[float, float]]


def _axis_tiles(n: int, size: int, overlap: int) -> list[_Span]:
    if n <= size:
        return [((0, n), (0.0, float(n)))]
    step = size - overlap
    starts = list(range(0, n - size, step))
    starts.append(n - size)  # the last tile ends on the image edge; it may overlap more
    out = []
    for i, s in enumerate(starts):
        lo = 0.0 if i == 0 else (s + starts[i - 1] + size) / 2.0
        hi = float(n) if i == len(starts) - 1 else (starts[i + 1] + s + size) / 2.0
        out.append(((s, s + size), (lo, hi)))
    return out


def tile_grid(shape_yx: Sequence[int], tile_size_px: int, overlap_px: int) -> list[Tile]:
    """Overlapping tiles covering an image, with the part each one owns.

    Parameters
    ----------
    shape_yx : (int, int)
        Image height and width in pixels.
    tile_size_px : int
        Edge of a square tile in pixels; an image no larger than this is one tile.
    overlap_px : int
        How many pixels neighbouring tiles share, at least. Must be below half the tile size.

    Returns
    -------
    list of Tile
        In raster order. The owned boxes partition the image exactly.
    """
    tile_size_px, overlap_px = int(tile_size_px), int(overlap_px)
    if tile_size_px < 1 or overlap_px < 0 or 2 * overlap_px >= tile_size_px:
        raise ValueError(
            f"tile size {tile_size_px} px and overlap {overlap_px} px: the overlap must be "
            "non-negative and less than half the tile size"
        )
    ys = _axis_tiles(int(shape_yx[0]), tile_size_px, overlap_px)
    xs = _axis_tiles(int(shape_yx[1]), tile_size_px, overlap_px)
    return [Tile(ry, rx, oy, ox) for ry, oy in ys for rx, ox in xs]


def segment_in_tiles(
    image: Any,
    segment: SegmentFn,
    tile_size_px: int,
    overlap_px: int,
    *,
    progress: Callable[[float, str], None] | None = None,
) -> np.ndarray:
    """Segment ``image`` tile by tile and stitch one label image with each object once.

    Parameters
    ----------
    image : array_like
        (Y, X) or (Y, X, C) pixels; any array that NumPy-style slicing reads (NumPy, zarr, dask),
        so a large file is read one tile at a time.
    segment : callable
        ``segment(tile) -> labels``: the tile's pixels (a NumPy array) in, an integer label image
        of the tile's (Y, X) shape out.
    tile_size_px, overlap_px : int
        See :func:`tile_grid`. The overlap should exceed the largest object's diameter.
    progress : callable, optional
        ``progress(fraction_done, message)`` after each tile.

    Returns
    -------
    ndarray of int32
        Labels 1..N (0 = background), numbered in the order the tiles found them.

    Warns
    -----
    UserWarning
        When kept objects touch an inner tile edge: they were cut by the tile and the overlap
        is too small for them.
    """
    shape = tuple(int(s) for s in image.shape[:2])
    tiles = tile_grid(shape, tile_size_px, overlap_px)
    out = np.zeros(shape, np.int32)
    next_label = 1
    n_cut = 0
    for k, tile in enumerate(tiles):
        pixels = np.asarray(image[tile.read_slice])
        labels = np.asarray(segment(pixels))
        if labels.shape != pixels.shape[:2]:
            raise ValueError(
                f"the segmenter returned labels of shape {labels.shape} for a tile of shape "
                f"{pixels.shape[:2]}"
            )
        y0, x0 = tile.read_y[0], tile.read_x[0]
        inner = (tile.read_y[0] > 0, tile.read_y[1] < shape[0],
                 tile.read_x[0] > 0, tile.read_x[1] < shape[1])
        boxes = ndi.find_objects(labels.astype(np.int64, copy=False))
        for lab, box in enumerate(boxes, start=1):
            if box is None:
                continue
            obj = labels[box] == lab
            rr, cc = np.nonzero(obj)
            # centroid in whole-image coordinates (pixel centres on integers)
            cy = rr.mean() + box[0].start + y0
            cx = cc.mean() + box[1].start + x0
            if not (tile.own_y[0] <= cy + 0.5 < tile.own_y[1]
                    and tile.own_x[0] <= cx + 0.5 < tile.own_x[1]):
                continue
            gy = rr + box[0].start + y0
            gx = cc + box[1].start + x0
            taken = out[gy, gx] != 0
            # the neighbour that owned this object's twin already placed it
            if taken.mean() > 0.5:
                continue
            free = ~taken
            out[gy[free], gx[free]] = next_label
            next_label += 1
            n_cut += bool(
                (inner[0] and box[0].start == 0)
                or (inner[1] and box[0].stop == labels.shape[0])
                or (inner[2] and box[1].start == 0)
                or (inner[3] and box[1].stop == labels.shape[1])
            )
        if progress is not None:
            progress((k + 1) / len(tiles), f"tile {k + 1}/{len(tiles)}")
    if n_cut:
        warnings.warn(
            f"{n_cut} object(s) touch an inner tile edge, so the tile cut them: make the tile "
            "overlap larger than the largest object's diameter",
            UserWarning,
            stacklevel=2,
        )
    return out
