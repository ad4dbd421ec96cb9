"""Speed and memory of the vasculature assay on two-channel capillary phantoms.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_vasculature.py [--sizes 2048 4096 8192] [--repeats 1]

Prints megapixels per second (best of ``--repeats`` runs, wall clock), the CPU time the
process used (on a shared, oversubscribed machine wall time overstates the cost; MP per
CPU-second is what one free core does, NumPy/SciPy running single-threaded) and the peak
memory the assay itself allocates (tracemalloc, a separate run) for each image size. The
phantom is the test network (capillaries 4–8 µm, one 12–18 µm vessel, pericyte sleeves) at
0.5 µm/px, endothelium + pericyte channels, uint16. Making the phantom is not timed; the
Numba functions (skan's, and the assay's thinning, rays and distances) are compiled once
before timing (≈ 3–15 s per process).
"""

from __future__ import annotations

import argparse
import os
import time
import tracemalloc

from histoquant.assays.vasculature import run
from histoquant.synthetic.vessels import vessel_phantom


def bench(size: int, repeats: int) -> dict[str, float]:
    t0 = time.perf_counter()
    image, truth, _ = vessel_phantom((size * 0.5, size * 0.5), 0.5, seed=0)
    make_s = time.perf_counter() - t0
    best = best_cpu = float("inf")
    result = None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        result = run(image)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    tracemalloc.start()
    run(image)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    s = result.summary.iloc[0]
    mp = size * size / 1e6
    return {"size": size, "megapixels": mp, "seconds": best, "mp_per_s": mp / best,
            "cpu_seconds": best_cpu, "mp_per_cpu_s": mp / best_cpu,
            "peak_mib": peak / 2**20, "input_mib": image.data.nbytes / 2**20,
            "make_s": make_s,
            "length_err_pct": 100 * (s["vessel_length_um"] / truth.vessel_length_um - 1),
            "coverage_err_pp": s["pericyte_coverage_length_pct"]
            - truth.pericyte_coverage_length_pct}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 4096, 8192])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print(f"CPU cores: {os.cpu_count()}, load average: "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    warm, _, _ = vessel_phantom((100.0, 100.0), 0.5, seed=1)
    t0 = time.perf_counter()
    run(warm)
    print(f"first call (Numba compilation): {time.perf_counter() - t0:.1f} s")
    print(f"{'size':>6} {'MP':>6} {'seconds':>8} {'MP/s':>6} {'CPU s':>6} {'MP/CPU-s':>8} "
          f"{'peak MiB':>9} {'input MiB':>9} {'len err %':>9} {'cov err pp':>10}")
    for size in args.sizes:
        r = bench(size, args.repeats)
        print(f"{r['size']:>6} {r['megapixels']:>6.1f} {r['seconds']:>8.2f} "
              f"{r['mp_per_s']:>6.2f} {r['cpu_seconds']:>6.2f} {r['mp_per_cpu_s']:>8.2f} "
              f"{r['peak_mib']:>9.0f} {r['input_mib']:>9.0f} {r['length_err_pct']:>+9.2f} "
              f"{r['coverage_err_pp']:>+10.2f}", flush=True)


if __name__ == "__main__":
    main()
