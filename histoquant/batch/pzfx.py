"""GraphPad Prism project files (``.pzfx``): write grouped tables, read them back.

A ``.pzfx`` file is Prism's XML project format. The one Python writer on PyPI, ``pzfx``
0.3 (first released in January 2026, a port of the R package that its description calls a
"vibe coding project"; it needs lxml), is too new to count as maintained, so this module
writes the format as the R package ``pzfx`` (Yue Jiang, CRAN, MIT, in use since 2018)
documents and writes it, with :mod:`xml.etree.ElementTree` (every name escaped by the XML
writer):

.. code-block:: text

    <GraphPadPrismFile PrismXMLVersion="5.00">
      <Created><OriginalVersion CreatedByProgram="GraphPad Prism" …></OriginalVersion></Created>
      <InfoSequence><Ref ID="Info0" Selected="1"></Ref></InfoSequence>
      <Info ID="Info0"><Title>…</Title><Notes>…</Notes><Constant>…</Constant></Info>
      <TableSequence Selected="1"><Ref ID="Table0" Selected="1"></Ref>…</TableSequence>
      <Table ID="Table0" XFormat="none" YFormat="replicates" Replicates="1"
             TableType="OneWay" EVFormat="AsteriskAfterNumber">
        <Title>Motor neurons per ventral horn (count)</Title>
        <RowTitlesColumn Width="…"><Subcolumn><d>R01</d>…</Subcolumn></RowTitlesColumn>
        <YColumn Width="…" Decimals="2" Subcolumns="1">
          <Title>vehicle</Title><Subcolumn><d>9</d><d></d>…</Subcolumn>
        </YColumn>
        …
      </Table>
    </GraphPadPrismFile>

``TableType="OneWay"`` with ``XFormat="none"`` is Prism's *Column* table: one data set per
group, each a column of values, what Prism's unpaired t-test, Mann–Whitney test and one-way
ANOVA read. Each row is one animal (the row title); an animal's value sits in its group's
column and the other cells of its row are empty (``<d></d>``), which Prism ignores.

:func:`read_pzfx` reads such files back (and the other one-subcolumn tables Prism writes,
with or without row titles), so the tests check what was written by reading it.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import HistoquantError
from ..output import write_bytes

__all__ = ["PzfxError", "pzfx_bytes", "write_pzfx", "read_pzfx"]

# Characters XML 1.0 cannot hold at all (not even escaped): C0 controls other than tab, line
# feed and carriage return, lone surrogates, U+FFFE and U+FFFF.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class PzfxError(HistoquantError):
    """A ``.pzfx`` file that cannot be read, or tables that cannot be written as one."""


def _text(value: object) -> str:
    """Text as XML can hold it: characters XML 1.0 forbids become U+FFFD."""
    return _NOT_XML.sub("\ufffd", str(value))


def _number(value: float) -> str:
    """Return the shortest text that reads back as the same float; empty for a NaN."""
    v = float(value)
    if not math.isfinite(v):
        return ""
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def _decimals(values: np.ndarray) -> int:
    """Decimals Prism shows for a column: three significant digits of its typical value.

    Only the display: the file holds every value at full precision.
    """
    v = np.abs(values[np.isfinite(values)])
    if not len(v) or np.all(v == np.round(v)):
        return 0
    typical = float(np.median(v[v > 0])) if (v > 0).any() else 1.0
    return int(min(6, max(0, 2 - math.floor(math.log10(typical)))))


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrib: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = _text(text)
    return el


def _subcolumn(parent: ET.Element, cells: Sequence[str]) -> None:
    sub = _sub(parent, "Subcolumn")
    for cell in cells:
        _sub(sub, "d", cell if cell != "" else None)


def pzfx_bytes(tables: Mapping[str, pd.DataFrame], *, notes: Sequence[str] = (),
               constants: Mapping[str, str] | None = None,
               created: datetime | None = None) -> bytes:
    """Return a Prism project holding ``tables``, one Column table each, as UTF-8 XML.

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        Title → table. The index gives the row titles (written as text); each column becomes
        one Y column (one data set) titled by its name; values are numbers, missing ones
        (NaN) are written as empty cells.
    notes : sequence of str
        Lines of the project's notes (Prism's *Info* sheet).
    constants : mapping of str to str, optional
        Name → value pairs of the *Info* sheet (study, software...).
    created : datetime, optional
        When the file was made (default: now, UTC).

    Returns
    -------
    bytes
        The ``.pzfx`` file.

    Raises
    ------
    PzfxError
        When a table has no columns or a value is not a number.
    """
    created = created or datetime.now(UTC)
    root = ET.Element("GraphPadPrismFile", PrismXMLVersion="5.00")
    # The R package writes these very values and Prism opens its files; histoquant itself is
    # named in the Info sheet's constants.
    _sub(_sub(root, "Created"), "OriginalVersion", CreatedByProgram="GraphPad Prism",
         CreatedByVersion="6.0f.254", Login="",
         DateTime=created.isoformat(timespec="seconds"))
    _sub(_sub(root, "InfoSequence"), "Ref", ID="Info0", Selected="1")
    info = _sub(root, "Info", ID="Info0")
    _sub(info, "Title", "Project info 1")
    font = _sub(_sub(info, "Notes"), "Font", Color="#000000", Face="Helvetica")
    for i, line in enumerate(notes):
        if i:
            font[-1].tail = _text(line)
        else:
            font.text = _text(line)
        _sub(font, "BR")
    for name, value in (constants or {}).items():
        const = _sub(info, "Constant")
        _sub(const, "Name", name)
        _sub(const, "Value", value)
    seq = _sub(root, "TableSequence", Selected="1")
    for i, (title, df) in enumerate(tables.items()):
        if df.shape[1] == 0:
            raise PzfxError(f"Prism table {title!r} has no columns")
        try:
            values = df.to_numpy(dtype=float)
        except (TypeError, ValueError) as exc:
            raise PzfxError(f"Prism table {title!r} holds values that are not numbers: "
                            f"{exc}") from None
        ref = _sub(seq, "Ref", ID=f"Table{i}")
        if i == 0:
            ref.set("Selected", "1")
        table = _sub(root, "Table", ID=f"Table{i}", XFormat="none", YFormat="replicates",
                     Replicates="1", TableType="OneWay", EVFormat="AsteriskAfterNumber")
        _sub(table, "Title", title)
        rows = [str(r) for r in df.index]
        width = max([len(r) for r in rows] + [4]) * 8 + 8
        _subcolumn(_sub(table, "RowTitlesColumn", Width=str(min(width, 400))),
                   [_text(r) for r in rows])
        for j, name in enumerate(df.columns):
            col = values[:, j]
            y = _sub(table, "YColumn", Width=str(max(81, min(400, len(str(name)) * 8 + 8))),
                     Decimals=str(_decimals(col)), Subcolumns="1")
            _sub(y, "Title", str(name))
            # trailing empty cells are left out, as Prism does
            cells = [_number(v) for v in col]
            while cells and cells[-1] == "":
                cells.pop()
            _subcolumn(y, cells)
    ET.indent(root, space="  ")
    # the declaration exactly as Prism writes it (ElementTree would quote with ')
    # and no self-closing tags (<d></d>, not <d />): Prism's own files have none
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n'
            + ET.tostring(root, encoding="utf-8", short_empty_elements=False) + b"\n")


def write_pzfx(tables: Mapping[str, pd.DataFrame], path: str | Path, *,
               notes: Sequence[str] = (), constants: Mapping[str, str] | None = None,
               root: str | Path | None = None) -> Path:
    """Write ``tables`` as a Prism project (:func:`pzfx_bytes`), atomically.

    Parameters
    ----------
    tables : mapping of str to pandas.DataFrame
        Title → table (rows: the index as row titles; one Y column per column).
    path : path
        The ``.pzfx`` file.
    notes : sequence of str
        Lines of the project's notes.
    constants : mapping of str to str, optional
        Name → value pairs of the project's *Info* sheet.
    root : path, optional
        The output folder ``path`` must lie in (symbolic links resolved).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return write_bytes(pzfx_bytes(tables, notes=notes, constants=constants), path, root=root)


