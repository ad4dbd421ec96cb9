"""The motor-neuron assay's two engines side by side on the same Nissl phantoms.

Times ``engine="classical"`` and ``engine="cellpose"`` on one phantom per size and prints
seconds per megapixel of the input image. Cellpose-SAM's cost does not depend on its weights,
so by default the cellpose engine runs a seeded random-weight network (nothing is
downloaded); ``--model PATH`` times a real model file instead.

    PYTHONPATH=. python benchmarks/bench_engines.py --sizes 512 1024 --device cpu
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--pixel-size-um", type=float, default=0.5)
    parser.add_argument("--model", default=None, help="cellpose model file (default: random)")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda", "mps"))
    args = parser.parse_args(argv)

    from histoquant.assays import motor_neurons as mn
    from histoquant.synthetic.nissl import nissl_phantom

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            from bench_cellpose import random_model

            model = str(random_model(Path(tmp)))
        os.environ.setdefault("CELLPOSE_LOCAL_MODELS_PATH", tmp)
        engines = {
            "classical": {},
            "cellpose": {"engine": "cellpose", "cellpose_model": model,
                         "cellpose_device": args.device},
        }
        print(f"{'size':>9} {'engine':>9} {'s':>8} {'s/MP':>8} {'MP/s':>8} {'somata':>7} "
              f"{'MNs':>4} {'true MNs':>8}")
        for size in args.sizes:
            image, truth = nissl_phantom((size, size), args.pixel_size_um, seed=size)
            mp = size * size / 1e6
            n_true = int(truth.cells["is_motor_neuron"].sum())
            for name, params in engines.items():
                t0 = time.perf_counter()
                result = mn.run(image, params=params)
                dt = time.perf_counter() - t0
                print(f"{size:>4}x{size:<4} {name:>9} {dt:8.2f} {dt / mp:8.2f} {mp / dt:8.3f} "
                      f"{len(result.objects):>7} "
                      f"{int(result.summary['n_motor_neurons'].sum()):>4} {n_true:>8}",
                      flush=True)


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
