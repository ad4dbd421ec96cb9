"""Make the example images in this folder (deterministic: same files on every run).

One function per assay writes that assay's images and truth; ``main`` calls them all::

    python example_images/make_examples.py [OUTDIR]

Each assay's section of ``README.md`` says what its files are.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent


def make_nissl(outdir: Path = HERE) -> list[Path]:
    """Nissl (cresyl violet) ventral-horn phantoms for the motor-neuron assay.

    Three 1024 × 1024 RGB images at 0.5 µm/px (0.26 mm² each), written as JPEG-compressed
    OME-TIFF with the pixel size, and ``truth_nissl.csv``: one row per soma of every image
    (kind, motor neuron or not, centroid and size in µm, nucleolus visible).
    """
    from histoquant.io import write_ome_tiff
    from histoquant.synthetic.nissl import nissl_phantom

    outdir.mkdir(parents=True, exist_ok=True)
    written, tables = [], []
    for i, seed in enumerate((101, 102, 103), start=1):
        name = f"nissl_vh_{i:02d}"
        image, truth = nissl_phantom((1024, 1024), 0.5, seed=seed,
                                     motor_neuron_density_per_mm2=40.0)
        path = outdir / f"{name}.ome.tif"
        write_ome_tiff(image, path, compression="jpeg")
        written.append(path)
        cells = truth.cells.copy()
        cells.insert(0, "pixel_size_um", 0.5)
        cells.insert(0, "image", name)
        tables.append(cells)
    truth_path = outdir / "truth_nissl.csv"
    pd.concat(tables, ignore_index=True).round(3).to_csv(truth_path, index=False,
                                                         lineterminator="\n")
    written.append(truth_path)
    return written


def main(argv: list[str] | None = None) -> int:
    """Write every assay's examples into OUTDIR (default: this folder)."""
    args = sys.argv[1:] if argv is None else argv
    outdir = Path(args[0]) if args else HERE
    for make in (make_nissl,):
        for path in make(outdir):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
