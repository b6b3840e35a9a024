"""
Packaging for clinvk.

The layout is flat: C{clinvk/} is the package, C{twisted/plugins/} holds the
twistd plugin stub.  C{twisted} and C{twisted/plugins} must never get an
C{__init__.py} (that would shadow Twisted itself), so C{twisted.plugins} is
listed by hand and setuptools' warning about it is expected.
"""

from setuptools import find_packages, setup

_VERSION: dict[str, str] = {}
with open("clinvk/_version.py", encoding="utf-8") as _f:
    exec(_f.read(), _VERSION)

with open("README.md", encoding="utf-8") as _f:
    _README = _f.read()

setup(
    name="clinvk",
    version=_VERSION["__version__"],
    description=(
        "Serve the Claude Code, Codex and Gemini CLIs as one HTTP API "
        "(native, OpenAI- and Anthropic-compatible), on Twisted."
    ),
    long_description=_README,
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11",
    packages=[*find_packages(exclude=("tests", "tests.*", "benchmarks", "benchmarks.*")), "twisted.plugins"],
    package_data={
        "clinvk": ["py.typed"],
        "clinvk.schemas": ["*.json", "api/*.json"],
        "clinvk.web": ["static/*"],
        "twisted.plugins": ["clinvk_plugin.py"],
    },
    install_requires=[
        "Twisted>=24.7.0",
        "klein>=24.8.0",
        "treq>=24.9.1",
        "zope.interface>=6.0",
        "PyYAML>=6.0",
        "jsonschema>=4.18.0",
        "referencing>=0.30.0",
        "attrs>=23.1.0",
        "Werkzeug>=2.3",
        "prometheus-client>=0.20",
        # The MCP message types of the client-tools bridge (clinvk.compat.mcp).
        "mcp-types>=2.3.0,<3",
    ],
    extras_require={
        "test": [
            "openapi-spec-validator>=0.7.1",
            # The official SDKs the conformance suite (tests/integration/
            # test_sdk_*.py) proved wire compatibility with: exact versions,
            # so that a new SDK release is a deliberate upgrade.
            "openai==3.57.0",
            "anthropic==2.14.0",
            "langchain-openai==1.7.4",
            "langchain-core==1.8.3",
            # The fuzz tests (tests/integration/test_fuzz.py): exact, so that
            # a new release's strategies do not change what CI tries.
            "hypothesis==6.170.15",
        ],
        # Checkers are pinned to a minor series so that CI does not turn red
        # when a new release changes formatting or inference.
        "dev": [
            "ruff>=0.17,<0.18",
            "import-linter>=2.17,<3",
            "mypy>=2.4,<2.5",
            "mypy-zope>=1.0.17,<1.1",
            "types-PyYAML",
            "types-jsonschema",
            "build>=1.0",
            "tox>=4",
        ],
        # The documentation (tox -e docs): a minor series, so that a new
        # release's warnings do not fail the -W build unannounced.
        "docs": [
            "sphinx>=9.0,<9.1",
            "myst-parser>=5.2,<5.3",
        ],
    },
    entry_points={"console_scripts": ["clinvk = clinvk.cli:main"]},
    classifiers=[
        "Framework :: Twisted",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.11",
        "Operating System :: POSIX",
        "Typing :: Typed",
    ],
)
