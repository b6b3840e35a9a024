"""
clinvk: the Claude Code, Codex and Gemini command-line tools as one HTTP API.
"""

from clinvk._version import __version__

__all__ = ["__version__"]
