"""Why the rat-cortex every-soma F1 stays near 0.55: ceilings measured with the truth's help.

Run (needs ``../shared/data``)::

    python benchmarks/cortex_soma_ceilings.py

On the two ``nissl_cortex`` fields (at the assay's working pixel size, 2 × 0.346 µm), it
prints object F1 at IoU ≥ 0.5 for segmentations that borrow part of the answer from the
hand-drawn masks, so the two halves of the problem — which pixels are soma (foreground) and
one seed per soma (splitting) — can be judged apart:

1. true seeds (the innermost point of each hand-drawn soma) flooded in the *hand-drawn*
   foreground: the ceiling when only the splitting had to be done;
2. true seeds flooded in a *threshold* foreground (smoothed density above 0.04 OD, pale holes
   filled, opened by 1.5 µm) by a compact watershed on the density gradient, each object
   then cut to its pixels above 0.4 × its upper-quartile density: the ceiling of a
   threshold foreground with perfect seeds;
3. the classical engine's own seeds (one per object of ``relative_prominence=0,
   foreground_od=0.03``): how many somata they hit (seed F1);
4. how well single pixels separate: the area under the ROC curve of the smoothed density
   (soma vs everything else in the hand masks).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from scipy.stats import rankdata

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def _innermost_points(labels: np.ndarray) -> np.ndarray:
    """One marker per object, at the maximum of its own distance to its edge."""
    out = np.zeros_like(labels)
    for lab, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        m = labels[sl] == lab
        dist = ndi.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
        r, c = np.unravel_index(np.argmax(dist), m.shape)
        out[sl][r, c] = lab
    return out


def _object_threshold(labels: np.ndarray, smoothed: np.ndarray, markers: np.ndarray,
                      fraction: float, open_px: float) -> np.ndarray:
    """Each object's pixels above ``fraction`` × its upper quartile, the piece with its seed."""
    from histoquant.segment.somata import _disk

    out = np.zeros_like(labels)
    for lab, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        m = labels[sl] == lab
        v = smoothed[sl]
        keep = ndi.binary_fill_holes(m & (v > fraction * np.quantile(v[m], 0.75)))
        keep = ndi.binary_opening(keep, _disk(open_px))
        pieces, n = ndi.label(keep)
        if n == 0:
            continue
        at_seed = pieces[(markers[sl] == lab) & (pieces > 0)]
        k = at_seed[0] if at_seed.size else np.argmax(np.bincount(pieces.ravel())[1:]) + 1
        out[sl][pieces == k] = lab
    return out


def _auc(truth: np.ndarray, score: np.ndarray) -> float:
    r = rankdata(score)
    n1 = int(truth.sum())
    n0 = truth.size - n1
    return float((r[truth].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from skimage.filters import sobel
    from skimage.segmentation import watershed

    from histoquant.io import read_image
    from histoquant.measure.scores import match_labels
    from histoquant.segment.background import flatten_background
    from histoquant.segment.somata import (
        SomaSegmentationParams,
        _disk,
        fill_small_holes,
        segment_somata_classical,
    )
    from histoquant.segment.stain import CRESYL_VIOLET_OD, estimate_white, stain_density

    if not SHARED.is_dir():
        print("../shared/data absent: nothing to measure")
        return 0
    rows: dict[str, list[str]] = {}
    for raw in sorted((SHARED / "nissl_cortex" / "raw").glob("*.tif")):
        image = read_image(raw)
        rgb = np.asarray(image.data)
        full = np.asarray(read_image(SHARED / "nissl_cortex" / "gt" / raw.name).data)
        full = full.astype(np.int32)
        gt = full[::2, ::2]  # the truth on the working grid, for the seeds and foreground
        px = 2 * float(image.pixel_size_um)
        density = stain_density(rgb, CRESYL_VIOLET_OD, estimate_white(rgb), factor=2)
        flatten_background(density, round(50.0 / px))
        gt = gt[:density.shape[0], :density.shape[1]]
        smoothed = ndi.gaussian_filter(density, 0.5 / px)
        gradient = sobel(ndi.gaussian_filter(density, 1.0 / px))
        seeds = _innermost_points(gt)

        def f1(labels: np.ndarray, full: np.ndarray = full) -> str:
            # Scored at full resolution, each working pixel drawn 2 × 2, as the assay does.
            big = np.repeat(np.repeat(labels, 2, axis=0), 2, axis=1)[:full.shape[0],
                                                                      :full.shape[1]]
            return f"{match_labels(full, big, 0.5).f1:.3f}"

        hand = gt > 0
        rows.setdefault("true seeds, hand foreground, compact watershed of the gradient",
                        []).append(f1(watershed(gradient, seeds, mask=hand, compactness=0.01)))
        fg = fill_small_holes(smoothed > 0.04, int(400 / px ** 2))
        fg = ndi.binary_opening(fg, _disk(1.5 / px))
        flooded = watershed(gradient, seeds * fg, mask=fg, compactness=0.01)
        rows.setdefault("true seeds, threshold foreground (0.04 OD)", []).append(f1(flooded))
        rows.setdefault("  ... then per-object threshold (0.4 × upper quartile)", []).append(
            f1(_object_threshold(flooded, smoothed, seeds * fg, 0.4, 1.0 / px)))
        own = segment_somata_classical(density, px, SomaSegmentationParams(
            relative_prominence=0.0, foreground_od=0.03))
        rows.setdefault("classical engine (relative_prominence=0, foreground_od=0.03)",
                        []).append(f1(own))
        hit = np.unique(gt[_innermost_points(own) > 0])
        tp = int((hit > 0).sum())
        n_seed, n_true = int(own.max()), len(np.unique(gt)) - 1
        rows.setdefault("  its seeds: seed F1 (a soma hit by ≥ 1 seed, once)", []).append(
            f"{2 * tp / (n_seed + n_true):.3f}")
        rows.setdefault("pixel AUC of the smoothed density, soma vs rest", []).append(
            f"{_auc(hand.ravel(), smoothed.ravel()):.3f}")
    for name, vals in rows.items():
        print(f"{name:66s} {' / '.join(vals)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
