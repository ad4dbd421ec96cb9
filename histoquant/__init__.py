"""histoquant: spinal cord histology images in, study numbers out.

The core never imports napari, Qt or magicgui.
"""

from importlib import metadata as _metadata

from .errors import (
    ChannelError,
    DependencyError,
    EmptyImageError,
    HistoquantError,
    ImageReadError,
    ModalityError,
    OutputPathError,
    ParamsError,
    PixelSizeError,
    RegionError,
)
from .io import Image, read_image
from .results import AssayResult
from .rois import Region, read_regions, write_regions

try:
    __version__ = _metadata.version("histoquant")
except _metadata.PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = [
    "AssayResult",
    "ChannelError",
    "DependencyError",
    "EmptyImageError",
    "HistoquantError",
    "Image",
    "ImageReadError",
    "ModalityError",
    "OutputPathError",
    "ParamsError",
    "PixelSizeError",
    "Region",
    "RegionError",
    "read_image",
    "read_regions",
    "write_regions",
    "__version__",
]
