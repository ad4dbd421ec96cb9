"""Nissl (cresyl violet) brightfield phantom of a rat ventral horn, with exact truth.

The tissue is described in micrometres — cell positions, soma outlines, processes, nuclei and
stain textures all live in physical coordinates — and only then rendered at a pixel size. The
same :class:`NisslTissue` rendered at 0.5 and 1 µm/px is the same biology, which is what the
rescaling tests need.

What it draws, with the figures it is based on (sizes from rat anterior-horn stereology,
Mayhew & Momoh 1974, J Anat):

- **motor neurons**: large multipolar somata, 23–42 µm equivalent diameter (α-motor neurons
  ≈ 28 µm [S]), 3–5 tapering proximal dendrites, coarse Nissl granules in the cytoplasm, a pale
  nucleus (≈ 35 % of the soma radius) and, in a settable fraction, a dark nucleolus (in a
  single section only some profiles show one [S]);
- **small neurons** (interneurons, γ-motor neurons): 12–17 µm [S: small neurons ≈ 16 µm],
  paler, with a pale nucleus and 1–2 thin processes;
- **glial nuclei**: dark, 7.5–10.5 µm across (≈ 9 µm [S]), slightly elliptical, some of them
  satellites pressed against a motor-neuron soma and some in touching pairs;
- **neuropil**: a lavender background with a fine grain; a few blood-vessel lumens (white);
- **uneven staining** (a slow ±20 % field on every optical density) and **uneven
  illumination** (vignetting and a gradient of the lamp), plus camera noise.

The size classes are separated by a gap (small neurons ≤ 17 µm, motor neurons ≥ 23 µm): the
phantom checks detection and measurement, not where a counting cut-off falls inside a
continuous size distribution. Densities are estimates [U] unless given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..io.image import Image

__all__ = ["NisslCell", "NisslTissue", "NisslTruth", "make_nissl_tissue", "nissl_phantom",
           "NISSL_OD", "NEUROPIL_OD", "CELL_KINDS"]

#: Optical-density colour of Nissl substance used to render (magenta-violet, G absorbed most;
#: measured on a real ventral-horn field). Deliberately not identical to the analysis default.
NISSL_OD = (0.55, 0.78, 0.30)
#: Optical-density colour of the lavender neuropil background.
NEUROPIL_OD = (0.64, 0.68, 0.36)

#: The kinds of soma the phantom draws (values of the truth table's ``kind`` column).
CELL_KINDS = ("motor_neuron", "small_neuron", "glia")
_THETA = np.linspace(0.0, 2.0 * np.pi, 256, endpoint=False)


@dataclass(frozen=True)
class NisslCell:
    """One soma of the phantom, in physical units (µm, radians).

    The soma outline is ``r(θ) = radius_um · (1 + Σ a_k cos(k θ + φ_k))`` around
    (``y_um``, ``x_um``), stretched by ``elongation`` along ``angle``.
    """

    kind: str
    y_um: float
    x_um: float
    radius_um: float
    angle: float = 0.0
    elongation: float = 1.0
    harmonics: tuple[tuple[int, float, float], ...] = ()
    od: float = 1.0
    nucleus: tuple[float, float, float] | None = None  # (dy_um, dx_um, radius_um)
    nucleolus: bool = False
    nucleolus_radius_um: float = 1.4
    processes: tuple[tuple[float, float, float], ...] = ()  # (angle, length_um, base_width_um)

    def outline_radius(self, theta: np.ndarray) -> np.ndarray:
        """Return the soma radius (µm) in direction ``theta`` (radians, image y down, x right).

        Parameters
        ----------
        theta : numpy.ndarray
            Directions in radians.

        Returns
        -------
        numpy.ndarray
            Radius in µm per direction.
        """
        return self._radius_of_direction(np.exp(1j * np.asarray(theta, np.float64)))

    def _radius_of_direction(self, z: np.ndarray) -> np.ndarray:
        """Soma radius for unit complex directions ``z = cos θ + i sin θ``.

        Powers of ``z`` give ``cos(kθ)`` without evaluating an angle per pixel.
        """
        r = np.ones(z.shape, dtype=np.float32 if z.dtype == np.complex64 else np.float64)
        zk = np.ones_like(z)
        k_done = 0
        for k, a, phi in self.harmonics:
            while k_done < k:
                zk = zk * z
                k_done += 1
            r += a * (zk * np.exp(1j * phi)).real
        # Elongation: radius of an ellipse with axes e·R and R/e along `angle`.
        rot = z * np.exp(-1j * self.angle)
        e = self.elongation
        ell = 1.0 / np.sqrt((rot.real / e) ** 2 + (rot.imag * e) ** 2)
        return self.radius_um * r * ell

    @cached_property
    def area_um2(self) -> float:
        """Area of the soma outline (µm²).

        The outline is a smooth periodic function of θ, so the 256-point rule is exact to
        far below a pixel.
        """
        r = self.outline_radius(_THETA)
        return float(np.pi * np.mean(r ** 2))

    @cached_property
    def equivalent_diameter_um(self) -> float:
        """Diameter of the disk with the soma's area (µm)."""
        return float(2.0 * np.sqrt(self.area_um2 / np.pi))

    @cached_property
    def max_radius_um(self) -> float:
        """Largest radius of the soma outline (µm)."""
        return float(self.outline_radius(_THETA).max())


