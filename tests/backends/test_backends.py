"""
Tests for L{clinvk.backends}: the registry, and that a backend is one
module behind L{IBackend}, registered by one line.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import ModuleType

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

import clinvk
from clinvk.backends import build_backends
from clinvk.backends.claude import ClaudeBackend
from clinvk.config import BACKEND_NAMES
from clinvk.interfaces import IBackend

PACKAGE = Path(clinvk.__file__).parent


def install_module(case: SynchronousTestCase, name: str, backend: object) -> None:
    """Make C{backend} the C{backend} of a module C{clinvk.backends.<name>} for the duration of C{case}."""
    module = ModuleType(f"clinvk.backends.{name}")
    module.backend = backend  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    case.addCleanup(sys.modules.pop, module.__name__)


class RegistryTests(SynchronousTestCase):
    """L{build_backends}: one backend per registered name, from its module."""

    def test_registered(self) -> None:
        """Every registered name has its backend, which provides IBackend, sorted by name."""
        backends = build_backends()
        self.assertEqual(list(backends), sorted(BACKEND_NAMES))
        for name, backend in backends.items():
            self.assertTrue(verifyObject(IBackend, backend), name)
            self.assertEqual(backend.name, name)

    def test_one_default_for_compat(self) -> None:
        """Exactly one backend runs the compatibility requests whose model chooses none."""
        defaults = [name for name, backend in build_backends().items() if backend.default_for_compat]
        self.assertEqual(defaults, ["claude"])

    def test_misnamed(self) -> None:
        """A module whose backend goes by another name is refused."""
        install_module(self, "impostor", ClaudeBackend())
        with self.assertRaises(ValueError) as raised:
            build_backends(("impostor",))
        self.assertEqual(str(raised.exception), "clinvk.backends.impostor.backend is named 'claude'")

    def test_not_a_backend(self) -> None:
        """A module whose backend does not provide IBackend is refused."""
        install_module(self, "nothing", object())
        self.assertRaises(TypeError, build_backends, ("nothing",))

    def test_unknown(self) -> None:
        """A name without a module cannot be registered."""
        self.assertRaises(ImportError, build_backends, ("no_such_backend",))


def _registration_line(node: ast.AST) -> bool:
    """Whether C{node} is the assignment of C{BACKEND_NAMES}."""
    return isinstance(node, ast.Assign) and any(
        isinstance(target, ast.Name) and target.id == "BACKEND_NAMES" for target in node.targets
    )


def backend_names_used(source: str, names: frozenset[str]) -> list[tuple[int, str]]:
    """
    Where C{source} names a backend: a string that is a backend's name, an
    attribute called so, or an import of its module, outside the
    assignment of C{BACKEND_NAMES}.
    """
    tree = ast.parse(source)
    skipped = {id(inner) for node in ast.walk(tree) if _registration_line(node) for inner in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Constant) and node.value in names:
            found.append((node.lineno, repr(node.value)))
        elif isinstance(node, ast.Attribute) and node.attr in names:
            found.append((node.lineno, f".{node.attr}"))
        elif isinstance(node, ast.ImportFrom):
            modules = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
            found.extend((node.lineno, module) for module in modules if names & set(module.split(".")))
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
            found.extend((node.lineno, module) for module in modules if names & set(module.split(".")))
    return found


class OneModuleTests(SynchronousTestCase):
    """
    Every fact about one backend is in its own module: no other module of
    clinvk names a backend, except the registration line.
    """

    def test_scan(self) -> None:
        """The scan finds names as strings and as attributes, and skips the registration line."""
        source = (
            'BACKEND_NAMES = ("claude", "codex")\n'
            'x = "claude"\n'
            "y = config.backends.codex.model\n"
            'z = "Claude and codex"\n'
            "from clinvk.backends.gemini import parse_response\n"
            "from clinvk.backends import claude\n"
            "import clinvk.backends.codex\n"
        )
        self.assertEqual(
            sorted(backend_names_used(source, frozenset(BACKEND_NAMES))),
            [
                (2, "'claude'"),
                (3, ".codex"),
                (5, "clinvk.backends.gemini"),
                (5, "clinvk.backends.gemini.parse_response"),
                (6, "clinvk.backends.claude"),
                (7, "clinvk.backends.codex"),
            ],
        )

    def test_no_module_names_a_backend(self) -> None:
        """Outside clinvk/backends/<name>.py (and the fakes of clinvk.testing), no module names a backend."""
        names = frozenset(BACKEND_NAMES)
        own = {PACKAGE / "backends" / f"{name}.py" for name in names}
        found = {}
        for path in sorted(PACKAGE.rglob("*.py")):
            if path in own or path.is_relative_to(PACKAGE / "testing"):
                continue
            used = backend_names_used(path.read_text("utf-8"), names)
            if used:
                found[str(path.relative_to(PACKAGE))] = used
        self.assertEqual(found, {})
