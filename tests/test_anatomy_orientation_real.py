"""Orientation of the real mouse sections turned by quarter turns (skipped without
../shared/data).

Every mouse export has ventral down, so "ventral down" alone cannot tell a method that
reads the anatomy from one that leans toward the image's own axes. Each section is
turned by one quarter turn (``np.rot90``: exact, no resampling; the turn cycles through
90°, 180° and 270° over the sections) and the pipeline run on it as on a user's image,
with the scale-bar pixel size: the ventral side must turn with the image, or the decision
must be flagged as uncertain (confidence < 0.7). A tissue mask that lost half the cord
cannot be oriented; saying so is the right answer.
"""

from __future__ import annotations

import numpy as np
import pytest

from histoquant import read_image
from histoquant.anatomy import find_sections
from histoquant.io.image import as_image

pytestmark = pytest.mark.realdata

MOUSE_IDS = ("214_L1", "238_L2", "263_L4", "280_L5", "290_L6")
STAINS = {"nissl": "nissl", "neun": "NeuN", "chat": "ChAT", "th": "TH"}
# np.rot90(k) turns the picture counter-clockwise: ventral (down) ends up
WORDS = ("down", "right", "up", "left")
CASES = [(st, sid, 1 + i % 3) for i, (st, sid) in
         enumerate((st, sid) for st in STAINS for sid in MOUSE_IDS)]


@pytest.mark.parametrize("stain, sid, k", CASES, ids=[f"{s}-{i}-rot{90 * k}"
                                                      for s, i, k in CASES])
def test_ventral_side_turns_with_the_section(shared_data, stain, sid, k):
    path = shared_data / "spinal_cord_fluorescent" / stain / f"{sid}_{STAINS[stain]}.jpg"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    image = read_image(path)
    px = 2.30 if image.shape_yx[0] <= 800 else 2.02   # data README: from the scale bars
    turned = as_image(np.ascontiguousarray(np.rot90(np.asarray(image.data), k)), px)
    slide = find_sections(turned)
    assert slide.sections, slide.warnings
    s = max(slide.sections, key=lambda x: x.metrics["tissue_area_mm2"])
    assert s.ventral_direction == WORDS[k] or (
        s.orientation_confidence < 0.7 and "orientation_uncertain" in s.flags), (
        s.ventral_direction, s.orientation_confidence, s.metrics.get("cue_total"))


ATLAS_IDS = ("214_L1", "238_L2", "280_L5", "290_L6")


@pytest.mark.parametrize("stain", list(STAINS))
@pytest.mark.parametrize("sid", ATLAS_IDS)
def test_ventral_side_from_the_atlas_masks(shared_data, atlas_refs, stain, sid):
    """The orientation functions on the drawn cord and grey-matter masks (so on the right
    shapes, whatever the segmentation does): ventral down in every drawn section, and
    turned with the masks by a quarter turn. The stain only changes the image the canal is
    looked for in."""
    from scipy import ndimage as ndi

    from histoquant.anatomy.grey_matter import find_canal
    from histoquant.anatomy.orientation import symmetry_axis, ventral_cues
    from histoquant.anatomy.working import tissue_signal

    atlas = atlas_refs
    folder = shared_data / "spinal_cord_fluorescent"
    path = folder / stain / f"{sid}_{STAINS[stain]}.jpg"
    drawing = folder / "atlas" / f"{sid}_atlas.png"
    if not path.exists() or not drawing.exists():
        pytest.skip("image or drawing absent")
    image = read_image(path)
    px = 2.30 if image.shape_yx[0] <= 800 else 2.02   # data README: from the scale bars
    drawn = atlas.extract_atlas(drawing, image.shape_yx)
    f = max(1, round(10.0 / px))                       # the anatomy's 10 µm working scale
    sig = tissue_signal(image.with_pixel_size(px), f).signal
    h, w = sig.shape

    def down(m: np.ndarray) -> np.ndarray:
        m = np.pad(m[: h * f, : w * f], ((0, max(0, h * f - m.shape[0])),
                                         (0, max(0, w * f - m.shape[1]))))
        return m.reshape(h, f, w, f).mean(axis=(1, 3)) > 0.5

    cord, grey = down(drawn.cord), down(drawn.grey & drawn.cord)
    wpx = px * f
    for k in (0, 1):
        c, g, s = (np.ascontiguousarray(np.rot90(a, k)) for a in (cord, grey, sig))
        axis = symmetry_axis(g, c, wpx)
        canal = find_canal(s, c, g, axis.point, axis.direction, wpx)
        sign, conf, cues = ventral_cues(g, c, np.asarray(canal.rc), axis.direction, wpx,
                                        ndi.binary_fill_holes(c))
        v = sign * axis.direction
        angle = float(np.degrees(np.arctan2(v[1], v[0])))
        assert WORDS[int(((angle + 45.0) % 360.0) // 90.0) % 4] == WORDS[k], (k, cues)
        assert abs((angle - 90.0 * k + 180.0) % 360.0 - 180.0) < 10.0, (k, angle)
        assert conf > 0.6, (k, conf, cues)
