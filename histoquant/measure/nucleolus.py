"""Nucleolus visibility in Nissl-stained somata: a small dark spot inside a paler nucleus.

Counting studies often count only motor-neuron profiles that show a nucleolus, so that a cell
cut in two adjacent sections is not counted twice. In a cresyl-violet section the nucleus of a
motor neuron is a round pale area inside the dark, Nissl-rich cytoplasm, and the nucleolus a
dark dot of 2–4 µm within it. The measure follows that description:

1. the **nucleus**: a pale basin enclosed by the darker cytoplasm — where filling the soma's
   density (1 µm smoothing) from outside, like water, raises it by at least ``depth_od``
   (grey-level hole filling) — with the nucleolus' dark spot inside it included, of nucleus
   size and round (solidity ≥ ``min_solidity`` after a small closing);
2. the **nucleolus contrast**: the highest density in that nucleus (0.5 µm smoothing) minus
   the nucleus' median density, in OD.

A soma without a pale round nucleus in the section gets 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

__all__ = ["nucleolus_contrast"]


def nucleolus_contrast(density: np.ndarray, labels: np.ndarray, pixel_size_um: float,
                       candidates: Sequence[int], *, depth_od: float = 0.08,
                       min_nucleus_um2: float = 30.0, max_nucleus_fraction: float = 0.5,
                       min_solidity: float = 0.6, nucleolus_area_um2: float = 30.0,
                       nucleolus_closing_um: float = 2.0) -> np.ndarray:
    """Nucleolus contrast (OD) of each listed soma; 0 where no pale round nucleus is seen.

    Parameters
    ----------
    density : ndarray
        Stain density (background-flattened), same grid as ``labels``.
    labels : ndarray of int
        Soma labels.
    pixel_size_um : float
        Pixel size of both, in µm.
    candidates : sequence of int
        Labels to examine (for example only somata large enough to be motor neurons).
    depth_od : float
        How much paler than its enclosing rim the nucleus must be (OD).
    min_nucleus_um2, max_nucleus_fraction : float
        Smallest nucleus area, and largest as a fraction of the soma area.
    min_solidity : float
        Roundness of the nucleus (area / convex-hull area).
    nucleolus_area_um2 : float
        Dark holes up to this area inside the pale nucleus are filled (the nucleolus).
    nucleolus_closing_um : float
        Radius of the closing that restores a nucleolus' bite out of the nucleus' edge.

    Returns
    -------
    ndarray of float
        One contrast per candidate.
    """
    from skimage.measure import regionprops
    from skimage.morphology import reconstruction

    px = float(pixel_size_um)
    px2 = px * px
    objects = ndi.find_objects(labels)
    out = np.zeros(len(candidates), dtype=np.float64)
    edge = np.ones((3, 3), bool)
    r_close = max(1, round(nucleolus_closing_um / px))
    yy, xx = np.mgrid[-r_close:r_close + 1, -r_close:r_close + 1]
    disk_close = yy ** 2 + xx ** 2 <= r_close ** 2
    for i, lab in enumerate(candidates):
        sl = objects[lab - 1] if 0 < lab <= len(objects) else None
        if sl is None:
            continue
        m = labels[sl] == lab
        d = np.asarray(density[sl], dtype=np.float32)
        inner = ndi.binary_erosion(m, structure=edge, iterations=max(1, round(1.0 / px)))
        if not inner.any():
            continue
        coarse = np.where(m, ndi.gaussian_filter(d, 1.0 / px), np.float32(0))
        fine = ndi.gaussian_filter(d, 0.5 / px)
        # Fill from outside the soma (density 0 there): enclosed pale basins rise to their rim.
        coarse = np.pad(coarse, 1)
        seed = np.full_like(coarse, coarse.max())
        seed[0, :] = seed[-1, :] = seed[:, 0] = seed[:, -1] = 0
        depth = (reconstruction(seed, coarse, method="erosion") - coarse)[1:-1, 1:-1]
        pale = inner & (depth >= depth_od)
        # The nucleolus is a dark hole in the pale nucleus: fill holes of its size.
        holes = ndi.binary_fill_holes(pale) & ~pale
        hl, nh = ndi.label(holes)
        if nh:
            small = np.bincount(hl.ravel()) * px2 <= nucleolus_area_um2
            small[0] = False
            pale |= small[hl]
        cl, nc = ndi.label(pale)
        if nc == 0:
            continue
        # Close each pale area over the nucleolus' bite out of its edge before judging its
        # roundness (a nucleolus near the nuclear envelope is not a hole).
        closed = np.zeros_like(cl)
        for rp in regionprops(cl):
            c = ndi.binary_closing(np.pad(cl[rp.slice] == rp.label, r_close),
                                   structure=disk_close)[r_close:-r_close, r_close:-r_close]
            c = ndi.binary_fill_holes(c) & inner[rp.slice]
            view = closed[rp.slice]
            view[c & (view == 0)] = rp.label
        cl = closed
        best = 0.0
        soma_area = float(m.sum())
        for rp in regionprops(cl):
            area_um2 = rp.area * px2
            if area_um2 < min_nucleus_um2 or rp.area > max_nucleus_fraction * soma_area:
                continue
            if rp.solidity < min_solidity:
                continue
            nuc = cl[rp.slice] == rp.label
            vals = fine[rp.slice][nuc]
            best = max(best, float(vals.max() - np.median(vals)))
        out[i] = best
    return out
