"""Writers: OME-TIFF, ImageJ TIFF and OME-Zarr with the pixel size, written atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .image import Image
from .safe_paths import check_inside

__all__ = ["write_ome_tiff", "write_imagej_tiff", "write_ome_zarr", "atomic_path"]


@contextmanager
def atomic_path(path: str | Path, *, root: str | Path | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success.

    A killed or failed write leaves no half-written file under the final name. With
    ``root`` (the output folder), ``path`` is first checked to lie inside it, symbolic links
    resolved (:func:`~histoquant.io.safe_paths.check_inside`), before any folder is made.

    Parameters
    ----------
    path : str or pathlib.Path
        The final file name.
    root : str or pathlib.Path, optional
        The output folder ``path`` must lie inside.

    Yields
    ------
    pathlib.Path
        The temporary file to write; it is renamed onto ``path`` when the block ends
        without an error, and removed otherwise.

    Raises
    ------
    OutputPathError
        When ``root`` is given and ``path`` is not inside it.
    """
    path = check_inside(root, path) if root is not None else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _ome_axes(image: Image) -> tuple[np.ndarray, str]:
    data = np.asarray(image.data)
    axes = image.axes
    if axes.endswith("C") and not image.rgb:
        # OME stores channels before Y, X
        data = np.moveaxis(data, -1, -3)
        axes = axes[:-3] + "CYX"
    elif image.rgb:
        axes = axes[:-1] + "S"
    return data, axes


def write_ome_tiff(image: Image, path: str | Path, *, tile: int | None = None,
                   compression: str | None = "zlib") -> Path:
    """Write ``image`` as OME-TIFF with PhysicalSizeX/Y in µm and channel names.

    Parameters
    ----------
    image : Image
        The image to write.
    path : str or pathlib.Path
        The file to write (atomically: see :func:`atomic_path`).
    tile : int, optional
        Tile side in pixels (a tiled TIFF); strips when not given.
    compression : str or None
        The TIFF compression (tifffile's name); None for none.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import tifffile

    data, axes = _ome_axes(image)
    meta: dict = {"axes": axes}
    if image.pixel_size_um is not None:
        meta.update(PhysicalSizeX=image.pixel_size_um, PhysicalSizeXUnit="µm",
                    PhysicalSizeY=image.pixel_size_um, PhysicalSizeYUnit="µm")
    if image.z_step_um is not None:
        meta.update(PhysicalSizeZ=image.z_step_um, PhysicalSizeZUnit="µm")
    if not image.rgb and image.n_channels > 1:
        meta["Channel"] = {"Name": list(image.channel_names)}
    path = Path(path)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, ome=True, metadata=meta, photometric="rgb" if image.rgb
                         else "minisblack", tile=(tile, tile) if tile else None,
                         compression=compression)
    return path


def write_imagej_tiff(image: Image, path: str | Path) -> Path:
    """Write ``image`` as an ImageJ hyperstack TIFF with its calibration in µm.

    Parameters
    ----------
    image : Image
        The image to write.
    path : str or pathlib.Path
        The file to write (atomically: see :func:`atomic_path`).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import tifffile

    data = np.asarray(image.data)
    if image.rgb:
        axes = "YXS"
    elif image.axes.endswith("C"):
        data = np.moveaxis(data, -1, -3)
        axes = image.axes[:-3] + "CYX"
    else:
        axes = image.axes
    kwargs = {}
    meta = {"axes": axes}
    if image.pixel_size_um is not None:
        kwargs["resolution"] = (1.0 / image.pixel_size_um, 1.0 / image.pixel_size_um)
        meta["unit"] = "um"
    path = Path(path)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, data, imagej=True, metadata=meta,
                         photometric="rgb" if image.rgb else "minisblack", **kwargs)
    return path


def write_ome_zarr(image: Image, path: str | Path, *, levels: int = 1,
                   chunk: int = 1024) -> Path:
    """Write ``image`` as an OME-NGFF (v0.4) multiscale group, downsampling 2× per level.

    Parameters
    ----------
    image : Image
        The image to write.
    path : str or pathlib.Path
        The ``.zarr`` folder to write (built beside it and renamed when complete).
    levels : int
        Number of resolution levels, each half the size of the one before.
    chunk : int
        Chunk side in pixels along Y and X.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import zarr
    from skimage.transform import downscale_local_mean

    path = Path(path)
    tmp = path.with_name(f".{path.name}.part")
    if tmp.exists():
        shutil.rmtree(tmp)
    data = np.asarray(image.data)
    axes = image.axes
    if axes.endswith("C"):
        data = np.moveaxis(data, -1, -3)
        axes = axes[:-3] + "CYX"
    names = {"Z": "z", "C": "c", "Y": "y", "X": "x"}
    axes_meta = [
        {"name": names[a], "type": "channel" if a == "C" else "space",
         **({} if a == "C" else {"unit": "micrometer"})}
        for a in axes
    ]
    group = zarr.open_group(str(tmp), mode="w", zarr_format=2)
    datasets = []
    level = data
    px = image.pixel_size_um or 1.0
    for i in range(levels):
        chunks = tuple(min(chunk, n) if a in "YX" else 1 for a, n in zip(axes, level.shape))
        arr = group.create_array(str(i), shape=level.shape, dtype=level.dtype, chunks=chunks)
        arr[...] = level
        factor = 2**i
        scale = [1.0 if a == "C" else (image.z_step_um or 1.0) if a == "Z" else px * factor
                 for a in axes]
        datasets.append({"path": str(i),
                         "coordinateTransformations": [{"type": "scale", "scale": scale}]})
        if i + 1 < levels:
            f = tuple(2 if a in "YX" else 1 for a in axes)
            level = downscale_local_mean(level, f).astype(data.dtype)
    if image.pixel_size_um is None:
        for a in axes_meta:
            a.pop("unit", None)
    group.attrs["multiscales"] = [{"version": "0.4", "axes": axes_meta, "datasets": datasets,
                                   "name": image.name}]
    group.attrs["omero"] = {"channels": [{"label": c} for c in image.channel_names]}
    group.attrs["histoquant"] = {"rgb": image.rgb}
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path
