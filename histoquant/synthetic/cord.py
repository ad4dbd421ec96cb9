"""Whole spinal cord cross-sections with exact region truth (Nissl-like RGB or fluorescence).

Geometry is defined analytically in a *section frame* (µm, origin at the central canal, +y
ventral, +x the animal's left as seen on the rostral face with dorsal up) and evaluated at
the centre of every pixel of the requested grid, so the truth is exact at any pixel size,
rotation and mirroring, with no resampling.

Dimensions follow the rat atlas plates (Watson et al. 2009, The Spinal Cord) for the adult
lumbar cord: width 3.8–4.1 mm, height 2.9–3.6 mm, grey-matter fraction 40–47 %, one ventral
horn 0.6–1.0 mm², canal lumen ≈ 70–115 × 30–45 µm. Ventral horns are broad and blunt; dorsal
horns are thinner and run dorsolaterally to the surface; a ventral median fissure notches the
ventral surface.
Outside the cord: broken meningeal membranes, nerve-root fascicles, debris, and a
mounting-medium bubble.

Region codes of the truth label maps (the same codes :mod:`histoquant.anatomy` uses)::

    1 white_matter  2 ventral_horn_left  3 ventral_horn_right
    4 dorsal_horn_left  5 dorsal_horn_right  6 central_canal
    7 meninges  8 nerve roots  9 debris / bubble      (7–9: not tissue of the section)

A slide label image holds ``10 * section + code`` for codes 1–6 (sections numbered from 1
top-to-bottom, left-to-right) and ``code`` alone for 7–9.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..io.image import Image

__all__ = ["CordGeometry", "SectionPose", "CordPhantom", "SlideModel", "random_geometry",
           "cord_section", "cord_slide", "faint_white_matter_section", "section_model",
           "render_slide", "section_codes",
           "REGION_CODES"]

REGION_CODES = {
    "white_matter": 1,
    "ventral_horn_left": 2,
    "ventral_horn_right": 3,
    "dorsal_horn_left": 4,
    "dorsal_horn_right": 5,
    "central_canal": 6,
}
_MENINGES, _ROOT, _DEBRIS = 7, 8, 9

# Optical density (summed over R, G, B) of each class in a cresyl-violet section; measured
# on the real teaching slide (white matter 0.24–0.38, grey matter 0.53–0.74, roots and
# meninges ≈ 0.19, canal ependyma dark). Index = code; 0 = empty slide.
_OD = np.array([0.0, 0.30, 0.62, 0.62, 0.66, 0.66, 0.05, 0.20, 0.26, 0.9], dtype=np.float32)
# Fluorescence (DAPI / autofluorescence-like, grey matter brighter): arbitrary counts.
_FL = np.array([120, 700, 1400, 1400, 1450, 1450, 150, 500, 600, 2500], dtype=np.float32)
# Colour of cresyl violet as an OD vector over R, G, B (fitted to the real slide: the green
# channel absorbs most, blue least).
_CV_VECTOR = np.array([0.36, 0.42, 0.22], dtype=np.float32)
# Width (Gaussian sigma) of the transitions between classes [U].
_BOUNDARY_BLUR_UM = 15.0


@dataclass(frozen=True)
class CordGeometry:
    """Analytic shape of one cross-section in the section frame (all lengths in µm)."""

    half_width_um: float = 2000.0
    half_height_um: float = 1650.0
    centre_y_um: float = -100.0          # outline centre relative to the canal (dorsal < 0)
    outline_wobble: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0)  # cos/sin 2φ, cos/sin 3φ
    fissure_depth_um: float = 450.0
    fissure_width_um: float = 90.0
    canal_half_axes_um: tuple[float, float] = (45.0, 20.0)
    # intermediate zone / commissure ellipse
    iz_centre_y_um: float = 60.0
    iz_half_axes_um: tuple[float, float] = (850.0, 330.0)
    # per side (left, right): ventral horn ellipse and dorsal horn capsule
    vh_centre_um: tuple[tuple[float, float], tuple[float, float]] = ((600.0, 450.0),
                                                                      (600.0, 450.0))
    vh_half_axes_um: tuple[tuple[float, float], tuple[float, float]] = ((560.0, 430.0),
                                                                         (560.0, 430.0))
    vh_tilt_deg: tuple[float, float] = (20.0, 20.0)
    dh_base_um: tuple[tuple[float, float], tuple[float, float]] = ((380.0, -200.0),
                                                                    (380.0, -200.0))
    dh_tip_angle_deg: tuple[float, float] = (38.0, 38.0)   # from the dorsal pole, lateral
    dh_radius_um: tuple[tuple[float, float], tuple[float, float]] = ((260.0, 330.0),
                                                                      (260.0, 330.0))
    grey_scale: float = 1.0

    def outline_radius(self, phi: np.ndarray) -> np.ndarray:
        """Return the relative outline radius (1 = the ellipse) at polar angle ``phi``.

        Parameters
        ----------
        phi : numpy.ndarray
            Polar angles in radians, about the section centre.

        Returns
        -------
        numpy.ndarray
            The radius factor at each angle.
        """
        c2, s2, c3, s3 = self.outline_wobble
        return 1.0 + c2 * np.cos(2 * phi) + s2 * np.sin(2 * phi) + c3 * np.cos(3 * phi) \
            + s3 * np.sin(3 * phi)


@dataclass(frozen=True)
class SectionPose:
    """Where a section lies on the slide and how it is turned."""

    centre_um: tuple[float, float]   # canal position (y, x) in slide µm
    angle_deg: float = 0.0           # counter-clockwise on screen; 0 = ventral down
    mirrored: bool = False           # mounted face-down: the animal's left on the image left


@dataclass
class CordPhantom:
    """A rendered phantom and its exact truth.

    Attributes
    ----------
    image : Image
        RGB uint8 (brightfield) or single-channel uint16 (fluorescence), with pixel size.
    labels : ndarray of int
        Slide label image: ``10 * section + code`` inside sections, 7–9 for meninges, roots
        and debris, 0 empty slide.
    sections : list of dict
        Per section (numbered from 1): ``index``, ``angle_deg``, ``mirrored``,
        ``canal_rc`` (row, col in pixels), ``ventral_rc`` (unit vector toward ventral in
        (row, col)), ``geometry``.
    """

    image: Image
    labels: np.ndarray
    sections: list[dict] = field(default_factory=list)

    def truth(self, section: int = 1) -> dict[str, np.ndarray]:
        """Return the boolean truth masks of one section.

        Every region name plus ``grey_matter``, ``tissue`` (section including its canal) and
        ``white_matter``.

        Parameters
        ----------
        section : int
            The section's number (1-based).

        Returns
        -------
        dict of str to numpy.ndarray
            Region name → boolean mask of the image.
        """
        lab = self.labels
        codes = {name: lab == 10 * section + code for name, code in REGION_CODES.items()}
        grey = codes["ventral_horn_left"] | codes["ventral_horn_right"] | \
            codes["dorsal_horn_left"] | codes["dorsal_horn_right"]
        tissue = (lab > 10 * section) & (lab <= 10 * section + 6)
        return {**codes, "grey_matter": grey, "tissue": tissue}


def random_geometry(rng: np.random.Generator, asymmetry: float = 0.06) -> CordGeometry:
    """Draw a plausible rat lumbar (L2–L5) section shape.

    Width 3.8–4.2 mm and height 2.9–3.6 mm (Watson et al. 2009), each side's horns varied
    independently by about ``asymmetry`` (relative), the grey matter then scaled so that the
    grey-matter fraction lands in 40–47 %.

    Parameters
    ----------
    rng : numpy.random.Generator
        The random generator.
    asymmetry : float
        Relative variation of each side's horns.

    Returns
    -------
    CordGeometry
        The shape, in µm.
    """
    hw = rng.uniform(1900, 2100)
    hh = rng.uniform(1450, 1800)
    wob = tuple(rng.normal(0, 0.012, 4))

    def jitter(v, rel=asymmetry):
        return float(v * (1 + rng.uniform(-rel, rel)))

    def side():
        return (
            (jitter(0.30 * hw), jitter(0.27 * hh)),
            (jitter(0.28 * hw), jitter(0.26 * hh)),
            jitter(20.0, 0.4),
            (jitter(0.17 * hw), jitter(-0.12 * hh)),
            jitter(36.0, 0.15),
            (jitter(0.095 * hw), jitter(0.125 * hw)),
        )

    left, right = side(), side()
    geom = CordGeometry(
        half_width_um=hw,
        half_height_um=hh,
        centre_y_um=rng.uniform(-0.10, -0.02) * hh,
        outline_wobble=wob,
        fissure_depth_um=rng.uniform(0.22, 0.32) * hh,
        fissure_width_um=rng.uniform(60, 130),
        canal_half_axes_um=(rng.uniform(35, 57), rng.uniform(15, 22)),
        iz_centre_y_um=rng.uniform(0.0, 0.06) * hh,
        iz_half_axes_um=(rng.uniform(0.42, 0.47) * hw, rng.uniform(0.22, 0.27) * hh),
        vh_centre_um=(left[0], right[0]),
        vh_half_axes_um=(left[1], right[1]),
        vh_tilt_deg=(left[2], right[2]),
        dh_base_um=(left[3], right[3]),
        dh_tip_angle_deg=(left[4], right[4]),
        dh_radius_um=(left[5], right[5]),
    )
    target = rng.uniform(0.40, 0.47)
    return _fit_grey_fraction(geom, target)


def _fit_grey_fraction(geom: CordGeometry, target: float) -> CordGeometry:
    # Bisection on the size of the grey-matter shapes, evaluated on a 20 µm grid.
    step = 30.0
    ys = np.arange(-geom.half_height_um * 1.2 + geom.centre_y_um,
                   geom.half_height_um * 1.2 + geom.centre_y_um, step)
    xs = np.arange(-geom.half_width_um * 1.2, geom.half_width_um * 1.2, step)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    lo, hi = 0.6, 1.6
    for _ in range(11):
        mid = 0.5 * (lo + hi)
        codes = section_codes(replace(geom, grey_scale=mid), yy, xx)
        tissue = (codes >= 1) & (codes <= 6)
        frac = np.isin(codes, (2, 3, 4, 5)).sum() / max(tissue.sum(), 1)
        if frac < target:
            lo = mid
        else:
            hi = mid
    return replace(geom, grey_scale=0.5 * (lo + hi))


def _in_ellipse(x, y, cx, cy, ax, ay, tilt_deg=0.0):
    t = np.deg2rad(tilt_deg)
    dx, dy = x - cx, y - cy
    u = dx * np.cos(t) + dy * np.sin(t)
    v = -dx * np.sin(t) + dy * np.cos(t)
    return (u / ax) ** 2 + (v / ay) ** 2 <= 1.0


def _in_capsule(x, y, p0, p1, r0, r1):
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = p1 - p0
    L2 = float(d @ d)
    t = np.clip(((x - p0[0]) * d[0] + (y - p0[1]) * d[1]) / L2, 0.0, 1.0)
    px, py = p0[0] + t * d[0], p0[1] + t * d[1]
    r = r0 + t * (r1 - r0)
    return (x - px) ** 2 + (y - py) ** 2 <= r ** 2


def section_codes(geom: CordGeometry, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Return the region code (0–6, see module doc) at section-frame points ``(y, x)`` in µm.

    ``x`` is the animal's left (positive) / right (negative); ``y`` is ventral-positive.

    Parameters
    ----------
    geom : CordGeometry
        The section's shape.
    y, x : numpy.ndarray
        Point coordinates in µm, broadcast together.

    Returns
    -------
    numpy.ndarray
        uint8 region codes.
    """
    g = geom
    dy = y - g.centre_y_um
    phi = np.arctan2(dy / g.half_height_um, x / g.half_width_um)
    rho = np.sqrt((x / g.half_width_um) ** 2 + (dy / g.half_height_um) ** 2)
    tissue = rho <= g.outline_radius(phi)
    # ventral median fissure: a wedge from the ventral pole toward the canal
    y_pole = g.centre_y_um + g.half_height_um * g.outline_radius(np.pi / 2)
    y_top = y_pole - g.fissure_depth_um
    half = 0.5 * g.fissure_width_um * np.clip((y - y_top) / g.fissure_depth_um, 0, None)
    tissue &= ~((y > y_top) & (np.abs(x) < half))

    s = g.grey_scale
    grey = _in_ellipse(x, y, 0.0, g.iz_centre_y_um, g.iz_half_axes_um[0] * s,
                       g.iz_half_axes_um[1] * s)
    for side, sign in ((0, 1.0), (1, -1.0)):
        (vcx, vcy), (vax, vay) = g.vh_centre_um[side], g.vh_half_axes_um[side]
        grey |= _in_ellipse(x, y, sign * vcx, vcy, vax * s, vay * s,
                            sign * g.vh_tilt_deg[side])
        bx, by = g.dh_base_um[side]
        # tip: where the ray from the outline centre at this angle from the dorsal pole
        # meets the surface, pushed 150 µm outside so the horn reaches the surface
        a = np.deg2rad(g.dh_tip_angle_deg[side])
        ang = np.arctan2(-np.cos(a) * g.half_height_um, np.sin(a) * g.half_width_um)
        rad = g.outline_radius(ang)
        tip = np.array([sign * np.sin(a) * g.half_width_um * rad,
                        g.centre_y_um - np.cos(a) * g.half_height_um * rad])
        tip = tip + 150.0 * tip / np.linalg.norm(tip)
        r0, r1 = g.dh_radius_um[side]
        grey |= _in_capsule(x, y, (sign * bx, by), tip, r0 * s, r1 * s)
    canal = _in_ellipse(x, y, 0.0, 0.0, *g.canal_half_axes_um)
    grey &= tissue & ~canal

    codes = np.zeros(np.shape(x), dtype=np.uint8)
    codes[tissue] = 1
    ventral = y > 0
    left = x > 0
    codes[grey & ventral & left] = 2
    codes[grey & ventral & ~left] = 3
    codes[grey & ~ventral & left] = 4
    codes[grey & ~ventral & ~left] = 5
    codes[canal & tissue] = 6
    return codes


