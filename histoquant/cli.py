"""Command line: ``histoquant ASSAY IMAGE... -o OUTDIR`` and ``histoquant batch FOLDER``.

Every assay subcommand has the same shape::

    histoquant ASSAY IMAGE... [--pixel-size UM] [--regions FILE|auto] [--params FILE]
                              [--channel ROLE=NAME|INDEX ...] [--meta KEY=VALUE ...]
                              [--level L3] [--jobs N] [--resume] [--model M.hqm]
                              -o OUTDIR

and runs as a one-assay study (:func:`histoquant.runner.run_files`).
``histoquant batch FOLDER --blind`` codes names and withholds groups;
``histoquant unblind RESULTS --key KEY`` adds them back (:mod:`histoquant.batch.blinding`).

Exit status: 0 when every image was measured; 1 when an image failed (each failure is a row
of ``errors.csv``, the other images are still measured); 2 when an input shared by every
image is wrong (parameters, region file, study file, output folder), reported once before
any image is read; 130 when a run is interrupted (finished images are kept for
``--resume``). No input prints a Python traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .assays.base import AssaySpec, available_assays
from .errors import HistoquantError
from .io import is_image_file

if TYPE_CHECKING:
    from .params import AssayParams

__all__ = ["main", "build_parser"]


def _channel_arg(text: str) -> tuple[str, str | int]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--channel takes ROLE=NAME|INDEX, got {text!r}")
    role, value = text.split("=", 1)
    return role.strip(), int(value) if value.strip().isdigit() else value.strip()


def _pixel_size_arg(text: str) -> float:
    """``--pixel-size``: a finite positive number of µm within the plausible range.

    Checked when the command line is read, so that ``nan``, ``inf``, ``0`` or ``-1`` stop the
    run at once with one message instead of failing every image.
    """
    from .errors import PixelSizeError
    from .io.limits import check_pixel_size

    try:
        return check_pixel_size(text, "--pixel-size", "the command line")
    except PixelSizeError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--pixel-size: ")) from None


# Computed by the assay itself; a --meta value must not overwrite them.
_RESERVED_META = ("image", "region", "label")


def _meta_arg(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--meta takes KEY=VALUE, got {text!r}")
    key, value = (t.strip() for t in text.split("=", 1))
    if not key.isidentifier():
        raise argparse.ArgumentTypeError(f"--meta key {key!r} is not a plain name "
                                         "(letters, digits, underscore)")
    if key in _RESERVED_META:
        raise argparse.ArgumentTypeError(f"--meta cannot set {key!r}: the assay fills it")
    return key, value


def _add_meta(p: argparse.ArgumentParser) -> None:
    p.add_argument("--meta", action="append", type=_meta_arg, default=[],
                   metavar="KEY=VALUE",
                   help="identifier written as a column of every table row, e.g. animal=R12, "
                        "group=MSC, level=L3, section=s04 (repeatable)")
    p.add_argument("--level", metavar="LEVEL",
                   help="spinal level of the images (L2, L3, ...); same as --meta level=LEVEL")


def _meta_from_args(args: argparse.Namespace) -> dict[str, str]:
    meta = dict(getattr(args, "meta", []) or [])
    if getattr(args, "level", None):
        meta["level"] = args.level
    return meta


def _add_common(p: argparse.ArgumentParser, spec: AssaySpec | None) -> None:
    p.add_argument("-o", "--outdir", required=True, type=Path, help="output folder")
    p.add_argument("--pixel-size", type=_pixel_size_arg, metavar="UM", dest="pixel_size_um",
                   help="pixel size in µm (overrides the file's)")
    p.add_argument("--regions", metavar="FILE|auto",
                   help="ImageJ RoiSet .zip/.roi or QuPath .geojson; 'auto' finds them")
    p.add_argument("--params", metavar="FILE", help="JSON or YAML file of assay parameters")
    roles = ", ".join(r.name for r in spec.channel_roles) if spec else "see each assay"
    p.add_argument("--channel", action="append", type=_channel_arg, default=[],
                   metavar="ROLE=NAME|INDEX", help=f"channel for a role ({roles})")
    if spec is not None and spec.model_steps:
        steps = "; ".join(f"a {s.kind} model ('histoquant train {s.kind}') replaces "
                          f"{s.replaces.split(':')[0]}" for s in spec.model_steps)
        p.add_argument("--model", type=Path, metavar="MODEL.hqm",
                       help=f"a learned model: {steps} (see docs/learning.md)")
    if spec is not None:  # single-assay commands; a study's images are read by the batch runner
        p.add_argument("--modality", choices=("brightfield", "fluorescence"), default=None,
                       help="what the images are (light background and absorbing stain, or "
                            "dark background and emitting stain); detected from the pixels by "
                            "default")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


# Parameters some assays expose as their own flags (they override --params).
_PARAM_FLAGS = {
    "ventral": dict(metavar="auto|down|up|left|right|DEGREES",
                    help="where the ventral side lies: auto-detect, a side of the image, or "
                         "an angle (0 = down, counter-clockwise positive)"),
    "mirrored": dict(action="store_const", const=True,
                     help="sections mounted face-down (animal's left on the image's left "
                          "when dorsal is up)"),
}


def _add_param_flags(p: argparse.ArgumentParser, spec: AssaySpec) -> None:
    names = {f["name"] for f in spec.params_cls.field_info()}
    for name, kwargs in _PARAM_FLAGS.items():
        if name in names:
            p.add_argument(f"--{name}", default=None, **kwargs)


def _params_with_flags(args: argparse.Namespace) -> AssayParams | str | None:
    """``--params`` with any assay flag from ``_PARAM_FLAGS`` applied on top."""
    overrides = {k: getattr(args, k) for k in _PARAM_FLAGS if getattr(args, k, None) is not None}
    if not overrides:
        return args.params
    from .assays.base import resolve_params

    return resolve_params(args.spec.params_cls, args.params).replace(**overrides)


def _add_workers(p: argparse.ArgumentParser) -> None:
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="worker processes on this machine (default 1)")
    p.add_argument("--resume", action="store_true",
                   help="skip images already measured with the same input and settings "
                        "(kept in OUTDIR/.parts)")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser, one subcommand per assay plus ``batch``.

    Returns
    -------
    argparse.ArgumentParser
        The parser of the ``histoquant`` command.
    """
    parser = argparse.ArgumentParser(
        prog="histoquant",
        description="Measure spinal cord sections: motor neurons, Evans Blue, vessels, GFP+ "
                    "cells. Writes summary.csv, objects.csv, labels/, qc/ and run.json.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"histoquant {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, spec in available_assays().items():
        p = sub.add_parser(
            name, help=spec.title, description=spec.title,
            epilog="Exit status 0 when every image was measured, 1 when an image failed (a row "
                   "of errors.csv; the other images are still measured), 2 when the parameters, "
                   "region file or output folder are wrong (reported before any image).")
        p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
        _add_common(p, spec)
        _add_workers(p)
        _add_param_flags(p, spec)
        _add_meta(p)
        p.set_defaults(spec=spec)
    b = sub.add_parser(
        "batch", help="measure a study folder: tables per section and per animal, Prism "
        "tables, QC, report",
        description="Measure every image of a study folder. A study.yaml and a sample sheet "
                    "(samples.csv) in the folder are found by default; see docs/batch.md. "
                    "Exit status 1 when an image failed, 2 when the study is misconfigured, "
                    "130 when interrupted (finished images are kept: rerun with --resume).")
    b.add_argument("folder", type=Path, metavar="STUDY_DIR")
    b.add_argument("-c", "--config", type=Path, metavar="STUDY_YAML",
                   help="study file (default STUDY_DIR/study.yaml)")
    b.add_argument("--samples", type=Path, metavar="SHEET",
                   help="sample sheet, CSV/TSV/Excel (default: the study file's, else "
                        "STUDY_DIR/samples.csv)")
    b.add_argument("--assay", action="append", default=[],
                   help="run only this assay of the study file, or this assay when there is "
                        "no study file (repeatable)")
    _add_workers(b)
    b.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on a Dask distributed cluster, e.g. tcp://10.0.0.5:8786 "
                        "(needs histoquant[dask])")
    _add_common(b, None)
    b.add_argument("--blind", action="store_true",
                   help="blinded run (ARRIVE 2.0): animals and images get random codes and "
                        "every group reads 'blinded' in all outputs, the part store and the "
                        "log; the key goes outside OUTDIR; see docs/blinding.md")
    b.add_argument("--key-out", type=Path, metavar="KEY_CSV",
                   help="where --blind writes its key (default OUTDIR.blinding-key.csv beside "
                        "OUTDIR; never inside it)")
    u = sub.add_parser(
        "unblind", help="add real names, groups and statistics to a blinded study run",
        description="Rebuild every output of a 'batch --blind' run with real animal and image "
                    "names and groups, from its part store (no image is measured again), into "
                    "a new folder; the blinded results stay as they are. Exit status 2 when "
                    "the key is not this run's or the study changed since.")
    u.add_argument("results", type=Path, metavar="RESULTS",
                   help="the blinded run's output folder")
    u.add_argument("--key", type=Path, metavar="KEY_CSV",
                   help="the key the blinded run wrote (default: where it wrote it, "
                        "RESULTS.blinding-key.csv)")
    u.add_argument("-o", "--outdir", type=Path, metavar="OUTDIR",
                   help="folder for the unblinded outputs (default RESULTS-unblinded)")
    u.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    from .learn.cli import add_train_parser
    from .validate.cli import add_validate_parser

    add_train_parser(sub)
    add_validate_parser(sub)
    return parser


class _Bar:
    """The terminal's progress bar for every command: a tqdm bar with ETA on stderr.

    Takes the runs' one progress protocol,
    :data:`~histoquant.batch.execute.BatchProgress` (``done, total, message``); the bar is
    created on the first call, so a run stopped before any image draws nothing.
    """

    def __init__(self, quiet: bool, label: str = "batch"):
        self.quiet, self.label = quiet, label
        self.bar = None

    def __call__(self, done: int, total: int, message: str) -> None:
        if self.quiet:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="image", desc=self.label, file=sys.stderr,
                            dynamic_ncols=True)
        if message:
            self.bar.set_postfix_str(message[-50:], refresh=False)
        self.bar.update(done - self.bar.n)
        if done == total:
            self.bar.close()


