"""Accuracy figures of the motor-neuron assay quoted in docs/motor_neurons.md.

Run::

    python benchmarks/accuracy_motor_neurons.py

Phantoms (always): motor-neuron detection F1 (IoU ≥ 0.5) and count error on three
1200 × 1200 px phantoms at 0.5 µm/px; every-soma F1; soma diameter error; nucleolus agreement;
counts of the same tissue at other pixel sizes. Real images (when ``../shared/data`` exists):
rat-cortex soma F1 against the hand-drawn masks, and the spinal ventral-horn and white-matter
fields' motor-neuron counts.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / max(1, 2 * tp + fp + fn)


def phantoms() -> None:
    from histoquant.assays.motor_neurons import run
    from histoquant.io import as_image
    from histoquant.measure.scores import match_labels
    from histoquant.synthetic.nissl import make_nissl_tissue, nissl_phantom

    mn_tp = mn_fp = mn_fn = all_tp = all_fp = all_fn = 0
    n_true = n_found = 0
    rel, nuc_ok, nuc_n = [], 0, 0
    for seed in (0, 1, 2):
        image, truth = nissl_phantom((1200, 1200), 0.5, seed=seed,
                                     motor_neuron_density_per_mm2=60.0)
        res = run(image)
        mn_ids = res.objects.loc[res.objects["class"] == "motor_neuron", "label"].to_numpy()
        pred = np.where(np.isin(res.labels, mn_ids), res.labels, 0).astype(np.int32)
        s = match_labels(truth.motor_neuron_labels, pred, 0.5)
        mn_tp, mn_fp, mn_fn = (mn_tp + s.true_positives, mn_fp + s.false_positives,
                               mn_fn + s.false_negatives)
        s = match_labels(truth.labels, res.labels.astype(np.int32), 0.5)
        all_tp, all_fp, all_fn = (all_tp + s.true_positives, all_fp + s.false_positives,
                                  all_fn + s.false_negatives)
        n_true += truth.n_motor_neurons
        n_found += len(mn_ids)
        obj = res.objects.set_index("label")
        for _, cell in truth.cells[truth.cells["is_motor_neuron"]].iterrows():
            ids, counts = np.unique(res.labels[truth.labels == cell["label"]],
                                    return_counts=True)
            counts[ids == 0] = 0
            if counts.max() == 0:
                continue
            lab = int(ids[np.argmax(counts)])
            rel.append(obj.loc[lab, "equivalent_diameter_um"] / cell["equivalent_diameter_um"]
                       - 1)
            nuc_ok += bool(obj.loc[lab, "nucleolus_visible"]) == cell["nucleolus_visible"]
            nuc_n += 1
    rel = np.array(rel) * 100
    print(f"phantoms (3 × 1200² px, 0.5 µm/px): motor neurons {n_found}/{n_true} "
          f"(count error {100 * (n_found - n_true) / n_true:+.1f} %), detection F1 "
          f"{_f1(mn_tp, mn_fp, mn_fn):.3f} (TP {mn_tp}, FP {mn_fp}, FN {mn_fn}); every soma "
          f"F1 {_f1(all_tp, all_fp, all_fn):.3f}")
    print(f"  motor-neuron equivalent diameter error: median {np.median(rel):+.1f} %, "
          f"90th percentile of |error| {np.percentile(np.abs(rel), 90):.1f} %; nucleolus "
          f"visible agrees with truth for {nuc_ok}/{nuc_n} ({100 * nuc_ok / nuc_n:.0f} %)")
    counts: dict[str, int] = {}
    truth_n = 0
    for seed in (3, 4):
        tissue = make_nissl_tissue((600.0, 600.0), seed=seed, motor_neuron_density_per_mm2=60)
        fine, truth = tissue.render(0.5)
        truth_n += truth.n_motor_neurons
        d = fine.data.astype(np.float32)
        h, w = d.shape[0] // 2, d.shape[1] // 2
        down = np.rint(d.reshape(h, 2, w, 2, 3).mean(axis=(1, 3))).astype(np.uint8)
        up = np.repeat(np.repeat(fine.data, 2, axis=0), 2, axis=1)
        for name, img in (("0.5 µm/px", fine), ("rendered at 1 µm/px", tissue.render(1.0)[0]),
                          ("rendered at 0.25 µm/px", tissue.render(0.25)[0]),
                          ("downscaled 2× (1 µm/px)", as_image(down, 1.0)),
                          ("upscaled 2× (0.25 µm/px)", as_image(up, 0.25))):
            counts[name] = counts.get(name, 0) + int(run(img).summary["n_motor_neurons"].sum())
    print(f"  rescaling (2 tissues, {truth_n} motor neurons): "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))


def real_images() -> None:
    from histoquant.assays.motor_neurons import run
    from histoquant.io import read_image
    from histoquant.measure.scores import match_labels

    if not SHARED.is_dir():
        print("real images: ../shared/data absent, skipped")
        return
    for label, params in (("defaults", None),
                          ("relative_prominence=0", {"relative_prominence": 0.0}),
                          ("dense small somata: relative_prominence=0, foreground_od=0.03",
                           {"relative_prominence": 0.0, "foreground_od": 0.03})):
        f1 = []
        for raw in sorted((SHARED / "nissl_cortex" / "raw").glob("*.tif")):
            image = read_image(raw)
            gt = np.asarray(read_image(SHARED / "nissl_cortex" / "gt" / raw.name).data)
            res = run(image, params=params)
            s = match_labels(gt, res.labels.astype(np.int32), 0.5)
            f1.append(s.f1)
        print(f"rat cortex, every soma, F1 at IoU ≥ 0.5 ({label}): "
              f"{', '.join(f'{x:.3f}' for x in f1)}; mean {np.mean(f1):.3f}")
    for name in ("ventral_horn_field", "white_matter_field"):
        image = read_image(SHARED / "spinal_cord_nissl" / f"{name}.jpg")
        res = run(image, pixel_size_um=0.5)
        mn = res.objects[res.objects["class"] == "motor_neuron"]
        print(f"{name} (0.5 µm/px assumed): {len(mn)} motor neurons "
              f"({', '.join(f'{d:.0f}' for d in mn['equivalent_diameter_um'])} µm; "
              f"{int(mn['nucleolus_visible'].sum())} with a nucleolus), "
              f"{len(res.objects)} somata")


def main() -> int:
    warnings.simplefilter("ignore")
    sys.path.insert(0, str(ROOT))
    phantoms()
    real_images()
    return 0


if __name__ == "__main__":
    sys.exit(main())
