"""
Tests for L{clinvk.tap}: options, the service for twist/twistd, and the
banner.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.python.filepath import FilePath
from twisted.python.usage import UsageError
from twisted.trial.unittest import SynchronousTestCase

from clinvk import tap
from clinvk.cli import CommandLineOptions
from clinvk.service import ClinvkService
from clinvk.testing.reactor import FakeProcessReactor
from clinvk.types import IClinvkReactor
from tests.helpers import isolate_home
from tests.test_service import RefusingReactor

EXPECTED_BANNER = """\
clinvk API server starting on http://127.0.0.1:8080

Available endpoints:
  Custom API:     /api/v1/prompt, /api/v1/parallel, /api/v1/chain, /api/v1/compare
  OpenAI:         /openai/v1/models, /openai/v1/chat/completions
  Anthropic:      /anthropic/v1/messages
  Docs:           /openapi.json
  Health:         /health

Press Ctrl+C to stop"""


class _ConfigFileMixin(SynchronousTestCase):
    def config_file(self, content: str = "") -> str:
        """A configuration file with C{content}, so the user's own is never read."""
        path = FilePath(self.mktemp())
        path.setContent(content.encode("utf-8"))
        return str(path.path)

    def parse(self, *args: str, content: str = "") -> tap.Options:
        options = tap.Options()
        options.parseOptions(["--config", self.config_file(content), *args])
        return options


class OptionsTests(_ConfigFileMixin):
    """Parsing C{twist clinvk} options."""

    def test_port_and_host(self) -> None:
        """--port/-p and --host override the configuration."""
        options = self.parse("-p", "9001", "--host", "::1", content="server:\n  port: 7000\n")
        self.assertEqual((options.config.server.port, options.config.server.host), (9001, "::1"))
        self.assertEqual(options["listen"], [])

    def test_configured_port(self) -> None:
        """Without flags the configuration's host and port apply."""
        options = self.parse(content="server:\n  port: 7000\n  host: 0.0.0.0\n")
        self.assertEqual((options.config.server.port, options.config.server.host), (7000, "0.0.0.0"))

    def test_listen_repeatable(self) -> None:
        """--listen may be given several times."""
        options = self.parse("--listen", "tcp:8080", "--listen", "unix:/tmp/c.sock")
        self.assertEqual(options["listen"], ["tcp:8080", "unix:/tmp/c.sock"])

    def test_invalid_listen(self) -> None:
        """An endpoint Twisted cannot parse is a usage error naming it."""
        with self.assertRaises(UsageError) as raised:
            self.parse("--listen", "bogus:8080")
        self.assertIn("invalid --listen 'bogus:8080'", str(raised.exception))

    def test_listen_unreadable_key(self) -> None:
        """An ssl: endpoint whose key cannot be read is a usage error, not a traceback."""
        with self.assertRaises(UsageError) as raised:
            self.parse("--listen", "ssl:8443:privateKey=/nonexistent/key.pem")
        self.assertIn("invalid --listen 'ssl:8443:privateKey=/nonexistent/key.pem'", str(raised.exception))

    def test_listen_twice(self) -> None:
        """The same endpoint twice is refused."""
        with self.assertRaises(UsageError) as raised:
            self.parse("--listen", "tcp:8080", "--listen", "tcp:8080")
        self.assertEqual(str(raised.exception), "--listen 'tcp:8080' is given twice")

    def test_listen_excludes_port(self) -> None:
        """--listen and --port together are refused rather than one silently ignored."""
        self.assertRaises(UsageError, self.parse, "--listen", "tcp:8080", "--port", "9000")

    def test_bad_config(self) -> None:
        """A bad configuration is a usage error with the one-line reason."""
        with self.assertRaises(UsageError) as raised:
            self.parse(content="unified_flags:\n  approval_mode: sometimes\n")
        self.assertIn(
            'configuration has 1 error(s): config validation: unified_flags.approval_mode: invalid mode "sometimes"',
            str(raised.exception),
        )

    def test_bad_port_flag(self) -> None:
        """A non-numeric port is a usage error."""
        self.assertRaises(UsageError, self.parse, "--port", "http")


