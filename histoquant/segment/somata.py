"""Soma segmentation in a stain-density image (brightfield Nissl), classical engine.

The pipeline, every size in µm so it transfers between magnifications:

1. **foreground**: the smoothed density above ``foreground_od`` and above ``foreground_snr``
   times the neuropil's own standard deviation (after background flattening), pale holes up
   to ``max_hole_um2`` filled (a neuron's pale nucleus), opened with a disk of ``open_um``
   (cuts dendrites and thin processes narrower than twice that);
2. **first split**: a watershed of a landscape that is the distance to the foreground edge
   (shape: touching round cells meet at a neck) plus ``intensity_weight_um_per_od`` × the
   density capped at ``intensity_cap_od`` (a pale gap between two cells is a valley; the cap
   keeps coarse Nissl granules of dark neurons from splitting them). Seeds are maxima rising
   at least ``first_prominence_um`` and ``relative_prominence`` × their height above the pass
   to a neighbour, found by merging basins by persistence (:func:`merge_shallow_basins`);
   only connected pieces with several maxima are flooded;
3. **per-object threshold**: each object keeps the pixels above ``refine_fraction`` of its own
   upper-quartile density (at most ``refine_cap_od``), so a dark glial nucleus does not take
   the paler neuropil around it while a pale neuron keeps its pale cytoplasm; seams between
   objects paler than both (``seam_ratio``) are opened;
4. **final split** of that cleaner mask, as in 2, with seeds of prominence
   ``seed_prominence_um``; large somata are opened with a disk of ``trim_fraction`` × their
   equivalent radius (dendrite stumps off); objects smaller than ``min_area_um2`` are dropped.

:data:`ENGINES` maps an engine name to a function with the signature of
:func:`segment_somata_classical`; another engine (cellpose) can be added there and selected by
the assays' ``engine`` parameter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

__all__ = ["SomaSegmentationParams", "segment_somata", "segment_somata_classical",
           "soma_foreground", "split_touching", "refine_by_object_contrast", "ENGINES",
           "relabel_sequential_by_size", "remove_small_components", "fill_small_holes",
           "neuropil_noise", "distance_to_edge"]


@dataclass(frozen=True)
class SomaSegmentationParams:
    """Parameters of the classical soma segmentation (see the module docstring).

    The defaults are those of the motor-neuron assay, where each is explained
    (:class:`histoquant.assays.motor_neurons.MotorNeuronParams`); a test keeps them equal.
    ``distance_smooth_um`` and ``refine_quantile`` are internal.
    """

    smooth_um: float = 0.5
    foreground_od: float = 0.06
    foreground_snr: float = 3.0
    max_hole_um2: float = 400.0
    open_um: float = 1.5
    first_prominence_um: float = 0.5
    seed_prominence_um: float = 1.5
    intensity_weight_um_per_od: float = 20.0
    intensity_cap_od: float = 0.2
    relative_prominence: float = 0.25
    distance_smooth_um: float = 0.5
    refine_fraction: float = 0.4
    refine_quantile: float = 0.75
    refine_cap_od: float = 0.1
    seam_ratio: float = 0.9
    trim_fraction: float = 0.3
    min_area_um2: float = 8.0


def _disk(radius_px: float) -> np.ndarray:
    r = int(np.floor(radius_px))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (yy ** 2 + xx ** 2) <= radius_px ** 2 + 1e-9


def remove_small_components(mask: np.ndarray, max_size_px: int) -> np.ndarray:
    """Return ``mask`` without its 4-connected components of at most ``max_size_px`` pixels.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean (Y, X) mask.
    max_size_px : int
        Largest component removed, in pixels.

    Returns
    -------
    numpy.ndarray
        Boolean mask.
    """
    if max_size_px < 1:
        return mask
    lab, n = ndi.label(mask)
    if n == 0:
        return mask
    small = np.bincount(lab.ravel()) <= max_size_px
    small[0] = False
    return mask & ~small[lab]


def fill_small_holes(mask: np.ndarray, max_size_px: int) -> np.ndarray:
    """Return ``mask`` with enclosed holes of at most ``max_size_px`` pixels filled.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean (Y, X) mask.
    max_size_px : int
        Largest hole filled, in pixels.

    Returns
    -------
    numpy.ndarray
        Boolean mask.
    """
    if max_size_px < 1:
        return mask
    return ~remove_small_components(~mask, max_size_px)


def neuropil_noise(smoothed: np.ndarray, max_samples: int = 1_000_000) -> float:
    """Return the standard deviation of the neuropil, from the half of the values below its level.

    After background flattening the neuropil sits at 0; somata only add density, so the
    values below 0 are neuropil (and paler structures) alone: their 10th percentile is
    −1.28 σ for a normal spread.

    Parameters
    ----------
    smoothed : numpy.ndarray
        Background-flattened, smoothed stain density.
    max_samples : int
        At most this many pixels are used (a regular subsample).

    Returns
    -------
    float
        The neuropil's SD, in density units.
    """
    from .statistics import lower_half_sd

    step = max(1, int(np.ceil(np.sqrt(smoothed.size / max_samples))))
    return lower_half_sd(smoothed[::step, ::step], level=0.0)


def soma_foreground(smoothed: np.ndarray, pixel_size_um: float, foreground_od: float,
                    max_hole_um2: float, open_um: float, min_area_um2: float) -> np.ndarray:
    """Return a boolean mask of stained somata: threshold, fill small holes, open, drop specks.

    Parameters
    ----------
    smoothed : numpy.ndarray
        Background-flattened, smoothed stain density.
    pixel_size_um : float
        Pixel size in µm.
    foreground_od : float
        Density threshold of soma pixels.
    max_hole_um2 : float
        Largest hole filled, in µm².
    open_um : float
        Radius of the opening disk in µm (0: no opening).
    min_area_um2 : float
        Smallest piece kept, in µm².

    Returns
    -------
    numpy.ndarray
        Boolean (Y, X) mask.
    """
    px2 = pixel_size_um ** 2
    fg = smoothed > foreground_od
    fg = fill_small_holes(fg, int(max_hole_um2 / px2))
    r = open_um / pixel_size_um
    if r >= 1.0:
        fg = ndi.binary_opening(fg, structure=_disk(r))
    return remove_small_components(fg, int(np.ceil(min_area_um2 / px2)) - 1)


def _adjacent_pairs(labels: np.ndarray, values: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of different non-zero labels that touch (4-connected), with the pass height.

    For every touching pair of pixels the height at which water crosses between them is the
    lower of their two values; per label pair the highest such crossing is the saddle.
    Returns (label a, label b, saddle) with a < b, one row per touching pair of labels.
    """
    h, w = labels.shape
    a_parts, b_parts, s_parts = [], [], []
    # Offsets (dy, dx) to the right and down neighbour: the watershed's own connectivity.
    for dy, dx in ((0, 1), (1, 0)):
        rows_a, rows_b = slice(0, h - dy), slice(dy, h)
        cols_a = slice(0, w - dx) if dx >= 0 else slice(-dx, w)
        cols_b = slice(dx, w) if dx >= 0 else slice(0, w + dx)
        la, lb = labels[rows_a, cols_a], labels[rows_b, cols_b]
        sel = (la != lb) & (la > 0) & (lb > 0)
        if not sel.any():
            continue
        x, y = la[sel], lb[sel]
        a_parts.append(np.minimum(x, y))
        b_parts.append(np.maximum(x, y))
        s_parts.append(np.minimum(values[rows_a, cols_a][sel], values[rows_b, cols_b][sel]))
    if not a_parts:
        e = np.zeros(0, np.int64)
        return e, e, np.zeros(0, np.float32)
    a = np.concatenate(a_parts).astype(np.int64)
    b = np.concatenate(b_parts).astype(np.int64)
    sad = np.concatenate(s_parts)
    key = a * (int(labels.max()) + 1) + b
    order = np.lexsort((-sad, key))
    key, a, b, sad = key[order], a[order], b[order], sad[order]
    first = np.ones(len(key), bool)
    first[1:] = key[1:] != key[:-1]
    return a[first], b[first], sad[first]


