"""A study run from start to end: plan, check, measure (resumably, in parallel), assemble."""

from __future__ import annotations

import dataclasses
import logging
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ..io.safe_paths import OutputFolder, safe_file_name, safe_name
from ..output import write_bytes, write_csv, write_excel, write_json
from .config import StudyConfig, StudyError, find_study_file, glob_match, load_study
from .execute import execute, side_process
from .report import build_report
from .samples import SHEET_NAMES, Sample, build_samples, discover, natural_key, read_sample_sheet
from .store import PartStore, decode_part
from .tables import StudyTables, assemble, extra_table, group_order
from .units import Unit, UnitOutput, unit_key

__all__ = ["BatchReport", "run_batch", "plan_study"]

log = logging.getLogger(__name__)

# Larger object tables stay out of the Excel workbook (objects.csv always has every row).
EXCEL_OBJECT_ROWS = 100_000

Progress = Callable[[int, int, str], None]


@dataclass
class BatchReport:
    """What a study run did.

    ``bool(report)`` is True when every image was measured.
    """

    outdir: Path
    n_units: int = 0
    n_run: int = 0
    n_reused: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: StudyTables | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when no image failed."""
        return not self.errors

    def __bool__(self) -> bool:
        return self.ok


@dataclass
class StudyPlan:
    """The checked plan of a study: config, samples, units, and notes for the report."""

    config: StudyConfig
    samples: dict[Path, Sample]
    units: list[Unit]
    failed: list[UnitOutput]
    notes: list[str]
    inputs: dict[str, str]
    sheet: Path | None


def _versions() -> dict[str, str]:
    from importlib import metadata

    from ..results import versions

    out = versions()
    for dist in ("openpyxl", "dask", "distributed", "tqdm", "pillow",
                 "imagecodecs"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    out["platform"] = platform.platform()
    return out


def _preflight(cfg: StudyConfig) -> None:
    """Let each assay check its needs once, before any image (cellpose weights, say).

    An assay module may define ``preflight(params)``, raising a HistoquantError (usually a
    DependencyError) that says what is missing.
    """
    import importlib

    for plan in cfg.assays.values():
        module = getattr(plan.spec.run, "__module__", None)
        try:
            fn = getattr(importlib.import_module(module), "preflight", None) if module else None
        except ImportError:
            fn = None
        if callable(fn):
            fn(plan.params)


def plan_study(
    folder: str | Path,
    outdir: str | Path,
    *,
    config: str | Path | None = None,
    samples: str | Path | None = None,
    assays: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> StudyPlan:
    """Find images, read the study file and sample sheet, and check everything.

    Raises
    ------
    StudyError
        With every problem found, before any image is measured.
    OutputPathError
        When the output folder holds a symbolic link leading out of it (checked first,
        before anything is written there).
    """
    folder = Path(folder).resolve()
    outdir = Path(outdir).resolve()
    if not folder.is_dir():
        raise StudyError([f"{folder}: not a folder"], "study")
    # A link planted in the output folder (outdir/qc -> /elsewhere) would carry writes out
    # of it; refuse the run now, before the input hashes are cached or any image measured.
    OutputFolder(outdir).check()
    cfg_path = Path(config) if config is not None else find_study_file(folder)
    if config is not None and not cfg_path.is_file():
        raise StudyError([f"no such study file: {cfg_path}"], "study")
    cfg = load_study(cfg_path, folder, assays=assays, overrides=overrides)
    _preflight(cfg)
    sheet_path = Path(samples) if samples is not None else cfg.samples
    if sheet_path is None:
        sheet_path = next((folder / n for n in SHEET_NAMES if (folder / n).is_file()), None)
    elif not sheet_path.is_file():
        raise StudyError([f"no such sample sheet: {sheet_path}"], "study")
    sheet = read_sample_sheet(sheet_path) if sheet_path is not None else None
    notes: list[str] = []
    images, others = discover(folder, skip=[outdir], notes=notes)
    if cfg.exclude:
        kept = [p for p in images
                if not any(glob_match(p.relative_to(folder).as_posix(), g) for g in cfg.exclude)]
        if len(kept) < len(images):
            notes.append(f"{len(images) - len(kept)} image(s) excluded by the study file")
        images = kept
    own = {p for p in (cfg_path, sheet_path) if p is not None}
    skipped = [p.relative_to(folder).as_posix() for p in others if p.resolve() not in
               {q.resolve() for q in own}]
    if skipped:
        notes.append(f"{len(skipped)} file(s) that are not images skipped: "
                     f"{', '.join(skipped[:8])}{' ...' if len(skipped) > 8 else ''}")
    rels = {p: p.relative_to(folder).as_posix() for p in images}
    selected = [p for p in images if any(a.selects(rels[p]) for a in cfg.assays.values())]
    smp, more = build_samples(cfg, images, sheet=sheet, sheet_path=sheet_path,
                              selected=selected)
    notes.extend(more)
    problems: list[str] = []
    store = PartStore(outdir)
    paths = sorted(smp, key=lambda p: natural_key(rels[p]))
    extra_files = sorted({s.roi for s in smp.values() if s.roi is not None}
                         | {Path(a.regions) for a in cfg.assays.values()
                            if a.regions not in (None, "auto")})
    hashes, unreadable = store.hashes(paths + list(extra_files))
    units: list[Unit] = []
    failed: list[UnitOutput] = []
    seen_sections: dict[tuple, str] = {}
    for p in paths:
        s = smp[p]
        for plan in cfg.assays.values():
            if not plan.selects(s.rel) or (s.assays is not None and plan.name not in s.assays):
                continue
            split = s.split_sections if s.split_sections is not None \
                else cfg.slides.split_sections
            if s.section and not split:
                k = (plan.name, s.animal, s.level, s.section)
                if k in seen_sections:
                    problems.append(f"{s.rel}: animal {s.animal} level {s.level} section "
                                    f"{s.section} is also {seen_sections[k]} ({plan.name})")
                seen_sections[k] = s.rel
            regions = str(s.roi) if s.roi is not None else plan.regions
            px = s.pixel_size_um if s.pixel_size_um is not None else plan.pixel_size_um
            settings = {
                "params": plan.params.to_dict(), "channels": dict(plan.channels),
                "regions": regions if regions in (None, "auto") else
                {"file": Path(regions).name, "sha256": hashes.get(Path(regions))},
                "pixel_size_um": px, "channel_names": s.channel_names, "split": bool(split),
                "slides": cfg.slides.to_dict(), "image_name": s.image,
                "section": s.section,
            }
            if plan.modality is not None:  # absent otherwise: earlier results stay reusable
                settings["modality"] = plan.modality
            key = unit_key(hashes.get(p, "unreadable"), plan.spec.name, settings)
            unit = Unit(key=key, sample=s, assay=plan.name, spec=plan.spec, params=plan.params,
                        channels=dict(plan.channels), regions=plan.regions,
                        pixel_size_um=px, split_sections=bool(split), slides=cfg.slides,
                        qc=cfg.qc, modality=plan.modality)
            if p in unreadable:
                failed.append(UnitOutput(key=key, ok=False, meta={
                    "image": s.image, "file": s.rel, "assay": plan.name, "key": key,
                    "flags": ["failed: unreadable"],
                    "error": {"image": s.image, "file": s.rel, "assay": plan.name,
                              "error": "ImageReadError",
                              "message": f"cannot read the file ({unreadable[p]})"}}))
                continue
            units.append(unit)
    for f in extra_files:
        if f in unreadable:
            problems.append(f"{f}: cannot read the region file ({unreadable[f]})")
    if not units and not failed and not problems:
        problems.append(f"no image in {folder} is read by any assay "
                        f"({', '.join(cfg.assays)}); check the 'files' globs and the sheet")
    if problems:
        raise StudyError(problems, "study")
    inputs = {smp[p].rel: hashes[p] for p in paths if p in hashes}
    return StudyPlan(config=cfg, samples=smp, units=units, failed=failed, notes=notes,
                     inputs=inputs, sheet=sheet_path)


def run_batch(
    folder: str | Path,
    outdir: str | Path,
    *,
    config: str | Path | None = None,
    samples: str | Path | None = None,
    assays: Sequence[str] = (),
    params: Any = None,
    pixel_size_um: float | None = None,
    regions: Any = None,
    channels: Mapping[str, str | int] | None = None,
    jobs: int = 1,
    scheduler: Any = None,
    resume: bool = False,
    progress: Progress | None = None,
) -> BatchReport:
    """Measure a study folder and write its tables, QC pictures, report and record.

    Parameters
    ----------
    folder : path
        The study folder, searched recursively for images.
    outdir : path
        Output folder (created). Finished images are kept in ``outdir/.parts``.
    config : path, optional
        Study file (default ``folder/study.yaml`` when there is one).
    samples : path, optional
        Sample sheet (default: the study file's ``samples``, else ``folder/samples.csv``...).
    assays : sequence of str
        Run only these assays of the study file, or these assays when there is no file.
    params, pixel_size_um, regions, channels
        Settings applied to every assay, overriding the study file (a params or region file
        path is relative to the current folder).
    jobs : int
        Worker processes on this machine.
    scheduler : str or distributed.Client, optional
        Run on a Dask distributed cluster instead (needs ``histoquant[dask]``).
    resume : bool
        Skip images already measured with the same input and settings.
    progress : callable, optional
        ``progress(done, total, message)`` once with ``done = 0`` before the first image,
        then after each image.

    Returns
    -------
    BatchReport
        ``bool(report)`` is False when any image failed.

    Raises
    ------
    StudyError
        When the study file, sample sheet or file names are wrong (nothing is run).
    OutputPathError
        When a file would be written outside ``outdir``. Every output file name made from
        a name in the data (region, image, measure, assay) is made safe first
        (:func:`~histoquant.io.safe_paths.safe_file_name`); this is raised for a symbolic
        link in ``outdir`` that leads out of it, before anything is measured when the link
        is already there at the start.
    KeyboardInterrupt
        Passed on after an interrupt; every image finished before it is kept for
        ``resume=True``.
    """
    t_start = time.perf_counter()
    outdir = Path(outdir).resolve()
    overrides: dict[str, Any] = {}
    if params is not None:
        overrides["params"] = str(Path(params).resolve()) if isinstance(params, (str, Path)) \
            else params
    if regions is not None:
        overrides["regions"] = regions if regions == "auto" else str(Path(regions).resolve())
    if channels:
        overrides["channels"] = dict(channels)
    if pixel_size_um is not None:
        overrides["pixel_size_um"] = pixel_size_um
    plan = plan_study(folder, outdir, config=config, samples=samples, assays=assays,
                      overrides=overrides)
    t_plan = time.perf_counter()
    store = PartStore(outdir)
    output = OutputFolder(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    report = BatchReport(outdir=outdir, n_units=len(plan.units) + len(plan.failed),
                         notes=list(plan.notes))
    records: dict[str, dict[str, Any]] = {}
    for f in plan.failed:
        records[f.key] = f.meta
    todo = []
    for u in plan.units:
        if resume and store.has(u.key):
            report.n_reused += 1
        else:
            todo.append(u)
    total = len(todo)
    done = 0
    finished: dict[str, UnitOutput] = {}

    def on_done(unit: Unit, out: UnitOutput) -> None:
        nonlocal done
        done += 1
        if done == 1 and (jobs > 1 or scheduler is not None):
            # The report's statistics need scipy.stats (≈ 0.7 s to import): imported here,
            # while the workers measure, it is off the serial tail of a parallel run.
            import scipy.stats  # noqa: F401
        if out.ok:
            data = store.write(out)
            # Parsed and its QC picture written now, while the workers measure, rather than
            # all at the end; only the tables and thumbnail are kept for assembling.
            part = decode_part(data, out.key, pictures=True)
            if part.qc_png:
                write_bytes(part.qc_png, _qc_path(output, unit.assay, unit.sample.image))
            finished[out.key] = dataclasses.replace(part, qc_png=None)
            report.n_run += 1
            msg = f"{unit.sample.rel} ({unit.assay}): ok"
        else:
            records[unit.key] = out.meta
            msg = f"{unit.sample.rel} ({unit.assay}): FAILED {out.meta['error']['error']}"
            log.warning("%s: %s", unit.sample.rel, out.meta["error"]["message"])
        if progress is not None:
            progress(done, total, msg)

    if resume and report.n_reused:
        report.notes.append(f"resumed: {report.n_reused} image × assay result(s) reused from "
                            "an earlier run with the same inputs and settings")
    if progress is not None and total:
        progress(0, total, "")
    try:
        execute(todo, on_done, jobs=jobs, scheduler=scheduler)
    except KeyboardInterrupt:
        log.warning("interrupted: %d of %d finished image(s) are kept in %s; run again with "
                    "--resume to go on", done, total, store.dir)
        raise
    t_run = time.perf_counter()
    _finish(plan, store, report, records, finished, jobs=jobs, scheduler=scheduler,
            resume=resume,
            timings={"planning_s": t_plan - t_start, "measuring_s": t_run - t_plan},
            t_start=t_start)
    return report


def _finish(plan: StudyPlan, store: PartStore, report: BatchReport,
            records: dict[str, dict[str, Any]], finished: dict[str, UnitOutput], *,
            jobs: int, scheduler: Any, resume: bool, timings: dict[str, float],
            t_start: float) -> None:
    """Assemble the tables from the parts and write every output."""
    t0 = time.perf_counter()
    side = side_process(jobs, scheduler)
    try:
        _assemble_outputs(plan, store, report, records, finished, jobs=jobs, scheduler=scheduler,
                          resume=resume, timings=timings, t_start=t_start, t0=t0, side=side)
    except BaseException:
        if side is not None:
            side.shutdown(wait=False, cancel_futures=True)
        raise
    if side is not None:
        side.shutdown(wait=True)


def _qc_path(out: OutputFolder, assay: str, image: str) -> Path:
    """``qc/<assay>/<image>.png``, every part made safe.

    An image name holding its folder (two files of the same name in different folders, see
    ``samples._image_names``) keeps that folder under ``qc/<assay>/``.
    """
    *folders, name = image.split("/")
    return out.path("qc", safe_name(assay), *map(safe_name, folders),
                    safe_file_name(name, suffix=".png"))


def _assemble_outputs(plan: StudyPlan, store: PartStore, report: BatchReport,
                      records: dict[str, dict[str, Any]], finished: dict[str, UnitOutput], *,
                      jobs: int, scheduler: Any, resume: bool, timings: dict[str, float],
                      t_start: float, t0: float,
                      side: Any) -> None:
    """The work of :func:`_finish`; ``side`` (a spare process or None) writes the workbook."""
    out = OutputFolder(report.outdir)
    cfg = plan.config
    parts, thumbs = [], {}
    extras: dict[tuple[str, str], list] = {}
    units_meta = []
    for u in sorted(plan.units, key=lambda u: (natural_key(u.sample.rel), u.assay)):
        rec = records.get(u.key)
        if rec is not None and "error" in rec:
            units_meta.append(rec)
            continue
        part = finished.get(u.key) or store.read(u.key, pictures=True)
        parts.append((u.sample, u.assay, part.summary, part.objects))
        for name, table in part.extra.items():
            extras.setdefault((u.assay, name), []).append((u.sample, u.assay, table))
        if part.thumb_png:
            thumbs[u.key] = part.thumb_png
        if part.qc_png:
            write_bytes(part.qc_png, _qc_path(out, u.assay, u.sample.image))
        units_meta.append(part.meta)
    units_meta.extend(f.meta for f in plan.failed)
    errors = [m["error"] for m in units_meta if "error" in m]
    report.errors = errors
    groups = group_order(list(plan.samples.values()), cfg.group_order)
    measures = {a: p.measures for a, p in cfg.assays.items() if p.measures}
    tables = assemble(parts, groups=groups, errors=errors, measures=measures)
    report.tables = tables
    for a, wanted in measures.items():
        missing = [m for m in wanted if m not in tables.animals.columns]
        if missing:
            report.notes.append(f"assays.{a}.measures: {', '.join(missing)} not reported by "
                                "the assay")
    write_csv(tables.objects, out.path("objects.csv"))
    write_csv(tables.sections, out.path("sections.csv"))
    write_csv(tables.animals, out.path("animals.csv"))
    # checked before the stale files in it are deleted, too
    tables_dir = out.path("tables")
    kept = set()
    for (assay, name), items in sorted(extras.items()):
        file_name = safe_file_name(assay, name, suffix=".csv")
        write_csv(extra_table(items, groups), out.path("tables", file_name))
        kept.add(file_name)
    if tables_dir.is_dir():
        for stale in tables_dir.glob("*.csv"):
            if stale.name not in kept:
                stale.unlink()
    err_path = out.path("errors.csv")
    if len(tables.errors):
        write_csv(tables.errors, err_path)
    elif err_path.exists():
        err_path.unlink()
    prism_dir = out.path("prism")
    written = set()
    blocks = []
    for (assay, measure, region, level), df in tables.prism.items():
        # the table and the workbook's title keep the names as they are; only the file name
        # is made safe (unchanged for ordinary names)
        name = safe_file_name(assay, measure, region, level, suffix=".csv")
        write_csv(df, out.path("prism", name))
        written.add(name)
        blocks.append((f"{assay} · {measure} · {region} · {level}", df))
    if prism_dir.is_dir():
        for stale in prism_dir.glob("*.csv"):
            if stale.name not in written:
                stale.unlink()
    objects_sheet = tables.objects
    if len(objects_sheet) > EXCEL_OBJECT_ROWS:
        # openpyxl needs minutes and GBs for a million rows; objects.csv holds them all
        objects_sheet = pd.DataFrame({"note": [f"{len(tables.objects)} objects: see "
                                               "objects.csv"]})
    sheets = {"sections": tables.sections, "animals": tables.animals,
              "objects": objects_sheet}
    if len(tables.errors):
        sheets["errors"] = tables.errors
    if side is not None:
        excel = side.submit(write_excel, sheets, out.path("study.xlsx"),
                            blocks={"prism": blocks})
    else:
        write_excel(sheets, out.path("study.xlsx"), blocks={"prism": blocks})
        excel = None
    from .. import __version__

    n_failed = len(errors)
    run_info = {
        "histoquant": __version__,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "study folder": str(cfg.folder),
        "images × assays": report.n_units,
        "measured now": report.n_run,
        "reused (resume)": report.n_reused,
        "failed": n_failed,
        "workers": f"Dask {scheduler}" if scheduler is not None else f"{jobs} process(es)",
    }
    title = cfg.title or f"histoquant study: {cfg.folder.name}"
    html = build_report(tables, units_meta, thumbs, title=title, run_info=run_info,
                        measures=measures, notes=report.notes)
    with_path = out.path("report.html")
    write_bytes(html.encode("utf-8"), with_path)
    if excel is not None:
        excel.result()  # raises here what the workbook's writing raised
    timings["assembling_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start
    report.seconds = timings["total_s"]
    record = {
        "histoquant": __version__,
        "status": "complete",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": sys.argv,
        "study_folder": str(cfg.folder),
        "study_file": _file_record(cfg.path),
        "sample_sheet": _file_record(plan.sheet),
        "study_config": cfg.raw,
        "assays": {a: {"params": p.params.to_dict(), "params_class": type(p.params).__name__,
                       "files": list(p.files), "regions": p.regions,
                       "channels": dict(p.channels), "pixel_size_um": p.pixel_size_um,
                       "measures": list(p.measures)} for a, p in cfg.assays.items()},
        "slides": cfg.slides.to_dict(),
        "qc": cfg.qc.to_dict(),
        "execution": {"jobs": jobs, "scheduler": str(scheduler) if scheduler is not None
                      else None, "resume": resume},
        "versions": _versions(),
        "inputs": [{"file": k, "sha256": v} for k, v in sorted(
            plan.inputs.items(), key=lambda kv: natural_key(kv[0]))],
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "units": [{k: m.get(k) for k in ("file", "image", "assay", "key", "seconds", "mode",
                                          "n_sections", "n_tiles", "saturated_pct", "flags",
                                          "pixel_size_um", "shape_yx")}
                  for m in units_meta],
        "failures": [{**m["error"], **({"traceback": m["traceback"]} if "traceback" in m
                                       else {})} for m in units_meta if "error" in m],
        "notes": report.notes,
        "outputs": ["objects.csv", "sections.csv", "animals.csv", "prism/", "study.xlsx",
                    "qc/", "report.html"] + (["errors.csv"] if n_failed else []),
    }
    write_json(record, out.path("run.json"))


def _file_record(path: Path | None) -> dict[str, Any] | None:
    from ..output import file_sha256

    if path is None:
        return None
    try:
        return {"path": str(path), "sha256": file_sha256(path)}
    except OSError:
        return {"path": str(path), "sha256": None}
