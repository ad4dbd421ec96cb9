"""A pixel classifier as the foreground of evans-blue and vasculature, on the real images.

Usage::

    python benchmarks/pixel_steps_real.py [QC_FOLDER [tracer] [drive]]

Reads ``../shared/data`` (skips what is absent); writes each QC overlay to ``QC_FOLDER``
(default ``/tmp/pixel_steps_qc``).

**Tracer leakage** (5 fields, R vessels, G tracer, B DAPI, 0.69 µm/px): a background / tracer
classifier is trained on fields 01 and 02, labelled by the ImageJ macro's own tracer mask
(its rule, G > 25: the overlay it saves holds only the extravascular part), and the
extravascular tracer area of fields 03–05 is compared with the macro's
(``*_DextranOverlay.tif``, green), as ``benchmarks/compare_tracer_macro.py`` does for the
threshold: the classifier in place of the tracer threshold, the macro's vessel rule for the
rest. Beside it, the assay with the macro's rule (the classical replica) and with its
automatic defaults.

**DRIVE** (5 fundus photographs, inverted green channel, lengths in px): a background /
vessel classifier is trained on images 01 and 02 from observer 1's tracing (inside the field
of view), and the skeleton length of 03–05 is compared with both observers', against the
ridge filter with the documented DRIVE settings (``tests/test_vasculature.py``).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TRACER_PX = 0.69
MACRO = {
    "background_method": "none", "flatfield": "none",
    "threshold_method": "fixed", "threshold": 25, "seed_ratio": 1.0, "min_patch_area_um2": 0,
    "vessel_threshold_method": "fixed", "vessel_threshold": 30, "vessel_min_area_um2": 0,
    "vessel_margin_um": 0,
}
DRIVE_PARAMS = {"vessel_scales_um": [1.0, 2.0, 4.0], "min_vessel_area_um2": 20,
                "threshold_high": 2.5, "threshold_low": 0.5, "max_gap_um": 10,
                "edge_level_pct": 35}
FOREST = {"n_estimators": 50, "max_samples_per_class": 20_000, "seed": 0}


def _save(qc: np.ndarray, folder: Path, name: str) -> None:
    from PIL import Image as PILImage

    folder.mkdir(parents=True, exist_ok=True)
    PILImage.fromarray(qc).save(folder / f"{name}.png")


def tracer(out: Path) -> pd.DataFrame | None:
    """Extravascular tracer area (µm²) of fields 03–05: macro, classical, classifier."""
    import tifffile

    from histoquant.assays import evans_blue as eb
    from histoquant.io import read_image
    from histoquant.learn.pixels import train_pixel_classifier

    folder = DATA / "tracer_leakage"
    if not folder.is_dir():
        print(f"{folder} is absent")
        return None
    channels = {"evb": "G", "vessel": "R"}
    fields = sorted((folder / "fov").glob("*.jpg"))
    images = {p.stem: read_image(p, pixel_size_um=TRACER_PX) for p in fields}
    train = ["01", "02"]
    labels = [np.where(images[k].plane()[..., 1] > 25, 2, 1).astype(np.uint8) for k in train]
    t0 = time.perf_counter()
    model = train_pixel_classifier([images[k] for k in train], labels,
                                   classes=("background", "tracer"), **FOREST)
    print(f"tracer classifier: trained in {time.perf_counter() - t0:.1f} s on {train}; "
          f"held-out balanced accuracy {model.held_out.get('balanced_accuracy', np.nan):.3f}")
    rows = []
    for name, image in images.items():
        if name in train:
            continue
        overlay = tifffile.imread(folder / "mask_macro_output" / f"{name}_DextranOverlay.tif")
        row = {"field": name,
               "macro_um2": float((overlay[..., 1] > 0).sum()) * TRACER_PX ** 2}
        for label, params, model_ in (("macro rule", MACRO, None), ("auto (defaults)", None, None),
                                      ("classifier", MACRO, model)):
            t0 = time.perf_counter()
            res = eb.run(image, params=params, channels=channels, model=model_)
            row[label] = float(res.summary.iloc[0].extravascular_area_um2)
            row[label + " s"] = time.perf_counter() - t0
            _save(res.qc, out, f"tracer_{name}_{label.split()[0]}")
        rows.append(row)
    table = pd.DataFrame(rows).set_index("field")
    for label in ("macro rule", "auto (defaults)", "classifier"):
        table[label + " / macro"] = table[label] / table["macro_um2"]
    return table


def drive(out: Path) -> pd.DataFrame | None:
    """Skeleton length (px) of DRIVE 03–05: observers, ridge filter, classifier."""
    from PIL import Image as PILImage

    from histoquant.assays import vasculature as va
    from histoquant.io import Image
    from histoquant.learn.pixels import train_pixel_classifier
    from histoquant.measure.skeleton import trace_skeleton

    folder = DATA / "vessels" / "drive"
    if not folder.is_dir():
        print(f"{folder} is absent")
        return None

    def load(i: int) -> tuple[Image, np.ndarray, np.ndarray, np.ndarray]:
        rgb = np.asarray(PILImage.open(folder / "images" / f"{i:02d}_test.tif"))
        image = Image(255 - rgb[..., 1].astype(np.float32), pixel_size_um=1.0,
                      metadata={"name": f"{i:02d}_test"})
        fov = np.asarray(PILImage.open(folder / "fov" / f"{i:02d}_test_mask.gif")) > 0
        m1 = np.asarray(PILImage.open(folder / "manual1" / f"{i:02d}_manual1.gif")) > 0
        m2 = np.asarray(PILImage.open(folder / "manual2" / f"{i:02d}_manual2.gif")) > 0
        return image, fov, m1, m2

    train = [1, 2]
    rows = []
    # As read, the outside of the field of view is the inverted green's brightest level, a
    # third of the image: the classifier's per-image normalisation (p1–p90) then depends on
    # it. Zeroed, it is padding, left out of the normalisation (and of the ridge filter's
    # noise statistics: tests/test_vasculature.py::test_drive_zeros_outside_the_field_of_view).
    for inputs in ("as read", "outside FOV zeroed"):
        def prepared(i: int, inputs: str = inputs
                     ) -> tuple[Image, np.ndarray, np.ndarray, np.ndarray]:
            image, fov, m1, m2 = load(i)
            if inputs != "as read":
                image = Image(np.where(fov, image.data, 0).astype(np.float32),
                              pixel_size_um=1.0, metadata=dict(image.metadata))
            return image, fov, m1, m2

        imgs, labs = [], []
        for i in train:
            image, fov, m1, _ = prepared(i)
            imgs.append(image)
            labs.append(np.where(fov, np.where(m1, 2, 1), 0).astype(np.uint8))
        t0 = time.perf_counter()
        model = train_pixel_classifier(imgs, labs, classes=("background", "vessel"), **FOREST)
        print(f"DRIVE classifier ({inputs}): trained in {time.perf_counter() - t0:.1f} s on "
              f"{train}; held-out balanced accuracy "
              f"{model.held_out.get('balanced_accuracy', np.nan):.3f}")
        for i in (3, 4, 5):
            image, fov, m1, m2 = prepared(i)
            l1 = trace_skeleton(m1, 1.0).length_in(fov)
            l2 = trace_skeleton(m2, 1.0).length_in(fov)
            row = {"image": f"{i:02d}", "input": inputs, "observer1_px": l1,
                   "observer2_px": l2}
            for label, model_ in (("ridge filter", None), ("classifier", model)):
                t0 = time.perf_counter()
                res = va.run(image, regions={"fov": fov}, params=DRIVE_PARAMS, model=model_)
                v = float(res.summary.iloc[0].vessel_length_um)
                row[label + "_px"] = v
                row[label + " vs 1 %"] = 100 * (v - l1) / l1
                row[label + " vs 2 %"] = 100 * (v - l2) / l2
                row[label + " s"] = time.perf_counter() - t0
                tag = "zeroed" if inputs != "as read" else "read"
                _save(res.qc, out, f"drive_{i:02d}_{label.split()[0]}_{tag}")
            rows.append(row)
    return pd.DataFrame(rows).set_index(["input", "image"])


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/pixel_steps_qc")
    pd.set_option("display.width", 200)
    only = sys.argv[2:] or ["tracer", "drive"]
    for fn in (f for f in (tracer, drive) if f.__name__ in only):
        table = fn(out)
        if table is not None:
            print(table.round(2).to_string())
            print()
    print(f"QC overlays in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
