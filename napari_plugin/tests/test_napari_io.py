"""Reader, writer, manifest and layer conversions (no viewer needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from histoquant.errors import PixelSizeError, RegionError
from histoquant.io import Image, write_imagej_tiff, write_ome_tiff, write_ome_zarr
from histoquant.rois import Polygon, Region, normalize_regions, read_regions, write_regions
from histoquant_napari._convert import (
    channel_colormap,
    layer_pixel_size,
    layers_to_image,
    regions_to_shapes_data,
    shapes_to_regions,
)
from histoquant_napari._reader import napari_get_reader
from histoquant_napari._writer import write_shapes

# -- manifest and imports ---------------------------------------------------------------------


def test_manifest_validates():
    from npe2 import PluginManifest

    pm = PluginManifest.from_distribution("histoquant-napari")
    pm.validate_imports()  # every python_name imports, widgets included
    assert pm.name == "histoquant-napari"
    assert pm.contributions.readers and pm.contributions.writers
    result = subprocess.run([str(Path(sys.executable).with_name("npe2")), "validate",
                             "histoquant-napari"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout.lower()


def test_manifest_has_a_widget_and_sample_for_every_assay():
    from npe2 import PluginManifest

    from histoquant_napari._assay_widget import assay_specs, widget_class_name

    pm = PluginManifest.from_distribution("histoquant-napari")
    commands = {c.id: c.python_name for c in pm.contributions.commands}
    widget_targets = {commands[w.command].split(":")[1] for w in pm.contributions.widgets}
    sample_keys = {s.key for s in pm.contributions.sample_data}
    for name in assay_specs():
        assert widget_class_name(name) in widget_targets, f"no widget entry for {name}"
        assert name in sample_keys, f"no sample entry for {name}"
    assert {"AnatomyWidget", "BatchWidget", "TeachWidget", "ValidationWidget"} <= \
        widget_targets


def test_assay_widget_classes_are_plain_classes():
    """Each assay's Plugins-menu class is written out in the module (no ``__getattr__``
    factory), is an AssayWidget preset to that assay, and is the one the manifest names."""
    from npe2 import PluginManifest

    import histoquant_napari._assay_widget as aw

    assert "__getattr__" not in vars(aw)
    pm = PluginManifest.from_distribution("histoquant-napari")
    targets = {c.python_name for c in pm.contributions.commands}
    for name in aw.assay_specs():
        cls = vars(aw).get(aw.widget_class_name(name))
        assert isinstance(cls, type) and issubclass(cls, aw.AssayWidget), name
        assert cls.assay_name == name and cls.__module__ == aw.__name__
        assert cls.__name__ in aw.__all__
        assert f"{aw.__name__}:{cls.__name__}" in targets, name
    with pytest.raises(AttributeError):
        aw.NoSuchAssayWidget  # noqa: B018 - the attribute access is what is tested


def test_sample_commands_are_plain_functions(monkeypatch):
    """Every sample command the manifest names is written out in the module and opens its
    own assay's example."""
    from npe2 import PluginManifest

    import histoquant_napari._sample_data as sd

    assert "__getattr__" not in vars(sd)
    asked = []
    monkeypatch.setattr(sd, "sample_layers", lambda assay: asked.append(assay) or [])
    pm = PluginManifest.from_distribution("histoquant-napari")
    commands = {c.id: c.python_name for c in pm.contributions.commands}
    for sample in pm.contributions.sample_data:
        module, func = commands[sample.command].split(":")
        assert module == sd.__name__ and callable(vars(sd).get(func)), func
        assert vars(sd)[func]() == [] and asked[-1] == sample.key


