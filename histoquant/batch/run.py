"""A study run from start to end: plan → execute → assemble → write.

- plan: find the images, read the study file and the sample sheet, check everything
  (:mod:`histoquant.batch.plan`);
- execute: measure the units, resumably, here or in parallel (:mod:`histoquant.batch.execute`);
- assemble: the study's tables from the finished units (:mod:`histoquant.batch.assemble`);
- write: one writer per output (:mod:`histoquant.batch.writers`).

:func:`run_batch` only calls them in order and times them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io.safe_paths import OutputFolder
from .assemble import assemble_study
from .blinding import Blinding, plan_args, refuse_plain_run
from .config import StudyError
from .endpoints import endpoint_animal_values, endpoint_observations
from .exclusions import exclude_sections
from .execute import BatchProgress, Measured, measure_units, side_process
from .plan import StudyPlan, plan_study, study_overrides
from .statistics import study_statistics
from .store import PartStore
from .tables import StudyTables
from .thresholds import apply_study_thresholds, withheld_sections
from .units import Unit, UnitOutput
from .writers import (
    report_run_info,
    run_record,
    write_csv_tables,
    write_methods,
    write_prism,
    write_prism_project,
    write_qc_picture,
    write_report,
    write_run_record,
    write_statistics,
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
    blind: bool = False,
    key_out: str | Path | None = None,
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
    blind : bool
        Code animal and image names and withhold the groups in every output, the part
        store and the log (:mod:`histoquant.batch.blinding`); :func:`~histoquant.batch.
        blinding.unblind` adds them back. Resuming keeps the codes.
    key_out : path, optional
        Where a blinded run writes its key (default ``OUTDIR.blinding-key.csv`` beside
        ``outdir``; never inside it).

    Returns
    -------
    BatchReport
        ``bool(report)`` is False when any image failed.

    Raises
    ------
    StudyError
        When the study file, sample sheet or file names are wrong (nothing is run).
    BlindingError
        When a blinded run's key would be inside ``outdir`` or is another run's, or when a
        plain run is pointed at blinded results (and the reverse).
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
    blinding = Blinding.start(outdir, key_out) if blind else None
    if blinding is None:
        refuse_plain_run(outdir)
    plan = plan_study(folder, outdir, config=config, samples=samples, assays=assays,
                      overrides=overrides,
                      hash_store=blinding.hash_cache if blinding is not None else None)
    _check_manual_exclusions(plan)
    store = PartStore(outdir)
    out = OutputFolder(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    aliases = None
    real = plan
    if blinding is not None:
        plan = blinding.code_plan(real)  # draws the codes: names are rewritten from here on
        blinding.write_key(real)
        blinding.write_info(plan_args(folder, config, samples, assays, overrides))
        store = blinding.store()
        aliases = {code: [s.image] for code, s in blinding.real.items()}
    t_plan = time.perf_counter()
    with blinding.quiet_names() if blinding is not None else contextlib.nullcontext():
        # first pass: a study-wide threshold is set before any section is measured with it,
        # on the study's own plan, so that a blinded run still finds the chosen group's
        # sections; its units are coded again, with the threshold they now carry
        apply_study_thresholds(real, store, jobs=jobs, scheduler=scheduler, resume=resume)
        if blinding is not None and real.thresholds:
            plan = blinding.code_plan(real, fresh=False)
            plan.thresholds = {a: withheld_sections(t) for a, t in real.thresholds.items()}
    t_thresholds = time.perf_counter()
    report = BatchReport(outdir=outdir, n_units=len(plan.units) + len(plan.failed),
                         notes=list(plan.notes))
    def on_files(unit: Unit, part: UnitOutput) -> None:
        if part.qc_png:
            write_qc_picture(out, unit.assay, unit.sample.image, part.qc_png)

    with blinding.quiet_names() if blinding is not None else contextlib.nullcontext():
        measured = measure_units(plan.units, plan.failed, store, on_files=on_files,
                                 jobs=jobs, scheduler=scheduler, resume=resume,
                                 progress=progress)
        if blinding is not None:  # an error message may quote a file's path
            measured.records = {k: blinding.scrub.deep(v) for k, v in measured.records.items()}
        report.n_run, report.n_reused = measured.n_run, measured.n_reused
        if resume and report.n_reused:
            report.notes.append(f"resumed: {report.n_reused} image × assay result(s) reused "
                                "from an earlier run with the same inputs and settings")
        t_run = time.perf_counter()
        _finish(plan, store, out, report, measured, jobs=jobs, scheduler=scheduler,
                resume=resume,
                timings={"planning_s": t_plan - t_start,
                         **({"study_thresholds_s": t_thresholds - t_plan} if plan.thresholds
                            else {}),
                         "measuring_s": t_run - t_thresholds},
                t_start=t_start, aliases=aliases,
                scrub=blinding.scrub if blinding is not None else None,
                blinding="blinded" if blinding is not None else None)
    return report


def _check_manual_exclusions(plan: StudyPlan) -> None:
    """Refuse a manual exclusion whose image part names no image (a typo), before measuring.

    A blinded run's codes are not known to the study file, so a name that looks like a code
    (``S`` and six characters) is let through.
    """
    import fnmatch
    import re

    names = [s.image for s in plan.samples.values()]
    bad = [p for r in plan.config.exclusions if r.rule == "sections" for p in r.sections
           if not re.fullmatch(r"S[0-9A-Z]{6}(#.*)?", p)
           and not any(fnmatch.fnmatchcase(n, p.split("#", 1)[0]) for n in names)]
    if bad:
        raise StudyError([f"exclusions: {p!r} names no image of the study" for p in bad],
                         "study")


def _finish(plan: StudyPlan, store: PartStore, out: OutputFolder, report: BatchReport,
            measured: Measured, *, jobs: int, scheduler: Any, resume: bool,
            timings: dict[str, float], t_start: float,
            aliases: Mapping[str, Sequence[str]] | None = None,
            scrub: Callable[[str], str] | None = None,
            blinding: str | None = None) -> None:
    """Assemble the tables from the parts and write every output, ``run.json`` last.

    The study file's exclusions are marked right after assembling, so every table and
    output after it sees them. ``aliases`` (image → its code or real name) lets a manual
    exclusion name an image either way; ``scrub`` codes the names in the exclusion notes
    of a blinded run. :func:`~histoquant.batch.blinding.unblind` calls this too, with the
    real plan and a store that reads the coded parts back under real names. ``blinding`` is
    ``"blinded"`` for a blinded run (no statistics: there are no groups to compare),
    ``"unblinded"`` for unblind's outputs, None otherwise; the methods paragraph says which.

    The endpoints' statistics (:mod:`histoquant.batch.statistics`) go to
    ``statistics.csv`` and the report; ``methods.md`` is written from the run's record.

    A spare process (:func:`~histoquant.batch.execute.side_process`, parallel runs only)
    writes the workbook while this one writes the report; it is shut down on any error.
    """
    t0 = time.perf_counter()
    side = side_process(jobs, scheduler)
    try:
        study = assemble_study(
            plan, store, measured.records, measured.finished,
            on_picture=lambda u, png: write_qc_picture(out, u.assay, u.sample.image, png))
        excluded = exclude_sections(study, plan.config.exclusions, aliases=aliases,
                                    scrub=scrub)
        report.errors = study.errors
        report.tables = study.tables
        report.notes.extend(study.notes)
        write_csv_tables(out, study.tables, study.extras, study.groups)
        prism = write_prism(out, study.tables)
        # the endpoints' tables, once: the Prism project and the statistics read the same
        observations = endpoint_observations(study.tables.sections)
        values = endpoint_animal_values(observations)
        endpoints = write_prism_project(out, study.tables, values=values,
                                        title=plan.config.title or plan.config.folder.name)
        excel = write_workbook(out, study.tables, prism, endpoints=endpoints, side=side)
        run_info = report_run_info(plan, n_units=report.n_units, n_run=report.n_run,
                                   n_reused=report.n_reused, n_failed=len(report.errors),
                                   jobs=jobs, scheduler=scheduler)
        statistics = None
        if blinding != "blinded":
            statistics = study_statistics(observations, values, study.groups)
            write_statistics(out, statistics)
        write_report(out, plan, study.tables, study.units, study.thumbnails,
                     run_info=run_info, measures=study.measures, notes=report.notes,
                     statistics=statistics)
        if excel is not None:
            excel.result()  # raises here what the workbook's writing raised
        timings["assembling_s"] = time.perf_counter() - t0
        timings["total_s"] = time.perf_counter() - t_start
        report.seconds = timings["total_s"]
        record = run_record(plan, study.units, notes=report.notes, jobs=jobs,
                            scheduler=scheduler, resume=resume, timings=timings)
        record["exclusions"] = excluded
        if statistics is not None:
            record["outputs"].append("statistics.csv")
        record["outputs"].append("methods.md")
        write_methods(out, record, study.tables.sections, study.groups,
                      statistics=statistics, blinding=blinding)
        write_run_record(out, record)
    except BaseException:
        if side is not None:
            side.shutdown(wait=False, cancel_futures=True)
        raise
    if side is not None:
        side.shutdown(wait=True)
