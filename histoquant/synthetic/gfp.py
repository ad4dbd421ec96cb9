"""Phantom of a spinal cord section with rare GFP+ transplanted cells among green decoys.

Three channels (``dapi``, ``gfp``, ``reference``), uint16, with exact truth:

- tissue (an ellipse) with uneven, mottled broad-spectrum autofluorescence in the GFP and the
  reference channel, dark outside, and a bright autofluorescent rim at the tissue edge;
- DAPI nuclei everywhere (glial-sized, 6–10 µm);
- GFP+ cells: 13–30 µm (MSC ≈ 23 µm; Toma et al. 2009, Ge et al. 2014), GFP filling the cytoplasm
  around a nucleus (the nucleus holds half the cytoplasmic GFP), a faint bleed-through into the
  reference channel, some of them dim; optional touching pairs and GFP+ objects without a nucleus;
- lipofuscin decoys: punctate 0.8–2 µm granules clustered on one side of a large pale neuronal
  nucleus, bright in GFP *and* reference (broad emission, Mochizuki et al. 1995);
- red-blood-cell decoys: 6–7.5 µm biconcave discs, alone or in short chains, bright in both
  channels (Whittington & Wray 2017).

Every intensity is in camera counts over an offset of 100. The generator is vectorised except
for stamping objects, so a 1024² phantom takes well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from ..io.image import Image

__all__ = ["GfpTruth", "make_gfp_phantom", "make_example"]

CHANNELS = ("dapi", "gfp", "reference")
_OFFSET = 100.0
_READ_NOISE = 8.0


@dataclass
class GfpTruth:
    """Exact truth of a GFP phantom.

    Attributes
    ----------
    cells : DataFrame
        One row per GFP+ object: ``label`` (in ``cell_labels``), ``row``, ``col``,
        ``y_um``, ``x_um``, ``diameter_um``, ``gfp_amplitude`` (counts over the local
        background), ``dim`` (bool), ``nucleated`` (bool), ``touching`` (bool).
    decoys : DataFrame
        One row per autofluorescent decoy: ``label`` (in ``decoy_labels``), ``kind``
        (``lipofuscin``, ``rbc``, ``edge``), ``row``, ``col``, ``y_um``, ``x_um``,
        ``reference_ratio`` (reference / GFP signal).
    cell_labels, decoy_labels, nuclei_labels : ndarray of int32
        Label images of the GFP+ objects (whole cell), the decoys (their bright pixels) and
        every DAPI nucleus.
    tissue : ndarray of bool
        The tissue section.
    pixel_size_um : float
    """

    cells: pd.DataFrame
    decoys: pd.DataFrame
    cell_labels: np.ndarray
    decoy_labels: np.ndarray
    nuclei_labels: np.ndarray
    tissue: np.ndarray
    pixel_size_um: float
    info: dict = field(default_factory=dict)

    @property
    def n_gfp_cells(self) -> int:
        """Number of GFP+ cells that hold a nucleus (what the assay should count with DAPI)."""
        return int(self.cells["nucleated"].sum()) if len(self.cells) else 0

    @property
    def n_gfp_objects(self) -> int:
        """Number of GFP+ objects, with or without a nucleus."""
        return len(self.cells)


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale_px: float,
                  amplitude: float) -> np.ndarray:
    """Random smooth field with mean 1 and ~``amplitude`` relative variation at ``scale_px``."""
    step = max(1, int(scale_px / 4))
    small = (max(2, shape[0] // step + 2), max(2, shape[1] // step + 2))
    noise = ndi.gaussian_filter(rng.standard_normal(small).astype(np.float32), 2.0)
    noise /= max(float(noise.std()), 1e-6)
    up = ndi.zoom(noise, step, order=1, prefilter=False)[: shape[0], : shape[1]]
    if up.shape != shape:  # zoom rounds; pad the last rows/cols
        up = np.pad(up, [(0, shape[0] - up.shape[0]), (0, shape[1] - up.shape[1])], mode="edge")
    return (1.0 + amplitude * up).astype(np.float32)


class _Canvas:
    """Adds soft-edged shapes into channels through local stamps (no full-image passes)."""

    def __init__(self, shape: tuple[int, int]):
        self.shape = shape
        self.dapi = np.zeros(shape, np.float32)
        self.gfp = np.zeros(shape, np.float32)
        self.ref = np.zeros(shape, np.float32)
        self.n_nuclei = 0

    def window(self, r: float, c: float, radius: float,
               ) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray] | None:
        h, w = self.shape
        r0, r1 = max(0, int(r - radius - 2)), min(h, int(r + radius + 3))
        c0, c1 = max(0, int(c - radius - 2)), min(w, int(c + radius + 3))
        if r0 >= r1 or c0 >= c1:
            return None
        yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float32)
        return (slice(r0, r1), slice(c0, c1)), yy - r, xx - c


def _ellipse(dy: np.ndarray, dx: np.ndarray, a: float, b: float, theta: float,
             wobble: np.ndarray | None = None) -> np.ndarray:
    """Soft (anti-aliased, 1 px ramp) ellipse of semi-axes a, b (px), with a wobbly edge."""
    ct, st = np.cos(theta), np.sin(theta)
    u = dx * ct + dy * st
    v = -dx * st + dy * ct
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    edge = 1.0
    if wobble is not None:
        phi = np.arctan2(v, u)
        edge = 1.0 + sum(w * np.cos((k + 2) * phi + p) for k, (w, p) in enumerate(wobble))
    # distance to the edge in pixels, approximately, for a one-pixel ramp
    dist = (edge - rho) * min(a, b)
    return np.clip(dist + 0.5, 0.0, 1.0).astype(np.float32)


def make_gfp_phantom(
    shape: tuple[int, int] = (1024, 1024),
    pixel_size_um: float = 0.5,
    *,
    n_cells: int = 6,
    n_touching_pairs: int = 0,
    n_anucleate: int = 0,
    n_lipofuscin: int = 10,
    n_rbc: int = 16,
    dim_fraction: float = 0.34,
    nuclei_per_mm2: float = 1500.0,
    tissue_fraction: float = 0.8,
    edge_artefact: bool = True,
    seed: int = 0,
) -> tuple[Image, GfpTruth]:
    """Make a three-channel GFP phantom with exact truth.

    Parameters
    ----------
    shape : (int, int)
        Image height and width in pixels.
    pixel_size_um : float
        Pixel size; every object size is set in µm, so the phantom looks the same at any
        resolution.
    n_cells : int
        Single GFP+ cells with a nucleus.
    n_touching_pairs : int
        Extra pairs of touching GFP+ cells (2 cells each), to test their separation.
    n_anucleate : int
        GFP+ objects with no nucleus in the section (debris, a cell cut off its nucleus).
    n_lipofuscin : int
        Perinuclear lipofuscin granule clusters.
    n_rbc : int
        Red blood cells, about a third of them in chains of 2–3.
    dim_fraction : float
        Fraction of GFP+ objects that are dim (about 0.3–0.6× the tissue autofluorescence
        above it), the hard ones.
    nuclei_per_mm2 : float
        Density of ordinary DAPI nuclei in the tissue.
    tissue_fraction : float
        Size of the tissue ellipse relative to the image (1.0 touches the borders).
    edge_artefact : bool
        Draw a bright autofluorescent rim along the tissue edge.
    seed : int
        Random seed.

    Returns
    -------
    image : Image
        (Y, X, C) uint16 with channels ``dapi``, ``gfp``, ``reference`` and the pixel size.
    truth : GfpTruth
    """
    rng = np.random.default_rng(seed)
    h, w = (int(s) for s in shape)
    px = float(pixel_size_um)
    um = 1.0 / px  # pixels per µm
    yy, xx = np.ogrid[:h, :w]
    cy, cx = (h - 1) / 2, (w - 1) / 2
    ry, rx = tissue_fraction * h / 2, tissue_fraction * w / 2
    rho_t = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2).astype(np.float32)
    tissue = rho_t < 1.0

    canvas = _Canvas((h, w))
    cell_labels = np.zeros((h, w), np.int32)
    decoy_labels = np.zeros((h, w), np.int32)
    nuclei_labels = np.zeros((h, w), np.int32)

    # --- where objects go: random points in the tissue, kept apart from one another
    placed: list[tuple[float, float, float]] = []  # (row, col, radius_px) of big objects

    def place(radius_px: float, margin_px: float) -> tuple[float, float] | None:
        for _ in range(400):
            t = rng.uniform(0, 2 * np.pi)
            s = np.sqrt(rng.uniform(0, 1)) * 0.85
            r, c = cy + s * ry * np.sin(t), cx + s * rx * np.cos(t)
            if all((r - pr) ** 2 + (c - pc) ** 2 > (radius_px + pr_r + margin_px) ** 2
                   for pr, pc, pr_r in placed):
                placed.append((r, c, radius_px))
                return r, c
        return None

    cells_rows: list[dict] = []
    decoy_rows: list[dict] = []
    cleared: list[tuple[float, float, float]] = []  # discs where no ordinary nucleus goes

    def gfp_object(r: float, c: float, diameter_um: float, amplitude: float, dim: bool,
                   nucleated: bool, touching: bool, theta: float, elong: float) -> None:
        label = len(cells_rows) + 1
        a = diameter_um / 2 * np.sqrt(elong) * um
        b = diameter_um / 2 / np.sqrt(elong) * um
        wobble = rng.uniform(-0.06, 0.06, 3), rng.uniform(0, 2 * np.pi, 3)
        win = canvas.window(r, c, a + 2)
        if win is None:
            return
        sl, dy, dx = win
        body = _ellipse(dy, dx, a, b, theta, np.stack(wobble, axis=1))
        texture = 0.85 + 0.15 * rng.random(body.shape, dtype=np.float32)
        gfp = amplitude * body * ndi.uniform_filter(texture, 3)
        nuc_d = rng.uniform(8.0, 11.0) * um
        off = rng.uniform(0, 0.1) * diameter_um * um
        phi = rng.uniform(0, 2 * np.pi)
        ndy, ndx = dy - off * np.sin(phi), dx - off * np.cos(phi)
        if nucleated:
            nuc = _ellipse(ndy, ndx, nuc_d / 2 * 1.1, nuc_d / 2 / 1.1, rng.uniform(0, np.pi))
            gfp = gfp * (1 - 0.5 * nuc)  # EGFP enters the nucleus, less than it fills cytoplasm
            _stamp_nucleus(canvas, nuclei_labels, sl, nuc, rng)
        # touching cells share an edge: keep the brighter of the two, never the sum
        np.maximum(canvas.gfp[sl], gfp, out=canvas.gfp[sl])
        canvas.ref[sl] += 0.03 * gfp  # EGFP tail past 570 nm: a few per cent bleed-through
        own = (body > 0.5) & (cell_labels[sl] == 0)
        cell_labels[sl][own] = label
        cells_rows.append({"label": label, "row": r, "col": c, "y_um": r * px, "x_um": c * px,
                           "diameter_um": diameter_um, "gfp_amplitude": amplitude, "dim": dim,
                           "nucleated": nucleated, "touching": touching})
        cleared.append((r, c, a + 4 * um))

    n_objects = n_cells + 2 * n_touching_pairs + n_anucleate
    n_dim = round(dim_fraction * n_objects)
    dim_flags = rng.permutation([True] * n_dim + [False] * (n_objects - n_dim))
    af_level = 300.0  # tissue autofluorescence in the GFP channel, counts over offset

    def amplitude(dim: bool) -> float:
        return float(rng.uniform(0.3, 0.6) * af_level if dim else rng.uniform(2.0, 6.0) * af_level)

    k = 0
    for i in range(n_cells + n_anucleate):
        d = float(np.clip(rng.normal(23.0, 4.0), 14.0, 30.0))
        pos = place(d / 2 * 1.3 * um, 12 * um)
        if pos is None:
            continue
        gfp_object(*pos, d, amplitude(dim_flags[k]), bool(dim_flags[k]), i < n_cells, False,
                   rng.uniform(0, np.pi), rng.uniform(1.0, 1.5))
        k += 1
    for _ in range(n_touching_pairs):
        d1, d2 = (float(np.clip(rng.normal(22.0, 3.0), 16.0, 28.0)) for _ in range(2))
        pos = place((d1 + d2) / 2 * 1.2 * um, 12 * um)
        if pos is None:
            continue
        t = rng.uniform(0, np.pi)
        sep = 0.92 * (d1 + d2) / 2 * um
        for j, d in enumerate((d1, d2)):
            sgn = -0.5 if j == 0 else 0.5
            r, c = pos[0] + sgn * sep * np.sin(t), pos[1] + sgn * sep * np.cos(t)
            # the pair shares its brightness: a pair of very different cells is not the test
            gfp_object(r, c, d, amplitude(False), False, True, True, t, 1.0)
        k += 2

    # --- lipofuscin: granule clusters on one side of a large pale neuronal nucleus
    for _ in range(n_lipofuscin):
        nuc_r = rng.uniform(6.0, 8.0) * um
        pos = place(nuc_r + 9 * um, 10 * um)
        if pos is None:
            continue
        r, c = pos
        label = len(decoy_rows) + 1
        win = canvas.window(r, c, nuc_r)
        if win is not None:
            sl, dy, dx = win
            nuc = _ellipse(dy, dx, nuc_r, nuc_r * 0.9, rng.uniform(0, np.pi))
            _stamp_nucleus(canvas, nuclei_labels, sl, nuc, rng, brightness=0.45)
        ratio = float(rng.uniform(0.6, 1.4))
        side = rng.uniform(0, 2 * np.pi)
        n_gran = int(rng.integers(15, 40))
        for _g in range(n_gran):
            ang = side + rng.normal(0, 0.9)
            dist = nuc_r + rng.uniform(0.5, 7.0) * um
            gr, gc = r + dist * np.sin(ang), c + dist * np.cos(ang)
            gd = rng.uniform(0.8, 2.0) * um
            win = canvas.window(gr, gc, gd)
            if win is None:
                continue
            sl, dy, dx = win
            blob = np.exp(-(dy ** 2 + dx ** 2) / (2 * (gd / 2.355) ** 2)).astype(np.float32)
            amp = rng.uniform(1.5, 5.0) * af_level
            canvas.gfp[sl] += amp * blob
            canvas.ref[sl] += ratio * amp * blob
            decoy_labels[sl][(blob > 0.3) & (decoy_labels[sl] == 0)] = label
        decoy_rows.append({"label": label, "kind": "lipofuscin", "row": r, "col": c,
                           "y_um": r * px, "x_um": c * px, "reference_ratio": ratio})
        cleared.append((r, c, nuc_r + 8 * um))

    # --- red blood cells: biconcave discs, some in short chains (a capillary)
    n_done = 0
    while n_done < n_rbc:
        chain = int(rng.choice([1, 1, 1, 2, 3]))
        chain = min(chain, n_rbc - n_done)
        pos = place(chain * 4.0 * um, 8 * um)
        n_done += chain
        if pos is None:
            continue
        t = rng.uniform(0, np.pi)
        ratio = float(rng.uniform(0.5, 1.2))
        amp = rng.uniform(1.0, 4.0) * af_level
        for j in range(chain):
            d = rng.uniform(6.0, 7.5) * um
            r = pos[0] + (j - (chain - 1) / 2) * d * 0.95 * np.sin(t)
            c = pos[1] + (j - (chain - 1) / 2) * d * 0.95 * np.cos(t)
            win = canvas.window(r, c, d / 2 + 1)
            if win is None:
                continue
            sl, dy, dx = win
            disc = _ellipse(dy, dx, d / 2, d / 2, 0.0)
            dimple = 1 - 0.4 * np.exp(-(dy ** 2 + dx ** 2) / (2 * (d / 5) ** 2))
            sig = amp * disc * dimple
            canvas.gfp[sl] += sig
            canvas.ref[sl] += ratio * sig
            label = len(decoy_rows) + 1
            decoy_labels[sl][(disc > 0.5) & (decoy_labels[sl] == 0)] = label
            decoy_rows.append({"label": label, "kind": "rbc", "row": r, "col": c,
                               "y_um": r * px, "x_um": c * px, "reference_ratio": ratio})

    # --- ordinary nuclei on a jittered grid, so they never overlap
    spacing = 1000.0 / np.sqrt(nuclei_per_mm2) * um
    gy, gx = np.mgrid[spacing / 2: h: spacing, spacing / 2: w: spacing]
    jitter = 0.25 * spacing
    gy = gy.ravel() + rng.uniform(-jitter, jitter, gy.size)
    gx = gx.ravel() + rng.uniform(-jitter, jitter, gx.size)
    for r, c in zip(gy, gx):
        ri, ci = int(np.clip(r, 0, h - 1)), int(np.clip(c, 0, w - 1))
        if not tissue[ri, ci] or any((r - a) ** 2 + (c - b) ** 2 < rr ** 2
                                     for a, b, rr in cleared):
            continue
        d = rng.uniform(6.0, 10.0) * um
        win = canvas.window(r, c, d / 2 * 1.3 + 1)
        if win is None:
            continue
        sl, dy, dx = win
        nuc = _ellipse(dy, dx, d / 2 * 1.2, d / 2 / 1.2, rng.uniform(0, np.pi))
        _stamp_nucleus(canvas, nuclei_labels, sl, nuc, rng)

    # --- tissue autofluorescence: uneven illumination x slow variation x mottle
    vignette = (1.0 - 0.35 * ((yy - cy) ** 2 / cy ** 2 + (xx - cx) ** 2 / cx ** 2) / 2).astype(
        np.float32)
    slow = _smooth_field(rng, (h, w), 150 * um, 0.2)
    mottle = _smooth_field(rng, (h, w), 6 * um, 0.05)
    tissue_soft = np.clip((1.0 - rho_t) * min(rx, ry) + 0.5, 0, 1).astype(np.float32)
    af = tissue_soft * slow * mottle * af_level
    gfp = vignette * (af + canvas.gfp)
    ref = vignette * (0.7 * af * _smooth_field(rng, (h, w), 150 * um, 0.1) + canvas.ref)
    dapi = vignette * (0.15 * af + canvas.dapi)
    if edge_artefact:
        # cut edges curl and trap debris: a rim a few µm wide glowing in every channel
        rim_w = 4.0 * um / min(rx, ry)
        rim = np.exp(-((rho_t - 1.0 + rim_w) / rim_w) ** 2).astype(np.float32)
        rim *= _smooth_field(rng, (h, w), 30 * um, 0.4).clip(0.2)
        gfp += 4.0 * af_level * rim
        ref += 3.2 * af_level * rim
        dapi += 0.5 * af_level * rim
        label = len(decoy_rows) + 1
        decoy_labels[(rim > 0.5) & (decoy_labels == 0)] = label
        decoy_rows.append({"label": label, "kind": "edge", "row": cy, "col": cx,
                           "y_um": cy * px, "x_um": cx * px, "reference_ratio": 0.8})
    del af, slow, mottle, tissue_soft, rho_t

    out = np.empty((h, w, 3), np.uint16)
    for i, sig in enumerate((dapi, gfp, ref)):
        # shot noise (Poisson, approximated as Gaussian) plus camera read noise
        noise = rng.standard_normal((h, w), dtype=np.float32)
        noise *= np.sqrt(np.maximum(sig, 0) + _READ_NOISE ** 2)
        sig += noise + _OFFSET
        np.clip(sig, 0, 65535, out=sig)
        out[..., i] = np.rint(sig)
        del noise

    image = Image(out, axes="YXC", pixel_size_um=px, channel_names=CHANNELS,
                  metadata={"name": f"gfp_phantom_{seed}"})
    cells = pd.DataFrame(cells_rows, columns=["label", "row", "col", "y_um", "x_um",
                                              "diameter_um", "gfp_amplitude", "dim",
                                              "nucleated", "touching"])
    decoys = pd.DataFrame(decoy_rows, columns=["label", "kind", "row", "col", "y_um", "x_um",
                                               "reference_ratio"])
    truth = GfpTruth(cells, decoys, cell_labels, decoy_labels, nuclei_labels, tissue, px,
                     {"af_level": af_level, "seed": seed})
    return image, truth


def _stamp_nucleus(canvas: _Canvas, labels: np.ndarray, sl: tuple[slice, slice],
                   shape: np.ndarray, rng: np.random.Generator, brightness: float = 1.0) -> None:
    """Add a DAPI nucleus with chromatin texture and record it in ``labels``."""
    amp = rng.uniform(1200, 2500) * brightness
    chromatin = 0.8 + 0.2 * rng.random(shape.shape, dtype=np.float32)
    canvas.dapi[sl] += amp * shape * chromatin
    inside = shape > 0.5
    if inside.any():
        canvas.n_nuclei += 1
        labels[sl][inside] = canvas.n_nuclei


def make_example(path: str | Path, *, seed: int = 3) -> dict[str, Path]:
    """Write a small example: a 720×720 three-channel OME-TIFF (≈ 1.7 MB) and its truth tables.

    Parameters
    ----------
    path : str or Path
        OME-TIFF file to write (``.ome.tif``); the truth goes beside it as
        ``<stem>_cells.csv`` and ``<stem>_decoys.csv``.
    seed : int
        Random seed.

    Returns
    -------
    dict
        ``{"image": ..., "cells": ..., "decoys": ...}`` paths written.
    """
    from ..io.writers import write_ome_tiff
    from ..output import write_csv

    path = Path(path)
    # 720² rather than 1024²: camera noise does not compress, and the file must stay < 2 MB
    image, truth = make_gfp_phantom((720, 720), 0.5, n_cells=4, n_touching_pairs=1,
                                    n_anucleate=1, n_lipofuscin=6, n_rbc=10, seed=seed)
    write_ome_tiff(image, path)
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    cells = write_csv(truth.cells, path.with_name(f"{name}_cells.csv"))
    decoys = write_csv(truth.decoys, path.with_name(f"{name}_decoys.csv"))
    return {"image": path, "cells": cells, "decoys": decoys}