def test_core_and_plugin_import_without_qt():
    code = ("import sys, histoquant, histoquant.assays, histoquant_napari, "
            "histoquant_napari._reader, histoquant_napari._writer, "
            "histoquant_napari._sample_data, histoquant_napari._convert; "
            "histoquant.assays.available_assays(); "
            "bad = [m for m in ('napari', 'qtpy', 'PyQt6', 'PyQt5', 'magicgui', 'vispy') "
            "if m in sys.modules]; print(bad); assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# -- reader -----------------------------------------------------------------------------------


def _read(path):
    reader = napari_get_reader(str(path))
    assert reader is not None
    return reader(str(path))


def test_reader_rgb_ome_tiff_scale(rgb_file):
    ((data, kwargs, kind),) = _read(rgb_file)
    assert kind == "image" and kwargs["rgb"] is True
    assert data.shape == (160, 200, 3)
    assert kwargs["scale"] == (0.5, 0.5)
    assert kwargs["units"] == ("micrometer", "micrometer")
    assert kwargs["name"] == "nissl_small"


def test_reader_fluorescence_one_layer_per_channel(fluo_file):
    layers = _read(fluo_file)
    assert [k for *_, k in layers] == ["image", "image"]
    names = [kw["name"] for _, kw, _ in layers]
    assert names == ["gfp_small [DAPI]", "gfp_small [GFP]"]
    assert [kw["colormap"] for _, kw, _ in layers] == ["blue", "green"]
    assert all(kw["scale"] == (0.65, 0.65) and kw["blending"] == "additive"
               for _, kw, _ in layers)
    from histoquant.io import read_image

    img = read_image(fluo_file)
    for i, (data, kw, _) in enumerate(layers):
        np.testing.assert_array_equal(np.asarray(data), img.data[..., i])
        assert kw["metadata"]["histoquant"]["channel"] == img.channel_names[i]


def test_reader_imagej_and_zarr_scale(tmp_path):
    data = np.arange(40 * 50, dtype=np.uint16).reshape(40, 50)
    ij = write_imagej_tiff(Image(data, pixel_size_um=0.346), tmp_path / "ij.tif")
    ((_, kw, _),) = _read(ij)
    assert kw["scale"] == pytest.approx((0.346, 0.346), rel=1e-4)
    stack = np.stack([data, data[::-1]], axis=-1)
    z = write_ome_zarr(Image(stack, axes="YXC", pixel_size_um=1.25,
                             channel_names=("EvB", "lectin")), tmp_path / "s.ome.zarr")
    layers = _read(z)
    assert [kw["scale"] for _, kw, _ in layers] == [(1.25, 1.25)] * 2
    assert [kw["colormap"] for _, kw, _ in layers] == ["magenta", "cyan"]


def test_reader_jpeg_without_pixel_size(tmp_path):
    from PIL import Image as PILImage

    path = tmp_path / "slide.jpg"
    PILImage.fromarray(np.full((30, 40, 3), 200, np.uint8)).save(path)
    ((_data, kw, _),) = _read(path)
    assert kw["rgb"] and kw["scale"] == (1.0, 1.0) and "units" not in kw
    assert kw["metadata"]["histoquant"]["pixel_size_um"] is None


def test_reader_probe_declines_quietly(tmp_path):
    assert napari_get_reader(str(tmp_path / "notes.txt")) is None
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    assert napari_get_reader(str(junk)) is None
    import zipfile

    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert napari_get_reader(str(other)) is None
    assert napari_get_reader([]) is None
    assert napari_get_reader(12345) is None  # nonsense in, None out, no exception


def test_reader_corrupt_image_raises_core_error(tmp_path):
    from histoquant.errors import ImageReadError

    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00garbage")
    reader = napari_get_reader(str(bad))
    assert reader is not None  # the probe looks at the name only
    with pytest.raises(ImageReadError, match="broken.tif"):
        reader(str(bad))


# -- colormaps --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "colour"), [
    ("DAPI", "blue"), ("Hoechst 33342", "blue"), ("GFP", "green"), ("FITC", "green"),
    ("EvB", "magenta"), ("Evans Blue", "magenta"), ("far red", "magenta"), ("red", "magenta"),
    ("Cy5", "magenta"), ("lectin", "cyan"), ("RECA-1", "cyan"), ("CD31", "cyan"),
    ("PDGFRb", "yellow"), ("NG2", "yellow"), ("autofluorescence", "gray"),
    ("tdTomato", "red"), ("Cy3", "red"),
])
def test_channel_colormap_by_name(name, colour):
    assert channel_colormap(name, 0, 3) == colour


