"""An ilastik-style pixel classifier: a random forest on multiscale features at a µm scale.

Training (:func:`train_pixel_classifier`) takes images and label images of the same shape
(0 = unlabelled, value ``k`` = the ``k``-th class, 1-based): dense masks or sparse scribbles.
Each image is turned into input planes normalised per image and rescaled to the model's pixel
size (:mod:`histoquant.learn.features`); the labelled pixels are sampled with the same cap
per class (so a large background does not drown a thin class, and memory stays bounded), their
features computed tile by tile, and a scikit-learn :class:`~sklearn.ensemble.RandomForestClassifier`
(seeded, one core, classes weighted equally) is fitted.

**Held-out score.** Neighbouring pixels are not independent examples, so the score is never
taken on pixels drawn from the same place as the training pixels:

- with two images or more, a forest is trained on all images but one (the last whose absence
  leaves every class among the others) and scored on that image's labelled pixels;
- with one image, the image is cut into a 4 × 4 grid of blocks; a quarter of the blocks
  (seeded draw holding every class) are held out, and training pixels within the features'
  reach (:meth:`FeatureSpec.margin_px`) of a held-out block are left out.

The score is the balanced accuracy (mean recall over classes) with the recall of each
class; the returned model is then fitted on all the sampled pixels. On scribbles the score
measures the scribbled places only, which are away from the hard boundaries: it is an upper
bound of the accuracy on whole images.

**Prediction** (:func:`predict_proba`) rescales the image to the model's pixel size, computes
the features in tiles with a margin larger than the largest feature's reach (the result
equals the untiled one exactly), and resamples the probabilities to the image's own grid.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import (
    ChannelError,
    ModalityError,
    ParamsError,
    PixelSizeError,
    TrainingDataError,
)
from ..io.image import Image, as_image
from ..progress import Progress
from .features import (
    FeatureSpec,
    _is_brightfield_rgb,
    plane_features,
    prepare_planes,
    rescale_planes,
)

__all__ = ["PixelClassifier", "train_pixel_classifier", "predict_proba", "predict_classes",
           "save_pixel_classifier", "load_pixel_classifier", "MANIFEST_VERSION"]

#: Version of the pixel classifier's manifest layout.
MANIFEST_VERSION = 1
#: Relative difference of pixel sizes below which an image is not resampled.
_SAME_SCALE = 1e-3


@dataclass
class PixelClassifier:
    """A trained pixel classifier.

    Parameters
    ----------
    estimator : sklearn.ensemble.RandomForestClassifier
        The forest; its classes are ``1 … len(classes)``.
    classes : tuple of str
        Class names; label value ``k`` in training was ``classes[k - 1]``.
    spec : FeatureSpec
        The features and their scales (µm).
    pixel_size_um : float
        Pixel size the features are computed at; inputs are rescaled to it.
    plane_kind : {"stain_od", "intensity"}
        Input planes: brightfield stain densities, or normalised channel intensities.
    plane_names : list of str
        Names of the input planes (channels) seen in training.
    modality : str or None
        Modality of the training images.
    training : dict
        Training record: images (name, SHA-256 of the pixels, pixel size), pixels sampled per
        class, forest settings, held-out score.
    """

    estimator: Any
    classes: tuple[str, ...]
    spec: FeatureSpec
    pixel_size_um: float
    plane_kind: str
    plane_names: list[str]
    modality: str | None = None
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> list[str]:
        """Names of the features, in the forest's column order."""
        return self.spec.feature_names(self.plane_names)

    @property
    def held_out(self) -> dict[str, Any]:
        """The held-out score record (``balanced_accuracy``, ``recall``, ``method``)."""
        return dict(self.training.get("held_out", {}))

    def manifest(self) -> dict[str, Any]:
        """Return everything but the forest, as JSON-able values (the model file's manifest).

        The keys follow :func:`histoquant.learn.modelfile.save_model`: ``classes``,
        ``features`` (names, in column order), ``pixel_size_um`` (trained at),
        ``training_images`` (name and SHA-256), ``scores`` (held out); and the pixel
        classifier's own: ``pixel_manifest_version``, ``feature_spec``, ``planes``,
        ``modality`` and ``training`` (sampling and forest settings).

        Returns
        -------
        dict
            The manifest.
        """
        return {
            "pixel_manifest_version": MANIFEST_VERSION,
            "classes": list(self.classes),
            "features": self.feature_names,
            "feature_spec": self.spec.to_dict(),
            "pixel_size_um": float(self.pixel_size_um),
            "planes": {"kind": self.plane_kind, "names": list(self.plane_names)},
            "modality": self.modality,
            "training_images": list(self.training.get("images", [])),
            "scores": {"held_out": self.held_out},
            "training": {k: v for k, v in self.training.items() if k != "images"},
        }

    @classmethod
    def from_manifest(cls, estimator: Any, manifest: dict[str, Any]) -> PixelClassifier:
        """Rebuild a classifier from its forest and :meth:`manifest`.

        Parameters
        ----------
        estimator : sklearn.ensemble.RandomForestClassifier
            The forest.
        manifest : dict
            The manifest saved with it.

        Returns
        -------
        PixelClassifier
            The classifier.

        Raises
        ------
        ParamsError
            When the manifest is not a pixel classifier's or is of a newer layout.
        """
        if "feature_spec" not in manifest or "planes" not in manifest:
            raise ParamsError("not a pixel classifier's manifest (no feature_spec or planes)")
        if int(manifest.get("pixel_manifest_version", 0)) > MANIFEST_VERSION:
            raise ParamsError(f"the pixel classifier's manifest is version "
                              f"{manifest.get('pixel_manifest_version')}, newer than this "
                              f"histoquant reads ({MANIFEST_VERSION}); update histoquant")
        training = dict(manifest.get("training", {}))
        training["images"] = list(manifest.get("training_images", []))
        training["held_out"] = dict(manifest.get("scores", {}).get("held_out", {}))
        return cls(estimator=estimator, classes=tuple(manifest["classes"]),
                   spec=FeatureSpec.from_dict(manifest["feature_spec"]),
                   pixel_size_um=float(manifest["pixel_size_um"]),
                   plane_kind=manifest["planes"]["kind"],
                   plane_names=list(manifest["planes"]["names"]),
                   modality=manifest.get("modality"), training=training)


