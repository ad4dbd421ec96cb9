"""Models an assay run takes (``--model m.hqm``, ``model:`` in ``study.yaml``).

The model's kind decides which step it replaces; each assay declares the steps it lets a
model replace (:attr:`histoquant.assays.base.AssaySpec.model_steps`):

- an ``objects`` model (``histoquant train objects``) replaces the class rules: it is applied
  to the assay's result, its classes and their probability go into ``objects.csv`` and the
  counts are recounted (:func:`~histoquant.learn.objects.apply_model`);
- a ``pixels`` or ``somata`` model (``histoquant train pixels|somata``) replaces a
  segmentation step inside the assay: it is handed to the assay's ``run(..., model=...)`` as
  the object :func:`step_model` returns (a
  :class:`~histoquant.learn.pixels.PixelClassifier` or a
  :class:`~histoquant.learn.somata.SomaModel`).

A model of a kind the assay does not take, or one that does not fit it, is refused before
any image is measured.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from ..errors import ModelFileError
from ..results import AssayResult
from .modelfile import LoadedModel, load_model

__all__ = ["load_assay_model", "cached_assay_model", "apply_assay_model", "step_model",
           "run_kwargs"]


def load_assay_model(path: str | Path, assay: str) -> LoadedModel:
    """Load a model for ``assay``'s runs, refusing one it cannot use.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.hqm`` file.
    assay : str
        The assay that will use it.

    Returns
    -------
    LoadedModel
        The model, checked.

    Raises
    ------
    ModelFileError
        The file is not a safe histoquant model (see
        :func:`~histoquant.learn.modelfile.load_model`), is of a kind the assay does not
        take (the message lists the kinds it takes), was trained on another assay's
        objects, or does not fit the step (the step's own check).
    """
    from ..assays import get_assay

    spec = get_assay(assay)
    model = load_model(path)
    name = Path(path).name
    step = spec.model_step(model.kind)
    if step is None:
        takes = "; ".join(f"{s.kind!r}, in place of {s.replaces.split(':')[0]}"
                          for s in spec.model_steps)
        raise ModelFileError(
            f"{name}: {assay} takes no {model.kind!r} model "
            + (f"(it takes {takes})" if takes else "(no step of it is learned)")
            + "; see docs/learning.md")
    if model.kind == "objects":
        trained_for = model.manifest.get("assay")
        if trained_for != assay:
            raise ModelFileError(f"{name}: this model classifies {trained_for} objects, "
                                 f"not {assay} objects")
    if step.check is not None:
        step.check(step_model(model, name), name)
    return model


def cached_assay_model(path: str | Path, assay: str) -> LoadedModel:
    """Return :func:`load_assay_model`'s model, read once per process and file version.

    A 200-tree forest takes ≈ 0.4 s to read and check, as long as measuring a small image, so
    a batch worker and a napari dock read it once, not once per image. The cache is keyed by
    the file's size and modification time: a file replaced during a session is read again.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.hqm`` file.
    assay : str
        The assay that will use it.

    Returns
    -------
    LoadedModel
        The model, checked.

    Raises
    ------
    ModelFileError
        As :func:`load_assay_model`.
    OSError
        When the file cannot be read.
    """
    st = os.stat(path)
    return _cached(str(Path(path).resolve()), assay, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _cached(path: str, assay: str, size: int, mtime_ns: int) -> LoadedModel:
    return load_assay_model(path, assay)


def step_model(model: LoadedModel, name: str = "model") -> Any:
    """Return what an assay's ``run(..., model=...)`` uses for a ``pixels``/``somata`` model.

    Parameters
    ----------
    model : LoadedModel
        From :func:`load_assay_model` (or :func:`~histoquant.learn.modelfile.load_model`).
    name : str
        The file's name, for errors.

    Returns
    -------
    object
        A :class:`~histoquant.learn.pixels.PixelClassifier` (``pixels``), a
        :class:`~histoquant.learn.somata.SomaModel` (``somata``), or ``model`` itself
        (``objects``).

    Raises
    ------
    ModelFileError
        When the manifest does not describe a usable model of its kind.
    """
    if model.kind == "pixels":
        from ..errors import ParamsError
        from .pixels import PixelClassifier

        try:
            clf = PixelClassifier.from_manifest(model.estimator, model.manifest)
        except (ParamsError, KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{name}: the pixel classifier's manifest does not fit: "
                                 f"{exc}") from None
        # the file's identity, for the results of the assays it runs in
        clf.training["payload_sha256"] = model.manifest.get("payload_sha256")
        return clf
    if model.kind == "somata":
        from .somata import SomaModel

        est = model.estimator
        if not isinstance(est, dict) or "pixels" not in est:
            raise ModelFileError(f"{name}: a soma model holds a dict with a 'pixels' forest")
        return SomaModel(est["pixels"], est.get("objects"), dict(model.manifest))
    return model


def run_kwargs(model: LoadedModel | None) -> dict[str, Any]:
    """Return the keyword arguments that hand ``model`` to an assay's ``run``.

    Parameters
    ----------
    model : LoadedModel or None
        A checked model (:func:`load_assay_model`), or ``None``.

    Returns
    -------
    dict
        ``{"model": step_model(model)}`` for a model that replaces a step inside the run;
        empty for no model or an ``objects`` model (applied to the result afterwards, by
        :func:`apply_assay_model`).
    """
    if model is None or model.kind == "objects":
        return {}
    return {"model": step_model(model)}


def apply_assay_model(result: AssayResult, model: LoadedModel | None) -> AssayResult:
    """Apply a checked ``objects`` model (:func:`load_assay_model`) to one result of its assay.

    Parameters
    ----------
    result : AssayResult
        The assay's result on one image (or one section of a slide).
    model : LoadedModel or None
        From :func:`load_assay_model`. ``None``, or a model of another kind (already used
        inside the run, see :func:`run_kwargs`), leaves ``result`` as it is.

    Returns
    -------
    AssayResult
        The result with the model's classes and the counts recounted.
    """
    if model is None or model.kind != "objects":
        return result
    from .objects import apply_model

    return apply_model(result, model)
