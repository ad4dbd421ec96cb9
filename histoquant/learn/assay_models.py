"""Models an assay run takes (``--model m.hqm``, ``model:`` in ``study.yaml``).

The model's kind decides which step it replaces. Today an assay takes an ``objects`` model:
its class rules are replaced by the model's classes and its counts recounted
(:func:`~histoquant.learn.objects.apply_model`). A ``pixels`` or ``somata`` model is refused
here with a message saying how it is used instead, before any image is measured.
"""

from __future__ import annotations

from pathlib import Path

from ..results import AssayResult
from .modelfile import LoadedModel, ModelFileError, load_model

__all__ = ["ASSAY_MODEL_KINDS", "load_assay_model", "apply_assay_model"]

#: The model kinds an assay run takes.
ASSAY_MODEL_KINDS = ("objects",)


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
        :func:`~histoquant.learn.modelfile.load_model`), is of a kind assays do not take, or
        was trained on another assay's objects.
    """
    model = load_model(path)
    if model.kind not in ASSAY_MODEL_KINDS:
        raise ModelFileError(
            f"{Path(path).name}: a {model.kind!r} model does not replace a step of an assay "
            f"run yet (assays take {', '.join(ASSAY_MODEL_KINDS)} models, from 'histoquant "
            "train objects'); use it from Python, see docs/learning.md")
    trained_for = model.manifest.get("assay")
    if trained_for != assay:
        raise ModelFileError(f"{Path(path).name}: this model classifies {trained_for} objects, "
                             f"not {assay} objects")
    return model


def apply_assay_model(result: AssayResult, model: LoadedModel) -> AssayResult:
    """Apply a checked model (:func:`load_assay_model`) to one result of its assay.

    Parameters
    ----------
    result : AssayResult
        The assay's result on one image (or one section of a slide).
    model : LoadedModel
        From :func:`load_assay_model`.

    Returns
    -------
    AssayResult
        The result with the model's classes and the counts recounted.
    """
    from .objects import apply_model

    return apply_model(result, model)