@dataclass
class NisslTruth:
    """Exact truth of a rendered phantom.

    Attributes
    ----------
    labels : ndarray of int32
        Every soma (motor neurons, small neurons, glial nuclei); 0 = neuropil.
    motor_neuron_labels : ndarray of int32
        Motor-neuron somata only, with the same label values as in ``labels``.
    cells : DataFrame
        One row per soma: ``label``, ``kind``, ``is_motor_neuron``, ``centroid_y_um``,
        ``centroid_x_um``, ``area_um2``, ``equivalent_diameter_um``, ``nucleolus_visible``.
        Sizes are of the analytic outline (the physical truth), not of the pixels.
    pixel_size_um : float
        Pixel size the labels were rendered at.
    """

    labels: np.ndarray
    motor_neuron_labels: np.ndarray
    cells: pd.DataFrame
    pixel_size_um: float

    @property
    def n_motor_neurons(self) -> int:
        """Number of motor neurons in the image."""
        return int(self.cells["is_motor_neuron"].sum())

    @property
    def motor_neuron_diameters_um(self) -> np.ndarray:
        """Equivalent diameters (µm) of the motor neurons."""
        return self.cells.loc[self.cells["is_motor_neuron"], "equivalent_diameter_um"].to_numpy()


@dataclass
class NisslTissue:
    """A piece of Nissl-stained ventral horn, in µm; :meth:`render` makes an image of it."""

    size_um: tuple[float, float]
    cells: list[NisslCell]
    vessels: list[tuple[float, float, float]] = field(default_factory=list)  # (y, x, radius)
    seed: int = 0
    stain_variation: float = 0.2
    illumination_falloff: float = 0.12
    noise_grey: float = 2.0
    white: tuple[float, float, float] = (240.0, 238.0, 244.0)

    def render(self, pixel_size_um: float) -> tuple[Image, NisslTruth]:
        """Render the tissue at ``pixel_size_um``.

        Parameters
        ----------
        pixel_size_um : float
            Pixel size in µm.

        Returns
        -------
        image : Image
            The RGB uint8 image.
        truth : NisslTruth
            Its exact truth at this pixel size.
        """
        px = float(pixel_size_um)
        if not px > 0:
            raise ValueError(f"pixel_size_um must be positive, not {pixel_size_um}")
        h = max(1, round(self.size_um[0] / px))
        w = max(1, round(self.size_um[1] / px))
        rng_fields = np.random.default_rng([self.seed, 1])
        ys = np.arange(h, dtype=np.float64) * px
        xs = np.arange(w, dtype=np.float64) * px

        # Textures defined on physical grids, sampled at the pixel centres.
        grain = _noise_field(rng_fields, self.size_um, 0.5, 0.6, ys, xs)   # neuropil grain
        granules = _noise_field(rng_fields, self.size_um, 0.5, 0.9, ys, xs)  # Nissl bodies
        stain = 1.0 + self.stain_variation * _smooth_field(rng_fields, self.size_um, 60.0, ys, xs)

        neuropil = (0.13 + 0.14 * grain).astype(np.float32)
        nissl = np.zeros((h, w), np.float32)
        labels = np.zeros((h, w), np.int32)
        for y, x, r in self.vessels:
            cov = _disk_coverage(ys, xs, y, x, r, px)
            if cov is not None:
                sl, c = cov
                neuropil[sl] *= 1.0 - 0.85 * c
        rows = []
        for i, cell in enumerate(self.cells, start=1):
            self._draw_cell(cell, i, ys, xs, px, nissl, neuropil, labels, granules)
            rows.append({
                "label": i,
                "kind": cell.kind,
                "is_motor_neuron": cell.kind == "motor_neuron",
                "centroid_y_um": cell.y_um,
                "centroid_x_um": cell.x_um,
                "area_um2": cell.area_um2,
                "equivalent_diameter_um": cell.equivalent_diameter_um,
                "nucleolus_visible": bool(cell.nucleolus),
            })
        cells = pd.DataFrame(rows, columns=["label", "kind", "is_motor_neuron", "centroid_y_um",
                                            "centroid_x_um", "area_um2",
                                            "equivalent_diameter_um", "nucleolus_visible"])
        # Keep the truth table to the somata whose label shows in the image.
        present = np.zeros(len(self.cells) + 1, bool)
        present[np.unique(labels)] = True
        cells = cells[present[cells["label"].to_numpy()]].reset_index(drop=True)

        nissl *= stain
        neuropil *= stain
        rgb8 = np.empty((h, w, 3), np.uint8)
        illum = _illumination(ys, xs, self.size_um, self.illumination_falloff, rng_fields)
        noise_rng = np.random.default_rng([self.seed, 2, h, w])
        ln10 = np.float32(-np.log(10.0))
        for c in range(3):
            od = nissl * np.float32(NISSL_OD[c] * ln10)
            od += neuropil * np.float32(NEUROPIL_OD[c] * ln10)
            np.exp(od, out=od)
            od *= illum
            od *= np.float32(self.white[c])
            noise = noise_rng.standard_normal((h, w), dtype=np.float32)
            noise *= np.float32(self.noise_grey)
            od += noise
            od += np.float32(0.5)  # the cast below truncates: this rounds
            np.clip(od, 0, 255, out=od)
            rgb8[..., c] = od
        mn_ids = cells.loc[cells["is_motor_neuron"], "label"].to_numpy()
        is_mn = np.zeros(len(self.cells) + 1, bool)
        is_mn[mn_ids] = True
        mn_labels = np.where(is_mn[labels], labels, 0).astype(np.int32)
        image = Image(rgb8, axes="YXC", pixel_size_um=px, rgb=True,
                      metadata={"name": f"nissl_phantom_{self.seed}",
                                "phantom": "nissl"})
        return image, NisslTruth(labels, mn_labels, cells, px)

    def _draw_cell(self, cell: NisslCell, label: int, ys: np.ndarray, xs: np.ndarray, px: float,
                   nissl: np.ndarray, neuropil: np.ndarray, labels: np.ndarray,
                   granules: np.ndarray) -> None:
        reach = cell.max_radius_um + max([p[1] for p in cell.processes], default=0.0) + 2 * px
        sl = _window(ys, xs, cell.y_um, cell.x_um, reach)
        if sl is None:
            return
        yy = ys[sl[0]][:, None] - cell.y_um
        xx = xs[sl[1]][None, :] - cell.x_um
        yy = yy.astype(np.float32)
        xx = xx.astype(np.float32)
        rho = np.hypot(yy, xx)
        z = (xx + 1j * yy).astype(np.complex64) / np.maximum(rho, np.float32(1e-6))
        # Anti-aliased coverage of the soma: signed distance to the outline in pixels.
        soma = np.clip((cell._radius_of_direction(z) - rho) / px + 0.5, 0.0, 1.0)
        body = soma
        for ang, length, width in cell.processes:
            # Nissl bodies reach into the proximal dendrite only: it fades along its length.
            body = np.maximum(body, _process_coverage(yy, xx, ang, length, width,
                                                      cell.radius_um * 0.6, px))
        g = granules[sl]
        if cell.kind == "glia":
            density = cell.od * (0.85 + 0.3 * g)
        elif cell.kind == "motor_neuron":
            # Coarse Nissl bodies: strongly granular cytoplasm.
            density = cell.od * (0.55 + 0.9 * g)
        else:
            density = cell.od * (0.55 + 0.9 * g)
        density = density * body
        if cell.nucleus is not None:
            dy, dx, rn = cell.nucleus
            nuc = np.clip((rn - np.hypot(yy - dy, xx - dx)) / px + 0.5, 0.0, 1.0) * soma
            density = density * (1.0 - 0.6 * nuc)
            if cell.nucleolus:
                rr = cell.nucleolus_radius_um
                nol = np.clip((rr - np.hypot(yy - dy - 0.25 * rn, xx - dx + 0.2 * rn)) / px
                              + 0.5, 0.0, 1.0)
                density = density + 1.6 * cell.od * nol * nuc
        nissl[sl] += density.astype(np.float32)
        # The soma displaces neuropil.
        neuropil[sl] *= (1.0 - 0.7 * body).astype(np.float32)
        lab = labels[sl]
        lab[soma >= 0.5] = label


