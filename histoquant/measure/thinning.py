"""Lee's thinning of 2D masks, visiting only the pixels on the mask's boundary.

:func:`thin_lee` gives the same skeleton as ``skimage.morphology.skeletonize(mask,
method="lee")`` (pixel for pixel; ``tests/test_thinning.py`` compares the two), many times
faster on large images (figures in ``benchmarks/RESULTS.md``). scikit-image runs its 3D
implementation on a one-slice volume: every erosion step scans the whole image four times
(one per border direction), so a 16-megapixel image with a 15 µm vessel is scanned ≈ 100
times. Here each step looks only at the foreground pixels that touch the background and whose
neighbourhood changed since they were last found not deletable, kept in raster order so that
the sequential re-check deletes pixels in the same order as scikit-image.

The algorithm (Lee, Kashyap & Chu 1994, as in scikit-image) for a single slice: for each
border direction in turn (above, below, right, left), collect the foreground pixels whose
neighbour in that direction is background, that are not end points (exactly one
8-neighbour), whose removal keeps the Euler number of their 3 × 3 neighbourhood, and whose
8-neighbours form at most one 8-connected group. Then, in raster order, delete each of them
whose 8-neighbours (as they are now) still form at most one group. Stop when a full round of
the four directions deletes nothing.

The three tests depend only on the 8 neighbours, so they are tables of 256 entries, built
here from their definitions (component counts and Euler numbers of 3 × 3 patches).
"""

from __future__ import annotations

import numpy as np
from numba import njit
from scipy import ndimage as ndi

__all__ = ["thin_lee"]

# neighbour k of a pixel (row offset, column offset); bit k of its configuration byte
_OFFSETS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _tables() -> tuple[np.ndarray, np.ndarray]:
    """Per neighbour configuration: (candidate for deletion, simple in the re-check)."""
    from skimage.measure import euler_number

    candidate = np.zeros(256, np.uint8)
    simple = np.zeros(256, np.uint8)
    eight = np.ones((3, 3), bool)
    for cfg in range(256):
        patch = np.zeros((5, 5), bool)
        for k, (dr, dc) in enumerate(_OFFSETS):
            patch[2 + dr, 2 + dc] = bool(cfg >> k & 1)
        _, n_groups = ndi.label(patch, structure=eight)  # centre still off
        with_centre = patch.copy()
        with_centre[2, 2] = True
        euler_kept = euler_number(with_centre, connectivity=2) == \
            euler_number(patch, connectivity=2)
        end_point = bin(cfg).count("1") == 1
        simple[cfg] = n_groups <= 1
        candidate[cfg] = simple[cfg] and euler_kept and not end_point
    return candidate, simple


_CANDIDATE, _SIMPLE = _tables()


# The working image holds, per pixel: bit 0 foreground; bit 1 in the active list; bits 2–4
# the number of passes the pixel was found not deletable with nothing around it changed.
_FG, _LISTED, _QUIET = 1, 2, 4


@njit(cache=True, nogil=True)
def _config(img, i, w):
    return ((img[i - w - 1] & 1) | ((img[i - w] & 1) << 1) | ((img[i - w + 1] & 1) << 2)
            | ((img[i - 1] & 1) << 3) | ((img[i + 1] & 1) << 4) | ((img[i + w - 1] & 1) << 5)
            | ((img[i + w] & 1) << 6) | ((img[i + w + 1] & 1) << 7))


@njit(cache=True, nogil=True)
def _thin(img, w, border, candidate_lut, simple_lut):
    """Thin the padded, raveled uint8 image ``img`` (row length ``w``) in place.

    ``border``: raster-ordered flat indices of the foreground pixels with a background
    4-neighbour. Only these can be deleted. A border pixel found not deletable in all four
    directions, with nothing around it changed meanwhile, stays so until a neighbour is
    deleted: it leaves the active list until then.
    """
    directions = np.array([-w, w, 1, -1])  # above, below, right, left
    around = np.array([-w - 1, -w, -w + 1, -1, 1, w - 1, w, w + 1])
    active = border
    for i in active:
        img[i] |= _LISTED
    cand = np.empty(active.size, np.int64)
    deleted = np.empty(active.size, np.int64)
    new = np.empty(8 * active.size, np.int64)
    unchanged = 0
    while unchanged < 4:
        unchanged = 0
        for d in range(4):
            off = directions[d]
            if cand.size < active.size:
                cand = np.empty(active.size, np.int64)
                deleted = np.empty(active.size, np.int64)
                new = np.empty(8 * active.size, np.int64)
            n = 0
            for i in active:
                if (img[i + off] & _FG) == 0 and candidate_lut[_config(img, i, w)]:
                    cand[n] = i
                    n += 1
                    img[i] &= _FG | _LISTED
                else:
                    img[i] += _QUIET
            n_del = 0
            for j in range(n):
                i = cand[j]
                if simple_lut[_config(img, i, w)]:
                    img[i] &= _LISTED  # background; leaves the list at the merge below
                    deleted[n_del] = i
                    n_del += 1
            if n_del == 0:
                unchanged += 1
            # neighbours of deleted pixels changed: they are checked again (and 4-neighbours
            # now touch the background)
            n_new = 0
            for j in range(n_del):
                i = deleted[j]
                for k in range(8):
                    q = i + around[k]
                    v = img[q]
                    if (v & _FG) == 0:
                        continue
                    v &= _FG | _LISTED
                    if (v & _LISTED) == 0 and ((img[q - w] & _FG) == 0
                                               or (img[q + w] & _FG) == 0
                                               or (img[q - 1] & _FG) == 0
                                               or (img[q + 1] & _FG) == 0):
                        v |= _LISTED
                        new[n_new] = q
                        n_new += 1
                    img[q] = v
            added = np.sort(new[:n_new])
            merged = np.empty(active.size + n_new, np.int64)
            a = b = m = 0
            while a < active.size or b < n_new:
                if b == n_new or (a < active.size and active[a] < added[b]):
                    i = active[a]
                    a += 1
                    v = img[i]
                    if (v & _FG) == 0 or v >= 4 * _QUIET:
                        img[i] = v & ~_LISTED
                        continue
                else:
                    i = added[b]
                    b += 1
                merged[m] = i
                m += 1
            active = merged[:m]
    return img


def thin_lee(mask: np.ndarray) -> np.ndarray:
    """Skeleton of a 2D mask by Lee's thinning (as scikit-image's ``method="lee"``).

    Parameters
    ----------
    mask : ndarray of bool, 2D
        Objects to thin.

    Returns
    -------
    ndarray of bool
        One-pixel-wide skeleton, same shape as ``mask``.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"thin_lee needs a 2D mask, not {mask.ndim}D")
    if not mask.any():
        return np.zeros(mask.shape, bool)
    img = np.pad(mask, 1).view(np.uint8)
    w = img.shape[1]
    # foreground pixels with a background 4-neighbour (outside the image is background)
    inner = img[1:-1, 1:-1] & img[:-2, 1:-1] & img[2:, 1:-1] & img[1:-1, :-2] & img[1:-1, 2:]
    flat = img.ravel()
    border = np.flatnonzero(flat)
    rows, cols = np.divmod(border, w)
    border = border[inner[rows - 1, cols - 1] == 0]
    _thin(flat, w, border, _CANDIDATE, _SIMPLE)
    return (flat.reshape(img.shape)[1:-1, 1:-1] & _FG).astype(bool)
