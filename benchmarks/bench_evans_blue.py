"""Speed and memory of the Evans Blue assay on two-channel phantoms.

Usage::

    python benchmarks/bench_evans_blue.py [--sizes 4096 8192] [--repeats 2]

Prints megapixels per second (best of ``--repeats`` runs, wall clock), the CPU time the process
used (on a shared, oversubscribed machine wall time overstates the cost; MP per CPU-second is
what one free core would do when NumPy runs single-threaded) and the peak memory the assay
itself allocates (tracemalloc, a separate run) for each image size. The phantom is a
0.5 µm/px field with capillaries, leaks and a grey-matter region, as in the tests.
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

from histoquant.assays import evans_blue as eb
from histoquant.synthetic.evans_blue import make_evans_blue_phantom


def bench(size: int, repeats: int) -> dict[str, float]:
    image, truth = make_evans_blue_phantom((size, size), 0.5, seed=0, leak_area_pct=2.0)
    regions = {"grey_matter": truth["grey_matter"]}
    params = eb.EvansBlueParams(dark_level=100.0)
    best = best_cpu = float("inf")
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        eb.run(image, regions, params)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    tracemalloc.start()
    eb.run(image, regions, params)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    mp = size * size / 1e6
    return {"size": size, "megapixels": mp, "seconds": best, "mp_per_s": mp / best,
            "cpu_seconds": best_cpu, "mp_per_cpu_s": mp / best_cpu,
            "peak_mib": peak / 2**20, "input_mib": image.data.nbytes / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}, load average: "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'size':>6} {'MP':>6} {'seconds':>8} {'MP/s':>6} {'CPU s':>6} {'MP/CPU-s':>8} "
          f"{'peak MiB':>9} {'input MiB':>9}")
    for size in args.sizes:
        r = bench(size, args.repeats)
        print(f"{r['size']:>6} {r['megapixels']:>6.1f} {r['seconds']:>8.2f} "
              f"{r['mp_per_s']:>6.2f} {r['cpu_seconds']:>6.2f} {r['mp_per_cpu_s']:>8.2f} "
              f"{r['peak_mib']:>9.0f} {r['input_mib']:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
