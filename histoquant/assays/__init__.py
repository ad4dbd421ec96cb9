"""One module per assay; each defines ``SPEC`` (an :class:`AssaySpec`) and ``run``."""

from .base import AssaySpec, ChannelRole, available_assays, get_assay

__all__ = ["AssaySpec", "ChannelRole", "available_assays", "get_assay"]
