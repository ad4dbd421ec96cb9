"""Writing results in the common output layout, every file atomically.

::

    OUTDIR/summary.csv         one row per image × region
    OUTDIR/objects.csv         one row per object
    OUTDIR/errors.csv          one row per image that failed (only when one did)
    OUTDIR/<name>.csv          an assay's extra tables (``result.tables``), e.g.
                               profiles.csv of the Evans Blue assay
    OUTDIR/labels/<stem>.tif   label image of every object, or the mask of an area assay
    OUTDIR/qc/<stem>.png       QC overlay
    OUTDIR/regions/<stem>.geojson, .zip   regions an assay found (``extra["regions"]``),
                               for QuPath / ImageJ, to check, correct and feed back
    OUTDIR/run.json            parameters, versions, inputs

The tables are written here; the label image, QC overlay and regions are encoded by the worker
that measured the image (:func:`encode_label_image`, in its part) and written by
:mod:`histoquant.runner`. File names made from data (``<stem>`` is the image name) go through
:func:`~histoquant.io.safe_paths.safe_file_name`, and every path through
:class:`~histoquant.io.safe_paths.OutputFolder`, so nothing is written outside OUTDIR. Each
writer below takes ``root=`` (the output folder) to make the same check itself.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .io.safe_paths import OutputFolder, safe_file_name
from .io.writers import atomic_path
from .results import AssayResult, order_columns, versions

if TYPE_CHECKING:
    from openpyxl.worksheet.worksheet import Worksheet

__all__ = ["write_csv", "encode_label_image", "write_label_image", "write_png",
           "write_tables", "extra_tables", "write_run_json", "file_sha256",
           "write_json", "write_excel", "write_bytes", "EXCEL_MAX_ROWS"]

EXCEL_MAX_ROWS = 1_048_576


def write_csv(df: pd.DataFrame, path: str | Path, *, root: str | Path | None = None) -> Path:
    """Write a table as UTF-8 CSV with one header row, atomically.

    With ``root``, refuse (:class:`~histoquant.errors.OutputPathError`) a ``path`` outside
    that folder once symbolic links are resolved; the same holds for every writer here.

    Parameters
    ----------
    df : pandas.DataFrame
        The table (its index is not written).
    path : str or pathlib.Path
        The ``.csv`` file.
    root : str or pathlib.Path, optional
        The output folder ``path`` must lie in (symbolic links resolved).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    with atomic_path(path, root=root) as tmp:
        order_columns(df).to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n")
    return path


def encode_label_image(labels: np.ndarray, pixel_size_um: float | None = None) -> bytes:
    """Return a label image or mask as the bytes of a compressed ImageJ TIFF with its calibration.

    A boolean mask is written as 0/255 uint8, labels as uint16 (float32 beyond 65535, which
    ImageJ cannot open as integers).

    Parameters
    ----------
    labels : numpy.ndarray
        The (Y, X) label image or boolean mask.
    pixel_size_um : float, optional
        Pixel size in µm, written as the TIFF's resolution.

    Returns
    -------
    bytes
        The TIFF file's content.
    """
    import tifffile

    arr = np.asarray(labels)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    elif arr.max(initial=0) < 65536:
        arr = arr.astype(np.uint16, copy=False)
    else:
        arr = arr.astype(np.float32)  # ImageJ opens 8/16-bit and float, not 32-bit integers
    kwargs: dict[str, Any] = {"compression": "zlib", "imagej": True, "metadata": {"axes": "YX"}}
    if pixel_size_um:
        kwargs["resolution"] = (1 / pixel_size_um, 1 / pixel_size_um)
        kwargs["metadata"]["unit"] = "um"
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, **kwargs)
    return buf.getvalue()


