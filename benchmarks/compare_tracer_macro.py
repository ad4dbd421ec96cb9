"""Evans Blue assay vs the lab's ImageJ macro on the real tracer-leakage fields.

Usage::

    python benchmarks/compare_tracer_macro.py

Reads ``../shared/data/tracer_leakage`` (skips when absent). For each of the five fields it
prints the macro's extravascular tracer area (from ``*_DextranOverlay.tif``: the green channel
is the macro's extravascular mask), the assay's with the macro's fixed rule, and the assay's
with automatic per-image thresholds and with one study-wide threshold from all five fields,
then how each ranks the fields against the macro.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from histoquant.assays import evans_blue as eb
from histoquant.io import read_image

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tracer_leakage"
PX = 0.69
MACRO = {
    "background_method": "none", "flatfield": "none",
    "threshold_method": "fixed", "threshold": 25, "seed_ratio": 1.0, "min_patch_area_um2": 0,
    "vessel_threshold_method": "fixed", "vessel_threshold": 30, "vessel_min_area_um2": 0,
    "vessel_margin_um": 0,
}
AUTO = {
    "auto (mad k=2.5)": {},
    "auto (mad k=5)": {"threshold_k": 5.0},
    "auto (triangle)": {"threshold_method": "triangle"},
    "auto (otsu)": {"threshold_method": "otsu"},
}


def main() -> int:
    import tifffile

    if not DATA.is_dir():
        print(f"{DATA} is absent; nothing to compare")
        return 0
    channels = {"evb": "G", "vessel": "R"}
    fields = sorted((DATA / "fov").glob("*.jpg"))
    images = [read_image(p, pixel_size_um=PX) for p in fields]
    # One threshold for all five fields, as the macro's fixed 25 is, but computed from the
    # background-corrected fields themselves.
    for k in (2.5, 5.0):
        t = eb.study_threshold(images, {"threshold_k": k}, channels=channels)
        AUTO[f"study-wide (mad k={k:g})"] = {"threshold_method": "fixed", "threshold": t}
    rows = []
    for jpg in fields:
        overlay = tifffile.imread(DATA / "mask_macro_output" / f"{jpg.stem}_DextranOverlay.tif")
        image = read_image(jpg, pixel_size_um=PX)
        row = {"field": jpg.stem, "macro_um2": float((overlay[..., 1] > 0).sum()) * PX * PX}
        row["macro_rule_um2"] = eb.run(image, params=MACRO, channels=channels) \
            .summary.iloc[0].extravascular_area_um2
        for label, params in AUTO.items():
            s = eb.run(image, params=params, channels=channels).summary.iloc[0]
            row[label] = s.extravascular_area_um2
            row[label + " threshold"] = s.threshold
        rows.append(row)
    table = pd.DataFrame(rows).set_index("field")
    pd.set_option("display.width", 200)
    print(table.round(1).to_string())
    macro_rank = table["macro_um2"].rank(ascending=False)
    print("\nrank of the fields (1 = most extravascular tracer):")
    ranks = pd.DataFrame({"macro": macro_rank.astype(int)})
    for label in AUTO:
        ranks[label] = table[label].rank(ascending=False).astype(int)
    print(ranks.to_string())
    print("\nSpearman rank correlation with the macro, and area / macro area (median, range):")
    for label in AUTO:
        rho = float(np.corrcoef(macro_rank, table[label].rank(ascending=False))[0, 1])
        ratio = table[label] / table["macro_um2"]
        print(f"  {label:<18} rho = {rho:+.2f}   ratio {ratio.median():.2f} "
              f"({ratio.min():.2f}-{ratio.max():.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
