"""Capillary-network phantom with pericyte sleeves, for the vasculature assay.

The network is drawn in micrometres, independently of any pixel grid, so the same network
can be rendered at any pixel size. Its truth (centreline length, diameters, pericyte coverage,
pericyte cell bodies) comes from the curves, never from pixels.

Geometry (capillary figures: rat anterior-horn stereology, Mayhew & Momoh 1974, J Anat)
---------------------------------------------------------------------------------------
- Two families of wavy capillaries ("rows" and "cols", ≈ 70 µm apart, crossing each other in
  projection), diagonal connectors between neighbouring rows (two T-junctions each), blind
  sprouts (one free end each) and one larger vessel crossing the field at 45°. Crossings are
  at 40° or more: at shallower angles two vessels overlap over a distance in projection and
  no method can measure both. Capillary diameters
  4–8 µm (rat anterior horn 6.4 µm [S]); the larger vessel 12–18 µm.
- The projected capillary length density is ≈ 25–35 mm/mm², the order of a 20–30 µm thick
  section of tissue at 1,200 mm/mm³ [S].
- Vessel ends inside the field are flat cuts perpendicular to the vessel, like a vessel
  leaving the section; where a connector or sprout joins a vessel, its centreline starts on
  the parent's centreline, so the true network length is the sum of the curve lengths.
- Pericyte sleeves cover intervals of the centreline (20–80 µm long, target coverage
  75 % [U]); their projection is a tube 0.75 µm wider in radius than the vessel. Some
  sleeves carry a soma ("bump on a log", ≈ 12 × 8 µm [U]) on one side of the vessel, with a
  DAPI nucleus in it. Endothelial nuclei sit on uncovered stretches; parenchymal nuclei away
  from vessels.

Rendering
---------
Each vessel is a flat-topped tube (the maximum projection of a membrane-labelled tube is
filled), anti-aliased over one pixel, blurred by a Gaussian PSF, multiplied by a smooth
staining-gain field, added to a smooth uneven background, with shot and read noise.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from ..io.image import Image

__all__ = ["Curve", "VesselNetwork", "VesselTruth", "make_vessel_network", "render_vessels",
           "vessel_truth", "vessel_phantom", "make_example"]

_STEP_UM = 0.1  # truth sampling step along curves; chord error < 1e-6 for curvature radii > 20 µm


@dataclass
class Curve:
    """One vessel centreline, sampled every 0.1 µm.

    Attributes
    ----------
    yx_um : ndarray, shape (N, 2)
        Centreline points (y, x) in µm, image origin at the top-left pixel corner.
    radius_um : float
        Vessel radius.
    family : str
        Which non-intersecting family the curve belongs to (rows, cols, links, sprouts, large).
    brightness : float
        Relative staining of this vessel (0–1).
    sleeves_um : list of (float, float)
        Arc-length intervals covered by a pericyte sleeve.
    dropouts_um : list of (float, float)
        Arc-length intervals where the endothelial stain is weak (gaps to bridge).
    free_start, free_end : bool
        Whether an end of the curve is a blind end (flat cut), not a junction or off-field.
    """

    yx_um: np.ndarray
    radius_um: float
    family: str
    brightness: float = 1.0
    sleeves_um: list[tuple[float, float]] = field(default_factory=list)
    dropouts_um: list[tuple[float, float]] = field(default_factory=list)
    free_start: bool = False
    free_end: bool = False

    @property
    def arc_um(self) -> np.ndarray:
        """Arc length at each sample, from the first."""
        d = np.linalg.norm(np.diff(self.yx_um, axis=0), axis=1)
        return np.concatenate([[0.0], np.cumsum(d)])

    def covered(self, arc: np.ndarray) -> np.ndarray:
        """Return whether arc positions lie in a pericyte sleeve.

        Parameters
        ----------
        arc : numpy.ndarray
            Positions along the curve, in µm from its start.

        Returns
        -------
        numpy.ndarray
            Boolean, one value per position.
        """
        return _in_intervals(arc, self.sleeves_um)


@dataclass
class VesselNetwork:
    """A vessel network in physical units, with pericyte somata and nuclei."""

    size_um: tuple[float, float]
    curves: list[Curve]
    somata: np.ndarray  # (K, 5): y, x, semi-axis along vessel, across, angle (rad)
    pericyte_nuclei: np.ndarray  # (K, 5) same layout; one per soma
    other_nuclei: np.ndarray  # (M, 5) endothelial and parenchymal nuclei
    seed: int = 0


@dataclass
class VesselTruth:
    """Exact truth of a network inside a field, from the curves."""

    pixel_size_um: float
    shape: tuple[int, int]
    vessel_length_um: float
    vessel_length_density_mm_per_mm2: float
    vessel_diameter_mean_um: float
    pericyte_length_um: float
    pericyte_coverage_length_pct: float
    pericyte_coverage_area_pct: float
    n_pericyte_bodies: int
    n_blind_ends: int
    n_junctions: int
    area_mm2: float

    def to_dict(self) -> dict:
        """Return the truth as a plain dict (for JSON).

        Returns
        -------
        dict
            Field name → value.
        """
        return asdict(self)


def _in_intervals(x: np.ndarray, intervals: list[tuple[float, float]]) -> np.ndarray:
    out = np.zeros(np.shape(x), dtype=bool)
    for a, b in intervals:
        out |= (x >= a) & (x < b)
    return out


def _wiggle(rng: np.random.Generator, amplitude_um: float,
            ) -> Callable[[np.ndarray], np.ndarray]:
    """Return a smooth lateral offset f(t): two sine terms, wavelengths 120–400 µm."""
    lam = rng.uniform(120, 400, 2)
    phase = rng.uniform(0, 2 * np.pi, 2)
    amp = rng.uniform(0.3, 0.5, 2) * amplitude_um

    def f(t):
        return sum(a * np.sin(2 * np.pi * t / la + p) for a, la, p in zip(amp, lam, phase))

    return f


def _line_curve(origin, direction, t_range, wiggle, step=_STEP_UM):
    """Sample a wavy line origin + t·u + f(t)·n at (nearly) constant arc-length steps."""
    u = np.asarray(direction, float) / np.linalg.norm(direction)
    n = np.array([-u[1], u[0]])
    t = np.arange(t_range[0], t_range[1], step * 0.5)
    pts = np.asarray(origin)[None] + t[:, None] * u[None] + wiggle(t)[:, None] * n[None]
    return _resample(pts, step), (np.asarray(origin), u, n, wiggle)


def _resample(pts: np.ndarray, step: float) -> np.ndarray:
    d = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(d)])
    n = max(2, int(np.floor(s[-1] / step)) + 1)
    si = np.linspace(0.0, s[-1], n)
    return np.stack([np.interp(si, s, pts[:, 0]), np.interp(si, s, pts[:, 1])], axis=1)


def _bezier(p0, p1, p2, step=_STEP_UM):
    t = np.linspace(0, 1, 4000)[:, None]
    pts = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    return _resample(pts, step)


def _clip_to_box(pts: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray | None:
    inside = np.all((pts >= lo) & (pts <= hi), axis=1)
    if not inside.any():
        return None
    idx = np.flatnonzero(inside)
    return pts[idx[0]: idx[-1] + 1]


def _sleeves(rng, length_um, coverage, sleeve_range_um):
    """Alternating covered/uncovered intervals with the expected covered fraction."""
    mean_cov = np.mean(sleeve_range_um)
    mean_gap = mean_cov * (1 - coverage) / max(coverage, 1e-6)
    out = []
    s = -rng.uniform(0, mean_cov + mean_gap)
    while s < length_um:
        a = s
        b = a + rng.uniform(*sleeve_range_um)
        if coverage > 0:
            out.append((max(a, 0.0), min(b, length_um)))
        s = b + rng.uniform(0.5, 1.5) * mean_gap
    return [(a, b) for a, b in out if b > a]


def make_vessel_network(
    size_um: tuple[float, float] = (512.0, 512.0),
    *,
    seed: int = 0,
    spacing_um: float = 70.0,
    capillary_diameter_um: tuple[float, float] = (4.0, 8.0),
    large_diameter_um: tuple[float, float] | None = (12.0, 18.0),
    coverage_pct: float = 75.0,
    sleeve_length_um: tuple[float, float] = (20.0, 80.0),
    wiggle_um: float = 10.0,
    link_fraction: float = 0.35,
    sprout_fraction: float = 0.25,
    soma_fraction: float = 0.5,
    dropouts_per_mm: float = 0.0,
    dropout_length_um: tuple[float, float] = (2.0, 4.0),
    parenchymal_nuclei_per_mm2: float = 1500.0,
) -> VesselNetwork:
    """Draw a random capillary network in µm.

    Parameters
    ----------
    size_um : (float, float)
        Field height and width in µm.
    seed : int
        Random seed; the same seed gives the same network whatever the pixel size.
    spacing_um : float
        Distance between neighbouring capillaries of a family.
    capillary_diameter_um, large_diameter_um : (float, float)
        Diameter ranges; ``large_diameter_um=None`` leaves out the larger vessel.
    coverage_pct : float
        Target pericyte coverage of the centreline length (the truth is computed exactly).
    sleeve_length_um : (float, float)
        Range of sleeve lengths.
    wiggle_um : float
        Lateral waviness of capillaries.
    link_fraction, sprout_fraction : float
        Fraction of mesh cells holding a diagonal connector, or a blind sprout.
    soma_fraction : float
        Fraction of sleeves carrying a pericyte soma (with its nucleus).
    dropouts_per_mm : float
        Short stretches of weak endothelial staining per mm of vessel (gaps).
    dropout_length_um : (float, float)
        Length range of those stretches.
    parenchymal_nuclei_per_mm2 : float
        Density of nuclei away from vessels.

    Returns
    -------
    VesselNetwork
        The curves, sleeves and nuclei, rendered by :func:`render_vessels`.
    """
    rng = np.random.default_rng(seed)
    h, w = size_um
    centre = np.array([h / 2, w / 2])
    half_diag = 0.5 * np.hypot(h, w) + 40.0
    lo, hi = np.array([-30.0, -30.0]), np.array([h + 30.0, w + 30.0])
    theta = rng.uniform(0, np.pi)
    u_rows = np.array([np.sin(theta), np.cos(theta)])  # (y, x)
    th_cols = theta + np.pi / 2 + rng.uniform(-0.1, 0.1)
    u_cols = np.array([np.sin(th_cols), np.cos(th_cols)])
    n_rows = np.array([-u_rows[1], u_rows[0]])
    offsets = np.arange(-half_diag, half_diag, spacing_um) + rng.uniform(0, spacing_um)

    def cap_radius():
        return rng.uniform(*capillary_diameter_um) / 2

    curves: list[Curve] = []
    rows = []
    for off in offsets:
        jitter = rng.uniform(-0.1, 0.1) * spacing_um
        origin = centre + (off + jitter) * n_rows
        pts, geo = _line_curve(origin, u_rows, (-half_diag, half_diag), _wiggle(rng, wiggle_um))
        rows.append(geo)
        clipped = _clip_to_box(pts, lo, hi)
        if clipped is not None and len(clipped) > 20:
            curves.append(Curve(clipped, cap_radius(), "rows", rng.uniform(0.6, 1.0)))
    n_cols = np.array([-u_cols[1], u_cols[0]])
    cols_t = []
    for off in np.arange(-half_diag, half_diag, spacing_um) + rng.uniform(0, spacing_um):
        jitter = rng.uniform(-0.1, 0.1) * spacing_um
        origin = centre + (off + jitter) * n_cols
        pts, _ = _line_curve(origin, u_cols, (-half_diag, half_diag), _wiggle(rng, wiggle_um))
        clipped = _clip_to_box(pts, lo, hi)
        # where this column crosses the rows' direction, in row coordinates
        cols_t.append(float(np.dot(origin - centre, u_rows)))
        if clipped is not None and len(clipped) > 20:
            curves.append(Curve(clipped, cap_radius(), "cols", rng.uniform(0.6, 1.0)))
    cols_t = np.sort(np.array(cols_t))

    def row_point(geo, t):
        origin, u, n, f = geo
        return origin + t * u + f(np.asarray(t)) * n

    large = None
    if large_diameter_um is not None:
        # At 45° to the rows and columns and ≈ 70° to the connectors: every crossing is
        # resolvable. (At 25° a capillary and the large vessel overlap over ≈ 25 µm, which no
        # projection can split into two lengths.)
        ang = theta + np.pi / 4  # the connectors run at θ − 68°
        u_l = np.array([np.sin(ang), np.cos(ang)])
        origin = centre + rng.uniform(-0.2, 0.2) * np.array([h, w])
        pts, _ = _line_curve(origin, u_l, (-half_diag, half_diag), _wiggle(rng, wiggle_um))
        clipped = _clip_to_box(pts, lo, hi)
        if clipped is not None and len(clipped) > 20:
            large = Curve(clipped, rng.uniform(*large_diameter_um) / 2, "large", 1.0)
    large_tree = cKDTree(large.yx_um[::20]) if large is not None else None
    col_curves = [c for c in curves if c.family == "cols"]
    col_tree = cKDTree(np.concatenate([c.yx_um[::20] for c in col_curves])) \
        if col_curves else None
    col_rmax = max((c.radius_um for c in col_curves), default=0.0)

    def clear_of_cols(pts, r):
        # connectors and sprouts run at ≈ 20° to the columns: keep them well apart, or the
        # two would overlap in projection over a stretch
        return col_tree is None or col_tree.query(pts[::20])[0].min() > col_rmax + r + 4.0

    # connectors and sprouts live in mesh cells between adjacent rows and columns
    for i in range(len(rows) - 1):
        for j in range(len(cols_t) - 1):
            t0, t1 = cols_t[j], cols_t[j + 1]
            r = rng.uniform()
            if r < link_fraction:
                ta = t0 + 0.3 * (t1 - t0)
                tb = ta + 0.4 * (t1 - t0)
                p0 = row_point(rows[i], ta)
                p2 = row_point(rows[i + 1], tb)
                mid = 0.5 * (p0 + p2)
                d = p2 - p0
                nrm = np.array([-d[1], d[0]]) / np.linalg.norm(d)
                p1 = mid + rng.uniform(-0.15, 0.15) * np.linalg.norm(d) * nrm
                pts = _bezier(p0, p1, p2)
                rl = cap_radius()
                if np.all((pts >= lo) & (pts <= hi)) and clear_of_cols(pts, rl):
                    curves.append(Curve(pts, rl, "links", rng.uniform(0.6, 1.0)))
            elif r < link_fraction + sprout_fraction:
                ta = t0 + rng.uniform(0.35, 0.65) * (t1 - t0)
                p0 = row_point(rows[i], ta)
                length = rng.uniform(15.0, 0.4 * spacing_um)
                ang = rng.uniform(-0.4, 0.4)
                c, s = np.cos(ang), np.sin(ang)
                dvec = np.array([c * n_rows[0] - s * n_rows[1], s * n_rows[0] + c * n_rows[1]])
                p2 = p0 + length * dvec
                p1 = 0.5 * (p0 + p2) + rng.uniform(-0.1, 0.1) * length * np.array(
                    [-dvec[1], dvec[0]])
                pts = _bezier(p0, p1, p2)
                rs = cap_radius()
                # a sprout must not run into the large vessel (its end would be hidden)
                clear = large_tree is None or large_tree.query(pts[::20])[0].min() > \
                    large.radius_um + rs + 5.0
                if clear and clear_of_cols(pts, rs) and np.all((pts >= lo) & (pts <= hi)):
                    curves.append(Curve(pts, rs, "sprouts", rng.uniform(0.6, 1.0),
                                        free_end=True))
    if large is not None:
        curves.append(large)

    somata, peri_nuclei, endo_nuclei = [], [], []
    for c in curves:
        arc = c.arc_um
        total = arc[-1]
        c.sleeves_um = _sleeves(rng, total, coverage_pct / 100.0, sleeve_length_um)
        if dropouts_per_mm > 0:
            k = rng.poisson(dropouts_per_mm * total / 1000.0)
            starts = rng.uniform(0, total, k)
            c.dropouts_um = [(s, s + rng.uniform(*dropout_length_um)) for s in starts]
        tangent = np.gradient(c.yx_um, axis=0)
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
        for a, b in c.sleeves_um:
            if b - a < 25 or rng.uniform() > soma_fraction:
                continue
            k = int(np.searchsorted(arc, 0.5 * (a + b)))
            k = min(k, len(arc) - 1)
            t = tangent[k]
            nrm = np.array([-t[1], t[0]]) * rng.choice([-1, 1])
            ang = np.arctan2(t[0], t[1])
            centre_s = c.yx_um[k] + nrm * (c.radius_um + 2.0)
            somata.append([*centre_s, 6.0, 4.0, ang])
            peri_nuclei.append([*(c.yx_um[k] + nrm * (c.radius_um + 2.0)), 4.5, 2.5, ang])
        # endothelial nuclei on long uncovered stretches
        edges = [0.0] + [v for ab in c.sleeves_um for v in ab] + [total]
        for a, b in zip(edges[::2], edges[1::2]):
            if b - a > 20 and rng.uniform() < 0.7:
                k = min(int(np.searchsorted(arc, 0.5 * (a + b))), len(arc) - 1)
                t = tangent[k]
                endo_nuclei.append([*c.yx_um[k], 6.0, min(2.5, c.radius_um * 0.8),
                                    np.arctan2(t[0], t[1])])
    # parenchymal nuclei, at least 10 µm clear of any vessel wall and of each other
    n_par = rng.poisson(parenchymal_nuclei_per_mm2 * h * w / 1e6)
    all_pts = np.concatenate([c.yx_um[::10] for c in curves]) if curves else np.zeros((0, 2))
    rmax = max((c.radius_um for c in curves), default=0.0)
    tree = cKDTree(all_pts) if len(all_pts) else None
    cand = rng.uniform([0, 0], [h, w], size=(n_par * 3, 2))
    others = []
    placed = cKDTree(np.asarray(somata)[:, :2]) if somata else None
    for p in cand:
        if len(others) >= n_par:
            break
        if tree is not None and tree.query(p)[0] < rmax + 10:
            continue
        if placed is not None and placed.query(p)[0] < 12:
            continue
        if others and np.min(np.linalg.norm(np.asarray(others)[:, :2] - p, axis=1)) < 10:
            continue
        others.append([*p, rng.uniform(3.5, 5.0), rng.uniform(2.5, 3.5),
                       rng.uniform(0, np.pi)])
    arr = lambda x: np.asarray(x, float).reshape(-1, 5)  # noqa: E731
    return VesselNetwork((float(h), float(w)), curves, arr(somata), arr(peri_nuclei),
                         arr(endo_nuclei + others), seed)


# --------------------------------------------------------------------------------- truth

def _segments_in(curve: Curve, shape: tuple[int, int], px: float,
                 mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lengths of the 0.1 µm steps of a curve and which lie inside the field (and mask)."""
    p = curve.yx_um
    mid = 0.5 * (p[1:] + p[:-1])
    seg = np.linalg.norm(np.diff(p, axis=0), axis=1)
    h, w = shape[0] * px, shape[1] * px
    inside = (mid[:, 0] >= 0) & (mid[:, 0] < h) & (mid[:, 1] >= 0) & (mid[:, 1] < w)
    if mask is not None:
        r = np.clip((mid[:, 0] / px).astype(int), 0, shape[0] - 1)
        c = np.clip((mid[:, 1] / px).astype(int), 0, shape[1] - 1)
        inside &= mask[r, c]
    arc_mid = np.concatenate([[0.0], np.cumsum(seg)])[:-1] + 0.5 * seg
    return seg, inside, arc_mid