def _interrupted(bar: _Bar, outdir: Path) -> int:
    if bar.bar is not None:
        bar.bar.close()
    print(f"\ninterrupted; finished images are kept in {outdir}/.parts — run the same "
          "command with --resume to go on", file=sys.stderr)
    return 130


def _batch(args: argparse.Namespace, channels: dict) -> int:
    from .batch import run_batch

    bar = _Bar(args.quiet)
    try:
        report = run_batch(args.folder, args.outdir, config=args.config, samples=args.samples,
                           assays=args.assay, params=args.params,
                           pixel_size_um=args.pixel_size_um, regions=args.regions,
                           channels=channels, jobs=args.jobs, scheduler=args.scheduler,
                           resume=args.resume, progress=bar, blind=args.blind,
                           key_out=args.key_out)
    except KeyboardInterrupt:
        return _interrupted(bar, args.outdir)
    if args.blind and not args.quiet:
        from .batch.blinding import default_key_path

        key = args.key_out.resolve() if args.key_out else default_key_path(args.outdir)
        print(f"blinded: the key is {key}; keep it from whoever assesses the results, then "
              f"run 'histoquant unblind {args.outdir} --key {key}'", file=sys.stderr)
    if not args.quiet:
        print(f"{report.n_units} image × assay result(s): {report.n_run} measured, "
              f"{report.n_reused} reused, {len(report.errors)} failed; results in "
              f"{report.outdir}", file=sys.stderr)
        for note in report.notes:
            print(f"note: {note}", file=sys.stderr)
        if report.errors:
            print(f"see {report.outdir / 'errors.csv'}", file=sys.stderr)
    return 0 if report.ok else 1