def test_channel_colormap_unknown_names():
    assert channel_colormap("C0", 0, 1) == "gray"
    assert channel_colormap("C0", 0, 2) != channel_colormap("C1", 1, 2)


# -- pixel size of a layer ---------------------------------------------------------------------


class _Layer:
    def __init__(self, scale, units=None, metadata=None, name="layer", data=None, rgb=False):
        self.scale, self.units, self.metadata, self.name = scale, units, metadata or {}, name
        self.data, self.rgb = data, rgb
        self.translate = (0.0,) * len(scale)


def test_layer_pixel_size_rules():
    assert layer_pixel_size(_Layer((0.5, 0.5))) == 0.5
    assert layer_pixel_size(_Layer((1.0, 1.0))) is None
    assert layer_pixel_size(_Layer((1.0, 1.0), units=("pixel", "pixel"))) is None
    assert layer_pixel_size(_Layer((1.0, 1.0), units=("micrometer", "micrometer"))) == 1.0
    assert layer_pixel_size(_Layer((1.0, 1.0),
                                   metadata={"histoquant": {"pixel_size_um": 1.0}})) == 1.0
    assert layer_pixel_size(_Layer((5.0, 0.7, 0.7))) == 0.7  # Z step is not the pixel size
    with pytest.raises(PixelSizeError, match="anisotropic"):
        layer_pixel_size(_Layer((0.5, 0.7)))


def test_layers_to_image_roles_and_rgb_split():
    rgb = np.random.default_rng(1).integers(0, 255, (20, 30, 3)).astype(np.uint8)
    grey = np.ones((20, 30), np.uint16)
    a = _Layer((0.5, 0.5), data=rgb, rgb=True, name="rgb")
    b = _Layer((0.5, 0.5), data=grey, name="grey")
    img = layers_to_image({"vessel": (a, 0), "tracer": (a, 1), "other": (b, None)}, 0.5,
                          rgb=False, name="x")
    assert img.channel_names == ("vessel", "tracer", "other")
    np.testing.assert_array_equal(img.channel("tracer"), rgb[..., 1])
    assert img.name == "x" and img.pixel_size_um == 0.5
    bf = layers_to_image({"image": (a, None)}, 0.5, rgb=True, name="bf")
    assert bf.rgb and bf.axes == "YXC"
    from histoquant.errors import ChannelError

    c = _Layer((0.5, 0.5), data=np.ones((10, 10)), name="small")
    with pytest.raises(ChannelError, match="differ in size"):
        layers_to_image({"x": (b, None), "y": (c, None)}, 0.5, rgb=False, name="x")


# -- regions <-> shapes -----------------------------------------------------------------------


def _ring_mask():
    yy, xx = np.mgrid[:80, :90]
    outer = (yy - 40) ** 2 + (xx - 45) ** 2 < 30 ** 2
    inner = (yy - 40) ** 2 + (xx - 45) ** 2 < 8 ** 2
    return outer & ~inner


def test_masks_to_shapes_and_back_keep_pixels_and_holes():
    ring = _ring_mask()
    box = np.zeros_like(ring)
    box[5:15, 5:25] = True
    data, types, feats = regions_to_shapes_data({"grey_matter": ring, "box": box},
                                                tolerance_px=0.0)
    assert types == ["polygon"] * len(data)
    assert list(feats["name"]) == ["grey_matter", "grey_matter", "box"]
    assert list(feats["hole"]) == [False, True, False]
    back = normalize_regions(shapes_to_regions(data, types, feats), ring.shape)
    np.testing.assert_array_equal(back["grey_matter"], ring)
    np.testing.assert_array_equal(back["box"], box)