class ServiceForTests(_ConfigFileMixin):
    """The service C{twist}/C{twistd} run."""

    def setUp(self) -> None:
        isolate_home(self)

    def service(self, reactor: FakeProcessReactor, *args: str) -> Any:
        options = self.parse(*args)
        return tap.service_for(options.config, cast("IClinvkReactor", reactor), options["listen"])

    def test_listens_where_asked(self) -> None:
        """The tree listens on the --port given, on the configured host."""
        reactor = FakeProcessReactor()
        service = self.service(reactor, "--port", "8080")
        self.assertIsInstance(service.getServiceNamed("clinvk"), ClinvkService)
        self.assertEqual(reactor.tcpServers, [])
        service.privilegedStartService()
        self.assertEqual([(p, i) for p, _, _, i in reactor.tcpServers], [(8080, "127.0.0.1")])

    def test_listen_endpoints(self) -> None:
        """Every --listen endpoint is listened on."""
        reactor = FakeProcessReactor()
        service = self.service(reactor, "--listen", "tcp:8081:interface=\\:\\:1", "--listen", "tcp:8082")
        service.startService()
        self.assertEqual([(p, i) for p, _, _, i in reactor.tcpServers], [(8081, "::1"), (8082, "")])

    def test_bind_failure_is_one_line(self) -> None:
        """Under twist, a port in use ends the program with 'Error: server error: …'."""
        service = self.service(RefusingReactor(), "--port", "8080")
        with self.assertRaises(SystemExit) as raised:
            service.startService()
        self.assertEqual(
            str(raised.exception.code),
            "Error: server error: Couldn't listen on 127.0.0.1:8080: [Errno 98] Address already in use.",
        )

    def test_any_listen_failure_is_one_line(self) -> None:
        """Failures other than a taken port are reported the same way."""

        class OutOfRange(FakeProcessReactor):
            def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
                raise OverflowError("bind(): port must be 0-65535.")

        service = self.service(OutOfRange(), "--listen", "tcp:99999")
        with self.assertRaises(SystemExit) as raised:
            service.startService()
        self.assertEqual(str(raised.exception.code), "Error: server error: bind(): port must be 0-65535.")

    def test_rejects_incomplete_reactor(self) -> None:
        """A reactor without TCP or time support is refused up front."""
        self.assertRaises(TypeError, tap.service_for, self.parse().config, cast("IClinvkReactor", object()))


class BannerTests(SynchronousTestCase):
    """The banner of config.md 6.1."""

    def test_exact_text(self) -> None:
        """Default host and port."""
        options = tap.ServeOptions()
        path = FilePath(self.mktemp())
        path.setContent(b"")
        options.parseOptions(["--config", path.path])
        self.assertEqual(tap.banner(options.config.server), EXPECTED_BANNER)

    def test_host_as_given(self) -> None:
        """The host is printed exactly as given, brackets or not."""
        options = tap.ServeOptions()
        path = FilePath(self.mktemp())
        path.setContent(b"")
        options.parseOptions(["--config", path.path, "--host", "[::1]", "-p", "9000"])
        self.assertTrue(
            tap.banner(options.config.server).startswith("clinvk API server starting on http://[::1]:9000\n")
        )


class ServeOptionsTests(_ConfigFileMixin):
    """Options of C{clinvk serve}."""

    def test_global_config(self) -> None:
        """clinvk --config F serve reads F."""
        options = CommandLineOptions()
        options.parseOptions(["--config", self.config_file("server:\n  port: 9300\n"), "serve"])
        self.assertEqual(options.subOptions.config.server.port, 9300)

    def test_serve_config_wins(self) -> None:
        """serve's own --config wins over the global one."""
        options = CommandLineOptions()
        options.parseOptions(
            [
                "--config",
                self.config_file("server:\n  port: 9300\n"),
                "serve",
                "--config",
                self.config_file("server:\n  port: 9400\n"),
            ]
        )
        self.assertEqual(options.subOptions.config.server.port, 9400)

    def test_ignored_global_flags(self) -> None:
        """The tool's other global flags are accepted and change nothing."""
        options = tap.ServeOptions()
        options.parseOptions(
            [
                "--config",
                self.config_file(),
                "-b",
                "codex",
                "-m",
                "o3",
                "-w",
                "/tmp",
                "--dry-run",
                "-o",
                "text",
                "--ephemeral",
            ]
        )
        self.assertEqual(options.config.server.port, 8080)
        self.assertFalse(options.config.unified_flags.dry_run)
