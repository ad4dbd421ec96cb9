"""A pixel classifier as a fluorescence assay's foreground step: the checks and the record.

Shared by the assays whose threshold step a ``pixels`` model can replace (evans-blue,
vasculature): the :class:`~histoquant.assays.base.ModelStep` check run when the model file is
loaded (the class is there, the model reads fluorescence intensities), the check of the image's
channels run before any pixel is classified, and what the result records of the model.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ChannelError, ModalityError, ModelFileError
from ..io.image import Image
from ..learn.foreground import find_class, requires_class
from ..learn.pixels import PixelClassifier


def fluorescence_class_check(assay: str, *names: str) -> Callable[[Any, str], None]:
    """Return a ModelStep check: a pixel classifier with one of ``names``, on fluorescence.

    Parameters
    ----------
    assay : str
        The assay's name (for the message).
    *names : str
        Accepted names of the class the step reads.

    Returns
    -------
    callable
        ``check(model, file_name)`` raising :class:`~histoquant.errors.ModelFileError`.
    """
    return _FluorescenceClassCheck(assay, names)


class _FluorescenceClassCheck:
    """:func:`fluorescence_class_check`'s check.

    A class, not a closure, so that an assay's spec (which holds it) pickles into the
    batch's worker processes.
    """

    def __init__(self, assay: str, names: Sequence[str]) -> None:
        self.assay, self.names = assay, tuple(names)

    def __call__(self, model: Any, file_name: str) -> None:
        requires_class(*self.names)(model, file_name)
        if model.plane_kind != "intensity":
            raise ModelFileError(
                f"{file_name}: this pixel classifier was trained on brightfield RGB images "
                f"(stain densities, modality {model.modality!r}); {self.assay} measures "
                "fluorescence: train one on fluorescence images of the same channels")


def _image_planes(model: PixelClassifier, image: Image) -> list[str]:
    """Return the plane names the model would read from ``image`` (as prepare_planes)."""
    if model.spec.channels is None:
        idx = list(range(image.n_channels))
    else:
        idx = [image.channel_index(c) for c in model.spec.channels]
    return [image.channel_names[i] if image.n_channels > 1 else "intensity" for i in idx]


def check_model_image(model: Any, image: Image, names: Sequence[str], assay: str) -> str:
    """Refuse, before any pixel is classified, a model that cannot read ``image``.

    Parameters
    ----------
    model : PixelClassifier
        The model handed to the assay's ``run(..., model=...)``.
    image : Image
        The image about to be measured.
    names : sequence of str
        Accepted names of the class the step reads.
    assay : str
        The assay's name (for messages).

    Returns
    -------
    str
        The model's own name of the class.

    Raises
    ------
    ModelFileError
        Not a pixel classifier, or without such a class.
    ModalityError
        The model was trained on brightfield RGB.
    ChannelError
        The image lacks a channel the model was trained on, or has other channels.
    """
    requires_class(*names)(model, "model")
    if model.plane_kind != "intensity":
        raise ModalityError(
            f"{image.source}: the pixel classifier was trained on brightfield RGB images "
            f"(modality {model.modality!r}); {assay} measures fluorescence: train one on "
            "fluorescence images of the same channels")
    want = list(model.plane_names)
    try:
        got = _image_planes(model, image)
    except ChannelError:
        got = None
    if got != want:
        raise ChannelError(
            f"{image.source}: the pixel classifier was trained on channels {want}; this image "
            f"has {image._channel_list()}. Give it images with the same channels (same names, "
            "same order), or train one on these")
    return find_class(model, names)


def model_record(model: PixelClassifier, class_name: str) -> dict[str, Any]:
    """Return what an assay's result records of the pixel classifier it ran.

    Parameters
    ----------
    model : PixelClassifier
        The model.
    class_name : str
        The class the step read.

    Returns
    -------
    dict
        ``engine`` ("classifier"), ``class``, ``classes``, ``sha256`` (the model file's
        payload hash when it came from a file, else that of the pickled forest, with
        ``hash_of`` saying which), ``pixel_size_um``, ``channels`` and ``training_images``.
    """
    sha = model.training.get("payload_sha256")
    hash_of = "model file payload"
    if not sha:
        sha = hashlib.sha256(pickle.dumps(model.estimator, protocol=4)).hexdigest()
        hash_of = "pickled forest (in memory)"
    return {"engine": "classifier", "class": class_name, "classes": list(model.classes),
            "sha256": sha, "hash_of": hash_of, "pixel_size_um": float(model.pixel_size_um),
            "channels": list(model.plane_names),
            "training_images": [e.get("name") for e in model.training.get("images", [])]}
