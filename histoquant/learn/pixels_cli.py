r"""``histoquant train pixels``: train a pixel classifier from the command line.

::

    histoquant train pixels --images A.tif B.tif --labels A_mask.tif B_mask.tif \\
        --classes background,grey_matter,white_matter [--pixel-size UM] \\
        [--channel NAME|INDEX ...] [--sigma-min UM] [--sigma-max UM] -o m.hqm

Label images are single-channel, one per image in the same order, on the image's grid:
0 = unlabelled, ``k`` = the ``k``-th name of ``--classes``; dense masks or scribbles.
Training shows a progress bar and prints the held-out score.

:func:`add_pixels_parser` adds the subcommand to the ``train`` command group's subparsers;
:func:`run_train_pixels` runs it. Exit status: 0 on success, 2 on bad input (one message, no
traceback).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import HistoquantError, TrainingDataError

__all__ = ["add_pixels_parser", "run_train_pixels", "main"]


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number is needed, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"a positive finite number is needed, got {text!r}")
    return value


def add_pixels_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``pixels`` subcommand to the ``train`` group's subparsers.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``train``'s parser returned from ``add_subparsers``.

    Returns
    -------
    argparse.ArgumentParser
        The ``pixels`` parser (its ``func`` default is :func:`run_train_pixels`).
    """
    from ..cli import _pixel_size_arg

    p = subparsers.add_parser(
        "pixels", help="pixel classifier (random forest on multiscale features) from masks or "
        "scribbles",
        description="Train a pixel classifier from label images: 0 = unlabelled, k = the k-th "
                    "class of --classes (dense masks or sparse scribbles). Prints the held-out "
                    "score. Exit status 2 on bad input.")
    p.add_argument("--images", nargs="+", type=Path, required=True, metavar="IMAGE")
    p.add_argument("--labels", nargs="+", type=Path, required=True, metavar="LABELS",
                   help="one label image per image, same order")
    p.add_argument("--classes", required=True, metavar="A,B,...",
                   help="class names, comma-separated, in label-value order (1, 2, ...)")
    p.add_argument("--pixel-size", dest="pixel_size_um", type=_pixel_size_arg, metavar="UM",
                   help="pixel size (µm) of every image, overriding the files'")
    p.add_argument("--channel", action="append", default=[], metavar="NAME|INDEX",
                   help="channel to learn from (repeatable; default all). Ignored for "
                        "brightfield RGB, which uses stain densities")
    p.add_argument("--sigma-min", type=_positive, default=1.0, metavar="UM",
                   help="smallest feature scale, µm (default 1)")
    p.add_argument("--sigma-max", type=_positive, default=16.0, metavar="UM",
                   help="largest feature scale, µm (default 16)")
    p.add_argument("--max-samples", type=int, default=20_000, metavar="N",
                   help="labelled pixels used per class at most (default 20000)")
    p.add_argument("--trees", type=int, default=100, metavar="N",
                   help="trees in the forest (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", type=Path, required=True, metavar="MODEL.hqm")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train_pixels)
    return p


def _read_labels(path: Path) -> Any:
    import numpy as np

    from ..io import read_image

    return np.asarray(read_image(path).plane())


def run_train_pixels(args: argparse.Namespace) -> int:
    """Run ``histoquant train pixels`` with parsed arguments.

    Parameters
    ----------
    args : argparse.Namespace
        From the parser :func:`add_pixels_parser` made.

    Returns
    -------
    int
        0 on success, 2 on bad input (the message is printed).
    """
    from ..io import read_image
    from .features import FeatureSpec
    from .pixels import save_pixel_classifier, train_pixel_classifier

    bar = None
    try:
        if len(args.images) != len(args.labels):
            raise TrainingDataError(f"{len(args.images)} image(s) but {len(args.labels)} label "
                                    "image(s); give one label image per image, same order")
        missing = [str(p) for p in [*args.images, *args.labels] if not p.exists()]
        if missing:
            raise TrainingDataError(f"no such file: {', '.join(missing)}")
        classes = [c.strip() for c in args.classes.split(",")]
        channels = tuple(int(c) if str(c).isdigit() else c for c in args.channel) or None
        spec = FeatureSpec(sigma_min_um=args.sigma_min, sigma_max_um=args.sigma_max,
                           channels=channels)
        images = [read_image(p) for p in args.images]
        labels = [_read_labels(p) for p in args.labels]
        if not args.quiet:
            from tqdm import tqdm

            bar = tqdm(total=100, desc="train pixels", unit="%", file=sys.stderr,
                       dynamic_ncols=True)

        def progress(fraction: float, message: str) -> None:
            if bar is not None:
                bar.set_postfix_str(message[-40:], refresh=False)
                bar.update(round(100 * fraction) - bar.n)

        model = train_pixel_classifier(images, labels, classes=classes,
                                       pixel_size_um=args.pixel_size_um, spec=spec,
                                       max_samples_per_class=args.max_samples,
                                       n_estimators=args.trees, seed=args.seed,
                                       progress=progress)
        if bar is not None:
            bar.close()
        path = save_pixel_classifier(model, args.output)
    except HistoquantError as exc:
        if bar is not None:
            bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    held = model.held_out
    recall = ", ".join(f"{k} {v:.3f}" for k, v in held.get("recall", {}).items())
    print(f"held-out balanced accuracy {held.get('balanced_accuracy', float('nan')):.3f} "
          f"({held.get('method', '')}){'; recall ' + recall if recall else ''}")
    print(f"model written to {path} (classes {', '.join(model.classes)}; "
          f"{model.pixel_size_um:g} µm/px)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``train pixels`` on its own (``python -m histoquant.learn.pixels_cli pixels ...``).

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after ``train`` (``sys.argv[1:]`` when not given).

    Returns
    -------
    int
        The exit status.
    """
    parser = argparse.ArgumentParser(prog="histoquant train")
    sub = parser.add_subparsers(dest="what", required=True)
    add_pixels_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
