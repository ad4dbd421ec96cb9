"""Sphinx configuration: the user guide (the Markdown pages here) and the API reference.

Built offline by ``scripts/build_docs.sh`` with warnings as errors; the API pages are read from
the docstrings (numpydoc format) of the package in this source tree.
"""

import sys
from pathlib import Path

# The source tree's package, not an installed copy, is documented.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import histoquant  # noqa: E402

project = "histoquant"
author = "histoquant developers"
release = histoquant.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# Docstrings are documented as written in the source: signatures keep the annotations'
# text (``from __future__ import annotations``), and members follow the source order.
autodoc_typehints = "signature"
autodoc_preserve_defaults = True
autodoc_member_order = "bysource"
# Each automodule of a module lists ``:members:`` (its ``__all__``); a package's shows its
# docstring only.
autodoc_default_options = {"show-inheritance": True}
# The optional extras (cellpose, dask) are imported inside functions only; nothing to mock.

# numpydoc renders Parameters/Returns; the class members are listed by autodoc itself, so
# numpydoc's own member tables (which would need autosummary stubs) are off.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# "page.md#a-heading" links between the guide's pages resolve to the heading.
myst_heading_anchors = 3

html_theme = "alabaster"
html_static_path: list[str] = []
html_title = f"histoquant {release}"
