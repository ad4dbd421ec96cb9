"""Conversions between histoquant objects and napari layer data, without importing napari.

Everything here works on plain arrays and on layer objects by duck typing (``.data``,
``.scale``, ``.translate``, ``.units``, ``.metadata``, ``.rgb``), so the reader, the writer and
the tests can use it without a running viewer.

Coordinates: napari puts the centre of pixel ``(r, c)`` at data coordinate ``(r, c)``, which is
also histoquant's convention (see :mod:`histoquant.rois.region`). World coordinates are
``data * scale + translate``; histoquant layers carry the pixel size in µm as their scale.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from histoquant.errors import ChannelError, PixelSizeError, RegionError
from histoquant.io import Image
from histoquant.io.channel_roles import channel_colours, display_colour
from histoquant.rois import Polygon, Region, mask_to_polygons

__all__ = [
    "META_KEY",
    "channel_colormap",
    "image_to_layer_data",
    "layer_pixel_size",
    "set_layer_pixel_size",
    "layer_image_name",
    "layers_to_image",
    "regions_to_shapes_data",
    "shapes_to_regions",
    "region_colour",
]

META_KEY = "histoquant"
"""Key of the dict the plugin stores in ``layer.metadata`` (path, pixel size, channel)."""

def channel_colormap(name: str, index: int = 0, n_channels: int = 1,
                     colour: str | None = None) -> str:
    """Return a napari colormap name for a fluorescence channel.

    The file's own display colour (``colour``, from its LUT) first, then the channel's name
    (DAPI → blue, GFP → green, Evans Blue / far red → magenta, vessel markers → cyan,
    pericyte markers → yellow, autofluorescence → gray), then gray for a lone channel or a
    fixed cycle by index: :func:`histoquant.io.channel_roles.display_colour`.
    """
    return display_colour(name, colour, index, n_channels)


def _level0(data: Any) -> Any:
    """Full-resolution array of a layer's data (the first level of a multiscale list)."""
    if isinstance(data, (list, tuple)):
        return data[0]
    return data


def _channel_view(data: Any, index: int) -> Any:
    """Return ``data[..., index]`` without loading a lazy (zarr) array into memory."""
    if isinstance(data, np.ndarray):
        return data[..., index]
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover - napari depends on dask
        return np.asarray(data[..., index])
    arr = data if isinstance(data, da.Array) else da.from_array(data, chunks="auto")
    return arr[..., index]


def image_to_layer_data(image: Image) -> list[tuple[Any, dict[str, Any], str]]:
    """Napari layer data tuples for an :class:`~histoquant.io.Image`.

    A brightfield RGB image becomes one RGB layer; any other image one layer per channel with a
    colormap chosen from the channel name and additive blending. The scale is the pixel size in
    µm (``units`` micrometre) when it is known, 1 pixel otherwise. Each layer's
    ``metadata['histoquant']`` records the source path, image name, pixel size and channel.
    """
    px = image.pixel_size_um
    has_z = "Z" in image.axes
    yx = (px, px) if px is not None else (1.0, 1.0)
    scale = ((image.z_step_um or px or 1.0), *yx) if has_z else yx
    common: dict[str, Any] = {"scale": scale}
    if px is not None:
        common["units"] = ("micrometer",) * len(scale)

    colours = channel_colours(image)

    def meta(channel: str | None, index: int | None) -> dict[str, Any]:
        return {META_KEY: {
            "path": str(image.path) if image.path is not None else None,
            "image_name": image.name,
            "pixel_size_um": px,
            "channel": channel,
            "channel_index": index,
            "channel_color": colours[index] if index is not None else None,
            "channel_names": list(image.channel_names),
            "rgb": bool(image.rgb),
        }}

    if image.rgb:
        return [(image.data, {**common, "name": image.name, "rgb": True,
                              "metadata": meta(None, None)}, "image")]
    if image.n_channels == 1:
        data = image.data[..., 0] if image.axes.endswith("C") else image.data
        name = image.channel_names[0]
        generic = re.fullmatch(r"C\d+", name) is not None
        return [(data, {**common, "name": image.name if generic else f"{image.name} [{name}]",
                        "colormap": "gray" if generic and colours[0] is None
                        else channel_colormap(name, colour=colours[0]),
                        "metadata": meta(name, 0)}, "image")]
    out = []
    n = image.n_channels
    for i, name in enumerate(image.channel_names):
        out.append((_channel_view(image.data, i),
                    {**common, "name": f"{image.name} [{name}]",
                     "colormap": channel_colormap(name, i, n, colours[i]),
                     "blending": "additive",
                     "metadata": meta(name, i)}, "image"))
    return out


