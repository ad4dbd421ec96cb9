"""Evans Blue on a real 8-bit tracer-in-vessels field, against a reference built here.

``vessels/tumour_cd31_ng2/lectin_cd31_1.jpg``: B = DAPI, G = perfused lectin (stays inside the
vessels), R = CD31; ≈ 0.65 µm/px; the green channel is ≈ 45 % exact zeros (clipped). Almost
nothing leaks, so the extravascular tracer must be small.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from histoquant.assays import evans_blue as eb
from histoquant.io import read_image
from histoquant.segment.statistics import MAD_TO_SD

pytestmark = pytest.mark.realdata

PX = 0.65


def lectin_reference(rgb: np.ndarray, px: float) -> dict:
    """Extravascular tracer of the lectin field, by rules independent of the assay's code.

    1. **Tracer** = G above the mean + 5 SD of the *clear background*: the pixels more than
       15 µm from any pixel of G ≥ 64 (a quarter of the 8-bit range: surely lumen), i.e.
       outside the glow of every bright vessel (≈ 80 % of this field). Zeros included, as
       they are: the mean and SD of the clipped values (T_G ≈ 10 grey levels).
    2. **Vessel** = R (CD31) above median + 3 robust SD of the whole field (vessels are a
       small minority), opened by 3 × 3 px (single noisy pixels), holes ≤ 300 µm² filled
       (lumens of vessels cut across).
    3. **Margin**: a widefield image of a bright lumen glows around it. The margin is the
       inner edge of the first 0.65 µm ring around the vessel mask whose *mean* G falls below
       T_G (≈ 4 µm here), at most 15 µm.
    4. **Extravascular** = tracer and not within the margin; % of the image.
    """
    g = rgb[..., 1].astype(np.float64)
    r = rgb[..., 0].astype(np.float64)
    far = ndi.distance_transform_edt(g < 64) * px > 15.0
    bg = g[far]
    t_g = float(bg.mean() + 5 * bg.std())
    tracer = g > t_g
    med = float(np.median(r))
    t_r = med + 3 * MAD_TO_SD * float(np.median(np.abs(r - med)))
    vessel = ndi.binary_opening(r > t_r, np.ones((3, 3), bool))
    lab, _ = ndi.label(~vessel)
    sizes = np.bincount(lab.ravel()) * px * px
    lumen = sizes <= 300.0
    lumen[np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))] = False
    lumen[0] = False
    vessel |= lumen[lab]
    dist = ndi.distance_transform_edt(~vessel) * px
    margin = 15.0
    for k in np.arange(0.0, 15.0, px):
        ring = (dist > k) & (dist <= k + px)
        if ring.any() and g[ring].mean() < t_g:
            margin = float(k)
            break
    extra = tracer & (dist > margin)
    return {"tracer_level": t_g, "vessel_level": t_r, "margin_um": margin,
            "tracer_area_pct": 100 * float(tracer.mean()),
            "extravascular_area_pct": 100 * float(extra.mean())}


def test_lectin_field_extravascular_tracer_near_the_reference(shared_data):
    path = shared_data / "vessels" / "tumour_cd31_ng2" / "lectin_cd31_1.jpg"
    image = read_image(path, pixel_size_um=PX)
    ref = lectin_reference(np.asarray(image.data), PX)
    # the reference itself: a tracer that stays in the vessels leaves little outside
    assert ref["extravascular_area_pct"] < 5
    res = eb.run(image, channels={"evb": "G", "vessel": "R"})
    s = res.summary.iloc[0]
    # Issue #14's target: at most 2 points above the reference (was an error, then 43 %)
    assert s.extravascular_area_pct <= ref["extravascular_area_pct"] + 2.0
    # the noise is a measured one, not the rounding floor (0.29) that made 47 % "positive"
    assert res.extra["noise_sd"] >= 1.0
    assert s.evb_positive_area_pct < 2 * ref["tracer_area_pct"]
    # following the old error's advice (flatfield='none') gives the same answer
    res2 = eb.run(image, params={"flatfield": "none"}, channels={"evb": "G", "vessel": "R"})
    assert abs(res2.summary.iloc[0].extravascular_area_pct - s.extravascular_area_pct) < 0.5


def test_fluorescence_rgb_sections_are_fluorescence(shared_data):
    from histoquant.io.modality import detect_modality

    for path in sorted((shared_data / "spinal_cord_fluorescent").glob("*/*.jpg")):
        m = detect_modality(read_image(path))
        assert m.kind == "fluorescence", (path.name, m.evidence)
    for path in sorted((shared_data / "spinal_cord_nissl").glob("*.jpg")):
        m = detect_modality(read_image(path))
        assert m.kind == "brightfield", (path.name, m.evidence)
