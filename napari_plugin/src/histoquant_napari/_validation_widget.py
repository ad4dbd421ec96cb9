"""Check the program against manual counts in the viewer (issue #17).

A thin dock over :func:`histoquant.validate.compare_counts` — the same comparison as
``histoquant validate compare RESULTS MANUAL.csv``: choose the results folder and the
counter's sheet, Compare, and read the agreement (ICC with its CI, Bland–Altman bias and
limits, mean absolute % error) in the table and the Bland–Altman plot of the measure chosen.
The files (``validation.csv``, ``validation.html``) are written where the command writes
them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from magicgui.widgets import ComboBox, Container, FileEdit
from qtpy.QtWidgets import QLabel, QWidget

from histoquant.errors import HistoquantError

from ._base_widget import RunnerWidget
from ._table import ResultTable

__all__ = ["ValidationWidget"]


@dataclass
class _Job:
    results: Path
    manual: Path
    key: Path | None


def _path(value: Any) -> Path | None:
    text = str(value or "").strip()
    return Path(text) if text not in ("", ".") else None


class ValidationWidget(RunnerWidget):
    """Compare a run's values with manual counts: ICC, Bland–Altman, % error.

    Parameters
    ----------
    napari_viewer : napari.Viewer
        The viewer (napari passes it when the widget is opened from the Plugins menu).
    """

    def __init__(self, napari_viewer: Any, parent: QWidget | None = None):
        super().__init__(napari_viewer, parent)
        self.comparison: Any = None
        self.results = FileEdit(label="results folder", mode="d",
                                tooltip="A histoquant batch or assay command output folder")
        self.manual = FileEdit(label="manual counts", mode="r", filter="*.csv",
                               tooltip="The counter's sheet: code or image, then one column "
                                       "per counted measure")
        self.key = FileEdit(label="key (blinded)", mode="r", filter="*.csv", value="",
                            tooltip="key.csv of a blinded sample (found beside the sheet "
                                    "when left empty)")
        self.measure = ComboBox(label="plot", choices=[],
                                tooltip="The measure whose Bland–Altman plot is shown")
        self.measure.changed.connect(lambda *_: self._plot())
        self.form = Container(widgets=[self.results, self.manual, self.key], labels=True)
        self._layout.addWidget(self.form.native)
        self.run_button.setText("Compare")
        self._layout.addLayout(self.run_buttons())
        self._layout.addWidget(self.progress_bar)
        self._layout.addWidget(self.status)
        self.table = ResultTable(self, title="Agreement")
        self._layout.addWidget(self.table)
        self._layout.addWidget(Container(widgets=[self.measure], labels=True).native)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self._layout.addWidget(self.summary)
        self.plot = _svg_widget()
        if self.plot is not None:
            self.plot.setMinimumHeight(260)
            self._layout.addWidget(self.plot)

    def primary_layer(self) -> Any:
        return None  # no pixel size needed: it compares tables

    def prepare(self) -> _Job:
        results, manual = _path(self.results.value), _path(self.manual.value)
        if results is None or not results.is_dir():
            raise HistoquantError("choose the results folder of a histoquant run")
        if manual is None or not manual.is_file():
            raise HistoquantError("choose the manual-count sheet (.csv)")
        return _Job(results, manual, _path(self.key.value))

    def compute(self, job: _Job, progress: Callable[[float, str], None]) -> Any:
        from histoquant.validate import compare_counts

        progress(0.1, "pairing the program's values with the manual counts")
        return compare_counts(job.results, job.manual, key=job.key)

    def show_result(self, job: _Job, comparison: Any) -> None:
        self.comparison = comparison
        self.table.set_tables({"validation": comparison.table}, folder=job.results,
                              prefix="validation")
        measures = [m for m in comparison.table["measure"] if m != "objects"]
        self.measure.choices = measures
        if measures:
            self.measure.value = measures[0]
        self._plot()
        notes = "; ".join(comparison.notes)
        self.status.setText(f"compared {len(comparison.paired.table)} section(s); files in "
                            f"{comparison.files[0].parent}" + (f" — {notes}" if notes else ""))

    def _plot(self) -> None:
        """Show the chosen measure's agreement in words and its Bland–Altman plot."""
        from histoquant.validate.agreement import bland_altman
        from histoquant.validate.plot import bland_altman_svg

        c, m = self.comparison, self.measure.value
        if c is None or not m:
            return
        row = c.table.set_index("measure").loc[m]
        self.summary.setText(
            f"<b>{m}</b>: ICC {row['icc']:.3g} (95 % CI {row['icc_ci_low']:.3g}–"
            f"{row['icc_ci_high']:.3g}); bias {row['bias']:.3g}, limits of agreement "
            f"{row['loa_low']:.3g} to {row['loa_high']:.3g}; mean absolute error "
            f"{row['mape_pct']:.3g} %")
        if self.plot is None:
            return
        t = c.paired.table
        names = [str(v) for v in t.iloc[:, 0]]
        manual, auto = t[f"{m}__manual"].to_numpy(float), t[f"{m}__auto"].to_numpy(float)
        svg = bland_altman_svg(manual, auto, names, bland_altman(auto, manual), m)
        self.plot.load(svg.encode("utf-8"))


def _svg_widget() -> Any:
    try:
        from qtpy.QtSvgWidgets import QSvgWidget
    except ImportError:  # pragma: no cover - Qt without its SVG module: words only
        return None
    return QSvgWidget()
