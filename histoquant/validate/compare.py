"""``histoquant validate compare``: agreement of the program with manual counts, written out.

:func:`compare_counts` pairs the manual sheet with a results folder
(:func:`~histoquant.validate.pairs.pair_values`), computes per measure the ICC, Bland–Altman
bias and limits and the mean absolute % error (:func:`~histoquant.validate.agreement.agreement`),
optionally object precision/recall/F1 against manual label images
(:func:`~histoquant.validate.objects.score_objects`), and writes into the output folder
(by default the results folder itself)::

    validation.csv          one row per measure (and an ``objects`` row with label images)
    validation_pairs.csv    every manual value beside the program's
    validation_objects.csv  per-image object matching (with label images)
    validation.html         the table, a Bland–Altman and an identity plot per measure

A study report (``report.html``) in the output folder gets the agreement table too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..io.safe_paths import OutputFolder
from ..output import write_bytes
from .agreement import agreement
from .key import write_table
from .objects import ObjectScores, score_objects
from .pairs import Paired, pair_values, read_results

__all__ = ["Comparison", "compare_counts", "VALIDATION_COLUMNS"]

#: Columns of ``validation.csv``, in order.
VALIDATION_COLUMNS = [
    "measure", "assay", "region", "n_pairs", "mean_manual", "mean_auto", "icc_kind", "icc",
    "icc_ci_low", "icc_ci_high", "bias", "bias_ci_low", "bias_ci_high", "sd_diff", "loa_low",
    "loa_high", "loa_low_ci_low", "loa_low_ci_high", "loa_high_ci_low", "loa_high_ci_high",
    "mape_pct", "n_mape", "iou_threshold", "tp", "fp", "fn", "precision", "recall", "f1"]


@dataclass
class Comparison:
    """What :func:`compare_counts` found and wrote.

    Attributes
    ----------
    table : pandas.DataFrame
        ``validation.csv``.
    paired : Paired
        The paired values.
    objects : ObjectScores or None
        Object matching, when label images were given.
    files : list of Path
        The files written.
    notes : list of str
        What the user should know.
    """

    table: pd.DataFrame
    paired: Paired
    objects: ObjectScores | None
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def compare_counts(results: str | Path, manual: str | Path, *, key: str | Path | None = None,
                   labels: str | Path | None = None, outdir: str | Path | None = None,
                   assay: str | None = None, region: str | None = None,
                   iou_threshold: float = 0.5) -> Comparison:
    """Compare the program's values with manual counts and write the validation files.

    Parameters
    ----------
    results : path
        A ``histoquant batch`` output (``sections.csv``) or an assay command's output
        (``summary.csv``).
    manual : path
        Manual-count sheet: ``code`` or ``image``, then one column per measure.
    key : path, optional
        ``key.csv`` of a blinded sample (default: the one beside ``manual``, when needed).
    labels : path, optional
        Folder of manual label images (``V001.tif``...) for object precision/recall/F1.
    outdir : path, optional
        Where to write (default: the results folder).
    assay, region : str, optional
        Which assay and region were counted, when the results hold several.
    iou_threshold : float
        Smallest IoU of an object match.

    Returns
    -------
    Comparison

    Raises
    ------
    ValidationError
        Bad or mismatched inputs, or fewer than 3 pairs.
    DependencyError
        When pingouin (``histoquant[stats]``) is missing.
    OutputPathError
        When a file would land outside ``outdir``.
    """
    res = read_results(results)
    paired = pair_values(res, manual, key=key, assay=assay, region=region)
    notes = list(paired.notes)
    rows = []
    for m in paired.measures:
        a = agreement(paired.table[f"{m}__auto"], paired.table[f"{m}__manual"], what=m)
        rows.append({"measure": m, "assay": paired.assay, "region": paired.region,
                     **a.row()})
        if a.icc != a.icc:  # NaN: no variance between sections to agree on
            notes.append(f"{m}: every section has the same value, so the ICC is undefined; "
                         "count sections that differ")
        elif a.icc_ci_low != a.icc_ci_low:
            notes.append(f"{m}: every pair agrees exactly; the ICC is 1 and has no CI")
        if a.n_mape < a.n_pairs:
            notes.append(f"{m}: {a.n_pairs - a.n_mape} section(s) with a manual value of 0 "
                         "left out of the mean absolute % error")
    objects = None
    if labels is not None:
        objects = score_objects(paired.table, labels, res.folder, iou_threshold)
        t = objects.total
        rows.append({"measure": "objects", "assay": paired.assay, "region": paired.region,
                     "n_pairs": len(objects.per_image), "iou_threshold": iou_threshold,
                     "tp": t.true_positives, "fp": t.false_positives,
                     "fn": t.false_negatives, "precision": t.precision, "recall": t.recall,
                     "f1": t.f1})
        if objects.missing:
            notes.append(f"no manual label image for {', '.join(objects.missing)}: object "
                         "scores leave them out")
    table = pd.DataFrame(rows).reindex(columns=VALIDATION_COLUMNS)
    out = OutputFolder(Path(outdir) if outdir is not None else res.folder)
    out.root.mkdir(parents=True, exist_ok=True)
    files = [write_table(table, out.path("validation.csv")),
             write_table(paired.table, out.path("validation_pairs.csv"))]
    if objects is not None:
        files.append(write_table(objects.per_image, out.path("validation_objects.csv")))
    from .report import build_validation_html

    page = build_validation_html(table, paired, objects,
                                 title=f"Validation against manual counts: {res.folder.name}",
                                 notes=notes)
    files.append(write_bytes(page.encode("utf-8"), out.path("validation.html")))
    study_report = out.path("report.html")
    if res.kind == "study" and study_report.is_file() and \
            out.root.resolve() == res.folder.resolve():
        from ..batch.report import with_validation

        page = with_validation(study_report.read_text(encoding="utf-8"), table)
        files.append(write_bytes(page.encode("utf-8"), study_report))
    return Comparison(table=table, paired=paired, objects=objects, files=files, notes=notes)
