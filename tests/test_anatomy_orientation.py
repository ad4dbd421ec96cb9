"""Orientation of cord phantoms turned at random: the ventral side must be found."""

from __future__ import annotations

import numpy as np
import pytest

from histoquant.anatomy import find_sections
from histoquant.synthetic.cord import cord_section, random_geometry

PX_UM = 20.0  # phantoms rendered directly at the working resolution (fast)


@pytest.fixture(scope="module")
def geometries():
    rng = np.random.default_rng(2024)
    return [random_geometry(rng) for _ in range(10)]


def test_ventral_side_found_for_100_random_rotations(geometries):
    rng = np.random.default_rng(7)
    right = 0
    errors = []
    for i in range(100):
        angle = float(rng.uniform(-180, 180))
        ph = cord_section(PX_UM, seed=1000 + i, angle_deg=angle, margin_um=500,
                          geometry=geometries[i % len(geometries)])
        slide = find_sections(ph.image, {"working_pixel_size_um": PX_UM})
        assert len(slide.sections) == 1, f"rotation {angle:.0f}°: {len(slide.sections)} sections"
        err = (slide.sections[0].angle_deg - angle + 180.0) % 360.0 - 180.0
        errors.append(abs(err))
        right += abs(err) <= 20.0
    assert right >= 98, f"ventral side right in {right}/100; errors {sorted(errors)[-5:]}"
    # the axis itself is accurate, not only the side
    assert np.median(errors) < 3.0


def test_confidence_is_high_when_right_and_reported(geometries):
    ph = cord_section(PX_UM, seed=5, angle_deg=150.0, margin_um=500, geometry=geometries[0])
    s = find_sections(ph.image, {"working_pixel_size_um": PX_UM}).sections[0]
    assert s.orientation_source == "auto"
    assert 0.9 <= s.orientation_confidence <= 1.0
    assert s.ventral_direction == "up"  # 150° counter-clockwise from down is nearest "up"
