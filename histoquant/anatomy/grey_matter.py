"""Grey matter (the butterfly) and the central canal inside one section.

Grey matter: Nissl stains neuronal cell bodies, so grey matter has a higher optical density
than white matter; in fluorescence, grey matter usually differs from white matter in
brightness (denser vessels and cells, no myelin) in either direction. The signal is smoothed
over ≈ 25 µm inside the section only (normalised convolution, so the slide does not darken
the border), split in two by Otsu's threshold, and the class that does not form the
section's outer rim is grey matter. In fluorescence the sample also holds a 150 µm ring
around the section (white matter can be as faint as the slide, and the section found is
then only the butterfly: see :func:`segment_grey_matter`), and a bright class too small to
be grey matter (an artefact) is clipped away. In fluorescence, bright features narrower
than 30 µm (axon profiles in white matter, cells) are opened away first, and a bright
class far under the published grey share (a sparse stain such as ChAT, whose motor pools
outshine a faint grey neuropil) is re-split in three and four classes; one far over it
whose dim class is tissue (white matter half as bright as grey) is re-split on the section
alone. Dark features narrower than 30 µm (vessels, seams between stitched tiles) are
closed too. In a whole section, thin bands along the outline (bright meninges, a root's
stalk) are dropped from the grey matter. Small specks are dropped and small holes
(vessels, the canal) filled.

Central canal: a lumen is empty, so its tissue signal falls near the slide's. It is looked
for near the grey commissure, where the midline crosses the grey matter; when no lumen is
seen (adult canals are often closed) the commissure's centre stands in and the canal is
reported as estimated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from .tissue import erode, fill_small_holes, label_max, opening, remove_small

__all__ = ["GreyMatter", "segment_grey_matter", "Canal", "find_canal"]

_SMOOTH_UM = 25.0
_RIM_UM = 80.0
_SPECK_MM2 = 0.03
_HOLE_MM2 = 0.05
_CANAL_SEARCH_UM = 350.0
# Fluorescence: the ring around the section whose signal joins the grey/white threshold
# (at least the thickness of white matter beside a horn in a mouse cord, ≈ 100–300 µm).
_RING_UM = 150.0
# The section counts as "only the butterfly" when this share of it is in the bright class.
_BUTTERFLY_ONLY = 0.8
# Fluorescence: a section less convex than this is the butterfly found alone. Whole cord
# sections measure 0.93–0.97 (quality.py scores 0.93 as fully compact); the butterflies
# found alone in the mouse exports 0.76–0.88 [U: the gap between them].
_BUTTERFLY_SOLIDITY = 0.9
# Fluorescence: a bright class under this share of the section is an artefact, not the grey
# matter (40–47 %, Watson et al. 2009; ChAT's motor pools alone are ≈ 10–15 %) [U].
_MIN_BRIGHT_SHARE = 0.08
# A dark grey matter (lower contrast) fills at least this share of the section [U, from
# the published 40–47 % with room for error].
_MIN_DARK_GREY = 0.2
# Published grey-matter share of a lumbar cross-section: 40 % L2 to 47 % L4 (rat atlas
# plates, Watson et al. 2009, The Spinal Cord).
_GREY_SHARE = (0.40, 0.47)
# Fluorescence: bright features narrower than this (axon profiles, cells, fibre bundles)
# are opened away before the grey/white split (a motor neuron is ≈ 20–40 µm) [U].
_SPECK_OPEN_UM = 30.0
# Fluorescence, whole section: a bright class over this share of the section is more than
# the grey matter (the upper end of AnatomyParams.grey_fraction_range_pct; the mouse atlas
# drawings of L1–L6 measure 42–56 %) ...
_MAX_GREY_SHARE = 0.55
# ... when its dim class is tissue, at least this fraction of the bright class's level: the
# ring (slide) pulled Otsu's split into the white matter. Where the dim class is far
# fainter, the section found is partly the butterfly alone and its share is right (TH
# 280_L5: 0.25 of the bright class's level, 68 % bright, atlas 71 %); the whole cords
# split inside their white matter measure 0.45–0.51 (TH and Nissl 290_L6) [U: the gap].
_DIM_TISSUE = 0.35
# Fluorescence, whole section: the outer zone, as a fraction of the section's inscribed
# radius, where grey matter must be more than a band along the outline. Meninges, a bright
# superficial layer or a root's stalk make such bands; a dorsal horn tip reaching into the
# zone is ≥ 150 µm wide. The atlas drawings of whole mouse sections put 1 % of the grey
# matter at 0.06–0.2 of the inscribed radius [U].
_OUTER_ZONE = 0.25
# ... and what is narrower than twice this (µm) there is a band (meninges ≤ 50 µm thick,
# doubled for a bright layer under them) [U].
_BAND_UM = 50.0
_CANAL_NOMINAL_RADIUS_UM = 35.0   # rat lumen ≈ 70–115 × 30–45 µm (Watson et al. 2009)


@dataclass
class GreyMatter:
    """Grey-matter mask of a section and how it was found."""

    mask: np.ndarray
    threshold: float
    higher: bool          # grey matter has the higher signal


def _masked_smooth(signal: np.ndarray, mask: np.ndarray, sigma_px: float) -> np.ndarray:
    if sigma_px < 0.3:
        return np.where(mask, signal, 0.0)
    m = mask.astype(np.float32)
    num = ndi.gaussian_filter(signal * m, sigma_px)
    den = ndi.gaussian_filter(m, sigma_px)
    return np.where(mask, num / np.maximum(den, 1e-6), 0.0)


def segment_grey_matter(signal: np.ndarray, section: np.ndarray, px_um: float, *,
                        contrast: str = "auto", brightfield: bool = True,
                        field: np.ndarray | None = None,
                        classified: np.ndarray | None = None) -> GreyMatter:
    """Segment the grey matter of one section (working-resolution masks).

    Parameters
    ----------
    signal : ndarray
        Working-resolution tissue signal (fluorescence: 0 at the empty field's level).
    section : ndarray of bool
        The section's tissue mask. ``signal`` and ``section`` should reach at least
        ``_RING_UM`` (150 µm) beyond the section: fluorescence uses that ring.
    px_um : float
        Working pixel size in µm.
    contrast : {"auto", "higher", "lower"}
        Whether grey matter has the higher signal; "auto" decides (see module doc).
    brightfield : bool
        Signal is optical density (grey matter then higher under "auto").
    field : ndarray of bool, optional
        The imaged field (False on padding, whose tissue signal is taken as the empty
        field's, 0); None = everything.
    classified : ndarray of bool, optional
        Grey matter from a pixel classifier (:mod:`histoquant.anatomy.learned`), same shape:
        replaces the split of the signal (the threshold is then NaN); the cleaning after it
        (opening, bands along the outline, specks, holes, the largest-piece and depth
        checks) runs on it unchanged.

    Returns
    -------
    GreyMatter
        The grey-matter mask (inside ``section``), the threshold on the smoothed signal (NaN
        when the section is too small or flat to split) and whether grey matter was the higher
        class.

    Notes
    -----
    Fluorescence: white matter can be as faint as the empty slide, and the section found
    is then only the butterfly (or the butterfly and a few bright patches of white
    matter). Otsu's threshold inside such a section splits the grey matter itself (cells
    from neuropil), and nothing in the levels or the rim tells such a section from a whole
    cord (measured on the mouse exports: the butterfly's dim neuropil and a cord's white
    matter sit at the same share of the way from slide to grey). So the threshold is
    always taken on the section **and a ring of 150 µm around it**, smoothed over both:
    when the section is the butterfly, the ring is the faint white matter, the dim class
    it lacked; when it is the whole cord, the ring is slide, a small share of the sample
    below both classes, which moves Otsu's split little (it can move it between slide
    and white matter when white matter is close to grey: the section then comes out
    mostly grey, outside ``grey_fraction_range_pct``, and is flagged). The brightest 1 %
    is clipped first (a fold or a bright bar would pull the threshold up), and a bright
    class under 8 % of the section is clipped away and the split taken again.

    A section far from convex (solidity under 0.9: whole cords measure 0.93–0.97, the
    butterflies found alone in the mouse exports 0.76–0.88) is the butterfly alone, all of
    it grey matter from dim neuropil to bright cells; its split is taken on
    ``log(1 + signal)``, which puts the dim neuropil with the cells rather than with the
    ring. Not for whole sections: there the ring is slide, and on a log scale Otsu would
    split the slide from the tissue.

    Fluorescence, before the smoothing: a grey opening over 30 µm, so the split compares
    the neuropil's level and not the bright specks on it (on the mouse exports it raised
    the grey/white separation of ChAT and of 290_L6 Nissl, whose white matter is dotted
    with bright axon profiles). After the split, a whole section whose bright class is
    under 40 % of it (Watson et al. 2009: 40–47 % is grey) takes the lower threshold of a
    three- or four-class Otsu whose share is nearer that range (see ``_check_share``).
    A whole section whose bright class is over 55 % of it while its dim class is at least
    0.35 of the bright class's level (tissue, not slide) was split inside its white
    matter: the split is taken again on the section alone (see ``_check_excess``). In the
    outer quarter of the section's inscribed radius, grey matter narrower than 100 µm (a
    band along the outline: meninges, a root's stalk) is dropped (``_drop_outer_bands``).

    Local variance (fibre texture) was measured as a cue and is not used: white matter's
    axon profiles make it as textured as grey matter in ChAT and fluorescent Nissl.
    """
    if classified is not None:
        high = np.asarray(classified, bool) & section
        return GreyMatter(_clean_grey(high, high, section, px_um, brightfield), float("nan"),
                          True)
    ring = np.zeros_like(section)
    if not brightfield:
        ring = ~section & (ndi.distance_transform_edt(~section) * px_um <= _RING_UM)
        # padding holds no tissue: its tissue signal is the empty field's (0), and a level
        # below the field's own is noise around it
        inside = np.ones_like(section) if field is None else np.asarray(field, bool)
        signal = np.where(inside, np.maximum(signal, 0.0), 0.0).astype(np.float32)
        # the neuropil's level, not its specks: white matter in a sparse stain (ChAT) is
        # dark between bright axon profiles and fibre bundles, and grey matter holds bright
        # cells in a dimmer neuropil; an opening removes what is narrower than ≈ 30 µm
        # before the smoothing, so the split compares the tissue's floor
        k = round(_SPECK_OPEN_UM / px_um)
        if k >= 2:
            signal = ndi.grey_opening(signal, size=(k, k))
            # ... and dark features as narrow (a vessel, a seam between stitched tiles)
            # are not white matter either
            signal = ndi.grey_closing(signal, size=(k, k))
    g = _masked_smooth(signal, section | ring, _SMOOTH_UM / px_um)
    inner = erode(section, 40.0 / px_um)
    sample = g[inner] if inner.sum() > 50 else g[section]
    if ring.any():
        sample = np.concatenate([sample, g[ring]])
    if sample.size < 10 or float(np.ptp(sample)) == 0.0:
        return GreyMatter(np.zeros_like(section), float("nan"), True)
    # a section far from convex is the butterfly alone (see Notes): Otsu on the log signal
    log_scale = bool(ring.any()) and _solidity(section) < _BUTTERFLY_SOLIDITY
    t = _otsu(sample, log_scale)
    high = (g > t) & section
    for _ in range(2 if ring.any() else 0):
        # a bright artefact (a fold, a bar of mounting debris) larger than the clipped 1 %
        # is split off by Otsu alone; grey matter is never so small a share of a section
        # (40–47 %, Watson et al. 2009), so the artefact is clipped at Otsu's level and the split
        # taken again
        if float(high.sum()) >= _MIN_BRIGHT_SHARE * float(section.sum()):
            break
        sample = np.minimum(sample, t)
        t = _otsu(sample, log_scale)
        high = (g > t) & section
    if ring.any() and not log_scale:
        high, t = _check_share(g, sample, section, high, t)
        high, t = _check_excess(g, g[inner] if inner.sum() > 50 else g[section], section,
                                high, t)
    if contrast == "higher" or (contrast == "auto" and brightfield):
        higher = True
    elif contrast == "lower":
        higher = False
    else:
        higher = _grey_is_higher(high, section, px_um)
    grey = high if higher else (section & ~high)
    return GreyMatter(_clean_grey(grey, high, section, px_um, brightfield), t, higher)


def _clean_grey(grey: np.ndarray, high: np.ndarray, section: np.ndarray, px_um: float,
                brightfield: bool) -> np.ndarray:
    """Clean a grey-matter mask: opening, outer bands, specks, holes, shallow pieces."""
    px_area = (px_um / 1000.0) ** 2
    grey = opening(grey, 15.0 / px_um)
    if not brightfield:
        grey = _drop_outer_bands(grey, section, px_um)
    grey = remove_small(grey, _SPECK_MM2 / px_area)
    grey = fill_small_holes(grey, _HOLE_MM2 / px_area) & section
    lab, n = ndi.label(grey)
    if n:
        idx = np.arange(1, n + 1)
        sizes = ndi.sum_labels(grey, lab, index=idx)
        # a dark band along the surface (pia, a fold, edge staining) is not grey matter:
        # dorsal horns touch the surface, but most of a horn lies deep, and every part of
        # the butterfly reaches toward the centre (the commissure is the deepest tissue)
        depth = ndi.distance_transform_edt(section) * px_um
        shallow = np.asarray(ndi.mean(depth < _RIM_UM, lab, index=idx))
        deepest = label_max(depth, lab, n)[1:]
        # when the section is only the butterfly (white matter as faint as the slide),
        # all of the grey matter is near its surface: the depth tests only apply when
        # the section is more than the grey matter
        butterfly_only = float(high.sum()) >= _BUTTERFLY_ONLY * float(section.sum())
        ok = sizes >= 0.1 * sizes.max()
        if not butterfly_only:
            ok &= (shallow < 0.5) & (deepest >= 0.25 * depth.max())
        grey = np.isin(lab, idx[ok])
    return grey


def _check_share(g: np.ndarray, sample: np.ndarray, section: np.ndarray, high: np.ndarray,
                 t: float) -> tuple[np.ndarray, float]:
    """Fluorescence, whole section: lower the threshold if the bright share is too small.

    A bright class well under the published grey-matter share is part of the grey matter
    only (ChAT: the motor pools and the fibre-rich ventral horns above a faint dorsal
    neuropil). The sample is then split in three and in four classes (slide, white matter,
    faint grey, bright grey: the slide and the white matter can be one class or two), and of
    those lower thresholds the one whose bright share is nearest the published 40–47 % is
    taken, if nearer than Otsu's.
    """
    from skimage.filters import threshold_multiotsu

    n = float(section.sum())
    share = float(high.sum()) / n
    lo, hi = _GREY_SHARE
    if share >= lo:
        return high, t
    v = _clip_brightest(sample)
    cands = []
    for k in (3, 4):
        try:
            cands += [float(x) for x in threshold_multiotsu(v, classes=k) if x < t]
        except ValueError:       # too few distinct levels for k classes
            pass

    def gap(x: float) -> float:
        return max(lo - x, x - hi, 0.0)

    best, best_gap = (high, t), gap(share)
    for c in cands:
        h = (g > c) & section
        d = gap(float(h.sum()) / n)
        if d < best_gap:
            best, best_gap = (h, c), d
    return best


def _check_excess(g: np.ndarray, section_sample: np.ndarray, section: np.ndarray,
                  high: np.ndarray, t: float) -> tuple[np.ndarray, float]:
    """Fluorescence, whole section: split on the section alone if the bright share is too large.

    A bright class well over the grey-matter share whose dim class is tissue (not near the
    slide's level) means the ring, slide around a whole cord, pulled Otsu's split down into
    the white matter (fluorescent Nissl whose white matter is half as bright as the grey).
    The split is then taken on the section alone (``section_sample``), if that leaves at
    least the published 40 % bright: less, and it splits the grey matter itself (a sparse
    stain's motor pools from its neuropil).
    """
    n = float(section.sum())
    share = float(high.sum()) / n
    dim = section & ~high
    if share <= _MAX_GREY_SHARE or share >= _BUTTERFLY_ONLY or not dim.any():
        return high, t
    if float(np.median(g[dim])) < _DIM_TISSUE * float(np.median(g[high])):
        return high, t
    t2 = _otsu(section_sample)
    high2 = (g > t2) & section
    if t2 <= t or float(high2.sum()) < _GREY_SHARE[0] * n:
        return high, t
    return high2, t2


def _drop_outer_bands(grey: np.ndarray, section: np.ndarray, px_um: float) -> np.ndarray:
    """Fluorescence: grey matter without the thin bands along the section's outline.

    In the outer zone (depth under ``_OUTER_ZONE`` of the inscribed radius) only grey matter
    that survives an opening of ``_BAND_UM`` is kept: bright meninges, a bright superficial
    layer or a ventral root's stalk are bands under 100 µm thick following the outline,
    where a dorsal horn tip is wider. Not when the grey matter is most of the section (the
    butterfly alone: its horns make the outline).
    """
    if not grey.any() or float(grey.sum()) >= _BUTTERFLY_ONLY * float(section.sum()):
        return grey
    depth = ndi.distance_transform_edt(np.pad(section, 1))[1:-1, 1:-1]
    outer = depth < _OUTER_ZONE * float(depth.max())
    return grey & (~outer | opening(grey, _BAND_UM / px_um))


def _clip_brightest(values: np.ndarray) -> np.ndarray:
    """Return ``values`` with the brightest 1 % clipped.

    A fold or a bright artefact would pull a threshold up.
    """
    return np.clip(values, None, np.percentile(values, 99.0))


def _otsu(values: np.ndarray, log_scale: bool = False) -> float:
    """Return Otsu's threshold of :func:`_clip_brightest` ``values``.

    With ``log_scale``, on ``log(1 + value)`` of a signal ≥ 0.
    """
    from skimage.filters import threshold_otsu

    v = _clip_brightest(values)
    if log_scale:
        return float(np.expm1(threshold_otsu(np.log1p(np.maximum(v, 0.0)))))
    return float(threshold_otsu(v))


def _solidity(section: np.ndarray) -> float:
    """Area of the filled section over that of its convex hull."""
    from skimage.morphology import convex_hull_image

    filled = ndi.binary_fill_holes(section)
    return float(filled.sum() / max(int(convex_hull_image(filled).sum()), 1))


def _grey_is_higher(high: np.ndarray, section: np.ndarray, px_um: float) -> bool:
    """Fluorescence, ``contrast="auto"``: whether grey matter is the brighter class.

    The class that does not form the section's outer rim is grey matter, unless the rim is
    bright because the section found is only the (bright) butterfly: then the dim class
    inside is a few dim patches, where a dark butterfly in a bright cord would be at least
    a fifth of the section (40–47 % of a lumbar section is grey; Watson et al. 2009).
    """
    rim = section & ~erode(section, _RIM_UM / px_um)
    if not rim.any() or float(high[rim].mean()) < 0.5:
        return True
    low_inside = section & ~high & erode(section, _RIM_UM / px_um)
    return float(low_inside.sum()) < _MIN_DARK_GREY * float(section.sum())


@dataclass
class Canal:
    """Central canal: position (row, col, working px), lumen mask, and whether it was seen."""

    rc: tuple[float, float]
    lumen: np.ndarray
    found: bool


def find_canal(signal: np.ndarray, section: np.ndarray, grey: np.ndarray,
               point: np.ndarray, axis: np.ndarray, px_um: float) -> Canal:
    """Find the central canal near where the midline crosses the grey matter.

    Parameters
    ----------
    signal : ndarray
        Working-resolution tissue signal.
    section, grey : ndarray of bool
        Section tissue and grey-matter masks.
    point, axis : ndarray
        A point on the midline and the midline's unit direction, (row, col).
    px_um : float
        Working pixel size in µm.

    Returns
    -------
    Canal
        The canal's (row, col) in working px and its lumen mask; when no lumen is seen
        (``found`` False), a disk of the nominal canal radius at the commissure's centre.
    """
    from .tissue import disk

    prior = _commissure_centre(grey, section, point, axis)
    rr, cc = np.indices(section.shape)
    rad = _CANAL_SEARCH_UM / px_um
    near = (rr - prior[0]) ** 2 + (cc - prior[1]) ** 2 <= rad ** 2
    filled = ndi.binary_fill_holes(section)
    found = False
    lumen = np.zeros_like(section)
    rc = (float(prior[0]), float(prior[1]))
    # empty lumen: a small spot far below its surroundings (a grey closing fills spots
    # narrower than ≈ 120 µm, not the pale white matter), inside the outline, not at its
    # border (the fissure and the slide are outside, not in a hole)
    r0 = max(0, int(prior[0] - rad) - 1)
    c0 = max(0, int(prior[1] - rad) - 1)
    r1, c1 = int(prior[0] + rad) + 2, int(prior[1] + rad) + 2
    sub = signal[r0:r1, c0:c1]
    if sub.size:
        closed = ndi.grey_closing(sub, footprint=disk(max(2.0, 60.0 / px_um)))
        rel = (closed - sub) / np.maximum(closed, 1e-6)
        inside = erode(filled, 150.0 / px_um)[r0:r1, c0:c1]
        cand = (rel > 0.35) & near[r0:r1, c0:c1] & inside
        lab, n = ndi.label(cand)
        if n:
            idx = np.arange(1, n + 1)
            sizes = ndi.sum_labels(cand, lab, idx) * px_um**2
            peak = label_max(rel, lab, n)[1:]
            cents = np.array(ndi.center_of_mass(cand, lab, idx)).reshape(-1, 2) + np.array([r0, c0])
            # the published lumen is ≈ 70–115 × 30–45 µm; a partly closed one is smaller, but
            # a single dark-ringed pixel is noise
            lo_area, hi_area = max(2 * px_um**2, 300.0), 6 * np.pi * 60 * 25
            n_perp = np.array([-axis[1], axis[0]])
            best, best_score = None, -np.inf
            for i in range(n):
                if not lo_area <= sizes[i] <= hi_area:
                    continue
                off = abs((cents[i] - point) @ n_perp) * px_um
                dist = np.hypot(*(cents[i] - prior)) * px_um
                if off > 200.0:
                    continue
                score = peak[i] - dist / (2 * _CANAL_SEARCH_UM) - off / 400.0
                if score > best_score:
                    best, best_score = i, score
            if best is not None:
                lumen = np.zeros_like(section)
                lumen[r0:r1, c0:c1] = lab == best + 1
                rc = (float(cents[best][0]), float(cents[best][1]))
                found = True
    if not found:
        r = _CANAL_NOMINAL_RADIUS_UM / px_um
        lumen = ((rr - rc[0]) ** 2 + (cc - rc[1]) ** 2 <= max(r, 0.5) ** 2) & section
    return Canal(rc, lumen, found)


def _commissure_centre(grey: np.ndarray, section: np.ndarray, point: np.ndarray,
                       axis: np.ndarray) -> np.ndarray:
    """Middle of the grey-matter run on the midline nearest the grey matter's centre."""
    mask = grey if grey.any() else section
    coords = np.argwhere(mask).astype(float)
    t_mean = float(((coords - point) @ axis).mean()) if len(coords) else 0.0
    extent = max(section.shape)
    ts = np.arange(-extent, extent, 0.5)
    pts = point[None, :] + ts[:, None] * axis[None, :]
    ok = (pts[:, 0] >= 0) & (pts[:, 0] <= section.shape[0] - 1) & (pts[:, 1] >= 0) & \
        (pts[:, 1] <= section.shape[1] - 1)
    ts, pts = ts[ok], pts[ok]
    on = grey[np.round(pts[:, 0]).astype(int), np.round(pts[:, 1]).astype(int)] if len(pts) \
        else np.zeros(0, bool)
    if not on.any():
        # the two halves do not meet on the midline: take the narrowest gap between them,
        # near the grey matter's centre
        if not grey.any():
            return point + t_mean * axis
        gap = ndi.distance_transform_edt(~grey)
        inside = section[np.round(pts[:, 0]).astype(int), np.round(pts[:, 1]).astype(int)]
        g = gap[np.round(pts[:, 0]).astype(int), np.round(pts[:, 1]).astype(int)]
        cost = np.where(inside, g + 0.1 * np.abs(ts - t_mean), np.inf)
        return pts[int(np.argmin(cost))] if np.isfinite(cost).any() else \
            point + t_mean * axis
    lab, n = ndi.label(on)
    best_t, best_d = t_mean, np.inf
    for i in range(1, n + 1):
        seg = ts[lab == i]
        mid = 0.5 * (seg[0] + seg[-1])
        d = abs(mid - t_mean)
        if d < best_d:
            best_t, best_d = mid, d
    return point + best_t * axis