def _unblind(args: argparse.Namespace) -> int:
    from .batch.blinding import unblind

    try:
        report = unblind(args.results, args.key, args.outdir)
    except (HistoquantError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"unblinded {report.n_units} image × assay result(s) into {report.outdir}",
              file=sys.stderr)
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``histoquant`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (``sys.argv[1:]`` when not given).

    Returns
    -------
    int
        The exit status (0 when every image was measured).
    """
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        from .learn.cli import run_train

        return run_train(args)
    if args.command == "unblind":
        return _unblind(args)
    channels = dict(args.channel)
    if getattr(args, "jobs", 1) < 1:
        print("error: --jobs must be 1 or more", file=sys.stderr)
        return 2
    try:
        if args.command == "batch":
            return _batch(args, channels)
        elif args.command == "validate":
            from .validate.cli import run_validate

            return run_validate(args)
        else:
            from .runner import run_files

            missing = [str(p) for p in args.images if not p.exists()]
            if missing:
                parser.error(f"no such file: {', '.join(missing)}")
            not_images = [str(p) for p in args.images if not is_image_file(p)]
            if not_images:
                parser.error(f"not an image file histoquant reads: {', '.join(not_images)}")
            bar = _Bar(args.quiet, args.command)
            try:
                report = run_files(args.spec, args.images, args.outdir,
                                   params=_params_with_flags(args),
                                   pixel_size_um=args.pixel_size_um, regions=args.regions,
                                   channels=channels, progress=bar,
                                   meta=_meta_from_args(args), modality=args.modality,
                                   jobs=args.jobs, resume=args.resume,
                                   model=getattr(args, "model", None))
            except KeyboardInterrupt:
                return _interrupted(bar, args.outdir)
            ok = report.ok
            if not args.quiet:
                reused = f" ({report.n_reused} reused)" if report.n_reused else ""
                print(f"{len(report.results)} image(s) measured{reused}, "
                      f"{len(report.errors)} failed; results in {report.outdir}",
                      file=sys.stderr)
    except HistoquantError as exc:
        # Bad input shared by every image (parameters, region file, study): said once.
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # The output folder cannot be created or written (permissions, full disk).
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        # Per-image errors never reach here (each is a row of errors.csv); this is a fault
        # outside any one image. Say what it was without a Python traceback; the frames go
        # to the log at debug level for a bug report.
        import traceback

        log = logging.getLogger("histoquant")
        log.debug("%s", "".join(traceback.format_exception(exc)))
        print(f"error: unexpected {type(exc).__name__}: {exc} (this is a histoquant bug; "
              "please report it)", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
