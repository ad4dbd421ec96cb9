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


# Two animals per group so the report's group comparison has something to compare. The
# phantoms carry a treatment effect like the study's hypothesis: vehicle (SOD1G93A) ventral
# horns keep about half the motor neurons of MSC-treated ones (REFERENCE.md: ≈ 50 % loss at the
# symptomatic stage).
ANIMALS = {"R01": "vehicle", "R02": "vehicle", "R03": "MSC", "R04": "MSC"}


def make_nissl(outdir: Path = HERE) -> list[Path]:
    """Nissl (cresyl violet) ventral-horn phantoms for the motor-neuron assay.

    Four 1024 × 1024 RGB images at 0.5 µm/px (0.26 mm² each), one per animal, written as
    JPEG-compressed OME-TIFF with the pixel size, and ``truth_nissl.csv``: one row per soma of
    every image (kind, motor neuron or not, centroid and size in µm, nucleolus visible).
    Vehicle animals get 20 motor neurons per mm², MSC animals 40.
    """
    from histoquant.io import write_ome_tiff
    from histoquant.synthetic.nissl import nissl_phantom

    outdir.mkdir(parents=True, exist_ok=True)
    written, tables = [], []
    for i, (animal, group) in enumerate(ANIMALS.items(), start=1):
        name = f"nissl_{animal}_L3"
        density = 20.0 if group == "vehicle" else 40.0
        image, truth = nissl_phantom((1024, 1024), 0.5, seed=100 + i,
                                     motor_neuron_density_per_mm2=density)
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


def make_evans_blue(outdir: Path = HERE) -> list[Path]:
    """Evans Blue phantoms: vessel + EvB channels, 960 × 960 at 0.5 µm/px, one per animal.

    Each comes with ``<stem>_grey_matter.geojson`` (the grey-matter outline, used as its
    region) and ``<stem>_truth.json`` (exact positive area and intensities).
    """
    from histoquant.synthetic.evans_blue import make_example

    written = []
    for i, animal in enumerate(ANIMALS, start=1):
        paths = make_example(outdir / f"evans_blue_{animal}_L4.ome.tif", seed=10 + i)
        written.extend(paths.values())
    return written


def make_gfp(outdir: Path = HERE) -> list[Path]:
    """GFP phantoms (DAPI, GFP, autofluorescence reference), 720 × 720 at 0.5 µm/px.

    One per MSC-treated animal, each with four GFP+ cells, a touching pair, lipofuscin and
    red blood cells; ``<stem>_cells.csv`` and ``<stem>_decoys.csv`` hold the truth.
    """
    from histoquant.synthetic.gfp import make_example

    written = []
    for i, (animal, group) in enumerate(ANIMALS.items(), start=1):
        if group == "MSC":
            written.extend(make_example(outdir / f"gfp_{animal}_L3.ome.tif", seed=i).values())
    return written


def main(argv: list[str] | None = None) -> int:
    """Write every assay's examples into OUTDIR (default: this folder)."""
    args = sys.argv[1:] if argv is None else argv
    outdir = Path(args[0]) if args else HERE
    for make in (make_nissl, make_evans_blue, make_gfp):
        for path in make(outdir):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
