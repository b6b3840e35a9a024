"""
Tests for the twistd plugin stub C{twisted/plugins/clinvk_plugin.py}.
"""

from __future__ import annotations

from twisted.application.service import IService, IServiceMaker
from twisted.plugin import getPlugins
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase

from clinvk import tap
from clinvk.service import ClinvkService


class PluginTests(SynchronousTestCase):
    """twist and twistd find clinvk."""

    def maker(self) -> IServiceMaker:
        [maker] = [m for m in getPlugins(IServiceMaker) if m.tapname == "clinvk"]
        return maker

    def test_discovered(self) -> None:
        """The plugin is found by Twisted's plugin system."""
        maker = self.maker()
        self.assertEqual(maker.description, "Serve the Claude Code, Codex and Gemini CLIs as one HTTP API.")

    def test_points_at_tap(self) -> None:
        """Options and makeService are those of clinvk.tap."""
        maker = self.maker()
        self.assertIs(maker.options, tap.Options)
        self.assertIs(maker.makeService, tap.makeService)

    def test_stub_imports_nothing_of_clinvk(self) -> None:
        """The stub only declares the ServiceMaker, so discovery never imports clinvk."""
        from twisted.plugins import clinvk_plugin

        source = FilePath(clinvk_plugin.__file__).getContent().decode("utf-8")
        self.assertNotIn("import clinvk", source)
        self.assertNotIn("from clinvk", source)
        self.assertEqual(clinvk_plugin.clinvkServiceMaker.tapname, "clinvk")

    def test_make_service(self) -> None:
        """makeService builds the tree from parsed options without starting it."""
        config = FilePath(self.mktemp())
        config.setContent(b"")
        options = self.maker().options()
        options.parseOptions(["--port", "8080", "--config", config.path])
        service = self.maker().makeService(options)
        self.assertTrue(IService.providedBy(service))
        self.assertIsInstance(service.getServiceNamed("clinvk"), ClinvkService)
        self.assertFalse(service.running)
