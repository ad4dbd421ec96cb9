"""Benchmark: the pixel classifier at 2048² — training time, inference MP/s, peak memory.

A phantom of three classes (dark background, a flat mid-grey class and a textured class of
bright 2-µm spots with about the same mean: the textured/flat distinction needs the texture
features) is rendered at 1 µm/px, one 16-bit image to train on and another to predict. The
training labels are the dense truth (every pixel labelled; the sampler keeps
``--max-samples`` per class), so the time includes reading all labels and computing features
in every tile that holds a sampled pixel, as a dense-mask training does.

Measured, each in a fresh process (so one's memory does not hide the other's):

- **train**: :func:`~histoquant.learn.pixels.train_pixel_classifier` on one image (spatial
  block held-out score: two forests are fitted), seconds;
- **predict**: :func:`~histoquant.learn.pixels.predict_proba` of the other image, seconds
  and megapixels per second; the same at 2 µm/px input (rescaled to the model's 1 µm/px);
- **peak memory**: the process's maximum resident set size (``ru_maxrss``, with the Python
  interpreter and libraries, reported separately as the import baseline) and the peak of the
  arrays allocated (``tracemalloc``, which NumPy reports to).

The forest runs on one core (``n_jobs=1``), as on the 2-core machines this project targets.

Usage::

    python benchmarks/bench_learn_pixels.py                # 2048² (about 2–4 minutes)
    python benchmarks/bench_learn_pixels.py --size 1024 --trees 50
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc

import numpy as np


def phantom(seed: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint16 image, uint8 classes 1–3) at 1 µm/px."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    fields = [ndi.gaussian_filter(rng.normal(size=(size, size)).astype(np.float32), 60.0)
              for _ in range(3)]
    truth = (1 + np.argmax(fields, axis=0)).astype(np.uint8)
    del fields
    spots = (rng.random((size, size)) < 0.02).astype(np.float32)
    spots = ndi.gaussian_filter(spots, 1.5) * np.float32(2 * np.pi * 1.5 ** 2)
    img = np.where(truth == 1, 0.08, np.where(truth == 2, 0.45, 0.25 + 0.9 * spots))
    img = np.clip(img + rng.normal(0, 0.04, img.shape), 0, 1)
    return (img * 65535).astype(np.uint16), truth


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(case: str, size: int, trees: int, max_samples: int, model_path: str) -> dict:
    import histoquant.learn.pixels as lp
    from histoquant import Image
    from histoquant.segment.statistics import block_mean

    base = _rss_mb()
    out: dict = {"case": case, "size": size, "import_rss_mb": round(base, 1)}
    if case == "train":
        img, truth = phantom(0, size)
        image = Image(img, pixel_size_um=1.0, modality="fluorescence")
        tracemalloc.start()
        t = time.perf_counter()
        model = lp.train_pixel_classifier([image], [truth], classes=("bg", "flat", "spots"),
                                          n_estimators=trees,
                                          max_samples_per_class=max_samples)
        out["seconds"] = round(time.perf_counter() - t, 2)
        out["held_out"] = round(model.held_out["balanced_accuracy"], 4)
        lp.save_pixel_classifier(model, model_path)
    else:
        model = lp.load_pixel_classifier(model_path)
        img, truth = phantom(1, size)
        if case == "predict_2um":
            img = block_mean(img.astype(np.float32), 2).round().astype(np.uint16)
            truth = truth[::2, ::2]
        px = 2.0 if case == "predict_2um" else 1.0
        image = Image(img, pixel_size_um=px, modality="fluorescence")
        tracemalloc.start()
        t = time.perf_counter()
        prob = lp.predict_proba(model, image)
        dt = time.perf_counter() - t
        out["seconds"] = round(dt, 2)
        out["mp_per_s"] = round(img.size / 1e6 / dt, 3)
        out["accuracy"] = round(float(np.mean(np.argmax(prob, -1) + 1 == truth)), 4)
    out["peak_traced_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    out["peak_rss_mb"] = round(_rss_mb(), 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--max-samples", type=int, default=20_000)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.size, a.trees, a.max_samples, a.model)))
        return
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        model = str(Path(tmp) / "m.hqm")
        for case in ("train", "predict", "predict_2um"):
            res = subprocess.run([sys.executable, __file__, "--child", case, "--size",
                                  str(a.size), "--trees", str(a.trees), "--max-samples",
                                  str(a.max_samples), "--model", model],
                                 capture_output=True, text=True, check=True)
            print(res.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
