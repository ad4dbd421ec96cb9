"""Round cells on a plain background: a generic instance-segmentation phantom.

Non-overlapping discs of random diameter, blurred a little and with noise, either bright on
dark (fluorescence, single channel) or violet on white (brightfield RGB, like a Nissl stain).
The truth is the label image of the discs. It serves engine-level tests and benchmarks
(tiling, stitching, speed per megapixel), not the biology of any assay.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..io.image import Image

__all__ = ["make_round_cells", "make_cells_and_fibres", "make_cells_and_dot_clumps"]


def make_round_cells(
    shape: tuple[int, int] = (512, 512),
    *,
    pixel_size_um: float = 0.5,
    diameter_um: tuple[float, float] = (15.0, 30.0),
    n_cells: int = 40,
    rgb: bool = False,
    noise: float = 0.03,
    seed: int = 0,
) -> tuple[Image, np.ndarray]:
    """Make a phantom of round cells with its exact label image.

    Parameters
    ----------
    shape : (int, int)
        Image height and width in pixels.
    pixel_size_um : float
        Pixel edge in µm.
    diameter_um : (float, float)
        Range of cell diameters in µm (uniform).
    n_cells : int
        How many cells to try to place; fewer are placed when the image is too crowded
        (cells never touch: at least 2 px of background between them).
    rgb : bool
        False: one channel, bright cells on a dark background (float32 in [0, 1]).
        True: brightfield RGB uint8, violet cells on a white background.
    noise : float
        Standard deviation of the Gaussian noise, as a fraction of the full range.
    seed : int
        Random seed.

    Returns
    -------
    image : Image
        ``YX`` float32 or ``YXC`` uint8 RGB, with ``pixel_size_um`` set.
    labels : ndarray of int32
        The cells, 1..N, 0 = background.
    """
    rng = np.random.default_rng(seed)
    h, w = (int(s) for s in shape)
    labels = np.zeros((h, w), np.int32)
    yy, xx = np.mgrid[0:h, 0:w]
    placed: list[tuple[float, float, float]] = []
    for _ in range(n_cells * 20):
        if len(placed) == n_cells:
            break
        r = rng.uniform(*diameter_um) / pixel_size_um / 2.0
        cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
        if any(np.hypot(cy - py, cx - px) < r + pr + 2 for py, px, pr in placed):
            continue
        placed.append((cy, cx, r))
        y0, y1 = int(max(cy - r - 1, 0)), int(min(cy + r + 2, h))
        x0, x1 = int(max(cx - r - 1, 0)), int(min(cx + r + 2, w))
        disc = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2 <= r * r
        labels[y0:y1, x0:x1][disc] = len(placed)
    # soft edges, as an optical system gives, then noise
    signal = ndi.gaussian_filter((labels > 0).astype(np.float32), 0.7)
    signal *= rng.uniform(0.6, 1.0, len(placed) + 1)[ndi.grey_dilation(labels, size=3)]
    signal += rng.normal(0.0, noise, signal.shape).astype(np.float32)
    if not rgb:
        data = np.clip(0.1 + 0.8 * signal, 0.0, 1.0).astype(np.float32)
        return Image(data, "YX", pixel_size_um=pixel_size_um), labels
    # violet stain absorbs red and green more than blue
    absorbance = np.clip(signal, 0.0, None)[..., None] * np.array([0.9, 1.3, 0.4], np.float32)
    data = np.clip(255.0 * np.exp(-absorbance) * 0.97, 0, 255).astype(np.uint8)
    return Image(data, "YXC", pixel_size_um=pixel_size_um, rgb=True), labels


def make_cells_and_fibres(
    shape: tuple[int, int] = (768, 768),
    *,
    pixel_size_um: float = 1.0,
    n_cells: int = 12,
    diameter_um: tuple[float, float] = (12.0, 25.0),
    n_fibres: int = 14,
    fibre_width_um: float = 2.5,
    fibre_brightness: tuple[float, float] = (0.15, 0.45),
    n_elongated: int = 4,
    elongated_size_um: tuple[float, float] = (60.0, 10.0),
    noise: float = 0.08,
    seed: int = 0,
) -> tuple[Image, dict]:
    """Round cell bodies in a network of fibres, with elongated decoys: a gfp-cells phantom.

    A stand-in for a ChAT or GFP section where labelled somata sit among labelled fibres
    (axons, dendrites, neuropil): long straight fibres cross the whole field, cross one another
    into one connected network and pass through some of the cells; elongated decoys
    (wider than a fibre, as wide as a small cell, far longer) test the elongation limit.

    Parameters
    ----------
    shape : (int, int)
        Image height and width in pixels.
    pixel_size_um : float
        Pixel edge in µm; every size is set in µm.
    n_cells : int
        Cell bodies to place (never touching one another or a decoy).
    diameter_um : (float, float)
        Range of cell diameters (uniform).
    n_fibres : int
        Straight fibres from edge to edge, at random angles.
    fibre_width_um : float
        Fibre width (full width at half maximum).
    fibre_brightness : (float, float)
        Range of a fibre's brightness (uniform, per fibre) against the cells' 0.7-1.0. The
        default, 0.15-0.45, is the typical case (on the real ChAT sections, fibre networks'
        mean signal is 0.3x the somata's); 0.5-0.9 is the bright tail (90th percentile 0.6x
        [real]): a fibre almost as bright as the soma it passes through.
    n_elongated : int
        Elongated decoys (ellipses of ``elongated_size_um`` = length, width).
    noise : float
        Gaussian noise σ as a fraction of a cell's brightness.
    seed : int
        Random seed.

    Returns
    -------
    image : Image
        ``YX`` float32 (one fluorescence channel), pixel size set.
    truth : dict
        ``cell_labels`` (int32, 1..n), ``n_cells``, ``cells`` (list of (row, col,
        diameter_um)), ``fibre_mask`` (bool), ``decoy_labels`` (int32, 1..n_elongated).
    """
    rng = np.random.default_rng(seed)
    h, w = (int(s) for s in shape)
    px = float(pixel_size_um)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cells = np.zeros((h, w), np.int32)
    decoys = np.zeros((h, w), np.int32)
    placed: list[tuple[float, float, float]] = []
    signal = np.zeros((h, w), np.float32)
    margin = 40.0 / px
    for _ in range(2000):
        if len(placed) >= n_cells + n_elongated:
            break
        decoy = len(placed) >= n_cells
        r = (elongated_size_um[0] if decoy else rng.uniform(*diameter_um)) / px / 2
        cy, cx = rng.uniform(margin, h - margin), rng.uniform(margin, w - margin)
        if any(np.hypot(cy - py, cx - qx) < r + pr + 15 / px for py, qx, pr in placed):
            continue
        placed.append((cy, cx, r))
        if decoy:
            t = rng.uniform(0, np.pi)
            u = (xx - cx) * np.cos(t) + (yy - cy) * np.sin(t)
            v = -(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t)
            a, b = elongated_size_um[0] / px / 2, elongated_size_um[1] / px / 2
            inside = (u / a) ** 2 + (v / b) ** 2 <= 1
            decoys[inside] = len(placed) - n_cells
            signal[inside] = np.maximum(signal[inside], rng.uniform(0.7, 1.0))
        else:
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            cells[inside] = len(placed)
            signal[inside] = np.maximum(signal[inside], rng.uniform(0.7, 1.0))
    # fibres: lines through the field, through some cells too (a soma on a fibre must still
    # be found, and the fibre must not be). A fibre is dimmer than a soma, by default 0.15-0.45
    # against the cells' 0.7-1.0: a thin process holds far less label than a cell body's depth
    # of cytoplasm (on the real ChAT sections, fibre networks' mean signal is 0.3x the
    # somata's, 90th percentile 0.6x [real, benchmarks/real_data.py]); fibre_brightness sets
    # the bright tail
    fibre = np.zeros((h, w), np.float32)
    fibre_profile = np.zeros((h, w), np.float32)  # the fibres' geometry, brightness aside
    half = fibre_width_um / px / 2
    for k in range(n_fibres):
        if k < len(placed) // 3:
            cy, cx = placed[k][0], placed[k][1]   # through a cell or a decoy
        else:
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        t = rng.uniform(0, np.pi)
        d = np.abs(-(xx - cx) * np.sin(t) + (yy - cy) * np.cos(t))
        profile = np.clip(half + 0.5 - d, 0, 1)
        fibre = np.maximum(fibre, profile * rng.uniform(*fibre_brightness))
        fibre_profile = np.maximum(fibre_profile, profile)
    fibre_mask = fibre_profile > 0.5
    signal = np.maximum(signal, fibre)
    img = ndi.gaussian_filter(signal, 0.8 / px)
    img += rng.normal(0.0, noise, img.shape).astype(np.float32)
    data = np.clip(0.05 + 0.8 * img, 0, 1).astype(np.float32)
    truth = {"cell_labels": cells, "n_cells": int(cells.max()),
             "cells": [p for p in placed[:n_cells]], "fibre_mask": fibre_mask & (cells == 0),
             "decoy_labels": decoys}
    return Image(data, "YX", pixel_size_um=px), truth


def make_cells_and_dot_clumps(
    shape: tuple[int, int] = (480, 480),
    *,
    pixel_size_um: float = 1.0,
    n_cells: int = 4,
    n_clumps: int = 4,
    diameter_um: float = 20.0,
    dot_diameter_um: float = 2.5,
    dots_per_100um2: float = 1.0,
    clump_factor: float = 3.0,
    noise: float = 0.05,
    seed: int = 0,
) -> tuple[Image, dict]:
    """Make filled cell bodies and clumps of small dots, in a field of the same dots.

    A stand-in for white matter on a ChAT (or any neuronal) section: myelinated axon profiles
    cut across are small bright dots everywhere; where they crowd, a clump of them is as wide,
    as round and, in local noise units, as strong as a soma, but it is dots with dark gaps and
    stands out of the dots around it little. The cells are filled discs as bright as a dot.

    Parameters
    ----------
    shape : (int, int)
        Image height and width in pixels.
    pixel_size_um : float
        Pixel edge in µm; every size is set in µm.
    n_cells, n_clumps : int
        Filled cells and clumps of dots to place (on a grid, never touching).
    diameter_um : float
        Diameter of a cell and of a clump.
    dot_diameter_um : float
        Diameter of a dot (an axon profile).
    dots_per_100um2 : float
        Density of the dots over the field.
    clump_factor : float
        How many times denser the dots are inside a clump.
    noise : float
        Gaussian noise σ as a fraction of a dot's brightness.
    seed : int
        Random seed.

    Returns
    -------
    image : Image
        ``YX`` float32, pixel size set.
    truth : dict
        ``cell_labels`` (int32, 1..n_cells), ``clump_labels`` (int32, 1..n_clumps),
        ``n_cells``, ``n_clumps``.
    """
    rng = np.random.default_rng(seed)
    h, w = (int(s) for s in shape)
    px = float(pixel_size_um)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = diameter_um / px / 2
    n = n_cells + n_clumps
    side = int(np.ceil(np.sqrt(n)))
    centres = [((i // side + 0.5) * h / side, (i % side + 0.5) * w / side) for i in range(n)]
    order = rng.permutation(n)
    cells = np.zeros((h, w), np.int32)
    clumps = np.zeros((h, w), np.int32)
    for k, idx in enumerate(order):
        cy, cx = centres[idx]
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        if k < n_cells:
            cells[disc] = k + 1
        else:
            clumps[disc] = k - n_cells + 1
    # dots: uniform over the field, clump_factor times denser inside the clumps, none drawn
    # over a cell (the cell is filled anyway)
    area_um2 = h * w * px ** 2
    n_dots = rng.poisson(dots_per_100um2 * area_um2 / 100.0)
    dy, dx = rng.uniform(0, h, n_dots), rng.uniform(0, w, n_dots)
    in_clump = clumps[dy.astype(int), dx.astype(int)] > 0
    clump_area_um2 = float((clumps > 0).sum()) * px ** 2
    n_extra = rng.poisson((clump_factor - 1) * dots_per_100um2 * clump_area_um2 / 100.0)
    cand = np.argwhere(clumps > 0)
    extra = cand[rng.integers(0, len(cand), n_extra)] + rng.uniform(-0.5, 0.5, (n_extra, 2))
    dy = np.concatenate([dy, extra[:, 0]])
    dx = np.concatenate([dx, extra[:, 1]])
    del in_clump
    spikes = np.zeros((h, w), np.float32)
    iy = np.clip(np.round(dy).astype(int), 0, h - 1)
    ix = np.clip(np.round(dx).astype(int), 0, w - 1)
    np.add.at(spikes, (iy, ix), 1.0)
    sd = dot_diameter_um / px / 2.355
    # a blurred point of unit weight peaks at 1 / (2π sd²): scale so that a dot peaks at 1
    dots = np.minimum(ndi.gaussian_filter(spikes, sd) * (2 * np.pi * sd * sd), 1.0)
    signal = np.maximum(dots, (cells > 0).astype(np.float32) * rng.uniform(0.8, 1.0))
    img = ndi.gaussian_filter(signal, 0.5 / px) + rng.normal(0.0, noise, (h, w))
    data = np.clip(0.1 + 0.8 * img, 0, 1).astype(np.float32)
    return Image(data, "YX", pixel_size_um=px), {
        "cell_labels": cells, "clump_labels": clumps, "n_cells": n_cells,
        "n_clumps": n_clumps}
