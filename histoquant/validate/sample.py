"""A blinded, stratified random sample of a study's sections for manual counting.

:func:`write_blinded_sample` reads the study with the batch planner
(:func:`~histoquant.batch.plan.plan_study`), draws ``n`` images spread as evenly as possible
over the group × level strata (:func:`allocate`, :func:`pick_stratified`; the same seed, the
same pick), and writes::

    OUT/images/V001.tif ...     the picked images under codes, in random order: give the
                                counter this folder only
    OUT/manual_counts.csv       a blank sheet: code + one column per measure to count
    OUT/key.csv                 code → original file, animal, group, level, section
    OUT/strata.csv              how many images each group × level had and gave

The sampling unit is an image file: a whole-slide image holding several sections is picked
(and copied) whole; its sections are then counted together, or one row per section with a
``section`` column in the manual sheet.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..batch.samples import Sample, natural_key
from ..io.readers import IMAGE_SUFFIXES
from ..io.safe_paths import OutputFolder, safe_file_name
from .errors import ValidationError
from .key import KEY_COLUMNS, write_table

__all__ = ["BlindedSample", "allocate", "pick_stratified", "write_blinded_sample",
           "default_measures", "coded_suffix"]

Stratum = tuple[str, str]  # (group, level)


@dataclass
class BlindedSample:
    """What :func:`write_blinded_sample` wrote.

    Attributes
    ----------
    outdir : Path
        The output folder.
    key : pandas.DataFrame
        The key (``key.csv``), one row per code.
    strata : pandas.DataFrame
        Per group × level: ``available`` and ``picked``.
    measures : list of str
        The columns of the blank manual sheet.
    warnings : list of str
        Coded images whose metadata still names the original (see the docs).
    notes : list of str
        The planner's notes (skipped files...).
    """

    outdir: Path
    key: pd.DataFrame
    strata: pd.DataFrame
    measures: list[str]
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def allocate(sizes: Mapping[Stratum, int], n: int, rng: np.random.Generator) -> dict[Stratum,
                                                                                      int]:
    """Share ``n`` picks among strata as evenly as their sizes allow.

    Each round gives every stratum with images left the same share; what cannot be shared
    evenly goes to strata drawn at random, and a stratum with too few images passes its
    remainder on to the others.

    Parameters
    ----------
    sizes : mapping of stratum → int
        Images available per stratum.
    n : int
        Images to pick, at most ``sum(sizes)``.
    rng : numpy.random.Generator
        Draws the strata that get one more.

    Returns
    -------
    dict of stratum → int
        Picks per stratum (every stratum of ``sizes``, zeros included).

    Examples
    --------
    >>> import numpy as np
    >>> allocate({("a", "L3"): 5, ("b", "L3"): 1}, 4, np.random.default_rng(0))
    {('a', 'L3'): 3, ('b', 'L3'): 1}
    """
    quota = {s: 0 for s in sizes}
    left = min(n, sum(sizes.values()))
    while left > 0:
        open_ = [s for s in sizes if quota[s] < sizes[s]]
        share = left // len(open_)
        if share == 0:
            for i in rng.choice(len(open_), size=left, replace=False):
                quota[open_[int(i)]] += 1
            break
        for s in open_:
            take = min(share, sizes[s] - quota[s])
            quota[s] += take
            left -= take
    return quota


def pick_stratified(samples: Sequence[Sample], n: int, seed: int | None = 0,
                    groups: Sequence[str] = ()) -> tuple[list[Sample], pd.DataFrame]:
    """Draw ``n`` samples spread evenly over group × level, in a random (coded) order.

    Parameters
    ----------
    samples : sequence of Sample
        The study's images.
    n : int
        How many to draw (1 … ``len(samples)``).
    seed : int, optional
        Random seed: the same seed and study give the same pick and order.
    groups : sequence of str
        Group order for the strata table (the study file's).

    Returns
    -------
    picked : list of Sample
        In the order the codes are given: shuffled, so that codes say nothing of the strata.
    strata : pandas.DataFrame
        ``group``, ``level``, ``available``, ``picked``.

    Raises
    ------
    ValidationError
        When ``n`` is below 1 or above the number of images.
    """
    if n < 1:
        raise ValidationError(f"-n must be 1 or more, not {n}")
    if n > len(samples):
        raise ValidationError(f"-n {n}: the study has only {len(samples)} image(s) to "
                              "sample from")
    rng = np.random.default_rng(seed)
    rank = {g: i for i, g in enumerate(groups)}
    by: dict[Stratum, list[Sample]] = {}
    for s in sorted(samples, key=lambda s: natural_key(s.rel)):
        by.setdefault((s.group, s.level), []).append(s)
    order = sorted(by, key=lambda k: (rank.get(k[0], len(rank)), natural_key(k[0]),
                                      natural_key(k[1])))
    quota = allocate({k: len(by[k]) for k in order}, n, rng)
    picked: list[Sample] = []
    for k in order:
        idx = sorted(rng.choice(len(by[k]), size=quota[k], replace=False).tolist())
        picked.extend(by[k][i] for i in idx)
    picked = [picked[i] for i in rng.permutation(len(picked))]
    strata = pd.DataFrame([{"group": g, "level": lv, "available": len(by[(g, lv)]),
                            "picked": quota[(g, lv)]} for g, lv in order],
                          columns=["group", "level", "available", "picked"])
    return picked, strata


def coded_suffix(path: Path) -> str:
    """Return the image suffix a coded copy keeps (``.ome.tif`` of ``R01_L3.ome.tif``).

    Parameters
    ----------
    path : Path
        The original image file or folder.

    Returns
    -------
    str
        The longest known image suffix the name ends with, in its original case.
    """
    lower = path.name.lower()
    best = max((s for s in IMAGE_SUFFIXES if lower.endswith(s)), key=len, default=path.suffix)
    return path.name[len(path.name) - len(best):]


def default_measures(assays: Sequence[object]) -> list[str]:
    """Return the headline count of each assay: its first declared count measure.

    Parameters
    ----------
    assays : sequence of AssaySpec
        The study's assays.

    Returns
    -------
    list of str
        ``n_motor_neurons``, ``n_gfp_cells``..., each once, in the assays' order.
    """
    out: list[str] = []
    for spec in assays:
        for m in getattr(spec, "measures", ()):
            if m.unit == "count" and not any(ch in m.name for ch in "*?["):
                if m.name not in out:
                    out.append(m.name)
                break
    return out


def _check_measures(measures: Sequence[str], specs: Sequence[object]) -> list[str]:
    """Return the manual sheet's columns: those asked for, each declared by a study assay."""
    if not measures:
        found = default_measures(specs)
        if not found:
            raise ValidationError("the study's assays declare no count to use as a column of "
                                  "the manual sheet; name the measures with --measure")
        return found
    declared = {m.name for spec in specs for m in getattr(spec, "measures", ())}
    unknown = [m for m in measures
               if not any(_spec_has(spec, m) for spec in specs)]
    if unknown:
        raise ValidationError(f"--measure {', '.join(unknown)}: not a measure of the study's "
                              f"assays ({', '.join(sorted(declared))})")
    return list(dict.fromkeys(measures))


def _spec_has(spec: object, name: str) -> bool:
    """Whether an assay declares a summary column ``name`` (globs included)."""
    from ..assays.contract import find_measure

    return find_measure(getattr(spec, "measures", ()), name) is not None


def _metadata_leaks(path: Path, words: Sequence[str]) -> list[str]:
    """Words (original name, animal, group) found in an image file's text metadata.

    Only text a viewer shows (TIFF text tags, OME-XML, PNG text chunks) is searched: a
    search of the pixel bytes would find any three letters by chance.
    """
    texts: list[str] = []
    lower = path.name.lower()
    try:
        if lower.endswith((".tif", ".tiff")):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                for page in tif.pages[:4]:
                    texts.extend(str(t.value) for t in page.tags.values()
                                 if isinstance(t.value, (str, bytes)))
        elif lower.endswith(".png"):
            from PIL import Image as PILImage

            with PILImage.open(path) as im:
                texts.extend(str(v) for v in im.info.values() if isinstance(v, (str, bytes)))
    except Exception:  # an unreadable copy is the counter's problem, not a leak
        return []
    blob = "\n".join(texts).lower()
    return sorted({w for w in words if len(w) >= 3 and w.lower() in blob})


def write_blinded_sample(
    study: str | Path,
    outdir: str | Path,
    n: int,
    *,
    seed: int | None = 0,
    config: str | Path | None = None,
    samples: str | Path | None = None,
    measures: Sequence[str] = (),
) -> BlindedSample:
    """Draw a stratified sample of a study's images and write it blinded for manual counting.

    Parameters
    ----------
    study : path
        The study folder (as for ``histoquant batch``).
    outdir : path
        Output folder; it must not hold a sample already (``key.csv`` or ``images/``).
    n : int
        How many images to draw.
    seed : int, optional
        Random seed (the same seed, the same sample and codes).
    config, samples : path, optional
        Study file and sample sheet (defaults as for the batch).
    measures : sequence of str
        Columns of the blank manual sheet (default: each assay's headline count,
        :func:`default_measures`).

    Returns
    -------
    BlindedSample
        The key, the strata table, and warnings.

    Raises
    ------
    ValidationError
        ``n`` out of range, or the output folder already holds a sample (a key once
        counted against must never be overwritten).
    StudyError
        When the study cannot be read (as the batch would say).
    OutputPathError
        When a file would land outside ``outdir``.
    """
    from ..batch.plan import plan_study
    from ..batch.tables import group_order

    outdir = Path(outdir).resolve()
    out = OutputFolder(outdir)
    if out.path("key.csv").exists() or out.path("images").exists():
        raise ValidationError(f"{outdir} already holds a blinded sample (key.csv or images/); "
                              "choose a new output folder: a key that counts were made "
                              "against must not be replaced")
    existed, had_parts = outdir.exists(), (outdir / ".parts").exists()
    try:
        # The output folder is the plan's: the planner leaves it out of the images it finds,
        # so coded copies inside the study folder are never taken for study images.
        plan = plan_study(study, outdir, config=config, samples=samples)
        cfg = plan.config
        specs = [a.spec for a in cfg.assays.values()]
        measures = _check_measures(measures, specs)
        # an unreadable file (a failed unit of the batch) cannot be counted either
        pool = sorted((s for s in plan.samples.values() if s.rel in plan.inputs),
                      key=lambda s: natural_key(s.rel))
        notes = list(plan.notes)
        if len(pool) < len(plan.samples):
            notes.append(f"{len(plan.samples) - len(pool)} unreadable image(s) left out of "
                         "the draw")
        groups = group_order(pool, cfg.group_order)
        picked, strata = pick_stratified(pool, n, seed, groups)
    finally:
        if not had_parts:  # the planner's hash cache names the originals: not left here
            shutil.rmtree(outdir / ".parts", ignore_errors=True)
        if not existed and outdir.is_dir() and not any(outdir.iterdir()):
            outdir.rmdir()
    width = max(3, len(str(len(picked))))
    rows, warns = [], []
    images = out.path("images")
    images.mkdir(parents=True)
    for i, s in enumerate(picked, start=1):
        code = f"V{i:0{width}d}"
        name = safe_file_name(code, suffix=coded_suffix(s.path).lower())
        dest = out.path("images", name)
        if s.path.is_dir():  # OME-Zarr
            shutil.copytree(s.path, dest)
        else:
            shutil.copyfile(s.path, dest)
            os.chmod(dest, 0o644)
        leaks = _metadata_leaks(dest, [s.image, Path(s.rel).name, s.animal, s.group])
        if leaks:
            warns.append(f"{name}: the file's own metadata still holds {', '.join(leaks)}; "
                         "a viewer showing it unblinds the counter")
        rows.append({"code": code, "coded_file": f"images/{name}", "file": s.rel,
                     "image": s.image, "animal": s.animal, "group": s.group, "level": s.level,
                     "section": s.section,
                     "pixel_size_um": "" if s.pixel_size_um is None else s.pixel_size_um,
                     "sha256": plan.inputs.get(s.rel, "")})
    key = pd.DataFrame(rows, columns=list(KEY_COLUMNS))
    write_table(key, out.path("key.csv"))
    sheet = pd.DataFrame({"code": sorted(key["code"])})
    for m in measures:
        sheet[m] = ""
    write_table(sheet, out.path("manual_counts.csv"))
    write_table(strata, out.path("strata.csv"))
    return BlindedSample(outdir=outdir, key=key, strata=strata, measures=list(measures),
                         warnings=warns, notes=notes)
