"""Object-level agreement: the program's label images against manually drawn ones.

Each manual label image (one object per label value, 0 background) is matched one-to-one to
the program's at IoU ≥ 0.5 by :func:`histoquant.measure.scores.match_labels`; true and false
positives and misses are summed over the images before precision, recall and F1 are taken
(so a large image weighs by its objects, not as one image).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..io.safe_paths import safe_file_name
from ..measure.scores import MatchScore, match_labels
from .errors import ValidationError

__all__ = ["ObjectScores", "find_label_file", "score_objects", "LABEL_SUFFIXES"]

#: Names a manual label image may have beside ``<name>.tif``: ``<name>_labels.tif``...
LABEL_SUFFIXES = ("", "_labels", "_label", "_masks", "_mask", "_seg")
_EXTS = (".tif", ".tiff", ".png")


@dataclass
class ObjectScores:
    """Object matching summed over the images with manual labels.

    Attributes
    ----------
    total : MatchScore
        Summed true positives, false positives and false negatives.
    per_image : pandas.DataFrame
        ``code``, ``image``, ``n_manual``, ``n_auto``, ``tp``, ``fp``, ``fn``,
        ``precision``, ``recall``, ``f1``.
    missing : list of str
        Counted images with no manual label image (not scored).
    """

    total: MatchScore
    per_image: pd.DataFrame
    missing: list[str]


def find_label_file(folder: Path, names: Sequence[str]) -> Path | None:
    """Return the label image for the first of ``names`` found in ``folder``.

    Parameters
    ----------
    folder : Path
        Folder of label images.
    names : sequence of str
        Candidate stems (the code, then the image name).

    Returns
    -------
    Path or None
        ``<name><suffix><ext>`` for a suffix of :data:`LABEL_SUFFIXES` and an extension
        ``.tif``, ``.tiff`` or ``.png``; None when there is none.
    """
    for name in names:
        if not name:
            continue
        for suf in LABEL_SUFFIXES:
            for ext in _EXTS:
                p = folder / f"{name}{suf}{ext}"
                if p.is_file():
                    return p
    return None


def _read_labels(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            arr = tifffile.imread(path)
        else:
            from PIL import Image as PILImage

            with PILImage.open(path) as im:
                arr = np.asarray(im)
    except Exception as exc:
        raise ValidationError(f"{path}: cannot read the label image ({type(exc).__name__}: "
                              f"{exc})") from exc
    arr = np.squeeze(arr)
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.integer):
        raise ValidationError(f"{path}: a label image is one plane of whole numbers (0 "
                              f"background, one value per object); this is {arr.dtype} of "
                              f"shape {arr.shape}")
    return arr


def score_objects(pairs: pd.DataFrame, manual_dir: str | Path, results_dir: str | Path,
                  iou_threshold: float = 0.5) -> ObjectScores:
    """Match the manual label images of the counted images to the program's.

    Parameters
    ----------
    pairs : pandas.DataFrame
        The paired rows (``code``, ``image``), from :func:`~histoquant.validate.pairs.pair_values`.
    manual_dir : path
        Manual label images named by code or image name (see :func:`find_label_file`).
    results_dir : path
        The results folder; the program's label images are ``labels/<image>.tif`` (written by
        the assay commands, not by ``histoquant batch``).
    iou_threshold : float
        Smallest IoU of a match.

    Returns
    -------
    ObjectScores

    Raises
    ------
    ValidationError
        No manual label image for any counted image, no program label images, or images of
        different shapes.
    """
    manual_dir, results_dir = Path(manual_dir), Path(results_dir)
    if not manual_dir.is_dir():
        raise ValidationError(f"{manual_dir}: no such folder of manual label images")
    pred_dir = results_dir / "labels"
    if not pred_dir.is_dir():
        raise ValidationError(f"{results_dir} has no labels/ folder: object F1 needs the "
                              "program's label images, which the assay commands write (run "
                              "e.g. 'histoquant motor-neurons OUT/images/* -o RESULTS' on the "
                              "coded images) and 'histoquant batch' does not")
    rows, missing = [], []
    tp = fp = fn = 0
    for _, r in pairs.iterrows():
        code, image = str(r.get("code", "") or ""), str(r["image"])
        name = code or image
        truth_path = find_label_file(manual_dir, [code, image])
        if truth_path is None:
            missing.append(name)
            continue
        pred_path = pred_dir / safe_file_name(image, suffix=".tif")
        if not pred_path.is_file():
            raise ValidationError(f"{name}: no label image of the program at {pred_path}")
        truth, pred = _read_labels(truth_path), _read_labels(pred_path)
        if truth.shape != pred.shape:
            raise ValidationError(f"{name}: the manual labels {truth_path.name} are "
                                  f"{truth.shape[1]}×{truth.shape[0]} px but the program's "
                                  f"are {pred.shape[1]}×{pred.shape[0]} px")
        s = match_labels(truth, pred, iou_threshold)
        tp, fp, fn = tp + s.true_positives, fp + s.false_positives, fn + s.false_negatives
        rows.append({"code": code, "image": image,
                     "n_manual": s.true_positives + s.false_negatives,
                     "n_auto": s.true_positives + s.false_positives, "tp": s.true_positives,
                     "fp": s.false_positives, "fn": s.false_negatives,
                     "precision": s.precision, "recall": s.recall, "f1": s.f1})
    if not rows:
        raise ValidationError(f"{manual_dir}: no label image for any counted image (named "
                              "like V001.tif, V001_labels.tif or <image>_masks.png)")
    cols = ["code", "image", "n_manual", "n_auto", "tp", "fp", "fn", "precision", "recall",
            "f1"]
    return ObjectScores(total=MatchScore(tp, fp, fn, iou_threshold),
                        per_image=pd.DataFrame(rows, columns=cols), missing=missing)
