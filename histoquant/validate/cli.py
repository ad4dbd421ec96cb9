"""``histoquant validate sample`` and ``histoquant validate compare`` on the command line.

::

    histoquant validate sample STUDY -n N -o OUT [--seed S] [--config study.yaml]
                               [--samples SHEET] [--measure NAME ...]
    histoquant validate compare RESULTS MANUAL.csv [--key key.csv] [--labels DIR] [-o OUT]
                                [--assay NAME] [--region NAME]

Exit status 0 on success, 2 for bad input (a clear message, no traceback).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import HistoquantError

__all__ = ["add_validate_parser", "run_validate"]


def add_validate_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``validate`` command and its ``sample`` and ``compare`` subcommands.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``histoquant`` command's subparsers.

    Returns
    -------
    argparse.ArgumentParser
        The ``validate`` parser.
    """
    v = subparsers.add_parser(
        "validate", help="check the program against manual counts: blinded sample, agreement",
        description="Validation against manual counts (docs/validation.md): 'sample' draws a "
                    "blinded, stratified sample of a study's images to count by hand; "
                    "'compare' computes ICC, Bland–Altman and % error of the program's values "
                    "against the counts. Exit status 2 for bad input.")
    v.set_defaults(channel=[])  # the assay commands' --channel, read by histoquant.cli.main
    sub = v.add_subparsers(dest="validate_command", required=True)
    s = sub.add_parser(
        "sample", help="draw a stratified random sample of a study's images under codes",
        description="Pick N images spread evenly over group × level, copy them under codes "
                    "into OUT/images/ (give the counter only that folder), and write "
                    "OUT/manual_counts.csv (blank) and OUT/key.csv (code → image; keep it "
                    "from the counter).")
    s.add_argument("study", type=Path, metavar="STUDY_DIR")
    s.add_argument("-n", type=int, required=True, metavar="N", help="images to draw")
    s.add_argument("-o", "--outdir", type=Path, required=True, metavar="OUT",
                   help="new output folder")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0): the same "
                   "seed, the same sample and codes")
    s.add_argument("-c", "--config", type=Path, metavar="STUDY_YAML",
                   help="study file (default STUDY_DIR/study.yaml)")
    s.add_argument("--samples", type=Path, metavar="SHEET", help="sample sheet (default: the "
                   "study file's, else STUDY_DIR/samples.csv)")
    s.add_argument("--measure", action="append", default=[], metavar="NAME",
                   help="a column of the manual sheet (repeatable; default: each assay's "
                        "headline count, e.g. n_motor_neurons)")
    c = sub.add_parser(
        "compare", help="agreement of the program's values with manual counts",
        description="Per measure: ICC(2,1) with 95 % CI, Bland–Altman bias and limits of "
                    "agreement, mean absolute % error; object precision/recall/F1 with "
                    "--labels. Writes validation.csv and validation.html (into RESULTS by "
                    "default, where the study report shows them).")
    c.add_argument("results", type=Path, metavar="RESULTS",
                   help="output folder of 'histoquant batch' or of an assay command")
    c.add_argument("manual", type=Path, metavar="MANUAL",
                   help="manual counts (CSV/TSV/Excel): 'code' or 'image', then one column "
                        "per measure")
    c.add_argument("--key", type=Path, metavar="KEY_CSV",
                   help="key.csv of the blinded sample (default: beside MANUAL)")
    c.add_argument("--labels", type=Path, metavar="DIR",
                   help="manual label images (V001.tif...) for object precision/recall/F1")
    c.add_argument("-o", "--outdir", type=Path, metavar="OUT",
                   help="where to write (default: RESULTS)")
    c.add_argument("--assay", help="the assay counted, when RESULTS holds several")
    c.add_argument("--region", help="the region counted, when RESULTS holds several")
    for p in (s, c):
        p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    return v


def _fmt(v: float, spec: str = ".3g") -> str:
    return "–" if v != v else format(v, spec)


def _sample(args: argparse.Namespace) -> int:
    from .sample import write_blinded_sample

    res = write_blinded_sample(args.study, args.outdir, args.n, seed=args.seed,
                               config=args.config, samples=args.samples,
                               measures=args.measure)
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if not args.quiet:
        print(f"{len(res.key)} image(s) drawn (seed {args.seed}), per group × level:",
              file=sys.stderr)
        print(res.strata.to_string(index=False), file=sys.stderr)
        print(f"coded images: {res.outdir / 'images'} (give the counter this folder only)\n"
              f"blank sheet:  {res.outdir / 'manual_counts.csv'} "
              f"({', '.join(res.measures)})\n"
              f"key:          {res.outdir / 'key.csv'} (keep it from the counter)",
              file=sys.stderr)
        for note in res.notes:
            print(f"note: {note}", file=sys.stderr)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .compare import compare_counts

    res = compare_counts(args.results, args.manual, key=args.key, labels=args.labels,
                         outdir=args.outdir, assay=args.assay, region=args.region)
    if not args.quiet:
        for _, r in res.table.iterrows():
            if r["measure"] == "objects":
                print(f"objects: precision {_fmt(r['precision'])}, recall "
                      f"{_fmt(r['recall'])}, F1 {_fmt(r['f1'])} at IoU ≥ "
                      f"{r['iou_threshold']:g} ({int(r['n_pairs'])} image(s))", file=sys.stderr)
                continue
            print(f"{r['measure']}: n = {int(r['n_pairs'])}, ICC {_fmt(r['icc'])} "
                  f"[{_fmt(r['icc_ci_low'], '.2f')}, {_fmt(r['icc_ci_high'], '.2f')}], bias "
                  f"{_fmt(r['bias'])}, limits of agreement {_fmt(r['loa_low'])} to "
                  f"{_fmt(r['loa_high'])}, MAPE {_fmt(r['mape_pct'])} %", file=sys.stderr)
        for note in res.notes:
            print(f"note: {note}", file=sys.stderr)
        print(f"written: {', '.join(str(f) for f in res.files)}", file=sys.stderr)
    return 0


def run_validate(args: argparse.Namespace) -> int:
    """Run ``histoquant validate sample|compare`` from parsed arguments.

    Parameters
    ----------
    args : argparse.Namespace
        From the parser :func:`add_validate_parser` added.

    Returns
    -------
    int
        0 on success; 2 for bad input (the message printed, no traceback).
    """
    try:
        if args.validate_command == "sample":
            return _sample(args)
        return _compare(args)
    except HistoquantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
