"""A phantom study on disk: groups × animals × spinal levels × sections, with exact truth.

Each section is an elliptical piece of tissue holding a known number of dark cells
(:mod:`histoquant.synthetic.slide`). Most sections are single-section images (OME-TIFF with
the pixel size, or PNG whose pixel size only the sample sheet gives); for some animals both
sections of a level are on one pyramidal whole-slide OME-TIFF. A ``samples.csv`` and a
``study.yaml`` are written beside them, so the folder is a ready study.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .slide import phantom_slide

__all__ = ["write_phantom_study"]


def write_phantom_study(
    folder: str | Path,
    *,
    assay: str = "blobs",
    groups: Sequence[str] = ("vehicle", "MSC-single", "MSC-repeated"),
    group_means: Sequence[float] = (20, 30, 40),
    animals_per_group: int = 4,
    levels: Sequence[str] = ("L2", "L3", "L4"),
    sections_per_level: int = 2,
    size_px: int = 200,
    pixel_size_um: float = 2.0,
    cell_radius_um: float = 8.0,
    slide_every: int = 4,
    png_every: int = 5,
    seed: int = 0,
    study_yaml: bool = True,
) -> pd.DataFrame:
    """Write a phantom study and return its truth.

    Parameters
    ----------
    folder : path
        Created; one subfolder per animal.
    assay : str
        Assay named in ``study.yaml``.
    groups, group_means : sequences
        Group names and the mean number of cells per section in each (counts are Poisson).
    animals_per_group, levels, sections_per_level : layout of the study.
    size_px : int
        Side of a single-section image; a slide is ``size_px`` × ``2 size_px + 20``.
    pixel_size_um : float
        Pixel size.
    cell_radius_um : float
        Cell radius.
    slide_every : int
        Every ``slide_every``-th animal × level (counting from the first) puts its sections
        on one whole slide (needs ``sections_per_level == 2``); 0 for none.
    png_every : int
        Every ``png_every``-th single-section image is an uncalibrated PNG whose pixel size
        is in the sample sheet; 0 for none.
    seed : int
        Random seed.
    study_yaml : bool
        Also write ``study.yaml`` (tile size and section size set for these small images).

    Returns
    -------
    DataFrame
        One row per section: ``file``, ``animal``, ``group``, ``level``, ``section`` (as the
        batch will name it), ``n_cells``, ``tissue_area_mm2`` (analytic ellipse area).
    """
    import tifffile

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth, sheet = [], []
    half = size_px / 2
    k = 0
    n_single = 0
    for gi, (group, mean) in enumerate(zip(groups, group_means)):
        for ai in range(animals_per_group):
            animal = f"R{gi * animals_per_group + ai + 1:02d}"
            (folder / animal).mkdir(exist_ok=True)
            for level in levels:
                k += 1
                counts = [int(rng.poisson(mean)) for _ in range(sections_per_level)]
                axes = [(half * rng.uniform(0.78, 0.86), half * rng.uniform(0.84, 0.92))
                        for _ in counts]
                on_slide = slide_every and sections_per_level == 2 and k % slide_every == 1
                if on_slide:
                    w = 2 * size_px + 20
                    centres = [(half, half), (half, size_px + 20 + half)]
                    slide = phantom_slide(
                        (size_px, w), [(cy, cx, ay, ax) for (cy, cx), (ay, ax)
                                       in zip(centres, axes)],
                        counts, pixel_size_um=pixel_size_um, cell_radius_um=cell_radius_um,
                        seed=int(rng.integers(1 << 30)))
                    rel = f"{animal}/{animal}_{level}_slide.ome.tif"
                    slide.write_ome_tiff(folder / rel, tile=64, levels=2)
                    sheet.append({"file": rel, "animal": animal, "group": group,
                                  "level": level, "section": "", "pixel_size_um": "",
                                  "split_sections": "yes"})
                    for si, (n, sec) in enumerate(zip(counts, slide.sections), start=1):
                        truth.append({"file": rel, "animal": animal, "group": group,
                                      "level": level, "section": str(si), "n_cells": n,
                                      "tissue_area_mm2": sec.area_px * pixel_size_um**2 / 1e6})
                    continue
                for si, (n, (ay, ax)) in enumerate(zip(counts, axes), start=1):
                    slide = phantom_slide((size_px, size_px), [(half, half, ay, ax)], [n],
                                          pixel_size_um=pixel_size_um,
                                          cell_radius_um=cell_radius_um,
                                          seed=int(rng.integers(1 << 30)))
                    n_single += 1
                    rgb = slide.render()
                    if png_every and n_single % png_every == 0:
                        from PIL import Image as PILImage

                        rel = f"{animal}/{animal}_{level}_s{si}.png"
                        PILImage.fromarray(rgb).save(folder / rel)
                        px_col = str(pixel_size_um)
                    else:
                        rel = f"{animal}/{animal}_{level}_s{si}.ome.tif"
                        tifffile.imwrite(folder / rel, rgb, photometric="rgb", metadata={
                            "axes": "YXS", "PhysicalSizeX": pixel_size_um,
                            "PhysicalSizeY": pixel_size_um})
                        px_col = ""
                    sheet.append({"file": rel, "animal": animal, "group": group,
                                  "level": level, "section": str(si), "pixel_size_um": px_col,
                                  "split_sections": ""})
                    truth.append({"file": rel, "animal": animal, "group": group,
                                  "level": level, "section": str(si), "n_cells": n,
                                  "tissue_area_mm2": slide.sections[0].area_px
                                  * pixel_size_um**2 / 1e6})
    pd.DataFrame(sheet).to_csv(folder / "samples.csv", index=False)
    if study_yaml:
        area = np.pi * (half * 0.8) ** 2 * pixel_size_um**2 / 1e6
        (folder / "study.yaml").write_text(
            "title: Phantom study\n"
            "samples: samples.csv\n"
            f"groups: [{', '.join(groups)}]\n"
            "assays:\n"
            f"  {assay}:\n"
            "    files: ['*']\n"
            "slides:\n"
            "  split_sections: true\n"
            f"  tile_px: {max(64, size_px // 2 + 28)}\n"
            f"  overlap_um: {6 * cell_radius_um}\n"
            f"  overview_max_px: {size_px + 56}\n"
            f"  min_section_area_mm2: {area / 4:.4f}\n", encoding="utf-8")
    return pd.DataFrame(truth)
