"""A study run from start to end: plan → execute → assemble → write.

- plan: find the images, read the study file and the sample sheet, check everything
  (:mod:`histoquant.batch.plan`);
- execute: measure the units, resumably, here or in parallel (:mod:`histoquant.batch.execute`);
- assemble: the study's tables from the finished units (:mod:`histoquant.batch.assemble`);
- write: one writer per output (:mod:`histoquant.batch.writers`).

:func:`run_batch` only calls them in order and times them.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io.safe_paths import OutputFolder
from .assemble import assemble_study
from .execute import BatchProgress, Measured, measure_units, side_process
from .plan import StudyPlan, plan_study, study_overrides
from .store import PartStore
from .tables import StudyTables
from .units import Unit, UnitOutput
from .writers import (
    report_run_info,
    run_record,
    write_csv_tables,
    write_prism,
    write_prism_project,
    write_qc_picture,
    write_report,
    write_run_record,
    write_workbook,
)

__all__ = ["BatchProgress", "BatchReport", "StudyPlan", "run_batch", "plan_study"]


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
        """Return :attr:`ok`: True when no image failed."""
        return self.ok


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
    progress: BatchProgress | None = None,
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
    progress : BatchProgress, optional
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
    overrides = study_overrides(params=params, regions=regions, channels=channels,
                                pixel_size_um=pixel_size_um)
    plan = plan_study(folder, outdir, config=config, samples=samples, assays=assays,
                      overrides=overrides)
    t_plan = time.perf_counter()
    store = PartStore(outdir)
    out = OutputFolder(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    report = BatchReport(outdir=outdir, n_units=len(plan.units) + len(plan.failed),
                         notes=list(plan.notes))
    def on_files(unit: Unit, part: UnitOutput) -> None:
        if part.qc_png:
            write_qc_picture(out, unit.assay, unit.sample.image, part.qc_png)

    measured = measure_units(plan.units, plan.failed, store, on_files=on_files, jobs=jobs,
                             scheduler=scheduler, resume=resume, progress=progress)
    report.n_run, report.n_reused = measured.n_run, measured.n_reused
    if resume and report.n_reused:
        report.notes.append(f"resumed: {report.n_reused} image × assay result(s) reused from "
                            "an earlier run with the same inputs and settings")
    t_run = time.perf_counter()
    _finish(plan, store, out, report, measured, jobs=jobs, scheduler=scheduler, resume=resume,
            timings={"planning_s": t_plan - t_start, "measuring_s": t_run - t_plan},
            t_start=t_start)
    return report


def _finish(plan: StudyPlan, store: PartStore, out: OutputFolder, report: BatchReport,
            measured: Measured, *, jobs: int, scheduler: Any, resume: bool,
            timings: dict[str, float], t_start: float) -> None:
    """Assemble the tables from the parts and write every output, ``run.json`` last.

    A spare process (:func:`~histoquant.batch.execute.side_process`, parallel runs only)
    writes the workbook while this one writes the report; it is shut down on any error.
    """
    t0 = time.perf_counter()
    side = side_process(jobs, scheduler)
    try:
        study = assemble_study(
            plan, store, measured.records, measured.finished,
            on_picture=lambda u, png: write_qc_picture(out, u.assay, u.sample.image, png))
        report.errors = study.errors
        report.tables = study.tables
        report.notes.extend(study.notes)
        write_csv_tables(out, study.tables, study.extras, study.groups)
        prism = write_prism(out, study.tables)
        endpoints = write_prism_project(out, study.tables,
                                        title=plan.config.title or plan.config.folder.name)
        excel = write_workbook(out, study.tables, prism, endpoints=endpoints, side=side)
        run_info = report_run_info(plan, n_units=report.n_units, n_run=report.n_run,
                                   n_reused=report.n_reused, n_failed=len(report.errors),
                                   jobs=jobs, scheduler=scheduler)
        write_report(out, plan, study.tables, study.units, study.thumbnails,
                     run_info=run_info, measures=study.measures, notes=report.notes)
        if excel is not None:
            excel.result()  # raises here what the workbook's writing raised
        timings["assembling_s"] = time.perf_counter() - t0
        timings["total_s"] = time.perf_counter() - t_start
        report.seconds = timings["total_s"]
        write_run_record(out, run_record(plan, study.units, notes=report.notes, jobs=jobs,
                                         scheduler=scheduler, resume=resume, timings=timings))
    except BaseException:
        if side is not None:
            side.shutdown(wait=False, cancel_futures=True)
        raise
    if side is not None:
        side.shutdown(wait=True)
