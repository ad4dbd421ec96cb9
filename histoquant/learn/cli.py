"""``histoquant train KIND ...``: teach histoquant a lab's stain and write a ``.hqm`` model.

``histoquant train objects --assay gfp-cells --images A.tif B.tif [--channel ROLE=NAME|INDEX
...] [--pixel-size UM] --labels points.csv -o m.hqm`` runs the assay on each image (a progress
bar), finds the object under each point of ``points.csv`` (columns ``image`` = file stem,
``x_px, y_px`` or ``x_um, y_um``, ``class``), trains the object classifier
(:mod:`histoquant.learn.objects`), prints its cross-validated score and writes the model.

``histoquant train somata --images A.tif B.tif --labels A_labels.tif B_labels.tif -o m.hqm``
trains the soma engine (:mod:`histoquant.learn.somata`) from instance label images, and
``histoquant train pixels`` the pixel classifier (:mod:`histoquant.learn.pixels_cli`).

Each kind is one sub-command of the ``train`` group: :func:`add_train_parser` adds the group
and every kind's parser, :func:`run_train` dispatches on ``args.train_kind``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import HistoquantError

__all__ = ["add_train_parser", "run_train"]


def _add_objects(kinds: argparse._SubParsersAction) -> None:
    from ..cli import _channel_arg, _pixel_size_arg
    from .objects import COUNTING

    p = kinds.add_parser(
        "objects", help="object classifier: which detected objects to count, from points",
        description="Run an assay on the images, label the object under each point of "
                    "--labels with the point's class, train a random forest on the objects' "
                    "measurements and write it as a model file. Exit status 0 when the model "
                    "was written, 2 when an input is wrong (the message says which).")
    p.add_argument("--assay", required=True, choices=sorted(COUNTING),
                   help="the assay that detects and measures the objects")
    p.add_argument("--images", required=True, nargs="+", type=Path, metavar="IMAGE",
                   help="training images (the points' image column is their file stem)")
    p.add_argument("--labels", required=True, type=Path, metavar="POINTS_CSV",
                   help="points: image, x_px, y_px (or x_um, y_um), class")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="MODEL_HQM",
                   help="model file to write (.hqm)")
    p.add_argument("--channel", action="append", type=_channel_arg, default=[],
                   metavar="ROLE=NAME|INDEX", help="channel for a role of the assay")
    p.add_argument("--pixel-size", type=_pixel_size_arg, metavar="UM", dest="pixel_size_um",
                   help="pixel size in µm (overrides the files')")
    p.add_argument("--params", metavar="FILE",
                   help="JSON or YAML file of assay parameters used to detect the objects")
    p.add_argument("--keep", action="append", default=None, metavar="CLASS",
                   help="a class the assay counts (repeatable); default: the assay's own "
                        "counted class name (gfp_cell, motor_neuron) when the points use it")
    p.add_argument("--trees", type=int, default=200, metavar="N",
                   help="trees in the random forest (default 200)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def _run_objects(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from ..assays.base import get_assay, resolve_params
    from ..io import is_image_file, read_image
    from .modelfile import image_record
    from .objects import label_points, read_points, save_object_model, train_objects

    missing = [str(p) for p in args.images if not p.is_file()]
    not_images = [str(p) for p in args.images if p.is_file() and not is_image_file(p)]
    if missing or not_images:
        raise HistoquantError(
            "; ".join(filter(None, [missing and f"no such file: {', '.join(missing)}",
                                    not_images and "not an image file histoquant reads: "
                                                   f"{', '.join(not_images)}"])))
    if args.trees < 1:
        raise HistoquantError("--trees must be 1 or more")
    spec = get_assay(args.assay)
    params = resolve_params(spec.params_cls, args.params)
    channels = dict(args.channel)
    points = read_points(args.labels)  # bad points stop the run before any image is read
    results = {}
    with tqdm(total=len(args.images) + 1, desc=f"train objects ({args.assay})", unit="step",
              file=sys.stderr, disable=args.quiet, dynamic_ncols=True) as bar:
        for path in args.images:
            bar.set_postfix_str(f"detecting {path.name}"[-50:])
            image = read_image(path, args.pixel_size_um)
            result = spec.run(image, params=params, channels=channels or None)
            if result.image in results:
                raise HistoquantError(f"two training images are named {result.image!r}: "
                                      "points could not tell them apart")
            results[result.image] = result
            bar.update(1)
        bar.set_postfix_str("training")
        examples = label_points(results, points)
        training = train_objects(examples, assay=args.assay, keep=args.keep,
                                 n_estimators=args.trees)
        bar.update(1)
    sizes = [r.pixel_size_um for r in results.values() if r.pixel_size_um]
    out = save_object_model(args.output, training,
                            pixel_size_um=float(np.median(sizes)) if sizes else None,
                            training_images=[image_record(p) for p in args.images],
                            params=params.to_dict(), channels=channels)
    s = training.scores
    recall = ", ".join(f"{c} {v:.0%}" for c, v in s["cv_recall"].items())
    counts = ", ".join(f"{c} {n}" for c, n in s["n_per_class"].items())
    print(f"held-out ({s['cv_folds']}-fold cross-validation over {len(examples)} labelled "
          f"objects: {counts}): accuracy {s['cv_accuracy']:.1%}, balanced accuracy "
          f"{s['cv_balanced_accuracy']:.1%}; recall per class: {recall}")
    if "rule_accuracy" in s:
        print(f"the hand-set rules on the same objects: accuracy {s['rule_accuracy']:.1%} "
              f"(counted or not)")
    print(f"kept (counted) classes: {', '.join(training.kept)}; features: "
          f"{', '.join(training.features)}")
    print(f"model written to {out}")
    return 0


# Each kind of model: (add its parser to the train group, run it). Other kinds join here.
def _add_somata(kinds: argparse._SubParsersAction) -> None:
    from ..cli import _pixel_size_arg

    p = kinds.add_parser(
        "somata", help="soma engine: instance segmentation of somata, from label images",
        description="Train the learned soma engine (a boundary-aware pixel forest, a seeded "
                    "watershed and an object forest; histoquant.learn.somata) from instance "
                    "label images, one per image in the same order (0 = not a soma; every "
                    "soma drawn). Prints the out-of-fold scores. Exit status 2 on bad input.")
    p.add_argument("--images", required=True, nargs="+", type=Path, metavar="IMAGE")
    p.add_argument("--labels", required=True, nargs="+", type=Path, metavar="LABELS",
                   help="one instance label image per image, same order")
    p.add_argument("--pixel-size", type=_pixel_size_arg, metavar="UM", dest="pixel_size_um",
                   help="pixel size in µm of every image (overrides the files')")
    p.add_argument("--trees", type=int, default=50, metavar="N",
                   help="trees in each forest (default 50)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, type=Path, metavar="MODEL_HQM",
                   help="model file to write (.hqm)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def _run_somata(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from ..errors import TrainingDataError
    from ..io import read_image
    from .somata import save_soma_model, train_soma_model

    if len(args.images) != len(args.labels):
        raise TrainingDataError(f"{len(args.images)} image(s) but {len(args.labels)} label "
                                "image(s); give one label image per image, same order")
    missing = [str(q) for q in [*args.images, *args.labels] if not q.exists()]
    if missing:
        raise TrainingDataError(f"no such file: {', '.join(missing)}")
    # reading is quick; training is one step the forests do not report on
    bar = tqdm(total=len(args.images) + 1, desc="train somata", unit="step", file=sys.stderr,
               dynamic_ncols=True, disable=args.quiet)
    try:
        images, labels = [], []
        for img, lab in zip(args.images, args.labels):
            images.append(read_image(img, args.pixel_size_um))
            labels.append(np.asarray(read_image(lab).plane()))
            bar.update(1)
        bar.set_postfix_str("fitting the forests", refresh=True)
        model = train_soma_model(images, labels, n_estimators=args.trees, seed=args.seed)
        bar.update(1)
    finally:
        bar.close()
    path = save_soma_model(args.output, model)
    for name, score in zip(args.images, model.manifest["scores"]["out_of_fold"]):
        print(f"{name.name}: out-of-fold candidate F1 {score['candidates_f1']:.3f} "
              f"(precision {score['candidates_precision']:.3f}, recall "
              f"{score['candidates_recall']:.3f}; before the object forest)")
    print(f"model written to {path}")
    return 0


_KINDS: dict[str, tuple[Callable[[argparse._SubParsersAction], None],
                        Callable[[argparse.Namespace], int]]] = {
    "objects": (_add_objects, _run_objects),
    "pixels": (lambda kinds: _pixels_cli().add_pixels_parser(kinds),
               lambda args: _pixels_cli().run_train_pixels(args)),
    "somata": (_add_somata, _run_somata),
}


def _pixels_cli():
    from . import pixels_cli

    return pixels_cli


def add_train_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` command and its kinds to the ``histoquant`` parser.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``histoquant`` parser's sub-commands.

    Returns
    -------
    argparse.ArgumentParser
        The ``train`` parser (its kinds under ``args.train_kind``).
    """
    train = subparsers.add_parser(
        "train", help="train a model on your own images and labels (writes a .hqm file)",
        description="Teach histoquant your stain from a few annotations; the model file is "
                    "used with --model. See docs/learning.md.")
    kinds = train.add_subparsers(dest="train_kind", required=True, metavar="KIND")
    for add, _ in _KINDS.values():
        add(kinds)
    return train


def run_train(args: argparse.Namespace) -> int:
    """Run ``histoquant train KIND``.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments of a ``train`` command.

    Returns
    -------
    int
        0 when the model was written; 2 when an input is wrong (message on stderr).
    """
    _, run = _KINDS[args.train_kind]
    try:
        return run(args)
    except HistoquantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
