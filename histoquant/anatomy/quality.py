"""How much to trust one section's anatomy: a score in [0, 1] and named flags.

The score is a weighted mean of five parts, each in [0, 1] [U — weights are a judgement,
not fitted]:

========================  ======  ==============================================================
part                      weight  1 when …
========================  ======  ==============================================================
symmetry                  0.30    the grey matter matches its mirror image about the midline
                                  (Dice 0.85 or more; 0 at 0.5)
grey-matter fraction      0.25    inside ``grey_fraction_range_pct``; 0 fifteen points outside
shape                     0.20    the outline is compact (solidity ≥ 0.93; 0 at 0.75) and its
                                  width/height ratio is 0.9–1.7
orientation               0.15    the ventral decision is certain (confidence 1; 0 at 0.5)
canal                     0.10    a canal lumen was seen (0.5 when only estimated)
========================  ======  ==============================================================

A section that touches the image border has its score halved: it is probably cut.
"""

from __future__ import annotations

import numpy as np

__all__ = ["section_quality"]

_WEIGHTS = {"symmetry": 0.30, "grey_fraction": 0.25, "shape": 0.20, "orientation": 0.15,
            "canal": 0.10}


def _ramp(x: float, zero: float, one: float) -> float:
    return float(np.clip((x - zero) / (one - zero), 0.0, 1.0))


def section_quality(*, symmetry: float, grey_fraction: float,
                    grey_range: tuple[float, float], solidity: float, aspect: float,
                    orientation_confidence: float, orientation_user: bool, canal_found: bool,
                    touches_edge: bool, min_orientation_confidence: float,
                    min_quality: float) -> tuple[float, dict[str, float], list[str]]:
    """Score a section and list what is wrong with it.

    Parameters
    ----------
    symmetry : float
        Mirror symmetry of the grey matter (Dice, 0–1).
    grey_fraction : float
        Grey matter's share of the section's area.
    grey_range : (float, float)
        Plausible range of ``grey_fraction``.
    solidity : float
        Area of the section over that of its convex hull.
    aspect : float
        Short over long axis of the section.
    orientation_confidence : float
        Confidence of the dorsal/ventral decision (0.5–1).
    orientation_user : bool
        Whether the user gave the orientation (then it is not questioned).
    canal_found : bool
        Whether the central canal was found.
    touches_edge : bool
        Whether the section touches the image's edge (a cut section).
    min_orientation_confidence : float
        Below this the orientation is flagged uncertain.
    min_quality : float
        Below this score the section is flagged ``low_quality``.

    Returns
    -------
    score : float
        The quality score, 0–1.
    parts : dict of str to float
        The score's components.
    flags : list of str
        Short names such as ``touches_edge``, ``no_canal``, ``orientation_uncertain``,
        ``grey_fraction_out_of_range``, ``asymmetric``, ``irregular_shape``, ``low_quality``.
    """
    lo, hi = grey_range[0] / 100.0, grey_range[1] / 100.0
    if np.isnan(grey_fraction):
        frac_score = 0.0
    elif lo <= grey_fraction <= hi:
        frac_score = 1.0
    else:
        frac_score = _ramp(-abs(grey_fraction - (lo if grey_fraction < lo else hi)), -0.15, 0)
    aspect_score = 1.0 if 0.9 <= aspect <= 1.7 else _ramp(
        -min(abs(aspect - 0.9), abs(aspect - 1.7)), -0.4, 0)
    parts = {
        "symmetry": _ramp(symmetry, 0.5, 0.85),
        "grey_fraction": frac_score,
        "shape": _ramp(solidity, 0.75, 0.93) * aspect_score,
        "orientation": 1.0 if orientation_user else _ramp(orientation_confidence, 0.5, 1.0),
        "canal": 1.0 if canal_found else 0.5,
    }
    score = sum(_WEIGHTS[k] * v for k, v in parts.items())
    if touches_edge:
        score *= 0.5
    flags = []
    if touches_edge:
        flags.append("touches_edge")
    if not canal_found:
        flags.append("no_canal")
    if not orientation_user and orientation_confidence < min_orientation_confidence:
        flags.append("orientation_uncertain")
    if frac_score < 1.0:
        flags.append("grey_fraction_out_of_range")
    if parts["symmetry"] < 0.5:
        flags.append("asymmetric")
    if parts["shape"] < 0.5:
        flags.append("irregular_shape")
    if score < min_quality:
        flags.append("low_quality")
    return float(score), parts, flags