def layer_image_name(layer: Any) -> str:
    """Image name for result tables: the file's name when the plugin read it, else the layer's."""
    info = (getattr(layer, "metadata", None) or {}).get(META_KEY) or {}
    return str(info.get("image_name") or layer.name)


def _has_physical_units(layer: Any) -> bool:
    units = getattr(layer, "units", None)
    if not units:
        return False
    return all(str(u) not in ("pixel", "px", "") for u in units[-2:])


def layer_pixel_size(layer: Any) -> float | None:
    """Pixel size in µm of an image layer, from its ``scale``; None when it has no physical scale.

    The layer's scale is the truth (the user may have changed it in napari). A scale of 1 is
    only trusted when something says it is in µm: the plugin's reader metadata or physical
    ``units`` on the layer; otherwise it is napari's default of one pixel and the caller must
    ask for the pixel size. Anisotropic Y/X scales raise :class:`PixelSizeError`.
    """
    sy, sx = (float(s) for s in layer.scale[-2:])
    if not np.isclose(sy, sx, rtol=0.01):
        raise PixelSizeError(
            f"layer {layer.name!r}: its scale is anisotropic (Y {sy:g}, X {sx:g}); histoquant "
            "measures in square pixels. Set equal Y and X scales (µm per pixel) on the layer."
        )
    info = (getattr(layer, "metadata", None) or {}).get(META_KEY) or {}
    if sx == 1.0 and not info.get("pixel_size_um") and not _has_physical_units(layer):
        return None
    return sx


def set_layer_pixel_size(layers: Sequence[Any], pixel_size_um: float) -> None:
    """Give image layers a physical pixel size: their Y/X scale in µm, with µm units.

    What a user types once in a dock lands here, on the layers, so every dock, the scale bar
    and the coordinates read the same value (:func:`layer_pixel_size`).

    Parameters
    ----------
    layers : sequence of layers
        The image layers of one image (its channels).
    pixel_size_um : float
        µm per pixel; must be positive and finite.

    Raises
    ------
    PixelSizeError
        A pixel size that is not a positive finite number.
    """
    px = float(pixel_size_um)
    if not np.isfinite(px) or px <= 0:
        raise PixelSizeError(f"a pixel size must be a positive number of µm, not {px!r}")
    for layer in layers:
        # metadata and units first: the scale event is what docks listen to
        meta = dict(getattr(layer, "metadata", None) or {})
        info = dict(meta.get(META_KEY) or {})
        info["pixel_size_um"] = px
        meta[META_KEY] = info
        layer.metadata = meta
        scale = list(layer.scale)
        scale[-2:] = [px, px]
        try:
            layer.units = ("micrometer",) * len(scale)
        except (AttributeError, ValueError):  # pragma: no cover - napari without units
            pass
        layer.scale = scale


def _as_array(data: Any) -> Any:
    """Return NumPy arrays as they are; lazy arrays (dask, zarr) stay lazy.

    A whole-slide layer is not loaded into memory just to hand it to the core, which reads
    what it needs.
    """
    if isinstance(data, np.ndarray) or not hasattr(data, "shape"):
        return np.asarray(data)
    if type(data).__module__.split(".")[0] in ("dask", "zarr"):
        return data
    return np.asarray(data)


def _layer_plane(layer: Any, channel: int | None) -> Any:
    data = _as_array(_level0(layer.data))
    if channel is not None:
        if not getattr(layer, "rgb", False):
            raise ChannelError(f"layer {layer.name!r} has no colour channels to choose from")
        data = data[..., channel]
    return data


