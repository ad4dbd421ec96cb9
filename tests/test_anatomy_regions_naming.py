"""Region naming rules of histoquant.anatomy.regions: section prefixes and left/right swaps."""

from __future__ import annotations

import numpy as np
import pytest

from histoquant.anatomy import find_sections
from histoquant.anatomy.regions import (
    REGION_NAMES,
    SectionAnatomy,
    region_base_name,
    region_key,
    swap_left_right,
)
from histoquant.rois import Polygon, Region, normalize_regions
from histoquant.synthetic.cord import cord_slide

SQUARE = [Polygon(np.array([[0.0, 0.0], [0.0, 4.0], [4.0, 4.0], [4.0, 0.0]]))]


def _section(index: int) -> SectionAnatomy:
    """A 6×8 working-grid section holding every region code (1 white matter … 6 canal)."""
    codes = np.ones((6, 8), np.uint8)
    codes[3:5, 1:3] = 2  # ventral horn, animal's left
    codes[3:5, 5:7] = 3  # ventral horn, animal's right
    codes[1:3, 1:3] = 4  # dorsal horn, left
    codes[1:3, 5:7] = 5  # dorsal horn, right
    codes[2:4, 3:5] = 6  # canal
    return SectionAnatomy(index=index, codes=codes, offset=(0, 0), factor=4,
                          full_shape=(24, 32), canal_rc=(12.0, 16.0), canal_found=True,
                          ventral=(1.0, 0.0), angle_deg=0.0, orientation_confidence=1.0,
                          orientation_source="user", mirrored=False)


@pytest.mark.parametrize("n_sections", [1, 3])
def test_region_base_name_undoes_region_key(n_sections):
    for section in range(1, n_sections + 1):
        for name in REGION_NAMES:
            key = region_key(name, section, n_sections)
            assert region_base_name(key) == name
            assert region_base_name(Region(key, SQUARE)) == name


def test_region_base_name_of_the_anatomy_regions():
    # Several sections: every region the anatomy makes carries its section prefix, and the base
    # name is the anatomy's name, once per region.
    regions = _section(2).regions(n_sections=3)
    assert [r.name for r in regions] == [f"s2_{n}" for n in REGION_NAMES]
    assert [region_base_name(r) for r in regions] == list(REGION_NAMES)


def test_region_base_name_prefers_the_region_property():
    # A shape the user renamed keeps the anatomy's name in its properties.
    renamed = Region("my_horn", SQUARE, properties={"region": "ventral_horn_left"})
    assert region_base_name(renamed) == "ventral_horn_left"
    # Without the property the name is read; empty properties count as none.
    assert region_base_name(Region("s12_grey_matter", SQUARE, properties={"region": ""})) \
        == "grey_matter"


@pytest.mark.parametrize("name", ["grey_matter", "vh_left", "s1x_tissue", "section_2",
                                  "s_tissue", "xs1_tissue"])
def test_region_base_name_leaves_unprefixed_names(name):
    # Only a leading s<digits>_ is a section prefix.
    assert region_base_name(name) == name


def test_swap_left_right():
    names = ["grey_matter", "ventral_horn_left", "s2_dorsal_horn_right", "vh_left", "left",
             "right_side", "left_right"]
    swapped = swap_left_right(names)
    assert swapped == ["grey_matter", "ventral_horn_right", "s2_dorsal_horn_left", "vh_right",
                       "left", "right_side", "left_left"]
    assert swap_left_right(swapped) == names
    assert swap_left_right(iter(["a_left"])) == ["a_right"]
    assert swap_left_right([]) == []


def test_swap_left_right_is_what_the_mirrored_setting_does():
    # Renaming the regions of a section measured with the wrong mirrored setting gives the
    # regions measured with the right one: same names, same masks, section prefixes kept.
    ph = cord_slide(2, seed=3, mirrored=True)
    wrong = find_sections(ph.image).regions()
    right = {r.name: r for r in find_sections(ph.image, {"mirrored": True}).regions()}
    shape = ph.image.shape_yx
    renamed = [Region(n, r.polygons) for n, r in
               zip(swap_left_right([r.name for r in wrong]), wrong, strict=True)]
    assert {r.name for r in renamed} == set(right)
    assert {n[:3] for n in right} == {"s1_", "s2_"} and any(n.endswith("_left") for n in right)
    got = normalize_regions(renamed, shape)
    want = normalize_regions(list(right.values()), shape)
    for name in right:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