def merge_shallow_basins(basins: np.ndarray, landscape: np.ndarray, h: float,
                         relative: float = 0.0, peaks: np.ndarray | None = None
                         ) -> np.ndarray:
    """Merge watershed basins whose peak rises less than ``h`` above the pass to a neighbour.

    With ``relative`` > 0 the rise must also be at least that fraction of the lower peak's
    height, so a large cell needs a deeper neck to be split than a small one. ``peaks`` (the
    highest landscape value of each basin, indexed by label) is computed when not given.

    This is the watershed from h-maxima markers computed by persistence: passes are taken from
    the highest down; at each, two regions join when the lower of their peaks is less than
    ``h`` above the pass (it is not a prominent maximum). No grey-level reconstruction (which
    sorts every pixel) is needed, only the basins' touching pairs.

    Parameters
    ----------
    basins : numpy.ndarray
        Label image of the watershed basins.
    landscape : numpy.ndarray
        The flooded surface (high at basin peaks).
    h : float
        Smallest prominence of a peak kept apart, in landscape units.
    relative : float
        Smallest prominence as a fraction of the lower peak's height.
    peaks : numpy.ndarray, optional
        Highest landscape value of each basin, indexed by label.

    Returns
    -------
    numpy.ndarray
        Label image with merged basins sharing a label.
    """
    n = int(basins.max())
    if n < 2:
        return basins
    if peaks is None:
        peak = np.full(n + 1, -np.inf)
        np.maximum.at(peak, basins.ravel(), landscape.ravel())
    else:
        peak = np.asarray(peaks, dtype=np.float64)
    a, b, sad = _adjacent_pairs(basins, landscape)
    order = np.argsort(-sad, kind="stable")
    parent = np.arange(n + 1)
    top = peak.copy()

    def find(i: int) -> int:
        root = i
        while parent[root] != root:
            root = parent[root]
        while parent[i] != root:
            parent[i], i = root, parent[i]
        return root

    for i in order.tolist():
        ra, rb = find(int(a[i])), find(int(b[i]))
        if ra == rb:
            continue
        low = min(top[ra], top[rb])
        if low - sad[i] < max(h, relative * low):
            if top[ra] < top[rb]:
                ra, rb = rb, ra
            parent[rb] = ra
    roots = np.array([find(i) for i in range(n + 1)])
    return roots[basins]