def layers_to_image(
    inputs: Mapping[str, tuple[Any, int | None]],
    pixel_size_um: float | None,
    *,
    rgb: bool,
    name: str,
) -> Image:
    """Build the :class:`Image` an assay receives from the chosen layers.

    Parameters
    ----------
    inputs : mapping of role to (layer, channel)
        For an RGB assay, one entry whose layer holds the RGB image (channel None). For a
        fluorescence assay, one entry per channel role: a grey layer (channel None) or one colour
        channel of an RGB layer (channel 0, 1 or 2). The channels of the returned image are
        named after the roles, so the assay finds each role by name.
    pixel_size_um : float or None
        Pixel size in µm.
    rgb : bool
        True for a brightfield RGB assay.
    name : str
        Image name used in the result tables.
    """
    if rgb:
        layer, _ = next(iter(inputs.values()))
        data = _as_array(_level0(layer.data))
        if getattr(layer, "rgb", False):
            if data.shape[-1] == 4:  # RGBA: the alpha channel carries no stain
                data = data[..., :3]
            axes = "YXC" if data.ndim == 3 else "ZYXC"
            return Image(data, axes=axes, pixel_size_um=pixel_size_um,
                         channel_names=("R", "G", "B")[: data.shape[-1]] if data.shape[-1] == 3
                         else (), rgb=data.shape[-1] == 3, metadata={"name": name})
        # A grey layer given to an RGB assay: let the assay say what it needs.
        axes = "YX" if data.ndim == 2 else "ZYX"
        return Image(data, axes=axes, pixel_size_um=pixel_size_um, metadata={"name": name})
    planes = {role: _layer_plane(layer, ch) for role, (layer, ch) in inputs.items()}
    if not planes:
        raise ChannelError("no input layer was chosen")
    shapes = {role: p.shape for role, p in planes.items()}
    if len(set(shapes.values())) > 1:
        listing = ", ".join(f"{r} {s}" for r, s in shapes.items())
        raise ChannelError(
            f"the chosen layers differ in size ({listing}); choose channels of the same image"
        )
    first = next(iter(planes.values()))
    if first.ndim not in (2, 3):
        raise ChannelError(
            f"layer data with {first.ndim} dimensions; histoquant takes 2D planes or Z-stacks"
        )
    if all(isinstance(p, np.ndarray) for p in planes.values()):
        data = np.stack(list(planes.values()), axis=-1)
    else:
        import dask.array as da

        data = da.stack([p if isinstance(p, da.Array) else da.from_array(p, chunks="auto")
                         for p in planes.values()], axis=-1)
    axes = "YXC" if first.ndim == 2 else "ZYXC"
    return Image(data, axes=axes, pixel_size_um=pixel_size_um, channel_names=tuple(planes),
                 metadata={"name": name})


# --- regions <-> shapes ------------------------------------------------------------------------

_REGION_COLOURS = {
    "tissue": "#bbbbbb",
    "grey_matter": "#ffb000",
    "white_matter": "#4fc3f7",
    "central_canal": "#ff4081",
    "ventral_horn_left": "#00e676",
    "ventral_horn_right": "#76ff03",
    "dorsal_horn_left": "#e040fb",
    "dorsal_horn_right": "#b388ff",
}
_OTHER_COLOURS = ("#ffd54f", "#4dd0e1", "#ff8a65", "#aed581", "#9575cd", "#f06292")


def region_colour(name: str) -> str:
    """Return a fixed colour per region name, so the same region looks the same in every viewer."""
    if name in _REGION_COLOURS:
        return _REGION_COLOURS[name]
    return _OTHER_COLOURS[sum(map(ord, name)) % len(_OTHER_COLOURS)]


def regions_to_shapes_data(
    regions: Mapping[str, np.ndarray] | Sequence[Region],
    tolerance_px: float = 0.0,
) -> tuple[list[np.ndarray], list[str], pd.DataFrame]:
    """Polygons, shape types and features (``name``, ``hole``) for a napari Shapes layer.

    Parameters
    ----------
    regions : mapping of name to bool mask, or list of Region
        Regions in image pixel coordinates.
    tolerance_px : float
        Outlines are simplified to within this many pixels (Douglas–Peucker, scikit-image's
        ``approximate_polygon``), so that the user has a handful of vertices to drag instead
        of one per boundary pixel. 0 keeps every vertex.

    Returns
    -------
    data, shape_types, features
        napari polygons as (N, 2) (row, col) arrays, ``"polygon"`` for each, and a table with the
        region ``name`` of each shape and whether it is a ``hole`` cut out of that region
        (napari polygons cannot hold holes themselves).
    """
    items: list[Region]
    if isinstance(regions, Mapping):
        items = [v if isinstance(v, Region) else Region(str(k), mask=np.asarray(v, bool))
                 for k, v in regions.items()]
    else:
        items = list(regions)
    data: list[np.ndarray] = []
    names: list[str] = []
    holes: list[bool] = []
    for region in items:
        polygons = region.polygons or mask_to_polygons(region.mask)
        for poly in polygons:
            data.append(_simplify(poly.exterior, tolerance_px))
            names.append(region.name)
            holes.append(False)
            for hole in poly.holes:
                data.append(_simplify(hole, tolerance_px))
                names.append(region.name)
                holes.append(True)
    features = pd.DataFrame({"name": pd.Series(names, dtype=object),
                             "hole": pd.Series(holes, dtype=bool)})
    return data, ["polygon"] * len(data), features