def save_pixel_classifier(model: PixelClassifier, path: str | Path) -> Path:
    """Write the classifier to a ``.hqm`` model file (kind ``"pixels"``).

    Parameters
    ----------
    model : PixelClassifier
        The trained classifier.
    path : str or Path
        Where to write.

    Returns
    -------
    Path
        The file written.
    """
    from .modelfile import save_model

    return save_model(path, model.estimator, kind="pixels", manifest=model.manifest())


def load_pixel_classifier(path: str | Path) -> PixelClassifier:
    """Read a pixel classifier from a ``.hqm`` model file.

    Parameters
    ----------
    path : str or Path
        The model file.

    Returns
    -------
    PixelClassifier
        The classifier.

    Raises
    ------
    ModelFileError
        The file is not a pixel classifier's model file, or is unsafe or damaged (see
        :func:`histoquant.learn.modelfile.load_model`).
    """
    from .assay_models import step_model
    from .modelfile import load_model

    return step_model(load_model(path, kind="pixels"), str(path))


# ------------------------------------------------------------------------------------------
# Tiles
# ------------------------------------------------------------------------------------------


def _tiles(shape: tuple[int, int], tile_px: int) -> Iterator[tuple[int, int, int, int]]:
    h, w = shape
    for r0 in range(0, h, tile_px):
        for c0 in range(0, w, tile_px):
            yield r0, min(h, r0 + tile_px), c0, min(w, c0 + tile_px)


def _tile_features(planes: np.ndarray, box: tuple[int, int, int, int], margin: int,
                   spec: FeatureSpec, pixel_size_um: float) -> np.ndarray:
    """Features of the pixels in ``box``, computed on the box grown by ``margin``."""
    r0, r1, c0, c1 = box
    h, w = planes.shape[1:]
    R0, R1, C0, C1 = max(0, r0 - margin), min(h, r1 + margin), max(0, c0 - margin), \
        min(w, c1 + margin)
    f = plane_features(planes[:, R0:R1, C0:C1], spec, pixel_size_um)
    return f[r0 - R0: r1 - R0, c0 - C0: c1 - C0]


# ------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------


def _pixel_hash(image: Image) -> str:
    h = hashlib.sha256()
    px = np.ascontiguousarray(image.plane())
    h.update(str((px.shape, px.dtype.str)).encode())
    h.update(px.tobytes())
    return h.hexdigest()


