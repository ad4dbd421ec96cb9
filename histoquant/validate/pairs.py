"""Manual counts next to the program's: reading the results, the manual sheet, and pairing them.

The program's values come from a results folder: a study run (``sections.csv``, one row per
image × section × region × assay) or a single-assay run (``summary.csv``, one row per image ×
region). The manual sheet has one row per counted image, named by ``image`` (the image's name
or its file path in the study) or by ``code`` (a coded name from ``histoquant validate
sample``, turned back into the image through ``key.csv``, or matched directly when the
results were measured on the coded images themselves), and one column per measure.

An image holding several sections is paired whole — its sections' values combined as its
assay declares for an animal (counts summed, densities averaged) — unless the manual sheet
has a ``section`` column.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import ValidationError
from .key import read_key

__all__ = ["Results", "Paired", "read_results", "read_manual", "pair_values",
           "MANUAL_ID_COLUMNS"]

#: Manual-sheet columns that identify or annotate a row; every other column is a measure.
MANUAL_ID_COLUMNS = ("code", "image", "file", "section", "region", "animal", "group", "level",
                     "notes", "note", "comment", "comments", "counter", "rater", "date")
_TABLE_IDS = ("image", "animal", "group", "level", "section", "region", "assay", "file")


@dataclass
class Results:
    """A results folder as read for validation.

    Attributes
    ----------
    folder : Path
        The folder.
    kind : str
        ``"study"`` (``sections.csv``) or ``"single"`` (``summary.csv``).
    table : pandas.DataFrame
        One row per image (× section) × region (× assay), always with ``image``, ``region``,
        ``section`` (text, ``""`` when absent) and ``assay`` columns.
    """

    folder: Path
    kind: str
    table: pd.DataFrame


@dataclass
class Paired:
    """Manual and automatic values side by side.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per counted image (or section): ``code`` (``""`` without codes), ``image``,
        ``section``, then ``<measure>__manual`` and ``<measure>__auto`` per measure.
    measures : list of str
        The measures paired.
    assay : str
        The assay whose values were used.
    region : str
        The region whose values were used.
    notes : list of str
        What the user should know (measures left blank and skipped).
    """

    table: pd.DataFrame
    measures: list[str]
    assay: str
    region: str
    notes: list[str] = field(default_factory=list)


def read_results(folder: str | Path) -> Results:
    """Read the program's values from a study or single-assay output folder.

    Parameters
    ----------
    folder : path
        Output of ``histoquant batch`` (``sections.csv``) or of an assay command
        (``summary.csv``).

    Returns
    -------
    Results

    Raises
    ------
    ValidationError
        When the folder holds neither table, or it cannot be read.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValidationError(f"{folder}: no such results folder")
    found = [(folder / name, kind) for name, kind in (("sections.csv", "study"),
                                                       ("summary.csv", "single"))
             if (folder / name).is_file()]
    if not found:
        raise ValidationError(f"{folder}: holds neither sections.csv (a 'histoquant batch' "
                              "output) nor summary.csv (an assay command's output)")
    path, kind = found[0]
    try:
        table = pd.read_csv(path, dtype={c: str for c in _TABLE_IDS}, keep_default_na=True,
                            encoding="utf-8-sig")
    except Exception as exc:
        raise ValidationError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc
    if "image" not in table.columns:
        raise ValidationError(f"{path}: has no 'image' column; is it a histoquant table?")
    for col in ("section", "region", "file"):
        table[col] = table[col].fillna("").astype(str) if col in table.columns else ""
    if "assay" not in table.columns:
        table["assay"] = _run_assay(folder)
    table["assay"] = table["assay"].fillna("").astype(str)
    table["image"] = table["image"].astype(str)
    return Results(folder=folder, kind=kind, table=table)


