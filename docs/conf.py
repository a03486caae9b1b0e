"""Sphinx configuration for the chatnet documentation."""

from __future__ import annotations

import os
import sys

# Build from a checkout without installing: the package is one level up.
sys.path.insert(0, os.path.abspath(".."))

from chatnet._version import __version__  # noqa: E402

project = "chatnet"
author = "the chatnet developers"
copyright = "2026, the chatnet developers"
version = ".".join(__version__.split(".")[:2])
release = __version__

extensions = [
    "sphinx.ext.autodoc",
]

# Docstrings use reST field lists (:param:, :returns:, :raises:) and carry
# their types in annotations, so autodoc shows the signature types.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# Twisted's own docstrings are epytext, not reST: do not inherit them into
# overriding methods (stringReceived, pauseProducing ...).
autodoc_inherit_docstrings = False
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}

# No intersphinx: the build must pass offline with -W, and an unreachable
# inventory is a warning.  References to Twisted and the standard library
# render as plain names (nitpicky is off).
nitpicky = False
exclude_patterns = ["_build", "examples"]
templates_path: list[str] = []

html_theme = "alabaster"
html_title = f"chatnet {release}"
html_theme_options = {
    "description": "Chat and file sharing for the terminal, on Twisted",
    "fixed_sidebar": True,
}
