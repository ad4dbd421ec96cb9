"""Evans Blue phantom: a grey/white matter field with capillaries and known leak patches.

What it models (published figures; sources in brackets):

- a field of a spinal cord section: grey matter (a lobed blob in the middle) in white matter;
- capillaries 5–8 µm wide (rat anterior horn 6.4 µm; Mayhew & Momoh 1974, J Anat), about 6 mm of
  capillary per mm² of section in grey matter (1,200 mm/mm³ seen through a ≈ 5 µm optical section,
  ≈ 4 % of the area) and a quarter of that in white matter [S for grey matter, U for white matter];
- Evans Blue where it has leaked: perivascular halos 3–12 µm wide along 10–40 µm of leaky
  capillaries and diffuse patches 8–50 µm across (Auer et al. 1979; Winkler et al. 2013),
  only in grey matter, together a chosen percentage of the grey-matter area (intact < 0.5 %,
  leaky ≈ 1–5 % [U]);
- Evans Blue left inside some capillaries after perfusion (intravascular);
- a vessel channel (lectin / RECA-1 / CD31-like) showing the capillaries;
- tissue autofluorescence (white matter brighter than grey), a camera offset, uneven
  illumination (vignetting and a gradient), Poisson-like noise, a 12-bit camera in a 16-bit
  file, and optionally a saturated patch.

The truth is exact: every Evans Blue structure has a flat intensity with sharp edges, so the
positive mask is ``truth["evb"] > 0``, and the background-free signal is ``truth["evb"]`` (at
illumination 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..io.image import Image

__all__ = ["make_evans_blue_phantom", "evans_blue_truth", "make_example"]

# Far-red tissue autofluorescence and camera figures in counts of a 12-bit camera [U]: chosen
# so that the noise SD is ≈ 4 % of the grey-matter background, as in a typical widefield
# far-red image.
GREY_AF = 300.0
WHITE_AF = 375.0
VESSEL_BG = 150.0
VESSEL_AMPLITUDE = 700.0


def _disk_offsets(radius_px: float) -> np.ndarray:
    r = int(np.ceil(radius_px))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    keep = yy**2 + xx**2 <= radius_px**2
    return np.stack([yy[keep], xx[keep]], axis=1)


def _stamp(shape: tuple[int, int], points: np.ndarray, radius_px: float) -> np.ndarray:
    """Flat indices of every pixel within ``radius_px`` of any of ``points`` (row, col)."""
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64)
    off = _disk_offsets(radius_px)
    pts = np.unique(np.round(points).astype(np.int64), axis=0)
    rr = (pts[:, None, 0] + off[None, :, 0]).ravel()
    cc = (pts[:, None, 1] + off[None, :, 1]).ravel()
    h, w = shape
    ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
    return np.unique(rr[ok] * w + cc[ok])


def _grey_matter(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    h, w = shape
    cy, cx = h * (0.5 + rng.uniform(-0.05, 0.05)), w * (0.5 + rng.uniform(-0.05, 0.05))
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    # The lobed outline varies slowly with angle: evaluate it on a grid 8× coarser.
    k = 8
    yc = np.arange(0, h, k, dtype=np.float32) + (k - 1) / 2
    xc = np.arange(0, w, k, dtype=np.float32) + (k - 1) / 2
    theta = np.arctan2(yc[:, None] - cy, xc[None, :] - cx)
    r_theta = 1 + 0.18 * np.sin(2 * theta + p1) + 0.08 * np.sin(3 * theta + p2)
    r2 = np.repeat(np.repeat(r_theta**2, k, axis=0)[:h], k, axis=1)[:, :w]
    ry = ((np.arange(h, dtype=np.float32) - cy) / (0.34 * h)) ** 2
    rx = ((np.arange(w, dtype=np.float32) - cx) / (0.40 * w)) ** 2
    return (ry[:, None] + rx[None, :]) <= r2


def _illumination(shape: tuple[int, int], strength: float,
                  rng: np.random.Generator) -> np.ndarray:
    """Vignetting plus a linear gradient, ``1 ± strength`` across the field, mean 1."""
    h, w = shape
    y = (np.arange(h, dtype=np.float32) - rng.uniform(0.35, 0.65) * h) / max(h, w)
    x = (np.arange(w, dtype=np.float32) - rng.uniform(0.35, 0.65) * w) / max(h, w)
    angle = rng.uniform(0, 2 * np.pi)
    # Separable: the field is a sum of a function of y and a function of x.
    fy = -strength * 2.0 * y**2 + strength * 0.8 * np.cos(angle) * y
    fx = -strength * 2.0 * x**2 + strength * 0.8 * np.sin(angle) * x
    mean = 1.0 + fy.mean() + fx.mean()
    return ((1.0 + fy[:, None] + fx[None, :]) / mean).astype(np.float32)


def _vessel_paths(shape, px_um, grey, rng, grey_density_mm_per_mm2, white_ratio):
    """Random smooth capillary centre lines: list of ((P, 2) points, radius_px, in_grey)."""
    h, w = shape
    area_mm2 = h * w * (px_um / 1000) ** 2
    grey_frac = float(grey.mean())
    total_um = 1000 * grey_density_mm_per_mm2 * area_mm2 * (grey_frac + white_ratio
                                                                * (1 - grey_frac))
    paths = []
    step_um = 1.0
    made = 0.0
    while made < total_um:
        y0, x0 = rng.uniform(0, h), rng.uniform(0, w)
        in_grey = bool(grey[int(y0), int(x0)])
        if not in_grey and rng.uniform() > white_ratio:
            continue
        length_um = rng.uniform(30, 120)
        n = max(2, int(length_um / step_um))
        heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.08, n))
        pts = np.empty((n, 2))
        pts[:, 0] = y0 + np.cumsum(np.sin(heading)) * step_um / px_um
        pts[:, 1] = x0 + np.cumsum(np.cos(heading)) * step_um / px_um
        radius_um = rng.uniform(2.6, 3.8)  # 5.2–7.6 µm wide (6.4 µm mean, Mayhew & Momoh 1974)
        paths.append((pts, radius_um / px_um, in_grey))
        made += length_um
    return paths


def make_evans_blue_phantom(
    shape: tuple[int, int] = (1024, 1024),
    pixel_size_um: float = 0.5,
    *,
    seed: int = 0,
    leak_area_pct: float = 2.0,
    halo_share: float = 0.5,
    intravascular_share: float = 0.3,
    vessels: bool = True,
    illumination: float = 0.15,
    noise_sd: float = 12.0,
    dark_level: float = 100.0,
    amplitude_range: tuple[float, float] = (6.0, 15.0),
    saturate: bool = False,
    bit_depth: int = 12,
    z_planes: int = 0,
) -> tuple[Image, dict[str, Any]]:
    """Make an Evans Blue section field with exact truth.

    Parameters
    ----------
    shape : (int, int)
        Image height and width in pixels.
    pixel_size_um : float
        Pixel size in µm.
    seed : int
        Random seed; the same seed gives the same phantom.
    leak_area_pct : float
        Target leaked (extravascular patch) area as % of grey matter; the phantom makes
        between 90 % and 125 % of it when patches small enough exist.
    halo_share : float
        Share of the leaked area made of perivascular halos (the rest: diffuse patches).
    intravascular_share : float
        Share of capillary segments still holding Evans Blue inside (positive too).
    vessels : bool
        Add capillaries and a vessel channel. Without, the image has the EvB channel only and
        the leaks are diffuse patches.
    illumination : float
        Strength of uneven illumination (0 = flat; 0.15 ≈ ±15 % across the field).
    noise_sd : float
        Noise SD in counts at the grey-matter background; brighter pixels get more
        (Poisson-like).
    dark_level : float
        Camera offset in counts.
    amplitude_range : (float, float)
        Leak intensities drawn from this range, in multiples of ``noise_sd``.
    saturate : bool
        Make one large diffuse patch bright enough to saturate the camera.
    bit_depth : int
        Camera bit depth; values are clipped at ``2**bit_depth - 1`` and stored as uint16.
    z_planes : int
        When > 0, return a Z-stack of this many planes (same signal, independent noise).

    Returns
    -------
    image : Image
        ``YXC`` (or ``ZYXC``) uint16 with channels ``("vessel", "evb")`` (or ``("evb",)``
        without vessels), with its pixel size.
    truth : dict
        ``evb`` (float32 background-free EvB signal at illumination 1), ``positive``,
        ``vessel``, ``grey_matter``, ``white_matter``, ``illumination`` (EvB channel),
        ``saturated`` (pixels clipped by the camera), ``pixel_size_um``, ``noise_sd``,
        ``dark_level``, ``saturation_level``, ``patches`` (list of dicts: kind, amplitude,
        area_um2). Use :func:`evans_blue_truth` for region figures.
    """
    rng = np.random.default_rng(seed)
    shape = (int(shape[0]), int(shape[1]))
    px = float(pixel_size_um)
    grey = _grey_matter(shape, rng)
    white = ~grey
    evb = np.zeros(shape, dtype=np.float32)
    vessel = np.zeros(shape, dtype=bool)
    patches: list[dict[str, Any]] = []
    lo, hi = amplitude_range
    paths = _vessel_paths(shape, px, grey, rng, 6.0, 0.25) if vessels else []
    evb_flat, vessel_flat, grey_flat = evb.ravel(), vessel.ravel(), grey.ravel()
    # Intravascular Evans Blue: whole segments, a fixed moderate level.
    iv_level = 8.0 * noise_sd
    for pts, radius, _ in paths:
        idx = _stamp(shape, pts, radius)
        vessel_flat[idx] = True
        if rng.uniform() < intravascular_share:
            evb_flat[idx] = np.maximum(evb_flat[idx], iv_level)
    grey_px = int(grey.sum())
    target_px = leak_area_pct / 100 * grey_px
    leaked = np.zeros(shape, dtype=bool)
    leaked_flat = leaked.ravel()
    n_leaked = 0

    def add_leak(idx: np.ndarray, kind: str) -> None:
        nonlocal n_leaked
        if n_leaked + np.count_nonzero(~leaked_flat[idx]) > 1.25 * target_px:
            return  # a patch that would overshoot the target by > 25 % is not made
        amp = rng.uniform(lo, hi) * noise_sd
        evb_flat[idx] = np.maximum(evb_flat[idx], amp)
        n_leaked += int(np.count_nonzero(~leaked_flat[idx]))
        leaked_flat[idx] = True
        patches.append({"kind": kind, "amplitude": amp, "area_um2": idx.size * px * px})

    grey_paths = [p for p in paths if p[2]]
    rng.shuffle(grey_paths)
    halo_target = target_px * (halo_share if grey_paths else 0.0)
    for pts, radius, _ in grey_paths:
        if n_leaked >= halo_target:
            break
        width_um = rng.uniform(3.0, 12.0)
        # A leak along 10–40 µm of the segment (points are 1 µm apart).
        n = len(pts)
        stretch = min(n, int(rng.uniform(10, 40)))
        start = int(rng.integers(0, n - stretch + 1))
        ring = _stamp(shape, pts[start:start + stretch], radius + width_um / px)
        ring = ring[~vessel_flat[ring] & grey_flat[ring]]
        if ring.size:
            add_leak(ring, "halo")
    gy, gx = np.nonzero(grey)
    n_tries = 0
    while n_leaked < 0.9 * target_px and n_tries < 5000:
        n_tries += 1
        i = rng.integers(len(gy))
        parts = []
        for _ in range(rng.integers(1, 4)):
            ry_um, rx_um = rng.uniform(4, 15, 2)
            parts.append(_ellipse(shape, gy[i] + rng.normal(0, 5 / px),
                                  gx[i] + rng.normal(0, 5 / px), ry_um / px, rx_um / px,
                                  rng.uniform(0, np.pi)))
        blob = np.unique(np.concatenate(parts))
        blob = blob[grey_flat[blob]]
        if blob.size:
            add_leak(blob, "diffuse")
    sat_level = float(2**bit_depth - 1)
    illum = _illumination(shape, illumination, rng)
    if saturate:
        # The biggest diffuse patch becomes brighter than the camera can record.
        lab, n = ndi.label(leaked & (evb > 0))
        if n:
            sizes = np.bincount(lab.ravel())
            sizes[0] = 0
            big = lab == int(np.argmax(sizes))
            evb[big] = 1.3 * (sat_level - dark_level) / float(illum[big].min()) - GREY_AF
    af = np.where(grey, GREY_AF, WHITE_AF).astype(np.float32)

    def expose(signal: np.ndarray, field: np.ndarray, noise_rng: np.random.Generator) -> np.ndarray:
        mean = field * signal
        sd = noise_sd * np.sqrt(np.maximum(mean, 0) / GREY_AF)
        raw = dark_level + mean + noise_rng.standard_normal(shape, dtype=np.float32) * sd
        return np.clip(np.round(raw), 0, sat_level).astype(np.uint16)

    evb_signal = af + evb
    saturated = dark_level + illum * evb_signal >= sat_level
    channels = []
    names = []
    vessel_illum = None
    if vessels:
        vessel_illum = _illumination(shape, illumination, rng)
        vessel_signal = VESSEL_BG + VESSEL_AMPLITUDE * vessel.astype(np.float32)
        names.append("vessel")
        channels.append(vessel_signal)
    names.append("evb")
    channels.append(evb_signal)
    fields = [vessel_illum, illum] if vessels else [illum]
    planes = max(1, z_planes)
    stack = np.empty((planes, *shape, len(channels)), dtype=np.uint16)
    for z in range(planes):
        for c, (sig, field) in enumerate(zip(channels, fields)):
            stack[z, ..., c] = expose(sig, field, rng)
    if z_planes > 0:
        image = Image(stack, axes="ZYXC", pixel_size_um=px, channel_names=tuple(names),
                      z_step_um=2.0)
    else:
        image = Image(stack[0], axes="YXC", pixel_size_um=px, channel_names=tuple(names))
    image.metadata["name"] = f"evans_blue_phantom_{seed}"
    truth = {
        "evb": evb,
        "positive": evb > 0,
        "vessel": vessel,
        "grey_matter": grey,
        "white_matter": white,
        "illumination": illum,
        "saturated": saturated,
        "pixel_size_um": px,
        "noise_sd": noise_sd,
        "dark_level": dark_level,
        "saturation_level": sat_level,
        "patches": patches,
    }
    return image, truth


def _ellipse(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float,
             angle: float) -> np.ndarray:
    from skimage.draw import ellipse

    rr, cc = ellipse(cy, cx, ry, rx, shape=shape, rotation=angle)
    return rr.astype(np.int64) * shape[1] + cc


def evans_blue_truth(truth: dict[str, Any], region: np.ndarray | str = "grey_matter", *,
                     vessel_margin_um: float = 0.0,
                     illumination_support: np.ndarray | None = None) -> dict[str, float]:
    """Exact figures of a phantom inside one region.

    Parameters
    ----------
    truth : dict
        The truth returned by :func:`make_evans_blue_phantom`.
    region : ndarray of bool or str
        Region mask, or the name of a truth mask (``grey_matter``, ``white_matter``).
    vessel_margin_um : float
        Margin around the vessels counted as intravascular, as in the assay.
    illumination_support : ndarray of bool, optional
        The pixels the assay's flat-field correction was normalised on (the union of the
        measured regions). A flat-field-corrected intensity is the signal at the mean
        illumination of that support, so the integrated intensity is scaled to it. Without
        it the intensity is at illumination 1.

    Returns
    -------
    dict
        ``area_um2``, ``area_pct`` (of the region), ``integrated_intensity_um2``
        (background-free), ``extravascular_area_um2``, ``extravascular_fraction_pct`` (of the
        positive area).
    """
    mask = truth[region] if isinstance(region, str) else np.asarray(region, dtype=bool)
    px = truth["pixel_size_um"]
    pos = truth["positive"] & mask
    vessel = truth["vessel"]
    r = vessel_margin_um / px
    zone = vessel if r < 0.5 else ndi.binary_dilation(vessel, _disk(r))
    extra = pos & ~zone
    scale = 1.0
    if illumination_support is not None:
        scale = float(truth["illumination"][illumination_support].mean())
    n_pos = int(pos.sum())
    return {
        "area_um2": n_pos * px * px,
        "area_pct": 100.0 * n_pos / max(int(mask.sum()), 1),
        "integrated_intensity_um2": float(truth["evb"][mask].sum(dtype=np.float64))
        * px * px * scale,
        "extravascular_area_um2": int(extra.sum()) * px * px,
        "extravascular_fraction_pct": 100.0 * int(extra.sum()) / n_pos if n_pos else
        float("nan"),
    }


def _disk(radius_px: float) -> np.ndarray:
    r = int(np.floor(radius_px))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return yy**2 + xx**2 <= radius_px**2


def make_example(path: str | Path, *, seed: int = 7, size: int = 960,
                 pixel_size_um: float = 0.5) -> dict[str, Path]:
    """Write an example Evans Blue image with its truth, for the docs and the napari sample.

    Writes ``path`` (a ``size`` × ``size`` 2-channel uint16 OME-TIFF, channels ``vessel`` and
    ``evb``, with its pixel size; 960 px keeps it under 2 MB), ``<stem>_grey_matter.geojson``
    (the grey-matter outline, for ``--regions``) and ``<stem>_truth.json`` (exact
    grey-matter figures).

    Parameters
    ----------
    path : str or pathlib.Path
        The image file to write.
    seed : int
        Random seed.
    size : int
        Side of the image in pixels.
    pixel_size_um : float
        Pixel size in µm.

    Returns
    -------
    dict
        ``{"image": path, "regions": path, "truth": path}``.
    """
    from ..io import write_ome_tiff
    from ..rois import Region, write_regions

    path = Path(path)
    image, truth = make_evans_blue_phantom((size, size), pixel_size_um, seed=seed,
                                           leak_area_pct=2.5)
    image.metadata["name"] = "evans_blue_example"
    write_ome_tiff(image, path)
    stem = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    regions_path = path.with_name(f"{stem}_grey_matter.geojson")
    write_regions([Region("grey_matter", mask=truth["grey_matter"])], regions_path)
    grey = truth["grey_matter"]
    figures = evans_blue_truth(truth, grey, illumination_support=grey)
    figures_margin = evans_blue_truth(truth, grey, vessel_margin_um=1.0,
                                      illumination_support=grey)
    record = {
        "image": path.name,
        "pixel_size_um": pixel_size_um,
        "channels": list(image.channel_names),
        "region": "grey_matter",
        "evb_positive_area_pct": round(figures["area_pct"], 4),
        "evb_positive_area_um2": round(figures["area_um2"], 2),
        "integrated_intensity_um2": round(figures["integrated_intensity_um2"], 1),
        "extravascular_fraction_pct_margin_0um": round(figures["extravascular_fraction_pct"],
                                                       3),
        "extravascular_fraction_pct_margin_1um": round(
            figures_margin["extravascular_fraction_pct"], 3),
        "note": "integrated intensity in counts × µm² at the mean grey-matter illumination, "
                "background-free; the exact masks come from make_evans_blue_phantom(seed="
                f"{seed})",
    }
    truth_path = path.with_name(f"{stem}_truth.json")
    truth_path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    return {"image": path, "regions": regions_path, "truth": truth_path}
