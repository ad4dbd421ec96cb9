"""Background on a grid of blocks: one value per block, smoothed, read back bilinearly.

Used by the Nissl optical-density flattening here (:func:`flatten_background`) and by the
fluorescent-soma local background and noise
(:func:`histoquant.segment.fluorescent_somata.local_background_noise`): both measure one
statistic per block, smooth the grid with :func:`smooth_block_grid` and read it back between
block centres with :func:`read_block_grid` (which also reads
:class:`histoquant.segment.local_background.SmoothBackground`). The other background
estimators answer other questions: :mod:`.coarse_background`, sigma-clipped tiles for a
leak's surround; :mod:`.local_background`, a grey opening that removes cells and nuclei; the
level and noise statistics themselves are in :mod:`histoquant.segment.statistics`.

Background flattening removes slow variations of staining and illumination.

Uneven illumination multiplies the light, so in optical density it adds a slow offset; uneven
staining of the neuropil does the same. Both are estimated as the neuropil level — the densest
part of the density distribution in blocks of about half the background scale — made smooth,
and subtracted. Working on a grid of blocks keeps the cost at one pass over the image.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["background_level", "flatten_background", "smooth_block_grid", "read_block_grid",
           "sample_block_grid", "subtract_block_grid"]


def _shorth_centre(blocks: np.ndarray, fraction: float) -> np.ndarray:
    """Centre of the shortest interval holding ``fraction`` of each row's values.

    The densest part of the distribution: in a Nissl section the neuropil, which is the most
    common and the most uniform tissue, whether the rest is darker somata or paler vessel
    lumina and myelinated fibres. Computed from 5-percentile steps.
    """
    qs = np.percentile(blocks, np.arange(0, 101, 5), axis=1)
    k = max(1, round(fraction * 20))
    widths = qs[k:] - qs[:-k]
    i = np.argmin(widths, axis=0)
    cols = np.arange(qs.shape[1])
    return 0.5 * (qs[i, cols] + qs[i + k, cols])


def background_level(image: np.ndarray, block_px: int, percentile: float | None = None,
                     fraction: float = 0.3) -> np.ndarray:
    """Return a smooth background estimate on a coarse grid: one value per ``block_px`` square.

    For each block the centre of the shortest interval holding ``fraction`` of its values (the
    mode of the neuropil), or its ``percentile`` when one is given; smoothed over the 3 × 3
    neighbourhood so a block filled by one large cell does not punch a hole in the
    background.

    Parameters
    ----------
    image : numpy.ndarray
        (Y, X) image.
    block_px : int
        Block side in pixels.
    percentile : float, optional
        Take this percentile of each block instead of its mode.
    fraction : float
        Share of a block's values the mode's interval holds.

    Returns
    -------
    numpy.ndarray
        float32 grid of ``ceil(Y/block) × ceil(X/block)`` values.
    """
    b = max(1, int(block_px))
    h, w = image.shape
    gh, gw = -(-h // b), -(-w // b)
    grid = np.empty((gh, gw), dtype=np.float32)
    for i in range(gh):
        rows = image[i * b:(i + 1) * b]
        hb = rows.shape[0]
        wf = w // b
        if wf:
            blocks = rows[:, :wf * b].reshape(hb, wf, b).transpose(1, 0, 2).reshape(wf, -1)
            grid[i, :wf] = np.percentile(blocks, percentile, axis=1) if percentile is not None \
                else _shorth_centre(blocks, fraction)
        if gw > wf:
            rest = rows[:, wf * b:].reshape(1, -1)
            grid[i, wf] = np.percentile(rest, percentile) if percentile is not None \
                else _shorth_centre(rest, fraction)[0]
    return smooth_block_grid(grid)


def smooth_block_grid(grid: np.ndarray) -> np.ndarray:
    """Return a grid of block values made smooth: gaps filled, then a 3 × 3 median and a blur.

    NaN blocks (too little tissue to measure) take the value of the nearest valid block; an
    all-NaN grid becomes zeros. The median comes first so that a block that is all soma or all
    vessel lumen does not punch a hole in the background; the Gaussian (σ = 1 block) then
    removes the steps between blocks.

    Parameters
    ----------
    grid : numpy.ndarray
        2D float grid, one value per block.

    Returns
    -------
    numpy.ndarray of float32, same shape.
    """
    bad = ~np.isfinite(grid)
    if bad.all():
        return np.zeros_like(grid)
    if bad.any():
        idx = ndi.distance_transform_edt(bad, return_distances=False, return_indices=True)
        grid = grid[tuple(idx)]
    if grid.size > 1:
        grid = ndi.median_filter(grid, size=3, mode="nearest")
        grid = ndi.gaussian_filter(grid, 1.0, mode="nearest")
    return grid.astype(np.float32)


def read_block_grid(grid: np.ndarray, block_px: int, r0: int, r1: int, c0: int, c1: int
                    ) -> np.ndarray:
    """Return pixels ``[r0:r1, c0:c1]`` of a block grid interpolated bilinearly between centres.

    Block ``(i, j)`` is centred on pixel ``((i + 0.5) · block_px − 0.5, (j + 0.5) · block_px −
    0.5)``; beyond the outermost centres the edge value is held. Reading a strip or a crop at
    a time keeps a second full-size float array from ever being made.

    Parameters
    ----------
    grid : numpy.ndarray
        The block grid (:func:`background_level`).
    block_px : int
        Block side in pixels.
    r0, r1, c0, c1 : int
        Rows ``r0:r1`` and columns ``c0:c1`` of the full-resolution image to read.

    Returns
    -------
    numpy.ndarray
        ``(r1 - r0, c1 - c0)`` values (float32 for a float32 grid).
    """
    return sample_block_grid(grid, block_px, np.arange(r0, r1, dtype=np.float64),
                             np.arange(c0, c1, dtype=np.float64))


def sample_block_grid(grid: np.ndarray, block_px: int, ys: np.ndarray, xs: np.ndarray
                      ) -> np.ndarray:
    """Read a block grid bilinearly at rows ``ys`` × columns ``xs`` (fractional pixels allowed).

    The positions are in the pixels the grid was measured on, as in :func:`read_block_grid`
    (which is this at whole-pixel positions); a tile of a larger image reads its window of an
    image-wide grid with shifted, possibly fractional positions
    (:func:`histoquant.calibration.grid_positions`).

    Parameters
    ----------
    grid : ndarray
        (ny, nx) block values.
    block_px : int
        Block side in px.
    ys, xs : ndarray
        Row and column positions in px.

    Returns
    -------
    ndarray
        ``(len(ys), len(xs))`` interpolated values (clamped at the grid's edges).
    """
    b = int(block_px)
    gy = (np.asarray(ys, dtype=np.float64) + 0.5) / b - 0.5
    gx = (np.asarray(xs, dtype=np.float64) + 0.5) / b - 0.5
    iy0, wy = _axis(gy, grid.shape[0])
    ix0, wx = _axis(gx, grid.shape[1])
    iy1 = np.minimum(iy0 + 1, grid.shape[0] - 1)
    ix1 = np.minimum(ix0 + 1, grid.shape[1] - 1)
    rows = grid[iy0] * (1 - wy[:, None]) + grid[iy1] * wy[:, None]
    return rows[:, ix0] * (1 - wx) + rows[:, ix1] * wx


def subtract_block_grid(image: np.ndarray, grid: np.ndarray, block_px: int, ys: np.ndarray,
                        xs: np.ndarray, strip_rows: int = 2048) -> np.ndarray:
    """Subtract a block grid read at ``ys`` × ``xs`` (:func:`sample_block_grid`) in place.

    Parameters
    ----------
    image : ndarray
        (Y, X) float image, changed in place.
    grid : ndarray
        (ny, nx) block values.
    block_px : int
        Block side in px.
    ys, xs : ndarray
        Row and column positions of the image's pixels on the grid, in px; ``len(ys)`` is the
        image's height and ``len(xs)`` its width.
    strip_rows : int
        Rows read and subtracted at a time (bounds the temporary memory).

    Returns
    -------
    ndarray
        ``image`` itself.
    """
    h = image.shape[0]
    for r0 in range(0, h, strip_rows):
        r1 = min(h, r0 + strip_rows)
        image[r0:r1] -= sample_block_grid(grid, block_px, ys[r0:r1], xs)
    return image


def flatten_background(image: np.ndarray, block_px: int, percentile: float | None = None,
                       fraction: float = 0.3, strip_rows: int = 2048) -> np.ndarray:
    """Subtract the smooth background level from ``image`` in place and return it.

    The background grid of :func:`background_level` is interpolated bilinearly between block
    centres, strip by strip, so no second full-size float array is made.

    Parameters
    ----------
    image : numpy.ndarray
        (Y, X) float image, changed in place.
    block_px : int
        Block side in pixels.
    percentile : float, optional
        As in :func:`background_level`.
    fraction : float
        As in :func:`background_level`.
    strip_rows : int
        Rows corrected at a time.

    Returns
    -------
    numpy.ndarray
        ``image``, background subtracted.
    """
    grid = background_level(image, block_px, percentile, fraction)
    b = max(1, int(block_px))
    h, w = image.shape
    return subtract_block_grid(image, grid, b, np.arange(h, dtype=np.float64),
                               np.arange(w, dtype=np.float64), strip_rows)


def _axis(g: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    g = np.clip(g, 0.0, n - 1)
    i0 = np.floor(g).astype(np.intp)
    i0 = np.minimum(i0, max(n - 2, 0))
    wgt = np.clip(g - i0, 0.0, 1.0).astype(np.float32)
    return i0, wgt
