"""Large-scale background estimated on a coarse grid.

Block reduction: :mod:`histoquant.segment.statistics`.

Why a coarse grid: the background of a fluorescence section (camera offset, tissue
autofluorescence, uneven illumination) varies over hundreds of µm, while the signal to keep
(a leak patch, a stained cell) is tens of µm. Estimating the background as a robust statistic of
tiles much larger than the signal, on block means rather than full-resolution pixels, keeps the
signal out of the estimate and costs a few passes over the image instead of a large-kernel
filter at full resolution (a 200 µm rolling ball at 0.5 µm/px is a 800-px-wide kernel).

The method is the one astronomers use for sky background (SExtractor, photutils
``Background2D``): per tile a sigma-clipped median, a 3×3 median filter over tiles to reject
tiles dominated by signal, then bilinear interpolation between tile centres.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..errors import EmptyImageError
from .statistics import (
    block_counts,
    block_sum,
    clipped_median_along,
    robust_location_scale,
    sample_pixels,
)

_SAMPLES_PER_BLOCK_EDGE = 12

__all__ = ["CoarseField", "coarse_background"]


@dataclass
class CoarseField:
    """A smooth field stored as values on a regular grid of window centres.

    Attributes
    ----------
    grid : ndarray
        (ny, nx) float32 values, one per window.
    spacing_px : int
        Distance between neighbouring grid points in full-resolution pixels.
    offset_px : float
        Full-resolution position (row and column) of grid point (0, 0).
    shape : tuple of int
        Full-resolution (Y, X) shape.
    block_px : int
        Block size the field was measured on (for :meth:`mean_over`).
    valid : ndarray
        (ny, nx) bool, True where the window held enough support to be measured (the others
        were filled from their neighbours).
    shift_yx : tuple of float
        Where pixel (0, 0) of the image this field is applied to lies in the field's
        coordinates: (0, 0) for the image it was measured on; a tile of it at rows ``r``,
        columns ``c`` has ``(r, c)`` (:meth:`for_window`).
    """

    grid: np.ndarray
    spacing_px: int
    offset_px: float
    shape: tuple[int, int]
    block_px: int
    valid: np.ndarray
    shift_yx: tuple[float, float] = (0.0, 0.0)

    def for_window(self, shift_yx: tuple[float, float], shape: tuple[int, int]) -> CoarseField:
        """Return the same field seen from an image of ``shape`` (a tile).

        The image's pixel (0, 0) lies at ``shift_yx`` in this field's coordinates (a tile of
        the image the field was measured on).

        Parameters
        ----------
        shift_yx : (float, float)
            Full-resolution (row, col) of the tile's pixel (0, 0) in the image it is cut from.
        shape : (int, int)
            The tile's full-resolution (Y, X) shape.

        Returns
        -------
        CoarseField
            The same grid, with ``shape`` and the shifts added up.
        """
        return CoarseField(self.grid, self.spacing_px, self.offset_px, tuple(shape),
                           self.block_px, self.valid,
                           (self.shift_yx[0] + float(shift_yx[0]),
                            self.shift_yx[1] + float(shift_yx[1])))

    def _at(self, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        # no addition at all for the field's own image: bit for bit what it always gave
        if self.shift_yx != (0.0, 0.0):
            ys = ys + self.shift_yx[0]
            xs = xs + self.shift_yx[1]
        return _bilinear(self.grid, self.spacing_px, self.offset_px, ys, xs)

    def upsample(self, rows: slice | None = None) -> np.ndarray:
        """Return the field at full resolution (float32), or only the rows in ``rows``.

        Parameters
        ----------
        rows : slice, optional
            The rows to evaluate; every row when not given.

        Returns
        -------
        numpy.ndarray
            float32 (rows, X) field.
        """
        h, w = self.shape
        rows = rows or slice(0, h)
        ys = np.arange(rows.start or 0, h if rows.stop is None else min(rows.stop, h))
        return self._at(ys, np.arange(w))

    def apply(self, image: np.ndarray, op: np.ufunc, *, rows_per_chunk: int = 1024) -> None:
        """Combine ``image`` in place with the field: ``op(image, field, out=image)``.

        The field is evaluated on cells of a few pixels (an eighth of the grid spacing, at
        most 8 px) and broadcast over each cell, which costs one pass over the image instead
        of materialising the field at full resolution. Over one cell a background that varies
        on the scale of the windows changes by well under 1 %.

        Parameters
        ----------
        image : numpy.ndarray
            Float (Y, X) image of the field's shape, changed in place.
        op : numpy.ufunc
            A binary ufunc taking ``out=`` (``np.subtract``, ``np.multiply``, ...).
        rows_per_chunk : int
            Rows combined at a time.
        """
        h, w = self.shape
        cell = int(max(1, min(8, self.spacing_px // 8)))
        nxc = -(-w // cell)
        xs = np.arange(nxc) * cell + (cell - 1) / 2
        rows_per_chunk = max(cell, rows_per_chunk // cell * cell)
        for r0 in range(0, h, rows_per_chunk):
            r1 = min(h, r0 + rows_per_chunk)
            ys = np.arange(r0, r1, cell) + (cell - 1) / 2
            small = self._at(ys, xs)
            band = np.repeat(small, cell, axis=1)[:, :w]
            part = image[r0:r1]
            for k in range(cell):
                sub = part[k::cell]
                op(sub, band[: sub.shape[0]], out=sub)

    def mean_over(self, mask: np.ndarray) -> float:
        """Return the mean of the field over the pixels of ``mask`` (evaluated at block centres).

        Parameters
        ----------
        mask : numpy.ndarray
            Boolean (Y, X) mask of the field's shape.

        Returns
        -------
        float
            The mean; NaN when ``mask`` is empty.
        """
        b = self.block_px
        weights = block_sum(mask, b).astype(np.float64)
        centres_y = np.arange(weights.shape[0]) * b + (b - 1) / 2
        centres_x = np.arange(weights.shape[1]) * b + (b - 1) / 2
        values = self._at(centres_y, centres_x)
        total = weights.sum()
        return float((values * weights).sum() / total) if total else float("nan")

    def map(self, func: Callable[[np.ndarray], np.ndarray]) -> CoarseField:
        """Return a new field with ``func`` applied to the grid values.

        Parameters
        ----------
        func : callable
            Maps the grid (a 2D array) to a grid of the same shape.

        Returns
        -------
        CoarseField
            The new field, on the same grid.
        """
        return CoarseField(np.asarray(func(self.grid), dtype=np.float32), self.spacing_px,
                           self.offset_px, self.shape, self.block_px, self.valid, self.shift_yx)


def _bilinear(grid: np.ndarray, spacing: float, offset: float, ys: np.ndarray,
              xs: np.ndarray) -> np.ndarray:
    """Interpolate grid values bilinearly at rows ``ys`` × columns ``xs``.

    Constant beyond the outermost grid points.

    Written as two small matrix products (rows × grid × columns), so the full-resolution
    result is written once instead of gathered several times.
    """
    grid = np.asarray(grid, dtype=np.float32)
    wy = _interp_matrix(ys, spacing, offset, grid.shape[0])
    wx = _interp_matrix(xs, spacing, offset, grid.shape[1])
    return (wy @ grid) @ wx.T


def _interp_matrix(pos: np.ndarray, spacing: float, offset: float, n: int) -> np.ndarray:
    f = np.clip((np.asarray(pos, dtype=np.float64) - offset) / spacing, 0, n - 1)
    i0 = np.floor(f).astype(np.intp)
    i1 = np.minimum(i0 + 1, n - 1)
    frac = (f - i0).astype(np.float32)
    m = np.zeros((len(f), n), dtype=np.float32)
    rows = np.arange(len(f))
    np.add.at(m, (rows, i0), 1 - frac)
    np.add.at(m, (rows, i1), frac)
    return m


def coarse_background(image: np.ndarray, window_px: int, support: np.ndarray | None = None,
                      *, blocks_per_window: int = 8, min_support: float = 0.25,
                      clip_sd: float = 2.5, mask_signal_sd: float | None = 3.0,
                      source: str = "<array>") -> CoarseField:
    """Estimate the slowly varying background of ``image`` in windows of ``window_px``.

    Parameters
    ----------
    image : ndarray
        2D image (any real dtype).
    window_px : int
        Window edge in pixels. Make it several times larger than the largest bright structure
        that must not be absorbed into the background.
    support : ndarray of bool, optional
        Pixels the background may be measured on (for example the region being measured, so
        that white matter or glass does not bias a grey-matter background). Windows with
        less than ``min_support`` of their area in the support take their value from the
        nearest measured window.
    blocks_per_window : int
        Each window is measured as (``blocks_per_window``)² block medians (each of ≈ 144
        regularly sampled pixels), which are then combined robustly.
    min_support : float
        Least fraction of a window (and of a block) inside the support for it to count.
    clip_sd : float
        Block medians more than ``clip_sd`` robust SDs above the window median are taken as
        signal and excluded, iteratively.
    mask_signal_sd : float or None
        After a first estimate, sample pixels more than this many robust SDs above it (and
        their 8 neighbours) are excluded and the background estimated again. ``None`` or 0
        skips the second pass.

    Returns
    -------
    CoarseField
        The background on a grid of window centres a quarter window apart (windows overlap,
        so that bilinear interpolation follows a curved field such as vignetting);
        ``.upsample()`` gives it at full resolution.

    Notes
    -----
    The median of a window of a curved field differs from the field at its centre by about
    curvature × window² / 12; with vignetting of 15 % across a 500 µm field and a 200 µm
    window that is 0.4 % of the background.
    """
    h, w = image.shape
    window_px = int(max(1, min(window_px, max(h, w))))
    # Blocks are summarised by the median of a regular subsample of ≈ 12 × 12 pixels: a
    # median, not a mean, so that thin bright structures crossing every block (EvB left in
    # capillaries) do not lift the background; a subsample, so that it costs little.
    step = max(1, window_px // (blocks_per_window * _SAMPLES_PER_BLOCK_EDGE))
    n = max(1, window_px // (blocks_per_window * step))
    block = step * n
    per = max(1, round(window_px / block))
    stride = max(1, per // 4)
    sub = np.asarray(image[::step, ::step], dtype=np.float32)
    sup = np.ones(sub.shape, dtype=bool) if support is None else \
        np.asarray(support, dtype=bool)[::step, ::step]
    field = _estimate(sub, sup, n, per, stride, block, (h, w), min_support, clip_sd, source)
    if mask_signal_sd:
        # Source masking: pixels that stand out of the first estimate (and a sample pixel
        # around them) are left out and the background measured again, so that the edges
        # of leaks, which no block-level clipping removes, cannot lift it.
        ys = np.arange(sub.shape[0]) * step
        xs = np.arange(sub.shape[1]) * step
        resid = sub - _bilinear(field.grid, field.spacing_px, field.offset_px, ys, xs)
        loc, sd = robust_location_scale(sample_pixels(resid, sup, 200_000))
        if np.isfinite(sd) and sd > 0:
            signal = ndi.binary_dilation(resid > loc + mask_signal_sd * sd,
                                         structure=np.ones((3, 3), dtype=bool))
            kept = sup & ~signal
            if kept.sum() > 0.5 * sup.sum():
                field = _estimate(sub, kept, n, per, stride, block, (h, w), min_support,
                                  clip_sd, source)
    return field


def _estimate(sub, sup, n, per, stride, block, shape, min_support, clip_sd, source):
    hs, ws = sub.shape
    nby, nbx = -(-hs // n), -(-ws // n)
    values = np.full((nby * n, nbx * n), np.nan, dtype=np.float32)
    values[:hs, :ws] = np.where(sup, sub, np.float32(np.nan))
    values = values.reshape(nby, n, nbx, n).transpose(0, 2, 1, 3).reshape(nby, nbx, n * n)
    # pixels of each block inside the image (the last row and column may be partial); integer
    # counts, as before, so the min_support comparison is unchanged
    n_in_image = block_counts((hs, ws), n).astype(np.int64)
    means, n_finite = _nanmedian_rows(values)
    means[n_finite < min_support * n_in_image] = np.nan
    half = per // 2
    pad = ((half, per - half), (half, per - half))
    padded = np.pad(means, pad, constant_values=np.nan)
    inside = np.pad(np.ones_like(means, dtype=np.float32), pad)
    view = np.lib.stride_tricks.sliding_window_view
    windows = view(padded, (per, per))[::stride, ::stride]
    n_blocks = view(inside, (per, per))[::stride, ::stride].sum(axis=(-2, -1))
    ny, nx = windows.shape[:2]
    windows = windows.reshape(ny, nx, per * per)
    n_valid = np.isfinite(windows).sum(axis=-1)
    valid = n_valid >= np.maximum(1, np.ceil(min_support * n_blocks))
    if not valid.any():
        raise EmptyImageError(f"{source}: no part of the image is usable to estimate the "
                              "background (the measured regions are too small or empty)")
    grid = np.full((ny, nx), np.nan, dtype=np.float32)
    grid[valid] = clipped_median_along(windows[valid], clip_sd)
    grid = _fill_from_nearest(grid, valid)
    if min(grid.shape) >= 3:
        # A window that a large leak fills reads high; its neighbours outvote it.
        grid = ndi.median_filter(grid, size=3, mode="nearest")
    return CoarseField(grid.astype(np.float32), stride * block, (block - 1) / 2, shape, block,
                       valid)


def _nanmedian_rows(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median along the last axis ignoring NaN, and the number of finite values."""
    finite = np.isfinite(values)
    k = finite.sum(axis=-1)
    v = np.where(finite, values, np.float32(np.inf))
    v.sort(axis=-1)
    lo = np.maximum((k - 1) // 2, 0)[..., None]
    hi = np.maximum(k // 2, 0)[..., None]
    med = 0.5 * (np.take_along_axis(v, lo, -1) + np.take_along_axis(v, hi, -1))[..., 0]
    med[k == 0] = np.nan
    return med.astype(np.float32), k


def _fill_from_nearest(grid: np.ndarray, valid: np.ndarray) -> np.ndarray:
    if valid.all():
        return grid
    _, (iy, ix) = ndi.distance_transform_edt(~valid, return_indices=True)
    return grid[iy, ix]
