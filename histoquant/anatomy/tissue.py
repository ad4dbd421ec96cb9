"""Tissue mask and the cord cross-sections in it, at the working resolution.

Method: the smoothed tissue signal is split from the empty slide by Otsu's threshold; thin
membranes (meninges, fibres) are cut off by an opening; the distance transform of what is
left has one basin per compact body, so a watershed separates the cord from root fascicles
or a neighbouring section that touch it. A body counts as a section when it is large
(``min_section_area_mm2``) and thick (an inscribed radius of at least 0.3 mm); roots,
meninges, debris and the rings of mounting-medium bubbles are much thinner or smaller. Holes
larger than a vessel or the canal (a bubble over the tissue, a tear) stay holes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..segment.statistics import MAD_TO_SD

__all__ = ["TissuePieces", "find_tissue", "disk", "number_sections", "erode", "dilate",
           "opening", "remove_small", "fill_small_holes"]

# Lengths that define "thin" and "small" in this module, in µm / mm² [U]: meninges and
# loose fibres are ≤ 50 µm thick; a vessel lumen or the canal is far below 0.05 mm².
_SMOOTH_UM = 20.0
_OPEN_UM = 40.0
_MIN_RADIUS_UM = 300.0
_H_UM = 30.0
_MAX_HOLE_MM2 = 0.05
# Root fascicles pressed against the cord (≤ 0.5 mm across) are trimmed off: what does not
# survive an opening of this radius and lies further than _TRIM_KEEP_UM from what does.
_TRIM_RADIUS_UM = 250.0
_TRIM_KEEP_UM = 40.0
# Twin basins (similar peak and area: the two halves of one butterfly) are one body when
# their pass is at least this fraction of the lower peak: the grey commissure is
# ≈ 0.3–0.5 of a horn's thickness, two sections touching at a point far less [U].
_TWIN_PASS = 0.25


def disk(radius_px: float) -> np.ndarray:
    """Boolean disk footprint of the given radius in pixels (at least a single pixel).

    Parameters
    ----------
    radius_px : float
        Radius in px (rounded to a whole number; 0 or less gives a single pixel).

    Returns
    -------
    ndarray of bool
        Square ``(2r + 1, 2r + 1)`` footprint, True inside the disk.
    """
    r = max(0, round(radius_px))
    y, x = np.ogrid[-r: r + 1, -r: r + 1]
    return x * x + y * y <= r * r + 0.5


def erode(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Erosion by a disk, via the distance transform (fast for any radius).

    Parameters
    ----------
    mask : ndarray of bool
        Mask to erode.
    radius_px : float
        Disk radius in px; 0 or less returns a copy of ``mask``.

    Returns
    -------
    ndarray of bool
        The pixels of ``mask`` more than ``radius_px`` from its outside.
    """
    if radius_px <= 0:
        return mask.copy()
    return ndi.distance_transform_edt(mask) > radius_px