def _local(tag: str) -> str:
    """Return a tag without its namespace (Prism 8 and later add one)."""
    return tag.rsplit("}", 1)[-1]


def _children(el: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in el if _local(c.tag) == name]


def _all_text(el: ET.Element) -> str:
    """Return the text of a cell, also when Prism formats it (``<d><B>3</B></d>``)."""
    return "".join(el.itertext()).strip()


def _cell(d: ET.Element) -> float:
    if d.get("Excluded") == "1":
        return float("nan")
    text = _all_text(d)
    if not text:
        return float("nan")
    for candidate in (text, text.replace(",", ".")):  # a comma: Prism set to decimal commas
        try:
            return float(candidate)
        except ValueError:
            continue
    return float("nan")


def _title(el: ET.Element, default: str) -> str:
    found = _children(el, "Title")
    return _all_text(found[0]) if found else default


def read_pzfx(path: str | Path) -> dict[str, pd.DataFrame]:
    """Read every data table of a Prism project.

    Parameters
    ----------
    path : path
        A ``.pzfx`` file.

    Returns
    -------
    dict of str to pandas.DataFrame
        Title → table, in the file's order: one float column per Y column (titled as in
        Prism; a Y column of several subcolumns gives ``<title>_1``, ``<title>_2``...; an X
        column comes first), one row per row of the longest column. The index holds the row
        titles when the table has any, else it is ``0, 1, 2...``. Empty and excluded cells
        are NaN.

    Raises
    ------
    PzfxError
        When the file is not a Prism XML project.
    """
    try:
        doc = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise PzfxError(f"{path}: not a Prism .pzfx file ({exc})") from None
    if _local(doc.tag) != "GraphPadPrismFile":
        raise PzfxError(f"{path}: not a Prism .pzfx file (root element {_local(doc.tag)!r})")
    out: dict[str, pd.DataFrame] = {}
    for i, table in enumerate(t for t in doc if _local(t.tag) in ("Table", "HugeTable")):
        title = _title(table, f"Data {i + 1}")
        columns: dict[str, list[float]] = {}
        rows: list[str] = []
        for el in table:
            kind = _local(el.tag)
            if kind == "RowTitlesColumn":
                for sub in _children(el, "Subcolumn")[:1]:
                    rows = [_all_text(d) for d in _children(sub, "d")]
            elif kind in ("XColumn", "YColumn"):
                name = _title(el, f"{kind[0]}{len(columns) + 1}")
                subs = _children(el, "Subcolumn")
                for k, sub in enumerate(subs, 1):
                    key = name if len(subs) == 1 else f"{name}_{k}"
                    columns[key] = [_cell(d) for d in _children(sub, "d")]
        n = max([len(rows)] + [len(v) for v in columns.values()])
        data = {k: v + [float("nan")] * (n - len(v)) for k, v in columns.items()}
        index: pd.Index = pd.RangeIndex(n)
        if any(rows):
            index = pd.Index(rows + [""] * (n - len(rows)))
        out[title] = pd.DataFrame(data, index=index, dtype=float)
    return out