def _run_assay(folder: Path) -> str:
    try:
        return str(json.loads((folder / "run.json").read_text(encoding="utf-8"))["assay"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def read_manual(path: str | Path) -> pd.DataFrame:
    """Read a manual-count sheet (CSV, TSV or Excel), identifiers as text.

    Parameters
    ----------
    path : path
        One row per counted image: ``code`` or ``image`` (and optionally ``section``,
        ``region``), then one column per measure.

    Returns
    -------
    pandas.DataFrame
        Column names stripped and lower-cased for the identifiers; identifiers as text.

    Raises
    ------
    ValidationError
        When the file is missing or unreadable, or has neither ``code`` nor ``image``.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"{path}: no such manual-count sheet")
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
            df = pd.read_excel(path, dtype=object)
        else:
            sep = "\t" if path.suffix.lower() == ".tsv" else None
            df = pd.read_csv(path, dtype=object, sep=sep, engine="python",
                             encoding="utf-8-sig", keep_default_na=False)
    except Exception as exc:
        raise ValidationError(f"{path}: cannot read the manual counts ({type(exc).__name__}: "
                              f"{exc})") from exc
    df.columns = [str(c).strip() for c in df.columns]
    df = df.rename(columns={c: c.lower() for c in df.columns
                            if c.lower() in MANUAL_ID_COLUMNS})
    if "code" not in df.columns and "image" not in df.columns:
        raise ValidationError(f"{path}: needs a 'code' or an 'image' column naming each "
                              f"counted image; it has {', '.join(df.columns) or 'none'}")
    for c in MANUAL_ID_COLUMNS:
        if c in df.columns:
            df[c] = df[c].map(lambda v: "" if v is None or (isinstance(v, float)
                                                             and np.isnan(v)) else str(v).strip())
    # spreadsheets leave blank lines at the end: not rows
    idc = [c for c in ("code", "image") if c in df.columns]
    blank = (df[idc] == "").all(axis=1)
    data_cols = [c for c in df.columns if c not in MANUAL_ID_COLUMNS]
    # column by column: DataFrame.map needs pandas 2.1, the floor is 2.0
    empty_row = blank & df[data_cols].apply(
        lambda col: col.map(lambda v: str(v).strip() in ("", "nan"))).all(axis=1) \
        if data_cols else blank
    if (blank & ~empty_row).any():
        rows = [str(i + 2) for i in np.flatnonzero(blank & ~empty_row)]
        raise ValidationError(f"{path}: row(s) {', '.join(rows)} hold values but no "
                              f"{' or '.join(idc)}")
    return df[~empty_row].reset_index(drop=True)


def _numbers(df: pd.DataFrame, col: str, ids: pd.Series, where: str) -> pd.Series:
    raw = df[col].map(lambda v: "" if v is None else str(v).strip())
    num = pd.to_numeric(raw.replace({"": np.nan, "nan": np.nan, "NaN": np.nan}),
                        errors="coerce")
    bad = raw.ne("") & raw.str.lower().ne("nan") & num.isna()
    if bad.any():
        cells = ", ".join(f"{ids[i]}: {raw[i]!r}" for i in np.flatnonzero(bad)[:8])
        raise ValidationError(f"{where}: column {col!r} holds values that are not numbers "
                              f"({cells})")
    return num.astype(float)


def _map_codes(manual: pd.DataFrame, key_path: Path | None, images: set[str],
               where: str) -> pd.DataFrame:
    """Add ``image``/``file`` (and the key's section) to rows named by code."""
    codes = manual["code"]
    if (codes == "").any():
        rows = [str(i + 2) for i in np.flatnonzero(codes == "")]
        raise ValidationError(f"{where}: row(s) {', '.join(rows)} have no code")
    if key_path is None and set(codes) <= images:
        # results measured on the coded images themselves: codes are the image names
        return manual.assign(image=codes, file="")
    if key_path is None:
        raise ValidationError(f"{where}: rows are named by code, but no key was given and "
                              "the results are not of the coded images; give --key key.csv")
    key = read_key(key_path).set_index("code")
    unknown = sorted(set(codes) - set(key.index))
    if unknown:
        raise ValidationError(f"{where}: code(s) not in the key {key_path}: "
                              f"{', '.join(unknown[:12])}{' ...' if len(unknown) > 12 else ''}")
    out = manual.copy()
    out["image"] = codes.map(key["image"])
    out["file"] = codes.map(key["file"])
    if "section" not in out.columns and "section" in key.columns:
        out["key_section"] = codes.map(key["section"])
    return out


def _choose(values: Sequence[str], given: str | None, what: str, flag: str,
            where: str) -> str:
    values = sorted(set(values))
    if given is not None:
        if given not in values:
            raise ValidationError(f"{where}: {what} {given!r} is not in the results "
                                  f"({', '.join(values)})")
        return given
    if len(values) > 1:
        raise ValidationError(f"{where}: the results hold several {what}s "
                              f"({', '.join(values)}); say which one was counted with {flag}")
    return values[0] if values else ""


def _combine(rows: pd.DataFrame, measures: list[str], assay: str) -> pd.Series:
    """One value per measure from an image's rows (its sections), by the assay's rule."""
    if len(rows) == 1:
        return rows.iloc[0][measures]
    from ..assays.base import get_assay

    try:
        rule = get_assay(assay).measure
    except Exception as exc:
        raise ValidationError(f"image {rows['image'].iloc[0]} has {len(rows)} sections in the "
                              f"results and assay {assay!r} is unknown here, so they cannot be "
                              "combined; add a 'section' column to the manual sheet") from exc
    out = {}
    for m in measures:
        how = rule(m).animal
        vals = rows[m].astype(float)
        if how == "sum":
            out[m] = vals.sum(min_count=1)
        elif how == "weighted":
            w = rows[rule(m).animal_weight].astype(float)
            out[m] = float((vals * w).sum() / w.sum()) if w.sum() > 0 else float("nan")
        else:
            out[m] = vals.mean()
    return pd.Series(out)


def pair_values(results: Results, manual_path: str | Path, *, key: str | Path | None = None,
                assay: str | None = None, region: str | None = None) -> Paired:
    """Pair each manual row with the program's values of the same image.

    Parameters
    ----------
    results : Results
        From :func:`read_results`.
    manual_path : path
        The manual-count sheet (:func:`read_manual`).
    key : path, optional
        ``key.csv`` for sheets named by code (default: ``key.csv`` beside the sheet, when
        there is one and the results are not of the coded images).
    assay : str, optional
        Which assay's values, when the results hold several with these measures.
    region : str, optional
        Which region was counted, when the results hold several (``ventral_horn``...);
        a ``region`` column of the sheet does the same per row.

    Returns
    -------
    Paired
        The paired values.

    Raises
    ------
    ValidationError
        Missing columns, measures not in the results, codes not in the key, images not in
        the results, blank or non-numeric counts, an image listed twice, an ambiguous
        assay or region.
    """
    manual_path = Path(manual_path)
    where = str(manual_path)
    manual = read_manual(manual_path)
    table = results.table
    notes: list[str] = []
    measures = [c for c in manual.columns if c not in MANUAL_ID_COLUMNS]
    if not measures:
        raise ValidationError(f"{where}: no measure column (one per measure counted, named "
                              "as in the results, e.g. n_motor_neurons)")
    missing = [m for m in measures if m not in table.columns]
    if missing:
        known = [c for c in table.columns if c not in _TABLE_IDS
                 and pd.api.types.is_numeric_dtype(table[c])]
        raise ValidationError(f"{where}: measure column(s) {', '.join(missing)} are not in "
                              f"the results; the results have {', '.join(known)}")
    # which measures were counted: a column left entirely blank was not
    ids = manual["code"] if "code" in manual.columns else manual["image"]
    values = {m: _numbers(manual, m, ids, where) for m in measures}
    for m in list(measures):
        if values[m].isna().all():
            notes.append(f"column {m} is blank in the manual sheet: not compared")
            measures.remove(m)
    if not measures:
        raise ValidationError(f"{where}: every measure column is blank; fill in the counts")
    for m in measures:
        blank = values[m].isna()
        if blank.any():
            raise ValidationError(f"{where}: {m} is blank or NaN for {', '.join(ids[blank])}; "
                                  "count them or remove those rows")
    if "code" in manual.columns:
        default_key = manual_path.parent / "key.csv"
        key_path = Path(key) if key is not None else None
        if key_path is None and default_key.is_file() and \
                not set(manual["code"]) <= set(table["image"]):
            key_path = default_key
        manual = _map_codes(manual, key_path, set(table["image"]), where)
    else:
        manual = manual.assign(code="")
    # assay: those whose rows carry every measure
    has = table.dropna(subset=measures, how="all")
    assay = _choose(has["assay"], assay, "assay", "--assay", where)
    rows_a = has[has["assay"] == assay]
    per_row_region = "region" in manual.columns and (manual["region"] != "").all()
    if not per_row_region:
        region = _choose(rows_a["region"], region, "region", "--region", where)
        rows_a = rows_a[rows_a["region"] == region]
    by_file = results.kind == "study" and "file" in manual.columns and \
        (manual["file"] != "").all()
    out_rows = []
    seen: dict[tuple[str, str, str], str] = {}
    for i, r in manual.iterrows():
        name = r["code"] or r["image"]
        if by_file:
            sel = rows_a[rows_a["file"] == r["file"]]
        else:
            sel = rows_a[(rows_a["image"] == r["image"]) | (rows_a["file"] == r["image"])]
        if per_row_region:
            sel = sel[sel["region"] == r["region"]]
        section = r.get("section", "") or ""
        if section:
            sel = sel[sel["section"] == section]
        elif r.get("key_section", ""):
            narrowed = sel[sel["section"] == r["key_section"]]
            sel = narrowed if len(narrowed) else sel
        if sel.empty:
            what = f"image {r['image']}" + (f" section {section}" if section else "") + \
                (f" region {r['region']}" if per_row_region else "")
            raise ValidationError(f"{where}: {name}: {what} is not in the results "
                                  f"{results.folder} (assay {assay})")
        ident = (r["image"], section, r["region"] if per_row_region else "")
        if ident in seen:
            raise ValidationError(f"{where}: {name} and {seen[ident]} are the same image"
                                  f"{' section ' + section if section else ''}; list each once")
        seen[ident] = name
        auto = _combine(sel, measures, assay)
        row = {"code": r["code"], "image": r["image"], "section": section,
               "region": r["region"] if per_row_region else region}
        for m in measures:
            row[f"{m}__manual"] = float(values[m][i])
            row[f"{m}__auto"] = float(auto[m])
        out_rows.append(row)
    paired = pd.DataFrame(out_rows)
    for m in measures:
        bad = ~np.isfinite(paired[f"{m}__auto"])
        if bad.any():
            names = paired.loc[bad, "code"].where(paired.loc[bad, "code"] != "",
                                                  paired.loc[bad, "image"])
            raise ValidationError(f"{m}: the results hold no value for "
                                  f"{', '.join(names)} (a failed or empty measurement)")
    return Paired(table=paired, measures=measures, assay=assay,
                  region="(per row)" if per_row_region else region, notes=notes)
