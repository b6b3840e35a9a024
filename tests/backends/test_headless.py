"""
Tests for L{clinvk.backends.headless}: what each CLI needs to run
unattended, and whether it has it.
"""

from __future__ import annotations

import json
import shutil
import tempfile

from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from clinvk.backends import build_backends
from clinvk.backends.headless import headless_needs
from clinvk.config import config_from_mapping
from clinvk.model import HeadlessNeed


class HeadlessNeedsTests(SynchronousTestCase):
    """codex's repository, gemini's trusted folder and auth method."""

    def setUp(self) -> None:
        self.home = FilePath(self.mktemp())
        self.home.child(".gemini").makedirs()
        # Outside the checkout, which is a Git repository.
        self.folder = FilePath(tempfile.mkdtemp(prefix="clinvk-headless-"))
        self.addCleanup(shutil.rmtree, self.folder.path)
        self.folder.child("deep").makedirs()

    def needs(
        self, config: object = None, environ: dict[str, str] | None = None, cwd: str = ""
    ) -> dict[str, HeadlessNeed]:
        found = headless_needs(
            config_from_mapping(config, {}, source=None),  # type: ignore[arg-type]
            build_backends(),
            cwd or self.folder.child("deep").path,
            environ or {},
            self.home.path,
        )
        return {f"{need.backend} {need.need}": need for need in found}

    def test_nothing_given(self) -> None:
        """Outside a repository, untrusted, with no auth method: all three are missing, each saying what to do."""
        needs = self.needs()
        self.assertEqual(
            [(key, need.met) for key, need in needs.items()],
            [
                ("codex a Git repository as its working folder", False),
                ("gemini a trusted folder", False),
                ("gemini an auth method in ~/.gemini/settings.json", False),
                ("gemini session clean-up off, so that resumed conversations are kept", False),
            ],
        )
        self.assertIn("--skip-git-repo-check", needs["codex a Git repository as its working folder"].detail)
        self.assertIn("--skip-trust", needs["gemini a trusted folder"].detail)

    def test_repository_above(self) -> None:
        """A .git in a parent folder makes a repository."""
        self.folder.child(".git").makedirs()
        need = self.needs()["codex a Git repository as its working folder"]
        self.assertTrue(need.met)
        self.assertEqual(
            need.detail, f"{self.folder.child('deep').path} is inside the repository {self.folder.path}"
        )

    def test_flags_in_configuration(self) -> None:
        """The configuration's extra flags lift both folder needs."""
        needs = self.needs(
            {
                "backends": {
                    "codex": {"extra_flags": ["--skip-git-repo-check"]},
                    "gemini": {"extra_flags": ["--skip-trust"]},
                }
            }
        )
        self.assertTrue(needs["codex a Git repository as its working folder"].met)
        self.assertTrue(needs["gemini a trusted folder"].met)

    def test_trust_from_environment(self) -> None:
        """GEMINI_CLI_TRUST_WORKSPACE=true trusts every folder."""
        need = self.needs(environ={"GEMINI_CLI_TRUST_WORKSPACE": "true"})["gemini a trusted folder"]
        self.assertEqual(need.detail, "not needed: GEMINI_CLI_TRUST_WORKSPACE=true")

    def test_trusted_folder_file(self) -> None:
        """A folder gemini was told to trust is trusted."""
        cwd = self.folder.path
        self.home.descendant([".gemini", "trustedFolders.json"]).setContent(
            json.dumps({cwd: "TRUST_FOLDER"}).encode()
        )
        self.assertTrue(self.needs(cwd=cwd)["gemini a trusted folder"].met)

    def test_auth_method(self) -> None:
        """An auth method chosen in gemini's settings is named."""
        self.home.descendant([".gemini", "settings.json"]).setContent(
            b'{"security": {"auth": {"selectedType": "gemini-api-key"}}}'
        )
        need = self.needs()["gemini an auth method in ~/.gemini/settings.json"]
        self.assertEqual((need.met, need.detail), (True, "security.auth.selectedType is gemini-api-key"))

    def test_unreadable_settings(self) -> None:
        """Settings that are not JSON count as no choice, not as a crash."""
        self.home.descendant([".gemini", "settings.json"]).setContent(b"{nope")
        self.assertFalse(self.needs()["gemini an auth method in ~/.gemini/settings.json"].met)

    def test_session_retention(self) -> None:
        """gemini's session clean-up switched off in its settings keeps resumed conversations."""
        key = "gemini session clean-up off, so that resumed conversations are kept"
        self.assertIn("sessionRetention", self.needs()[key].detail)
        self.home.descendant([".gemini", "settings.json"]).setContent(
            b'{"general": {"sessionRetention": {"enabled": false}}}'
        )
        need = self.needs()[key]
        self.assertEqual((need.met, need.detail), (True, "general.sessionRetention.enabled is false"))
