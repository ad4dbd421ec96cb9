"""Somata in a fluorescence image: bright cell bodies on a dark, textured background.

The soma stain (fluorescent Nissl / NeuroTrace, ChAT, NeuN) makes cell bodies the brightest
compact objects of the channel; the neuropil around them is dimmer but not black (ChAT+ and
Nissl-stained fibres, autofluorescence), and its level and texture change across a section
(the ventral horns' fibre plexus is brighter than the white matter). The steps, every size in
µm so they transfer between magnifications (2 µm/px whole-section exports to 0.3 µm/px
confocal fields):

1. **tissue**: pixels that are padding (one constant colour in every channel, joined to the
   image border: a section exported on a grey or black canvas) are never tissue and take no
   part in any statistic;
2. **local background and noise** (:func:`local_background_noise`): in blocks of half the
   background scale, the background is the median of the tissue pixels and the noise their
   spread below it (median − 10th percentile, / 1.2816: the lower half is neuropil alone,
   somata only add signal), both made smooth and read back at every pixel;
3. **signal-to-noise image**: ``(signal − background) / noise``, 0 on padding. A soma is
   where this exceeds a threshold in units of the local noise, so the same threshold holds in
   the bright fibre plexus and in the dim white matter, and on any camera or export scale;
4. **segmentation**: the classical soma engine (:mod:`histoquant.segment.somata`) on the
   signal-to-noise image — threshold, holes filled, processes opened off, seeded watershed
   of distance-to-edge plus capped brightness, per-object threshold at a fraction of each
   object's own upper quartile, final split at the soma scale, dendrite stumps trimmed.

:func:`pick_soma_channel` chooses the channel of an RGB export that carries the stain.
:func:`axial_continuation` measures, per object, how far its brightness carries on beyond the
ends of its long axis: a piece cut out of a bright fibre bundle carries on (the bundle goes on
past the cut), a soma does not (the neuropil around it is dim), whatever the segmentation did.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage as ndi

from .background import sample_block_grid, smooth_block_grid
from .somata import SomaSegmentationParams, segment_somata_classical
from .statistics import P10_TO_SD as _P10_TO_SD

__all__ = ["FluorescentSomaParams", "segment_fluorescent_somata", "local_background_noise",
           "signal_to_noise", "pick_soma_channel", "axial_continuation"]


@dataclass(frozen=True)
class FluorescentSomaParams:
    """Parameters of the fluorescent soma segmentation (see the module docstring).

    The defaults are those of the motor-neuron assay's fluorescence path, where each is
    explained (:class:`histoquant.assays.motor_neurons.MotorNeuronParams`).
    """

    background_scale_um: float = 100.0
    smooth_um: float = 1.0
    snr: float = 3.0
    max_hole_um2: float = 400.0
    open_um: float = 3.0
    first_prominence_um: float = 0.5
    seed_prominence_um: float = 1.5
    relative_prominence: float = 0.25
    intensity_weight_um_per_snr: float = 0.4
    intensity_cap_snr: float = 10.0
    refine_fraction: float = 0.5
    seam_ratio: float = 0.9
    trim_fraction: float = 0.3
    min_area_um2: float = 8.0

    def classical(self) -> SomaSegmentationParams:
        """Return the classical engine's parameters on a signal-to-noise image.

        The engine's "density" is the signal-to-noise ratio here: its thresholds and the cap
        of the brightness term are in units of the local noise, its neuropil-noise rule is off
        (the image is already in noise units) and the per-object level has no cap (a bright
        soma's edge is where its own brightness falls, not at a fixed level).

        Returns
        -------
        SomaSegmentationParams
            Parameters of :func:`~histoquant.segment.somata.segment_somata_classical`.
        """
        return SomaSegmentationParams(
            smooth_um=self.smooth_um, foreground_od=self.snr, foreground_snr=0.0,
            max_hole_um2=self.max_hole_um2, open_um=self.open_um,
            first_prominence_um=self.first_prominence_um,
            seed_prominence_um=self.seed_prominence_um,
            intensity_weight_um_per_od=self.intensity_weight_um_per_snr,
            intensity_cap_od=self.intensity_cap_snr,
            relative_prominence=self.relative_prominence,
            refine_fraction=self.refine_fraction, refine_cap_od=float("inf"),
            seam_ratio=self.seam_ratio, trim_fraction=self.trim_fraction,
            min_area_um2=self.min_area_um2)


def pick_soma_channel(pixels: np.ndarray, tissue: np.ndarray | None = None
                      ) -> tuple[int, list[float]]:
    """Return the index of the channel carrying the stain, and every channel's score.

    The score of a channel is how far the bright tail (99.5th percentile over tissue pixels)
    of its chromatic part — the channel minus the pixel's dimmest channel, so that white
    annotations and frame lines count for nothing — lies above its median, in units of the
    channel's lower-half spread (floored at one grey level of an integer image): a channel
    with bright somata on a dim background scores high, an empty channel of an RGB export
    (JPEG noise around 0–3) or a flat autofluorescence scores low. A merged image with two
    stains needs the channel named (``channels={"soma": ...}``).

    Parameters
    ----------
    pixels : numpy.ndarray
        (Y, X, C) image.
    tissue : numpy.ndarray, optional
        Boolean (Y, X) mask of the tissue; every pixel when not given.

    Returns
    -------
    index : int
        The channel with the highest score.
    scores : list of float
        Every channel's score.
    """
    px = np.asarray(pixels)
    if px.ndim == 2:
        return 0, [float("inf")]
    h, w = px.shape[:2]
    step = max(1, int(np.sqrt(h * w / 250_000)))
    sub = px[::step, ::step].reshape(-1, px.shape[2]).astype(np.float64)
    if tissue is not None:
        keep = tissue[::step, ::step].ravel()
        if keep.sum() >= 100:
            sub = sub[keep]
    # The chromatic part of each channel (what it holds above the dimmest channel of the
    # same pixel): white or grey annotations, scale bars and frame lines are equal in every
    # channel and drop out, a stain's colour does not.
    chroma = sub - sub.min(axis=1, keepdims=True)
    q10, q50 = np.percentile(sub, [10, 50], axis=0)
    c50, c995 = np.percentile(chroma, [50, 99.5], axis=0)
    floor = 1.0 if np.issubdtype(px.dtype, np.integer) else 1e-6 * max(float(sub.max()), 1e-12)
    spread = np.maximum((q50 - q10) / _P10_TO_SD, floor)
    # The excess also counts in absolute terms, so that a channel whose background is
    # exactly constant (spread at the floor) but that holds nothing bright does not win:
    # score = excess / spread, weighted by the excess's share of the largest.
    excess = np.maximum(c995 - c50, 0.0)
    scores = (excess / spread) * (excess / max(float(excess.max()), 1e-12))
    return int(np.argmax(scores)), [float(s) for s in scores]


def _block_stats(signal: np.ndarray, tissue: np.ndarray, block_px: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per block: median and lower-half spread of the tissue pixels (NaN with too few)."""
    b = max(2, int(block_px))
    h, w = signal.shape
    gh, gw = -(-h // b), -(-w // b)
    med = np.full((gh, gw), np.nan, np.float32)
    sd = np.full((gh, gw), np.nan, np.float32)
    min_n = max(8, b * b // 4)
    for i in range(gh):
        rows = signal[i * b:(i + 1) * b]
        trow = tissue[i * b:(i + 1) * b]
        for j in range(gw):
            t = trow[:, j * b:(j + 1) * b]
            if int(t.sum()) < min_n:
                continue
            v = rows[:, j * b:(j + 1) * b][t]
            p10, p50 = np.percentile(v, [10, 50])
            med[i, j] = p50
            sd[i, j] = (p50 - p10) / _P10_TO_SD
    return med, sd


def local_background_noise(signal: np.ndarray, tissue: np.ndarray, block_px: int,
                           noise_floor: float = 0.0) -> tuple[np.ndarray, np.ndarray, float]:
    """Smooth grids of the local background level and noise, and the tissue's overall noise.

    Parameters
    ----------
    signal : ndarray, 2D float
        The soma channel.
    tissue : ndarray of bool
        Pixels that are tissue (not padding).
    block_px : int
        Block side in pixels (half the background scale).
    noise_floor : float
        Least noise (one quantisation step of the data,
        :func:`histoquant.segment.statistics.noise_floor`).

    Returns
    -------
    (background grid, noise grid, global noise)
        The grids are one value per block (float32); the noise grid is floored at half the
        tissue's overall noise, so a flat block (a dark tissue hole, an over-smoothed export)
        does not turn its faintest speck into a soma.
    """
    med, sd = _block_stats(signal, tissue, block_px)
    ok = np.isfinite(sd)
    global_sd = float(np.median(sd[ok])) if ok.any() else 0.0
    bg = smooth_block_grid(med)
    noise = smooth_block_grid(sd)
    np.maximum(noise, np.float32(max(0.5 * global_sd, noise_floor, 1e-12)), out=noise)
    return bg, noise, global_sd


def signal_to_noise(signal: np.ndarray, tissue: np.ndarray, block_px: int,
                    noise_floor: float = 0.0, strip_rows: int = 1024, *,
                    grids: tuple[np.ndarray, np.ndarray, float] | None = None,
                    positions: tuple[np.ndarray, np.ndarray] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Return ``(signal − local background) / local noise`` (float32, 0 off tissue) and the excess.

    Parameters
    ----------
    signal : numpy.ndarray
        (Y, X) soma channel.
    tissue : numpy.ndarray
        Boolean (Y, X) tissue mask.
    block_px : int
        Side of the blocks the background and noise are measured on, in pixels.
    noise_floor : float
        Smallest noise used, in the channel's units (one quantisation step).
    strip_rows : int
        Rows computed at a time.
    grids : (ndarray, ndarray, float), optional
        (background grid, noise grid, global noise) measured elsewhere (over a whole image,
        :func:`local_background_noise`, of blocks of ``block_px`` pixels) instead of on
        ``signal``.
    positions : (ndarray, ndarray), optional
        The rows and columns of ``signal`` on those grids
        (:func:`histoquant.calibration.grid_positions`; default: the grids are ``signal``'s
        own).

    Returns
    -------
    snr : numpy.ndarray
        The signal-to-noise image.
    excess : numpy.ndarray
        The background-subtracted signal (in the channel's units, 0 off tissue).
    stats : dict
        ``noise``: the tissue's median block noise; ``background``: its median block level.
    """
    h, w = signal.shape
    if grids is None:
        bg, noise, global_sd = local_background_noise(signal, tissue, block_px, noise_floor)
    else:
        bg, noise, global_sd = grids
    b = max(2, int(block_px))  # as in _block_stats
    ys, xs = positions if positions is not None else (np.arange(h, dtype=np.float64),
                                                      np.arange(w, dtype=np.float64))
    snr = np.empty((h, w), np.float32)
    excess = np.empty((h, w), np.float32)
    for r0 in range(0, h, strip_rows):
        r1 = min(h, r0 + strip_rows)
        e = signal[r0:r1].astype(np.float32) - sample_block_grid(bg, b, ys[r0:r1], xs)
        e[~tissue[r0:r1]] = 0
        excess[r0:r1] = e
        snr[r0:r1] = e / sample_block_grid(noise, b, ys[r0:r1], xs)
    return snr, excess, {"noise": global_sd, "background": float(np.median(bg))}


def segment_fluorescent_somata(snr: np.ndarray, pixel_size_um: float,
                               params: FluorescentSomaParams | None = None,
                               progress: Callable[[float, str], None] | None = None
                               ) -> np.ndarray:
    """Label every bright soma of a signal-to-noise image (see :func:`signal_to_noise`).

    Parameters
    ----------
    snr : ndarray, 2D float
        Signal-to-noise image: background 0, noise 1, padding 0.
    pixel_size_um : float
        Pixel size of ``snr`` in µm.
    params : FluorescentSomaParams, optional
        Sizes and thresholds (defaults when omitted).
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    ndarray of int32
        Label image, one label per soma, 0 elsewhere.
    """
    p = params or FluorescentSomaParams()
    px = float(pixel_size_um)
    # A rise of less than a pixel between two maxima is not resolved: at 2 µm/px a soma is
    # 10–15 px across and its distance ridge moves in steps of a pixel, so a 1.5 µm seed
    # prominence would cut one elongated soma into several.
    p = replace(p, seed_prominence_um=max(p.seed_prominence_um, px),
                first_prominence_um=max(p.first_prominence_um, 0.5 * px))
    return segment_somata_classical(snr, px, p.classical(), progress=progress)


def axial_continuation(labels: np.ndarray, snr: np.ndarray, which: np.ndarray | None = None
                       ) -> dict[str, np.ndarray]:
    """Elongation and axial continuation of labelled objects.

    For each object the long axis comes from its second moments (as
    :func:`skimage.measure.regionprops`: full lengths ``4 √λ``); beyond each end of it a box
    as wide as the object (its minor axis) and twice its half-width long is laid along the
    axis, and the mean signal-to-noise in that box is divided by the object's own mean. A
    piece of a bright fibre bundle, cut across the bundle by the watershed, finds the bundle
    again past both its ends (continuation ≈ 0.5–1); a soma finds the dim neuropil, or a
    dendrite much narrower than the box (≈ 0–0.2); a round soma in a cluster can find a
    neighbour, which is why the criteria that use it also look at the elongation. Every
    length is in pixels of ``labels`` and cancels: the measures are ratios.

    Parameters
    ----------
    labels : ndarray of int
        Label image (0 = background).
    snr : ndarray, 2D float
        Signal-to-noise image of the same shape (:func:`signal_to_noise`).
    which : ndarray of int, optional
        The labels to measure (default: all); others get NaN.

    Returns
    -------
    dict
        ``label`` (the labels measured, ascending), ``elongation`` (major / minor axis),
        ``continuation_min`` and ``continuation_max`` (the lower and higher of the two ends;
        an end whose box lies wholly off the image is left out, as unseen).
    """
    lab = np.asarray(labels)
    slices = ndi.find_objects(lab)
    todo = np.arange(1, len(slices) + 1) if which is None else np.unique(np.asarray(which))
    todo = todo[(todo >= 1) & (todo <= len(slices))]
    out = {k: np.full(len(todo), np.nan) for k in ("elongation", "continuation_min",
                                                    "continuation_max")}
    h, w = lab.shape
    for i, k in enumerate(todo):
        sl = slices[k - 1]
        if sl is None:
            continue
        rr, cc = np.nonzero(lab[sl] == k)
        if rr.size < 3:
            continue
        rr = rr + sl[0].start
        cc = cc + sl[1].start
        cy, cx = rr.mean(), cc.mean()
        cov = np.cov(np.vstack([rr - cy, cc - cx]), bias=True)
        evals, evecs = np.linalg.eigh(cov)
        # + 1/12: the variance of a pixel's own extent, so a one-pixel-wide object has width
        lam_min, lam_max = evals[0] + 1 / 12, evals[1] + 1 / 12
        a, b = 2 * np.sqrt(lam_max), 2 * np.sqrt(lam_min)  # half-lengths
        ur, uc = evecs[0, 1], evecs[1, 1]
        reach = int(np.ceil(a + 2 * b)) + 1
        r0, r1 = max(0, int(cy) - reach), min(h, int(cy) + reach + 1)
        c0, c1 = max(0, int(cx) - reach), min(w, int(cx) + reach + 1)
        yy, xx = np.mgrid[r0:r1, c0:c1]
        along = (yy - cy) * ur + (xx - cx) * uc
        across = np.abs(-(yy - cy) * uc + (xx - cx) * ur)
        win = snr[r0:r1, c0:c1]
        own = float(snr[rr, cc].mean())
        ends = []
        for sign in (1.0, -1.0):
            box = (sign * along > a) & (sign * along <= a + 2 * b) & (across <= b)
            # a box wholly off the image says nothing about what lies there
            ends.append(float(win[box].mean()) / own if box.any() and own > 0 else np.nan)
        seen = [e for e in ends if np.isfinite(e)]
        out["elongation"][i] = a / b
        out["continuation_min"][i] = min(seen) if seen else 0.0
        out["continuation_max"][i] = max(seen) if seen else 0.0
    out["label"] = todo
    return out
