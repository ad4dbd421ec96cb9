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