def vessel_truth(network: VesselNetwork, pixel_size_um: float, shape: tuple[int, int],
                 mask: np.ndarray | None = None) -> VesselTruth:
    """Return the exact truth of ``network`` in a field of ``shape`` pixels (and in ``mask``).

    Lengths are sums of the curves' 0.1 µm chords whose midpoints lie in the field, so they
    do not depend on the pixel size except through the field's edges (and the mask's
    pixels, when a mask is given).

    Parameters
    ----------
    network : VesselNetwork
        The network.
    pixel_size_um : float
        Pixel size of the field in µm.
    shape : tuple of int
        Height and width of the field in pixels.
    mask : numpy.ndarray, optional
        Boolean (Y, X) mask limiting the truth to a region.

    Returns
    -------
    VesselTruth
        Lengths, coverage and diameters.
    """
    px = float(pixel_size_um)
    total = covered = wdiam = warea = wcov_area = 0.0
    n_blind = n_junc = 0
    h_um, w_um = shape[0] * px, shape[1] * px
    for c in network.curves:
        seg, inside, arc_mid = _segments_in(c, shape, px, mask)
        length = float(seg[inside].sum())
        cov = float(seg[inside & c.covered(arc_mid)].sum())
        total += length
        covered += cov
        wdiam += length * 2 * c.radius_um
        warea += length * 2 * c.radius_um
        wcov_area += cov * 2 * (c.radius_um)
        for end, flag in ((c.yx_um[0], c.free_start), (c.yx_um[-1], c.free_end)):
            if 0 <= end[0] < h_um and 0 <= end[1] < w_um:
                if flag:
                    n_blind += 1
                elif c.family in ("links", "sprouts"):
                    n_junc += 1
    bodies = network.somata
    if len(bodies):
        r = (bodies[:, 0] / px).astype(int)
        cc = (bodies[:, 1] / px).astype(int)
        ok = (r >= 0) & (r < shape[0]) & (cc >= 0) & (cc < shape[1])
        if mask is not None:
            ok[ok] &= mask[r[ok], cc[ok]]
        n_bodies = int(ok.sum())
    else:
        n_bodies = 0
    area_mm2 = (float(mask.sum()) * px * px if mask is not None else h_um * w_um) / 1e6
    return VesselTruth(
        pixel_size_um=px,
        shape=(int(shape[0]), int(shape[1])),
        vessel_length_um=total,
        vessel_length_density_mm_per_mm2=total / 1000.0 / area_mm2 if area_mm2 else 0.0,
        vessel_diameter_mean_um=wdiam / total if total else float("nan"),
        pericyte_length_um=covered,
        pericyte_coverage_length_pct=100.0 * covered / total if total else float("nan"),
        pericyte_coverage_area_pct=100.0 * wcov_area / warea if warea else float("nan"),
        n_pericyte_bodies=n_bodies,
        n_blind_ends=n_blind,
        n_junctions=n_junc,
        area_mm2=area_mm2,
    )


