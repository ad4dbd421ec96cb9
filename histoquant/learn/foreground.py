"""A pixel classifier's probability map in place of an assay's classical foreground step.

An assay that lets a ``pixels`` model (``histoquant train pixels``) replace its foreground
(threshold) step names the class it reads, with the names a lab may have given it (say
``leak`` / ``evans_blue`` for Evans Blue extravasation). :func:`requires_class` is the
:class:`~histoquant.assays.base.ModelStep` check that refuses, before any image is measured, a
model without such a class; :func:`class_probability` and :func:`model_foreground` give the
assay the probability of that class and the mask where it is the most probable class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import ModelFileError
from .pixels import PixelClassifier, predict_proba

__all__ = ["find_class", "requires_class", "class_probability", "model_foreground"]


def _key(name: str) -> str:
    return name.strip().lower().replace(" ", "_").replace("-", "_")


def find_class(model: PixelClassifier, names: Sequence[str]) -> str | None:
    """Return the model's class that is one of ``names`` (case, spaces and dashes ignored).

    Parameters
    ----------
    model : PixelClassifier
        A pixel classifier.
    names : sequence of str
        The names the assay accepts for the class, in order of preference.

    Returns
    -------
    str or None
        The model's own spelling of the first accepted name it has, or ``None``.
    """
    mine = {_key(c): c for c in model.classes}
    return next((mine[_key(n)] for n in names if _key(n) in mine), None)


def requires_class(*names: str) -> Callable[[Any, str], None]:
    """Return a :class:`~histoquant.assays.base.ModelStep` check: the model has one of ``names``.

    Parameters
    ----------
    *names : str
        Accepted names of the class the assay reads.

    Returns
    -------
    callable
        ``check(model, file_name)`` raising :class:`~histoquant.errors.ModelFileError` when
        ``model`` is not a pixel classifier with such a class.
    """
    return _RequiresClass(names)


class _RequiresClass:
    """:func:`requires_class`'s check.

    A class, not a closure, so that an assay's spec (which holds it) pickles into the
    batch's worker processes.
    """

    def __init__(self, names: Sequence[str]) -> None:
        self.names = tuple(names)

    def __call__(self, model: Any, file_name: str) -> None:
        names = self.names
        if not isinstance(model, PixelClassifier):
            raise ModelFileError(f"{file_name}: not a pixel classifier")
        if find_class(model, names) is None:
            raise ModelFileError(
                f"{file_name}: the pixel classifier's classes are {list(model.classes)}; "
                f"this step reads a class named {' or '.join(repr(n) for n in names)} "
                "(name it so when training: histoquant train pixels --classes ...)")


def class_probability(model: PixelClassifier, image: Any, names: Sequence[str], *,
                      pixel_size_um: float | None = None,
                      progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """Return the probability of the class named one of ``names`` at each pixel.

    Parameters
    ----------
    model : PixelClassifier
        A pixel classifier with such a class (see :func:`requires_class`).
    image : Image or numpy.ndarray
        The image, of the kind the model was trained on; rescaled to the model's pixel size
        and back (:func:`~histoquant.learn.pixels.predict_proba`).
    names : sequence of str
        Accepted names of the class.
    pixel_size_um : float, optional
        The image's pixel size, overriding the file's.
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    numpy.ndarray
        float32 (Y, X) in [0, 1].

    Raises
    ------
    ModelFileError
        The model has no such class.
    """
    prob, k = _probabilities(model, image, names, pixel_size_um, progress)
    return np.ascontiguousarray(prob[..., k])


def _probabilities(model: PixelClassifier, image: Any, names: Sequence[str],
                   pixel_size_um: float | None,
                   progress: Callable[[float, str], None] | None) -> tuple[np.ndarray, int]:
    """Every class's probability, and the index of the class named one of ``names``."""
    name = find_class(model, names)
    if name is None:
        requires_class(*names)(model, "model")
    prob = predict_proba(model, image, pixel_size_um=pixel_size_um, progress=progress)
    return prob, list(model.classes).index(name)


def model_foreground(model: PixelClassifier, image: Any, names: Sequence[str], *,
                     pixel_size_um: float | None = None,
                     progress: Callable[[float, str], None] | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Return where the named class is the most probable one, and its probability.

    The most probable class, not a fixed probability cut: with three or more classes a
    pixel can be 0.45 ``leak`` and still be leak.

    Parameters
    ----------
    model : PixelClassifier
        A pixel classifier with such a class.
    image : Image or numpy.ndarray
        The image.
    names : sequence of str
        Accepted names of the class.
    pixel_size_um : float, optional
        The image's pixel size, overriding the file's.
    progress : callable, optional
        ``progress(fraction, message)``.

    Returns
    -------
    mask : numpy.ndarray
        bool (Y, X): the class wins at that pixel.
    probability : numpy.ndarray
        float32 (Y, X): its probability.
    """
    prob, k = _probabilities(model, image, names, pixel_size_um, progress)
    return np.argmax(prob, axis=-1) == k, np.ascontiguousarray(prob[..., k])