def _image_entry(image: Image) -> dict[str, Any]:
    """Return a training image's manifest entry.

    The file's SHA-256 when it came from a file (as
    :func:`histoquant.learn.modelfile.image_record`), else that of its pixels.
    """
    if image.path is not None and Path(image.path).is_file():
        from .modelfile import image_record

        entry = dict(image_record(image.path))
    else:
        entry = {"name": image.name, "sha256": _pixel_hash(image), "hash_of": "pixels"}
    entry.update(pixel_size_um=float(image.pixel_size_um), shape=list(image.shape_yx))
    return entry


def _as_images(images: Sequence[Any], pixel_size_um: float | Sequence[float] | None
               ) -> list[Image]:
    n = len(images)
    if pixel_size_um is None or np.isscalar(pixel_size_um):
        sizes = [pixel_size_um] * n
    else:
        sizes = list(pixel_size_um)
        if len(sizes) != n:
            raise ParamsError(f"{len(sizes)} pixel sizes given for {n} images")
    out = []
    for im, px in zip(images, sizes, strict=True):
        image = as_image(im, px)
        if image.pixel_size_um is None:
            raise PixelSizeError(
                f"{image.source}: the pixel size is unknown; the classifier's features are at a "
                "physical scale (µm). Give it (--pixel-size, or pixel_size_um=...)")
        out.append(image)
    return out


def _check_labels(image: Image, lab: Any, n_classes: int, classes: Sequence[str]
                  ) -> np.ndarray:
    lab = np.asarray(lab)
    if lab.ndim == 3 and lab.shape[2] in (3, 4):
        # a label image saved as RGB(A) with equal channels: its first channel
        if not all(np.array_equal(lab[..., 0], lab[..., c]) for c in range(1, 3)):
            raise TrainingDataError(
                f"{image.source}: the label image is colour (shape {lab.shape}); give a "
                "single-channel image whose values are 0 (unlabelled) or a class number")
        lab = lab[..., 0]
    if lab.ndim != 2:
        raise TrainingDataError(f"{image.source}: a label image must be 2D, got shape "
                                f"{lab.shape}")
    if lab.shape != tuple(image.shape_yx):
        raise TrainingDataError(
            f"{image.source}: the label image is {lab.shape[0]} x {lab.shape[1]} px but the "
            f"image is {image.shape_yx[0]} x {image.shape_yx[1]} px; labels must be drawn on "
            "the image's own grid (same order of files)")
    if np.issubdtype(lab.dtype, np.floating):
        if not np.all(np.isfinite(lab)) or not np.all(lab == np.round(lab)):
            raise TrainingDataError(f"{image.source}: label values must be whole numbers")
    lab = lab.astype(np.int64, copy=False)
    bad = np.setdiff1d(np.unique(lab), np.arange(n_classes + 1))
    if bad.size:
        names = ", ".join(f"{i + 1}={c}" for i, c in enumerate(classes))
        raise TrainingDataError(
            f"{image.source}: label values {bad[:10].tolist()} are not classes; the values "
            f"are 0 (unlabelled) and {names}")
    return lab


