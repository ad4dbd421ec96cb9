"""A learned soma engine: instance segmentation of somata taught from a few annotated fields.

Three steps, each a well-kept library's, all fitted on the CPU in a few minutes:

1. **Boundary-aware pixel classifier** (ilastik-style). Every pixel gets the multiscale
   features of :mod:`histoquant.learn.features` (smoothed value, gradient magnitude and
   Hessian eigenvalues at Gaussian scales fixed in µm) of the stain's optical densities
   (brightfield RGB) or of the per-image normalised intensity. A
   :class:`sklearn.ensemble.RandomForestClassifier` learns three classes from the instance
   masks: ``background``, ``soma_interior`` and ``soma_edge`` (the rim of every soma, which
   includes the line between two touching somata — what lets touching somata be split).
2. **Seeded watershed**: seeds are the interiors (smoothed interior probability above
   ``interior_threshold``), split where their distance map has separate domes at least
   ``seed_h_um`` high; each seed grows over the pixels that are not background by a
   watershed on edge minus interior probability.
3. **Candidate pool and object classifier**: step 2 is run with 15 settings
   (``interior_threshold`` 0.3–0.7 × ``seed_h_um`` 0.5–2 µm) and, on brightfield, the
   classical engine (:mod:`histoquant.segment.somata`) twice, on the stain density: one
   setting merges two touching somata that another splits. A second forest scores every
   candidate of the pool from its measurements (area, shape, stain density, texture, mean
   class probabilities, the contrast with a ring around it, all in µm), the setting that made
   it and how the other settings agree with it (mean best IoU, how many settings find it,
   how many objects of one setting it holds, how often it lies inside a larger one). The
   candidates are then taken greedily, best score first, each kept when its score reaches
   ``keep_probability`` and at most ``max_overlap`` of it is already taken. The forest is
   trained on the pools the first two steps make on the training fields, each candidate
   labelled by whether it matches an annotated soma (IoU ≥ 0.5); the pixel probabilities it
   sees there are *out-of-fold* (each half of every field predicted by a pixel forest
   trained on the other halves), so it learns from candidates as good or as bad as on a new
   field. ``keep_probability`` is chosen on the training fields too: the value that gives
   the best F1 with cross-validated scores (each half's candidates scored by a forest
   trained on the other halves). That step is what learns the annotator's context: on
   cortex Nissl, neurons are drawn and glia are not.

All sizes are in µm. Images are rescaled to the model's working pixel size
(``working_pixel_size_um``, default 0.5 µm) before features are computed, and the labels come
back at the input's size, so a model trained at one magnification applies at another.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..errors import DependencyError, HistoquantError, PixelSizeError

__all__ = ["SomaTrainingError", "SomaModel", "train_soma_model", "segment_somata",
           "soma_probabilities", "save_soma_model", "load_soma_model", "PIXEL_CLASSES"]

#: The pixel classes, in the order of the pixel forest's integer labels 0, 1, 2.
PIXEL_CLASSES = ("background", "soma_interior", "soma_edge")


class SomaTrainingError(HistoquantError):
    """Training images or labels are unusable: shapes differ, no somata, no pixel size."""


@dataclass
class SomaModel:
    """A trained soma engine.

    Attributes
    ----------
    pixel_forest : sklearn.ensemble.RandomForestClassifier
        Pixel classifier (classes 0, 1, 2 = :data:`PIXEL_CLASSES`).
    object_forest : sklearn.ensemble.RandomForestClassifier or None
        Object classifier of the candidate pool (1 = a soma the annotator would draw);
        ``None`` when every training candidate was of one kind, in which case the candidates
        of the default watershed setting are all kept.
    manifest : dict
        ``classes``, ``features``, ``object_features``, ``pixel_size_um`` (the working pixel
        size), ``params`` (µm), ``training_images`` (shape and SHA-256 of the pixels),
        ``scores`` (out-of-fold scores on the training fields), ``training_time_s``.
    """

    pixel_forest: Any
    object_forest: Any
    manifest: dict = field(default_factory=dict)

    @property
    def params(self) -> dict:
        """The segmentation parameters (µm) the model was trained with."""
        return dict(self.manifest["params"])

    @property
    def pixel_size_um(self) -> float:
        """The working pixel size (µm): every image is rescaled to it."""
        return float(self.manifest["pixel_size_um"])


_DEFAULTS: dict[str, float] = {
    "working_pixel_size_um": 0.5,
    "sigma_min_um": 0.5,
    "sigma_max_um": 8.0,
    "num_sigma": 5,
    "edge_um": 1.0,
    "smooth_um": 0.5,
    "interior_threshold": 0.5,
    "core_open_um": 0.0,
    "seed_h_um": 1.0,
    "min_area_um2": 10.0,
    "ring_um": 3.0,
    "keep_probability": 0.5,
    "max_overlap": 0.2,
    "augment_scale": 1.0,
}


# pixels per strip of features at inference (≈ 60 float64 features each: ≈ 250 MB)
_STRIP_PIXELS = 512 * 1024


def _sklearn():
    try:
        from sklearn.ensemble import RandomForestClassifier
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise DependencyError("the soma engine needs scikit-learn: "
                              "pip install 'histoquant[learn]'") from exc
    return RandomForestClassifier


# --- inputs -------------------------------------------------------------------------------

def _pixels_and_size(image: Any, pixel_size_um: float | None) -> tuple[np.ndarray, float]:
    """Return (pixels as (Y, X) or (Y, X, 3) array, pixel size in µm)."""
    size = pixel_size_um
    data = image
    if hasattr(image, "data") and hasattr(image, "pixel_size_um"):
        data = image.data
        if size is None:
            size = image.pixel_size_um
    arr = np.asarray(data)
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3):
        raise SomaTrainingError(f"an image must be 2-D grey or RGB (Y, X, 3); got shape "
                                f"{arr.shape}")
    if size is None:
        raise PixelSizeError("the soma engine works in µm: give pixel_size_um or an Image "
                             "whose pixel size is known")
    size = float(size)
    if not np.isfinite(size) or size <= 0:
        raise PixelSizeError(f"pixel_size_um must be a positive number, not {size}")
    if not np.isfinite(arr).all():
        raise SomaTrainingError("the image holds NaN or infinite values")
    return arr, size


def _spec(p: dict) -> Any:
    from .features import FeatureSpec
    return FeatureSpec(sigma_min_um=p["sigma_min_um"], sigma_max_um=p["sigma_max_um"],
                       num_sigma=int(p["num_sigma"]))


def _channels(image: Any, arr: np.ndarray, size: float, p: dict,
              kind: str | None) -> tuple[np.ndarray, str, list[str]]:
    """Return (Y, X, C) float32 planes at the working pixel size, their kind and names.

    Brightfield RGB: stain optical densities relative to the image's own white; otherwise
    intensity normalised per image (:func:`histoquant.learn.features.prepare_planes`).
    """
    from ..io.image import Image, as_image
    from .features import prepare_planes, rescale_planes

    img = image.with_pixel_size(size) if isinstance(image, Image) else as_image(arr, size)
    planes, norm = prepare_planes(img, _spec(p), kind)
    planes = rescale_planes(planes, size / p["working_pixel_size_um"])
    return np.ascontiguousarray(planes.transpose(1, 2, 0)), norm.kind, list(norm.names)


def _resize_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if labels.shape == tuple(shape):
        return labels
    from skimage.transform import resize
    return resize(labels, shape, order=0, preserve_range=True,
                  anti_aliasing=False).astype(labels.dtype)


def _features(channels: np.ndarray, p: dict) -> np.ndarray:
    """Multiscale features (Y, X, F) of (Y, X, C) planes at the working pixel size."""
    from .features import plane_features

    return plane_features(channels.transpose(2, 0, 1), _spec(p), p["working_pixel_size_um"])


def _pixel_targets(labels: np.ndarray, edge_px: float) -> np.ndarray:
    """0 background, 1 interior, 2 edge: soma pixels within ``edge_px`` of their own rim."""
    from skimage.segmentation import find_boundaries

    soma = labels > 0
    rim = find_boundaries(labels, mode="inner") & soma
    dist = ndi.distance_transform_edt(~rim)
    target = np.where(soma, 1, 0).astype(np.uint8)
    target[soma & (dist < edge_px)] = 2
    return target


# --- segmentation from probabilities ------------------------------------------------------

def _instances(prob: np.ndarray, p: dict) -> np.ndarray:
    """Seeded watershed on (Y, X, 3) class probabilities at the working pixel size."""
    from skimage.segmentation import watershed

    px = p["working_pixel_size_um"]
    smooth = p["smooth_um"] / px
    interior = ndi.gaussian_filter(prob[..., 1], smooth) if smooth > 0 else prob[..., 1]
    edge = ndi.gaussian_filter(prob[..., 2], smooth) if smooth > 0 else prob[..., 2]
    foreground = (1.0 - prob[..., 0]) > 0.5
    core = interior > p["interior_threshold"]
    open_px = p["core_open_um"] / px
    if open_px >= 0.5:
        from skimage.morphology import disk
        core = ndi.binary_opening(core, structure=disk(max(1, round(open_px))))
    dist = ndi.distance_transform_edt(core)
    # one seed per dome of the distance map at least seed_h_um high: a waist between two
    # somata that is seed_h_um narrower than both makes two seeds, a ragged rim does not
    from skimage.morphology import h_maxima
    h = p["seed_h_um"] / px
    markers, _ = ndi.label(h_maxima(dist, h) if h > 0 else core) if core.any() else (
        np.zeros(core.shape, np.int32), 0)
    markers = markers.astype(np.int32)
    core_lab, _ = ndi.label(core)
    missing = np.setdiff1d(np.unique(core_lab[core]), np.unique(core_lab[markers > 0]))
    if missing.size:
        extra = np.isin(core_lab, missing)
        markers[extra] = core_lab[extra] + markers.max()
    # split each core between its peaks by the distance, then grow over the foreground
    seeds = watershed(-dist, markers, mask=core)
    labels = watershed(edge - interior, seeds, mask=foreground | core)
    min_px = p["min_area_um2"] / px ** 2
    counts = np.bincount(labels.ravel())
    small = counts < min_px
    small[0] = False
    labels[small[labels]] = 0
    from skimage.segmentation import relabel_sequential
    return relabel_sequential(labels)[0].astype(np.int32)


_OBJECT_FEATURES = (
    "area_um2", "equivalent_diameter_um", "major_axis_um", "minor_axis_um", "eccentricity",
    "solidity", "extent", "perimeter_ratio",
    "density_mean", "density_std", "density_p90", "density_p10",
    "ring_density_mean", "contrast_to_ring",
    "p_interior_mean", "p_edge_mean", "p_background_mean", "p_edge_on_rim",
    "p_background_in_ring", "p_soma_in_ring", "interior_fraction",
)
#: Columns the candidate pool adds to :data:`_OBJECT_FEATURES` (see :func:`_pool`).
_POOL_FEATURES = (
    "pool_interior_threshold", "pool_seed_h_um_or_prominence", "pool_classical",
    "consensus_mean_iou", "consensus_share_iou50", "consensus_children", "consensus_inside",
)


def _object_table(labels: np.ndarray, density: np.ndarray, prob: np.ndarray,
                  p: dict) -> np.ndarray:
    """(N, F) features of objects 1..N in ``labels`` (µm units at the working pixel size)."""
    from skimage.measure import regionprops
    from skimage.segmentation import find_boundaries

    px = p["working_pixel_size_um"]
    n = int(labels.max())
    out = np.zeros((n, len(_OBJECT_FEATURES)), np.float32)
    if n == 0:
        return out
    ring_px = max(1, round(p["ring_um"] / px))
    rim = find_boundaries(labels, mode="inner") & (labels > 0)
    for r in regionprops(labels):
        i = r.label - 1
        y0, x0, y1, x1 = r.bbox
        ya, xa = max(0, y0 - ring_px), max(0, x0 - ring_px)
        yb, xb = min(labels.shape[0], y1 + ring_px), min(labels.shape[1], x1 + ring_px)
        sub = labels[ya:yb, xa:xb]
        mine = sub == r.label
        ring = ndi.binary_dilation(mine, iterations=ring_px) & ~mine
        d = density[ya:yb, xa:xb]
        pr = prob[ya:yb, xa:xb]
        dv = d[mine]
        dring = d[ring] if ring.any() else dv
        rim_here = rim[ya:yb, xa:xb] & mine
        perim = max(r.perimeter, 1.0)
        out[i] = (
            r.area * px ** 2,
            r.equivalent_diameter_area * px,
            r.axis_major_length * px,
            r.axis_minor_length * px,
            r.eccentricity,
            r.solidity,
            r.extent,
            perim / (2 * np.sqrt(np.pi * r.area)),
            dv.mean(), dv.std(), np.percentile(dv, 90), np.percentile(dv, 10),
            dring.mean(), dv.mean() - dring.mean(),
            pr[mine, 1].mean(), pr[mine, 2].mean(), pr[mine, 0].mean(),
            pr[rim_here, 2].mean() if rim_here.any() else 0.0,
            pr[ring, 0].mean() if ring.any() else 1.0,
            (sub[ring] > 0).mean() if ring.any() else 0.0,
            (pr[mine, 1] > 0.5).mean(),
        )
    return out


def _density(channels: np.ndarray) -> np.ndarray:
    # the stain density of brightfield, the first channel's intensity otherwise
    return channels[..., 0]


def _match_flags(truth: np.ndarray, pred: np.ndarray, iou: float = 0.5) -> np.ndarray:
    """Return whether each object 1..N of ``pred`` overlaps a ``truth`` object with IoU ≥ iou."""
    n = int(pred.max())
    if n == 0:
        return np.zeros(0, bool)
    t = truth.ravel().astype(np.int64)
    q = pred.ravel().astype(np.int64)
    nt = int(t.max()) + 1
    inter = np.bincount(q * nt + t, minlength=(n + 1) * nt).reshape(n + 1, nt)
    t_area = inter.sum(axis=0)
    p_area = inter.sum(axis=1)
    union = p_area[:, None] + t_area[None, :] - inter
    iou_m = np.where(union > 0, inter / np.maximum(union, 1), 0.0)[1:, 1:]
    return (iou_m >= iou).any(axis=1) if iou_m.size else np.zeros(n, bool)


# --- the candidate pool and its selection ---------------------------------------------------

#: Seeded-watershed settings of the candidate pool: (interior_threshold, seed_h_um). One
#: setting merges touching somata that another splits; the object forest picks, per soma,
#: the candidate that looks most like an annotated one.
_POOL_SETTINGS = tuple((t, h) for t in (0.3, 0.4, 0.5, 0.6, 0.7) for h in (0.5, 1.0, 2.0))
#: The classical engine's relative prominences, run on the stain density (brightfield only).
_CLASSICAL_SETTINGS = (0.0, 0.3)


def _classical_candidates(density: np.ndarray, p: dict) -> list[np.ndarray]:
    """Return the classical engine's somata (histoquant.segment.somata) on the stain density."""
    from ..segment.background import flatten_background
    from ..segment.somata import SomaSegmentationParams, segment_somata_classical

    px = p["working_pixel_size_um"]
    d = np.array(density, dtype=np.float32)
    flatten_background(d, max(8, round(50.0 / px)))
    out = []
    for rp in _CLASSICAL_SETTINGS:
        out.append(segment_somata_classical(d, px, SomaSegmentationParams(
            relative_prominence=rp, foreground_od=0.03)).astype(np.int32))
    return out


