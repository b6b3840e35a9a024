"""
Sphinx configuration of the clinvk documentation.

Build it with C{tox -e docs}, or from the development virtualenv with
C{.venv/bin/sphinx-build -W --keep-going -n -b html docs docs/_build/html}.
"""

from __future__ import annotations

import sys
from pathlib import Path

from clinvk._version import __version__

# The project's own Sphinx extensions (the configuration reference).
sys.path.insert(0, str(Path(__file__).parent / "_ext"))

project = "clinvk"
author = "The clinvk developers"
copyright = "the clinvk developers"
version = release = __version__

extensions = [
    "myst_parser",
    "clinvk_config_reference",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"

# examples/ holds the programs the pages include; they are not pages.
exclude_patterns = ["_build", "examples"]

# Every cross-reference must resolve; a broken one fails the -W build.
nitpicky = True

# Headings get anchors down to level 3, so that pages can link to
# "page.md#some-heading" and the build checks those links.
myst_heading_anchors = 3

html_theme = "alabaster"
html_title = f"clinvk {release}"
html_theme_options = {
    "description": "Claude Code, Codex and Gemini CLIs as one HTTP API",
    "fixed_sidebar": True,
    # Wide enough for the README's one-line install and test commands.
    "page_width": "1180px",
    "sidebar_width": "230px",
}
html_static_path: list[str] = []

# Command lines are full of "--flag" and quotes that must stay as typed.
smartquotes = False
