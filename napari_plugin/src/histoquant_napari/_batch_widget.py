"""Batch widget: run assays over a folder with :func:`histoquant.batch.run_batch`.

The run happens on a worker thread, so the viewer stays responsive; ``run_batch``'s
``progress(done, total, message)`` callback drives the progress bar and checks the Cancel flag.
Cancelling stops before the next image (the image being measured finishes first); the study
tables are not written then, so no partial table looks complete (a batch that can resume keeps
the finished images for the next run).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    Select,
    SpinBox,
)
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from histoquant.errors import ParamsError

from . import _notify
from ._assay_widget import assay_specs
from ._base_widget import WIDGET_MIN_WIDTH, scrolling_layout
from ._table import ResultTable

__all__ = ["BatchWidget", "BatchCancelled"]


class BatchCancelled(Exception):
    """Raised inside the progress callback to stop a batch.

    Not a HistoquantError, so the core does not record it as a failed image but lets it end
    the run.
    """


class _Relay(QObject):
    progress = Signal(int, int, str)


@dataclass
class _Job:
    kwargs: dict[str, Any]
    outdir: Path
    cancel: threading.Event = field(default_factory=threading.Event)


def _path_or_none(value: Any) -> Path | None:
    if value is None:
        return None
    text = str(value).strip()
    if text in ("", "."):
        return None
    return Path(text)


class BatchWidget(QWidget):
    """Choose a folder, a study/sample file, assays and an output folder; run; cancel.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer (unused apart from parenting; the batch reads files, not layers).
    """

    run_finished = Signal()
    """Emitted when a batch ends: done, failed or cancelled."""

    def __init__(self, napari_viewer: Any = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumWidth(WIDGET_MIN_WIDTH)
        self.viewer = napari_viewer
        self.worker: Any = None
        self.job: _Job | None = None
        self.last_ok: bool | None = None
        self.last_error: str | None = None
        self.cancelled = False
        self._relay = _Relay()
        self._relay.progress.connect(self._on_progress)
        names = list(assay_specs())
        self.folder = FileEdit(label="image folder", mode="d",
                               tooltip="Folder with the images (searched recursively)")
        self.study = FileEdit(label="study file", mode="r", filter="*.yaml *.yml *.json",
                              tooltip="Optional study.yaml saying which assay reads which "
                                      "files, with channels, regions and parameters. Without "
                                      "it, the assays ticked below run on every image.")
        accepted = _run_batch_parameters()
        self.samples = FileEdit(label="sample sheet", mode="r",
                                filter="*.csv *.tsv *.xlsx",
                                tooltip="Optional sample sheet (animal, group, level, section "
                                        "per file); by default the study file's, or a "
                                        "samples.csv in the folder")
        self.samples.visible = "samples" in accepted
        self.resume = CheckBox(label="resume", value=False,
                               tooltip="Skip images already measured in this output folder "
                                       "with the same input and settings (after a cancel)")
        self.can_resume = "resume" in accepted
        self.resume.visible = self.can_resume
        import os

        self.jobs = SpinBox(label="worker processes", value=1, min=1,
                            max=max(1, os.cpu_count() or 1),
                            tooltip="Images measured at once, each in its own process (more "
                                    "use more memory); 1 measures in this process")
        self.assays = Select(label="assays", choices=names, value=[],
                             tooltip="Assays to run on every image of the folder. Leave "
                                     "none selected to follow the study file (the folder's "
                                     "study.yaml when no file is given).")
        self.assays.native.setMaximumHeight(22 * max(3, len(names)) + 6)
        self.regions = ComboBox(label="regions", choices=[("whole image", None),
                                                          ("auto (anatomy)", "auto")],
                                value=None,
                                tooltip="Used with the assays ticked above: measure whole "
                                        "images or the regions histoquant.anatomy finds")
        self.pixel_size = FloatSpinBox(label="pixel size (µm)", min=0.0, max=1000.0, step=0.01,
                                       value=0.0,
                                       tooltip="0 takes each file's own pixel size; a value "
                                               "here overrides it for every file")
        self.pixel_size.native.setDecimals(4)
        self.pixel_size.native.setSpecialValueText("from files")
        self.outdir = FileEdit(label="output folder", mode="d",
                               tooltip="Where summary.csv and one folder per assay "
                                       "(summary, objects, labels, QC, run.json) go")
        note = Label(value="Tables, QC images and the report are written as the command "
                           "'histoquant batch' writes them (see docs/batch.md).")
        note.native.setWordWrap(True)
        widgets = [self.folder, self.study]
        if "samples" in accepted:
            widgets.append(self.samples)
        widgets += [self.assays, self.regions, self.pixel_size, self.outdir]
        if "jobs" in accepted:
            widgets.append(self.jobs)
        if "resume" in accepted:
            widgets.append(self.resume)
        self.form = Container(widgets=[*widgets, note], labels=True)
        layout = scrolling_layout(self)
        layout.addWidget(self.form.native)
        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run batch")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(lambda: self.run())
        self.cancel_button.clicked.connect(lambda: self.cancel())
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        self.qc_button = QPushButton("Open QC images")
        self.qc_button.setToolTip("Add the batch's QC overlays (outlines, counts) to the viewer, "
                                  "one layer per image; the newest is shown")
        self.qc_button.setEnabled(False)
        self.qc_button.clicked.connect(lambda: self.open_qc())
        buttons.addWidget(self.qc_button)
        layout.addLayout(buttons)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        layout.addWidget(self.progress_bar)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.table = ResultTable(self, title="Tables")
        layout.addWidget(self.table, stretch=1)

    # -- running -------------------------------------------------------------------------------

    def _kwargs(self) -> dict[str, Any]:
        folder = _path_or_none(self.folder.value)
        outdir = _path_or_none(self.outdir.value)
        if folder is None or not folder.is_dir():
            raise ParamsError(f"choose the image folder (got {self.folder.value!s})")
        if outdir is None:
            raise ParamsError("choose an output folder")
        if outdir.resolve() == folder.resolve():
            raise ParamsError("the output folder must differ from the image folder")
        study = _path_or_none(self.study.value)
        assays = list(self.assays.value or [])
        if not assays and study is None and not (folder / "study.yaml").exists():
            raise ParamsError(f"{folder} has no study.yaml: tick the assays to run or choose a "
                              "study file")
        kwargs: dict[str, Any] = {"folder": folder, "outdir": outdir, "assays": assays,
                                  "config": study}
        samples = _path_or_none(self.samples.value)
        if samples is not None:
            kwargs["samples"] = samples
        if self.resume.value:
            kwargs["resume"] = True
        if self.jobs.value > 1:
            kwargs["jobs"] = int(self.jobs.value)
        if self.pixel_size.value > 0:
            kwargs["pixel_size_um"] = float(self.pixel_size.value)
        if assays and self.regions.value is not None:
            kwargs["regions"] = self.regions.value
        accepted = _run_batch_parameters()
        return {k: v for k, v in kwargs.items() if k in accepted}

    def run(self) -> Any:
        """Start the batch on a worker thread; returns the worker (None when inputs are bad)."""
        from napari.qt.threading import create_worker

        if self.worker is not None:
            _notify.warning("a batch is already running")
            return None
        self.last_ok, self.last_error, self.cancelled = None, None, False
        try:
            job = _Job(self._kwargs(), Path())
        except Exception as exc:
            self._fail(exc)
            self.run_finished.emit()
            return None
        job.outdir = Path(job.kwargs["outdir"])
        self.job = job
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)  # busy until the first file reports
        self.status.setText("starting…")
        relay = self._relay

        def progress(done: int, total: int, message: str) -> None:
            relay.progress.emit(int(done), int(total), str(message))
            if job.cancel.is_set():
                raise BatchCancelled("cancelled before the first image" if done == 0 else
                                     f"cancelled after {done} of {total} image(s) ({message})")

        worker = create_worker(_run_batch, job.kwargs, progress,
                               _connect={"returned": self._on_returned, "errored": self._fail,
                                         "finished": self._on_finished})
        self.worker = worker
        return worker

    def cancel(self) -> None:
        """Stop the batch before its next image."""
        if self.job is not None and self.worker is not None:
            self.job.cancel.set()
            self.status.setText("cancelling after the current image…")
            self.cancel_button.setEnabled(False)

    def _on_progress(self, done: int, total: int, message: str) -> None:
        self.progress_bar.setRange(0, max(total, 1))
        self.progress_bar.setValue(done)
        self.status.setText(f"{done}/{total} {message}")

    def _on_returned(self, report: Any) -> None:
        # run_batch returns True/False or a report whose truth is "every image measured".
        self.last_ok = bool(report)
        self.qc_button.setEnabled(bool(self.qc_files()))
        try:
            self._show_summary()
        except Exception as exc:  # showing the tables must not take napari down
            self._fail(exc)
        where = self.job.outdir if self.job else ""
        counts = ""
        if hasattr(report, "n_run"):
            counts = f" ({report.n_run} measured, {getattr(report, 'n_reused', 0)} reused)"
        for note in getattr(report, "notes", None) or []:
            _notify.info(str(note))
        if self.last_ok:
            self.status.setText(f"done{counts}; results in {where}")
        else:
            self.status.setText(f"done with failures (see errors.csv in each assay folder "
                                f"under {where})")
            _notify.warning(f"batch finished with failures; see errors.csv under {where}")

    def qc_files(self) -> list[Path]:
        """QC pictures the last batch wrote (``qc/<assay>/<image>.png``)."""
        if self.job is None:
            return []
        return sorted((self.job.outdir / "qc").rglob("*.png"))

    def open_qc(self) -> list[Any]:
        """Add every QC picture of the last batch as an RGB layer (only the last visible)."""
        import numpy as np
        from PIL import Image as PILImage

        layers = []
        files = self.qc_files()
        for i, path in enumerate(files):
            with PILImage.open(path) as im:
                rgb = np.asarray(im.convert("RGB"))
            name = f"QC {path.parent.name} · {path.stem}"
            layers.append(self.viewer.add_image(rgb, rgb=True, name=name,
                                                visible=i == len(files) - 1))
        return layers

    def _show_summary(self) -> None:
        """Show the study tables the batch wrote (``summary``/``sections``/``long``...)."""
        if self.job is None:
            return
        found = {p.stem: p for p in sorted(self.job.outdir.glob("*.csv"))
                 if p.stem not in _NOT_SHOWN}
        order = sorted(found, key=lambda n: (_TABLE_ORDER.index(n) if n in _TABLE_ORDER
                                             else len(_TABLE_ORDER), n))
        tables = {}
        for name in order:
            try:
                tables[name] = pd.read_csv(found[name])
            except (OSError, ValueError, pd.errors.ParserError):
                continue
        self.table.set_tables(tables)

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, BatchCancelled):
            self.cancelled = True
            hint = (" — finished images are kept; tick 'resume' and run again to go on"
                    if self.can_resume else "")
            self.status.setText(f"{exc}{hint}")
            self._show_summary()
            _notify.info(f"batch {exc}")
            return
        message = _notify.describe(exc)
        self.last_error = message
        self.status.setText(f"failed: {message}")
        _notify.error(message)

    def _on_finished(self) -> None:
        self.worker = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        if self.progress_bar.maximum() == 0:
            self.progress_bar.setRange(0, 1)
        self.run_finished.emit()


#: Tables shown first after a batch, in this order; other CSV files follow by name.
_TABLE_ORDER = ("summary", "sections", "long", "errors", "objects")
# A study's objects table can hold millions of rows: it is not loaded for display; nor is
# sections_long.csv, the section table again, one row per measure.
_NOT_SHOWN = ("objects", "sections_long")


def _run_batch_parameters() -> set[str]:
    """Keyword arguments this histoquant's ``run_batch`` accepts (it grows over versions)."""
    from histoquant.batch import run_batch

    return set(inspect.signature(run_batch).parameters)


def _run_batch(kwargs: dict[str, Any], progress: Callable[[int, int, str], None]) -> bool:
    from histoquant.batch import run_batch

    return run_batch(progress=progress, **kwargs)
