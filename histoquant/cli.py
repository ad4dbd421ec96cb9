"""Command line: ``histoquant ASSAY IMAGE... -o OUTDIR`` and ``histoquant batch FOLDER``.

Every assay subcommand has the same shape::

    histoquant ASSAY IMAGE... [--pixel-size UM] [--regions FILE|auto] [--params FILE]
                              [--channel ROLE=NAME|INDEX ...] [--meta KEY=VALUE ...]
                              [--level L3] -o OUTDIR
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .assays.base import AssaySpec, available_assays
from .errors import HistoquantError
from .io import is_image_file

__all__ = ["main", "build_parser"]


def _channel_arg(text: str) -> tuple[str, str | int]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--channel takes ROLE=NAME|INDEX, got {text!r}")
    role, value = text.split("=", 1)
    return role.strip(), int(value) if value.strip().isdigit() else value.strip()


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
    p.add_argument("--pixel-size", type=float, metavar="UM", dest="pixel_size_um",
                   help="pixel size in µm (overrides the file's)")
    p.add_argument("--regions", metavar="FILE|auto",
                   help="ImageJ RoiSet .zip/.roi or QuPath .geojson; 'auto' finds them")
    p.add_argument("--params", metavar="FILE", help="JSON or YAML file of assay parameters")
    roles = ", ".join(r.name for r in spec.channel_roles) if spec else "see each assay"
    p.add_argument("--channel", action="append", type=_channel_arg, default=[],
                   metavar="ROLE=NAME|INDEX", help=f"channel for a role ({roles})")
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


def _params_with_flags(args: argparse.Namespace):
    """``--params`` with any assay flag from ``_PARAM_FLAGS`` applied on top."""
    overrides = {k: getattr(args, k) for k in _PARAM_FLAGS if getattr(args, k, None) is not None}
    if not overrides:
        return args.params
    from .assays.base import resolve_params

    return resolve_params(args.spec.params_cls, args.params).replace(**overrides)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, one subcommand per assay plus ``batch``."""
    parser = argparse.ArgumentParser(
        prog="histoquant",
        description="Measure spinal cord sections: motor neurons, Evans Blue, vessels, GFP+ "
                    "cells. Writes summary.csv, objects.csv, labels/, qc/ and run.json.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"histoquant {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, spec in available_assays().items():
        p = sub.add_parser(name, help=spec.title, description=spec.title)
        p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
        _add_common(p, spec)
        _add_param_flags(p, spec)
        _add_meta(p)
        p.set_defaults(spec=spec)
    b = sub.add_parser("batch", help="run assays over every image in a folder",
                       description="Run assays over every image in a folder. Without --assay, "
                                   "a study.yaml in the folder says which assay reads which "
                                   "files.")
    b.add_argument("folder", type=Path)
    b.add_argument("--assay", action="append", default=[], help="assay name (repeatable)")
    b.add_argument("-c", "--config", type=Path, help="study YAML (default FOLDER/study.yaml)")
    _add_common(b, None)
    return parser


class _Progress:
    def __init__(self, quiet: bool, label: str):
        self.quiet, self.label = quiet, label

    def __call__(self, done: int, total: int, message: str) -> None:
        if not self.quiet:
            width = 30
            filled = int(width * done / max(total, 1))
            print(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                  f"{message[:60]:<60}", end="\n" if done == total else "", file=sys.stderr,
                  flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``histoquant`` command; returns the exit status."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    channels = dict(args.channel)
    try:
        if args.command == "batch":
            from .batch import run_batch

            ok = run_batch(args.folder, args.outdir, assays=args.assay, config=args.config,
                           params=args.params, pixel_size_um=args.pixel_size_um,
                           regions=args.regions, channels=channels,
                           progress=_Progress(args.quiet, "batch"))
        else:
            from .runner import run_files

            missing = [str(p) for p in args.images if not p.exists()]
            if missing:
                parser.error(f"no such file: {', '.join(missing)}")
            not_images = [str(p) for p in args.images if not is_image_file(p)]
            if not_images:
                parser.error(f"not an image file histoquant reads: {', '.join(not_images)}")
            report = run_files(args.spec, args.images, args.outdir,
                               params=_params_with_flags(args),
                               pixel_size_um=args.pixel_size_um, regions=args.regions,
                               channels=channels, progress=_Progress(args.quiet, args.command),
                               meta=_meta_from_args(args))
            ok = report.ok
            if not args.quiet:
                print(f"{len(report.results)} image(s) measured, {len(report.errors)} failed; "
                      f"results in {report.outdir}", file=sys.stderr)
    except HistoquantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
