"""Sample data: the example image of each assay from ``example_images/``, with its pixel size.

The examples are looked for beside the installed histoquant source tree (``example_images/``
next to the ``histoquant`` package, or next to this plugin's folder). Which file belongs to
which assay is read from ``example_images/study.yaml`` (the file ``histoquant batch`` reads),
falling back to a file whose name holds the assay's name. When no example file is found, a
small phantom from :mod:`histoquant.synthetic` is made instead (:func:`phantom_for`).
"""

from __future__ import annotations

import fnmatch
import logging
from pathlib import Path
from typing import Any

__all__ = ["example_images_dir", "example_file", "sample_layers", "phantom_for"]

log = logging.getLogger(__name__)

LayerData = tuple[Any, dict[str, Any], str]


def example_images_dir() -> Path | None:
    """The ``example_images`` folder of the source tree, or None when it is not there."""
    import histoquant

    here = Path(__file__).resolve()
    candidates = [Path(histoquant.__file__).resolve().parents[1] / "example_images"]
    candidates += [p / "example_images" for p in here.parents]
    for c in candidates:
        if c.is_dir():
            return c
    return None


def _study_globs(folder: Path) -> dict[str, list[str]]:
    study = folder / "study.yaml"
    if not study.exists():
        return {}
    try:
        from histoquant.batch import load_study_config

        config = load_study_config(study)
    except Exception:  # an unreadable study file must not break the sample menu
        log.warning("could not read %s", study, exc_info=True)
        return {}
    return {name: list(s.get("files") or ["*"]) for name, s in config.items()}


def example_file(assay: str, folder: Path | None = None) -> Path | None:
    """The example image for ``assay`` in ``folder`` (default :func:`example_images_dir`)."""
    from histoquant.io import is_image_file

    folder = folder or example_images_dir()
    if folder is None:
        return None
    images = sorted(p for p in folder.iterdir() if is_image_file(p))
    globs = _study_globs(folder).get(assay)
    if globs:
        for p in images:
            if any(fnmatch.fnmatch(p.name, g) for g in globs):
                return p
    keys = {assay.lower(), assay.lower().replace("-", "_"), assay.lower().replace("-", "")}
    for p in images:
        if any(k in p.name.lower() for k in keys):
            return p
    return None


def phantom_for(assay: str) -> Any:
    """A small phantom :class:`~histoquant.io.Image` for ``assay`` from histoquant.synthetic.

    Looks for ``histoquant.synthetic.example_image(assay)``; returns None when the core
    offers no phantom for that assay.
    """
    try:
        from histoquant import synthetic
    except ImportError:
        return None
    maker = getattr(synthetic, "example_image", None)
    if maker is None:
        return None
    try:
        return maker(assay)
    except Exception:
        log.warning("no phantom for %s", assay, exc_info=True)
        return None


def sample_layers(assay: str) -> list[LayerData]:
    """Layers of the example image of ``assay`` (a phantom when no example file is found)."""
    from histoquant.errors import HistoquantError
    from histoquant.io import read_image

    from ._convert import image_to_layer_data

    path = example_file(assay)
    if path is not None:
        return image_to_layer_data(read_image(path))
    image = phantom_for(assay)
    if image is None:
        raise HistoquantError(
            f"no example image for {assay!r}: example_images/ is not beside the histoquant "
            "source tree and histoquant.synthetic has no phantom for it")
    return image_to_layer_data(image)


def __getattr__(name: str) -> Any:
    """``sample_motor_neurons`` etc.: the sample-data command of each assay in the manifest."""
    if name.startswith("sample_"):
        assay = name[len("sample_"):].replace("_", "-")

        def _sample() -> list[LayerData]:
            return sample_layers(assay)

        _sample.__name__ = name
        _sample.__doc__ = f"Example image for the {assay} assay."
        globals()[name] = _sample
        return _sample
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
