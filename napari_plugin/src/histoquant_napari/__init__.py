"""napari plugin for histoquant: reader, writer, sample data and one dock widget per assay.

Importing this package imports neither napari nor Qt; the widget modules do, and napari loads
them only when a widget is opened (see ``napari.yaml``).
"""

try:
    from importlib.metadata import version as _version

    __version__ = _version("histoquant-napari")
except Exception:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
