"""Anatomy and gfp-cells with a pixel classifier in place of their foreground step, on the
real images of ../shared/data (skips what is absent).

Anatomy: a background / white matter / grey matter classifier trained on scribbles of the
atlas drawings of 214_L1 and 238_L2 (as in docs/learning.md, "Pixel classifier"), run as the
anatomy's tissue and grey-matter step on 280_L5 and 290_L6; grey-matter Dice against their
atlas drawings, beside the classical anatomy's. gfp-cells: counts classical vs classifier on
gfp_dapi (a loose reference: 163 GFP+ of 216 nuclei) and two gfp_twophoton planes, with a
classifier trained on labels made from the classical result of another image (see --help).

Usage: python benchmarks/learn_anatomy_gfp_steps.py [anatomy|gfp] [--stains nissl,neun]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("anatomy",))
    ap.add_argument("--stains", default="nissl,neun")
    ap.add_argument("--qc", type=Path)
    args = ap.parse_args()
    anatomy(args.stains.split(","), args.qc)


if __name__ == "__main__":
    main()
