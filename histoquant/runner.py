"""Run one assay over a list of files: a one-assay study run, written in the single-image layout.

``histoquant ASSAY IMAGE... -o OUTDIR`` measures its files the way ``histoquant batch`` does —
one :class:`~histoquant.batch.units.Unit` per file, measured by
:func:`~histoquant.batch.execute.measure_units` (here or in ``jobs`` processes, whole or tile
by tile, kept in ``OUTDIR/.parts`` the moment it ends so that ``resume`` skips it) — and
writes the layout of a single-assay run:

=============================  ==================================================
``summary.csv``                one row per image × region (× section)
``objects.csv``                one row per object
``<table>.csv``                each extra table the assay declares
``errors.csv``                 one row per file that failed
``labels/<image>.tif``         the label image (ImageJ TIFF, calibrated)
``qc/<image>.png``             the QC overlay, captioned
``regions/<image>.geojson``    regions the assay found (and ``.zip``, an ImageJ RoiSet)
``run.json``                   settings, versions, inputs with hashes, each image's record
=============================  ==================================================

A file that fails — on bad input or an unexpected exception — becomes a row of
``errors.csv`` and the run goes on. Inputs shared by every file (the parameters, a region
file, what the assay needs installed) are checked once before the first image, so a mistake
there stops the run at once instead of failing every image the same way.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .assays.base import AssaySpec, resolve_params
from .batch.config import QCOptions, SlideOptions
from .batch.execute import BatchProgress, measure_units
from .batch.samples import NO_LEVEL, Sample, image_names
from .batch.store import PartStore
from .batch.units import Unit, UnitOutput, failed_output, unit_key
from .io import OutputFolder
from .io.safe_paths import safe_file_name
from .output import write_bytes, write_run_json, write_tables
from .params import AssayParams
from .results import AssayResult, add_id_columns, normalize_level
from .rois import read_regions

__all__ = ["RunReport", "run_files"]

log = logging.getLogger(__name__)

#: A single image's QC overlay is looked at closely: kept at full resolution up to this side.
QC_MAX_PX = 8192


@dataclass
class RunReport:
    """What a run did: results, failures and where it wrote them."""

    outdir: Path
    results: list[AssayResult] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    n_reused: int = 0

    @property
    def ok(self) -> bool:
        """True when no file failed."""
        return not self.errors


def run_files(
    spec: AssaySpec,
    paths: Sequence[str | Path],
    outdir: str | Path,
    *,
    params: Any = None,
    pixel_size_um: float | None = None,
    regions: Any = None,
    channels: Mapping[str, str | int] | None = None,
    progress: BatchProgress | None = None,
    meta: Mapping[str, Any] | None = None,
    modality: str | None = None,
    jobs: int = 1,
    resume: bool = False,
    model: str | Path | None = None,
) -> RunReport:
    """Run ``spec`` on every file and write summary/objects/labels/qc/run.json to ``outdir``.

    Parameters
    ----------
    spec : AssaySpec
        The assay.
    paths : sequence of path
        Image files.
    outdir : path
        Output folder (created). Finished images are kept in ``outdir/.parts``.
    params : params object, dict or file, optional
        Assay parameters; defaults when omitted.
    pixel_size_um : float, optional
        Pixel size override for every file.
    regions : None, "auto", or a region file
        Regions for every file; ``None`` measures whole images.
    channels : mapping, optional
        Channel role → name or index.
    progress : BatchProgress, optional
        ``progress(done, total, message)`` once with ``done = 0`` before the first file, then
        after each file: the protocol of a study run
        (:data:`~histoquant.progress.BatchProgress`), so the CLI draws both alike.
    meta : mapping, optional
        Identifiers the images share and the assay cannot see (``animal``, ``group``,
        ``level``, ``section``, or any other name): each becomes a constant column of every
        table, beside ``image`` and ``region``.
    modality : {"brightfield", "fluorescence"}, optional
        What every file is, overriding the detection from the pixels.
    jobs : int
        Worker processes on this machine (1 measures here, in this process).
    resume : bool
        Skip files an earlier run into the same ``outdir`` measured with the same input and
        settings.
    model : path, optional
        A model file (``histoquant train``) that replaces the step of the assay its kind
        names (:attr:`AssaySpec.model_steps <histoquant.assays.base.AssaySpec.model_steps>`,
        :mod:`histoquant.learn.assay_models`); checked before any image.

    Returns
    -------
    RunReport
        The results, the files that failed (and why), and the output folder.

    Raises
    ------
    HistoquantError
        Before any image is read, when the parameters or the region file are invalid, or
        the assay misses something it needs (its ``preflight``).
    OutputPathError
        Before any image is read, when ``outdir`` holds a symbolic link leading out of it
        (say ``outdir/qc -> /elsewhere``): every file is written inside ``outdir``, under a
        name made safe from the image name.
    """
    t0 = time.perf_counter()
    p = resolve_params(spec.params_cls, params)
    if spec.preflight is not None:
        spec.preflight(p)
    if isinstance(regions, (str, Path)) and str(regions) != "auto":
        read_regions(regions)  # a bad region file fails here, once, not once per image
        regions = str(Path(regions).resolve())
    if model is not None:
        from .learn.assay_models import load_assay_model

        load_assay_model(model, spec.name)  # the same: a bad model fails here, once
        model = str(Path(model).resolve())
    meta = dict(meta or {})
    if meta.get("level") is not None:
        meta["level"] = normalize_level(meta["level"])
    outdir = Path(outdir)
    out = OutputFolder(outdir)
    out.check()
    outdir.mkdir(parents=True, exist_ok=True)
    store = PartStore(outdir)
    units, failed = _units(spec, [Path(q) for q in paths], store, p, regions=regions,
                           channels=dict(channels or {}), pixel_size_um=pixel_size_um,
                           modality=modality, meta=meta, model=model)

    def on_files(unit: Unit, part: UnitOutput) -> None:
        _write_files(out, unit.sample.image, part)

    measured = measure_units(units, failed, store, on_files=on_files, jobs=jobs,
                             resume=resume, progress=progress)
    report = RunReport(outdir, n_reused=measured.n_reused)
    records = []
    for key in _in_order(units, failed):
        rec = measured.records.get(key)
        if rec is not None:  # failed, now or at planning
            report.errors.append(rec["error"])
            records.append(rec)
            continue
        part = measured.finished.get(key)
        if part is None:  # measured by an earlier run (resume): its files are written again
            part = store.read(key, pictures=True)
            _write_files(out, part.meta.get("image", ""), part)
        report.results.append(_result(spec, part, p, meta))
        records.append(part.meta)
    write_tables(report.results, outdir, report.errors)
    report.seconds = time.perf_counter() - t0
    write_run_json(outdir, assay=spec.name, params=p.to_dict(), inputs=paths,
                   extra={"pixel_size_um_override": pixel_size_um,
                          "regions": str(regions) if regions is not None else None,
                          "channels": dict(channels or {}),
                          "meta": meta,
                          "modality_override": modality,
                          "model": model,
                          "jobs": jobs,
                          "resumed": measured.n_reused,
                          "seconds": round(report.seconds, 3),
                          "images": records,
                          "failures": [{**r["error"], **({"traceback": r["traceback"]}
                                                         if "traceback" in r else {})}
                                       for r in records if "error" in r]})
    return report


def _units(spec: AssaySpec, paths: list[Path], store: PartStore, params: AssayParams, *,
           regions: Any, channels: dict[str, Any], pixel_size_um: float | None,
           modality: str | None, meta: dict[str, Any],
           model: str | None) -> tuple[list[Unit], list[UnitOutput]]:
    """Return one unit per file (keyed like a study's), and the files that cannot be read."""
    shared = ([Path(regions)] if regions not in (None, "auto") else []) + \
        ([Path(model)] if model is not None else [])
    hashes, unreadable = store.hashes(paths + shared)
    existing = [q for q in paths if q.exists()]
    folder = Path(os.path.commonpath([q.resolve().parent for q in existing])) if existing \
        else Path.cwd()
    names = image_names([q.resolve() for q in existing], folder)
    slides, qc = SlideOptions(), QCOptions(overlay_max_px=QC_MAX_PX)
    units, failed = [], []
    for q in paths:
        sample = Sample(path=q, rel=str(q), image=names.get(q.resolve(), q.name),
                        animal=str(meta.get("animal", "")), group=str(meta.get("group", "")),
                        level=str(meta.get("level") or NO_LEVEL),
                        section=str(meta.get("section", "")))
        settings = {
            "params": params.to_dict(), "channels": channels, "pixel_size_um": pixel_size_um,
            "regions": regions if regions in (None, "auto") else
            {"file": Path(regions).name, "sha256": hashes.get(Path(regions))},
            "modality": modality, "image_name": sample.image, "section": sample.section,
            # in the QC picture's caption
            "caption": [sample.animal, sample.group, sample.level],
            "layout": "single-assay", "qc": qc.to_dict(),
            "model": None if model is None else {"file": Path(model).name,
                                                 "sha256": hashes.get(Path(model))},
        }
        key = unit_key(hashes.get(q, "unreadable"), spec.name, settings)
        unit = Unit(key=key, sample=sample, assay=spec.name, spec=spec, params=params,
                    channels=channels, regions=regions, pixel_size_um=pixel_size_um,
                    split_sections=False, slides=slides, qc=qc, modality=modality,
                    label_files=True, model=model)
        if q in unreadable or q not in hashes:
            why = unreadable.get(q, "no such file")
            failed.append(failed_output(unit, "ImageReadError",
                                        f"cannot read the file ({why})", "failed: unreadable"))
            continue
        units.append(unit)
    return units, failed


def _in_order(units: list[Unit], failed: list[UnitOutput]) -> list[str]:
    """Return every unit's key, in the order the files were given."""
    by_file = {u.sample.rel: u.key for u in units}
    by_file.update({f.meta["file"]: f.key for f in failed})
    return list(by_file.values())


def _write_files(out: OutputFolder, image: str, part: UnitOutput) -> None:
    """Write one image's QC overlay, label image and found regions where they belong."""
    if part.qc_png:
        write_bytes(part.qc_png, out.path("qc", safe_file_name(image, suffix=".png")))
    if "labels.tif" in part.files:
        write_bytes(part.files["labels.tif"],
                    out.path("labels", safe_file_name(image, suffix=".tif")))
    for suffix in (".geojson", ".zip"):
        data = part.files.get("regions" + suffix)
        if data is not None:
            write_bytes(data, out.path("regions", safe_file_name(image, suffix=suffix)))


def _result(spec: AssaySpec, part: UnitOutput, params: AssayParams,
            meta: dict[str, Any]) -> AssayResult:
    """Return a finished unit as an :class:`~histoquant.results.AssayResult` with the ids."""
    def ids(df: pd.DataFrame) -> pd.DataFrame:
        return add_id_columns(df, meta) if meta else df

    m = part.meta
    return AssayResult(assay=spec.name, image=m.get("image", ""), objects=ids(part.objects),
                       summary=ids(part.summary), params=params.to_dict(),
                       pixel_size_um=m.get("pixel_size_um"),
                       warnings=list(m.get("warnings", [])),
                       tables={k: ids(v) for k, v in part.extra.items()})
