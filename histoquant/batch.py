"""Folder batch: every image in a folder through one or more assays.

A ``study.yaml`` in the folder (or given with ``-c``) says which assay reads which files::

    assays:
      motor-neurons:
        files: ["nissl_*.tif"]        # glob(s) relative to the folder
        regions: null                 # null (whole image), auto, or a region file
        channels: {}                  # role: name or index
        params: {min_soma_area_um2: 300}

Each assay's results go to ``OUTDIR/<assay>/`` in the common layout, and ``OUTDIR/summary.csv``
joins every summary with an ``assay`` column.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .assays.base import get_assay
from .errors import ParamsError
from .io import is_image_file
from .output import write_csv
from .params import load_params_file
from .runner import run_files

__all__ = ["run_batch", "find_images", "load_study_config"]

_STUDY_KEYS = {"files", "regions", "channels", "params", "pixel_size_um"}


def find_images(folder: str | Path, patterns: Sequence[str] = ("*",),
                recursive: bool = True) -> list[Path]:
    """Image files in ``folder`` matching any glob pattern, sorted by path."""
    folder = Path(folder)
    found: set[Path] = set()
    for pattern in patterns:
        it = folder.rglob(pattern) if recursive else folder.glob(pattern)
        found.update(p for p in it if is_image_file(p) and not
                     any(part.endswith((".zarr",)) for part in p.relative_to(folder).parts[:-1]))
    return sorted(found)


def load_study_config(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a study YAML; returns ``{assay: {files, regions, channels, params, ...}}``."""
    data = load_params_file(path)
    assays = data.get("assays")
    if not isinstance(assays, Mapping) or not assays:
        raise ParamsError(f"{path}: needs an 'assays' mapping of assay name to settings")
    out = {}
    for name, settings in assays.items():
        settings = dict(settings or {})
        unknown = sorted(set(settings) - _STUDY_KEYS)
        if unknown:
            raise ParamsError(f"{path}: assay {name!r} has unknown key(s) {unknown}; valid: "
                              f"{sorted(_STUDY_KEYS)}")
        get_assay(name)
        out[name] = settings
    return out


def run_batch(
    folder: str | Path,
    outdir: str | Path,
    *,
    assays: Sequence[str] = (),
    config: str | Path | None = None,
    params: Any = None,
    pixel_size_um: float | None = None,
    regions: Any = None,
    channels: Mapping[str, str | int] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> bool:
    """Run assays over a folder; returns True when every image succeeded.

    With ``assays`` given, each assay runs on every image in the folder with the other
    arguments. Otherwise ``config`` (default ``folder/study.yaml``) says what to run.
    """
    folder, outdir = Path(folder), Path(outdir)
    if not folder.is_dir():
        raise ParamsError(f"{folder}: not a folder")
    if assays:
        plan = {a: {"files": ["*"], "params": params, "regions": regions,
                    "channels": channels or {}, "pixel_size_um": pixel_size_um}
                for a in assays}
    else:
        config = Path(config) if config else folder / "study.yaml"
        if not config.exists():
            raise ParamsError(f"{folder}: no study.yaml found; name the assay with --assay "
                              "NAME or give a study file with -c")
        plan = load_study_config(config)
    summaries = []
    ok = True
    for name, settings in plan.items():
        spec = get_assay(name)
        files = find_images(folder, settings.get("files") or ["*"])
        if not files:
            continue
        report = run_files(
            spec, files, outdir / name, params=settings.get("params"),
            pixel_size_um=settings.get("pixel_size_um", pixel_size_um),
            regions=settings.get("regions", regions),
            channels={**(channels or {}), **(settings.get("channels") or {})},
            progress=progress)
        ok &= report.ok
        if report.results:
            summaries.append(pd.concat([r.summary for r in report.results],
                                       ignore_index=True).assign(assay=name))
    if summaries:
        write_csv(pd.concat(summaries, ignore_index=True), outdir / "summary.csv")
    return ok