def test_simplified_outline_stays_close():
    ring = _ring_mask()
    data, types, feats = regions_to_shapes_data({"r": ring}, tolerance_px=1.0)
    back = normalize_regions(shapes_to_regions(data, types, feats), ring.shape)["r"]
    assert sum(len(d) for d in data) < 0.5 * ring.sum() ** 0.5 * 8  # far fewer vertices
    assert abs(int(back.sum()) - int(ring.sum())) / ring.sum() < 0.03
    assert (back ^ ring).sum() / ring.sum() < 0.06


def test_shapes_world_to_image_pixels():
    square = np.array([[10.0, 10.0], [10.0, 20.0], [20.0, 20.0], [20.0, 10.0]])
    # Shapes drawn at 1 µm per data unit, image at 0.5 µm per pixel shifted by (5, 5) µm:
    (region,) = shapes_to_regions([square], ["rectangle"], None, shapes_scale=(1, 1),
                                  image_scale=(0.5, 0.5), image_translate=(5, 5))
    np.testing.assert_allclose(region.polygons[0].exterior, (square - 5) / 0.5)
    assert region.name == "region_1"


def test_ellipse_and_unnamed_shapes():
    corners = np.array([[10.0, 10.0], [10.0, 50.0], [30.0, 50.0], [30.0, 10.0]])
    (region,) = shapes_to_regions([corners], ["ellipse"],
                                  pd.DataFrame({"name": ["oval"]}))
    mask = normalize_regions([region], (60, 60))["oval"]
    assert mask.sum() == pytest.approx(np.pi * 10 * 20, rel=0.03)
    with pytest.raises(RegionError, match="no area"):
        shapes_to_regions([corners[:2]], ["line"], None)
    with pytest.raises(RegionError, match="holds no shape"):
        shapes_to_regions([], [], None)
    with pytest.raises(RegionError, match="no outer"):
        shapes_to_regions([corners], ["polygon"], pd.DataFrame({"name": ["a"], "hole": [True]}))


# -- region files and the writer ---------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".zip", ".geojson"])
def test_region_file_reader_and_writer_roundtrip(tmp_path, suffix):
    square = np.array([[10.0, 12.0], [10.0, 40.0], [30.0, 40.0], [30.0, 12.0]])
    regions = [Region("ventral_horn_left", [Polygon(square)]),
               Region("grey_matter", [Polygon(square + 50)])]
    path = write_regions(regions, tmp_path / f"rois{suffix}")
    ((data, kwargs, kind),) = _read(path)
    assert kind == "shapes"
    assert list(kwargs["features"]["name"]) == ["ventral_horn_left", "grey_matter"]
    out = write_shapes(str(tmp_path / f"again{suffix}"), data,
                       {"shape_type": kwargs["shape_type"], "features": kwargs["features"]})
    again = read_regions(out[0])
    shape = (100, 100)
    want = normalize_regions(regions, shape)
    got = normalize_regions(again, shape)
    assert set(got) == set(want)
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])


def test_sample_data_finds_example_or_explains(monkeypatch, tmp_path, rgb_file):
    from histoquant_napari import _sample_data as sd

    folder = tmp_path / "ex"
    folder.mkdir()
    (folder / "nissl_small.ome.tif").write_bytes(rgb_file.read_bytes())
    (folder / "study.yaml").write_text(
        "assays:\n  motor-neurons:\n    files: ['nissl_*']\n")
    monkeypatch.setattr(sd, "example_images_dir", lambda: folder)
    # The study names an assay this histoquant may not have: its globs are still read.
    assert sd._study_globs(folder) == {"motor-neurons": ["nissl_*"]}
    assert sd.example_file("motor-neurons") == folder / "nissl_small.ome.tif"
    ((_data, kw, _kind),) = sd.sample_motor_neurons()
    assert kw["scale"] == (0.5, 0.5) and kw["rgb"]
    monkeypatch.setattr(sd, "phantom_for", lambda a: None)
    from histoquant.errors import HistoquantError

    with pytest.raises(HistoquantError, match="no example image"):
        sd.sample_layers("no-such-assay")
    write_ome_tiff  # noqa: B018 - imported for the fixtures' writer


