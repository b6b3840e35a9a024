"""
The versions of clinvk, read by setup.py without importing the package.

C{__version__} is the program's: the package metadata, C{clinvk
--version} and C{clinvk serve --version} give it.  C{API_VERSION} is the
HTTP API's: C{/health} and the OpenAPI document give it, and it stays
C{1.0.0} while the API stays compatible with the one it describes.
"""

__version__ = "0.1.0"
API_VERSION = "1.0.0"