# ------------------------------------------------------------------------------ rendering

def _ramp(z: np.ndarray) -> np.ndarray:
    """Fraction of a pixel inside an edge at signed distance ``z`` pixels (linear, 1 px)."""
    return np.clip(z + 0.5, 0.0, 1.0)


def _render_family(curves: list[Curve], shape: tuple[int, int], px: float,
                   pericyte_pad_um: float, dropout_level: float,
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Endothelium and pericyte-sleeve coverage of one family of non-touching curves.

    Each pixel takes its nearest centreline sample; within a family no two curves come
    closer than a few vessel diameters, so the nearest sample decides. Families are
    combined by maximum, which renders crossings as a union of tubes.
    """
    endo = np.zeros(shape, np.float32)
    peri = np.zeros(shape, np.float32)
    if not curves:
        return endo, peri
    stride = max(1, int(np.floor(px / 2 / _STEP_UM)))
    pts, tan, rad, bright, cov, drop, end_sign = [], [], [], [], [], [], []
    for c in curves:
        arc = c.arc_um
        t = np.gradient(c.yx_um, axis=0)
        t /= np.linalg.norm(t, axis=1, keepdims=True)
        idx = np.arange(0, len(arc), stride)
        if idx[-1] != len(arc) - 1:
            idx = np.append(idx, len(arc) - 1)
        pts.append(c.yx_um[idx])
        tan.append(t[idx])
        rad.append(np.full(len(idx), c.radius_um))
        bright.append(np.full(len(idx), c.brightness))
        cov.append(c.covered(arc[idx]))
        drop.append(_in_intervals(arc[idx], c.dropouts_um))
        es = np.zeros(len(idx), np.int8)
        es[0], es[-1] = -1, 1
        end_sign.append(es)
    pts = np.concatenate(pts)
    tan, rad, bright = np.concatenate(tan), np.concatenate(rad), np.concatenate(bright)
    cov, drop, end_sign = np.concatenate(cov), np.concatenate(drop), np.concatenate(end_sign)
    reach = float(rad.max()) + pericyte_pad_um + 2 * px
    # candidate pixels: within `reach` of a sample, found by dilating the sample pixels
    rr = np.floor(pts[:, 0] / px).astype(np.int64)
    cc = np.floor(pts[:, 1] / px).astype(np.int64)
    seeds = np.zeros(shape, np.uint8)
    k = int(np.ceil(reach / px)) + 1
    ok = (rr >= -k) & (rr < shape[0] + k) & (cc >= -k) & (cc < shape[1] + k)
    seeds[np.clip(rr[ok], 0, shape[0] - 1), np.clip(cc[ok], 0, shape[1] - 1)] = 1
    band = ndi.maximum_filter(seeds, size=2 * k + 1)
    del seeds
    tree = cKDTree(pts)
    rows, cols = np.nonzero(band)
    del band
    chunk = 2_000_000
    for s in range(0, len(rows), chunk):
        r, c = rows[s:s + chunk], cols[s:s + chunk]
        p = np.stack([(r + 0.5) * px, (c + 0.5) * px], axis=1)
        _, j = tree.query(p, workers=-1)
        v = p - pts[j]
        along = np.einsum("ij,ij->i", v, tan[j])
        perp = np.abs(v[:, 0] * tan[j, 1] - v[:, 1] * tan[j, 0])
        beyond = along * end_sign[j]  # > 0 past a curve end
        cut = np.where(end_sign[j] != 0, _ramp(-beyond / px), 1.0)
        e = _ramp((rad[j] - perp) / px) * cut
        stain = bright[j] * np.where(drop[j], dropout_level, 1.0)
        endo[r, c] = (e * stain).astype(np.float32)
        pe = _ramp((rad[j] + pericyte_pad_um - perp) / px) * cut * cov[j]
        peri[r, c] = pe.astype(np.float32)
    return endo, peri


def _render_ellipses(img: np.ndarray, ellipses: np.ndarray, px: float, value: float = 1.0,
                     ) -> None:
    """Draw anti-aliased filled ellipses (y, x, a, b, angle in µm/rad) by maximum."""
    h, w = img.shape
    for y, x, a, b, ang in ellipses:
        m = max(a, b) + px
        r0, r1 = int(max(0, (y - m) / px)), int(min(h, (y + m) / px + 1))
        c0, c1 = int(max(0, (x - m) / px)), int(min(w, (x + m) / px + 1))
        if r0 >= r1 or c0 >= c1:
            continue
        yy, xx = np.mgrid[r0:r1, c0:c1]
        dy, dx = (yy + 0.5) * px - y, (xx + 0.5) * px - x
        ca, sa = np.cos(ang), np.sin(ang)
        u = dx * ca + dy * sa  # along the major axis
        v = -dx * sa + dy * ca
        rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
        cover = _ramp((1 - rho) * min(a, b) / px).astype(np.float32) * value
        np.maximum(img[r0:r1, c0:c1], cover, out=img[r0:r1, c0:c1])


def _smooth_field(shape, rng, lo, hi, cells=5):
    """Return a smooth random field between lo and hi (cubic interpolation of a coarse grid)."""
    grid = rng.uniform(0, 1, (cells + 1, cells + 1)).astype(np.float32)
    zoom = (shape[0] / cells, shape[1] / cells)
    f = ndi.zoom(grid, zoom, order=3, mode="nearest", grid_mode=True)[: shape[0], : shape[1]]
    f -= f.min()
    f /= max(float(f.max()), 1e-6)
    return (lo + (hi - lo) * f).astype(np.float32)


def render_vessels(
    network: VesselNetwork,
    pixel_size_um: float,
    shape: tuple[int, int] | None = None,
    *,
    seed: int = 0,
    psf_sigma_um: float = 0.5,
    amplitude: float = 800.0,
    pericyte_amplitude: float = 600.0,
    background: float = 150.0,
    background_variation: float = 0.5,
    staining_gain: tuple[float, float] = (0.5, 1.0),
    read_noise: float = 12.0,
    dropout_level: float = 0.15,
    pericyte: bool = True,
    dapi: bool = False,
    pericyte_pad_um: float = 0.75,
) -> Image:
    """Render ``network`` at ``pixel_size_um`` as a uint16 fluorescence image.

    Parameters
    ----------
    network : VesselNetwork
    pixel_size_um : float
        Pixel size; the field is ``network.size_um`` unless ``shape`` is given.
    shape : (int, int), optional
        Image shape in pixels (the field is then shape × pixel size, from the origin).
    seed : int
        Noise and field seed (independent of the network's).
    psf_sigma_um : float
        Gaussian PSF standard deviation.
    amplitude, pericyte_amplitude, background : float
        Counts of a fully stained vessel/sleeve above background, and the mean background.
    background_variation : float
        Relative peak-to-peak variation of the smooth background (0.5 = ±25 %).
    staining_gain : (float, float)
        Range of a smooth multiplicative staining field (uneven staining).
    read_noise : float
        Gaussian read noise in counts (shot noise is added as well, √counts).
    dropout_level : float
        Relative endothelial staining inside dropout stretches.
    pericyte, dapi : bool
        Whether to add the pericyte and DAPI channels.
    pericyte_pad_um : float
        How much wider in radius a pericyte sleeve is than its vessel.

    Returns
    -------
    Image
        Axes ``YXC`` with channels ``endothelium`` (, ``pericyte``, ``dapi``).
    """
    px = float(pixel_size_um)
    if shape is None:
        shape = (round(network.size_um[0] / px), round(network.size_um[1] / px))
    rng = np.random.default_rng(seed)
    endo = np.zeros(shape, np.float32)
    peri = np.zeros(shape, np.float32)
    families = sorted({c.family for c in network.curves})
    for fam in families:
        e, p = _render_family([c for c in network.curves if c.family == fam], shape, px,
                              pericyte_pad_um, dropout_level)
        np.maximum(endo, e, out=endo)
        np.maximum(peri, p, out=peri)
        del e, p
    if pericyte:
        _render_ellipses(peri, network.somata, px)
    sigma = psf_sigma_um / px
    channels = [("endothelium", endo, amplitude)]
    if pericyte:
        channels.append(("pericyte", peri, pericyte_amplitude))
    if dapi:
        nuc = np.zeros(shape, np.float32)
        _render_ellipses(nuc, network.pericyte_nuclei, px)
        _render_ellipses(nuc, network.other_nuclei, px)
        channels.append(("dapi", nuc, amplitude))
    out = np.empty((*shape, len(channels)), np.uint16)
    for i, (_, img, amp) in enumerate(channels):
        if sigma > 0.05:
            img = ndi.gaussian_filter(img, sigma, mode="nearest")
        gain = _smooth_field(shape, rng, *staining_gain)
        bg = _smooth_field(shape, rng, 1 - background_variation / 2,
                           1 + background_variation / 2) * background
        signal = img * gain * amp + bg
        del gain, bg
        noise = rng.standard_normal(shape, dtype=np.float32)
        noise *= np.sqrt(signal + read_noise**2)
        signal += noise
        del noise
        out[..., i] = np.clip(np.rint(signal), 0, 65535).astype(np.uint16)
        del signal
    names = tuple(n for n, _, _ in channels)
    return Image(out, axes="YXC", pixel_size_um=px, channel_names=names,
                 metadata={"name": f"vessels_seed{network.seed}"})


def vessel_phantom(
    size_um: tuple[float, float] = (512.0, 512.0),
    pixel_size_um: float = 0.5,
    *,
    seed: int = 0,
    network_kwargs: dict | None = None,
    **render_kwargs: Any,
) -> tuple[Image, VesselTruth, VesselNetwork]:
    """Make a network, render it and compute its truth in one call.

    Parameters
    ----------
    size_um : (float, float)
        Field height and width in µm.
    pixel_size_um : float
        Pixel size in µm.
    seed : int
        Random seed of the network and the rendering.
    network_kwargs : dict, optional
        More arguments of :func:`make_vessel_network`.
    **render_kwargs : object
        More arguments of :func:`render_vessels`.

    Returns
    -------
    image : Image
        ``YXC`` uint16, channels endothelium, pericyte (and dapi when ``dapi=True``).
    truth : VesselTruth
        Exact truth inside the field.
    network : VesselNetwork
        The network, to re-render at another pixel size or to get truth in a region.
    """
    net = make_vessel_network(size_um, seed=seed, **(network_kwargs or {}))
    image = render_vessels(net, pixel_size_um, seed=seed + 1, **render_kwargs)
    truth = vessel_truth(net, pixel_size_um, image.shape_yx)
    return image, truth, net


def make_example(path: str | Path, *, seed: int = 7) -> tuple[Path, Path]:
    """Write a small two-channel example (1024 × 1024, 0.5 µm/px, OME-TIFF) and its truth.

    Channels are named ``endothelium`` and ``pericyte``; the truth (lengths, coverage,
    diameter) goes to a JSON file beside the image (``<stem>.truth.json``).

    Parameters
    ----------
    path : str or pathlib.Path
        The image file to write.
    seed : int
        Random seed.

    Returns
    -------
    (image path, truth path)
    """
    from ..io.writers import write_ome_tiff

    path = Path(path)
    # a dim exposure (few counts, little noise entropy) keeps the compressed file under 2 MB
    image, truth, _ = vessel_phantom((512.0, 512.0), 0.5, seed=seed, amplitude=120.0,
                                     pericyte_amplitude=100.0, background=25.0,
                                     read_noise=3.0)
    write_ome_tiff(image, path)
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    truth_path = path.with_name(f"{name}.truth.json")
    truth_path.write_text(json.dumps(truth.to_dict(), indent=2), encoding="utf-8")
    return path, truth_path