def test_result_layers_colour_objects_by_class():
    from histoquant.results import AssayResult
    from histoquant_napari._results import (
        CLASS_COLOURS,
        KEPT_COLOURS,
        SET_ASIDE_COLOURS,
        class_colour,
        class_colours,
        result_layer_data,
    )

    # Fixed per class name: the same colour whatever else is in the table, or its order.
    auto, gfp = CLASS_COLOURS["autofluorescent"], CLASS_COLOURS["gfp_cell"]
    assert auto in SET_ASIDE_COLOURS and gfp in KEPT_COLOURS and auto != gfp
    assert class_colour("rejected_by_model") in SET_ASIDE_COLOURS
    assert class_colour("my_cells") in KEPT_COLOURS
    assert class_colour("my_cells") == class_colour("my_cells")

    labels = np.zeros((10, 10), np.int32)
    labels[1:3, 1:3], labels[5:8, 5:8] = 1, 2
    objects = pd.DataFrame({"image": "x", "region": "image", "label": [1, 2],
                            "centroid_y_um": [1.0, 6.0], "centroid_x_um": [1.0, 6.0],
                            "class": ["autofluorescent", "gfp_cell"]})
    result = AssayResult("a", "x", objects, pd.DataFrame({"image": ["x"]}), labels=labels,
                         masks={"positive": labels > 0}, pixel_size_um=0.5)
    assert class_colours(objects) == {"autofluorescent": auto, "gfp_cell": gfp}
    assert class_colours(objects.iloc[::-1]) == {"gfp_cell": gfp, "autofluorescent": auto}
    (lab, kw, kind), (mask, mkw, mkind) = result_layer_data(result, scale=(0.5, 0.5))
    assert kind == mkind == "labels" and kw["name"] == "objects · a · x"
    assert kw["colormap"][1] == auto and kw["colormap"][2] == gfp
    assert list(kw["features"]["index"]) == [1, 2] and lab is labels
    assert mask.dtype == np.uint8 and not mkw["visible"]
    # Without a label image, objects with centroids become points (in pixels, on the µm grid).
    result.labels, result.masks = None, {}
    ((pts, pkw, pkind),) = result_layer_data(result, scale=(0.5, 0.5))
    assert pkind == "points"
    np.testing.assert_allclose(pts, [[2.0, 2.0], [12.0, 12.0]])
    assert pkw["border_color"] == [auto, gfp]


def test_layers_to_image_keeps_lazy_data_lazy_and_drops_alpha():
    import dask.array as da

    lazy = da.from_array(np.arange(40 * 30, dtype=np.uint16).reshape(40, 30), chunks=10)
    a = _Layer((0.5, 0.5), data=lazy, name="a")
    b = _Layer((0.5, 0.5), data=lazy + 1, name="b")
    img = layers_to_image({"x": (a, None), "y": (b, None)}, 0.5, rgb=False, name="lazy")
    assert isinstance(img.data, da.Array)  # nothing read yet
    np.testing.assert_array_equal(img.channel("y"), np.asarray(lazy) + 1)
    rgba = np.zeros((8, 9, 4), np.uint8)
    rgba[..., 0] = 200
    bf = layers_to_image({"image": (_Layer((1, 1), data=rgba, rgb=True), None)}, 1.0,
                         rgb=True, name="rgba")
    assert bf.rgb and bf.data.shape == (8, 9, 3)
