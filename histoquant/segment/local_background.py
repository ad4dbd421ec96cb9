"""Smooth local background of fluorescence images, computed at low resolution.

Tissue autofluorescence and uneven illumination vary over tens to hundreds of µm; cells and
nuclei are smaller. The background is therefore estimated on a block-averaged copy of the image
(a morphological opening larger than the largest object, then a box smoothing), and read back
at full resolution by bilinear interpolation only where it is needed. This keeps whole-slide
images cheap: no full-resolution filter ever runs over the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .background import read_block_grid
from .statistics import block_mean

__all__ = ["SmoothBackground", "estimate_background"]


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
    """

    values: np.ndarray
    factor: int
    shape: tuple[int, int]

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
    img = np.asarray(image_low, np.float32)
    if mask is not None and not mask.all() and mask.any():
        idx = ndi.distance_transform_edt(~mask, return_distances=False, return_indices=True)
        img = img[tuple(idx)]
    k = max(1, int(object_size_px // max_filter_px))
    if k > 1:
        coarse = block_mean(img, k)
        back = estimate_background(coarse, object_size_px / k, max_filter_px=max_filter_px)
        return SmoothBackground(back, k, img.shape).full()
    size = max(3, int(np.ceil(object_size_px)) + 1)
    opened = ndi.grey_opening(img, size=(size, size))
    return ndi.uniform_filter(opened, size).astype(np.float32)
