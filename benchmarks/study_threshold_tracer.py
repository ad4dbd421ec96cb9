"""Study-wide vs per-image Evans Blue thresholds in a study run, on the real tracer fields.

Usage::

    python benchmarks/study_threshold_tracer.py [--keep DIR]

Builds a small study in a temporary folder from ``../shared/data/tracer_leakage/fov/*.jpg``
(skips cleanly when absent): five fields, pseudo-groups ``vehicle`` (fields 01–02) and
``treated`` (03–05), channel ``evb`` = green (the dextran tracer), ``vessel`` = red
(endomucin), 0.69 µm/px. It runs ``histoquant batch`` with the threshold per image, one
study-wide threshold from all fields, and one from the two "vehicle" fields, at the default
``threshold_k`` (2.5) and at 5, and compares each field's extravascular tracer area with the
lab's ImageJ macro (its extravascular masks in ``mask_macro_output/``; the macro used one fixed
threshold for all five fields, a study-wide threshold): area / macro area per field, and the
Spearman rank correlation of the five fields' areas with the macro's. ``--keep DIR`` writes
the study and the runs' outputs (QC pictures in ``DIR/out_*/qc``) there instead.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tracer_leakage"
PX = 0.69
GROUPS = {"01": "vehicle", "02": "vehicle", "03": "treated", "04": "treated", "05": "treated"}
SCOPES = {"per image": "{scope: image}",
          "study (all)": "{scope: study, from_group: all}",
          "study (vehicle)": "{scope: study, from_group: vehicle}"}


def _study(folder: Path, threshold: str, k: float) -> None:
    (folder / "study.yaml").write_text(
        "groups: [vehicle, treated]\n"
        "assays:\n"
        "  evans-blue:\n"
        f"    pixel_size_um: {PX}\n"
        "    channels: {evb: G, vessel: R}\n"
        f"    params: {{threshold_k: {k}}}\n"
        f"    threshold: {threshold}\n")


def macro_areas() -> pd.Series:
    """Return the macro's extravascular tracer area per field (µm²)."""
    import tifffile

    out = {}
    for f in sorted((DATA / "fov").glob("*.jpg")):
        overlay = tifffile.imread(DATA / "mask_macro_output" / f"{f.stem}_DextranOverlay.tif")
        out[f.stem] = float((overlay[..., 1] > 0).sum()) * PX * PX  # green: extravascular
    return pd.Series(out, name="macro_um2")


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print its tables.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments.

    Returns
    -------
    int
        0.
    """
    from scipy.stats import spearmanr

    from histoquant.batch import run_batch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="write the study and outputs here")
    args = ap.parse_args(argv)
    if not (DATA / "fov").is_dir():
        print(f"{DATA} is absent; nothing to compare")
        return 0
    tmp = tempfile.TemporaryDirectory(prefix="hq-study-threshold-")
    root = args.keep if args.keep is not None else Path(tmp.name)
    study = root / "study"
    study.mkdir(parents=True, exist_ok=True)
    for f in sorted((DATA / "fov").glob("*.jpg")):
        shutil.copy2(f, study / f.name)  # a temporary copy: never into the repository
    pd.DataFrame([{"file": f"{s}.jpg", "animal": f"field{s}", "group": g}
                  for s, g in GROUPS.items()]).to_csv(study / "samples.csv", index=False)
    macro = macro_areas()
    rows, thresholds = {}, []
    for k in (2.5, 5.0):
        for label, threshold in SCOPES.items():
            _study(study, threshold, k)
            out = root / f"out_{label.split()[0]}_{label.split('(')[-1].rstrip(')')}_k{k:g}"
            report = run_batch(study, out)
            assert report.ok, report.errors
            s = pd.read_csv(out / "sections.csv", dtype={"image": str}).set_index("image")
            name = f"{label}, k={k:g}"
            rows[name] = s["extravascular_area_um2"]
            thresholds.append({"method": name, "threshold": s["threshold"].round(2).tolist(),
                               "threshold_method": s["threshold_method"].iloc[0]})
    table = pd.DataFrame(rows).reindex(macro.index)
    pd.set_option("display.width", 200)
    print("thresholds (corrected units, fields 01-05):")
    print(pd.DataFrame(thresholds).to_string(index=False))
    print("\nextravascular area / macro's, per field:")
    print(table.div(macro, axis=0).round(2).T.to_string())
    print(f"\nmacro extravascular area (µm²): {macro.round(0).to_dict()}")
    print("\nSpearman rank correlation of the five fields with the macro:")
    for col in table:
        rho = spearmanr(table[col], macro).statistic
        ratio = table[col] / macro
        print(f"  {col:<24} rho = {rho:+.2f}   area / macro {np.median(ratio):.2f} "
              f"(range {ratio.min():.2f}-{ratio.max():.2f})")
    if args.keep is None:
        tmp.cleanup()
    else:
        print(f"\nstudy and outputs (QC pictures in out_*/qc) kept in {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
