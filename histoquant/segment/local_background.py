"""Smooth local background of fluorescence images, computed at low resolution.

Tissue autofluorescence and uneven illumination vary over tens to hundreds of µm; cells and
nuclei are smaller. The background is therefore estimated on a block-averaged copy of the image
(a morphological opening larger than the largest object, then a box smoothing), and read back
at full resolution by bilinear interpolation only where it is needed. This keeps whole-slide
images cheap: no full-resolution filter ever runs over the whole image.

:func:`local_noise` measures the level and noise σ of what is left, per tile
(:class:`NoiseMap`), and :func:`background_and_noise` does both for a block-averaged channel.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .background import read_block_grid, sample_block_grid
from .statistics import MAD_TO_SD, block_mean, sigma_clipped_background

__all__ = ["SmoothBackground", "estimate_background", "background_grid", "NoiseMap",
           "local_noise", "background_and_noise"]


@dataclass
class SmoothBackground:
    """A background sampled on a coarse grid, read back at full resolution on demand.

    Attributes
    ----------
    values : ndarray
        Background per block (float32), block ``(i, j)`` centred on full-resolution pixel
        ``((i + 0.5) * factor - 0.5, (j + 0.5) * factor - 0.5)``.
    factor : int
        Block size in full-resolution pixels.
    shape : (int, int)
        Full-resolution shape.
    offset_yx : (float, float)
        Where this image's pixel (0, 0) lies on the grid's pixels: a tile reads its window of
        an image-wide grid (0: the grid is the image's own).
    """

    values: np.ndarray
    factor: int
    shape: tuple[int, int]
    offset_yx: tuple[float, float] = (0.0, 0.0)

    def crop(self, rows: slice, cols: slice) -> np.ndarray:
        """Return the bilinear full-resolution background of ``image[rows, cols]`` (float32).

        Parameters
        ----------
        rows, cols : slice
            The window of the full-resolution image.

        Returns
        -------
        numpy.ndarray
            float32 background of the window.
        """
        h, w = self.shape
        r0, r1, _ = rows.indices(h)
        c0, c1, _ = cols.indices(w)
        oy, ox = self.offset_yx
        if oy or ox:
            return sample_block_grid(self.values, max(1, self.factor),
                                     np.arange(r0, r1, dtype=np.float64) + oy,
                                     np.arange(c0, c1, dtype=np.float64) + ox)
        if self.factor <= 1:
            return self.values[r0:r1, c0:c1].astype(np.float32, copy=True)
        return read_block_grid(self.values, self.factor, r0, r1, c0, c1)

    def full(self) -> np.ndarray:
        """Return the background at full resolution (float32; allocates the whole image).

        Returns
        -------
        numpy.ndarray
            float32 (Y, X) background.
        """
        return self.crop(slice(0, self.shape[0]), slice(0, self.shape[1]))


def estimate_background(image_low: np.ndarray, object_size_px: float,
                        mask: np.ndarray | None = None, *,
                        max_filter_px: int = 8) -> np.ndarray:
    """Smooth lower envelope of ``image_low``, ignoring objects up to ``object_size_px``.

    A grey opening with a square of side just over ``object_size_px`` removes every bright
    object that fits inside it (cells, nuclei) and keeps what varies more slowly (tissue
    autofluorescence, illumination); a box filter of the same size smooths the steps the square
    leaves. Works on the block-averaged image (see
    :func:`histoquant.segment.statistics.block_mean`); when the square would
    be wider than ``max_filter_px``, the image is block-averaged further first and the result
    interpolated back, since a background that ignores objects of that size varies too slowly
    to need the finer grid.

    Parameters
    ----------
    image_low : ndarray
        2D image, usually block-averaged.
    object_size_px : float
        Largest object diameter in pixels of ``image_low``.
    mask : ndarray of bool, optional
        Where the image is valid; outside it the image is filled with the nearest valid
        value first so that a dark slide beside the tissue does not pull the background down
        at the tissue edge.
    max_filter_px : int
        Largest filter width run at the resolution of ``image_low``.

    Returns
    -------
    ndarray of float32, same shape as ``image_low``.
    """
    grid, k = background_grid(image_low, object_size_px, mask, max_filter_px=max_filter_px)
    return grid if k == 1 else SmoothBackground(grid, k, np.shape(image_low)).full()


def background_grid(image_low: np.ndarray, object_size_px: float,
                    mask: np.ndarray | None = None, *, max_filter_px: int = 8
                    ) -> tuple[np.ndarray, int]:
    """Return the grid :func:`estimate_background` interpolates, and its block size.

    An image-wide background kept as this grid (small: blocks of about an eighth of the
    background scale) is read back by any tile of the image at its own position
    (:func:`histoquant.calibration.grid_positions`).

    Parameters
    ----------
    image_low, object_size_px, mask, max_filter_px
        As for :func:`estimate_background`.

    Returns
    -------
    grid : ndarray of float32
        The background on blocks of ``k`` pixels of ``image_low``.
    k : int
        Block size (1: ``grid`` is the background itself).
    """
    img = np.asarray(image_low, np.float32)
    if mask is not None and not mask.all() and mask.any():
        idx = ndi.distance_transform_edt(~mask, return_distances=False, return_indices=True)
        img = img[tuple(idx)]
    k = max(1, int(object_size_px // max_filter_px))
    if k > 1:
        coarse = block_mean(img, k)
        return estimate_background(coarse, object_size_px / k,
                                   max_filter_px=max_filter_px), k
    size = max(3, int(np.ceil(object_size_px)) + 1)
    opened = ndi.grey_opening(img, size=(size, size))
    return ndi.uniform_filter(opened, size).astype(np.float32), 1


@dataclass
class NoiseMap:
    """Background level and noise σ of a smoothed block-averaged residual, per tile.

    Attributes
    ----------
    level : SmoothBackground
        Median residual per tile (what an opening's lower envelope leaves below the mean).
    sigma : SmoothBackground
        Noise σ per tile.
    """

    level: SmoothBackground
    sigma: SmoothBackground

    def at_full_resolution(self, f: int, shape: tuple[int, int]) -> NoiseMap:
        """Return the same tiles addressed in full-resolution pixels.

        Parameters
        ----------
        f : int
            Block size (full-resolution pixels per block) of the grid the map was made on.
        shape : (int, int)
            Full-resolution shape.

        Returns
        -------
        NoiseMap
            Same values, with tiles of ``t · f`` full-resolution pixels.
        """
        t = self.level.factor
        return NoiseMap(SmoothBackground(self.level.values, t * f, shape),
                         SmoothBackground(self.sigma.values, t * f, shape))


def local_noise(resid: np.ndarray, valid: np.ndarray, tile_px: int) -> NoiseMap:
    """Per-tile background level and σ (median, MAD_TO_SD·MAD after one 3σ clip) of ``resid``.

    Tiles with too few valid pixels borrow the nearest good tile's values.

    Parameters
    ----------
    resid : ndarray
        Residual (signal − background), 2D float.
    valid : ndarray of bool
        Pixels the statistics are taken over.
    tile_px : int
        Tile side in pixels of ``resid`` (at least 4).

    Returns
    -------
    NoiseMap
        Level and σ per tile; σ is floored at a quarter of the median tile σ, so a tile of
        flat slide does not make every faint speck a detection.
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
    return NoiseMap(SmoothBackground(level.astype(np.float32), t, (h, w)),
                     SmoothBackground(sigma.astype(np.float32), t, (h, w)))


def background_and_noise(low: np.ndarray, size_px: float, valid: np.ndarray,
                          tile_px: int, tissue: np.ndarray | None = None,
                          ) -> tuple[np.ndarray, NoiseMap]:
    """Background of a block-averaged channel and the local noise of what is left.

    An opening is a lower envelope: over mottled autofluorescence it sits below the mean
    background by about one to two σ of the mottle. That offset (the median residual per
    tile) is added back, so a signal is measured against the mean background, not against
    its dips — which matters for dim cells and for the reference/GFP ratio.

    Parameters
    ----------
    low : ndarray
        Block-averaged channel.
    size_px : float
        Background scale in blocks (see :func:`estimate_background`).
    valid : ndarray of bool
        Blocks the noise is measured over (the regions, less padding).
    tile_px : int
        Noise tile side in blocks.
    tissue : ndarray of bool, optional
        Blocks that are not padding (None: all), the only ones the background is taken from.

    Returns
    -------
    background : ndarray
        The background plus each tile's median residual, on the block grid.
    noise : NoiseMap
        Level and σ of the smoothed residual per tile.
    """
    bg = estimate_background(low, size_px, mask=tissue)
    noise = local_noise(ndi.gaussian_filter(low - bg, 0.7), valid, tile_px)
    return bg + noise.level.full(), noise