def _window(ys: np.ndarray, xs: np.ndarray, y: float, x: float,
            reach: float) -> tuple[slice, slice] | None:
    px = ys[1] - ys[0] if len(ys) > 1 else (xs[1] - xs[0] if len(xs) > 1 else 1.0)
    r0 = max(0, int(np.floor((y - reach) / px)))
    r1 = min(len(ys), int(np.ceil((y + reach) / px)) + 1)
    c0 = max(0, int(np.floor((x - reach) / px)))
    c1 = min(len(xs), int(np.ceil((x + reach) / px)) + 1)
    if r0 >= r1 or c0 >= c1:
        return None
    return slice(r0, r1), slice(c0, c1)


def _disk_coverage(ys, xs, y, x, r, px):
    sl = _window(ys, xs, y, x, r + 2 * px)
    if sl is None:
        return None
    d = np.hypot(ys[sl[0]][:, None] - y, xs[sl[1]][None, :] - x)
    return sl, np.clip((r - d) / px + 0.5, 0.0, 1.0).astype(np.float32)


def _process_coverage(yy: np.ndarray, xx: np.ndarray, angle: float, length: float,
                      base_width: float, start: float, px: float) -> np.ndarray:
    """Coverage of a tapering dendrite leaving the soma centre along ``angle``."""
    ux, uy = np.cos(angle), np.sin(angle)
    along = xx * ux + yy * uy
    across = np.abs(-xx * uy + yy * ux)
    t = np.clip((along - start) / max(length, 1e-6), 0.0, 1.0)
    half = 0.5 * (base_width * (1.0 - t) + 1.2 * t)
    inside = (along > 0) & (along < start + length)
    cov = np.clip((half - across) / px + 0.5, 0.0, 1.0) * (0.85 - 0.55 * t)
    return np.where(inside, cov, 0.0)


