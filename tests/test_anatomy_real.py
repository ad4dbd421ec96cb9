"""Anatomy on a real Nissl-stained whole cord section (skipped when ../shared/data is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from histoquant import read_image
from histoquant.anatomy import anatomy_overlay, find_sections

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def section(shared_data):
    path = shared_data / "spinal_cord_nissl" / "whole_section.jpg"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return read_image(path)


@pytest.mark.parametrize("pixel_size_um", [None, 6.7])
def test_whole_section(section, pixel_size_um):
    image = section.with_pixel_size(pixel_size_um)
    slide = find_sections(image)
    assert slide.status == "ok"
    assert len(slide.sections) == 1
    s = slide.sections[0]
    # dorsal horns point up in this slide: ventral is down, with confidence
    assert s.ventral_direction == "down"
    assert abs(s.angle_deg) < 10
    assert s.orientation_confidence > 0.9
    # the canal is the small ring at about (row 505, col 538)
    assert s.canal_found
    assert np.hypot(s.canal_rc[0] - 505, s.canal_rc[1] - 538) < 10
    tissue = s.mask("tissue")
    # the cord is ≈ 560 px wide; meninges (outer rings) and roots (fascicles beside the
    # cord: small fascicles pressed on it at upper left and right, larger roots at the
    # left) are excluded, though stained like tissue
    cols = np.nonzero(tissue.any(axis=0))[0]
    assert 520 <= cols[-1] - cols[0] <= 600
    for r, c in ((340, 300), (368, 272), (455, 205), (572, 228), (380, 820), (735, 540)):
        assert not tissue[r, c], (r, c)
    assert tissue[505, 400] and tissue[300, 540]
    # grey matter: the dark butterfly; ventral horns lie below the canal
    frac = s.metrics["grey_matter_fraction"]
    assert 0.12 <= frac <= 0.30, frac
    for name in ("ventral_horn_left", "ventral_horn_right"):
        rows = np.nonzero(s.mask(name).any(axis=1))[0]
        assert rows.min() >= s.canal_rc[0] - 2 and rows.max() > s.canal_rc[0] + 100
    for name in ("dorsal_horn_left", "dorsal_horn_right"):
        rows = np.nonzero(s.mask(name).any(axis=1))[0]
        assert rows.max() <= s.canal_rc[0] + 2 and rows.min() < s.canal_rc[0] - 150
    # animal's left is on the image's right (section seen from its rostral face)
    assert np.nonzero(s.mask("ventral_horn_left"))[1].mean() > s.canal_rc[1]
    if pixel_size_um is None:
        assert np.isnan(s.metrics["grey_matter_area_mm2"])
        assert slide.assumed_pixel_size_um == pytest.approx(7.0, rel=0.15)
    else:
        assert 6.0 < s.metrics["tissue_area_mm2"] < 16.0


def test_qc_overlay(section, tmp_path):
    slide = find_sections(section)
    qc = anatomy_overlay(section, slide)
    assert qc.dtype == np.uint8 and qc.ndim == 3 and qc.shape[0] > section.shape_yx[0]