def _section_extras(rng: np.random.Generator, geom: CordGeometry, pose: SectionPose,
                    ) -> tuple[list, list]:
    """Meningeal arcs and root fascicles around one section, in slide µm."""
    ell, rings = [], []
    cy, cx = pose.centre_um
    theta = np.deg2rad(pose.angle_deg)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    mirror = -1.0 if pose.mirrored else 1.0
    mean_r = 0.5 * (geom.half_width_um + geom.half_height_um)

    def to_slide(y, x):
        v = rot @ np.array([y, mirror * x])
        return (cy + v[0], cx + v[1])

    # roots: clusters at ventrolateral and dorsolateral positions, outside the surface
    for sign in (1.0, -1.0):
        for base_deg, n in ((rng.uniform(125, 150), rng.integers(3, 7)),
                            (rng.uniform(40, 60), rng.integers(2, 6))):
            a = np.deg2rad(base_deg)
            gap = rng.uniform(30, 160)
            for _ in range(int(n)):
                a_i = a + rng.normal(0, 0.06)
                r_fasc = rng.uniform(60, 200)
                rad = np.hypot(np.sin(a_i) * geom.half_width_um,
                               np.cos(a_i) * geom.half_height_um)
                dist = rad + gap + r_fasc + rng.uniform(0, 250)
                y = geom.centre_y_um - np.cos(a_i) * dist
                x = sign * np.sin(a_i) * dist
                ell.append((to_slide(y, x), (r_fasc, r_fasc * rng.uniform(0.6, 1.0)),
                            rng.uniform(0, 180), _ROOT))
    # meninges: one or two broken rings outside the cord
    for _ in range(int(rng.integers(1, 3))):
        radius = mean_r + rng.uniform(120, 500)
        y0 = geom.centre_y_um
        rings.append((to_slide(y0, 0.0), radius, rng.uniform(12, 35), _MENINGES,
                      rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 2.0)))
    return ell, rings