def dilate(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Dilation by a disk, via the distance transform.

    Parameters
    ----------
    mask : ndarray of bool
        Mask to dilate.
    radius_px : float
        Disk radius in px; 0 or less returns a copy of ``mask``.

    Returns
    -------
    ndarray of bool
        The pixels within ``radius_px`` of ``mask``.
    """
    if radius_px <= 0:
        return mask.copy()
    return ndi.distance_transform_edt(~mask) <= radius_px


def opening(mask: np.ndarray, radius_px: float) -> np.ndarray:
    """Open by a disk: remove everything thinner than ``2 * radius_px``.

    Parameters
    ----------
    mask : ndarray of bool
        Mask to open.
    radius_px : float
        Disk radius in px; 0 or less returns a copy of ``mask``.

    Returns
    -------
    ndarray of bool
        The opened mask (never outside ``mask``).
    """
    return dilate(erode(mask, radius_px), radius_px) & mask if radius_px > 0 else mask.copy()


def label_max(values: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Return the maximum of ``values`` per label 1..n (index 0 unused).

    Much faster than ``ndi.maximum`` with many pixels.

    Parameters
    ----------
    values : ndarray
        Values per pixel.
    labels : ndarray of int
        Label image of the same shape (0: background, not counted).
    n : int
        Highest label.

    Returns
    -------
    ndarray
        ``n + 1`` maxima; ``-inf`` at index 0 and for labels with no pixel.
    """
    out = np.full(n + 1, -np.inf)
    sel = labels > 0
    np.maximum.at(out, labels[sel], values[sel])
    return out


def remove_small(mask: np.ndarray, min_px: float) -> np.ndarray:
    """Drop connected pieces with fewer than ``min_px`` pixels.

    Parameters
    ----------
    mask : ndarray of bool
        Mask to clean.
    min_px : float
        Smallest piece kept, in px (pixel count).

    Returns
    -------
    ndarray of bool
        ``mask`` without its smaller connected pieces.
    """
    lab, n = ndi.label(mask)
    if n == 0:
        return mask.copy()
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    keep = sizes >= min_px
    keep[0] = False
    return keep[lab]


def fill_small_holes(mask: np.ndarray, max_px: float) -> np.ndarray:
    """Fill holes with at most ``max_px`` pixels; larger holes stay.

    Parameters
    ----------
    mask : ndarray of bool
        Mask whose holes to fill.
    max_px : float
        Largest hole filled, in px (pixel count).

    Returns
    -------
    ndarray of bool
        ``mask`` with its small holes filled.
    """
    holes = ndi.binary_fill_holes(mask) & ~mask
    return mask | (holes & ~remove_small(holes, max_px + 1))


@dataclass
class TissuePieces:
    """What :func:`find_tissue` found.

    Attributes
    ----------
    sections : list of ndarray of bool
        One full-frame working-resolution mask per section, numbered top-to-bottom,
        left-to-right.
    tissue : ndarray of bool
        Everything above the tissue threshold (sections, roots, meninges, debris).
    threshold : float
        Tissue threshold on the smoothed signal.
    contrast_ok : bool
        False when the image holds no tissue contrast at all (a blank slide).
    """

    sections: list[np.ndarray]
    tissue: np.ndarray
    threshold: float
    contrast_ok: bool


def _smooth(signal: np.ndarray, px_um: float, sigma_um: float) -> np.ndarray:
    s = sigma_um / px_um
    return ndi.gaussian_filter(signal, s) if s >= 0.3 else signal


def find_tissue(signal: np.ndarray, px_um: float, *, brightfield: bool,
                background: float = 0.0, min_section_area_mm2: float = 1.0,
                valid: np.ndarray | None = None, size_scale: float = 1.0,
                classified: np.ndarray | None = None) -> TissuePieces:
    """Find the tissue and the cord cross-sections in a working-resolution tissue signal.

    Parameters
    ----------
    signal : ndarray
        Tissue signal (≈ 0 on the empty slide), see :class:`~.working.WorkingImage`.
    px_um : float
        Working pixel size in µm.
    brightfield : bool
        Signal is optical density (then tissue must reach an OD of 0.08).
    background : float
        Raw background level subtracted from a fluorescence signal (for the contrast test).
    min_section_area_mm2 : float
        Smallest body kept as a section.
    valid : ndarray of bool, optional
        The imaged field (False on padding); None = everything.
    size_scale : float
        Cord size relative to a rat lumbar cord (1 rat, 0.45 mouse, 0.675 either): scales
        the thickness that tells a section from roots (0.3 mm for rat and for "either",
        whose cords are at least 0.4 mm thick in radius once the size prior is applied;
        0.2 mm for mouse) and the root-trimming radius.
    classified : ndarray of bool, optional
        Tissue from a pixel classifier (:mod:`histoquant.anatomy.learned`): replaces the
        threshold (and its contrast test); the cleaning and the cutting into sections run
        on it unchanged.

    Returns
    -------
    TissuePieces
        The section masks (ordered by :func:`number_sections`), the raw tissue mask, its
        threshold and whether the image holds tissue contrast (no sections when it does not).
    """
    from skimage.filters import threshold_otsu

    empty = TissuePieces([], np.zeros(signal.shape, bool), float("nan"), False)
    # rat-calibrated lengths scale with the cord (meninges, fascicles and the gaps
    # between them are smaller in a smaller cord)
    trim_scale = max(size_scale, 0.45)
    field = np.ones(signal.shape, bool) if valid is None else np.asarray(valid, bool)
    if not field.any():
        return empty
    if not brightfield and not field.all():
        field = field | _dark_padding(signal, field)
    # the padding along the field's edge (none when the whole image is imaged: no transform)
    ring = dilate(field, 2.0) & ~field if not field.all() else np.zeros(field.shape, bool)
    if brightfield:
        # Brightfield padding is set to the glass's optical density (0): a white canvas
        # is glass-like and helps the statistics; a black one would be the darkest "tissue"
        signal = np.where(field, signal, np.float32(0.0))
    elif ring.any():
        # Fluorescence padding takes the level of the padding along the field's edge (a
        # flat tile background, or the canvas), so smoothing neither brightens nor darkens
        # the edge; the statistics then come from the imaged field only, as a canvas of
        # one value would pull the field's level and noise towards it.
        signal = np.where(field, signal, np.float32(np.median(signal[ring])))
    if classified is not None:
        raw = np.asarray(classified, bool) & field
        return _cut_sections(raw, float("nan"), px_um, min_section_area_mm2, trim_scale,
                             size_scale) if raw.any() else empty
    s = _smooth(signal, px_um, _SMOOTH_UM * trim_scale)
    if float(np.ptp(s[field])) == 0.0:
        return empty
    vals = s.ravel() if brightfield else s[field]
    # Otsu's threshold on the whole image splits the slide from the tissue, unless white
    # matter is closer to the grey matter than to the slide: then it splits grey from the
    # rest. So Otsu only finds "clearly tissue"; the threshold is then put at 30 % of the
    # way from the slide's level to that tissue's (or 6 noise σ above the slide). A few
    # very dark pixels (pen marks, the scan border) are clipped first, as they would drag
    # Otsu up.
    otsu = float(threshold_otsu(np.clip(vals, None, np.percentile(vals, 99.5))))
    lo, hi = vals[vals <= otsu], vals[vals > otsu]
    if not len(lo) or not len(hi):
        return empty
    tissue_level = float(np.median(hi))
    if brightfield:
        bg = float(np.median(lo))
        noise = float(np.median(np.abs(lo - bg))) * MAD_TO_SD
        thr = min(otsu, bg + max(6.0 * noise, 0.3 * (tissue_level - bg)))
    else:
        # Fluorescence: white matter is often barely above the empty field (a faint
        # autofluorescence), so "below Otsu" mixes field and white matter. The field's
        # level is the lowest well-populated mode of the histogram instead, counting the
        # padding along the field's edge (a flat tile background is padding, and may be
        # all the empty field there is); the threshold sits 3 of the field's noise σ above
        # it, or a tenth of the way to the clear tissue.
        bg, noise = _lowest_mode(np.concatenate([vals, s[ring]]) if ring.any() else vals)
        thr = min(otsu, bg + max(3.0 * noise, 0.1 * (tissue_level - bg)))
    raw = (s > thr) & field
    if brightfield:
        ok = tissue_level >= 0.08
    else:
        ok = tissue_level >= 0.25 * (bg + background) + 4 * noise
    if not ok:
        return TissuePieces([], raw, thr, False)
    return _cut_sections(raw, thr, px_um, min_section_area_mm2, trim_scale, size_scale)


def _cut_sections(raw: np.ndarray, thr: float, px_um: float, min_section_area_mm2: float,
                  trim_scale: float, size_scale: float) -> TissuePieces:
    """Clean the tissue mask and cut it into sections (bodies, roots trimmed off)."""
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    px_area_mm2 = (px_um / 1000.0) ** 2
    hole_px = int(_MAX_HOLE_MM2 / px_area_mm2)
    open_um = _OPEN_UM * trim_scale
    body = opening(raw, open_um / px_um)
    body = remove_small(body, 0.05 / px_area_mm2)
    body = fill_small_holes(body, hole_px)
    if not body.any():
        return TissuePieces([], raw, thr, True)
    dist = ndi.distance_transform_edt(body) * px_um
    # h-maxima on a ≈ 30 µm grid (cheaper, and finer detail does not change the basins);
    # one seed per maximum, placed back on the working grid
    k = max(1, round(30.0 / px_um))
    small = dist[::k, ::k].astype(np.float32)
    lab_small, n_max = ndi.label(h_maxima(small, _H_UM))
    markers = np.zeros(dist.shape, np.int32)
    if n_max:
        cents = ndi.center_of_mass(np.ones_like(lab_small), lab_small, np.arange(1, n_max + 1))
        for i, (cr, cc) in enumerate(cents, start=1):
            markers[min(round(cr * k), dist.shape[0] - 1),
                    min(round(cc * k), dist.shape[1] - 1)] = i
        markers[~body] = 0
    basins = _merge_shallow(watershed(-dist, markers, mask=body), dist)
    n = int(basins.max())
    areas = ndi.sum_labels(np.ones_like(basins), basins, index=np.arange(1, n + 1))
    radii = label_max(dist, basins, n)[1:]
    keep = [i + 1 for i in range(n)
            if areas[i] * px_area_mm2 >= min_section_area_mm2
            and radii[i] >= _MIN_RADIUS_UM * min(1.0, size_scale / 0.675)]
    sections = []
    grow_px = open_um / px_um + 1
    for lab in keep:
        # every step below stays within grow_px of the basin: work in its box (plus a
        # one-pixel empty frame, so holes and components come out as on the whole image)
        rows, cols = np.nonzero(basins == lab)
        m = math.ceil(grow_px) + 2
        r0, c0 = max(0, rows.min() - m), max(0, cols.min() - m)
        r1 = min(raw.shape[0], rows.max() + m + 1)
        c1 = min(raw.shape[1], cols.max() + m + 1)
        bas = basins[r0:r1, c0:c1]
        core = bas == lab
        # give back the boundary detail the opening took, but nothing of a neighbour basin
        grown = dilate(core, grow_px) & raw[r0:r1, c0:c1] & ((bas == 0) | core)
        grown = fill_small_holes(grown, hole_px)
        trunk = opening(grown, _TRIM_RADIUS_UM * trim_scale / px_um)
        if trunk.any():
            grown &= dilate(trunk, _TRIM_KEEP_UM * trim_scale / px_um)
        lab_g, n_g = ndi.label(grown)
        if n_g > 1:
            sizes = ndi.sum_labels(grown, lab_g, index=np.arange(1, n_g + 1))
            grown = lab_g == (int(np.argmax(sizes)) + 1)
        full = np.zeros(raw.shape, bool)
        full[r0:r1, c0:c1] = grown
        sections.append(full)
    return TissuePieces(number_sections(sections), raw, thr, True)


# Padding at most this fraction of the field's range (its 99.5th percentile) below the
# field's dark end counts as empty field in fluorescence [U: 2 grey levels of a 0–100 range].
_DARK_PAD_FRACTION = 0.02


def _dark_padding(signal: np.ndarray, field: np.ndarray) -> np.ndarray:
    """Fluorescence padding that is the empty field itself: at the field's dark end.

    An export whose dark background was clipped to 0 has black "padding" that is the same 0
    as the empty slide around the section, and as white matter clipped with it (the mouse
    exports: 238_L2 NeuN, 214_L1 Nissl). Left out, the field holds no empty slide at all, and
    its lowest mode is the white matter, which then falls below the tissue threshold. Such
    padding is given back to the field. A fill well below the field's dark end (black
    padding around a grey tile) stays padding: it is not the tile's empty slide.
    """
    vals = signal[field]
    if not vals.size:
        return np.zeros(signal.shape, bool)
    lo, hi = np.percentile(vals, [1.0, 99.5])
    tol = _DARK_PAD_FRACTION * max(float(hi - lo), 1e-6)
    return ~field & (signal >= lo - tol) & (signal <= lo + tol)


def _lowest_mode(values: np.ndarray) -> tuple[float, float]:
    """Level and noise σ of the lowest well-populated mode of ``values`` (the empty field).

    A histogram of 256 bins between the 0.5th and 99.5th percentiles, lightly smoothed; the
    first local maximum holding at least a fifth of the highest one. The noise σ comes from
    the peak's half width at half maximum on its lower side (the upper side mixes with
    tissue; the tail below holds dark specks and edge pixels that are not noise).
    """
    lo_v, hi_v = np.percentile(values, [0.5, 99.5])
    if hi_v <= lo_v:
        return float(lo_v), 0.0
    h, e = np.histogram(values, bins=256, range=(lo_v, hi_v))
    h = ndi.gaussian_filter1d(h.astype(float), 1.5)
    # zero bins beyond both ends, so a mode in the first bin (a field clipped at 0) counts
    hp = np.concatenate([[0.0], h, [0.0]])
    peaks = np.nonzero((hp[1:-1] >= hp[:-2]) & (hp[1:-1] >= hp[2:]) & (h >= 0.2 * h.max()))[0]
    i = int(peaks[0]) if len(peaks) else int(np.argmax(h))
    mode = float(0.5 * (e[i] + e[i + 1]))
    j = i
    while j > 0 and h[j] > 0.5 * h[i]:
        j -= 1
    width = (e[1] - e[0]) * max(i - j, 1)
    return mode, float(width / 1.1774)


def _merge_shallow(basins: np.ndarray, dist: np.ndarray, ratio: float = 0.75) -> np.ndarray:
    """Merge neighbouring basins whose pass is nearly as high as the lower of their peaks.

    A root fascicle pressed on the cord meets it at a narrow neck (a low pass); the two
    halves of one elongated section meet along a broad front (a pass almost as high as
    their peaks) and are one body.
    """
    n = int(basins.max())
    if n < 2:
        return basins
    peaks = label_max(dist, basins, n)
    passes: dict[tuple[int, int], float] = {}
    for a, b, da, db in (
        (basins[:, :-1], basins[:, 1:], dist[:, :-1], dist[:, 1:]),
        (basins[:-1, :], basins[1:, :], dist[:-1, :], dist[1:, :]),
    ):
        sel = (a != b) & (a > 0) & (b > 0)
        if not sel.any():
            continue
        la, lb = np.minimum(a[sel], b[sel]), np.maximum(a[sel], b[sel])
        val = np.minimum(da[sel], db[sel])
        key = la.astype(np.int64) * (n + 1) + lb
        order = np.argsort(key)
        key, val = key[order], val[order]
        uniq, start = np.unique(key, return_index=True)
        best = np.maximum.reduceat(val, start)
        for k, v in zip(uniq, best):
            pair = (int(k // (n + 1)), int(k % (n + 1)))
            passes[pair] = max(passes.get(pair, 0.0), float(v))
    parent = list(range(n + 1))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    areas = np.bincount(basins.ravel(), minlength=n + 1).astype(float)
    for (a_, b_), v in sorted(passes.items(), key=lambda kv: -kv[1]):
        ra, rb = find(a_), find(b_)
        if ra == rb:
            continue
        low = min(peaks[ra], peaks[rb])
        # the two halves of a section whose white matter is too faint to be seen (only
        # the butterfly found) meet at the grey commissure, a narrow but real bridge; they
        # are twins (similar thickness and area), where a root is far smaller than the
        # cord and two sections touch at a point
        twins = (low >= 0.7 * max(peaks[ra], peaks[rb])
                 and min(areas[ra], areas[rb]) >= 0.5 * max(areas[ra], areas[rb]))
        if v >= ratio * low or (twins and v >= _TWIN_PASS * low):
            parent[rb] = ra
            peaks[ra] = max(peaks[ra], peaks[rb])
            areas[ra] += areas[rb]
    lut = np.array([find(i) for i in range(n + 1)])
    return lut[basins]


def number_sections(masks: list[np.ndarray]) -> list[np.ndarray]:
    """Order section masks top-to-bottom in rows, then left-to-right within a row.

    Two sections share a row when their vertical extents overlap by more than half of the
    shorter one.

    Parameters
    ----------
    masks : list of ndarray of bool
        One full-frame mask per section.

    Returns
    -------
    list of ndarray of bool
        The same masks in reading order.
    """
    if len(masks) < 2:
        return list(masks)
    info = []
    for m in masks:
        rows = np.nonzero(m.any(axis=1))[0]
        cols = np.nonzero(m.any(axis=0))[0]
        info.append((rows[0], rows[-1], 0.5 * (cols[0] + cols[-1])))
    order = sorted(range(len(masks)), key=lambda i: 0.5 * (info[i][0] + info[i][1]))
    rows_: list[list[int]] = []
    for i in order:
        r0, r1, _ = info[i]
        placed = False
        for row in rows_:
            j = row[0]
            overlap = min(r1, info[j][1]) - max(r0, info[j][0])
            if overlap > 0.5 * min(r1 - r0, info[j][1] - info[j][0]):
                row.append(i)
                placed = True
                break
        if not placed:
            rows_.append([i])
    ordered = [i for row in rows_ for i in sorted(row, key=lambda k: info[k][2])]
    return [masks[i] for i in ordered]