def _interp_axis(n_grid: int, step: float, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    g = np.clip(coords / step, 0, n_grid - 1.000001)
    i0 = np.floor(g).astype(np.intp)
    return i0, (g - i0).astype(np.float32)


def _sample_grid(grid: np.ndarray, step: float, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear sample of a physical grid (spacing ``step`` µm) at pixel centres."""
    iy, wy = _interp_axis(grid.shape[0], step, ys)
    ix, wx = _interp_axis(grid.shape[1], step, xs)
    rows = grid[iy] * (1 - wy)[:, None] + grid[iy + 1] * wy[:, None]
    return rows[:, ix] * (1 - wx)[None, :] + rows[:, ix + 1] * wx[None, :]


def _noise_field(rng: np.random.Generator, size_um: tuple[float, float], step: float,
                 sigma_um: float, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Smoothed white noise in physical space, scaled to [0, 1] (about), sampled at pixels."""
    shape = (int(np.ceil(size_um[0] / step)) + 2, int(np.ceil(size_um[1] / step)) + 2)
    grid = rng.standard_normal(shape).astype(np.float32)
    grid = ndi.gaussian_filter(grid, sigma_um / step, mode="wrap")
    grid /= 3.0 * grid.std() + 1e-12
    grid += 0.5
    np.clip(grid, 0.0, 1.0, out=grid)
    return _sample_grid(grid, step, ys, xs).astype(np.float32)


def _smooth_field(rng: np.random.Generator, size_um: tuple[float, float], scale_um: float,
                  ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Return a slow field in about [-1, 1] varying over ``scale_um``."""
    step = scale_um / 3.0
    shape = (int(np.ceil(size_um[0] / step)) + 2, int(np.ceil(size_um[1] / step)) + 2)
    grid = ndi.gaussian_filter(rng.standard_normal(shape), 1.5, mode="wrap")
    grid /= np.abs(grid).max() + 1e-12
    return _sample_grid(grid.astype(np.float32), step, ys, xs)


def _illumination(ys: np.ndarray, xs: np.ndarray, size_um: tuple[float, float],
                  falloff: float, rng: np.random.Generator) -> np.ndarray:
    cy, cx = size_um[0] * rng.uniform(0.35, 0.65), size_um[1] * rng.uniform(0.35, 0.65)
    half = 0.5 * float(np.hypot(*size_um))
    gy, gx = rng.uniform(-0.04, 0.04, size=2)
    fy = (1.0 - falloff * ((ys - cy) / half) ** 2 + gy * (ys / size_um[0] - 0.5))
    fx = (-falloff * ((xs - cx) / half) ** 2 + gx * (xs / size_um[1] - 0.5))
    return fy.astype(np.float32)[:, None] + fx.astype(np.float32)[None, :]


class _Occupancy:
    """Discs placed so far, bucketed on a grid for fast overlap checks."""

    def __init__(self, bucket_um: float = 60.0):
        self.bucket = bucket_um
        self.cells: dict[tuple[int, int], list[tuple[float, float, float]]] = {}

    def free(self, y: float, x: float, r: float, gap: float) -> bool:
        by, bx = int(y // self.bucket), int(x // self.bucket)
        reach = int(np.ceil((r + gap + 45.0) / self.bucket))
        for i in range(by - reach, by + reach + 1):
            for j in range(bx - reach, bx + reach + 1):
                for (y2, x2, r2) in self.cells.get((i, j), ()):
                    if (y - y2) ** 2 + (x - x2) ** 2 < (r + r2 + gap) ** 2:
                        return False
        return True

    def add(self, y: float, x: float, r: float) -> None:
        self.cells.setdefault((int(y // self.bucket), int(x // self.bucket)), []).append(
            (y, x, r))


def _harmonics(rng: np.random.Generator, amp: float) -> tuple[tuple[int, float, float], ...]:
    return tuple((k, float(rng.uniform(0, amp) / k ** 0.5), float(rng.uniform(0, 2 * np.pi)))
                 for k in (2, 3, 4, 5))


def _motor_neuron(rng: np.random.Generator, y: float, x: float, nucleolus: bool) -> NisslCell:
    diam = float(np.clip(rng.normal(30.0, 5.0), 23.5, 42.0))
    n_proc = int(rng.integers(3, 6))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n_proc))
    processes = tuple((float(a), float(rng.uniform(0.7, 1.8) * diam / 2),
                       float(rng.uniform(0.3, 0.45) * diam / 2)) for a in angles)
    # Bumps of the outline at the dendrite bases make the soma polygonal/multipolar.
    harm = list(_harmonics(rng, 0.08))
    cell = NisslCell("motor_neuron", y, x, diam / 2, angle=float(rng.uniform(0, np.pi)),
                     elongation=float(rng.uniform(1.0, 1.35)), harmonics=tuple(harm),
                     od=float(rng.uniform(0.7, 1.1)), processes=processes)
    # Rescale so the equivalent diameter is the drawn one.
    scale = diam / cell.equivalent_diameter_um
    rn = 0.45 * diam / 2
    off = rng.uniform(0, 0.15 * diam / 2, size=2)
    return NisslCell(cell.kind, y, x, cell.radius_um * scale, cell.angle, cell.elongation,
                     cell.harmonics, cell.od, nucleus=(float(off[0]), float(off[1]), rn),
                     nucleolus=nucleolus, nucleolus_radius_um=float(rng.uniform(1.2, 1.6)),
                     processes=processes)


def _small_neuron(rng: np.random.Generator, y: float, x: float) -> NisslCell:
    diam = float(rng.uniform(12.0, 17.0))
    n_proc = int(rng.integers(1, 3))
    processes = tuple((float(rng.uniform(0, 2 * np.pi)), float(rng.uniform(0.5, 1.2) * diam / 2),
                       float(0.25 * diam / 2)) for _ in range(n_proc))
    cell = NisslCell("small_neuron", y, x, diam / 2, angle=float(rng.uniform(0, np.pi)),
                     elongation=float(rng.uniform(1.0, 1.3)), harmonics=_harmonics(rng, 0.06),
                     od=float(rng.uniform(0.35, 0.55)))
    scale = diam / cell.equivalent_diameter_um
    return NisslCell(cell.kind, y, x, cell.radius_um * scale, cell.angle, cell.elongation,
                     cell.harmonics, cell.od, nucleus=(0.0, 0.0, 0.4 * diam / 2),
                     processes=processes)


def _glia(rng: np.random.Generator, y: float, x: float, diam: float | None = None) -> NisslCell:
    diam = float(rng.uniform(7.5, 10.5)) if diam is None else diam
    cell = NisslCell("glia", y, x, diam / 2, angle=float(rng.uniform(0, np.pi)),
                     elongation=float(rng.uniform(1.0, 1.3)), harmonics=_harmonics(rng, 0.04),
                     od=float(rng.uniform(0.7, 1.1)))
    scale = diam / cell.equivalent_diameter_um
    return NisslCell(cell.kind, y, x, cell.radius_um * scale, cell.angle, cell.elongation,
                     cell.harmonics, cell.od)


def make_nissl_tissue(size_um: tuple[float, float] = (512.0, 512.0), *, seed: int = 0,
                      motor_neuron_density_per_mm2: float = 30.0,
                      small_neuron_density_per_mm2: float = 150.0,
                      glia_density_per_mm2: float = 600.0,
                      vessel_density_per_mm2: float = 20.0,
                      satellite_fraction: float = 0.5,
                      glia_pair_fraction: float = 0.1,
                      nucleolus_fraction: float = 0.6,
                      margin_um: float | None = None,
                      stain_variation: float = 0.2,
                      illumination_falloff: float = 0.12,
                      noise_grey: float = 2.0) -> NisslTissue:
    """Lay out a piece of Nissl-stained ventral horn (no pixels yet).

    Parameters
    ----------
    size_um : (float, float)
        Height and width of the piece in µm.
    seed : int
        Random seed; the same seed gives the same tissue.
    motor_neuron_density_per_mm2 : float
        Motor-neuron profiles per mm² (≈ 15–30 per ventral horn of 0.6–1 mm² in wild type
        [U], so 20–40 per mm²; tests raise it to get enough cells in a small image).
    small_neuron_density_per_mm2, glia_density_per_mm2, vessel_density_per_mm2 : float
        Other profiles per mm² [U].
    satellite_fraction : float
        Fraction of motor neurons with 1–2 glial nuclei pressed against the soma.
    glia_pair_fraction : float
        Fraction of free glial nuclei that have a touching partner.
    nucleolus_fraction : float
        Fraction of motor neurons whose nucleolus is in the section (≈ half [U]).
    margin_um : float, optional
        Keep motor-neuron centres this far from the edges (default: their largest radius,
        so none is cut by the border).
    stain_variation, illumination_falloff, noise_grey : float
        Strength of uneven staining (relative), vignetting (relative) and camera noise (grey
        levels).

    Returns
    -------
    NisslTissue
        The layout, rendered at any pixel size by :meth:`NisslTissue.render`.
    """
    rng = np.random.default_rng([seed, 0])
    h_um, w_um = float(size_um[0]), float(size_um[1])
    area_mm2 = h_um * w_um / 1e6
    occ = _Occupancy()
    cells: list[NisslCell] = []

    def place(make, n, gap, margin, tries=60):
        out = []
        for _ in range(n):
            for _ in range(tries):
                y = rng.uniform(margin, max(margin, h_um - margin))
                x = rng.uniform(margin, max(margin, w_um - margin))
                cell = make(y, x)
                r = cell.max_radius_um
                if occ.free(y, x, r, gap):
                    occ.add(y, x, r)
                    out.append(cell)
                    break
        return out

    n_mn = rng.poisson(motor_neuron_density_per_mm2 * area_mm2)
    mn_margin = 21.0 if margin_um is None else margin_um
    mns = place(lambda y, x: _motor_neuron(rng, y, x, bool(rng.random() < nucleolus_fraction)),
                n_mn, 12.0, mn_margin)
    cells += mns
    # Satellite glia pressed against motor-neuron somata, away from the dendrites.
    for mn in mns:
        if rng.random() >= satellite_fraction:
            continue
        for _ in range(int(rng.integers(1, 3))):
            for _ in range(20):
                theta = rng.uniform(0, 2 * np.pi)
                if any(abs(np.angle(np.exp(1j * (theta - a)))) < 0.5 for a, _, _ in mn.processes):
                    continue
                g = _glia(rng, 0.0, 0.0)
                d = float(mn.outline_radius(np.array([theta]))[0]) + g.radius_um * 0.95
                y, x = mn.y_um + d * np.sin(theta), mn.x_um + d * np.cos(theta)
                g = NisslCell(g.kind, y, x, g.radius_um, g.angle, 1.0, (), g.od)
                if 0 < y < h_um and 0 < x < w_um and _free_except(occ, y, x, g.radius_um, mn):
                    occ.add(y, x, g.radius_um)
                    cells.append(g)
                    break
    cells += place(lambda y, x: _small_neuron(rng, y, x),
                   rng.poisson(small_neuron_density_per_mm2 * area_mm2), 3.0, 0.0)
    vessels = []
    for _ in range(rng.poisson(vessel_density_per_mm2 * area_mm2)):
        r = float(rng.uniform(3.0, 8.0))
        y, x = rng.uniform(0, h_um), rng.uniform(0, w_um)
        if occ.free(y, x, r, 2.0):
            occ.add(y, x, r)
            vessels.append((float(y), float(x), r))
    free_glia = place(lambda y, x: _glia(rng, y, x),
                      rng.poisson(glia_density_per_mm2 * area_mm2), 2.0, 0.0, tries=10)
    cells += free_glia
    for g in free_glia:
        if rng.random() >= glia_pair_fraction:
            continue
        partner = _glia(rng, 0.0, 0.0)
        theta = rng.uniform(0, 2 * np.pi)
        d = g.max_radius_um + partner.radius_um * 0.95
        y, x = g.y_um + d * np.sin(theta), g.x_um + d * np.cos(theta)
        partner = NisslCell("glia", y, x, partner.radius_um, 0.0, 1.0, (), partner.od)
        if 0 < y < h_um and 0 < x < w_um and _free_except(occ, y, x, partner.radius_um, g):
            occ.add(y, x, partner.radius_um)
            cells.append(partner)
    return NisslTissue((h_um, w_um), cells, vessels, seed=seed, stain_variation=stain_variation,
                       illumination_falloff=illumination_falloff, noise_grey=noise_grey)


def _free_except(occ: _Occupancy, y: float, x: float, r: float, host: NisslCell) -> bool:
    """Free of every placed disc except ``host`` (which the new cell is meant to touch)."""
    by, bx = int(y // occ.bucket), int(x // occ.bucket)
    reach = int(np.ceil((r + 50.0) / occ.bucket))
    for i in range(by - reach, by + reach + 1):
        for j in range(bx - reach, bx + reach + 1):
            for (y2, x2, r2) in occ.cells.get((i, j), ()):
                if y2 == host.y_um and x2 == host.x_um:
                    continue
                if (y - y2) ** 2 + (x - x2) ** 2 < (r + r2 + 1.0) ** 2:
                    return False
    return True


def nissl_phantom(shape: tuple[int, int] = (1024, 1024), pixel_size_um: float = 0.5, *,
                  seed: int = 0, **tissue_kwargs: Any) -> tuple[Image, NisslTruth]:
    """Return a Nissl-stained ventral-horn image with exact truth.

    Parameters
    ----------
    shape : (int, int)
        Image height and width in pixels.
    pixel_size_um : float
        Pixel size in µm (0.5 µm/px ≈ a 20× objective).
    seed : int
        Random seed.
    **tissue_kwargs
        Passed to :func:`make_nissl_tissue` (densities, fractions, staining, noise).

    Returns
    -------
    image : Image
        RGB uint8 brightfield image with ``pixel_size_um`` set.
    truth : NisslTruth
        Label images of every soma and of the motor neurons, and the per-cell table.

    Examples
    --------
    >>> image, truth = nissl_phantom((512, 512), 0.5, seed=1)
    >>> image.data.shape, image.pixel_size_um
    ((512, 512, 3), 0.5)

    The same tissue at another pixel size:

    >>> tissue = make_nissl_tissue((256.0, 256.0), seed=1)
    >>> coarse, coarse_truth = tissue.render(1.0)
    """
    px = float(pixel_size_um)
    tissue = make_nissl_tissue((shape[0] * px, shape[1] * px), seed=seed, **tissue_kwargs)
    return tissue.render(px)
