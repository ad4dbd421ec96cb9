"""Which channel is which stain: names, ImageJ LUTs and OME colours (issue #17)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from histoquant.assays import get_assay
from histoquant.assays.base import resolve_channels
from histoquant.errors import ChannelError
from histoquant.io import Image, read_image
from histoquant.io.channel_roles import (
    ALIAS,
    COLOUR,
    NAME,
    display_colour,
    guess_roles,
    hue_name,
    lut_colour,
)


def _lut(r: int, g: int, b: int) -> np.ndarray:
    ramp = np.arange(256) / 255.0
    return np.rint(np.outer([r, g, b], ramp)).astype(np.uint8)


def _imagej(path, names=None, luts=None, n=3):
    meta = {"axes": "CYX"}
    if names:
        meta["Labels"] = list(names)
    if luts:
        meta["LUTs"] = list(luts)
    data = np.zeros((n, 16, 16), np.uint16)
    tifffile.imwrite(path, data, imagej=True, metadata=meta, resolution=(2.0, 2.0))
    return path


def _image(names, colours=None):
    data = np.zeros((8, 8, len(names)), np.uint16)
    meta = {"channel_colors": list(colours)} if colours else {}
    return Image(data, axes="YXC", pixel_size_um=1.0, channel_names=tuple(names),
                 metadata=meta)


@pytest.mark.parametrize("rgb, hue", [((0, 255, 0), "green"), ((0, 0, 255), "blue"),
                                      ((255, 0, 0), "red"), ((255, 0, 255), "magenta"),
                                      ((0, 255, 255), "cyan"), ((255, 255, 0), "yellow"),
                                      ((255, 255, 255), "gray"), ((200, 190, 210), "gray")])
def test_a_lut_is_named_by_its_brightest_colour(rgb, hue):
    assert hue_name(lut_colour(_lut(*rgb))) == hue


def test_unreadable_colours_name_nothing():
    assert lut_colour(np.zeros((2, 256))) is None
    assert hue_name(None) is None and hue_name("#zz0000") is None
    assert hue_name("#000000") is None  # a black LUT says nothing


def test_reader_records_imagej_luts(tmp_path):
    path = _imagej(tmp_path / "a.tif", luts=[_lut(255, 255, 255), _lut(0, 255, 0),
                                             _lut(0, 0, 255)])
    image = read_image(path)
    assert [hue_name(c) for c in image.metadata["channel_colors"]] == ["gray", "green", "blue"]


def test_reader_records_ome_colours(tmp_path):
    path = tmp_path / "a.ome.tif"
    # OME Color is a signed RGBA int: green = 0x00FF00FF, blue = 0x0000FFFF
    tifffile.imwrite(path, np.zeros((2, 16, 16), np.uint16), ome=True,
                     metadata={"axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5,
                               "Channel": {"Name": ["a", "b"],
                                           "Color": [0x00FF00FF, 0x0000FFFF]}})
    image = read_image(path)
    assert [hue_name(c) for c in image.metadata["channel_colors"]] == ["green", "blue"]


def test_the_issue_file_gfp_is_the_green_lut_not_the_first_channel():
    # The shape of the shared Tie2-Cre file: C0 tdTomato shown gray, C1 GFP green, C2 DAPI blue.
    image = _image(["C0", "C1", "C2"], ["#ffffff", "#00ff00", "#0000ff"])
    roles = get_assay("gfp-cells").channel_roles
    found = guess_roles(image, roles)
    assert {r: g.index for r, g in found.chosen.items()} == {"gfp": 1, "dapi": 2}
    assert found.chosen["gfp"].strength == COLOUR and "green" in found.chosen["gfp"].reason
    # The red-or-gray tdTomato channel is never taken for the autofluorescence reference.
    assert "reference" not in found.chosen
    # Colours only suggest: the command line does not measure with them, it asks and says.
    with pytest.raises(ChannelError, match=r"suggest 'C1' \(display colour green"):
        resolve_channels(image, roles, None)


def test_names_beat_colours_and_ties_are_left_to_the_user():
    roles = get_assay("gfp-cells").channel_roles
    # A channel named EGFP wins over a green LUT elsewhere.
    found = guess_roles(_image(["EGFP", "x"], ["#ff0000", "#00ff00"]), roles)
    assert found.chosen["gfp"].index == 0 and found.chosen["gfp"].strength == ALIAS
    # Two channels called like GFP: ambiguous, not the first.
    found = guess_roles(_image(["GFP 488", "EGFP"]), roles)
    assert "gfp" not in found.chosen and found.ambiguous["gfp"] == [0, 1]
    # The role's own name is the strongest evidence.
    found = guess_roles(_image(["gfp", "FITC"]), roles)
    assert found.chosen["gfp"].index == 0 and found.chosen["gfp"].strength == NAME


def test_resolve_channels_takes_marker_names():
    roles = get_assay("vasculature").channel_roles
    image = _image(["Hoechst 33342", "CD31-AF488", "PDGFRb"])
    assert resolve_channels(image, roles, None) == {"dapi": 0, "endothelium": 1,
                                                     "pericyte": 2}
    # What the user gives wins, and a guess never takes the channel the user gave.
    assert resolve_channels(image, roles, {"pericyte": 1, "endothelium": 2}) == {
        "dapi": 0, "endothelium": 2, "pericyte": 1}


def test_display_colour_prefers_the_files_lut():
    assert display_colour("DAPI") == "blue"
    assert display_colour("DAPI", "#00ff00") == "green"  # the lab's own LUT
    assert display_colour("C0") == "gray"
    assert display_colour("C1", None, 1, 3) != display_colour("C0", None, 0, 3)
