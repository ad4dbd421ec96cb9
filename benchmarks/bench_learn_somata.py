"""Benchmark: the learned soma engine's training time, inference speed and peak memory.

Training: one Nissl phantom field of ``--train-size`` px at 0.5 µm/px (the model's working
pixel size, so no rescaling), with the default forests. Inference: a ``--size`` px phantom
(2048² by default), reported as megapixels per second. Peak memory is the process's maximum
resident set size (``ru_maxrss``, including the interpreter and libraries) and the peak of the
arrays allocated while segmenting (``tracemalloc``, which NumPy reports to).

On real fields, training time is also printed by ``tests/test_learn_somata.py`` (the
``nissl_cortex`` cross-field test).

Usage::

    python benchmarks/bench_learn_somata.py                # 512² training, 2048² inference
    python benchmarks/bench_learn_somata.py --size 1024
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import tracemalloc


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and print a JSON line of figures.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    dict
        The figures printed.
    """
    from histoquant.learn.somata import segment_somata, train_soma_model
    from histoquant.measure.scores import match_labels
    from histoquant.synthetic.nissl import nissl_phantom

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048, help="inference field side (px)")
    ap.add_argument("--train-size", type=int, default=512, help="training field side (px)")
    args = ap.parse_args(argv)
    dense = {"motor_neuron_density_per_mm2": 60.0, "small_neuron_density_per_mm2": 300.0,
             "glia_density_per_mm2": 900.0}
    train_img, train_truth = nissl_phantom((args.train_size,) * 2, 0.5, seed=1, **dense)
    t0 = time.perf_counter()
    model = train_soma_model([train_img], [train_truth.labels])
    train_s = time.perf_counter() - t0
    image, truth = nissl_phantom((args.size,) * 2, 0.5, seed=2, **dense)
    tracemalloc.start()
    t0 = time.perf_counter()
    labels = segment_somata(model, image)
    infer_s = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    score = match_labels(truth.labels, labels, 0.5)
    out = {
        "train_size_px": args.train_size, "train_s": round(train_s, 1),
        "size_px": args.size, "infer_s": round(infer_s, 1),
        "infer_mp_per_s": round(args.size ** 2 / 1e6 / infer_s, 3),
        "peak_traced_mb": round(peak / 2**20),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "phantom_f1": round(score.f1, 3), "n_somata": int(truth.labels.max()),
    }
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
