"""By-eye ChAT+ cell bodies of the whole section, every one located (``chat_somata_points.csv``).

What: every ChAT+ cell body of the five ``spinal_cord_fluorescent/chat`` sections, in the
whole section (dorsal horns, intermediate zone and lamina X, lateral clusters, ventral horns),
one row per soma: ``section``, ``col_px``, ``row_px`` (the soma's centre in image pixels,
±3 px) and ``certainty``. ``chat_counts.csv`` counts the ventral horns only; this file is the
reference for an assay that counts cell bodies anywhere (gfp-cells run on the ChAT channel).

How (one observer, one pass, done before looking at any assay output on these images): the
red channel, cropped to the grey matter in four overlapping boxes per section (a 100 px grid
drawn on, labelled in image pixels), contrast stretched between the 5th and 99.9th percentile
of the crop with a 0.7 gamma, enlarged 2× (1.65–1.95× for the widest crops) and viewed. A
soma was marked where a bright, filled, sharply bounded body at least ≈ 8 µm across (4 px)
sat, with or without processes; ``clear`` = unambiguous, ``possible`` = dim, small, blurred
by JPEG blocking or touching another so that it may be one cell or two. Cells in the overlap
of two crops were counted in one (rows below a stated line in the upper crop, the rest in the
lower). White matter holds no ChAT+ somata (its bright dots are axon profiles, 1–3 px): it
was looked at and nothing was marked there. Roots, meninges and the tile edges hold none.

Counts (clear / clear + possible; estimate = clear + half the possible):

========  =====  ========  ========
section   clear  possible  estimate
========  =====  ========  ========
214_L1       25        14        32
238_L2       54        28        68
263_L4       30        14        37
280_L5       43        11      48.5
290_L6       47        22        58
========  =====  ========  ========

Limits: one observer; dim lamina VII/X somata and cells inside the dense motor pools (238,
280, 290) are the uncertain part; the 750-row images (2.30 µm/px) show strong 8×8 JPEG
blocking. A detection within 14 µm of a marked centre is taken as that soma.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

POINTS = Path(__file__).with_name("chat_somata_points.csv")
MATCH_RADIUS_UM = 14.0
"""A detected object within this distance of a marked centre is that soma (half a motor
neuron, a little more than a small interneuron's radius)."""


def load_points() -> pd.DataFrame:
    """Every marked soma: ``section``, ``col_px``, ``row_px``, ``certainty``."""
    return pd.read_csv(POINTS)


def counts() -> pd.DataFrame:
    """Per section: ``clear``, ``possible``, ``low`` (= clear), ``high`` (clear + possible) and
    ``estimate`` (clear + half the possible)."""
    p = load_points()
    t = p.pivot_table(index="section", columns="certainty", values="row_px", aggfunc="size",
                      fill_value=0)
    out = pd.DataFrame({"clear": t.get("clear", 0), "possible": t.get("possible", 0)})
    out["low"] = out["clear"]
    out["high"] = out["clear"] + out["possible"]
    out["estimate"] = out["clear"] + out["possible"] / 2
    return out