def _pool(prob: np.ndarray, density: np.ndarray, p: dict,
          kind: str) -> tuple[list[np.ndarray], np.ndarray]:
    """Candidate label images and the (N, F) object features of all their objects.

    Every object gets the features of :data:`_OBJECT_FEATURES` (measured in its own label
    image) and the settings that made it.
    """
    layers: list[tuple[np.ndarray, tuple[float, float, float]]] = []
    for t, h in _POOL_SETTINGS:
        layers.append((_instances(prob, {**p, "interior_threshold": t, "seed_h_um": h}),
                       (t, h, 0.0)))
    if kind == "stain_od":
        for rp, lab in zip(_CLASSICAL_SETTINGS, _classical_candidates(density, p)):
            layers.append((lab, (0.0, rp, 1.0)))
    labels, tables = [lab for lab, _ in layers], []
    for lab, desc in layers:
        table = _object_table(lab, density, prob, p)
        tables.append(np.hstack([table, np.tile(np.asarray(desc, np.float32),
                                                (len(table), 1)), _consensus(lab, labels)]))
    return labels, np.concatenate(tables) if tables else np.zeros((0, 0), np.float32)


def _consensus(lab: np.ndarray, layers: list[np.ndarray]) -> np.ndarray:
    """(N, 4) agreement of each object of ``lab`` with the other candidate layers.

    A soma is found alike by many settings; a merger of two somata holds several objects
    of the settings that split them; a fragment lies inside a larger object of others.
    Columns: the mean over layers of the object's best IoU, the share of layers with an
    object of IoU ≥ 0.5 with it, the most objects of one layer that lie (≥ 80 %) inside it,
    and the share of layers in which it lies (≥ 80 %) inside a larger object.
    """
    n = int(lab.max())
    out = np.zeros((n, 4), np.float32)
    if n == 0:
        return out
    q = lab.ravel().astype(np.int64)
    area_q = np.bincount(q, minlength=n + 1)
    ious, children, inside = [], [], []
    for other in layers:
        t = other.ravel().astype(np.int64)
        nt = int(t.max()) + 1
        inter = np.bincount(q * nt + t, minlength=(n + 1) * nt).reshape(n + 1, nt)[1:, 1:]
        area_t = np.bincount(t, minlength=nt)[1:]
        union = area_q[1:, None] + area_t[None, :] - inter
        iou = inter / np.maximum(union, 1)
        ious.append(iou.max(axis=1) if iou.shape[1] else np.zeros(n))
        within = inter >= 0.8 * np.maximum(area_t[None, :], 1)
        children.append(within.sum(axis=1))
        enclosing = (inter >= 0.8 * area_q[1:, None]) & (area_t[None, :] > 1.2 * area_q[1:, None])
        inside.append(enclosing.any(axis=1))
    ious_a = np.array(ious)
    out[:, 0] = ious_a.mean(axis=0)
    out[:, 1] = (ious_a >= 0.5).mean(axis=0)
    out[:, 2] = np.max(children, axis=0)
    out[:, 3] = np.mean(inside, axis=0)
    return out


