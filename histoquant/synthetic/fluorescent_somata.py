"""Fluorescence phantom of a ventral horn stained for somata (ChAT, NeuN, NeuroTrace).

Bright cell bodies on a dim, textured neuropil, described in µm and rendered at any pixel size
(0.5 µm/px confocal to 2 µm/px whole-section exports), with exact truth:

- **motor neurons**: elliptical somata of 24–40 µm equivalent diameter (α-motor neurons
  ≈ 28 µm, Mayhew & Momoh 1974, J Anat), brightness 0.6–1 of the brightest;
- **small neurons**: 10–15 µm (small neurons ≈ 16 µm, glial nuclei ≈ 9 µm), as bright — the
  size criterion, not the brightness, must tell them apart;
- **neuropil**: a dim level with a slow ±30 % field (uneven staining), thin bright fibres
  (1.5 µm wide, ≈ 15 % of a soma's brightness above the neuropil, as ChAT+ fibres and
  dendrites), and camera
  noise;
- optical blur (Gaussian, σ = 0.6 µm), 8-bit quantisation, optional **padding** (the export's
  grey canvas around a tilted tile) and **JPEG** compression.

Two optional hard cases (off by default, drawn from their own random stream so the default
image does not change), each a failure seen on the real ChAT sections:

- **dim somata in a bright neuropil** (``n_dim``): a disc of neuropil (``patch_radius_um``)
  brighter and more granular than the rest (the fibre-dense ventral horn), holding round motor
  neurons only ``dim_excess`` above it — they average 4–5 σ of its local noise, below the main
  brightness criterion, and must still be found;
- **fibre bundles** (``n_bundles``): straight bright bands ``bundle_width_um`` wide crossing
  the field (or ``bundle_length_um`` long), beaded along their length (as a real bundle's
  varicosities), as bright as a dim soma: the watershed cuts them into soma-sized pieces,
  none of which may be called a motor neuron. ``truth.bundles`` is their mask.

The size classes are separated by a gap (≤ 15 µm, ≥ 24 µm) and somata do not touch: the
phantom checks detection and measurement, not where a cut-off falls in a continuum.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..io.image import Image

__all__ = ["FluorescentTruth", "fluorescent_somata_phantom"]


@dataclass
class FluorescentTruth:
    """Cells of the phantom (µm) and the label image at the rendered pixel size."""

    cells: pd.DataFrame
    labels: np.ndarray
    padding: np.ndarray
    bundles: np.ndarray | None = None

    @property
    def n_motor_neurons(self) -> int:
        """Number of motor neurons in the truth."""
        return int((self.cells["kind"] == "motor_neuron").sum())

    @property
    def n_small(self) -> int:
        """Number of small neurons in the truth."""
        return int((self.cells["kind"] == "small_neuron").sum())


def _place(rng: np.random.Generator, size_um: tuple[float, float], radii: list[float],
           gap_um: float, margin_um: float) -> list[tuple[float, float]]:
    """Centres for discs of ``radii`` that keep ``gap_um`` apart (rejection sampling)."""
    placed: list[tuple[float, float, float]] = []
    out = []
    for r in radii:
        for _ in range(500):
            y = rng.uniform(margin_um + r, size_um[0] - margin_um - r)
            x = rng.uniform(margin_um + r, size_um[1] - margin_um - r)
            if all((y - py) ** 2 + (x - px) ** 2 > (r + pr + gap_um) ** 2
                   for py, px, pr in placed):
                placed.append((y, x, r))
                out.append((y, x))
                break
        else:
            out.append((np.nan, np.nan))
    return out


def fluorescent_somata_phantom(shape: tuple[int, int] = (1024, 1024),
                               pixel_size_um: float = 0.5, *, seed: int = 0,
                               n_motor_neurons: int = 12, n_small: int = 20,
                               n_fibres: int = 80, background: float = 30.0,
                               soma_level: float = 200.0, fibre_fraction: float = 0.15,
                               noise: float = 6.0, padding_px: int = 0,
                               padding_value: int = 40, jpeg_quality: int | None = None,
                               rgb: bool = True, n_dim: int = 0, patch_radius_um: float = 150.0,
                               dim_excess: float = 60.0, n_bundles: int = 0,
                               bundle_width_um: float = 12.0, bundle_length_um: float | None = None,
                               bead_period_um: float = 45.0,
                               bundle_level: float = 90.0
                               ) -> tuple[Image, FluorescentTruth]:
    """Return a fluorescent somata image with exact truth (see the module docstring).

    Parameters
    ----------
    shape : (int, int)
        Image height and width in pixels (padding included).
    pixel_size_um : float
        Pixel size in µm.
    seed : int
        Random seed.
    n_motor_neurons, n_small : int
        Numbers of motor neurons (24–40 µm) and small neurons (10–15 µm). Cells that do not
        fit are left out of the truth table.
    n_fibres : int
        Number of straight fibres crossing the field.
    background, soma_level : float
        Neuropil level and the brightest soma's level (8-bit grey levels).
    fibre_fraction : float
        Fibre brightness above the neuropil, as a fraction of the brightest soma's.
    noise : float
        Standard deviation of the camera noise (grey levels).
    padding_px : int
        Width of a constant padding band along the right and bottom edges (0 = none).
    padding_value : int
        Grey level of the padding (every channel).
    jpeg_quality : int, optional
        Compress to JPEG at this quality and decode (None = lossless).
    rgb : bool
        An RGB image with the stain in the red channel (a ChAT export) instead of one channel.
    n_dim : int
        Dim round motor neurons (24–30 µm) in a bright, granular neuropil patch (0 = no
        patch).
    patch_radius_um : float
        Radius of that patch; its neuropil is 1.5 × ``background`` with granular texture of
        2 × ``noise`` standard deviation.
    dim_excess : float
        Brightness of the dim somata above the patch's neuropil level (grey levels); 60
        puts them at 4–6 σ of the patch's noise.
    n_bundles : int
        Bright fibre bundles (straight, beaded), away from every cell.
    bundle_width_um : float
        Their width.
    bundle_length_um : float, optional
        Their length; None (default): they cross the whole field, as a ventral horn's
        bundles cross a horn (a bundle that ends abruptly in the field, its end piece
        continuing on one side only, is not a case the criteria handle).
    bead_period_um : float
        Period of the beading along them: 45 µm beads of a 12 µm bundle are soma-sized
        pieces (≈ 25 µm equivalent diameter) once the watershed cuts between them.
    bundle_level : float
        Their mean brightness above the neuropil (grey levels); ± 30 % beading along them.

    Returns
    -------
    image : Image
        uint8 image with ``pixel_size_um`` set (RGB or one channel).
    truth : FluorescentTruth
        Per-cell table (``kind``, ``y_um``, ``x_um``, ``equivalent_diameter_um``,
        ``area_um2``, ``label``, ``dim``), the label image, the padding mask and the
        bundles' mask (None without bundles).
    """
    rng = np.random.default_rng(seed)
    px = float(pixel_size_um)
    h, w = int(shape[0]), int(shape[1])
    size_um = (h * px, w * px)
    pad = int(padding_px)
    # Cells only in the unpadded part, away from its edges.
    inner_um = ((h - pad) * px, (w - pad) * px)
    padding_zone = np.zeros((h, w), bool)
    if pad:
        padding_zone[:, w - pad:] = True
        padding_zone[h - pad:, :] = True
    d_mn = rng.uniform(24.0, 40.0, n_motor_neurons)
    d_small = rng.uniform(10.0, 15.0, n_small)
    diam = np.concatenate([d_mn, d_small])
    kinds = ["motor_neuron"] * n_motor_neurons + ["small_neuron"] * n_small
    elong = rng.uniform(1.0, 1.5, len(diam))
    angle = rng.uniform(0, np.pi, len(diam))
    # semi-axes a ≥ b with a·b = (d/2)²: the equivalent diameter is d
    b_ax = diam / 2 / np.sqrt(elong)
    a_ax = diam / 2 * np.sqrt(elong)
    centres = _place(rng, inner_um, list(a_ax), gap_um=10.0, margin_um=10.0)
    # Supersampled coverage: each pixel split 4 × 4 (exact areas to a few %).
    ss = 4
    yy = (np.arange(h * ss) + 0.5) / ss * px
    xx = (np.arange(w * ss) + 0.5) / ss * px
    labels_ss = np.zeros((h * ss, w * ss), np.int32)
    level = np.zeros((h, w), np.float64)
    rows = []
    lab = 0

    def draw(target: np.ndarray, value: int, cy: float, cx: float, a: float, b: float,
             ang: float) -> None:
        """Ellipse of semi-axes a ≥ b (µm), long axis at ``ang``, into the supersampled grid."""
        r0 = max(0, int((cy - a - 1) / px * ss))
        r1 = min(h * ss, int((cy + a + 1) / px * ss) + 1)
        c0 = max(0, int((cx - a - 1) / px * ss))
        c1 = min(w * ss, int((cx + a + 1) / px * ss) + 1)
        Y, X = np.meshgrid(yy[r0:r1] - cy, xx[c0:c1] - cx, indexing="ij")
        ca, sa = np.cos(ang), np.sin(ang)
        u = Y * ca + X * sa
        v = -Y * sa + X * ca
        inside = (u / a) ** 2 + (v / b) ** 2 <= 1.0
        target[r0:r1, c0:c1][inside] = value

    for i, (cy, cx) in enumerate(centres):
        if not np.isfinite(cy):
            continue
        lab += 1
        draw(labels_ss, lab, cy, cx, a_ax[i], b_ax[i], angle[i])
        rows.append({"label": lab, "kind": kinds[i], "y_um": cy, "x_um": cx,
                     "equivalent_diameter_um": float(diam[i]),
                     "area_um2": float(np.pi * a_ax[i] * b_ax[i]),
                     "brightness": float(rng.uniform(0.6, 1.0)), "dim": False})
    # The hard cases draw from their own stream: the default image stays as it was.
    rng2 = np.random.default_rng([int(seed), 14])
    patch = None
    if n_dim > 0:
        pr = float(patch_radius_um)
        pcy = rng2.uniform(pr, max(pr, inner_um[0] - pr))
        pcx = rng2.uniform(pr, max(pr, inner_um[1] - pr))
        patch = (pcy, pcx, pr)
        placed = [(r["y_um"], r["x_um"], np.sqrt(r["area_um2"] / np.pi) * 1.25)
                  for r in rows]
        for _ in range(int(n_dim)):
            d = rng2.uniform(24.0, 30.0)
            el = rng2.uniform(1.0, 1.2)
            ang = rng2.uniform(0, np.pi)
            a, b = d / 2 * np.sqrt(el), d / 2 / np.sqrt(el)
            for _ in range(500):
                rad, th = rng2.uniform(0, pr - a - 10), rng2.uniform(0, 2 * np.pi)
                cy, cx = pcy + rad * np.sin(th), pcx + rad * np.cos(th)
                if all((cy - qy) ** 2 + (cx - qx) ** 2 > (a + qr + 10.0) ** 2
                       for qy, qx, qr in placed):
                    break
            else:
                continue
            placed.append((cy, cx, a))
            lab += 1
            draw(labels_ss, lab, cy, cx, a, b, ang)
            # a soma of brightness β is the blend L (1 − β) + soma_level β of the neuropil
            # L: β = dim_excess / (soma_level − L) puts it dim_excess above the patch's L
            rows.append({"label": lab, "kind": "motor_neuron", "y_um": cy, "x_um": cx,
                         "equivalent_diameter_um": float(d), "area_um2": float(np.pi * a * b),
                         "brightness": dim_excess / max(soma_level - 1.5 * background, 1.0),
                         "dim": True})
    cells = pd.DataFrame(rows)
    bright = np.zeros(lab + 1)
    if len(cells):
        bright[cells["label"].to_numpy()] = cells["brightness"].to_numpy()
    # Per-pixel coverage-weighted brightness and the majority label.
    cover = bright[labels_ss].reshape(h, ss, w, ss).mean(axis=(1, 3))
    labels = labels_ss[ss // 2::ss, ss // 2::ss].copy()
    del labels_ss
    # Neuropil: slow staining field, fibres.
    field = ndi.gaussian_filter(rng.normal(0, 1, (max(2, h // 16), max(2, w // 16))), 2)
    field = ndi.zoom(field / max(np.abs(field).max(), 1e-9), (h / field.shape[0],
                                                              w / field.shape[1]), order=1)
    level += background * (1 + 0.3 * field[:h, :w])
    fib = np.zeros((h, w))
    Yp, Xp = np.mgrid[0:h, 0:w].astype(np.float64) * px
    for _ in range(n_fibres):
        y0, x0 = rng.uniform(0, size_um[0]), rng.uniform(0, size_um[1])
        th = rng.uniform(0, np.pi)
        dist = np.abs((Yp - y0) * np.cos(th) - (Xp - x0) * np.sin(th))
        # a 1.5 µm wide fibre: coverage of a pixel by the band
        fib = np.maximum(fib, np.clip((0.75 + px / 2 - dist) / px, 0, 1) * min(1.0, 1.5 / px))
    level += fibre_fraction * soma_level * fib * rng.uniform(0.5, 1.0)
    if patch is not None:
        pcy, pcx, pr = patch
        inside = (Yp - pcy) ** 2 + (Xp - pcx) ** 2 <= pr ** 2
        grain = ndi.gaussian_filter(rng2.normal(0, 1, (h, w)), max(0.5, 1.0 / px))
        grain *= 2 * noise / max(float(grain.std()), 1e-9)
        # replaces the neuropil there (the field and fine fibres go on under it)
        level = np.where(inside, level + 0.5 * background + grain, level)
    bundles = None
    if n_bundles > 0:
        bundles = np.zeros((h, w), bool)
        half_w = bundle_width_um / 2
        half_l = np.inf if bundle_length_um is None else bundle_length_um / 2
        # every cell as (y, x, long semi-axis): a bundle keeps 10 µm from each
        keep_off = [(r["y_um"], r["x_um"], np.sqrt(r["area_um2"] / np.pi) * 1.25)
                    for r in rows]
        lines: list[tuple[float, float, float]] = []
        for _ in range(int(n_bundles)):
            for _ in range(2000):
                y0, x0 = rng2.uniform(0, size_um[0]), rng2.uniform(0, size_um[1])
                th = rng2.uniform(0, np.pi)
                sn, cs = np.sin(th), np.cos(th)
                clear = True
                for cy, cx, r in keep_off:
                    al = (cy - y0) * sn + (cx - x0) * cs
                    ac = abs((cy - y0) * cs - (cx - x0) * sn)
                    if ac <= half_w + r + 10.0 and abs(al) <= half_l + r + 10.0:
                        clear = False
                        break
                # bundles do not cross each other (each piece's truth is one bundle)
                if clear and all(abs(np.sin(th - t2)) > 0.3 for _, _, t2 in lines):
                    break
            else:
                continue
            lines.append((y0, x0, th))
            along = (Yp - y0) * sn + (Xp - x0) * cs
            across = np.abs((Yp - y0) * cs - (Xp - x0) * sn)
            edge = np.clip((half_w + px / 2 - across) / px, 0, 1)
            if np.isfinite(half_l):
                edge *= np.clip((half_l - np.abs(along)) / px + 0.5, 0, 1)
            bead = 1 + 0.3 * np.sin(2 * np.pi * along / bead_period_um)
            level += bundle_level * bead * edge
            bundles |= edge > 0.5
    level = np.where(cover > 0, level * (1 - np.minimum(cover, 1)) + soma_level * cover, level)
    level = ndi.gaussian_filter(level, 0.6 / px)
    level += rng.normal(0, noise, level.shape)
    img = np.clip(np.rint(level), 0, 255).astype(np.uint8)
    padding = np.zeros((h, w), bool)
    if pad:
        padding[:, w - pad:] = True
        padding[h - pad:, :] = True
    if rgb:
        other = np.clip(np.rint(rng.normal(1.0, 1.0, (h, w))), 0, 255).astype(np.uint8)
        data = np.stack([img, other, other[::-1, ::-1]], axis=-1)
        data[padding] = padding_value
    else:
        data = img
        data[padding] = padding_value
    if jpeg_quality is not None:
        from PIL import Image as PILImage

        buf = io.BytesIO()
        PILImage.fromarray(data).save(buf, format="JPEG", quality=int(jpeg_quality))
        data = np.asarray(PILImage.open(io.BytesIO(buf.getvalue())))
    labels[padding] = 0
    if bundles is not None:
        bundles &= ~padding
    image = Image(data=data, axes="YXC" if rgb else "YX", pixel_size_um=px,
                  channel_names=("R", "G", "B") if rgb else ("C0",), rgb=rgb,
                  metadata={"name": f"fluorescent_phantom_{seed}"})
    return image, FluorescentTruth(cells=cells, labels=labels, padding=padding,
                                   bundles=bundles)
