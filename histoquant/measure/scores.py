"""Accuracy scores against ground truth: object matching by IoU, Dice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MatchScore", "match_labels", "dice"]


@dataclass(frozen=True)
class MatchScore:
    """Object-level agreement of a prediction with the truth at one IoU threshold."""

    true_positives: int
    false_positives: int
    false_negatives: int
    iou_threshold: float

    @property
    def precision(self) -> float:
        """Fraction of predicted objects that match a true one (1 when none was predicted)."""
        d = self.true_positives + self.false_positives
        return self.true_positives / d if d else 1.0

    @property
    def recall(self) -> float:
        """Fraction of true objects that a predicted one matches (1 when there is none)."""
        d = self.true_positives + self.false_negatives
        return self.true_positives / d if d else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall (1 when there are no objects at all)."""
        d = 2 * self.true_positives + self.false_positives + self.false_negatives
        return 2 * self.true_positives / d if d else 1.0


def match_labels(truth: np.ndarray, pred: np.ndarray, iou_threshold: float = 0.5) -> MatchScore:
    """Match objects of two label images one-to-one where IoU ≥ ``iou_threshold``.

    With a threshold of at least 0.5 a match is unique, so no assignment problem arises.

    Parameters
    ----------
    truth, pred : numpy.ndarray
        Label images of the same shape (0 = background).
    iou_threshold : float
        Smallest intersection-over-union of a match.

    Returns
    -------
    MatchScore
        Counts of true positives, false positives and false negatives.
    """
    if truth.shape != pred.shape:
        raise ValueError(f"shapes differ: {truth.shape} vs {pred.shape}")
    t = np.asarray(truth).ravel().astype(np.int64)
    p = np.asarray(pred).ravel().astype(np.int64)
    t_ids, t_inv = np.unique(t, return_inverse=True)
    p_ids, p_inv = np.unique(p, return_inverse=True)
    inter = np.zeros((len(t_ids), len(p_ids)), dtype=np.int64)
    np.add.at(inter, (t_inv, p_inv), 1)
    t_area = inter.sum(axis=1)
    p_area = inter.sum(axis=0)
    t_fg, p_fg = t_ids != 0, p_ids != 0
    inter = inter[np.ix_(t_fg, p_fg)]
    union = t_area[t_fg][:, None] + p_area[p_fg][None, :] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    if iou_threshold >= 0.5:
        tp = int((iou >= iou_threshold).sum()) if iou.size else 0
    else:
        from scipy.optimize import linear_sum_assignment

        r, c = linear_sum_assignment(-iou) if iou.size else ([], [])
        tp = int(sum(iou[i, j] >= iou_threshold for i, j in zip(r, c)))
    n_t, n_p = int(t_fg.sum()), int(p_fg.sum())
    return MatchScore(tp, n_p - tp, n_t - tp, iou_threshold)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Return the Dice coefficient of two boolean masks (1.0 when both are empty).

    Parameters
    ----------
    a, b : numpy.ndarray
        Boolean masks of the same shape.

    Returns
    -------
    float
        ``2 |a ∩ b| / (|a| + |b|)``.
    """
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    s = a.sum() + b.sum()
    return 2.0 * float((a & b).sum()) / float(s) if s else 1.0
