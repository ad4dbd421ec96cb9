"""Anatomy and gfp-cells with a pixel classifier in place of their foreground step, on the
real images of ../shared/data (skips what is absent).

Anatomy: a background / white matter / grey matter classifier trained on scribbles of the
atlas drawings of 214_L1 and 238_L2 (as in docs/learning.md, "Pixel classifier"), run as the
anatomy's tissue and grey-matter step on 280_L5 and 290_L6; grey-matter Dice against their
atlas drawings, beside the classical anatomy's. gfp-cells: counts classical vs classifier on
two gfp_twophoton planes (no truth), with a classifier trained on the classical result of
another plane (counted cells / other objects / background).

Usage: python benchmarks/learn_anatomy_gfp_steps.py anatomy|gfp [--stains nissl,neun]
[--qc DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SUFFIX = {"nissl": "nissl", "neun": "NeuN", "chat": "ChAT", "th": "TH"}
TRAIN, TEST = ("214_L1", "238_L2"), ("280_L5", "290_L6")


def _atlas():
    path = ROOT / "benchmarks" / "real_data_refs" / "atlas.py"
    spec = importlib.util.spec_from_file_location("atlas_refs", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["atlas_refs"] = mod
    spec.loader.exec_module(mod)
    return mod


def _scribbles(masks, px, erode_um=20.0, dash_um=80.0):
    """The strokes of tests/test_learn_pixels.py: dashes of the skeleton of each class."""
    from scipy import ndimage as ndi
    from skimage.morphology import skeletonize

    lab = np.zeros(masks[0].shape, np.uint8)
    d = max(2, round(dash_um / px))
    r, c = np.indices(lab.shape)
    dashes = ((r // d + c // d) % 3) == 0
    for k, m in enumerate(masks, 1):
        depth = ndi.distance_transform_edt(m) * px
        lab[skeletonize(depth > erode_um) & dashes] = k
    return lab


def _mouse(atlas, stain, sid):
    from histoquant import read_image

    folder = DATA / "spinal_cord_fluorescent"
    image = read_image(folder / stain / f"{sid}_{SUFFIX[stain]}.jpg")
    image = image.with_pixel_size(2.30 if image.shape_yx[0] == 750 else 2.02)
    return image, atlas.extract_atlas(folder / "atlas" / f"{sid}_atlas.png", image.shape_yx)


def anatomy(stains: list[str], qc: Path | None) -> None:
    from histoquant.assays.anatomy import run
    from histoquant.learn.pixels import train_pixel_classifier

    atlas = _atlas()
    print("stain | section | classical GM Dice | classifier GM Dice | classical tissue | "
          "classifier tissue | s")
    for stain in stains:
        images, labels = [], []
        for sid in TRAIN:
            image, drawn = _mouse(atlas, stain, sid)
            images.append(image)
            labels.append(_scribbles([~drawn.cord, drawn.cord & ~drawn.grey, drawn.grey],
                                     image.pixel_size_um))
        t0 = time.time()
        model = train_pixel_classifier(images, labels,
                                       classes=("background", "white_matter", "grey_matter"))
        print(f"# {stain}: trained in {time.time() - t0:.0f} s, held out "
              f"{model.held_out.get('balanced_accuracy', float('nan')):.3f}")
        for sid in TEST + TRAIN:
            image, drawn = _mouse(atlas, stain, sid)
            out = []
            for m in (None, model):
                t0 = time.time()
                res = run(image, model=m)
                slide = res.extra["anatomy"]
                grey = np.zeros(image.shape_yx, bool)
                tissue = np.zeros(image.shape_yx, bool)
                for s in slide.sections:
                    grey |= s.mask("grey_matter") | s.mask("central_canal")
                    tissue |= s.mask("tissue")
                out.append((atlas.dice(drawn.grey, grey), atlas.dice(drawn.cord, tissue),
                            time.time() - t0, res))
                if qc is not None:
                    qc.mkdir(parents=True, exist_ok=True)
                    from PIL import Image as PILImage

                    tag = "classifier" if m is not None else "classical"
                    PILImage.fromarray(res.qc).save(qc / f"{sid}_{stain}_{tag}.png")
            (gc, tc, _, _), (gm, tm, sec, _) = out
            print(f"{stain} | {sid}{' (train)' if sid in TRAIN else ''} | {gc:.3f} | {gm:.3f} "
                  f"| {tc:.3f} | {tm:.3f} | {sec:.0f}", flush=True)


def _plane(k: int):
    import tifffile

    from histoquant.io import Image

    folder = DATA / "gfp_twophoton"
    data = np.stack([tifffile.imread(folder / "ch0" / f"ch0{k:04d}.tif"),
                     tifffile.imread(folder / "ch1" / f"ch1{k:04d}.tif")], axis=-1)
    return Image(data, axes="YXC", pixel_size_um=2.0, channel_names=("ch0", "ch1"),
                 metadata={"name": f"plane{k}"})


def gfp(qc: Path | None) -> None:
    from histoquant.assays import gfp_cells
    from histoquant.learn.pixels import FeatureSpec, train_pixel_classifier

    ch = {"gfp": 0, "reference": 1}
    train = _plane(3)
    res = gfp_cells.run(train, channels=ch)
    obj = res.objects.drop_duplicates("label")
    lab = np.asarray(res.labels)
    labels = np.ones(train.shape_yx, np.uint8)
    labels[np.isin(lab, obj.loc[obj["class"] != "gfp_cell", "label"])] = 3
    labels[np.isin(lab, obj.loc[obj["class"] == "gfp_cell", "label"])] = 2
    # the planes use 5 % of the 16-bit range: name the channels, or both read as flat
    model = train_pixel_classifier([train], [labels],
                                   classes=("background", "gfp_cell", "other_object"),
                                   n_estimators=30, spec=FeatureSpec(channels=("ch0", "ch1")))
    print(f"# plane 3: classical {int(res.summary['n_gfp_cells'].sum())} (training labels), "
          f"held out {model.held_out.get('balanced_accuracy', float('nan')):.3f}")
    for k in (7, 11):
        image = _plane(k)
        a = gfp_cells.run(image, channels=ch)
        t0 = time.time()
        b = gfp_cells.run(image, channels=ch, model=model)
        oa, ob = a.objects.drop_duplicates("label"), b.objects.drop_duplicates("label")
        on_a = np.isin(np.asarray(a.labels), oa.loc[oa["class"] == "gfp_cell", "label"])
        lb = np.asarray(b.labels)
        agree = sum(1 for v in ob.loc[ob["class"] == "gfp_cell", "label"]
                    if on_a[lb == v].mean() > 0.5)
        print(f"plane{k}: classical {int(a.summary['n_gfp_cells'].sum())}, classifier "
              f"{int(b.summary['n_gfp_cells'].sum())} ({agree} on a classical cell), "
              f"{time.time() - t0:.0f} s", flush=True)
        if qc is not None:
            from PIL import Image as PILImage

            qc.mkdir(parents=True, exist_ok=True)
            PILImage.fromarray(a.qc).save(qc / f"twophoton{k}_classical.png")
            PILImage.fromarray(b.qc).save(qc / f"twophoton{k}_classifier.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("anatomy", "gfp"))
    ap.add_argument("--stains", default="nissl,neun")
    ap.add_argument("--qc", type=Path)
    args = ap.parse_args()
    if args.what == "gfp":
        gfp(args.qc)
    else:
        anatomy(args.stains.split(","), args.qc)


if __name__ == "__main__":
    main()
