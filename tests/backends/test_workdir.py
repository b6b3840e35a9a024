"""
Tests for L{clinvk.backends.workdir}: the rules of docs/design/http.md#workdir-rules.
"""

from __future__ import annotations

import os

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from clinvk.backends.workdir import BUILTIN_BLOCKED, check_workdir, matches_prefix


class MatchTests(SynchronousTestCase):
    """Path-boundary-aware prefix matching."""

    def test_boundaries(self) -> None:
        """/etc matches /etc and below, not /etcfoo; /etc/ only below; / everything."""
        self.assertTrue(matches_prefix("/etc", "/etc"))
        self.assertTrue(matches_prefix("/etc/nginx", "/etc"))
        self.assertFalse(matches_prefix("/etcfoo", "/etc"))
        self.assertFalse(matches_prefix("/etc_backup", "/etc"))
        self.assertTrue(matches_prefix("/etc/nginx", "/etc/"))
        self.assertFalse(matches_prefix("/etc", "/etc/"))
        self.assertTrue(matches_prefix("/anything", "/"))
        self.assertFalse(matches_prefix("/srv/x", "srv"))


class CheckTests(SynchronousTestCase):
    """Each rule and its exact message, in order."""

    def setUp(self) -> None:
        self.root = FilePath(self.mktemp())
        self.project = self.root.child("project")
        self.project.makedirs()
        self.root.child("file.txt").setContent(b"x")

    def check(self, workdir: str, allowed: tuple[str, ...] = (), blocked: tuple[str, ...] = ()) -> str | None:
        return check_workdir(workdir, allowed=allowed, blocked=blocked)

    def test_empty_and_valid(self) -> None:
        """An empty workdir and an existing directory pass."""
        self.assertIsNone(self.check(""))
        self.assertIsNone(self.check(self.project.path))

    def test_relative(self) -> None:
        """Relative paths are refused."""
        self.assertEqual(self.check("project"), "invalid work directory: must be an absolute path")

    def test_nul_byte(self) -> None:
        """A path with a NUL byte cannot be resolved (and is not a crash)."""
        self.assertEqual(
            self.check(self.project.path + "\x00x"), "cannot resolve work directory: embedded null byte"
        )

    def test_missing(self) -> None:
        """A missing path does not exist, even under a blocked prefix."""
        missing = self.root.child("nope").path
        self.assertEqual(self.check(missing), f"work directory does not exist: {missing}")
        self.assertEqual(
            self.check("/etc/definitely-not-here"), "work directory does not exist: /etc/definitely-not-here"
        )

    def test_file_component(self) -> None:
        """A file used as a directory component cannot be resolved."""
        path = self.root.child("file.txt").path + "/sub"
        self.assertTrue(self.check(path).startswith("cannot resolve work directory: "))  # type: ignore[union-attr]

    def test_blocked_builtin(self) -> None:
        """The built-in block list applies when none is configured."""
        self.assertEqual(self.check("/etc"), "work directory not allowed: /etc (blocked path)")
        self.assertIn("/root", BUILTIN_BLOCKED)

    def test_symlink_into_blocked(self) -> None:
        """A symlink to a blocked directory is blocked: the real path is checked."""
        link = self.root.child("sneaky")
        os.symlink("/etc", link.path)
        self.assertEqual(self.check(link.path), f"work directory not allowed: {link.path} (blocked path)")

    def test_custom_block_list_replaces(self) -> None:
        """A configured block list replaces the built-in one."""
        self.assertIsNone(self.check("/etc", blocked=("/srv",)))
        self.assertEqual(
            self.check(self.project.path, blocked=(self.root.path,)),
            f"work directory not allowed: {self.project.path} (blocked path)",
        )

    def test_allow_list(self) -> None:
        """With an allow list, other paths are refused; entries are used as written."""
        self.assertIsNone(self.check(self.project.path, allowed=(self.root.path,)))
        self.assertEqual(
            self.check(self.project.path, allowed=("/srv",)),
            f"work directory not allowed: {self.project.path} (not in allowed paths)",
        )
        self.assertIsNotNone(self.check(self.project.path, allowed=("relative",)))

    def test_not_a_directory(self) -> None:
        """A regular file is not a directory."""
        path = self.root.child("file.txt").path
        self.assertEqual(self.check(path), f"work directory is not a directory: {path}")

    def test_normalised(self) -> None:
        """Dots and doubled slashes are normalised before the checks."""
        self.assertIsNone(self.check(self.project.path + "/../project//."))
