"""Speed and memory of the object classifier (histoquant.learn.objects) on GFP phantoms.

Prints, per number of labelled objects: the time to train (cross-validation included, as
``histoquant train objects`` does), and the inference rate of :func:`apply_model` (classes,
probabilities and the recounted summary) in objects per second, on the objects table of a
2048² phantom repeated to ``N`` rows, with the peak memory each step allocates
(tracemalloc, in a second run). The detection itself (the gfp-cells assay) is timed once for
context: the classifier adds to it, it does not replace it.

    PYTHONPATH=. python benchmarks/bench_learn_objects.py [20 200 ...]
"""

from __future__ import annotations

import dataclasses
import os
import resource
import sys
import time
import tracemalloc

import numpy as np
import pandas as pd

from histoquant.assays.gfp_cells import run
from histoquant.learn import load_model
from histoquant.learn.objects import apply_model, save_object_model, train_objects
from histoquant.synthetic.gfp import make_gfp_phantom

_N_INFERENCE = 100_000


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    fn(*args, **kwargs)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, seconds, peak / 1e6


def main(n_labels: list[int], tmp: str = "/tmp/bench_learn_objects.hqm") -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU cores: {os.cpu_count()}, load average at start: {load:.1f}")
    image, truth = make_gfp_phantom((2048, 2048), 0.5, n_cells=60, n_lipofuscin=120,
                                    n_rbc=200, seed=1)
    t0 = time.perf_counter()
    res = run(image)
    detect = time.perf_counter() - t0
    objects = res.objects.drop_duplicates("label")
    on_cell = truth.cell_labels[np.rint(objects["centroid_y_um"] / 0.5).astype(int),
                                np.rint(objects["centroid_x_um"] / 0.5).astype(int)] > 0
    examples = objects.assign(**{"class": np.where(on_cell, "gfp_cell", "decoy")})
    print(f"detection (gfp-cells, 2048², for context): {detect:.2f} s, "
          f"{4.194304 / detect:.1f} MP/s, {len(objects)} objects "
          f"({int(on_cell.sum())} on cells)")
    print(f"{'labels':>7} {'train s':>8} {'train MB':>9} {'objects':>8} {'apply s':>8} "
          f"{'objects/s':>10} {'apply MB':>9}")
    big = pd.concat([res.objects] * int(np.ceil(_N_INFERENCE / len(res.objects))),
                    ignore_index=True).iloc[:_N_INFERENCE]
    big_result = dataclasses.replace(res, objects=big)
    for n in n_labels:
        rng = np.random.default_rng(0)
        half = n // 2
        pick = np.concatenate([
            rng.choice(np.flatnonzero(on_cell), min(half, int(on_cell.sum())), replace=False),
            rng.choice(np.flatnonzero(~on_cell), min(n - half, int((~on_cell).sum())),
                       replace=False)])
        trained, train_s, train_mb = _timed(train_objects, examples.iloc[pick],
                                            assay="gfp-cells")
        model = load_model(save_object_model(tmp, trained, pixel_size_um=0.5))
        _, apply_s, apply_mb = _timed(apply_model, big_result, model)
        print(f"{len(pick):7d} {train_s:8.2f} {train_mb:9.1f} {len(big):8d} {apply_s:8.2f} "
              f"{len(big) / apply_s:10.0f} {apply_mb:9.0f}", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process max RSS (phantom and detection included): {rss:.0f} MB")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [20, 200])
