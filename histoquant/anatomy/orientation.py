"""The dorsal–ventral axis of a section and which end of it is ventral.

Axis: a cord cross-section is mirror-symmetric about its midline, and only about it (dorsal
and ventral horns differ). The grey matter (weighted with the outline) is turned through
every candidate angle and compared with its own reflection about every vertical line at
once (an autoconvolution per row, by FFT); the best angle and line give the midline, for
any rotation of the section. Near ties (patchy or lopsided grey matter, whose four patches
mirror top-onto-bottom as well as left-onto-right) go to the outline's short axis: a
lumbar or cervical cross-section is wider than deep (:data:`_AXIS_PRIOR`).

Ventral end: four cues, each a signed relative difference between the two ends of the
axis (positive = the "+" end looks ventral):

1. dorsal horns reach the dorsolateral surface, ventral horns stay deep inside the white
   matter — the grey matter's nearest approach to the surface on each side;
2. ventral horns are broad and blunt, dorsal horns thin — the thickest grey matter on each
   side (largest inscribed half-width);
3. the ventral grey matter is the larger (ventral horns 0.6–1.0 mm² each, Watson et al. 2009);
4. the ventral median fissure slits the ventral surface on the midline: a notch of the
   outline near the axis that is a slit (the same depth filled by a 40 µm and a 120 µm
   closing, where a V fills in proportion to the disc) and is walled by white matter
   (its walls 60–180 µm or more from the grey matter). Not the dorsal surface's broad
   concavity, and not the V cut between the dorsal horns that a fluorescence image
   leaves when its dark dorsal columns fall outside the tissue mask (walled by grey).

Their weighted sum S decides; its size and the cues' agreement give the confidence,
``0.5 + 0.5·tanh(|S| / 0.6)·|S| / Σ w|cue|`` (a heuristic score, 0.5 = a coin toss, not a
calibrated probability; cues that contradict each other pull it toward 0.5).

When the white matter is as dark as the slide, the outline found is the butterfly itself:
the surface and fissure cues then have nothing to measure and the decision rests on weak
cues, with a confidence near 0.5 (flagged ``orientation_uncertain``) rather than a
confident guess.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

__all__ = ["Axis", "symmetry_axis", "ventral_cues", "reflect_dice"]

_SEARCH_PX_UM = 40.0
# A lumbar (and cervical) cross-section is wider than deep: rat L2–L5 3.8–4.1 × 2.9–3.6 mm
# (Watson et al. 2009), mouse ≈ 1.3–1.6× as wide as deep on the 5 lumbar sections of the shared
# data. So the dorsal–ventral axis is the outline's short axis. This prior only breaks near
# ties of the mirror score (patchy grey matter, a blob of a neighbouring section on the
# outline): it lowers the score of an axis at angle φ from the short axis by
# _AXIS_PRIOR · elongation · sin²φ, at most ≈ 0.03 for a 1.4:1 section, while a true
# midline beats the perpendicular line by 0.05–0.2 [U].
_AXIS_PRIOR = 0.1
# Weights from how often each cue held on 20 real mouse sections (4 stains) and the rat
# Nissl section: the horns' reach to the surface held in 19 of 21; the narrow-notch
# (fissure) and breadth cues about two thirds; grey-matter area half [U].
_CUE_WEIGHTS = {"surface": 1.0, "breadth": 0.5, "area": 0.25, "fissure": 0.5}
_CONFIDENCE_SCALE = 0.6
# Closing radii that tell a slit from a V (see _fissure_cue): the ventral median fissure
# is tens of µm wide in mouse and rat, so the small disc (fills notches < 80 µm wide) fills
# it along its whole depth; a V between the dorsal horns (mouth ≈ 200–400 µm in mouse)
# only at its tip. The large one (< 240 µm) fills most of such a V [U].
_SLIT_RADII_UM = (40.0, 120.0)
# Only notches within this distance of the axis are the median fissure or septum [U].
_FISSURE_BAND_UM = 150.0
# Median distance from a notch's walls to the grey matter at which it stops (first) and
# fully (second) counts as the fissure: the fissure's walls are the ventral funiculi,
# 240–370 µm from the grey matter on the 4 mouse atlas drawings and 420–580 µm on the rat
# Nissl section; the walls of a V cut between the dorsal horns are the horns' own edges,
# 30–85 µm from the grey-matter mask found there [U].
_FISSURE_WALL_UM = (60.0, 180.0)
# A notch of two or three pixels at 10 µm is the roughness of a mask's outline, not a
# slit: this much is taken off each end's slit score (it also keeps a rat's shallow dorsal
# median sulcus, ≈ 30 µm at 10 µm/px, from outweighing an unresolved fissure) [U].
_FISSURE_FLOOR_UM = 30.0
# Slit scores are compared as (a - b) / (a + b + this), so two tiny ones give ≈ 0 [U].
_FISSURE_EPS_UM = 30.0


@dataclass
class Axis:
    """A midline: a point on it, its unit direction (row, col), and the symmetry score."""

    point: np.ndarray
    direction: np.ndarray
    score: float

    @property
    def angle_deg(self) -> float:
        """Angle of ``direction`` (0 = pointing down, counter-clockwise positive)."""
        return float(np.degrees(np.arctan2(self.direction[1], self.direction[0])))


def _rotate(img: np.ndarray, theta_deg: float, size: int) -> np.ndarray:
    """Sample ``img`` so that a line at ``theta`` through its centre becomes vertical."""
    t = np.deg2rad(theta_deg)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    oc = np.array([(size - 1) / 2.0, (size - 1) / 2.0])
    ic = np.array([(img.shape[0] - 1) / 2.0, (img.shape[1] - 1) / 2.0])
    offset = ic - rot @ oc
    return ndi.affine_transform(img, rot, offset=offset, output_shape=(size, size), order=1,
                                mode="constant", cval=0.0)


def _best_reflection(rot: np.ndarray) -> tuple[float, float]:
    """(score, column) of the vertical mirror line that best matches ``rot`` to itself."""
    from scipy import fft

    n = rot.shape[1]
    m = fft.next_fast_len(2 * n, real=True)
    spec = fft.rfft(rot, n=m, axis=1)
    conv = fft.irfft(spec * spec, n=m, axis=1).sum(axis=0)
    energy = float((rot * rot).sum())
    if energy <= 0:
        return 0.0, (n - 1) / 2.0
    s = int(np.argmax(conv[: 2 * n - 1]))
    return float(conv[s] / energy), s / 2.0


def symmetry_axis(grey: np.ndarray, tissue: np.ndarray, px_um: float,
                  angle_range: tuple[float, float] = (0.0, 180.0),
                  fixed_angle: float | None = None) -> Axis:
    """Find the mirror axis of a section.

    Parameters
    ----------
    grey, tissue : ndarray of bool
        Working-resolution grey-matter and tissue masks of one section.
    px_um : float
        Working pixel size in µm.
    angle_range : (float, float)
        Angles (degrees, axis direction, 0 = vertical) searched.
    fixed_angle : float, optional
        Search only the line's position at this angle.

    Returns
    -------
    Axis
        The best midline and its symmetry score.
    """
    weight = grey.astype(np.float32) + 0.5 * tissue.astype(np.float32)
    rows, cols = np.nonzero(tissue)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    crop = weight[r0:r1, c0:c1]
    step = max(1, round(_SEARCH_PX_UM / px_um))
    if step > 1:
        h, w = crop.shape
        crop = np.pad(crop, ((0, (-h) % step), (0, (-w) % step)))
        crop = crop.reshape(crop.shape[0] // step, step, crop.shape[1] // step, step).mean(
            axis=(1, 3))
    # the rotated frame must hold the crop at any angle
    size = int(np.ceil(np.hypot(*crop.shape))) + 2
    cen = np.array([(crop.shape[0] - 1) / 2.0, (crop.shape[1] - 1) / 2.0])

    minor_deg, elongation = _minor_axis(tissue)

    def score(theta: float) -> tuple[float, float]:
        s, x = _best_reflection(_rotate(crop, theta, size))
        # tie-break toward the outline's short axis (see _AXIS_PRIOR): a cross-section is
        # wider than deep, so of two near-equal mirror lines the one across the long
        # axis is the midline
        off = np.deg2rad(theta - minor_deg)
        return s - _AXIS_PRIOR * elongation * float(np.sin(off) ** 2), x

    if fixed_angle is not None:
        best_t = float(fixed_angle)
        best_s, best_x = score(best_t)
    else:
        lo, hi = angle_range
        coarse = np.arange(lo, hi, 3.0)
        results = [(score(t), t) for t in coarse]
        (best_s, best_x), best_t = max(results, key=lambda r: r[0][0])
        for t in np.arange(best_t - 2.5, best_t + 2.6, 0.5):
            (s_, x_) = score(t)
            if s_ > best_s:
                best_s, best_x, best_t = s_, x_, float(t)
    t = np.deg2rad(best_t)
    direction = np.array([np.cos(t), np.sin(t)])
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    oc = (size - 1) / 2.0
    p_crop = rot @ np.array([0.0, best_x - oc]) + cen
    # back to working pixels: crop pixel i covers working [i*step, (i+1)*step)
    point = p_crop * step + (step - 1) / 2.0 + np.array([r0, c0])
    return Axis(point=point, direction=direction, score=best_s)


def _minor_axis(tissue: np.ndarray) -> tuple[float, float]:
    """Return the outline's short-axis direction and its elongation, from second moments.

    The direction is an axis angle (degrees, 0 = vertical) of the filled outline's short axis;
    the elongation is ``1 - minor/major`` (0 for a disc).
    """
    filled = ndi.binary_fill_holes(tissue)
    coords = np.argwhere(filled).astype(float)
    if len(coords) < 3:
        return 0.0, 0.0
    cov = np.cov(coords, rowvar=False)
    evals, evecs = np.linalg.eigh(cov)          # ascending: evecs[:, 0] is the short axis
    minor = evecs[:, 0]
    elongation = 1.0 - float(np.sqrt(max(evals[0], 0.0) / max(evals[1], 1e-12)))
    return float(np.degrees(np.arctan2(minor[1], minor[0]))), elongation


def reflect_dice(mask: np.ndarray, point: np.ndarray, direction: np.ndarray) -> float:
    """Return the Dice overlap of ``mask`` with its reflection about the line (point, direction).

    Parameters
    ----------
    mask : numpy.ndarray
        Boolean (Y, X) mask.
    point : numpy.ndarray
        (row, col) of a point on the line.
    direction : numpy.ndarray
        Unit (row, col) direction of the line.

    Returns
    -------
    float
        Dice coefficient in [0, 1]; 0 for an empty mask.
    """
    coords = np.argwhere(mask).astype(float)
    if not len(coords):
        return 0.0
    d = coords - point
    along = d @ direction
    refl = point + 2 * along[:, None] * direction[None, :] - d
    ri = np.round(refl).astype(int)
    ok = (ri[:, 0] >= 0) & (ri[:, 0] < mask.shape[0]) & (ri[:, 1] >= 0) & \
        (ri[:, 1] < mask.shape[1])
    hit = np.zeros(len(ri), bool)
    hit[ok] = mask[ri[ok, 0], ri[ok, 1]]
    return float(hit.sum() / len(coords))


def ventral_cues(grey: np.ndarray, tissue: np.ndarray, canal_rc: np.ndarray,
                 direction: np.ndarray, px_um: float, hull: np.ndarray | None = None
                 ) -> tuple[float, float, dict[str, float]]:
    """Decide which end of the axis is ventral.

    Parameters
    ----------
    grey, tissue : ndarray of bool
        Working-resolution grey-matter and tissue masks of one section (same shape).
    canal_rc : ndarray
        The central canal (row, col) in working pixels: the ends of the axis are the two
        sides of the line through it perpendicular to ``direction``.
    direction : ndarray
        Unit vector (row, col) along the dorsal–ventral axis; which end it points to is
        what is decided.
    px_um : float
        Working pixel size in µm (every distance of the cues is in µm).
    hull : ndarray of bool, optional
        Unused; kept so existing callers keep working.

    Returns
    -------
    sign : float
        +1 when ``direction`` points ventral, -1 when it points dorsal.
    confidence : float
        0.5 (undecided) to 1.
    cues : dict
        Each cue's signed value (positive = "+" end ventral).
    """
    coords = np.argwhere(grey).astype(float)
    if len(coords) < 10:
        return 1.0, 0.5, {k: 0.0 for k in _CUE_WEIGHTS}
    perp = np.array([-direction[1], direction[0]])
    d = coords - canal_rc
    t = d @ direction
    n = d @ perp
    lateral = np.abs(n) * px_um > 250.0
    plus, minus = (t > 0) & lateral, (t < 0) & lateral
    cues: dict[str, float] = {}

    def rel(a: float, b: float, eps: float = 0.0) -> float:
        return float((a - b) / (a + b + eps)) if (a + b + eps) > 0 else 0.0

    surf = ndi.distance_transform_edt(ndi.binary_fill_holes(tissue)) * px_um
    gi = coords.astype(int)
    ds = surf[gi[:, 0], gi[:, 1]]
    if plus.sum() >= 5 and minus.sum() >= 5:
        cues["surface"] = rel(np.percentile(ds[plus], 5), np.percentile(ds[minus], 5), 20.0)
    else:
        cues["surface"] = 0.0
    inner = ndi.distance_transform_edt(grey) * px_um
    di = inner[gi[:, 0], gi[:, 1]]
    if plus.sum() >= 5 and minus.sum() >= 5:
        cues["breadth"] = rel(np.percentile(di[plus], 95), np.percentile(di[minus], 95))
    else:
        cues["breadth"] = 0.0
    cues["area"] = rel(float((t > 0).sum()), float((t < 0).sum()))
    cues["fissure"] = _fissure_cue(tissue, canal_rc, direction, perp, px_um, hull, grey)
    total = sum(_CUE_WEIGHTS[k] * v for k, v in cues.items())
    spread = sum(_CUE_WEIGHTS[k] * abs(v) for k, v in cues.items())
    sign = 1.0 if total >= 0 else -1.0
    # cues that contradict each other lower the confidence: |sum| / sum of |cue| is 1
    # when all agree and falls toward 0 as they cancel
    agreement = abs(total) / spread if spread > 0 else 0.0
    confidence = 0.5 + 0.5 * float(np.tanh(abs(total) / _CONFIDENCE_SCALE)) * agreement
    cues["total"] = float(total)
    return sign, confidence, cues


def _closed(filled: np.ndarray, radius_px: float) -> np.ndarray:
    """Binary closing of ``filled`` with a disc, padded so the border does not clip it."""
    from .tissue import disk

    r = max(1.0, radius_px)
    pad = int(np.ceil(r)) + 1
    return ndi.binary_closing(np.pad(filled, pad), structure=disk(r))[pad:-pad, pad:-pad]


def _fissure_cue(tissue: np.ndarray, canal_rc: np.ndarray, direction: np.ndarray,
                 perp: np.ndarray, px_um: float, hull: np.ndarray | None = None,
                 grey: np.ndarray | None = None) -> float:
    """Relative slit depth of the outline on the midline at each end of the axis.

    The ventral median fissure is a slit: deep, with nearly parallel walls tens of µm
    apart, lined by the ventral white matter. Two other midline notches are not: the
    dorsal surface's broad concavity between the dorsal columns, and — when the dark
    dorsal columns of a fluorescence image fall outside the tissue mask — a V-shaped cut
    between the dorsal horns, wide at the surface and tapering to the dorsal median
    septum. Two tests tell them apart:

    * shape: a closing with a disc of radius r fills a notch down to where it is 2r wide,
      for a slit the same depth whatever r, for a V a depth proportional to r. So the
      depth filled by a small disc (S_s, :data:`_SLIT_RADII_UM`) times its share of the
      depth filled by a large one (S_s / S_l: ≈ 1 for a slit, less for a V) scores
      "slit";
    * walls: the fissure's walls are white matter, hundreds of µm from the grey matter;
      a notch walled by grey matter is where the outline followed the butterfly (dark
      white matter left out), not the fissure. The score is scaled by the median
      distance of the notch's walls to the grey matter, from 0 at
      :data:`_FISSURE_WALL_UM` [0] to 1 at [1].

    Only notches within :data:`_FISSURE_BAND_UM` of the axis count.
    """
    filled = ndi.binary_fill_holes(tissue)
    small, large = (_closed(filled, r / px_um) for r in _SLIT_RADII_UM)
    notch = large & ~filled
    coords = np.argwhere(notch).astype(float)
    if not len(coords):
        return 0.0
    d = coords - canal_rc
    t = d @ direction
    band = np.abs(d @ perp) * px_um <= _FISSURE_BAND_UM
    gi = coords.astype(int)
    depths = []
    for closed in (small, large):
        dep = (ndi.distance_transform_edt(closed) * px_um)[gi[:, 0], gi[:, 1]]
        dep[~closed[gi[:, 0], gi[:, 1]]] = 0.0
        depths.append(dep)
    if grey is not None and grey.any():
        to_grey = ndi.distance_transform_edt(~grey) * px_um
        lab, _ = ndi.label(notch)
        lab_at = lab[gi[:, 0], gi[:, 1]]
    score = []
    for end in (t > 0, t < 0):
        sel = band & end
        if not sel.any():
            score.append(0.0)
            continue
        s_s = float(depths[0][sel].max())
        s_l = float(depths[1][sel].max())
        e = s_s * s_s / max(s_l, s_s, 1e-9)
        if grey is not None and grey.any():
            # the walls: tissue pixels touching the notch piece(s) this end's band crosses
            piece = np.isin(lab, np.unique(lab_at[sel]))
            wall = ndi.binary_dilation(piece) & filled
            if wall.any():
                lo, hi = _FISSURE_WALL_UM
                e *= float(np.clip((np.median(to_grey[wall]) - lo) / (hi - lo), 0.0, 1.0))
        # a notch a few pixels deep is the mask outline's own roughness, not a slit
        score.append(max(e - _FISSURE_FLOOR_UM, 0.0))
    a, b = score
    return float((a - b) / (a + b + _FISSURE_EPS_UM))