def _extras_codes(ellipses: list, rings: list, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    out = np.zeros(yy.shape, dtype=np.uint8)
    for (cy, cx), (ay, ax), tilt, code in ellipses:
        out[_in_ellipse(xx, yy, cx, cy, ax, ay, tilt)] = code
    for (cy, cx), radius, thick, code, gap0, gap_len in rings:
        r = np.hypot(yy - cy, xx - cx)
        ang = np.mod(np.arctan2(yy - cy, xx - cx) - gap0, 2 * np.pi)
        out[(np.abs(r - radius) <= thick / 2) & (ang > gap_len)] = code
    return out


@dataclass
class SlideModel:
    """Everything needed to render any window of a phantom slide at any pixel size."""

    size_um: tuple[float, float]
    geometries: list[CordGeometry]
    poses: list[SectionPose]
    ellipses: list = field(default_factory=list)
    rings: list = field(default_factory=list)
    modality: str = "brightfield"
    seed: int = 0
    stain: tuple[float, float] = (1.0, 1.0)   # white-matter and grey-matter stain factors
    neurons: list = field(default_factory=list)  # (y, x, radius) in slide µm

    def codes(self, y0_um: float, x0_um: float, shape: tuple[int, int],
              pixel_size_um: float) -> np.ndarray:
        """Return the slide label map (``10*s + code``, 7–9 outside) of a window.

        Pixel centres are at ``y0 + i * pixel_size``.

        Parameters
        ----------
        y0_um, x0_um : float
            Slide position of the window's first pixel centre, in µm.
        shape : tuple of int
            Height and width of the window in pixels.
        pixel_size_um : float
            Pixel size in µm.

        Returns
        -------
        numpy.ndarray
            uint8 label map of the window.
        """
        ys = y0_um + np.arange(shape[0]) * pixel_size_um
        xs = x0_um + np.arange(shape[1]) * pixel_size_um
        out = _extras_codes(self.ellipses, self.rings, *np.meshgrid(ys, xs, indexing="ij"))
        for s, (geom, pose) in enumerate(zip(self.geometries, self.poses), start=1):
            reach = 1.25 * max(geom.half_width_um, geom.half_height_um) + abs(geom.centre_y_um)
            cy, cx = pose.centre_um
            rs = np.nonzero(np.abs(ys - cy) <= reach)[0]
            cs = np.nonzero(np.abs(xs - cx) <= reach)[0]
            if not len(rs) or not len(cs):
                continue
            yy, xx = np.meshgrid(ys[rs] - cy, xs[cs] - cx, indexing="ij")
            t = np.deg2rad(pose.angle_deg)
            # slide offset -> section frame: undo the rotation, then the mirroring
            sy = np.cos(t) * yy + np.sin(t) * xx
            sx = -np.sin(t) * yy + np.cos(t) * xx
            if pose.mirrored:
                sx = -sx
            c = section_codes(geom, sy, sx)
            sub = out[rs[0]:rs[-1] + 1, cs[0]:cs[-1] + 1]
            sub[c > 0] = 10 * s + c[c > 0]
        return out


def render_slide(model: SlideModel, y0_um: float, x0_um: float, shape: tuple[int, int],
                 pixel_size_um: float, rng: np.random.Generator | None = None,
                 codes: np.ndarray | None = None) -> np.ndarray:
    """Render a window of the slide: RGB uint8 (brightfield) or uint16 (fluorescence).

    Parameters
    ----------
    model : SlideModel
        The slide.
    y0_um, x0_um : float
        Slide position of the window's first pixel centre, in µm.
    shape : tuple of int
        Height and width of the window in pixels.
    pixel_size_um : float
        Pixel size in µm.
    rng : numpy.random.Generator, optional
        Noise generator; seeded from the model when not given.
    codes : numpy.ndarray, optional
        The window's label map (:meth:`SlideModel.codes`), when already computed.

    Returns
    -------
    numpy.ndarray
        (Y, X, 3) uint8 or (Y, X) uint16 pixels.
    """
    from scipy.ndimage import gaussian_filter

    if rng is None:
        rng = np.random.default_rng(model.seed)
    if codes is None:
        codes = model.codes(y0_um, x0_um, shape, pixel_size_um)
    code = np.where(codes >= 10, codes % 10, codes)
    # Cell texture averages out with larger pixels: noise falls as 1/pixel edge.
    rel_noise = float(np.clip(0.9 / pixel_size_um, 0.04, 0.5))
    texture = 1.0 + rel_noise * rng.standard_normal(shape).astype(np.float32)
    texture *= _smooth_field(rng, shape, pixel_size_um, 0.08)
    # the grey/white border is a gradual change over tens of µm, not a step
    blur = _BOUNDARY_BLUR_UM / pixel_size_um
    if model.modality == "fluorescence":
        table = _FL.copy()
        table[1] *= model.stain[0]
        table[2:6] *= model.stain[1]
        base = table[code] + 600.0 * _neuron_map(model, y0_um, x0_um, shape, pixel_size_um)
        if blur >= 0.3:
            base = gaussian_filter(base, blur)
        level = base * np.clip(texture, 0.2, None)
        level = rng.poisson(level).astype(np.float32)
        return np.clip(level, 0, 65535).astype(np.uint16)
    table = _OD.copy()
    table[1] *= model.stain[0]
    table[2:6] *= model.stain[1]
    base = table[code] + 0.5 * _neuron_map(model, y0_um, x0_um, shape, pixel_size_um)
    if blur >= 0.3:
        base = gaussian_filter(base, blur)
    od = base * np.clip(texture, 0.1, None)
    od += 0.02  # the slide and mounting medium absorb a little
    rgb = 255.0 * np.power(10.0, -od[..., None] * (_CV_VECTOR / _CV_VECTOR.sum()))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def _neuron_map(model: SlideModel, y0_um: float, x0_um: float, shape: tuple[int, int],
                pixel_size_um: float) -> np.ndarray:
    """Fraction of each pixel covered by motor-neuron somata (area-weighted discs)."""
    out = np.zeros(shape, np.float32)
    for y, x, r in model.neurons:
        cy, cx = (y - y0_um) / pixel_size_um, (x - x0_um) / pixel_size_um
        rp = r / pixel_size_um
        r0, r1 = int(np.floor(cy - rp - 1)), int(np.ceil(cy + rp + 2))
        c0, c1 = int(np.floor(cx - rp - 1)), int(np.ceil(cx + rp + 2))
        if r1 <= 0 or c1 <= 0 or r0 >= shape[0] or c0 >= shape[1]:
            continue
        r0, c0 = max(r0, 0), max(c0, 0)
        r1, c1 = min(r1, shape[0]), min(c1, shape[1])
        yy, xx = np.mgrid[r0:r1, c0:c1]
        d = np.hypot(yy - cy, xx - cx)
        # a disc smaller than a pixel darkens it by its area share
        cover = np.clip(rp + 0.5 - d, 0, 1) * min(1.0, np.pi * rp * rp)
        out[r0:r1, c0:c1] = np.maximum(out[r0:r1, c0:c1], cover)
    return out


def _add_stain_and_neurons(rng: np.random.Generator, model: SlideModel) -> None:
    """Per-slide staining strength and 15–30 motor neurons (24–40 µm) per ventral horn."""
    model.stain = (float(rng.uniform(0.8, 1.2)), float(rng.uniform(0.75, 1.1)))
    for geom, pose in zip(model.geometries, model.poses):
        t = np.deg2rad(pose.angle_deg)
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        mirror = -1.0 if pose.mirrored else 1.0
        for code in (2, 3):
            want = int(rng.integers(15, 31))
            pts = rng.uniform(-1, 1, (400, 2)) * [geom.half_height_um * 0.6,
                                                  geom.half_width_um * 0.6]
            c = section_codes(geom, pts[:, 0], pts[:, 1])
            for y, x in pts[c == code][:want]:
                v = rot @ np.array([y, mirror * x])
                model.neurons.append((pose.centre_um[0] + v[0], pose.centre_um[1] + v[1],
                                      float(rng.uniform(12, 20))))


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], pixel_size_um: float,
                  amplitude: float, scale_um: float = 400.0) -> np.ndarray:
    """Multiplicative low-frequency staining variation of relative ``amplitude``."""
    from scipy.ndimage import zoom

    step = max(1, round(scale_um / pixel_size_um))
    small = (max(2, shape[0] // step + 2), max(2, shape[1] // step + 2))
    coarse = rng.standard_normal(small).astype(np.float32)
    field_ = zoom(coarse, (shape[0] / small[0] * 1.0001, shape[1] / small[1] * 1.0001),
                  order=1)[: shape[0], : shape[1]]
    if field_.shape != tuple(shape):
        field_ = np.pad(field_, [(0, shape[0] - field_.shape[0]),
                                 (0, shape[1] - field_.shape[1])], mode="edge")
    return 1.0 + amplitude * field_


def _pose_list(rng: np.random.Generator, centres: list[tuple[float, float]],
               angle_deg: float | None, mirrored: bool) -> list[SectionPose]:
    poses = []
    for c in centres:
        a = float(rng.uniform(-180, 180)) if angle_deg is None else float(angle_deg)
        poses.append(SectionPose(centre_um=c, angle_deg=a, mirrored=mirrored))
    return poses


def _debris(rng: np.random.Generator, size_um: tuple[float, float],
            avoid: list[tuple[tuple[float, float], float]], n: int) -> list:
    out = []
    for _ in range(n):
        for _try in range(20):
            c = (rng.uniform(0, size_um[0]), rng.uniform(0, size_um[1]))
            if all(np.hypot(c[0] - a[0], c[1] - a[1]) > r for a, r in avoid):
                break
        out.append((c, (rng.uniform(8, 60), rng.uniform(8, 60)), rng.uniform(0, 180),
                    _DEBRIS))
    return out


def _build(model: SlideModel, pixel_size_um: float, rng: np.random.Generator) -> CordPhantom:
    h = round(model.size_um[0] / pixel_size_um)
    w = round(model.size_um[1] / pixel_size_um)
    codes = model.codes(0.0, 0.0, (h, w), pixel_size_um)
    pixels = render_slide(model, 0.0, 0.0, (h, w), pixel_size_um, rng, codes)
    fluor = model.modality == "fluorescence"
    image = Image(pixels, axes="YX" if fluor else "YXC", pixel_size_um=pixel_size_um,
                  rgb=not fluor, channel_names=("tissue",) if fluor else ())
    image.metadata["name"] = "cord_phantom"
    sections = []
    for s, (geom, pose) in enumerate(zip(model.geometries, model.poses), start=1):
        t = np.deg2rad(pose.angle_deg)
        sections.append({
            "index": s,
            "angle_deg": pose.angle_deg,
            "mirrored": pose.mirrored,
            "canal_rc": (pose.centre_um[0] / pixel_size_um, pose.centre_um[1] / pixel_size_um),
            "ventral_rc": (float(np.cos(t)), float(np.sin(t))),
            "geometry": geom,
        })
    return CordPhantom(image=image, labels=codes, sections=sections)


def section_model(rng: np.random.Generator, *, angle_deg: float | None = 0.0,
                  mirrored: bool = False, modality: str = "brightfield", extras: bool = True,
                  margin_um: float = 1300.0, geometry: CordGeometry | None = None,
                  seed: int = 0) -> SlideModel:
    """Return the model of :func:`cord_section` (render any window of it at any pixel size).

    Parameters
    ----------
    rng : numpy.random.Generator
        The random generator (shape, surroundings).
    angle_deg : float or None
        Rotation counter-clockwise on screen (0 = ventral down); ``None`` draws one at random.
    mirrored : bool
        Mounted face-down.
    modality : {"brightfield", "fluorescence"}
        How the slide renders.
    extras : bool
        Whether meninges, roots, debris and a bubble surround the section.
    margin_um : float
        Slide margin around the cord's bounding circle.
    geometry : CordGeometry, optional
        Use this shape instead of drawing one.
    seed : int
        Seed recorded in the model (for its rendering noise).

    Returns
    -------
    SlideModel
        The slide, in µm.
    """
    if modality not in ("brightfield", "fluorescence"):
        raise ValueError("modality must be 'brightfield' or 'fluorescence'")
    geom = geometry if geometry is not None else random_geometry(rng)
    reach = max(geom.half_width_um, geom.half_height_um) + abs(geom.centre_y_um)
    side = 2 * (reach + margin_um)
    centre = (side / 2, side / 2)
    poses = _pose_list(rng, [centre], angle_deg, mirrored)
    model = SlideModel(size_um=(side, side), geometries=[geom], poses=poses,
                       modality=modality, seed=seed)
    if extras:
        ell, rings = _section_extras(rng, geom, poses[0])
        ell += _debris(rng, model.size_um, [(centre, reach + 600)], int(rng.integers(4, 10)))
        corner = (rng.uniform(0.08, 0.15) * side, rng.uniform(0.08, 0.15) * side)
        rings.append((corner, rng.uniform(150, 300), 16.0, _DEBRIS, 0.0, 0.0))  # bubble
        model.ellipses, model.rings = ell, rings
    _add_stain_and_neurons(rng, model)
    return model


def cord_section(pixel_size_um: float = 10.0, *, seed: int = 0, angle_deg: float | None = 0.0,
                 mirrored: bool = False, modality: str = "brightfield",
                 extras: bool = True, margin_um: float = 1300.0,
                 geometry: CordGeometry | None = None) -> CordPhantom:
    """Return one cord cross-section with meninges, roots and debris around it.

    Parameters
    ----------
    pixel_size_um : float
        Pixel size of the rendered image (10 µm gives a ≈ 650 × 600 px image).
    seed : int
        Random seed: shape, asymmetry, surroundings and noise.
    angle_deg : float or None
        Rotation counter-clockwise on screen (0 = ventral down); ``None`` draws one at random.
    mirrored : bool
        Mounted face-down: the animal's left appears on the image's left when dorsal is up.
    modality : {"brightfield", "fluorescence"}
        Nissl-like RGB uint8, or one fluorescence channel (uint16, grey matter brighter).
    extras : bool
        Draw meninges, roots, debris and a bubble around the section.
    margin_um : float
        Slide margin around the cord's bounding circle.
    geometry : CordGeometry, optional
        Use this shape instead of drawing one (the seed still draws the surroundings).

    Returns
    -------
    CordPhantom
        The image and its exact region truth.
    """
    rng = np.random.default_rng(seed)
    model = section_model(rng, angle_deg=angle_deg, mirrored=mirrored, modality=modality,
                          extras=extras, margin_um=margin_um, geometry=geometry, seed=seed)
    return _build(model, pixel_size_um, rng)


def faint_white_matter_section(pixel_size_um: float = 4.0, *, seed: int = 0,
                               nuclei_spacing_um: float = 40.0) -> CordPhantom:
    """Return a fluorescent section whose white matter is as dim as the empty slide.

    Real fluorescence exports (NeuN, fluorescent Nissl) often show white matter at the
    slide's level, or clipped to the same 0: only sparse bright nuclei (glia) show it. Here
    white matter takes the empty slide's level, plus one nucleus (8 µm across, as bright as
    a grey-matter pixel) per ``nuclei_spacing_um`` squared; no meninges, roots or debris.

    Parameters
    ----------
    pixel_size_um : float
        Pixel size (fine enough for the nuclei to be seen: ≤ 4 µm).
    seed : int
        Random seed: shape, noise and nucleus positions.
    nuclei_spacing_um : float
        Mean distance between white-matter nuclei.

    Returns
    -------
    CordPhantom
        The image and its exact region truth.
    """
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    model = section_model(rng, modality="fluorescence", extras=False, margin_um=600.0,
                          seed=seed)
    model.stain = (float(_FL[0] / _FL[1]), model.stain[1])   # white matter = slide level
    ph = _build(model, pixel_size_um, rng)
    wm = np.where(ph.labels >= 10, ph.labels % 10, ph.labels) == 1
    ys, xs = np.nonzero(wm)
    n = min(len(ys), int(len(ys) * pixel_size_um**2 / nuclei_spacing_um**2))
    pick = rng.choice(len(ys), n, replace=False)
    spots = np.zeros(wm.shape, np.float32)
    spots[ys[pick], xs[pick]] = 1.0
    sigma = 4.0 / pixel_size_um           # an 8 µm nucleus
    spots = gaussian_filter(spots, sigma) * (2 * np.pi * sigma**2) * 0.6 * _FL[2]
    pixels = np.clip(np.asarray(ph.image.data, np.float32) + spots, 0, 65535)
    image = Image(pixels.astype(np.uint16), axes="YX", pixel_size_um=pixel_size_um,
                  channel_names=("tissue",))
    image.metadata["name"] = "faint_white_matter_phantom"
    return CordPhantom(image=image, labels=ph.labels, sections=ph.sections)


def cord_slide(n_sections: int = 4, pixel_size_um: float = 15.0, *, seed: int = 0,
               columns: int | None = None, angle_deg: float | None = None,
               mirrored: bool = False, modality: str = "brightfield",
               spacing_um: float = 6500.0) -> CordPhantom:
    """Return a slide with several sections in a jittered grid, each turned at random.

    Sections are numbered top-to-bottom, left-to-right, as :mod:`histoquant.anatomy` numbers
    them.

    Parameters
    ----------
    n_sections : int
        Number of sections.
    pixel_size_um : float
        Pixel size of the rendered image.
    seed : int
        Random seed.
    columns : int, optional
        Sections per row (about the square root of ``n_sections`` when not given).
    angle_deg : float or None
        One rotation for every section; ``None`` draws each at random.
    mirrored : bool
        Whether every section is mounted face-down.
    modality : {"brightfield", "fluorescence"}
        How the slide renders.
    spacing_um : float
        Distance between the grid's section centres.

    Returns
    -------
    CordPhantom
        The image and its exact region truth.
    """
    rng = np.random.default_rng(seed)
    columns = columns or int(np.ceil(np.sqrt(n_sections)))
    rows = int(np.ceil(n_sections / columns))
    centres = []
    for i in range(n_sections):
        r, c = divmod(i, columns)
        centres.append(((r + 0.5) * spacing_um + rng.uniform(-300, 300),
                        (c + 0.5) * spacing_um + rng.uniform(-400, 400)))
    # generated row by row, left to right (the jitter is far smaller than the spacing), so
    # the list is already in the anatomy's reading order
    geoms = [random_geometry(rng) for _ in centres]
    poses = _pose_list(rng, centres, angle_deg, mirrored)
    size = (rows * spacing_um, columns * spacing_um)
    model = SlideModel(size_um=size, geometries=geoms, poses=poses, modality=modality,
                       seed=seed)
    ell, rings = [], []
    for g, p in zip(geoms, poses):
        e, r = _section_extras(rng, g, p)
        ell += e
        rings += r
    avoid = [(p.centre_um, 2700.0) for p in poses]
    ell += _debris(rng, size, avoid, int(rng.integers(5, 15)))
    model.ellipses, model.rings = ell, rings
    _add_stain_and_neurons(rng, model)
    return _build(model, pixel_size_um, rng)
