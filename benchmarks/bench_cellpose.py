"""Speed and memory of the cellpose engine on round-cell phantoms.

Cellpose-SAM's cost does not depend on its weights, so by default this runs a seeded
random-weight network of the Cellpose-SAM architecture (nothing is downloaded); pass
``--model cpsam`` (or a path) to time a real model whose weights are on disk.

The network runs on 256 px blocks of the image *after* cellpose rescales it by
``30 / diameter_px``, so the cost per megapixel depends on the diameter: the script reports
the blocks run and the seconds per block, which carry over to any image size.

    PYTHONPATH=. python benchmarks/bench_cellpose.py                 # default cases, CPU
    PYTHONPATH=. python benchmarks/bench_cellpose.py --sizes 512 --kinds gray --diameters-um none
"""

from __future__ import annotations

import argparse
import platform
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path


def random_model(folder: Path) -> Path:
    """Save a seeded random-weight Cellpose-SAM network as a model file."""
    import torch

    try:
        from cellpose.vit import CPSAM as Net  # cellpose >= 4.1
    except ImportError:
        from cellpose.vit_sam import Transformer as Net  # cellpose 4.0.x
    torch.manual_seed(0)
    net = Net(dtype=torch.float32)
    path = folder / "cpsam_random"
    torch.save(net.state_dict(), path)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--pixel-size-um", type=float, default=0.5)
    parser.add_argument("--diameters-um", nargs="+", default=["30"],
                        help="expected diameters; 'none' for no rescaling (30 µm at 0.5 µm/px "
                             "is 60 px: cellpose halves the image)")
    parser.add_argument("--kinds", nargs="+", default=["gray", "rgb"], choices=("gray", "rgb"))
    parser.add_argument("--model", default=None, help="model name or path (default: random)")
    parser.add_argument("--device", default="cpu", choices=("auto", "cpu", "cuda", "mps"))
    parser.add_argument("--float32", action="store_true", help="float32 instead of bfloat16")
    args = parser.parse_args(argv)

    import torch
    from cellpose.version import version as cellpose_version

    from histoquant.segment.cellpose_engine import CellposeOptions, segment_cellpose
    from histoquant.synthetic.round_cells import make_round_cells

    blocks: list[int] = []

    def count_blocks(module, inputs, output):
        if type(module).__name__ in ("CPSAM", "Transformer", "CPDINO"):
            blocks.append(int(inputs[0].shape[0]))

    torch.nn.modules.module.register_module_forward_hook(count_blocks)
    tmp = tempfile.TemporaryDirectory()
    model = args.model or str(random_model(Path(tmp.name)))
    print(f"cellpose {cellpose_version}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}; "
          f"model {'random-weight Cellpose-SAM' if args.model is None else model}, "
          f"device {args.device}, {'float32' if args.float32 else 'bfloat16'}")

    diameters = [None if d.lower() == "none" else float(d) for d in args.diameters_um]
    cases = [(size, kind == "rgb", d) for size in args.sizes for kind in args.kinds
             for d in diameters]
    # the first call builds the network; time it apart from the per-image cost
    base = CellposeOptions(model=model, device=args.device, bfloat16=not args.float32)
    t0 = time.perf_counter()
    warm, _ = make_round_cells((64, 64), pixel_size_um=args.pixel_size_um, n_cells=1)
    segment_cellpose(warm.data, args.pixel_size_um, base)
    print(f"model load + first call: {time.perf_counter() - t0:.1f} s")

    print(f"{'size':>9} {'kind':>4} {'diam px':>7} {'blocks':>6} {'s':>7} {'s/MP':>7} "
          f"{'MP/s':>7} {'s/block':>7} {'numpy peak MB':>13} {'RSS peak MB':>11}")
    for size, rgb, diameter_um in cases:
        image, truth = make_round_cells((size, size), pixel_size_um=args.pixel_size_um,
                                        n_cells=size * size // 4000, rgb=rgb, seed=size)
        opts = base.replace(diameter_um=diameter_um)
        blocks.clear()
        tracemalloc.start()
        t0 = time.perf_counter()
        labels = segment_cellpose(image.data, args.pixel_size_um, opts)
        dt = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        mp = size * size / 1e6
        dpx = "-" if diameter_um is None else f"{diameter_um / args.pixel_size_um:.0f}"
        nb = sum(blocks)
        print(f"{size:>4}x{size:<4} {'RGB' if rgb else 'gray':>4} {dpx:>7} {nb:>6} {dt:7.1f} "
              f"{dt / mp:7.1f} {mp / dt:7.4f} {dt / max(nb, 1):7.1f} {peak / 2**20:13.0f} "
              f"{rss:11.0f}", flush=True)
        assert labels.shape == truth.shape
    tmp.cleanup()


if __name__ == "__main__":
    sys.exit(main())
