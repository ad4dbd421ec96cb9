"""Sample data: the example image of each assay from ``example_images/``, with its pixel size.

The examples are looked for beside the installed histoquant source tree (``example_images/``
next to the ``histoquant`` package, or next to this plugin's folder). Which file belongs to
which assay is read from ``example_images/study.yaml`` (the file ``histoquant batch`` reads),
falling back to a file whose name holds the assay's name; region files written beside it
(``<stem>_grey_matter.geojson``) open as a Shapes layer. When no example file is found, the
assay's phantom from :mod:`histoquant.synthetic` is written instead (:func:`phantom_for`).
"""

from __future__ import annotations

import fnmatch
import logging
from pathlib import Path
from typing import Any

__all__ = ["example_images_dir", "example_file", "sample_layers", "phantom_for",
           "region_files_for", "sample_anatomy", "sample_evans_blue", "sample_gfp_cells",
           "sample_motor_neurons", "sample_vasculature"]

log = logging.getLogger(__name__)

LayerData = tuple[Any, dict[str, Any], str]


def example_images_dir() -> Path | None:
    """Return the ``example_images`` folder of the source tree, or None when it is not there."""
    import histoquant

    here = Path(__file__).resolve()
    candidates = [Path(histoquant.__file__).resolve().parents[1] / "example_images"]
    candidates += [p / "example_images" for p in here.parents]
    for c in candidates:
        if c.is_dir():
            return c
    return None


def _study_globs(folder: Path) -> dict[str, list[str]]:
    """``{assay: [file globs]}`` from the folder's study.yaml (empty when there is none).

    Read through histoquant's own study reader; when that refuses the file (an assay this
    histoquant does not have yet, say), the globs are taken from the YAML as written, since the
    sample menu only needs to know which file is whose.
    """
    study = folder / "study.yaml"
    if not study.exists():
        return {}
    try:
        from histoquant.batch import load_study_config

        config = load_study_config(study)
        return {name: list(s.get("files") or ["*"]) for name, s in config.items()}
    except Exception:
        log.info("histoquant refused %s; reading its file globs as written", study,
                 exc_info=True)
    try:
        import yaml

        data = yaml.safe_load(study.read_text(encoding="utf-8")) or {}
        assays = data.get("assays") or {}
        out = {}
        for name, settings in assays.items():
            files = (settings or {}).get("files") or ["*"]
            out[str(name)] = [files] if isinstance(files, str) else [str(f) for f in files]
        return out
    except Exception:  # an unreadable study file must not break the sample menu
        log.warning("could not read %s", study, exc_info=True)
        return {}


def example_file(assay: str, folder: Path | None = None) -> Path | None:
    """Return the example image for ``assay`` in ``folder`` (default :func:`example_images_dir`)."""
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
    keys = {assay.lower(), assay.lower().replace("-", "_"), assay.lower().replace("-", ""),
            *_PHANTOM_MODULES.get(assay, ())}
    for p in images:
        if any(k in p.name.lower() for k in keys):
            return p
    return None


#: Phantom modules of histoquant.synthetic whose name is not the assay's.
_PHANTOM_MODULES = {"vasculature": ("vessels",), "anatomy": ("cord",),
                    "gfp-cells": ("gfp",), "motor-neurons": ("nissl", "motor_neurons")}
#: Phantom modules without ``make_example``: the function that renders one (returning an
#: Image or an object with ``.image``) and its arguments. A whole cord section at 5 µm/px is
#: what the anatomy widget is for.
_PHANTOM_RENDERERS = {"cord": ("cord_section", {"pixel_size_um": 5.0, "seed": 1}),
                      "nissl": ("nissl_phantom", {"seed": 101})}


def _cache_dir() -> Path:
    import tempfile

    path = Path(tempfile.gettempdir()) / "histoquant-napari-samples"
    path.mkdir(parents=True, exist_ok=True)
    return path


