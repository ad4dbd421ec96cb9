"""Exact Euclidean distance to the nearest background pixel, at chosen pixels only.

Skeleton measurements need the distance transform at skeleton pixels (a few per cent of
the image). Searching outwards from each of them, ring by ring, gives the same values as
``scipy.ndimage.distance_transform_edt`` there, for a cost that grows with the distances
found rather than with the image.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["distance_at"]


@njit(cache=True, nogil=True)
def _distance_at(mask, rows, cols, max_ring, out):
    h, w = mask.shape
    none = 1 << 62
    for n in range(rows.size):
        r0, c0 = rows[n], cols[n]
        if not mask[r0, c0]:
            out[n] = 0.0
            continue
        best = none
        ring = 1
        # a pixel on ring k (Chebyshev distance k) is at least k away: stop once k² ≥ best
        while ring * ring < best and ring <= max_ring:
            lo_r, hi_r = r0 - ring, r0 + ring
            lo_c, hi_c = c0 - ring, c0 + ring
            for c in range(max(lo_c, 0), min(hi_c, w - 1) + 1):
                dc = c - c0
                if lo_r >= 0 and not mask[lo_r, c]:
                    best = min(best, ring * ring + dc * dc)
                if hi_r < h and not mask[hi_r, c]:
                    best = min(best, ring * ring + dc * dc)
            for r in range(max(lo_r + 1, 0), min(hi_r - 1, h - 1) + 1):
                dr = r - r0
                if lo_c >= 0 and not mask[r, lo_c]:
                    best = min(best, ring * ring + dr * dr)
                if hi_c < w and not mask[r, hi_c]:
                    best = min(best, ring * ring + dr * dr)
            ring += 1
        # unresolved within max_ring: −1, left to the caller
        out[n] = np.sqrt(best) if best < none and ring * ring >= best else -1.0
    return out


def distance_at(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Return the distance (px) from each (row, col) to the nearest False pixel of ``mask``.

    0 at background pixels; pixels outside the image do not count as background (as in
    ``scipy.ndimage.distance_transform_edt``). Where the mask has no background at all the
    distance is the image's larger side.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean (Y, X) mask.
    rows, cols : numpy.ndarray
        Integer pixel coordinates of the points, of equal length.

    Returns
    -------
    numpy.ndarray
        The exact Euclidean distance in pixels, one per point.
    """
    mask = np.ascontiguousarray(mask, dtype=np.bool_)
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    out = np.zeros(len(rows), np.float64)
    if len(rows) == 0:
        return out
    _distance_at(mask, rows, cols, _MAX_RING, out)
    todo = np.flatnonzero(out < 0)
    if todo.size:
        # far inside a large object: a KD-tree of the background pixels that touch the mask
        # (the nearest background pixel of any mask pixel is one of them)
        from scipy import ndimage as ndi
        from scipy.spatial import cKDTree

        outer = ndi.binary_dilation(mask, structure=np.ones((3, 3), bool)) & ~mask
        bg = np.argwhere(outer)
        if len(bg) == 0:
            out[todo] = float(max(mask.shape))
        else:
            out[todo], _ = cKDTree(bg).query(np.stack([rows[todo], cols[todo]], axis=1))
    return out


# ring search limit (px); beyond it a KD-tree is cheaper
_MAX_RING = 48
