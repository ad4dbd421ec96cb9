"""A table widget showing result DataFrames, with buttons that save them as CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

__all__ = ["ResultTable", "format_cell", "fill_table", "result_tables"]


def result_tables(result: object) -> dict[str, pd.DataFrame]:
    """Return the tables of an AssayResult: summary, objects, then its extra ``tables``."""
    out = {"summary": result.summary, "objects": result.objects}
    for name, df in (getattr(result, "tables", None) or {}).items():
        if isinstance(df, pd.DataFrame) and name not in out:
            out[str(name)] = df
    return out


def format_cell(value: object) -> str:
    """Text of one table cell: floats to 4 significant digits, missing values empty."""
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return ""
        return f"{float(value):.4g}"
    return str(value)


#: A table with at most this many rows (and more columns than rows) is shown turned: one row
#: per column, one column per row, so that a summary's many measurements can be read down a
#: narrow dock instead of scrolled sideways.
TURN_MAX_ROWS = 6
#: Rows shown at most (the CSV gets them all): a study's objects table can be very long.
SHOW_MAX_ROWS = 2000


def _row_label(df: pd.DataFrame, i: int) -> str:
    """Column header of row ``i`` of a turned table: what tells the rows apart."""
    keys = [c for c in ("image", "assay", "section", "region") if c in df.columns
            and df[c].nunique(dropna=False) > 1]
    if not keys:
        keys = [c for c in ("region", "section") if c in df.columns][:1]
    parts = [f"section {df[c].iloc[i]}" if c == "section" else str(df[c].iloc[i])
             for c in keys]
    return " ".join(parts) or str(i + 1)


def fill_table(table: QTableWidget, df: pd.DataFrame) -> bool:
    """Show ``df`` in ``table`` (read-only); returns True when it was shown turned.

    Short, wide tables (a summary: one row per region) are shown with the columns as rows,
    headed by each row's region; others as they are.
    """
    table.clear()
    df = df.iloc[:SHOW_MAX_ROWS]
    turned = 0 < len(df) <= TURN_MAX_ROWS and len(df.columns) > len(df)
    if turned:
        table.setRowCount(len(df.columns))
        table.setColumnCount(len(df))
        table.setHorizontalHeaderLabels([_row_label(df, i) for i in range(len(df))])
        table.setVerticalHeaderLabels([str(c) for c in df.columns])
        for c in range(len(df)):
            for r, col in enumerate(df.columns):
                value = df[col].iloc[c]
                item = QTableWidgetItem(format_cell(value))
                item.setToolTip(f"{col} = {value!r}")
                table.setItem(r, c, item)
    else:
        table.setRowCount(len(df))
        table.setColumnCount(len(df.columns))
        table.setHorizontalHeaderLabels([str(c) for c in df.columns])
        table.setVerticalHeaderLabels([str(i + 1) for i in range(len(df))])
        for r, row in enumerate(df.itertuples(index=False)):
            for c, value in enumerate(row):
                item = QTableWidgetItem(format_cell(value))
                item.setToolTip(repr(value))
                table.setItem(r, c, item)
    table.resizeColumnsToContents()
    # Turned, the measurement names head the rows: cap that header so that the values keep
    # room in a narrow dock (the full name is in each cell's tooltip), and let the last
    # column take the rest of the width.
    header = table.verticalHeader()
    header.setMaximumWidth(210 if turned else 16777215)
    table.horizontalHeader().setStretchLastSection(turned)
    return turned


class ResultTable(QWidget):
    """Result tables of the last run in a QTableWidget, with a "Save CSV" button.

    A box chooses which table to show (``summary`` first, then ``objects`` and any extra table
    the assay returned); the cells show rounded numbers, while **Save CSV** writes the exact
    table the core returned with :func:`histoquant.output.write_csv`.
    """

    #: ``(table name, row index)`` when the user clicks a row (a column when turned).
    row_chosen = Signal(str, int)

    def __init__(self, parent: QWidget | None = None, title: str = "Results"):
        super().__init__(parent)
        self.tables: dict[str, pd.DataFrame] = {}
        self.turned = False
        #: Where Save CSV proposes to write, and the file name's start (image and assay).
        self.default_folder: Path | None = None
        self.default_prefix = ""
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        head = QHBoxLayout()
        # The table folds away (it starts folded until there is something to show).
        self.fold_button = QToolButton()
        self.fold_button.setCheckable(True)
        self.fold_button.setAutoRaise(True)
        self.fold_button.setToolTip("Show or hide the table")
        self.fold_button.toggled.connect(self.set_expanded)
        head.addWidget(self.fold_button)
        self.title = QLabel(f"<b>{title}</b>")
        head.addWidget(self.title)
        self.choice = QComboBox()
        self.choice.setToolTip("Which table to show and save: summary (one row per image × "
                               "region), objects (one row per detected object), or an "
                               "assay-specific table")
        self.choice.currentTextChanged.connect(self._show)
        head.addWidget(self.choice, stretch=1)
        layout.addLayout(head)
        self.table = QTableWidget(self)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.cellClicked.connect(self._clicked)
        self.table.setMinimumHeight(120)
        layout.addWidget(self.table)
        self.save_button = QPushButton("Save CSV…")
        self.save_button.setToolTip("Save the table shown as a UTF-8 CSV file (exact values)")
        self.save_button.clicked.connect(lambda: self.save_csv())
        layout.addWidget(self.save_button)
        self._update()
        self.set_expanded(False)

    @property
    def expanded(self) -> bool:
        """Whether the table is shown (not folded)."""
        return not self.table.isHidden()

    def set_expanded(self, shown: bool) -> None:
        """Show (``True``) or fold the table, its chooser and its Save button."""
        shown = bool(shown)
        for w in (self.table, self.save_button):
            w.setVisible(shown)
        self.choice.setVisible(shown and len(self.tables) > 1)
        self.fold_button.blockSignals(True)
        self.fold_button.setChecked(shown)
        self.fold_button.blockSignals(False)
        self.fold_button.setArrowType(Qt.ArrowType.DownArrow if shown
                                      else Qt.ArrowType.RightArrow)

    def _clicked(self, row: int, column: int) -> None:
        # Turned, a table's rows are the columns of the view.
        self.row_chosen.emit(self.current, column if self.turned else row)

    def select_row(self, table: str, index: int) -> None:
        """Show ``table`` and select its row ``index`` (a column when shown turned)."""
        if table not in self.tables:
            return
        if self.current != table:
            self.show_table(table)
        self.set_expanded(True)
        if self.turned:
            self.table.selectColumn(index)
            self.table.scrollToItem(self.table.item(0, index))
        elif index < self.table.rowCount():
            self.table.selectRow(index)
            self.table.scrollToItem(self.table.item(index, 0))

    @property
    def current(self) -> str:
        """Name of the table shown."""
        return self.choice.currentText()

    @property
    def summary(self) -> pd.DataFrame:
        return self.tables.get("summary", pd.DataFrame())

    def set_tables(self, tables: dict[str, pd.DataFrame] | pd.DataFrame, *,
                   folder: str | Path | None = None, prefix: str = "") -> None:
        """Keep ``tables`` (name → DataFrame) and show the first.

        A lone DataFrame is the summary. ``folder`` (the image's) and ``prefix`` (say
        ``"section1_motor-neurons"``) make Save CSV's proposal ``folder/prefix_table.csv``.
        """
        self.default_folder = Path(folder) if folder else None
        self.default_prefix = prefix
        if isinstance(tables, pd.DataFrame):
            tables = {"summary": tables}
        self.tables = {k: v for k, v in tables.items() if isinstance(v, pd.DataFrame)}
        self.choice.blockSignals(True)
        self.choice.clear()
        self.choice.addItems(list(self.tables))
        self.choice.blockSignals(False)
        self._show(self.current)
        self.set_expanded(bool(self.tables))
        self._update()

    def show_table(self, name: str) -> None:
        """Show the table called ``name``."""
        self.choice.setCurrentText(name)

    def _show(self, name: str) -> None:
        self.turned = fill_table(self.table, self.tables.get(name, pd.DataFrame()))

    def _update(self) -> None:
        self.save_button.setEnabled(bool(self.tables))
        self.choice.setVisible(len(self.tables) > 1 and not self.table.isHidden())

    def default_path(self, table: str) -> Path:
        """Return where Save CSV proposes to write ``table``: the image's folder, a telling name.

        Parameters
        ----------
        table : str
            The table's name (``summary``, ``objects``, ...).

        Returns
        -------
        pathlib.Path
            ``<image folder>/<image>_<assay>_<table>.csv``; the home folder when the image
            has no file.
        """
        from histoquant.io.safe_paths import safe_name

        stem = f"{self.default_prefix}_{table}" if self.default_prefix else table
        folder = self.default_folder if self.default_folder is not None and \
            self.default_folder.is_dir() else Path.home()
        return folder / f"{safe_name(stem)}.csv"

    def save_csv(self, path: str | Path | None = None, table: str | None = None) -> Path | None:
        """Write the table shown (or ``table``) to ``path``, asked for when not given."""
        from histoquant.output import write_csv

        from . import _notify

        name = table or self.current
        if name not in self.tables:
            return None
        if path is None:
            chosen, _ = QFileDialog.getSaveFileName(self, f"Save {name}",
                                                    str(self.default_path(name)),
                                                    "CSV files (*.csv)")
            if not chosen:
                return None
            path = chosen
        try:
            out = write_csv(self.tables[name], Path(path))
        except Exception as exc:
            _notify.error(f"could not save {path}: {_notify.describe(exc)}")
            return None
        _notify.info(f"saved {out}")
        return out