def _simplify(vertices: np.ndarray, tolerance_px: float) -> np.ndarray:
    """Fewer vertices within ``tolerance_px``; never fewer than a triangle."""
    v = np.asarray(vertices, float)
    if tolerance_px <= 0 or len(v) <= 4:
        return v
    from skimage.measure import approximate_polygon

    closed = np.vstack([v, v[:1]])
    out = approximate_polygon(closed, tolerance_px)[:-1]
    return out if len(out) >= 3 else v


def _ellipse_polygon(corners: np.ndarray, n: int = 72) -> np.ndarray:
    """Polygon of the ellipse napari draws inside the box given by its 4 corner vertices."""
    centre = corners.mean(axis=0)
    half_a = (corners[1] - corners[0]) / 2.0
    half_b = (corners[3] - corners[0]) / 2.0
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    return centre + np.cos(t)[:, None] * half_a + np.sin(t)[:, None] * half_b


def _affine(values: Sequence[float] | None, ndim: int, fill: float) -> np.ndarray:
    if values is None:
        return np.full(ndim, fill)
    return np.asarray(values, float)[-2:]


def shapes_to_regions(
    data: Sequence[np.ndarray],
    shape_types: Sequence[str],
    features: pd.DataFrame | None = None,
    *,
    shapes_scale: Sequence[float] | None = None,
    shapes_translate: Sequence[float] | None = None,
    image_scale: Sequence[float] | None = None,
    image_translate: Sequence[float] | None = None,
) -> list[Region]:
    """Regions, in the image's pixel coordinates, from the shapes of a napari Shapes layer.

    Each shape's vertices (the last two dimensions) go from the Shapes layer's data coordinates
    to world coordinates (``* shapes_scale + shapes_translate``) and then to the image layer's
    pixel coordinates (``(world - image_translate) / image_scale``). Shapes with the same
    ``name`` feature form one region; shapes whose ``hole`` feature is true are cut out of the
    region of that name. Ellipses become 72-gons; rectangles and polygons keep their vertices.
    Lines and paths have no area and raise :class:`RegionError`.
    """
    if len(data) == 0:
        raise RegionError("the regions layer holds no shape; draw a region or choose no layer "
                          "to measure the whole image")
    s_scale = _affine(shapes_scale, 2, 1.0)
    s_shift = _affine(shapes_translate, 2, 0.0)
    i_scale = _affine(image_scale, 2, 1.0)
    i_shift = _affine(image_translate, 2, 0.0)
    n = len(data)
    names: list[str] = []
    holes: list[bool] = []
    feats = features if features is not None else pd.DataFrame(index=range(n))
    raw_names = feats["name"].tolist() if "name" in feats.columns else [None] * n
    raw_holes = feats["hole"].tolist() if "hole" in feats.columns else [False] * n
    for i in range(n):
        value = raw_names[i] if i < len(raw_names) else None
        ok = value is not None and not (isinstance(value, float) and np.isnan(value)) \
            and str(value).strip() != ""
        names.append(str(value).strip() if ok else f"region_{i + 1}")
        hole = raw_holes[i] if i < len(raw_holes) else False
        holes.append(bool(hole) if hole is not None and hole == hole else False)
    exteriors: dict[str, list[np.ndarray]] = {}
    cutouts: dict[str, list[np.ndarray]] = {}
    for i, (verts, kind) in enumerate(zip(data, shape_types)):
        verts = np.asarray(verts, float)[:, -2:]
        if kind in ("line", "path"):
            raise RegionError(
                f"shape {i + 1} ({names[i]!r}) is a {kind}, which has no area; draw regions as "
                "polygons, rectangles or ellipses"
            )
        if kind == "ellipse":
            verts = _ellipse_polygon(verts)
        verts = (verts * s_scale + s_shift - i_shift) / i_scale
        (cutouts if holes[i] else exteriors).setdefault(names[i], []).append(verts)
    lonely = sorted(set(cutouts) - set(exteriors))
    if lonely:
        raise RegionError(f"hole shape(s) named {', '.join(map(repr, lonely))} have no outer "
                          "shape of the same name to be cut out of")
    return [Region(name, [Polygon(v, cutouts.get(name, [])) for v in outer])
            for name, outer in exteriors.items()]
