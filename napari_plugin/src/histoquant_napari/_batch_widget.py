"""Batch widget: run assays over a folder with :func:`histoquant.batch.run_batch`.

The run happens on a worker thread, so the viewer stays responsive; ``run_batch``'s
``progress(done, total, message)`` callback drives the progress bar and checks the Cancel flag.
Cancelling stops before the next image (the image being measured finishes first), and the
tables of the images already done are written by the core as usual.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, Label, Select
from qtpy.QtCore import QObject, Signal
from qtpy.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from histoquant.errors import ParamsError

from . import _notify
from ._assay_widget import assay_specs
from ._table import ResultTable

__all__ = ["BatchWidget", "BatchCancelled"]


class BatchCancelled(Exception):
    """Raised inside the progress callback to stop a batch (not a HistoquantError, so the core
    does not record it as a failed image but lets it end the run)."""


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
        note = Label(value="Tables and QC images are written as the command "
                           "'histoquant batch' writes them.")
        note.native.setWordWrap(True)
        self.form = Container(widgets=[self.folder, self.study, self.assays, self.regions,
                                       self.pixel_size, self.outdir, note], labels=True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.form.native)
        buttons = QHBoxLayout()
        self.run_button = QPushButton("Run batch")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(lambda: self.run())
        self.cancel_button.clicked.connect(lambda: self.cancel())
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        layout.addWidget(self.progress_bar)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.table = ResultTable(self, title="summary.csv")
        layout.addWidget(self.table, stretch=1)

    # -- running -------------------------------------------------------------------------------

    def _kwargs(self) -> dict[str, Any]:
        from histoquant.batch import run_batch

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
        if self.pixel_size.value > 0:
            kwargs["pixel_size_um"] = float(self.pixel_size.value)
        if assays and self.regions.value is not None:
            kwargs["regions"] = self.regions.value
        accepted = inspect.signature(run_batch).parameters
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
                raise BatchCancelled(f"cancelled after {message}")

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

    def _on_returned(self, ok: bool) -> None:
        self.last_ok = bool(ok)
        self._show_summary()
        where = self.job.outdir if self.job else ""
        if ok:
            self.status.setText(f"done; results in {where}")
        else:
            self.status.setText(f"done with failures (see errors.csv in each assay folder "
                                f"under {where})")
            _notify.warning(f"batch finished with failures; see errors.csv under {where}")

    def _show_summary(self) -> None:
        if self.job is None:
            return
        path = self.job.outdir / "summary.csv"
        if path.exists():
            self.table.set_tables(pd.read_csv(path))

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, BatchCancelled):
            self.cancelled = True
            self.status.setText(str(exc))
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


def _run_batch(kwargs: dict[str, Any], progress: Callable[[int, int, str], None]) -> bool:
    from histoquant.batch import run_batch

    return run_batch(progress=progress, **kwargs)
