"""Run one assay over a list of files and write the common output layout.

Used by the command line and the simple folder batch. A file that fails — on bad input (a
:class:`~histoquant.errors.HistoquantError`) or on any unexpected exception — becomes a row of
``errors.csv`` and the run goes on. Inputs shared by every file (the parameters, a region
file) are checked once before the first image, so a mistake there stops the run at once
instead of failing every image the same way.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .assays.base import AssaySpec, resolve_params
from .errors import HistoquantError
from .io import OutputFolder, read_image
from .output import write_result_files, write_run_json, write_tables
from .results import AssayResult
from .rois import read_regions

if TYPE_CHECKING:
    from .batch.execute import BatchProgress

__all__ = ["RunReport", "run_files"]

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    """What a run did: results, failures and where it wrote them."""

    outdir: Path
    results: list[AssayResult] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

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
) -> RunReport:
    """Run ``spec`` on every file and write summary/objects/labels/qc/run.json to ``outdir``.

    Parameters
    ----------
    spec : AssaySpec
        The assay.
    paths : sequence of path
        Image files.
    outdir : path
        Output folder (created).
    params : params object, dict or file, optional
        Assay parameters; defaults when omitted.
    pixel_size_um : float, optional
        Pixel size override for every file.
    regions : None, "auto", or a region file
        Regions for every file; ``None`` measures whole images.
    channels : mapping, optional
        Channel role → name or index.
    modality : {"brightfield", "fluorescence"}, optional
        What every file is, overriding the detection from the pixels.
    progress : BatchProgress, optional
        ``progress(done, total, message)`` once with ``done = 0`` before the first file, then
        after each file: the protocol of a study run
        (:data:`~histoquant.batch.execute.BatchProgress`), so the CLI draws both alike.
    meta : mapping, optional
        Identifiers the images share and the assay cannot see (``animal``, ``group``,
        ``level``, ``section``, or any other name): each becomes a constant column of every
        summary and objects table, beside ``image`` and ``region``.

    Returns
    -------
    RunReport
        The results, the files that failed (and why), and the output folder.

    Raises
    ------
    HistoquantError
        Before any image is read, when the parameters or the region file are invalid.
    OutputPathError
        Before any image is read, when ``outdir`` holds a symbolic link leading out of it
        (say ``outdir/qc -> /elsewhere``): every file is written inside ``outdir``, under a
        name made safe from the image name.
    """
    p = resolve_params(spec.params_cls, params)
    run_regions = regions
    if isinstance(regions, (str, Path)) and str(regions) != "auto":
        run_regions = read_regions(regions)
    outdir = Path(outdir)
    OutputFolder(outdir).check()
    outdir.mkdir(parents=True, exist_ok=True)
    report = RunReport(outdir)
    t0 = time.perf_counter()
    total = len(paths)
    tracebacks: dict[str, str] = {}  # run.json only: errors.csv stays one line per image
    if progress is not None and total:
        progress(0, total, "")  # the bar's clock starts with the first image, not after it
    for i, path in enumerate(paths):
        path = Path(path)
        try:
            image = read_image(path, pixel_size_um, modality=modality)
            if isinstance(image.data, np.ndarray):
                result = spec.run(image, regions=run_regions, params=p, channels=channels)
            else:
                result = _run_tiled(spec, image, run_regions, p, channels)
            if meta:
                result.set_ids(**meta)
            write_result_files(result, outdir)
            report.results.append(result)
            message = f"{path.name}: ok"
        except HistoquantError as exc:
            log.error("%s", exc)
            report.errors.append({"image": path.name, "path": str(path),
                                  "error": type(exc).__name__, "message": str(exc)})
            message = f"{path.name}: FAILED ({type(exc).__name__})"
        except Exception as exc:
            # A bug or an input histoquant does not recognise as bad: this image fails, the
            # others are still measured. KeyboardInterrupt is not an Exception and stops the
            # run. The traceback goes to the log and run.json for the bug report.
            tb = _short_traceback(exc)
            log.error("%s: unexpected %s: %s\n%s", path.name, type(exc).__name__, exc, tb)
            report.errors.append({"image": path.name, "path": str(path),
                                  "error": type(exc).__name__,
                                  "message": str(exc) or type(exc).__name__})
            tracebacks[str(path)] = tb
            message = f"{path.name}: FAILED ({type(exc).__name__})"
        if progress is not None:
            progress(i + 1, total, message)
    write_tables(report.results, outdir, report.errors)
    report.seconds = time.perf_counter() - t0
    write_run_json(outdir, assay=spec.name, params=p.to_dict(), inputs=paths,
                   extra={"pixel_size_um_override": pixel_size_um,
                          "regions": str(regions) if regions is not None else None,
                          "channels": dict(channels or {}),
                          "meta": dict(meta or {}),
                          "seconds": round(report.seconds, 3),
                          "failures": [{**e, "traceback": tracebacks[e["path"]]}
                                       if e["path"] in tracebacks else e
                                       for e in report.errors]})
    return report


def _run_tiled(spec: AssaySpec, image: Any, regions: Any, params: Any,
               channels: Mapping[str, str | int] | None) -> AssayResult:
    """Measure an image too large for memory tile by tile, as a study run does.

    The reader opens a file lazily only above its in-memory limit
    (:data:`~histoquant.io.limits.MAX_IN_MEMORY_PIXELS`); handing that to the assay would read
    it whole. The tiles read only their windows; the result has tables but no label image
    or QC overlay (a study run draws the overview with a dot per object).
    """
    from .batch.config import SlideOptions
    from .errors import RegionError
    from .tiling import PolygonSource, WholeImage, run_tiled

    if isinstance(regions, str) and regions == "auto":
        raise RegionError(
            f"{image.source}: --regions auto on an image larger than memory needs the "
            "whole-slide machinery of a study run: use 'histoquant batch FOLDER --assay "
            f"{spec.name} --regions auto'")
    if regions is None:
        src = WholeImage()
    else:
        polys: dict[str, list] = {}
        for r in regions:
            polys.setdefault(r.name, []).extend(r.to_polygons())
        src = PolygonSource(polys)
    opts = SlideOptions()
    px = image.require_pixel_size()
    res = run_tiled(spec, image, src, params=params, channels=channels, tile_px=opts.tile_px,
                    overlap_px=math.ceil(opts.overlap_um / px))
    return AssayResult(assay=spec.name, image=image.name, objects=res.objects,
                       summary=res.summary, labels=None, qc=None, params=params.to_dict(),
                       pixel_size_um=px, warnings=list(res.warnings))


def _short_traceback(exc: BaseException, limit: int = 8) -> str:
    """Return the last ``limit`` frames of ``exc``'s traceback, as text."""
    frames = traceback.extract_tb(exc.__traceback__)[-limit:]
    return "".join(traceback.format_list(frames)).rstrip()
