r"""Finding the study's images and what each one is: animal, group, spinal level, section.

The metadata comes from a sample sheet (CSV, TSV or Excel), one row per file or glob::

    file,animal,group,level,section,pixel_size_um,channels,roi
    R01/R01_L3_s1.tif,R01,vehicle,L3,1,,,
    R01/slide_*.ome.tif,R01,vehicle,L4,,0.5,,rois/R01.zip

or from the file names, with a regular expression whose named groups give the fields
(``(?P<animal>R\\d+)_(?P<level>L\\d)_s(?P<section>\\d+)``), the groups then coming from the
pattern, a ``groups`` mapping in the study file, or a sheet with one row per animal (columns
``animal``, ``group``). Every problem is collected and reported at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..io import is_image_file
from .config import StudyConfig, StudyError, glob_match

__all__ = ["Sample", "find_images", "discover", "read_sample_sheet", "build_samples",
           "SHEET_NAMES", "natural_key"]

SHEET_NAMES = ("samples.csv", "samples.tsv", "samples.xlsx", "sample_sheet.csv",
               "sample_sheet.xlsx")

# accepted spellings of the sheet's columns
_ALIASES = {
    "file": ("file", "path", "filename", "file_name", "image", "image_file"),
    "animal": ("animal", "animal_id", "rat", "subject", "mouse"),
    "group": ("group", "treatment", "condition"),
    "level": ("level", "spinal_level", "segment"),
    "section": ("section", "section_id", "slice"),
    "pixel_size_um": ("pixel_size_um", "pixel_size", "pixel_um", "um_per_pixel"),
    "channels": ("channels", "channel_names"),
    "roi": ("roi", "rois", "roi_file", "regions"),
    "assay": ("assay", "assays"),
    "split_sections": ("split_sections", "sections", "whole_slide"),
}
_LEVEL = re.compile(r"^[CTLS]\d{1,2}([-/][CTLS]?\d{1,2})?$")
_TRUE = {"1", "true", "yes", "y", "split", "auto"}
_FALSE = {"", "0", "false", "no", "n", "single"}
NO_LEVEL = "all"


@dataclass(frozen=True)
class Sample:
    """One image file of the study and what it shows."""

    path: Path
    rel: str
    image: str
    animal: str
    group: str
    level: str = NO_LEVEL
    section: str = ""
    pixel_size_um: float | None = None
    channel_names: tuple[str, ...] | None = None
    roi: Path | None = None
    assays: tuple[str, ...] | None = None
    split_sections: bool | None = None


def natural_key(text: str) -> tuple:
    """Return a sort key that puts R2 before R10.

    Parameters
    ----------
    text : str
        The name.

    Returns
    -------
    tuple
        Runs of digits as integers, the rest lower-cased.
    """
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(text)))


def find_images(folder: str | Path, patterns: Iterable[str] = ("*",),
                recursive: bool = True) -> list[Path]:
    """Return the image files under ``folder`` whose relative path matches any glob, sorted by path.

    Parameters
    ----------
    folder : str or pathlib.Path
        The study folder.
    patterns : iterable of str
        Globs on the path relative to ``folder`` (see :func:`~histoquant.batch.config.glob_match`).
    recursive : bool
        Whether sub-folders are searched.

    Returns
    -------
    list of pathlib.Path
        The image files (an OME-Zarr folder counts as one file).
    """
    images, _ = discover(folder, recursive=recursive)
    pats = list(patterns)
    folder = Path(folder)
    return [p for p in images
            if any(glob_match(p.relative_to(folder).as_posix(), g) for g in pats)]


def discover(folder: str | Path, *, recursive: bool = True,
             skip: Iterable[Path] = (),
             notes: list[str] | None = None) -> tuple[list[Path], list[Path]]:
    """Image files and other files under ``folder``.

    Hidden files and folders, and the folders in ``skip`` (the output folder), are left out;
    an OME-Zarr folder is one image. Symbolic links are followed, but each real folder is
    walked and each real file found once: a link that loops back to a folder above it, or
    reaches a folder or image already found another way, is skipped with a note (without
    this a looping link made the batch measure one image dozens of times).

    Parameters
    ----------
    folder : path
        The study folder.
    recursive : bool
        Look into sub-folders.
    skip : iterable of Path
        Folders to leave out (compared by real path).
    notes : list of str, optional
        Receives a line listing the links skipped (loops, repeats), for the batch report.

    Returns
    -------
    images, others : list of Path
        Both sorted by path (the path through which each was first reached).
    """
    folder = Path(folder)
    # realpath, not Path.resolve(): on a link loop the latter raises (Python < 3.13)
    skip = {os.path.realpath(s) for s in skip}
    images: list[Path] = []
    others: list[Path] = []
    loops: list[str] = []
    repeats: list[str] = []
    # real path -> the path it was first reached by (folders and image files)
    seen: dict[str, Path] = {os.path.realpath(folder): folder}

    def first_visit(entry: Path, real: str, parent_real: str) -> bool:
        if real not in seen:
            seen[real] = entry
            return True
        rel, first = _rel(entry, folder), _rel(seen[real], folder) or "."
        if parent_real == real or parent_real.startswith(real.rstrip(os.sep) + os.sep):
            loops.append(f"{rel} (a link back to {first})")
        else:
            repeats.append(f"{rel} (the same as {first})")
        return False

    def walk(d: Path, d_real: str) -> None:
        for entry in sorted(d.iterdir()):
            if entry.name.startswith("."):
                continue
            real = os.path.realpath(entry)
            if real in skip:
                continue
            if entry.is_dir():
                if not first_visit(entry, real, d_real):
                    continue
                if is_image_file(entry) or (entry / ".zattrs").exists() or \
                        (entry / "zarr.json").exists():
                    images.append(entry)
                elif recursive:
                    walk(entry, real)
            elif is_image_file(entry):
                if first_visit(entry, real, d_real):
                    images.append(entry)
            else:
                others.append(entry)

    walk(folder, os.path.realpath(folder))
    if notes is not None:
        if loops:
            notes.append(f"{len(loops)} folder link(s) that loop skipped: "
                         f"{', '.join(loops[:8])}{' ...' if len(loops) > 8 else ''}")
        if repeats:
            notes.append(f"{len(repeats)} link(s) to a folder or image already found skipped "
                         f"(each is measured once): "
                         f"{', '.join(repeats[:8])}{' ...' if len(repeats) > 8 else ''}")
    return images, others


def _rel(path: Path, folder: Path) -> str:
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return path.as_posix()


def read_sample_sheet(path: str | Path) -> pd.DataFrame:
    """Read a CSV/TSV/Excel sample sheet as text, with column names normalised.

    Parameters
    ----------
    path : str or pathlib.Path
        The ``.csv``, ``.tsv`` or ``.xlsx`` file.

    Returns
    -------
    pandas.DataFrame
        One row per file or glob, every value a stripped string.

    Raises
    ------
    StudyError
        When the file cannot be read or has no ``animal`` column.
    """
    path = Path(path)
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
            df = pd.read_excel(path, dtype=str, keep_default_na=False)
        else:
            sep = "\t" if path.suffix.lower() == ".tsv" else None
            df = pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep,
                             engine="python", encoding="utf-8-sig")
    except Exception as exc:
        raise StudyError([f"cannot read the sample sheet ({type(exc).__name__}: {exc})"],
                         str(path)) from exc
    rename = {}
    for col in df.columns:
        norm = re.sub(r"[\s\-/]+", "_", str(col).strip().lower())
        norm = norm.replace("(µm)", "um").replace("µm", "um")
        for key, names in _ALIASES.items():
            if norm in names:
                rename[col] = key
    df = df.rename(columns=rename)
    df = df.loc[:, ~df.columns.duplicated()]
    df = df.apply(lambda s: s.astype(str).str.strip())
    # rows that are entirely blank (trailing lines in spreadsheets) are not samples
    df = df[(df != "").any(axis=1)].reset_index(drop=True)
    if "animal" not in df.columns:
        raise StudyError([f"the sample sheet needs an 'animal' column; it has "
                          f"{', '.join(map(str, df.columns))}"], str(path))
    return df


def image_names(images: list[Path], folder: Path) -> dict[Path, str]:
    """Return each image's name in the tables: its file stem, unique among ``images``.

    Two files of the same stem in different folders keep their folder (relative to
    ``folder``) in the name, so their rows and QC pictures never collide.

    Parameters
    ----------
    images : list of pathlib.Path
        The image files, under ``folder``.
    folder : pathlib.Path
        The folder names are made relative to.

    Returns
    -------
    dict of pathlib.Path to str
        File → name (``.ome.tif`` and ``.ome.zarr`` count as one suffix).
    """
    from ..io.image import _stem

    stems = [_stem(p) for p in images]
    out = {}
    for p, s in zip(images, stems):
        if stems.count(s) > 1:  # same name in two folders: keep the folder in the name
            rel = p.relative_to(folder).as_posix()
            out[p] = rel[: len(rel) - len(p.name)] + s
        else:
            out[p] = s
    return out


def _level(value: str, where: str, problems: list[str]) -> str:
    v = value.strip().upper().replace(" ", "")
    if not v:
        problems.append(f"{where}: the spinal level is missing")
        return NO_LEVEL
    if not _LEVEL.match(v):
        problems.append(f"{where}: level {value!r} is not a spinal level such as L3, L4 or T13")
    return v


def _pixel(value: str, where: str, problems: list[str]) -> float | None:
    if not value:
        return None
    try:
        v = float(value)
        if not 0 < v <= 1000:
            raise ValueError
        return v
    except ValueError:
        problems.append(f"{where}: pixel size {value!r} is not a positive number of µm")
        return None


def _split(value: str, where: str, problems: list[str]) -> bool | None:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return None if v == "" else False
    problems.append(f"{where}: split_sections {value!r} is not yes/no")
    return None


def _row_fields(row: Mapping[str, str], where: str, folder: Path, sheet_dir: Path,
                problems: list[str], known_assays: Iterable[str]) -> dict:
    out: dict = {}
    if "level" in row:
        out["level"] = _level(row["level"], where, problems)
    if row.get("section"):
        out["section"] = row["section"]
    if "pixel_size_um" in row:
        out["pixel_size_um"] = _pixel(row["pixel_size_um"], where, problems)
    if row.get("channels"):
        out["channel_names"] = tuple(c.strip() for c in re.split(r"[;,|]", row["channels"])
                                     if c.strip())
    if row.get("roi"):
        rp = Path(row["roi"])
        cands = [rp] if rp.is_absolute() else [folder / rp, sheet_dir / rp]
        found = next((c for c in cands if c.exists()), None)
        if found is None:
            problems.append(f"{where}: ROI file {row['roi']!r} not found")
        else:
            try:
                from ..rois import read_regions

                read_regions(found)
                out["roi"] = found
            except Exception as exc:
                problems.append(f"{where}: ROI file {row['roi']!r} unreadable ({exc})")
    if row.get("assay"):
        names = tuple(a.strip().replace("_", "-") for a in re.split(r"[;,|]", row["assay"])
                      if a.strip())
        bad = [a for a in names if a not in known_assays]
        if bad:
            problems.append(f"{where}: assay {', '.join(bad)} is not in the study file "
                            f"({', '.join(known_assays)})")
        out["assays"] = names
    if "split_sections" in row:
        out["split_sections"] = _split(row["split_sections"], where, problems)
    return out


def build_samples(
    cfg: StudyConfig,
    images: list[Path],
    *,
    sheet: pd.DataFrame | None = None,
    sheet_path: Path | None = None,
    selected: Iterable[Path] | None = None,
) -> tuple[dict[Path, Sample], list[str]]:
    """Attach study metadata to each image.

    Parameters
    ----------
    cfg : StudyConfig
        The study (pattern, groups).
    images : list of Path
        Every image found in the study folder.
    sheet : DataFrame, optional
        The sample sheet (:func:`read_sample_sheet`); a sheet with a ``file`` column defines the
        study's images, one without names the groups of animals matched by ``cfg.pattern``.
    sheet_path : Path, optional
        Where the sheet is (for messages and relative ROI paths).
    selected : iterable of Path, optional
        The images some assay reads; only they need metadata (default: all).

    Returns
    -------
    samples : dict of Path to Sample
        One per image of the study.
    notes : list of str
        Images left out, and how metadata was found.

    Raises
    ------
    StudyError
        Listing every missing or contradictory piece of metadata.
    """
    folder = cfg.folder
    problems: list[str] = []
    notes: list[str] = []
    names = image_names(images, folder)
    selected = list(images if selected is None else selected)
    rels = {p: p.relative_to(folder).as_posix() for p in images}
    sheet_name = sheet_path.name if sheet_path else "sample sheet"
    sheet_dir = sheet_path.parent if sheet_path else folder
    known = tuple(cfg.assays)
    found: dict[Path, dict] = {}
    file_sheet = sheet is not None and "file" in sheet.columns

    if file_sheet:
        required = [c for c in ("animal", "group") if c not in sheet.columns]
        if required and not (required == ["group"] and cfg.group_of_animal):
            problems.append(f"{sheet_name}: missing column(s) {', '.join(required)}")
        by_file: dict[Path, list[tuple[int, dict]]] = {}
        for i, row in sheet.iterrows():
            where = f"{sheet_name} row {i + 2}"  # row 1 is the header
            pat = row["file"]
            if not pat:
                problems.append(f"{where}: the file is missing")
                continue
            fields = {"animal": row.get("animal", ""), "group": row.get("group", "")}
            if not fields["animal"]:
                problems.append(f"{where} ({pat}): the animal is missing")
            fields.update(_row_fields(row, f"{where} ({pat})", folder, sheet_dir, problems,
                                      known))
            is_glob = any(ch in pat for ch in "*?[")
            pat_posix = pat.replace("\\", "/")
            if pat_posix.startswith("./"):
                pat_posix = pat_posix[2:]
            matches = [p for p in images if glob_match(rels[p], pat_posix)]
            if not is_glob and len(matches) > 1:
                exact = [p for p in matches if rels[p] == pat_posix]
                if len(exact) == 1:
                    matches = exact
                else:
                    problems.append(f"{where}: {pat!r} names {len(matches)} files "
                                    f"({', '.join(rels[p] for p in matches[:4])}); give "
                                    "the path from the study folder")
                    continue
            if not matches:
                problems.append(f"{where}: {pat!r} matches no image file in {folder}")
            for p in matches:
                by_file.setdefault(p, []).append((i + 2, fields))
        for p, rows in by_file.items():
            first_line, first = rows[0]
            for line, other in rows[1:]:
                diff = sorted(k for k in set(first) | set(other)
                              if first.get(k) != other.get(k))
                if diff:
                    problems.append(
                        f"{rels[p]}: rows {first_line} and {line} of {sheet_name} disagree on "
                        f"{', '.join(diff)}")
            found[p] = dict(first)
        left = [rels[p] for p in images if p not in by_file]
        if left:
            notes.append(f"{len(left)} image(s) not in {sheet_name}, left out: "
                         f"{', '.join(left[:10])}{' ...' if len(left) > 10 else ''}")
        selected = [p for p in selected if p in by_file]
    elif cfg.pattern:
        rx = re.compile(cfg.pattern)
        per_animal: dict[str, dict] = {}
        if sheet is not None:
            for i, row in sheet.iterrows():
                where = f"{sheet_name} row {i + 2}"
                if not row["animal"]:
                    problems.append(f"{where}: the animal is missing")
                    continue
                if row["animal"] in per_animal:
                    problems.append(f"{where}: animal {row['animal']} is listed twice")
                per_animal[row["animal"]] = {"group": row.get("group", "")}
        for p in selected:
            m = rx.search(rels[p])
            if not m:
                problems.append(f"{rels[p]}: the file name does not match the pattern "
                                f"{cfg.pattern!r}")
                continue
            g = {k: v for k, v in m.groupdict().items() if v is not None}
            fields = {"animal": g.get("animal", ""), "group": g.get("group", "")}
            if "level" in g:
                fields["level"] = _level(g["level"], rels[p], problems)
            if g.get("section"):
                fields["section"] = g["section"]
            if not fields["group"] and fields["animal"] in per_animal:
                fields["group"] = per_animal[fields["animal"]]["group"]
            found[p] = fields
        if sheet is not None:
            unseen = sorted(set(per_animal) - {f["animal"] for f in found.values()},
                            key=natural_key)
            if unseen:
                notes.append(f"animal(s) in {sheet_name} with no image: {', '.join(unseen)}")
    elif sheet is not None:
        problems.append(f"{sheet_name}: has no 'file' column, so a filename pattern is needed "
                        "to tie images to animals (add 'pattern:' to the study file)")
    else:
        notes.append("no sample sheet and no filename pattern: each image is its own animal, "
                     "in one group 'all'")
        for p in selected:
            found[p] = {"animal": names[p], "group": "all"}

    samples: dict[Path, Sample] = {}
    for p in selected:
        f = found.get(p)
        if f is None:
            continue
        animal = f.get("animal", "")
        group = f.get("group", "") or cfg.group_of_animal.get(animal, "")
        if animal and cfg.group_of_animal.get(animal, group) != group:
            problems.append(f"{rels[p]}: animal {animal} is in group {group} here but in "
                            f"{cfg.group_of_animal[animal]} in the study file's groups")
        if animal and not group:
            problems.append(f"{rels[p]}: no group for animal {animal} (give it in the sample "
                            "sheet or the study file's groups)")
        samples[p] = Sample(path=p, rel=rels[p], image=names[p], animal=animal, group=group,
                            **{k: v for k, v in f.items() if k not in ("animal", "group")})
    # an animal belongs to one group
    groups_of: dict[str, set[str]] = {}
    for s in samples.values():
        if s.animal:
            groups_of.setdefault(s.animal, set()).add(s.group)
    for animal, gs in sorted(groups_of.items(), key=lambda kv: natural_key(kv[0])):
        if len(gs) > 1:
            problems.append(f"animal {animal} is in more than one group: "
                            f"{', '.join(sorted(gs))}")
    if cfg.group_order:
        extra = sorted({s.group for s in samples.values()} - set(cfg.group_order))
        if extra:
            problems.append(f"group(s) {', '.join(extra)} not in the study file's groups "
                            f"({', '.join(cfg.group_order)})")
    if problems:
        raise StudyError(problems, "sample metadata")
    return samples, notes