def _best_iou(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Each object 1..N of ``pred``: its largest IoU with a ``truth`` object."""
    n = int(pred.max())
    if n == 0:
        return np.zeros(0)
    t = truth.ravel().astype(np.int64)
    q = pred.ravel().astype(np.int64)
    nt = int(t.max()) + 1
    inter = np.bincount(q * nt + t, minlength=(n + 1) * nt).reshape(n + 1, nt)
    union = inter.sum(axis=1)[:, None] + inter.sum(axis=0)[None, :] - inter
    iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)[1:, 1:]
    return iou.max(axis=1) if iou.shape[1] else np.zeros(n)


def _select(labels: list[np.ndarray], score: np.ndarray, keep: float,
            max_overlap: float, return_scores: bool = False) -> Any:
    """Greedy choice of non-overlapping candidates, best score first.

    A candidate is kept when its score is at least ``keep`` and at most ``max_overlap`` of
    its pixels are already taken; it gets the pixels not yet taken. With ``return_scores``,
    also the score of each object kept (label order).
    """
    shape = labels[0].shape
    out = np.zeros(shape, np.int32)
    objs = []
    for lab in labels:
        for sl in ndi.find_objects(lab):
            objs.append(sl)
    order = np.argsort(-score, kind="stable")
    kept: list[float] = []
    offsets = np.cumsum([0] + [int(lab.max()) for lab in labels])
    n = 0
    for i in order:
        if score[i] < keep:
            break
        layer = int(np.searchsorted(offsets, i, side="right") - 1)
        lab_id = i - offsets[layer] + 1
        sl = objs[i]
        if sl is None:
            continue
        mine = labels[layer][sl] == lab_id
        area = int(mine.sum())
        taken = out[sl] > 0
        if area == 0 or (mine & taken).sum() > max_overlap * area:
            continue
        n += 1
        out[sl][mine & ~taken] = n
        kept.append(score[i])
    return (out, np.asarray(kept, float)) if return_scores else out


# --- training -----------------------------------------------------------------------------

def _array_record(arr: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(arr)
    return {"shape": list(a.shape), "dtype": str(a.dtype),
            "sha256": hashlib.sha256(a.tobytes()).hexdigest()}


def _sample_pixels(target: np.ndarray, mask: np.ndarray, per_class: int,
                   rng: np.random.Generator) -> np.ndarray:
    """Flat indices of up to ``per_class`` pixels of each class inside ``mask``."""
    picks = []
    for c in range(len(PIXEL_CLASSES)):
        idx = np.flatnonzero((target == c) & mask)
        if idx.size > per_class:
            idx = rng.choice(idx, per_class, replace=False)
        picks.append(idx)
    return np.concatenate(picks)


def train_soma_model(images: Sequence[Any], labels: Sequence[np.ndarray], *,
                     pixel_size_um: float | Sequence[float] | None = None,
                     n_estimators: int = 50, pixels_per_class: int = 10000,
                     seed: int = 0, **params: float) -> SomaModel:
    """Train the soma engine on annotated fields (every soma drawn as one label).

    Parameters
    ----------
    images : sequence of Image or numpy.ndarray
        Brightfield RGB (Y, X, 3) or grey (Y, X) fields.
    labels : sequence of numpy.ndarray
        One instance label image per field (0 = not a soma), of the field's shape. Every soma
        the model should find must be drawn: an undrawn one teaches it to leave such somata
        out.
    pixel_size_um : float or sequence of float, optional
        Pixel size of the fields (µm); by default each Image's own.
    n_estimators : int
        Trees in each forest.
    pixels_per_class : int
        Training pixels drawn per class and field (balanced classes).
    seed : int
        Random seed (pixel sampling and forests).
    **params : float
        Segmentation parameters in µm (see ``_DEFAULTS`` for names and defaults):
        ``working_pixel_size_um``, ``sigma_min_um``, ``sigma_max_um``, ``num_sigma``,
        ``edge_um``, ``smooth_um``, ``interior_threshold`` (a probability),
        ``core_open_um``, ``seed_h_um``, ``min_area_um2``, ``ring_um``, ``keep_probability``
        (a probability; chosen by cross-validation on the training fields when not given),
        ``max_overlap`` (the share of a candidate that may already be taken by a better one),
        ``augment_scale`` (above 1: each field is also learned as if its somata were this
        many times larger and smaller).

    Returns
    -------
    SomaModel
        The fitted forests and the manifest (out-of-fold scores on the training fields in
        ``manifest["scores"]``).

    Raises
    ------
    SomaTrainingError
        No fields, image and label counts or shapes that differ, labels with no soma.
    PixelSizeError
        A field without a pixel size.
    """
    t0 = time.perf_counter()
    rf_class = _sklearn()
    unknown = sorted(set(params) - set(_DEFAULTS))
    if unknown:
        raise SomaTrainingError(f"unknown soma-engine parameters {unknown}; known: "
                                f"{sorted(_DEFAULTS)}")
    p = {**_DEFAULTS, **{k: float(v) for k, v in params.items()}}
    images, labels = list(images), list(labels)
    if not images:
        raise SomaTrainingError("no training images given")
    if len(images) != len(labels):
        raise SomaTrainingError(f"{len(images)} images but {len(labels)} label images: give "
                                "one instance label image per image, in the same order")
    sizes = (list(pixel_size_um) if isinstance(pixel_size_um, (list, tuple, np.ndarray))
             else [pixel_size_um] * len(images))
    if len(sizes) != len(images):
        raise SomaTrainingError(f"{len(sizes)} pixel sizes for {len(images)} images")
    rng = np.random.default_rng(seed)
    px = p["working_pixel_size_um"]
    fields = []
    records = []
    kinds: list[str] = []
    for k, (image, lab, size) in enumerate(zip(images, labels, sizes)):
        arr, size = _pixels_and_size(image, size)
        lab = np.asarray(lab)
        if lab.shape != arr.shape[:2]:
            raise SomaTrainingError(f"field {k}: the labels' shape {lab.shape} differs from "
                                    f"the image's {arr.shape[:2]}")
        if not np.issubdtype(lab.dtype, np.integer) and lab.dtype != bool:
            raise SomaTrainingError(f"field {k}: labels must be integers (an instance label "
                                    f"image), not {lab.dtype}")
        if lab.max() <= 0:
            raise SomaTrainingError(f"field {k}: the labels hold no soma; draw every soma of "
                                    "the field as its own label")
        records.append({"index": k, "pixel_size_um": size, "image": _array_record(arr),
                        "labels": _array_record(lab)})
        aug = p["augment_scale"]
        for scale in ((1.0, 1.0 / aug, aug) if aug > 1.0 else (1.0,)):
            # the field as if its somata were ``scale`` times as large: somata vary in size
            # between fields (cortical layers, animals) more than one field shows
            # (the pixels, not the Image, for a rescaled copy: its pixel size is not an
            # override of the file's, and the planes' kind is the first copy's)
            ch, kind, plane_names = _channels(image if scale == 1.0 else arr, arr,
                                              size * scale, p, kinds[0] if kinds else None)
            kinds.append(kind)
            lab_w = _resize_labels(lab.astype(np.int32), ch.shape[:2])
            feats = _features(ch, p)
            target = _pixel_targets(lab_w, p["edge_um"] / px)
            original = scale == 1.0
            fields.append({"feats": feats, "target": target, "labels": lab_w,
                           "density": _density(ch), "original": original,
                           "truth": lab.astype(np.int32) if original else lab_w,
                           "shape": arr.shape[:2] if original else lab_w.shape})

    def fit_pixels(masks: list[np.ndarray]) -> Any:
        xs, ys = [], []
        for f, m in zip(fields, masks):
            idx = _sample_pixels(f["target"], m, int(pixels_per_class), rng)
            xs.append(f["feats"].reshape(-1, f["feats"].shape[-1])[idx])
            ys.append(f["target"].ravel()[idx])
        rf = rf_class(n_estimators=int(n_estimators), min_samples_leaf=2, max_features="sqrt",
                      n_jobs=1, random_state=int(rng.integers(2**31)))
        rf.fit(np.concatenate(xs), np.concatenate(ys))
        return rf

    # Out-of-fold probabilities: the top half of every field predicted by a forest trained on
    # the bottom halves and the other way round, so the object classifier sees candidates as
    # imperfect as those of a new field.
    halves = []
    for f in fields:
        h = f["target"].shape[0]
        top = np.zeros(f["target"].shape, bool)
        top[: h // 2] = True
        halves.append(top)
    oof = [np.zeros((*f["target"].shape, 3), np.float32) for f in fields]
    for fold in (True, False):
        rf = fit_pixels([(t != fold) for t in halves])
        for f, t, o in zip(fields, halves, oof):
            sel = t == fold
            o[sel] = _predict(rf, f["feats"][sel])
    x_obj, y_obj, half_obj, oof_scores, pools = [], [], [], [], []
    from ..measure.scores import match_labels
    for f, o, top in zip(fields, oof, halves):
        if f["original"]:
            cand = _instances(o, p)
            full = _resize_labels(cand, f["shape"])
            s = match_labels(f["truth"], full, 0.5)
            oof_scores.append({"candidates_f1": s.f1, "candidates_precision": s.precision,
                               "candidates_recall": s.recall})
        layers, table = _pool(o, f["density"], p, kinds[0])
        x_obj.append(table)
        y_obj.append(np.concatenate([_best_iou(f["labels"], lab) for lab in layers]) >= 0.5)
        # which half each candidate lies in (its first pixel), for the cross-validation
        half_obj.append(np.concatenate([
            np.array([top[sl][0, 0] if sl is not None else True
                      for sl in ndi.find_objects(lab)], bool) for lab in layers]))
        pools.append(layers)
    x_obj_all = np.concatenate(x_obj)
    y_obj_all = np.concatenate(y_obj).astype(np.int8)
    half_all = np.concatenate(half_obj)

    def fit_objects(sel: np.ndarray) -> Any:
        rf = rf_class(n_estimators=int(n_estimators), min_samples_leaf=2, n_jobs=1,
                      random_state=int(rng.integers(2**31)))
        return rf.fit(x_obj_all[sel], y_obj_all[sel])

    object_forest = None
    selected_cv = None
    if len(np.unique(y_obj_all)) == 2:
        # Cross-validated scores of the candidates (forest trained on the other half of
        # every field) choose the score a candidate needs to be kept: the one that gives the
        # best F1 on the training fields after the greedy selection.
        cv = np.zeros(len(y_obj_all))
        for fold in (True, False):
            sel = half_all == fold
            if len(np.unique(y_obj_all[~sel])) == 2 and sel.any():
                rf = fit_objects(~sel)
                cv[sel] = rf.predict_proba(x_obj_all[sel])[:, list(rf.classes_).index(1)]
        if "keep_probability" not in params:
            # The greedy choice at a keep score is the choice at 0 cut where the scores drop
            # below it (a candidate's fate depends on better ones only), and an object's IoU
            # with the truth on the others: one greedy run per field gives every threshold.
            starts = np.cumsum([0] + [len(x) for x in x_obj])
            kept_scores, kept_hits, n_true = [], [], 0
            for k, (f, layers) in enumerate(zip(fields, pools)):
                chosen, order_scores = _select(layers, cv[starts[k]:starts[k + 1]], 0.0,
                                               p["max_overlap"], return_scores=True)
                kept_scores.append(order_scores)
                kept_hits.append(_best_iou(f["labels"], chosen) >= 0.5)
                n_true += len(np.unique(f["labels"])) - 1
            ks, hits = np.concatenate(kept_scores), np.concatenate(kept_hits)
            best = (-1.0, p["keep_probability"])
            for keep in np.arange(0.2, 0.81, 0.05):
                tp = int(hits[ks >= keep].sum())
                f1 = 2 * tp / max(1, n_true + int((ks >= keep).sum()))
                if f1 > best[0] + 1e-9:
                    best = (f1, round(float(keep), 2))
            p["keep_probability"] = best[1]
            selected_cv = best[0]
        object_forest = fit_objects(np.ones(len(y_obj_all), bool))
    pixel_forest = fit_pixels([np.ones_like(t) for t in halves])
    manifest = {
        "classes": list(PIXEL_CLASSES),
        "features": _spec(p).feature_names(plane_names),
        "planes": kinds[0],
        "plane_names": plane_names,
        "object_features": list(_OBJECT_FEATURES) + list(_POOL_FEATURES),
        "pixel_size_um": px,
        "params": p,
        "training_images": records,
        "scores": {"out_of_fold": oof_scores,
                   "selected_f1_cross_validated": selected_cv,
                   "n_candidates": len(y_obj_all),
                   "n_candidates_matching": int(y_obj_all.sum())},
        "n_estimators": int(n_estimators),
        "pixels_per_class": int(pixels_per_class),
        "seed": int(seed),
    }
    manifest["training_time_s"] = round(time.perf_counter() - t0, 2)
    return SomaModel(pixel_forest, object_forest, manifest)


def _predict(rf: Any, x: np.ndarray) -> np.ndarray:
    """Class probabilities (N, 3) in the order of :data:`PIXEL_CLASSES`, in row blocks."""
    out = np.zeros((x.shape[0], len(PIXEL_CLASSES)), np.float32)
    cols = [int(c) for c in rf.classes_]
    step = 200_000
    for i in range(0, x.shape[0], step):
        out[i:i + step, cols] = rf.predict_proba(x[i:i + step])
    return out


# --- inference ----------------------------------------------------------------------------

def _probabilities(model: SomaModel, ch: np.ndarray) -> np.ndarray:
    """Pixel-class probabilities of working-size channels, in row strips.

    The features of a whole large field (tens of float64 planes per pixel) would not fit in
    memory; strips with a margin of four times the largest scale give the same values as the
    whole field in their middle.
    """
    p = model.params
    px = p["working_pixel_size_um"]
    halo = _spec(p).margin_px(px)
    h = ch.shape[0]
    rows = max(64, _STRIP_PIXELS // max(1, ch.shape[1]))
    out = np.empty((*ch.shape[:2], len(PIXEL_CLASSES)), np.float32)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        a, b = max(0, r0 - halo), min(h, r1 + halo)
        feats = _features(ch[a:b], p)
        mid = feats[r0 - a: r0 - a + (r1 - r0)]
        out[r0:r1] = _predict(model.pixel_forest,
                              mid.reshape(-1, mid.shape[-1])).reshape((*mid.shape[:2], -1))
    return out


def soma_probabilities(model: SomaModel, image: Any, *,
                       pixel_size_um: float | None = None) -> np.ndarray:
    """Return the pixel classifier's (Y, X, 3) probabilities at the model's working pixel size.

    Parameters
    ----------
    model : SomaModel
        A trained model.
    image : Image or numpy.ndarray
        The field.
    pixel_size_um : float, optional
        Its pixel size (µm); by default the Image's.

    Returns
    -------
    numpy.ndarray
        float32 probabilities of :data:`PIXEL_CLASSES`, rescaled to the working pixel size.
    """
    arr, size = _pixels_and_size(image, pixel_size_um)
    ch = _channels(image, arr, size, model.params, model.manifest.get("planes"))[0]
    return _probabilities(model, ch)


def segment_somata(model: SomaModel, image: Any, *, pixel_size_um: float | None = None,
                   keep_probability: float | None = None) -> np.ndarray:
    """Segment every soma of a field with a trained model.

    Parameters
    ----------
    model : SomaModel
        From :func:`train_soma_model` or :func:`load_soma_model`.
    image : Image or numpy.ndarray
        Brightfield RGB or grey field, of the kind the model was trained on.
    pixel_size_um : float, optional
        Its pixel size (µm); by default the Image's. The field is rescaled to the model's
        working pixel size and the labels are returned at the field's own size.
    keep_probability : float, optional
        Keep candidates the object classifier gives at least this probability of being a
        soma (default: the model's, chosen by cross-validation on its training fields).

    Returns
    -------
    numpy.ndarray
        int32 instance labels (0 = background) of the field's shape.
    """
    arr, size = _pixels_and_size(image, pixel_size_um)
    p = model.params
    ch = _channels(image, arr, size, p, model.manifest.get("planes"))[0]
    prob = _probabilities(model, ch)
    if model.object_forest is None:
        cand = _instances(prob, p)
    else:
        layers, table = _pool(prob, _density(ch), p, model.manifest.get("planes", "stain_od"))
        keep_p = p["keep_probability"] if keep_probability is None else float(keep_probability)
        cls = list(model.object_forest.classes_)
        score = (model.object_forest.predict_proba(table)[:, cls.index(1)] if len(table)
                 and 1 in cls else np.zeros(len(table)))
        cand = _select(layers, score, keep_p, p["max_overlap"])
    return _resize_labels(cand, arr.shape[:2])


# --- files --------------------------------------------------------------------------------

def save_soma_model(path: str | Path, model: SomaModel) -> Path:
    """Write a soma model to a ``.hqm`` file (kind ``"somata"``).

    Parameters
    ----------
    path : str or Path
        Where to write.
    model : SomaModel
        The trained model.

    Returns
    -------
    Path
        The file written.
    """
    from .modelfile import save_model

    estimators = {"pixels": model.pixel_forest}
    if model.object_forest is not None:
        estimators["objects"] = model.object_forest
    return save_model(path, estimators, kind="somata", manifest=model.manifest)


def load_soma_model(path: str | Path, **kwargs: Any) -> SomaModel:
    """Read a soma model written by :func:`save_soma_model`.

    Parameters
    ----------
    path : str or Path
        The ``.hqm`` file.
    **kwargs
        Passed to :func:`histoquant.learn.modelfile.load_model`.

    Returns
    -------
    SomaModel
        The model.

    Raises
    ------
    ModelFileError
        Not a soma model, or a file the loader refuses.
    """
    from .assay_models import step_model
    from .modelfile import load_model

    return step_model(load_model(path, kind="somata", **kwargs), str(path))
