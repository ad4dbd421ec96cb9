"""The files of a study run, one writer per output.

===============================  ======================================================
writer                           writes
===============================  ======================================================
:func:`write_qc_picture`         ``qc/<assay>/<image>.png``
:func:`write_csv_tables`         ``objects.csv``, ``sections.csv``, ``long.csv``,
                                 ``sections_long.csv``, ``columns.csv`` (unit and
                                 meaning of every measure), ``tables/<assay>__animals.csv``,
                                 ``tables/<assay>__sections.csv``,
                                 ``tables/<assay>__<name>.csv`` and ``errors.csv``
:func:`write_prism`              ``prism/<assay>__<measure>__<region>__<level>.csv``
:func:`write_prism_project`      ``prism.pzfx`` (one Prism table per endpoint)
:func:`write_workbook`           ``study.xlsx``
:func:`write_report`             ``report.html``
:func:`write_run_record`         ``run.json``
===============================  ======================================================

Each takes the :class:`~histoquant.io.safe_paths.OutputFolder` and what it writes; none
computes a table (that is :mod:`histoquant.batch.assemble`'s work). Every file name made from a
name in the data goes through :func:`~histoquant.io.safe_paths.safe_file_name` and every file
is written atomically. A folder a writer owns (``tables/``, ``prism/``) loses the CSV files an
earlier run left there and this one did not write, so the folder always matches ``run.json``.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pandas as pd

from ..assays.base import get_assay
from ..assays.contract import data_dictionary
from ..io.safe_paths import OutputFolder, safe_file_name, safe_name
from ..output import write_bytes, write_csv, write_excel, write_json
from .endpoints import endpoint_animal_values, endpoint_observations, study_endpoints
from .pzfx import write_pzfx
from .report import build_report
from .samples import Sample, natural_key
from .tables import StudyTables, assay_tables, endpoint_prism_tables, extra_table

if TYPE_CHECKING:
    from .plan import StudyPlan

__all__ = ["EXCEL_OBJECT_ROWS", "PrismBlocks", "qc_path", "write_qc_picture",
           "write_csv_tables", "write_prism", "write_prism_project", "write_workbook",
           "report_run_info", "write_report", "write_statistics", "write_methods",
           "run_record", "write_run_record"]

# Characters Excel refuses in a sheet name.
_EXCEL_FORBIDDEN = frozenset("[]:*?/\\")

# Larger object tables stay out of the Excel workbook (objects.csv always has every row).
EXCEL_OBJECT_ROWS = 100_000

#: The Prism tables as the workbook's ``prism`` sheet shows them: (title, table) pairs.
PrismBlocks = list[tuple[str, pd.DataFrame]]

#: One study-wide extra table's pieces: (sample, assay, table) per image.
ExtraPieces = list[tuple[Sample, str, pd.DataFrame]]


def qc_path(out: OutputFolder, assay: str, image: str) -> Path:
    """``qc/<assay>/<image>.png``, every part made safe.

    An image name holding its folder (two files of the same name in different folders, see
    ``samples.image_names``) keeps that folder under ``qc/<assay>/``.

    Parameters
    ----------
    out : OutputFolder
        The run's output folder.
    assay : str
        Assay name.
    image : str
        The image's name in the study (``Sample.image``).

    Returns
    -------
    Path
        Inside ``out`` (checked).
    """
    *folders, name = image.split("/")
    return out.path("qc", safe_name(assay), *map(safe_name, folders),
                    safe_file_name(name, suffix=".png"))


def write_qc_picture(out: OutputFolder, assay: str, image: str, png: bytes) -> Path:
    """Write one image's QC overlay (PNG bytes made by the worker) to :func:`qc_path`.

    Parameters
    ----------
    out : OutputFolder
        The run's output folder.
    assay, image : str
        Which image × assay it shows.
    png : bytes
        The encoded picture, written as it is.

    Returns
    -------
    Path
        The file written.
    """
    return write_bytes(png, qc_path(out, assay, image))


def _clear_stale(folder: Path, kept: set[str]) -> None:
    """Delete the CSV files in ``folder`` that this run did not write."""
    if folder.is_dir():
        for stale in folder.glob("*.csv"):
            if stale.name not in kept:
                stale.unlink()


#: Tables per assay, as ``tables/<assay>__<kind>.csv``; no extra table may take these names.
ASSAY_TABLE_KINDS = ("animals", "sections")


def write_csv_tables(out: OutputFolder, tables: StudyTables,
                     extras: Mapping[tuple[str, str], ExtraPieces],
                     groups: Sequence[str]) -> None:
    """Write the study's CSV tables.

    ``objects.csv`` and ``sections.csv`` (every assay's rows); ``long.csv`` and
    ``sections_long.csv``, the tidy tables (one row per animal, or per section × region, ×
    measure, with its unit: :func:`~histoquant.batch.tables.long_table`); per assay
    ``tables/<assay>__animals.csv`` and ``tables/<assay>__sections.csv`` holding only that
    assay's columns; ``columns.csv``, the data dictionary of the measures (unit, meaning, how
    sections combine per animal, from each assay's declaration); each assay's extra tables
    as ``tables/<assay>__<name>.csv``; ``errors.csv`` when an image failed (an earlier run's
    ``errors.csv`` is deleted when none did, and so is the wide ``animals.csv`` of earlier
    versions, which the per-assay tables and ``long.csv`` replace).

    Parameters
    ----------
    out : OutputFolder
        The run's output folder.
    tables : StudyTables
        The assembled tables.
    extras : mapping of (assay, name) to list of (sample, assay, table)
        The per-image pieces of every extra table, joined here with the study's metadata.
    groups : sequence of str
        Group order, for sorting the extra tables as the others are.

    Raises
    ------
    ValueError
        When an assay's extra table is named ``animals`` or ``sections`` (it would overwrite
        the assay's own table).
    """
    write_csv(tables.objects, out.path("objects.csv"))
    write_csv(tables.sections, out.path("sections.csv"))
    write_csv(tables.long, out.path("long.csv"))
    write_csv(tables.sections_long, out.path("sections_long.csv"))
    old_wide = out.path("animals.csv")
    if old_wide.exists():
        old_wide.unlink()
    assays = sorted(set(tables.sections["assay"])) if "assay" in tables.sections else []
    write_csv(pd.DataFrame(data_dictionary([get_assay(a) for a in assays]),
                           columns=["assay", "column", "unit", "meaning", "per_animal",
                                    "over_tiles"]), out.path("columns.csv"))
    # checked before the stale files in it are deleted, too
    tables_dir = out.path("tables")
    kept = set()
    for kind, table in (("animals", tables.animals), ("sections", tables.sections)):
        for assay, df in assay_tables(table).items():
            file_name = safe_file_name(assay, kind, suffix=".csv")
            write_csv(df, out.path("tables", file_name))
            kept.add(file_name)
    for (assay, name), items in sorted(extras.items()):
        if name in ASSAY_TABLE_KINDS:
            raise ValueError(f"assay {assay!r}: an extra table may not be named {name!r} "
                             f"(tables/{assay}__{name}.csv is the assay's own table)")
        file_name = safe_file_name(assay, name, suffix=".csv")
        write_csv(extra_table(items, groups), out.path("tables", file_name))
        kept.add(file_name)
    _clear_stale(tables_dir, kept)
    err_path = out.path("errors.csv")
    if len(tables.errors):
        write_csv(tables.errors, err_path)
    elif err_path.exists():
        err_path.unlink()


def write_prism(out: OutputFolder, tables: StudyTables) -> PrismBlocks:
    """Write one wide CSV per assay × measure × region × level under ``prism/``.

    Parameters
    ----------
    out : OutputFolder
        The run's output folder.
    tables : StudyTables
        The assembled tables; ``tables.prism`` holds the wide tables.

    Returns
    -------
    PrismBlocks
        The same tables with their titles, for the workbook's ``prism`` sheet.
    """
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
    _clear_stale(prism_dir, written)
    return blocks


def _endpoint_notes(wide: Mapping[str, pd.DataFrame]) -> list[str]:
    """How each endpoint table of the Prism project was made, one line each."""
    assays = {df.attrs["assay"] for df in wide.values()}
    weights = {(spec.name, e.name): e.weight for spec, e in study_endpoints(sorted(assays))}
    lines = ["One table per endpoint: one row per animal (row title), one column per group "
             "(a Column table: unpaired t test, Mann-Whitney test, one-way ANOVA).",
             "Each value is the animal's mean over its section x region observations."]
    for title, df in wide.items():
        a = df.attrs
        weight = weights.get((a["assay"], a["endpoint"]))
        how = f"weighted by {weight}" if weight else "each observation counts once"
        level = f"level {a['level']}" if a["by_level"] else "levels pooled"
        lines.append(f"{title}: {a['assay']} endpoint {a['endpoint']}, column {a['measure']}, "
                     f"regions {a['regions']}, {level}; {how}.")
    return lines


def write_prism_project(out: OutputFolder, tables: StudyTables, *,
                        title: str = "", values: pd.DataFrame | None = None) -> PrismBlocks:
    """Write ``prism.pzfx``: a GraphPad Prism project, one Column table per endpoint.

    The tables are :func:`~histoquant.batch.tables.endpoint_prism_tables` of the endpoints'
    animal values (:mod:`histoquant.batch.endpoints`): one row per animal, one column per
    group, titled with the endpoint's label, unit and (``by_level``) level. A study whose
    assays declare no endpoint gets no file (and loses an earlier run's).

    Parameters
    ----------
    out : OutputFolder
        The run's output folder.
    tables : StudyTables
        The assembled tables (the endpoints are read from ``tables.sections``).
    title : str
        The study's title, for the project's *Info* sheet.
    values : pandas.DataFrame, optional
        The endpoints' animal values, when the caller has them already (the run's statistics
        read the same table); default: computed from ``tables.sections``.

    Returns
    -------
    PrismBlocks
        The endpoint tables with their titles, for the workbook's ``endpoints`` sheet.
    """
    from .. import __version__

    path = out.path("prism.pzfx")
    if values is None:
        values = endpoint_animal_values(endpoint_observations(tables.sections))
    wide = endpoint_prism_tables(values, tables.groups)
    if not wide:
        if path.exists():
            path.unlink()
        return []
    constants = {"Software": f"histoquant {__version__}"}
    if title:
        constants["Study"] = title
    write_pzfx(wide, path, notes=_endpoint_notes(wide), constants=constants)
    return [(t, df.reset_index()) for t, df in wide.items()]


def _sheet_name(assay: str, kind: str, taken: Mapping[str, object]) -> str:
    """``"<assay> <kind>"`` as Excel takes it: at most 31 characters, none it forbids."""
    clean = "".join("_" if ch in _EXCEL_FORBIDDEN else ch for ch in assay)
    name, n = f"{clean[:30 - len(kind)]} {kind}", 2
    while name in taken:  # two long assay names cut to the same start
        tag = f" {n}"
        name, n = f"{clean[:30 - len(kind) - len(tag)]}{tag} {kind}", n + 1
    return name


def write_workbook(out: OutputFolder, tables: StudyTables, prism: PrismBlocks, *,
                   endpoints: Sequence[tuple[str, pd.DataFrame]] = (),
                   side: ProcessPoolExecutor | None = None
                   ) -> Future | None:
    """Write ``study.xlsx``: per assay its animals and sections, then long, objects, errors, Prism.

    Sheets ``<assay> animals`` and ``<assay> sections`` (each assay's own columns only),
    ``long`` (the tidy animal table), ``objects``, ``errors`` (when an image failed),
    ``endpoints`` (the Prism project's tables, when there are endpoints) and ``prism``.

    Parameters
    ----------
    out : OutputFolder
        The run's output folder.
    tables : StudyTables
        The assembled tables. An objects table over :data:`EXCEL_OBJECT_ROWS` rows is
        replaced by a note pointing to ``objects.csv``.
    prism : PrismBlocks
        From :func:`write_prism`, one under the other on the ``prism`` sheet.
    endpoints : sequence of (str, pandas.DataFrame)
        From :func:`write_prism_project`, one under the other on the ``endpoints`` sheet.
    side : ProcessPoolExecutor, optional
        A spare process (:func:`~histoquant.batch.execute.side_process`) to write the
        workbook in while this one writes the report.

    Returns
    -------
    Future or None
        With ``side``, the pending write: its ``result()`` raises what the writing raised.
    """
    objects_sheet = tables.objects
    if len(objects_sheet) > EXCEL_OBJECT_ROWS:
        # openpyxl needs minutes and GBs for a million rows; objects.csv holds them all
        objects_sheet = pd.DataFrame({"note": [f"{len(tables.objects)} objects: see "
                                               "objects.csv"]})
    sheets = {}
    for kind, table in (("animals", tables.animals), ("sections", tables.sections)):
        for assay, df in assay_tables(table).items():
            sheets[_sheet_name(assay, kind, sheets)] = df
    sheets["long"] = tables.long
    sheets["objects"] = objects_sheet
    if len(tables.errors):
        sheets["errors"] = tables.errors
    blocks = {"endpoints": list(endpoints)} if endpoints else {}
    blocks["prism"] = prism
    if side is not None:
        return side.submit(write_excel, sheets, out.path("study.xlsx"), blocks=blocks)
    write_excel(sheets, out.path("study.xlsx"), blocks=blocks)
    return None


def report_run_info(plan: StudyPlan, *, n_units: int, n_run: int, n_reused: int,
                    n_failed: int, jobs: int, scheduler: Any) -> dict[str, Any]:
    """Return the small table at the top of the HTML report.

    Parameters
    ----------
    plan : StudyPlan
        The study run.
    n_units, n_run, n_reused, n_failed : int
        Image × assay pairs in all, measured now, reused from an earlier run, failed.
    jobs : int
        Worker processes on this machine.
    scheduler : str or distributed.Client, optional
        The Dask scheduler, when the run used one.

    Returns
    -------
    dict
        Label → value, in the order shown.
    """
    from .. import __version__

    return {
        "histoquant": __version__,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
        "study folder": str(plan.config.folder),
        "images × assays": n_units,
        "measured now": n_run,
        "reused (resume)": n_reused,
        "failed": n_failed,
        "workers": f"Dask {scheduler}" if scheduler is not None else f"{jobs} process(es)",
    }


def write_report(out: OutputFolder, plan: StudyPlan, tables: StudyTables,
                 units: Sequence[Mapping[str, Any]], thumbnails: Mapping[str, bytes], *,
                 run_info: Mapping[str, Any], measures: Mapping[str, Sequence[str]],
                 notes: Sequence[str], statistics: pd.DataFrame | None = None) -> Path:
    """Write ``report.html`` (:func:`~histoquant.batch.report.build_report`).

    Parameters
    ----------
    out : OutputFolder
        The run's output folder.
    plan : StudyPlan
        The study run (its title, or the folder's name).
    tables : StudyTables
        The assembled tables.
    units : sequence of mapping
        One record per image × assay, failures included.
    thumbnails : mapping of str to bytes
        Unit key → QC thumbnail PNG.
    run_info : mapping
        From :func:`report_run_info`.
    measures : mapping of str to sequence of str
        Assay → the measures the study file asks to plot.
    notes : sequence of str
        Things the user should know.
    statistics : pandas.DataFrame, optional
        The study statistics of the endpoints, shown under them; None: no test is shown.

    Returns
    -------
    Path
        The file written.
    """
    cfg = plan.config
    title = cfg.title or f"histoquant study: {cfg.folder.name}"
    # agreement with manual counts, when 'histoquant validate compare' wrote it here
    val_path = out.path("validation.csv")
    validation = pd.read_csv(val_path) if val_path.is_file() else None
    # each thumbnail links to its full QC picture, and sits with its animal (a failed image
    # has no row in the tables, so the animal comes from the sample sheet)
    by_file = {s.rel: s for s in plan.samples.values()}
    qc_links, named = {}, []
    for u in units:
        sample = by_file.get(u.get("file", ""))
        named.append({**u, "animal": sample.animal, "group": sample.group} if sample else u)
        if u.get("image") and u.get("assay") and not u.get("error"):
            rel = qc_path(out, u["assay"], u["image"]).relative_to(out.root)
            qc_links[u.get("key", "")] = quote(rel.as_posix())
    html = build_report(tables, named, thumbnails, title=title, run_info=run_info,
                        measures=measures, notes=notes, validation=validation,
                        statistics=statistics, qc_links=qc_links)
    return write_bytes(html.encode("utf-8"), out.path("report.html"))


def _versions() -> dict[str, str]:
    from importlib import metadata

    from ..results import versions

    out = versions()
    for dist in ("openpyxl", "dask", "distributed", "tqdm", "pillow",
                 "imagecodecs", "statsmodels", "scikit-learn", "skops"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    out["platform"] = platform.platform()
    return out


def _file_record(path: Path | None) -> dict[str, Any] | None:
    from ..output import file_sha256

    if path is None:
        return None
    try:
        return {"path": str(path), "sha256": file_sha256(path)}
    except OSError:
        return {"path": str(path), "sha256": None}


def run_record(plan: StudyPlan, units: Sequence[Mapping[str, Any]], *,
               notes: Sequence[str], jobs: int, scheduler: Any, resume: bool,
               timings: Mapping[str, float]) -> dict[str, Any]:
    """Return what ``run.json`` holds: how the run was made, from what, and what came of each image.

    Parameters
    ----------
    plan : StudyPlan
        The study run: its study file, sample sheet, settings and input hashes.
    units : sequence of mapping
        One record per image × assay, failures included (with ``error`` and, for an
        unexpected exception, ``traceback``).
    notes : sequence of str
        The run's notes.
    jobs, scheduler, resume
        How it was executed.
    timings : mapping of str to float
        Seconds per stage, rounded to the millisecond here.

    Returns
    -------
    dict
        JSON-ready.
    """
    from .. import __version__

    cfg = plan.config
    n_failed = sum("error" in m for m in units)
    return {
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
                       "measures": list(p.measures),
                       # a learned model replaces a step: which file, exactly
                       "model": _file_record(Path(p.model)) if p.model else None}
                   for a, p in cfg.assays.items()},
        # one threshold for every section of an assay, set by the first pass
        "study_thresholds": {a: t.record() for a, t in plan.thresholds.items()},
        "slides": cfg.slides.to_dict(),
        "qc": cfg.qc.to_dict(),
        "execution": {"jobs": jobs, "scheduler": str(scheduler) if scheduler is not None
                      else None, "resume": resume},
        "versions": _versions(),
        "inputs": [{"file": k, "sha256": v} for k, v in sorted(
            plan.inputs.items(), key=lambda kv: natural_key(kv[0]))],
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "units": [{**{k: m.get(k) for k in ("file", "image", "assay", "key", "seconds", "mode",
                                             "n_sections", "n_tiles", "saturated_pct", "flags",
                                             "pixel_size_um", "shape_yx")},
                   # a tiled run's image-wide statistics, per section (scalars only)
                   **({"calibration": m["calibration"]} if "calibration" in m else {})}
                  for m in units],
        "failures": [{**m["error"], **({"traceback": m["traceback"]} if "traceback" in m
                                       else {})} for m in units if "error" in m],
        "notes": list(notes),
        "outputs": ["objects.csv", "sections.csv", "long.csv", "sections_long.csv", "tables/",
                    "columns.csv", "prism/", "prism.pzfx", "study.xlsx", "qc/",
                    "report.html"] + (["errors.csv"] if n_failed else []),
    }


def write_statistics(out: OutputFolder, statistics: pd.DataFrame) -> Path:
    """Write ``statistics.csv``: the endpoints' group comparisons (one row per comparison).

    Parameters
    ----------
    out : OutputFolder
        The run's output folder.
    statistics : pandas.DataFrame
        :func:`~histoquant.batch.statistics.study_statistics` output.

    Returns
    -------
    Path
        The file written.
    """
    return write_csv(statistics, out.path("statistics.csv"))


def write_methods(out: OutputFolder, record: Mapping[str, Any], sections: pd.DataFrame,
                  groups: Sequence[str], *, statistics: pd.DataFrame | None,
                  blinding: str | None = None) -> Path:
    """Write ``methods.md``, the run as a methods paragraph (:mod:`~histoquant.batch.methods`).

    Parameters
    ----------
    out : OutputFolder
        The run's output folder.
    record : mapping
        The run's record (``run.json``).
    sections : pandas.DataFrame
        The section table.
    groups : sequence of str
        Group order.
    statistics : pandas.DataFrame or None
        The endpoints' statistics; None in a blinded run.
    blinding : str, optional
        ``"blinded"`` or ``"unblinded"`` when the run was blind.

    Returns
    -------
    Path
        The file written.
    """
    from .methods import methods_text
    from .statistics import describe_statistics

    text = methods_text(record, sections, groups=groups,
                        statistics=describe_statistics(statistics) if statistics is not None
                        else None, blinding=blinding)
    return write_bytes(text.encode("utf-8"), out.path("methods.md"))


def write_run_record(out: OutputFolder, record: Mapping[str, Any]) -> Path:
    """Write ``run.json`` (from :func:`run_record`), last, once every other output is there.

    Parameters
    ----------
    out : OutputFolder
        The run's output folder.
    record : mapping
        The run's record.

    Returns
    -------
    Path
        The file written.
    """
    return write_json(dict(record), out.path("run.json"))