def distance_to_edge(mask: np.ndarray, pixel_size_um: float, reach_um: float = 40.0,
                     strip_pixels: int = 1 << 18) -> np.ndarray:
    """Return the Euclidean distance (µm, float32) of each mask pixel to the nearest background.

    Computed in row strips that overlap by ``reach_um``: exact wherever the distance is below
    that (the half-width of an 80 µm soma; larger values are capped near it), with the
    float64 work arrays of SciPy's transform limited to one strip.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean (Y, X) mask.
    pixel_size_um : float
        Pixel size in µm.
    reach_um : float
        Overlap of the strips, in µm: the distance is exact below it.
    strip_pixels : int
        About how many pixels a strip holds.

    Returns
    -------
    numpy.ndarray
        float32 distance in µm (0 off the mask).
    """
    h, w = mask.shape
    out = np.empty((h, w), dtype=np.float32)
    margin = int(np.ceil(reach_um / pixel_size_um))
    rows = max(8 * margin, strip_pixels // max(w, 1))  # overlap ≤ 25 % of the work
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        a0, a1 = max(0, r0 - margin), min(h, r1 + margin)
        part = ndi.distance_transform_edt(mask[a0:a1])
        out[r0:r1] = part[r0 - a0:r1 - a0]
    out *= np.float32(pixel_size_um)
    return out


def _landscape(mask: np.ndarray, smoothed: np.ndarray, pixel_size_um: float,
               intensity_weight_um_per_od: float, intensity_cap_od: float,
               distance_smooth_um: float) -> np.ndarray:
    """Distance to the mask's edge (µm) plus the weighted, capped density (float32)."""
    land = distance_to_edge(mask, pixel_size_um)
    if distance_smooth_um > 0:
        ndi.gaussian_filter(land, distance_smooth_um / pixel_size_um, output=land)
    if intensity_weight_um_per_od:
        inten = np.minimum(smoothed, np.float32(intensity_cap_od))
        inten *= np.float32(intensity_weight_um_per_od)
        land += inten
        del inten
    return land


def _surely_one(markers: np.ndarray, land: np.ndarray, mask: np.ndarray, peaks: np.ndarray,
                h: float, relative: float) -> bool:
    """Return True when no maximum of a piece can be prominent: it would all merge into one soma.

    The pass between two maxima is at least the lowest landscape value on the straight
    segment joining them, when that segment stays in the piece. If every maximum rises less
    than the required height above that bound on its way to the highest maximum, no basin can
    survive the merging — a cheap test that spares the watershed for most glial nuclei, whose
    distance ridge has a few insignificant bumps.
    """
    rr, cc = np.nonzero(markers)
    labs, first = np.unique(markers[rr, cc], return_index=True)
    if len(labs) != len(peaks) - 1:
        return False
    pos = np.stack([rr[first], cc[first]], axis=1).astype(np.float64)
    top = int(np.argmax(peaks[1:]))
    n_steps = int(np.ceil(np.abs(pos - pos[top]).max())) + 2
    t = np.linspace(0.0, 1.0, n_steps)[:, None]
    for i in range(len(pos)):
        if i == top:
            continue
        line = pos[i] + t * (pos[top] - pos[i])
        r = np.clip(np.rint(line[:, 0]).astype(np.intp), 0, land.shape[0] - 1)
        c = np.clip(np.rint(line[:, 1]).astype(np.intp), 0, land.shape[1] - 1)
        if not mask[r, c].all():
            return False
        low = peaks[i + 1]
        if low - float(land[r, c].min()) >= max(h, relative * low):
            return False
    return True


def split_touching(mask: np.ndarray, smoothed: np.ndarray, pixel_size_um: float, *,
                   prominence_um: float, intensity_weight_um_per_od: float,
                   intensity_cap_od: float, distance_smooth_um: float,
                   relative_prominence: float = 0.0) -> np.ndarray:
    """Split a soma mask into one label per soma (seeded watershed; see module docstring).

    The landscape and its local maxima are computed once for the image; a connected piece
    of the mask with a single maximum is one soma as it is, and only pieces with several
    are flooded (watershed) and their basins merged — each in its own bounding box, so time
    and memory follow the stained area, not the image.

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean (Y, X) soma mask.
    smoothed : numpy.ndarray
        Smoothed stain density (or signal-to-noise) of the same shape.
    pixel_size_um : float
        Pixel size in µm.
    prominence_um : float
        Smallest prominence of a landscape maximum kept apart, in µm.
    intensity_weight_um_per_od : float
        µm of landscape height added per unit of density.
    intensity_cap_od : float
        Density above which the brightness term stops growing.
    distance_smooth_um : float
        Gaussian smoothing of the distance map, in µm.
    relative_prominence : float
        Smallest prominence as a fraction of the lower peak's height.

    Returns
    -------
    numpy.ndarray
        Label image, one label per soma.
    """
    from skimage.segmentation import watershed

    land = _landscape(mask, smoothed, pixel_size_um, intensity_weight_um_per_od,
                      intensity_cap_od, distance_smooth_um)
    # Local maxima (no higher 8-neighbour). A shoulder of a plateau may be taken too; it has
    # no prominence and is merged back below.
    maxima = land >= ndi.maximum_filter(land, size=3, mode="nearest")
    maxima &= mask
    pieces, n_pieces = ndi.label(mask)
    markers, n_markers = ndi.label(maxima, structure=np.ones((3, 3), bool))
    del maxima
    # Number of maxima in each piece (a maximum's plateau lies in a single piece).
    first = np.zeros(n_markers + 1, dtype=np.int64)
    sel = markers > 0
    first[markers[sel]] = pieces[sel]
    per_piece = np.bincount(first[1:], minlength=n_pieces + 1)
    # Pieces with at most one maximum keep their own number; the others are split below.
    out = pieces.copy()
    next_label = n_pieces
    h, w = mask.shape
    objects = ndi.find_objects(pieces)
    for k in np.nonzero(per_piece > 1)[0].tolist():
        sl = objects[k - 1]
        rs = slice(max(0, sl[0].start - 1), min(h, sl[0].stop + 1))
        cs = slice(max(0, sl[1].start - 1), min(w, sl[1].stop + 1))
        m = pieces[rs, cs] == k
        lnd = land[rs, cs]
        mk = np.where(m, markers[rs, cs], 0)
        ids = np.unique(mk)
        # Number the piece's maxima 1..n for the merging tables.
        mk = np.searchsorted(ids, mk).astype(np.int32) if ids[0] == 0 else \
            (np.searchsorted(ids, mk) + 1).astype(np.int32) * (mk > 0)
        on = mk > 0
        peaks = np.full(int(mk.max()) + 1, -np.inf)
        np.maximum.at(peaks, mk[on], lnd[on])
        if _surely_one(mk, lnd, m, peaks, prominence_um, relative_prominence):
            continue
        basins = watershed(-lnd, mk, mask=m)
        merged = merge_shallow_basins(basins, lnd, prominence_um, relative_prominence, peaks)
        uniq, dense = np.unique(merged[m], return_inverse=True)
        view = out[rs, cs]
        # The first part keeps the piece's number, the others get new ones.
        new = np.concatenate([[k], next_label + np.arange(1, len(uniq))]).astype(np.int32)
        view[m] = new[dense]
        next_label += len(uniq) - 1
    return out


def _object_quantile(labels: np.ndarray, values: np.ndarray, q: float) -> np.ndarray:
    """``q``-quantile of ``values`` in every label (index = label; 0 for absent labels).

    One partial sort per object in its bounding box: linear in the image, where a global
    sort of all object pixels is not.
    """
    n = int(labels.max())
    out = np.zeros(n + 1, dtype=np.float32)
    for lab, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        vals = values[sl][labels[sl] == lab]
        k = int(np.floor(q * (vals.size - 1)))
        out[lab] = np.partition(vals, k)[k]
    return out


def _cut_pale_seams(labels: np.ndarray, mask: np.ndarray, values: np.ndarray,
                    seam_ratio: float) -> np.ndarray:
    """Clear in ``mask`` the seams between touching objects that are paler than both.

    A seam is where two labels touch (4-connected); it is cut — both of its pixel rows set to
    background — when its mean density is below ``seam_ratio`` × the lower of the two objects'
    mean densities. Such a pale line is a gap between two cells and the next split should see
    two shapes; a seam as dark as the cells on both sides (a split through one elongated
    cell) is left alone.
    """
    n = int(labels.max())
    if n < 2:
        return mask
    flat = labels.ravel()
    obj_mean = np.bincount(flat, weights=values.ravel(), minlength=n + 1) / np.maximum(
        np.bincount(flat, minlength=n + 1), 1)
    h, w = labels.shape
    pairs = []
    for rows_a, cols_a, rows_b, cols_b in (
            (slice(0, h - 1), slice(None), slice(1, h), slice(None)),
            (slice(None), slice(0, w - 1), slice(None), slice(1, w))):
        la, lb = labels[rows_a, cols_a], labels[rows_b, cols_b]
        sel = (la != lb) & (la > 0) & (lb > 0)
        ia = np.flatnonzero(sel)
        # Flat indices of both pixels of each touching pair in the full image.
        ra, ca = np.unravel_index(ia, la.shape)
        pa = (ra + (rows_a.start or 0)) * w + ca + (cols_a.start or 0)
        pb = (ra + (rows_b.start or 0)) * w + ca + (cols_b.start or 0)
        pairs.append((pa, pb))
    pa = np.concatenate([p[0] for p in pairs])
    pb = np.concatenate([p[1] for p in pairs])
    if pa.size == 0:
        return mask
    a, b = flat[pa].astype(np.int64), flat[pb].astype(np.int64)
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = lo * (n + 1) + hi
    uniq, inv = np.unique(key, return_inverse=True)
    vflat = values.ravel()
    seam = np.bincount(inv, weights=0.5 * (vflat[pa] + vflat[pb])) / np.bincount(inv)
    ulo, uhi = uniq // (n + 1), uniq % (n + 1)
    cut = seam < seam_ratio * np.minimum(obj_mean[ulo], obj_mean[uhi])
    sel = cut[inv]
    out = mask.copy().ravel()
    out[pa[sel]] = False
    out[pb[sel]] = False
    return out.reshape(mask.shape)


def refine_by_object_contrast(labels: np.ndarray, smoothed: np.ndarray, fraction: float,
                              quantile: float, max_hole_px: int,
                              open_px: float = 0.0, cap: float = np.inf,
                              seam_ratio: float = 0.9) -> np.ndarray:
    """Return a mask of the pixels of each object above ``fraction`` × its ``quantile`` density.

    The level is at most ``cap``: the edge of a very dark object is sharp, so a lower level
    moves it little, while a high one would cut the paler cytoplasm between its Nissl bodies.
    Holes up to ``max_hole_px`` are filled, pale seams between touching objects cut (see
    :func:`_cut_pale_seams`) and the result opened with a disk of radius ``open_px``.

    Parameters
    ----------
    labels : numpy.ndarray
        Label image of the objects.
    smoothed : numpy.ndarray
        Smoothed stain density of the same shape.
    fraction : float
        Share of the object's reference density that a pixel must reach.
    quantile : float
        Quantile of the object's densities taken as its reference.
    max_hole_px : int
        Largest hole filled, in pixels.
    open_px : float
        Radius of the opening disk in pixels (0: no opening).
    cap : float
        Highest level used, in density units.
    seam_ratio : float
        How much paler than both sides a seam must be to be cut.

    Returns
    -------
    numpy.ndarray
        Boolean (Y, X) mask.
    """
    level = np.minimum(_object_quantile(labels, smoothed, quantile) * np.float32(fraction),
                       np.float32(min(cap, 3e38)))
    keep = smoothed > level[labels]
    keep &= labels > 0
    keep = fill_small_holes(keep, max_hole_px)
    keep = _cut_pale_seams(labels, keep, smoothed, seam_ratio)
    if open_px >= 1.0:
        keep = ndi.binary_opening(keep, structure=_disk(open_px))
    return keep


def trim_processes(labels: np.ndarray, pixel_size_um: float, fraction: float,
                   min_radius_um: float) -> np.ndarray:
    """Open each large object with a disk of ``fraction`` × its equivalent radius, in place.

    Cuts the stumps of dendrites off a soma outline: a motor neuron of 30 µm opened with a
    4.5 µm disk loses processes narrower than 9 µm but keeps its body. Only objects whose
    disk radius would exceed ``open``-scale (``min_radius_um``) are touched; of what remains
    the largest piece is kept.

    Parameters
    ----------
    labels : numpy.ndarray
        Label image, changed in place.
    pixel_size_um : float
        Pixel size in µm.
    fraction : float
        Disk radius as a fraction of the object's equivalent radius.
    min_radius_um : float
        Objects whose disk would be smaller than this are left alone.

    Returns
    -------
    numpy.ndarray
        ``labels``.
    """
    if fraction <= 0:
        return labels
    px = float(pixel_size_um)
    sizes = np.bincount(labels.ravel())
    radius_px = fraction * np.sqrt(sizes / np.pi)
    big = np.nonzero(radius_px * px >= min_radius_um)[0]
    big = big[big > 0]
    if big.size == 0:
        return labels
    objects = ndi.find_objects(labels)
    for lab in big.tolist():
        sl = objects[lab - 1]
        if sl is None:
            continue
        r = float(radius_px[lab])
        pad = int(np.ceil(r)) + 1
        m = np.pad(labels[sl] == lab, pad)
        opened = ndi.binary_opening(m, structure=_disk(r))[pad:-pad, pad:-pad]
        if not opened.any():
            continue
        pieces, n = ndi.label(opened)
        if n > 1:
            opened = pieces == (np.argmax(np.bincount(pieces.ravel())[1:]) + 1)
        view = labels[sl]
        view[(view == lab) & ~opened] = 0
    return labels


def relabel_sequential_by_size(labels: np.ndarray, min_size_px: int) -> np.ndarray:
    """Drop labels smaller than ``min_size_px`` and renumber the rest 1..n (int32).

    Parameters
    ----------
    labels : numpy.ndarray
        Label image.
    min_size_px : int
        Smallest object kept, in pixels.

    Returns
    -------
    numpy.ndarray
        int32 label image, labels ordered by size.
    """
    sizes = np.bincount(labels.ravel())
    keep = sizes >= max(1, min_size_px)
    keep[0] = False
    lut = np.zeros(len(sizes), dtype=np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels]


def segment_somata_classical(density: np.ndarray, pixel_size_um: float,
                             params: SomaSegmentationParams | None = None,
                             progress: Callable[[float, str], None] | None = None, *,
                             noise_sd: float | None = None,
                             foreground: np.ndarray | None = None) -> np.ndarray:
    """Label every soma in a background-flattened stain-density image.

    Parameters
    ----------
    density : ndarray, 2D float
        Stain density (optical density of the stain) with the neuropil level near 0 — the
        output of :func:`histoquant.segment.stain.stain_density` after
        :func:`histoquant.segment.background.flatten_background`.
    pixel_size_um : float
        Pixel size of ``density`` in µm.
    params : SomaSegmentationParams, optional
        Sizes and thresholds (defaults when omitted).
    progress : callable, optional
        ``progress(fraction, message)``.
    noise_sd : float, optional
        The neuropil's noise (density units) measured elsewhere — over the whole image when
        ``density`` is one tile of it (:func:`neuropil_noise` of the smoothed density) — instead
        of on ``density``.
    foreground : ndarray of bool, optional
        Where somata are, decided elsewhere (a pixel classifier's soma class,
        :func:`histoquant.learn.foreground.model_foreground`), of ``density``'s shape: it
        replaces the density threshold of step 1 (holes are still filled, processes opened
        off and specks dropped), and the splits and per-object thresholds follow as usual.

    Returns
    -------
    ndarray of int32
        Label image, one label per soma, 0 elsewhere.
    """
    p = params or SomaSegmentationParams()
    px = float(pixel_size_um)
    px2 = px * px

    def report(f: float, msg: str) -> None:
        if progress is not None:
            progress(f, msg)

    smoothed = ndi.gaussian_filter(np.asarray(density, dtype=np.float32), p.smooth_um / px) \
        if p.smooth_um > 0 else np.asarray(density, dtype=np.float32)
    report(0.1, "soma foreground")
    if foreground is not None:
        fg = np.asarray(foreground, dtype=bool)
        if fg.shape != smoothed.shape:
            raise ValueError(f"foreground of shape {fg.shape} for a density of shape "
                             f"{smoothed.shape}")
        # the mask goes through the same clean-up as a thresholded density (0.5: True)
        fg = soma_foreground(fg.astype(np.float32), px, 0.5, p.max_hole_um2, p.open_um,
                             p.min_area_um2)
    else:
        if noise_sd is None:
            noise_sd = neuropil_noise(smoothed)
        threshold = max(p.foreground_od, p.foreground_snr * noise_sd)
        fg = soma_foreground(smoothed, px, threshold, p.max_hole_um2, p.open_um,
                             p.min_area_um2)
    split = dict(intensity_weight_um_per_od=p.intensity_weight_um_per_od,
                 intensity_cap_od=p.intensity_cap_od, distance_smooth_um=p.distance_smooth_um,
                 relative_prominence=p.relative_prominence)
    report(0.3, "first split")
    labels = split_touching(fg, smoothed, px, prominence_um=p.first_prominence_um, **split)
    del fg
    report(0.55, "per-object threshold")
    mask = refine_by_object_contrast(labels, smoothed, p.refine_fraction, p.refine_quantile,
                                     int(p.max_hole_um2 / px2), min(p.open_um, 1.0) / px,
                                     p.refine_cap_od, p.seam_ratio)
    report(0.7, "final split")
    labels = split_touching(mask, smoothed, px, prominence_um=p.seed_prominence_um, **split)
    trim_processes(labels, px, p.trim_fraction, 1.5 * max(p.open_um, px))
    return relabel_sequential_by_size(labels, int(np.ceil(p.min_area_um2 / px2)))


def segment_somata(density: np.ndarray, pixel_size_um: float, engine: str = "classical",
                   **kwargs: Any) -> np.ndarray:
    """Label every soma with the named engine (see :data:`ENGINES`).

    Parameters
    ----------
    density : numpy.ndarray
        (Y, X) stain density (or signal-to-noise) image.
    pixel_size_um : float
        Pixel size in µm.
    engine : str
        A key of :data:`ENGINES`.
    **kwargs : object
        Passed to the engine (``params``, ``progress``).

    Returns
    -------
    numpy.ndarray
        int32 label image of the same shape.

    Raises
    ------
    ParamsError
        When the engine is unknown.
    """
    if engine not in ENGINES:
        from ..errors import ParamsError

        raise ParamsError(f"unknown soma segmentation engine {engine!r}; available: "
                          f"{', '.join(ENGINES)}")
    return ENGINES[engine](density, pixel_size_um, **kwargs)


#: Soma segmentation engines by name. Each takes (density, pixel_size_um, params=None,
#: progress=None) and returns an int32 label image of the same shape.
ENGINES: dict[str, Callable[..., np.ndarray]] = {"classical": segment_somata_classical}