def phantom_for(assay: str) -> Path | None:
    """Write the example phantom of ``assay`` with histoquant.synthetic and return its path.

    Uses the ``make_example(path)`` function of the assay's phantom module
    (``histoquant.synthetic.<assay>`` or the module named for it); None when there is none.
    Files are cached in the temporary folder, so a second open is instant.
    """
    import importlib

    base = assay.replace("-", "_")
    for mod in (base, *_PHANTOM_MODULES.get(assay, ())):
        try:
            module = importlib.import_module(f"histoquant.synthetic.{mod}")
        except ImportError:
            continue
        maker = getattr(module, "make_example", None)
        if maker is None and mod in _PHANTOM_RENDERERS:
            maker = _renderer(module, *_PHANTOM_RENDERERS[mod])
        if maker is None:
            continue
        folder = _cache_dir() / base
        existing = sorted(p for p in folder.glob("*example*") if _is_image(p)) \
            if folder.exists() else []
        if existing:
            return existing[0]
        target = folder / f"{base}_example.ome.tif"
        try:
            out = maker(target)
        except Exception:
            log.warning("could not make the %s phantom", assay, exc_info=True)
            return None
        if isinstance(out, dict) and "image" in out:
            return Path(out["image"])
        if isinstance(out, (list, tuple)) and out:  # (image path, truth path, ...)
            out = out[0]
        return Path(out) if out is not None else target
    return None


def _renderer(module: Any, func: str, kwargs: dict[str, Any]) -> Any:
    render = getattr(module, func, None)
    if render is None:
        return None

    def make(path: Path) -> Path:
        from histoquant.io import write_ome_tiff

        out = render(**kwargs)
        if isinstance(out, (list, tuple)):  # (image, truth)
            out = out[0]
        image = getattr(out, "image", out)
        image.metadata["name"] = path.name.split(".")[0]
        return write_ome_tiff(image, path)

    return make


def _is_image(p: Path) -> bool:
    from histoquant.io import is_image_file

    return is_image_file(p)


def region_files_for(image_path: Path) -> list[Path]:
    """Region files written beside an example image: ``<stem>_*.geojson`` / ``.zip``."""
    name = image_path.name
    lowered = name.lower()
    stem = next((name[: -len(s)] for s in (".ome.tiff", ".ome.tif", ".ome.zarr")
                 if lowered.endswith(s)), image_path.stem)
    out = []
    for p in sorted(image_path.parent.glob(f"{stem}_*")):
        if p.suffix.lower() in (".geojson", ".zip") and p.is_file():
            out.append(p)
    return out


def sample_layers(assay: str) -> list[LayerData]:
    """Layers of the example image of ``assay`` and of the region files that come with it.

    The example comes from ``example_images/``, else from the assay's phantom (see
    :func:`phantom_for`).
    """
    from types import SimpleNamespace

    from histoquant.errors import HistoquantError
    from histoquant.io import read_image

    from ._convert import image_to_layer_data
    from ._reader import read_region_layers

    path = example_file(assay) or phantom_for(assay)
    if path is None:
        raise HistoquantError(
            f"no example image for {assay!r}: example_images/ is not beside the histoquant "
            "source tree and histoquant.synthetic has no phantom for it")
    image = read_image(path)
    layers = image_to_layer_data(image)
    px = image.pixel_size_um or 1.0
    grid = SimpleNamespace(scale=(px, px), translate=(0.0, 0.0),
                           units=("micrometer", "micrometer") if image.pixel_size_um else None)
    for regions in region_files_for(Path(path)):
        try:
            layers += read_region_layers(regions, reference=grid)
        except HistoquantError:
            log.warning("could not read %s", regions, exc_info=True)
    return layers


# The manifest's sample-data commands, one per assay, written out (not made on demand by a module
# __getattr__) so that the names napari.yaml lists can be found in the code.


def sample_motor_neurons() -> list[LayerData]:
    """Make the example image for the motor-neurons assay (File ▸ Open Sample)."""
    return sample_layers("motor-neurons")


def sample_evans_blue() -> list[LayerData]:
    """Make the example image for the evans-blue assay (File ▸ Open Sample)."""
    return sample_layers("evans-blue")


def sample_vasculature() -> list[LayerData]:
    """Make the example image for the vasculature assay (File ▸ Open Sample)."""
    return sample_layers("vasculature")


def sample_gfp_cells() -> list[LayerData]:
    """Make the example image for the gfp-cells assay (File ▸ Open Sample)."""
    return sample_layers("gfp-cells")


def sample_anatomy() -> list[LayerData]:
    """Make the example whole section for the anatomy (File ▸ Open Sample)."""
    return sample_layers("anatomy")