def _scaled_coords(lab: np.ndarray, factor: float, shape: tuple[int, int]
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labelled pixels' (rows, cols, values) on the model's grid (every stroke kept)."""
    r, c = np.nonzero(lab)
    v = lab[r, c]
    if factor != 1.0:
        r = np.minimum(((r + 0.5) * factor).astype(np.int64), shape[0] - 1)
        c = np.minimum(((c + 0.5) * factor).astype(np.int64), shape[1] - 1)
    return r, c, v


def _sample(per_class: dict[int, np.ndarray], cap: int, rng: np.random.Generator
            ) -> np.ndarray:
    """Return indices into the pooled labelled pixels: up to ``cap`` of each class, at random."""
    out = []
    for k in sorted(per_class):
        idx = per_class[k]
        if idx.size > cap:
            idx = np.sort(rng.choice(idx, cap, replace=False))
        out.append(idx)
    return np.concatenate(out)


def _forest(n_estimators: int, max_depth: int | None, min_samples_leaf: int, seed: int
            ) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=n_estimators, max_depth=max_depth,
                                  min_samples_leaf=min_samples_leaf, class_weight="balanced",
                                  n_jobs=1, random_state=seed)


def _score(forest: Any, x: np.ndarray, y: np.ndarray, classes: Sequence[str]) -> dict:
    from sklearn.metrics import recall_score

    pred = forest.predict(x)
    labels = sorted(set(y.tolist()))
    rec = recall_score(y, pred, labels=labels, average=None, zero_division=0)
    # mean recall over the classes this held-out part holds (balanced accuracy)
    return {"balanced_accuracy": float(np.mean(rec)),
            "accuracy": float(np.mean(pred == y)),
            "recall": {classes[k - 1]: float(r) for k, r in zip(labels, rec, strict=True)},
            "n_pixels": int(y.size)}


def _block_split(img_i: np.ndarray, rows: np.ndarray, cols: np.ndarray, y: np.ndarray,
                 shape: tuple[int, int], margin: int, n_classes: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """Train/test masks of a one-image spatial block split (None when no draw holds all)."""
    from scipy import ndimage as ndi

    h, w = shape
    bh, bw = -(-h // 4), -(-w // 4)
    block = (rows // bh) * 4 + cols // bw
    want = set(range(1, n_classes + 1))
    for _ in range(50):
        held = rng.choice(16, 4, replace=False)
        test = np.isin(block, held)
        if set(y[test].tolist()) != want or set(y[~test].tolist()) != want:
            continue
        held_mask = np.zeros(shape, bool)
        for b in held:
            br, bc = divmod(int(b), 4)
            held_mask[br * bh:(br + 1) * bh, bc * bw:(bc + 1) * bw] = True
        # training pixels whose features reach into a held-out block are left out
        near = ndi.distance_transform_cdt(~held_mask, metric="chessboard") <= margin
        train = ~test & ~near[rows, cols]
        if set(y[train].tolist()) == want:
            return train, test
    return None


def train_pixel_classifier(images: Sequence[Image | np.ndarray], labels: Sequence[Any], *,
                           classes: Sequence[str],
                           pixel_size_um: float | Sequence[float] | None = None,
                           model_pixel_size_um: float | None = None,
                           spec: FeatureSpec | None = None,
                           max_samples_per_class: int = 20_000, n_estimators: int = 100,
                           max_depth: int | None = None, min_samples_leaf: int = 1,
                           seed: int = 0, tile_px: int = 512,
                           progress: Progress | None = None) -> PixelClassifier:
    """Train a pixel classifier from label images (dense masks or scribbles).

    Parameters
    ----------
    images : sequence of Image or numpy.ndarray
        Training images (all brightfield RGB, or all fluorescence / grey level with the same
        channels).
    labels : sequence of array_like
        One (Y, X) integer label image per image, same order: 0 = unlabelled, ``k`` =
        ``classes[k - 1]``.
    classes : sequence of str
        Class names (at least two), in label-value order.
    pixel_size_um : float or sequence of float, optional
        Pixel size of the images (one for all, or one each), overriding the files'.
    model_pixel_size_um : float, optional
        Pixel size the model works at; default the finest of the images'.
    spec : FeatureSpec, optional
        Features and their scales (µm); :class:`FeatureSpec` defaults when not given.
    max_samples_per_class : int
        At most this many labelled pixels of each class are used (drawn at random).
    n_estimators, max_depth, min_samples_leaf : int
        Forest settings (scikit-learn's meaning).
    seed : int
        Seed of the pixel draw, the held-out split and the forest.
    tile_px : int
        Side of the tiles the features are computed in (memory).
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    PixelClassifier
        The fitted classifier, with its held-out score in ``training["held_out"]``.

    Raises
    ------
    TrainingDataError
        Images and labels differ in number or shape, a label value is not a class, a class has
        no labelled pixel, or nothing is labelled.
    PixelSizeError
        An image's pixel size is unknown.
    ModalityError
        The images mix brightfield RGB and fluorescence.
    """
    report = progress or (lambda f, m: None)
    classes = tuple(str(c) for c in classes)
    if len(classes) < 2 or len(set(classes)) != len(classes) or not all(classes):
        raise TrainingDataError(f"at least two distinct, non-empty class names are needed; got "
                                f"{list(classes)}")
    if len(images) == 0 or len(images) != len(labels):
        raise TrainingDataError(f"one label image per image is needed: {len(images)} image(s), "
                                f"{len(labels)} label image(s)")
    if max_samples_per_class < 1:
        raise ParamsError(f"max_samples_per_class must be at least 1, got "
                          f"{max_samples_per_class}")
    spec = spec or FeatureSpec()
    imgs = _as_images(images, pixel_size_um)
    labs = [_check_labels(im, lab, len(classes), classes)
            for im, lab in zip(imgs, labels, strict=True)]
    model_px = float(model_pixel_size_um or min(im.pixel_size_um for im in imgs))
    margin = spec.margin_px(model_px)
    rng = np.random.default_rng(seed)

    # input planes on the model's grid, and the labelled pixels on it
    planes, norms, pooled = [], [], []
    kind = None
    if len({_is_brightfield_rgb(im) for im in imgs}) > 1:
        mods = ", ".join(f"{im.name}: {im.modality}" for im in imgs)
        raise ModalityError(f"the training images mix brightfield RGB with other images "
                            f"({mods}); train one model per modality")
    for i, (im, lab) in enumerate(zip(imgs, labs, strict=True)):
        report(0.3 * i / len(imgs), f"reading {im.name}")
        p, norm = prepare_planes(im, spec, kind=kind)
        if kind is None:
            kind = norm.kind
        elif norms and norm.names != norms[0].names:
            raise ChannelError(f"{im.source}: channels {norm.names} differ from the first "
                               f"image's {norms[0].names}")
        factor = im.pixel_size_um / model_px
        if abs(factor - 1.0) > _SAME_SCALE:
            p = rescale_planes(p, factor)
        r, c, v = _scaled_coords(lab, factor if abs(factor - 1.0) > _SAME_SCALE else 1.0,
                                 p.shape[1:])
        planes.append(p)
        norms.append(norm)
        pooled.append((np.full(r.size, i), r, c, v))
    if kind == "intensity" and spec.channels is None:
        # channels with no signal in any training image are left out (see features)
        keep = [j for j in range(len(norms[0].names)) if any(n.signal[j] for n in norms)]
        if not keep:
            raise TrainingDataError("no channel holds a signal in any training image (each "
                                    "is flat to within 2 % of full scale)")
        if len(keep) < len(norms[0].names):
            planes = [p[keep] for p in planes]
            norms = [n.subset(keep) for n in norms]
            spec = replace(spec, channels=tuple(norms[0].channels))
    img_i, rows, cols, y = (np.concatenate(a) for a in zip(*pooled, strict=True))
    if y.size == 0:
        raise TrainingDataError("no pixel is labelled in any label image (all 0); draw "
                                "scribbles or masks with values 1 … " f"{len(classes)}")
    missing = [classes[k - 1] for k in range(1, len(classes) + 1) if not np.any(y == k)]
    if missing:
        raise TrainingDataError(f"class(es) {missing} have no labelled pixel in any label "
                                f"image; label some or drop them from the classes")
    per_class = {k: np.flatnonzero(y == k) for k in range(1, len(classes) + 1)}
    pick = _sample(per_class, int(max_samples_per_class), rng)
    img_i, rows, cols, y = img_i[pick], rows[pick], cols[pick], y[pick]

    # features at the sampled pixels, tile by tile (tiles without samples are skipped)
    x = np.empty((y.size, spec.per_plane() * planes[0].shape[0]), np.float32)
    for i, p in enumerate(planes):
        report(0.3 + 0.4 * i / len(planes), f"features of {imgs[i].name}")
        mine = np.flatnonzero(img_i == i)
        for box in _tiles(p.shape[1:], tile_px):
            r0, r1, c0, c1 = box
            sel = mine[(rows[mine] >= r0) & (rows[mine] < r1) & (cols[mine] >= c0)
                       & (cols[mine] < c1)]
            if sel.size:
                f = _tile_features(p, box, margin, spec, model_px)
                x[sel] = f[rows[sel] - r0, cols[sel] - c0]

    # held-out score, then the model on everything
    report(0.7, "held-out score")
    held: dict[str, Any]
    n_all = set(range(1, len(classes) + 1))
    out_img = next((i for i in reversed(range(len(imgs)))
                    if len(imgs) > 1 and set(y[img_i != i].tolist()) == n_all), None)
    if out_img is not None:
        test = img_i == out_img
        f = _forest(n_estimators, max_depth, min_samples_leaf, seed).fit(x[~test], y[~test])
        held = _score(f, x[test], y[test], classes)
        held["method"] = f"held-out image {imgs[out_img].name}"
    else:
        split = (_block_split(img_i, rows, cols, y, planes[0].shape[1:], margin, len(classes),
                              rng) if len(imgs) == 1 else None)
        if split is None:
            held = {"balanced_accuracy": float("nan"), "method": "none: no held-out image or "
                    "block split holds every class"}
        else:
            train, test = split
            f = _forest(n_estimators, max_depth, min_samples_leaf, seed).fit(x[train],
                                                                             y[train])
            held = _score(f, x[test], y[test], classes)
            held["method"] = "spatial blocks (4 x 4 grid, 4 held out, margin left out)"
    report(0.85, "fitting the forest")
    forest = _forest(n_estimators, max_depth, min_samples_leaf, seed).fit(x, y)
    report(1.0, "done")
    training = {
        "images": [_image_entry(im) for im in imgs],
        "labelled_pixels": {c: int(per_class[k].size) for k, c in enumerate(classes, 1)},
        "sampled_pixels": {c: int(np.sum(y == k)) for k, c in enumerate(classes, 1)},
        "max_samples_per_class": int(max_samples_per_class),
        "forest": {"n_estimators": n_estimators, "max_depth": max_depth,
                   "min_samples_leaf": min_samples_leaf, "seed": seed},
        "held_out": held,
    }
    return PixelClassifier(estimator=forest, classes=classes, spec=spec,
                           pixel_size_um=model_px, plane_kind=kind,
                           plane_names=list(norms[0].names),
                           modality=imgs[0].known_modality, training=training)


# ------------------------------------------------------------------------------------------
# Prediction
# ------------------------------------------------------------------------------------------


def predict_proba(model: PixelClassifier, image: Image | np.ndarray, *,
                  pixel_size_um: float | None = None, tile_px: int = 512,
                  progress: Progress | None = None) -> np.ndarray:
    """Return the probability of each class at each pixel of the image.

    Parameters
    ----------
    model : PixelClassifier
        A trained classifier.
    image : Image or numpy.ndarray
        The image (same kind of channels as in training).
    pixel_size_um : float, optional
        The image's pixel size, overriding the file's.
    tile_px : int
        Side of the tiles (on the model's grid) the features are computed in; the memory
        used is about ``(tile_px + 2 margin)² × n_features × 4`` bytes. Tiling does not
        change the result.
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    numpy.ndarray
        float32 (Y, X, n_classes), summing to 1 at each pixel, in ``model.classes`` order.

    Raises
    ------
    PixelSizeError
        The image's pixel size is unknown.
    ChannelError
        The image lacks the channels the model was trained on.
    """
    report = progress or (lambda f, m: None)
    image = _as_images([image], pixel_size_um)[0]
    planes, norm = prepare_planes(image, model.spec, kind=model.plane_kind)
    if len(norm.names) != len(model.plane_names):
        raise ChannelError(f"{image.source}: the model was trained on planes "
                           f"{model.plane_names}, this image gives {norm.names}")
    shape = image.shape_yx
    factor = image.pixel_size_um / model.pixel_size_um
    rescaled = abs(factor - 1.0) > _SAME_SCALE
    if rescaled:
        planes = rescale_planes(planes, factor)
    margin = model.spec.margin_px(model.pixel_size_um)
    h, w = planes.shape[1:]
    n = len(model.classes)
    out = np.empty((h, w, n), np.float32)
    boxes = list(_tiles((h, w), max(16, int(tile_px))))
    order = np.searchsorted(model.estimator.classes_, np.arange(1, n + 1))
    for j, box in enumerate(boxes):
        report(j / len(boxes), f"tile {j + 1}/{len(boxes)}")
        r0, r1, c0, c1 = box
        f = _tile_features(planes, box, margin, model.spec, model.pixel_size_um)
        p = model.estimator.predict_proba(f.reshape(-1, f.shape[-1]))
        out[r0:r1, c0:c1] = p[:, order].reshape(r1 - r0, c1 - c0, n)
    if rescaled:
        out = np.moveaxis(rescale_planes(np.moveaxis(out, -1, 0), 1.0, shape), 0, -1)
        out /= np.maximum(out.sum(axis=-1, keepdims=True), np.float32(1e-12))
    report(1.0, "done")
    return np.ascontiguousarray(out, dtype=np.float32)


def predict_classes(model: PixelClassifier, image: Image | np.ndarray, **kwargs: Any
                    ) -> np.ndarray:
    """Return the most probable class at each pixel: 1 … n_classes (label values).

    Parameters
    ----------
    model : PixelClassifier
        A trained classifier.
    image : Image or numpy.ndarray
        The image.
    **kwargs
        Passed to :func:`predict_proba`.

    Returns
    -------
    numpy.ndarray
        uint8 (Y, X) class values (``classes[v - 1]`` is the name).
    """
    return (np.argmax(predict_proba(model, image, **kwargs), axis=-1) + 1).astype(np.uint8)