def write_label_image(labels: np.ndarray, path: str | Path,
                      pixel_size_um: float | None = None, *,
                      root: str | Path | None = None) -> Path:
    """Write a label image or mask as a compressed ImageJ TIFF with its calibration.

    The file is :func:`encode_label_image`'s, written atomically.

    Parameters
    ----------
    labels : numpy.ndarray
        The (Y, X) label image or boolean mask.
    path : str or pathlib.Path
        The ``.tif`` file.
    pixel_size_um : float, optional
        Pixel size in µm, written as the TIFF's resolution.
    root : str or pathlib.Path, optional
        The output folder ``path`` must lie in (symbolic links resolved).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    return write_bytes(encode_label_image(labels, pixel_size_um), path, root=root)


# QC overlays are noisy micrographs: zlib level 1 encodes them several times faster than
# Pillow's default 6 and the files come out no larger (figures in benchmarks/RESULTS.md).
PNG_COMPRESS_LEVEL = 1


def write_png(rgb: np.ndarray, path: str | Path, *, root: str | Path | None = None) -> Path:
    """Write an RGB uint8 array as PNG, atomically.

    Parameters
    ----------
    rgb : numpy.ndarray
        The (Y, X, 3) uint8 picture.
    path : str or pathlib.Path
        The ``.png`` file.
    root : str or pathlib.Path, optional
        The output folder ``path`` must lie in (symbolic links resolved).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from PIL import Image as PILImage

    path = Path(path)
    with atomic_path(path, root=root) as tmp:
        PILImage.fromarray(np.ascontiguousarray(rgb)).save(
            tmp, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return path


def write_tables(results: Iterable[AssayResult], outdir: str | Path,
                 errors: list[dict[str, str]] | None = None) -> dict[str, pd.DataFrame]:
    """Concatenate results into ``summary.csv`` and ``objects.csv`` (and ``errors.csv``).

    Each assay's extra tables (:func:`extra_tables`) are written beside them as
    ``<name>.csv``; an ``errors.csv`` left by an earlier run is removed when there is no error.

    Parameters
    ----------
    results : iterable of AssayResult
        The results of the run.
    outdir : str or pathlib.Path
        The output folder.
    errors : list of dict, optional
        One row per failed image (written as ``errors.csv``).

    Returns
    -------
    dict of str to pandas.DataFrame
        Every table written, by name (``summary``, ``objects``, the extra tables,
        ``errors`` when there are any).
    """
    out = OutputFolder(outdir)
    results = list(results)
    summary = pd.concat([r.summary for r in results], ignore_index=True) if results \
        else pd.DataFrame()
    objects = pd.concat([r.objects for r in results if len(r.objects)], ignore_index=True) \
        if any(len(r.objects) for r in results) else pd.DataFrame(
            columns=results[0].objects.columns if results else ["image"])
    write_csv(summary, out.path("summary.csv"))
    write_csv(objects, out.path("objects.csv"))
    tables = {"summary": summary, "objects": objects}
    for name, table in extra_tables(results).items():
        write_csv(table, out.path(safe_file_name(name, suffix=".csv")))
        tables[name] = table
    err_path = out.path("errors.csv")
    if errors:
        tables["errors"] = pd.DataFrame(errors)
        write_csv(tables["errors"], err_path)
    elif err_path.exists():
        err_path.unlink()
    return tables


def extra_tables(results: Iterable[AssayResult]) -> dict[str, pd.DataFrame]:
    """Return the assay-specific tables, concatenated over results.

    An assay puts a table in ``result.tables[name]`` (a tidy DataFrame, ``image``
    first); the runner writes it as ``OUTDIR/<name>.csv`` beside summary.csv. Names are
    letters, digits and underscores; ``summary``, ``objects`` and ``errors`` are reserved.

    Parameters
    ----------
    results : iterable of AssayResult
        The results of the run.

    Returns
    -------
    dict of str to pandas.DataFrame
        One table per name.

    Raises
    ------
    ValueError
        When a table's name is reserved or not made of letters, digits and underscores.
    """
    found: dict[str, list[pd.DataFrame]] = {}
    for r in results:
        for name, table in r.tables.items():
            if name in ("summary", "objects", "errors") or not name.replace("_", "").isalnum():
                raise ValueError(f"{r.assay}: extra table name {name!r} is not allowed")
            if isinstance(table, pd.DataFrame):
                found.setdefault(name, []).append(table)
    out = {}
    for name, parts in found.items():
        non_empty = [t for t in parts if len(t)]
        out[name] = pd.concat(non_empty, ignore_index=True) if non_empty else parts[0]
    return out


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Return the SHA-256 of a file (or of every file inside a folder, in sorted order).

    Parameters
    ----------
    path : str or pathlib.Path
        A file, or a folder (an OME-Zarr image).
    chunk : int
        Bytes read at a time.

    Returns
    -------
    str
        The hex digest.
    """
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def write_run_json(outdir: str | Path, *, assay: str, params: dict[str, Any],
                   inputs: Iterable[str | Path], extra: dict[str, Any] | None = None) -> Path:
    """Record how a run was made: assay, parameters, versions, input files with hashes.

    Parameters
    ----------
    outdir : str or pathlib.Path
        The output folder; the record is its ``run.json``.
    assay : str
        The assay's name.
    params : dict
        The parameters used.
    inputs : iterable of str or pathlib.Path
        The input files (hashed with :func:`file_sha256` when they exist).
    extra : dict, optional
        More keys for the record.

    Returns
    -------
    pathlib.Path
        The ``run.json`` written.
    """
    inputs = [Path(p) for p in inputs]
    record = {
        "assay": assay,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "params": params,
        "versions": versions(),
        "inputs": [{"path": str(p), "sha256": file_sha256(p) if p.exists() else None}
                   for p in inputs],
        **(extra or {}),
    }
    path = OutputFolder(outdir).path("run.json")
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
    return path


def write_bytes(data: bytes, path: str | Path, *, root: str | Path | None = None) -> Path:
    """Write bytes to ``path`` atomically.

    Parameters
    ----------
    data : bytes
        The content.
    path : str or pathlib.Path
        The file.
    root : str or pathlib.Path, optional
        The output folder ``path`` must lie in (symbolic links resolved).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    with atomic_path(path, root=root) as tmp:
        tmp.write_bytes(data)
    return path


def write_json(record: Any, path: str | Path, *, root: str | Path | None = None) -> Path:
    """Write a JSON document (UTF-8, indented) atomically.

    Parameters
    ----------
    record : object
        Anything :func:`json.dumps` takes; other values are written as their ``str``.
    path : str or pathlib.Path
        The ``.json`` file.
    root : str or pathlib.Path, optional
        The output folder ``path`` must lie in (symbolic links resolved).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    path = Path(path)
    with atomic_path(path, root=root) as tmp:
        tmp.write_text(json.dumps(record, indent=2, default=str, ensure_ascii=False),
                       encoding="utf-8")
    return path


def _bold(sheet, value):
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    cell = WriteOnlyCell(sheet, value=value)
    cell.font = Font(bold=True)
    return cell


def _excel_value(v: Any) -> Any:
    """Return a value openpyxl can store: missing → empty cell, NumPy scalars → Python."""
    if v is None or v is pd.NaT:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if isinstance(v, (list, tuple, dict, set)):
        return str(v)
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v


def _excel_column(col: pd.Series) -> list:
    """Return a column as Python values openpyxl can store, converted column-wise (fast)."""
    if pd.api.types.is_bool_dtype(col) or (pd.api.types.is_integer_dtype(col) and \
            not col.hasnans):
        return col.tolist()
    if pd.api.types.is_float_dtype(col):
        values = col.to_numpy(dtype=float)
        return [None if not np.isfinite(v) else v for v in values.tolist()]
    return [_excel_value(v) for v in col.tolist()]


def _append_table(sheet: Worksheet, df: pd.DataFrame) -> None:
    sheet.append([_bold(sheet, str(c)) for c in df.columns])
    for row in zip(*(_excel_column(df[c]) for c in df.columns)):
        sheet.append(list(row))


def write_excel(sheets: dict[str, pd.DataFrame], path: str | Path, *,
                blocks: dict[str, list[tuple[str, pd.DataFrame]]] | None = None,
                root: str | Path | None = None) -> Path:
    """Write tables to one Excel workbook, one sheet each, atomically.

    Parameters
    ----------
    sheets : dict of str to DataFrame
        Sheet name → table. A table longer than Excel's row limit is replaced by a note that
        points to the CSV file.
    path : path
        The ``.xlsx`` file.
    blocks : dict of str to list of (title, DataFrame), optional
        Sheets holding several small tables one under the other, each under a title row
        (the per-measure Prism tables).
    root : path, optional
        The output folder ``path`` must lie in (symbolic links resolved).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from openpyxl import Workbook

    path = Path(path)
    # A streaming (write-only) workbook: pandas' to_excel builds a cell object per value,
    # which made it the slowest serial step of a study run with many objects
    # (figures in benchmarks/RESULTS.md).
    book = Workbook(write_only=True)
    for name, df in sheets.items():
        if len(df) >= EXCEL_MAX_ROWS:
            df = pd.DataFrame({"note": [f"{len(df)} rows exceed Excel's limit; see "
                                        f"{name}.csv"]})
        sheet = book.create_sheet(name[:31])
        sheet.freeze_panes = "A2"
        _append_table(sheet, order_columns(df))
    for name, items in (blocks or {}).items():
        sheet = book.create_sheet(name[:31])
        for title, df in items:
            sheet.append([_bold(sheet, title)])
            _append_table(sheet, df)
            sheet.append([])
    if not book.worksheets:
        book.create_sheet("empty")
    with atomic_path(path, root=root) as tmp:
        book.save(tmp)
    return path
