"""The learned soma engine on the two rat-cortex Nissl fields: cross-field F1 and its errors.

Run (needs ``../shared/data``)::

    python benchmarks/cortex_learn_somata.py                 # both directions + both fields
    python benchmarks/cortex_learn_somata.py augment_scale=1.3   # any training parameter

For each direction (train on one ``nissl_cortex`` field, score the other) and for the model
trained on both fields (scored on them: a self score, an upper bound), it prints every-soma
object F1 at IoU ≥ 0.5 and splits the errors, so the step that loses them can be named:

- missed somata: ``absent`` (less than 30 % of the soma under any object), ``merged`` (the
  object covering most of it covers ≥ 30 % of another soma too), ``split`` (two objects
  cover ≥ 15 % of it each), ``shape`` (one object, IoU below 0.5);
- false objects: ``spurious`` (less than 30 % of it on somata), ``partial`` (the rest);
- ``pool_recall``: the share of somata that at least one candidate of the pool matches
  (IoU ≥ 0.5) — what a perfect object classifier could reach.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def _overlaps(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                             np.ndarray]:
    t = truth.ravel().astype(np.int64)
    q = pred.ravel().astype(np.int64)
    nt, nq = int(t.max()) + 1, int(q.max()) + 1
    inter = np.bincount(t * nq + q, minlength=nt * nq).reshape(nt, nq)
    ta, qa = inter.sum(axis=1), inter.sum(axis=0)
    inter = inter[1:, 1:]
    iou = inter / np.maximum(ta[1:, None] + qa[None, 1:] - inter, 1)
    return iou, inter / np.maximum(ta[1:, None], 1), inter / np.maximum(qa[None, 1:], 1)


def breakdown(truth: np.ndarray, pred: np.ndarray) -> dict:
    """Return F1 and the errors of ``pred`` split by kind (see the module doc).

    Parameters
    ----------
    truth, pred : numpy.ndarray
        Instance label images (sequential labels) of the same shape.

    Returns
    -------
    dict
        ``f1``, ``precision``, ``recall``, counts of each kind of error.
    """
    from histoquant.measure.scores import match_labels

    iou, cover, purity = _overlaps(truth, pred)
    found = (iou >= 0.5).any(axis=1)
    kinds = {"absent": 0, "merged": 0, "split": 0, "shape": 0}
    for i in np.flatnonzero(~found):
        if cover[i].sum() < 0.3:
            kinds["absent"] += 1
        elif (cover[:, cover[i].argmax()] > 0.3).sum() >= 2:
            kinds["merged"] += 1
        elif (cover[i] > 0.15).sum() >= 2:
            kinds["split"] += 1
        else:
            kinds["shape"] += 1
    false = np.flatnonzero(~(iou >= 0.5).any(axis=0))
    spurious = int((purity[:, false].sum(axis=0) < 0.3).sum())
    s = match_labels(truth, pred, 0.5)
    return {"f1": round(s.f1, 3), "precision": round(s.precision, 3),
            "recall": round(s.recall, 3), "n_somata": int(truth.max()),
            "n_objects": int(pred.max()),
            **{f"missed_{k}": v for k, v in kinds.items()},
            "false_spurious": spurious, "false_partial": len(false) - spurious}


def _pool_recall(model, image, truth: np.ndarray) -> float:
    from histoquant.learn import somata as S

    arr, size = S._pixels_and_size(image, None)
    p = model.params
    ch = S._channels(image, arr, size, p, model.manifest.get("planes"))[0]
    prob = S._probabilities(model, ch)
    layers, _ = S._pool(prob, S._density(ch), p, model.manifest.get("planes", "stain_od"))
    found = np.zeros(int(truth.max()), bool)
    for lab in layers:
        found |= (_overlaps(truth, S._resize_labels(lab, truth.shape))[0] >= 0.5).any(axis=1)
    return round(float(found.mean()), 3)


def main(argv: list[str] | None = None) -> int:
    """Train and score; print one JSON line per run.

    Parameters
    ----------
    argv : list of str, optional
        ``name=value`` training parameters (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    sys.path.insert(0, str(ROOT))
    from skimage.segmentation import relabel_sequential

    from histoquant.io import read_image
    from histoquant.learn.somata import segment_somata, train_soma_model

    args = sys.argv[1:] if argv is None else argv
    params = {k: float(v) for k, v in (a.split("=", 1) for a in args)}
    if not SHARED.is_dir():
        print("../shared/data absent: nothing to measure")
        return 0
    raws = sorted((SHARED / "nissl_cortex" / "raw").glob("*.tif"))
    fields = [(read_image(r), relabel_sequential(np.asarray(
        read_image(r.parent.parent / "gt" / r.name).data).astype(np.int32))[0]) for r in raws]
    for train, tests in (([0], [1]), ([1], [0]), ([0, 1], [0, 1])):
        t0 = time.perf_counter()
        model = train_soma_model([fields[k][0] for k in train], [fields[k][1] for k in train],
                                 **params)
        train_s = time.perf_counter() - t0
        for k in tests:
            image, truth = fields[k]
            row = {"train": train, "test": k, "train_s": round(train_s),
                   "keep_probability": model.params["keep_probability"],
                   **breakdown(truth, segment_somata(model, image)),
                   "pool_recall": _pool_recall(model, image, truth)}
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
