"""Tissue and grey matter from a pixel classifier, in place of the anatomy's thresholds.

A ``pixels`` model (``histoquant train pixels --classes background,grey_matter,white_matter``)
handed to :func:`~histoquant.anatomy.find_sections` (or the anatomy assay's
``run(..., model=...)``) replaces two steps: the tissue threshold (tissue = every pixel
whose most probable class is not background) and the grey/white split (grey matter = the
pixels whose most probable class is grey matter). Everything after them runs unchanged on
those masks: the cleaning and the cutting of the tissue into sections
(:func:`~histoquant.anatomy.tissue.find_tissue`), the grey matter's cleaning, largest-piece
and depth checks (:func:`~histoquant.anatomy.grey_matter.segment_grey_matter`), the central
canal, orientation, horns, quality scores and region outlines.

The classifier runs on the image read at the model's own pixel size (or the nearest
coarser pyramid level that divides the working factor), and its probabilities are
block-averaged to the anatomy's working grid before the most probable class is taken.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..io.image import Image
from ..progress import Progress
from ..segment.statistics import block_mean
from .working import read_downsampled

__all__ = ["GREY_MATTER_NAMES", "WHITE_MATTER_NAMES", "BACKGROUND_NAMES", "ClassifiedTissue",
           "classify_working", "model_record"]

#: Names a pixel classifier's grey-matter class may have (case, spaces and dashes ignored).
GREY_MATTER_NAMES = ("grey_matter", "gray_matter", "gm")
#: Names of its white-matter class (part of the tissue; not read on its own).
WHITE_MATTER_NAMES = ("white_matter", "wm")
#: Names of the class that is not tissue: the slide, the padding.
BACKGROUND_NAMES = ("background", "bg", "slide", "glass")


@dataclass
class ClassifiedTissue:
    """A pixel classifier's tissue and grey matter on the anatomy's working grid.

    Attributes
    ----------
    grey : numpy.ndarray
        bool (h, w): grey matter is the most probable class.
    tissue : numpy.ndarray or None
        bool (h, w): the most probable class is not background; ``None`` when the model has
        no background class (the classical tissue step then runs).
    record : dict
        What ran: the model's classes, pixel size, manifest hash, and the classes read.
    """

    grey: np.ndarray
    tissue: np.ndarray | None
    record: dict[str, Any] = field(default_factory=dict)


def model_record(model: Any) -> dict[str, Any]:
    """Return a JSON-able record of a pixel classifier, for a result's ``extra``.

    Parameters
    ----------
    model : PixelClassifier
        The classifier.

    Returns
    -------
    dict
        ``kind``, ``classes``, ``pixel_size_um``, ``training_images`` (names),
        ``held_out`` (balanced accuracy) and ``manifest_sha256``: the SHA-256 of its
        manifest (classes, features, training images' pixel hashes, settings, scores), which
        tells two models apart; the model file's own SHA-256 is in the batch's run.json.
    """
    manifest = model.manifest()
    digest = hashlib.sha256(json.dumps(manifest, sort_keys=True, default=str).encode())
    return {"kind": "pixels", "classes": list(model.classes),
            "pixel_size_um": float(model.pixel_size_um),
            "training_images": [i.get("name") for i in manifest.get("training_images", [])],
            "held_out": model.held_out.get("balanced_accuracy"),
            "manifest_sha256": digest.hexdigest()}


def _read_factor(factor: int, image_px: float, model_px: float) -> int:
    """Return the largest divisor of ``factor`` whose pixels are no coarser than the model's."""
    fits = [d for d in range(1, factor + 1)
            if factor % d == 0 and image_px * d <= model_px * (1 + 1e-3)]
    return max(fits) if fits else 1


def classify_working(model: Any, image: Image, factor: int, pixel_size_um: float,
                     progress: Progress | None = None) -> ClassifiedTissue:
    """Run a pixel classifier and return its tissue and grey matter on the working grid.

    Parameters
    ----------
    model : PixelClassifier
        With a grey-matter class (:data:`GREY_MATTER_NAMES`); a background class
        (:data:`BACKGROUND_NAMES`) gives the tissue too.
    image : Image
        The full image.
    factor : int
        Full-resolution pixels per working pixel.
    pixel_size_um : float
        The image's pixel size (or the one assumed for it).
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    ClassifiedTissue
        Masks of ``ceil(H / factor) × ceil(W / factor)``, as the working image.

    Raises
    ------
    ModelFileError
        The model has no grey-matter class.
    ChannelError
        The image lacks the channels the model was trained on.
    """
    from ..learn.foreground import find_class, requires_class
    from ..learn.pixels import predict_proba

    grey_name = find_class(model, GREY_MATTER_NAMES)
    if grey_name is None:
        requires_class(*GREY_MATTER_NAMES)(model, "model")
    bg_name = find_class(model, BACKGROUND_NAMES)
    d = _read_factor(factor, pixel_size_um, float(model.pixel_size_um))
    arr = read_downsampled(image, d)
    if np.issubdtype(image.dtype, np.integer):
        # block means back in the image's own type: the planes' normalisation and the
        # slide-white estimate read the value range from it
        arr = np.rint(arr).astype(image.dtype)
    axes = "YXC" if arr.ndim == 3 else "YX"
    small = Image(arr, axes=axes, pixel_size_um=pixel_size_um * d,
                  channel_names=image.channel_names if arr.ndim == 3 else (),
                  rgb=image.rgb, path=image.path, metadata=dict(image.metadata),
                  modality=image.modality)
    prob = predict_proba(model, small, progress=progress)
    prob = block_mean(prob, factor // d, copy=False)
    classes = list(model.classes)
    best = np.argmax(prob, axis=-1)
    grey = best == classes.index(grey_name)
    tissue = None if bg_name is None else best != classes.index(bg_name)
    record = {**model_record(model), "grey_matter_class": grey_name,
              "background_class": bg_name, "read_factor": int(d),
              "read_pixel_size_um": float(pixel_size_um * d)}
    return ClassifiedTissue(grey=grey, tissue=tissue, record=record)
