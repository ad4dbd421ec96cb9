"""Speed and memory of the GFP+ cell assay on three-channel phantoms.

Prints, per image size: megapixels per second of ``run`` (wall clock, after a warm-up on a
small image so imports are not timed) and the peak memory ``run`` allocates on top of the
image (tracemalloc, in a second run, since tracing slows Python a little), plus the counts
against the phantom's truth.

    PYTHONPATH=. python benchmarks/bench_gfp_cells.py [4096 8192 ...]

The phantoms are dense with decoys (about 70 lipofuscin clusters and 120 red blood cells per
mm² of tissue, far more than a real section) so that the per-object work is not flattered.
"""

from __future__ import annotations

import os
import resource
import sys
import time
import tracemalloc

from histoquant.assays.gfp_cells import run
from histoquant.synthetic.gfp import make_gfp_phantom


def bench(n: int, pixel_size_um: float = 0.5) -> dict:
    scale = (n / 4096) ** 2
    image, truth = make_gfp_phantom(
        (n, n), pixel_size_um, n_cells=max(5, round(5 * scale)), n_touching_pairs=1,
        n_anucleate=1, n_lipofuscin=round(150 * scale), n_rbc=round(250 * scale), seed=1)
    t0 = time.perf_counter()
    res = run(image)
    seconds = time.perf_counter() - t0
    tracemalloc.start()
    run(image)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    s = res.summary.iloc[0]
    return {
        "size": f"{n}x{n}x3",
        "megapixels": n * n / 1e6,
        "seconds": seconds,
        "mp_per_s": n * n / 1e6 / seconds,
        "image_mb": image.data.nbytes / 1e6,
        "peak_run_mb": peak / 1e6,
        "n_gfp_cells": int(s["n_gfp_cells"]),
        "truth": truth.n_gfp_cells,
        "n_objects": int(s["n_objects"]),
    }


def main(sizes: list[int]) -> None:
    warm, _ = make_gfp_phantom((512, 512), 0.5, n_cells=2, n_lipofuscin=2, n_rbc=2)
    run(warm)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU cores: {os.cpu_count()}, load average at start: {load:.1f}")
    print(f"{'image':>14} {'MP':>6} {'s':>7} {'MP/s':>7} {'image MB':>9} {'peak MB':>8} "
          f"{'cells':>6} {'truth':>6} {'objects':>8}")
    for n in sizes:
        r = bench(n)
        print(f"{r['size']:>14} {r['megapixels']:6.1f} {r['seconds']:7.2f} "
              f"{r['mp_per_s']:7.1f} {r['image_mb']:9.0f} {r['peak_run_mb']:8.0f} "
              f"{r['n_gfp_cells']:6d} {r['truth']:6d} {r['n_objects']:8d}", flush=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process max RSS (phantom generation included): {rss:.0f} MB")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [4096, 8192])
