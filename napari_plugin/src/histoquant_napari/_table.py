"""A table widget showing result DataFrames, with buttons that save them as CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

__all__ = ["ResultTable", "format_cell", "fill_table"]


def format_cell(value: object) -> str:
    """Text of one table cell: floats to 4 significant digits, missing values empty."""
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return ""
        return f"{float(value):.4g}"
    return str(value)


def fill_table(table: QTableWidget, df: pd.DataFrame) -> None:
    """Show ``df`` in ``table``: one header per column, one row per row, read-only cells."""
    table.clear()
    table.setRowCount(len(df))
    table.setColumnCount(len(df.columns))
    table.setHorizontalHeaderLabels([str(c) for c in df.columns])
    for r, row in enumerate(df.itertuples(index=False)):
        for c, value in enumerate(row):
            item = QTableWidgetItem(format_cell(value))
            item.setToolTip(repr(value))
            table.setItem(r, c, item)
    table.resizeColumnsToContents()


class ResultTable(QWidget):
    """The summary of the last run in a QTableWidget, with "Save CSV" buttons.

    The cells show rounded numbers; the CSV files hold the exact tables the core returned,
    written with :func:`histoquant.output.write_csv`.
    """

    def __init__(self, parent: QWidget | None = None, title: str = "Summary"):
        super().__init__(parent)
        self.summary = pd.DataFrame()
        self.objects = pd.DataFrame()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.title = QLabel(f"<b>{title}</b>")
        layout.addWidget(self.title)
        self.table = QTableWidget(self)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setMinimumHeight(120)
        layout.addWidget(self.table)
        buttons = QHBoxLayout()
        self.save_summary_button = QPushButton("Save CSV…")
        self.save_summary_button.setToolTip("Save the summary table (one row per image × "
                                            "region) as a UTF-8 CSV file")
        self.save_objects_button = QPushButton("Save objects CSV…")
        self.save_objects_button.setToolTip("Save the objects table (one row per detected "
                                            "object) as a UTF-8 CSV file")
        self.save_summary_button.clicked.connect(lambda: self.save_summary())
        self.save_objects_button.clicked.connect(lambda: self.save_objects())
        buttons.addWidget(self.save_summary_button)
        buttons.addWidget(self.save_objects_button)
        layout.addLayout(buttons)
        self._update_buttons()

    def set_tables(self, summary: pd.DataFrame, objects: pd.DataFrame | None = None) -> None:
        """Show ``summary`` and keep ``objects`` for saving."""
        self.summary = summary
        self.objects = objects if objects is not None else pd.DataFrame()
        fill_table(self.table, summary)
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.save_summary_button.setEnabled(not self.summary.empty)
        self.save_objects_button.setEnabled(not self.objects.empty)

    def _ask_path(self, caption: str, default: str) -> Path | None:
        path, _ = QFileDialog.getSaveFileName(self, caption, default, "CSV files (*.csv)")
        return Path(path) if path else None

    def save_summary(self, path: str | Path | None = None) -> Path | None:
        """Write the summary table to ``path`` (asked for when not given)."""
        return self._save(self.summary, path, "Save summary", "summary.csv")

    def save_objects(self, path: str | Path | None = None) -> Path | None:
        """Write the objects table to ``path`` (asked for when not given)."""
        return self._save(self.objects, path, "Save objects", "objects.csv")

    def _save(self, df: pd.DataFrame, path: str | Path | None, caption: str,
              default: str) -> Path | None:
        from histoquant.output import write_csv

        from . import _notify

        if path is None:
            path = self._ask_path(caption, default)
            if path is None:
                return None
        try:
            out = write_csv(df, Path(path))
        except Exception as exc:
            _notify.error(f"could not save {path}: {_notify.describe(exc)}")
            return None
        _notify.info(f"saved {out}")
        return out
