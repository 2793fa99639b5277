"""Sphinx configuration of obsdb's docs site (see about-docs.md for why Sphinx, numpydoc and MyST)."""

import os
import sys
from pathlib import Path

# The docs describe the checkout they sit in, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

project = "obsdb"
author = "obsdb contributors"
copyright = "obsdb contributors"

import obsdb  # noqa: E402

release = version = obsdb.__version__

extensions = [
    "myst_parser",            # the .md pages, as they are
    "sphinx.ext.autodoc",     # the API from docstrings
    "numpydoc",               # ... written in numpydoc
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
# Pages link to source files and tests (`../obsdb/...`) that are not pages of the site; those links stay
# plain links to the repository files rather than cross-references.
suppress_warnings = ["myst.xref_missing"]

autodoc_member_order = "bysource"
autodoc_typehints = "none"              # numpydoc's Parameters sections carry the types
numpydoc_show_class_members = False     # members are documented by autodoc's :members:, not a summary table
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()

html_theme = "alabaster"
html_title = f"obsdb {release}"
html_static_path = []
os.environ.setdefault("OBSDB_DOCS_BUILD", "1")
