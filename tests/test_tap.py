"""
Tests for L{clinvk.tap}: options, the service for twist/twistd, the
banner, and SIGHUP.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from twisted.application.service import Application
from twisted.logger import ILogObserver, LogEvent, LogLevel, formatEvent, globalLogPublisher
from twisted.python.filepath import FilePath
from twisted.python.usage import Options as UsageOptions
from twisted.python.usage import UsageError
from twisted.scripts._twistd_unix import ServerOptions
from twisted.trial.unittest import SynchronousTestCase

from clinvk import __version__, tap
from clinvk._version import API_VERSION
from clinvk.cli import CommandLineOptions
from clinvk.doctor import try_fakes_command
from clinvk.logs import ReopenableLogFile
from clinvk.service import ClinvkService
from clinvk.testing.reactor import FakeProcessReactor
from clinvk.types import IClinvkReactor
from tests.helpers import RefusingReactor, fake_supervisor, isolate_home

EXPECTED_BANNER = """\
clinvk API server starting on http://127.0.0.1:8080

Available endpoints:
  Custom API:     /api/v1/prompt, /api/v1/parallel, /api/v1/chain, /api/v1/compare
  OpenAI:         /openai/v1/models, /openai/v1/chat/completions
  Anthropic:      /anthropic/v1/messages
  Docs:           /docs, /openapi.json
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
        """
        A bad configuration ends twist and twistd with C{Error: <reason>}
        alone (SystemExit: one line on stderr, status 1), not with a usage
        error, which would add their usage text.
        """
        with self.assertRaises(SystemExit) as raised:
            self.parse(content="unified_flags:\n  approval_mode: sometimes\n")
        self.assertRegex(
            str(raised.exception.code),
            r"^Error: configuration has 1 error\(s\): config validation: unified_flags\.approval_mode: "
            r'invalid mode "sometimes" .*\[config file: .*\]$',
        )

    def test_bad_config_under_serve(self) -> None:
        """clinvk serve gets the same reason as a usage error, which it prints as C{Error: <reason>}."""
        options = tap.ServeOptions()
        with self.assertRaises(UsageError) as raised:
            options.parseOptions(["--config", self.config_file("unified_flags:\n  approval_mode: x\n")])
        self.assertIn("config validation: unified_flags.approval_mode: invalid mode", str(raised.exception))

    def test_bad_port_flag(self) -> None:
        """A non-numeric port is a one-line usage error naming the option and what it takes."""
        for flag in ("--port", "-p"):
            with self.assertRaises(UsageError) as raised:
                self.parse(flag, "http")
            self.assertEqual(
                str(raised.exception), "--port: expected a port number from 0 to 65535, got 'http'"
            )

    def test_unknown_key_warned(self) -> None:
        """An unknown configuration key is kept for the start-up warning."""
        options = self.parse(content="server:\n  prot: 9000\n")
        self.assertEqual(
            options.config.unknown_keys, ("server.prot: unknown key; did you mean server.port?",)
        )

    def test_strict_config(self) -> None:
        """With --strict-config an unknown key stops start-up like an invalid value."""
        with self.assertRaises(SystemExit) as raised:
            self.parse("--strict-config", content="sever:\n  port: 9000\n")
        self.assertRegex(
            str(raised.exception.code),
            r"^Error: configuration has 1 error\(s\): config validation: sever: unknown key; "
            r"did you mean server\? \[config file: .*\]$",
        )

    def test_version(self) -> None:
        """twist clinvk --version gives clinvk's version, not Twisted's."""
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        with self.assertRaises(SystemExit) as raised:
            tap.Options().parseOptions(["--version"])
        self.assertEqual(raised.exception.code, 0)
        self.assertEqual(out.getvalue(), f"clinvk {__version__} (API {API_VERSION})\n")


class ServiceForTests(_ConfigFileMixin):
    """The service C{twist}/C{twistd} run."""

    def setUp(self) -> None:
        isolate_home(self)

    def service(self, reactor: FakeProcessReactor, *args: str) -> Any:
        options = self.parse(*args)
        return tap.service_for(
            options.config,
            cast("IClinvkReactor", reactor),
            options["listen"],
            supervisor=fake_supervisor(reactor),
        )

    def test_listens_where_asked(self) -> None:
        """The tree listens on the --port given, on the configured host."""
        reactor = FakeProcessReactor()
        service = self.service(reactor, "--port", "8080")
        self.assertIsInstance(service.getServiceNamed("clinvk"), ClinvkService)
        self.assertEqual(reactor.tcpServers, [])
        service.privilegedStartService()
        self.assertEqual([(p, i) for p, _, _, i in reactor.tcpServers], [(8080, "127.0.0.1")])

    def path_with(self, *names: str) -> str:
        """
        Put a directory holding executables named C{names} alone on
        C{PATH}; return the directory.
        """
        bin_dir: FilePath[str] = FilePath(self.mktemp())
        bin_dir.makedirs()
        for name in names:
            bin_dir.child(name).setContent(b"#!/bin/sh\n")
            bin_dir.child(name).chmod(0o755)
        self.patch(os, "environ", {**os.environ, "PATH": bin_dir.path})
        return bin_dir.path

    def started(self, reactor: FakeProcessReactor) -> list[LogEvent]:
        """Start the tree C{twist} runs on C{reactor}; return what it logs."""
        events: list[LogEvent] = []
        observer = cast("ILogObserver", events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        service = self.service(reactor, "--port", "8080")
        service.startService()
        self.addCleanup(service.stopService)
        return events

    def test_announces_installed_clis(self) -> None:
        """At start-up each CLI is named with its version, or as missing."""
        bin_dir = self.path_with("claude")
        reactor = FakeProcessReactor()
        events = self.started(reactor)
        [probe] = [t for t in reactor.spawned if "clinvk-reaper" not in t.argv]
        self.assertEqual(probe.argv[-1], "--version")
        probe.emit_stdout(b"2.1.197 (Claude Code)\n")
        probe.exit(0)
        said = [formatEvent(e) for e in events if "backend cli" in e.get("log_format", "").lower()]
        self.assertEqual(
            said[0],
            f"Found backend CLI backend=claude version=2.1.197 path={bin_dir}/claude "
            "note=2.1.197, proven by the real-CLI suite",
        )
        self.assertEqual(
            said[1:], ["Backend CLI not found backend=codex", "Backend CLI not found backend=gemini"]
        )
        self.assertFalse([e for e in events if e["log_level"] is LogLevel.warn])

    def test_no_cli_says_what_to_do(self) -> None:
        """With no CLI at all, a warning says to install one or try the fakes, and how."""
        self.path_with()
        events = self.started(FakeProcessReactor())
        [warning] = [e for e in events if e["log_level"] is LogLevel.warn]
        self.assertIn("No backend CLI is installed", formatEvent(warning))
        self.assertEqual(warning["command"], try_fakes_command())

    def test_unknown_keys_logged(self) -> None:
        """Each unknown configuration key is warned about at start-up, with the file."""
        self.path_with("claude")
        config = self.config_file("server:\n  prot: 9000\nsever: {}\n")
        events: list[LogEvent] = []
        observer = cast("ILogObserver", events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        options = tap.Options()
        options.parseOptions(["--config", config, "--port", "8080"])
        reactor = FakeProcessReactor()
        service = tap.service_for(
            options.config, cast("IClinvkReactor", reactor), supervisor=fake_supervisor(reactor)
        )
        service.startService()
        self.addCleanup(service.stopService)
        warned = [formatEvent(e) for e in events if "unknown configuration key" in e.get("log_format", "")]
        self.assertEqual(
            warned,
            [
                "Ignoring an unknown configuration key "
                f"problem=server.prot: unknown key; did you mean server.port? file={config}",
                f"Ignoring an unknown configuration key problem=sever: unknown key; did you mean server? file={config}",
            ],
        )

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
    """The banner of docs/design/configuration.md#serve-banner."""

    def test_exact_text(self) -> None:
        """Default host and port."""
        options = tap.ServeOptions()
        path = FilePath(self.mktemp())
        path.setContent(b"")
        options.parseOptions(["--config", path.path])
        self.assertEqual(tap.banner(options.config.server), EXPECTED_BANNER)

    def test_metrics(self) -> None:
        """With metrics on, the banner lists /metrics."""
        options = tap.ServeOptions()
        path = FilePath(self.mktemp())
        path.setContent(b"server:\n  metrics_enabled: true\n")
        options.parseOptions(["--config", path.path])
        self.assertEqual(
            tap.banner(options.config.server),
            EXPECTED_BANNER.replace(
                "  Health:         /health\n", "  Health:         /health\n  Metrics:        /metrics\n"
            ),
        )

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

    def test_help(self) -> None:
        """
        The help has one usage line and lists only the options that do
        something: not the ignored global flags.
        """
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        options = CommandLineOptions()
        with self.assertRaises(SystemExit):
            options.parseOptions(["serve", "--help"])
        text = out.getvalue()
        self.assertEqual(text.count("Usage:"), 1)
        self.assertTrue(
            text.startswith(
                "Usage: clinvk serve [--host HOST] [--port|-p PORT] [--config FILE] [--strict-config] "
                "[--log-level LEVEL]\n"
            )
        )
        for shown in ("--host=", "--port=", "--config=", "--strict-config", "--log-level=", "--version"):
            self.assertIn(shown, text)
        for hidden in ("--backend", "--model", "--workdir", "--dry-run", "--output-format", "--ephemeral"):
            self.assertNotIn(hidden, text)

    def test_log_level(self) -> None:
        """--log-level takes Twisted's level names; info by default."""
        options = tap.ServeOptions()
        options.parseOptions(["--config", self.config_file()])
        self.assertIs(options["log-level"], LogLevel.info)
        options = tap.ServeOptions()
        options.parseOptions(["--config", self.config_file(), "--log-level", "DEBUG"])
        self.assertIs(options["log-level"], LogLevel.debug)
        with self.assertRaises(UsageError) as raised:
            tap.ServeOptions().parseOptions(["--log-level", "verbose"])
        self.assertEqual(
            str(raised.exception),
            "--log-level: expected one of debug, info, warn, error, critical, got 'verbose'",
        )

    def test_version(self) -> None:
        """clinvk serve --version gives clinvk's version, as clinvk --version does."""
        out = io.StringIO()
        self.patch(sys, "stdout", out)
        with self.assertRaises(SystemExit) as raised:
            CommandLineOptions().parseOptions(["serve", "--version"])
        self.assertEqual(raised.exception.code, 0)
        self.assertEqual(out.getvalue(), f"{tap.version_line()}\n")


class _CallsAtOnce:
    """The one reactor method the signal handlers use, calling at once."""

    def callFromThread(self, f: Any, *args: Any) -> None:  # noqa: N802 - Twisted's name
        f(*args)


# Whom the permission tests act as when they run as root, whom no file
# permission stops.
NOBODY = 65534


def permission_tested_user() -> int:
    """The user whose permissions the tests check: nobody under root, else the tests' own user."""
    return NOBODY if os.geteuid() == 0 else os.geteuid()


@contextmanager
def acting_as(uid: int) -> Iterator[None]:
    """
    Run the block as user C{uid} (real and effective), so that file
    permissions apply to it; as root only, which stays the saved user id
    and so is taken back after.  Without root the tests are already
    C{uid}.
    """
    if os.geteuid() != 0:
        yield
        return
    os.setresuid(uid, uid, 0)
    try:
        yield
    finally:
        os.setresuid(0, 0, 0)


class HangupTests(SynchronousTestCase):
    """SIGHUP reopens twistd's log file, for logrotate; otherwise it is only logged."""

    def setUp(self) -> None:
        self.events: list[LogEvent] = []
        observer = cast("ILogObserver", self.events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        for signum in (signal.SIGHUP, signal.SIGUSR1):
            self.addCleanup(signal.signal, signum, signal.getsignal(signum))

    def log_file(self) -> ReopenableLogFile:
        directory = FilePath(self.mktemp())
        directory.makedirs()
        # mktemp's private parent, opened up to the user of the permission tests.
        directory.parent().chmod(0o755)
        log_file = ReopenableLogFile("clinvk.log", directory.path)
        self.addCleanup(log_file.close)
        return log_file

    def hangup(self, log_file: ReopenableLogFile | None) -> None:
        """Install the handler as the service does, then deliver SIGHUP to it."""
        tap._handle_hangup(cast("IClinvkReactor", _CallsAtOnce()), log_file)
        handler = signal.getsignal(signal.SIGHUP)
        assert callable(handler)
        handler(signal.SIGHUP, None)

    def messages(self) -> list[str]:
        return [formatEvent(event) for event in self.events if event.get("log_namespace") == "clinvk.tap"]

    def assert_kept(self, log_file: ReopenableLogFile, moved: FilePath[str], reason: str) -> None:
        """
        SIGHUP could not reopen C{log_file}: it logged why, and what is
        written next still reaches the old file, now at C{moved}.
        """
        log_file.write("still logged\n")
        self.assertEqual(moved.getContent(), b"before\nstill logged\n")
        failure = self.messages()[-1]
        self.assertTrue(
            failure.startswith(
                f"Cannot reopen the log file, still logging to the old one path={log_file.path} reason="
            ),
            failure,
        )
        self.assertIn(reason, failure)

    def test_reopens_at_the_same_path(self) -> None:
        """
        After the file is moved away, SIGHUP makes a new one at the same
        path; the moved file keeps what was written before.
        """
        log_file = self.log_file()
        log_file.write("before\n")
        moved = FilePath(log_file.path + ".1")
        FilePath(log_file.path).moveTo(moved)
        log_file.write("moved, not yet reopened\n")
        self.hangup(log_file)
        log_file.write("after\n")
        self.assertEqual(moved.getContent(), b"before\nmoved, not yet reopened\n")
        self.assertEqual(FilePath(log_file.path).getContent(), b"after\n")
        self.assertEqual(
            self.messages(),
            [
                f"Received SIGHUP, reopening the log file path={log_file.path}",
                f"Reopened the log file path={log_file.path}",
            ],
        )

    def test_missing_directory(self) -> None:
        """When the log file's directory is gone, logging goes on in the old file."""
        log_file = self.log_file()
        log_file.write("before\n")
        directory = FilePath(log_file.directory)
        directory.moveTo(directory.sibling("elsewhere"))
        self.hangup(log_file)
        self.assert_kept(
            log_file, directory.sibling("elsewhere").child("clinvk.log"), "No such file or directory"
        )

    def test_read_only_file(self) -> None:
        """
        When the path holds a file the server may not write (its directory
        writable), logging goes on in the old file.
        """
        user = permission_tested_user()
        log_file = self.log_file()
        log_file.write("before\n")
        os.chown(log_file.directory, user, -1)
        moved = FilePath(log_file.path + ".1")
        FilePath(log_file.path).moveTo(moved)
        read_only = FilePath(log_file.path)
        read_only.setContent(b"")
        os.chown(read_only.path, user, -1)
        read_only.chmod(0o444)
        with acting_as(user):
            # The directory is no obstacle: only the file is.
            FilePath(log_file.directory).child("made").touch()
            self.hangup(log_file)
        self.assert_kept(log_file, moved, "Permission denied")
        self.assertEqual(read_only.getContent(), b"")

    def test_path_is_a_directory(self) -> None:
        """When the path holds something that is not a file, logging goes on in the old file."""
        log_file = self.log_file()
        log_file.write("before\n")
        moved = FilePath(log_file.path + ".1")
        FilePath(log_file.path).moveTo(moved)
        FilePath(log_file.path).makedirs()
        self.hangup(log_file)
        self.assert_kept(log_file, moved, "Is a directory")

    def test_writable_file_in_read_only_directory(self) -> None:
        """
        A file the server may write, in a directory where it may not make
        one (say, made by the rotation tool), is reopened.
        """
        user = permission_tested_user()
        log_file = self.log_file()
        log_file.write("before\n")
        moved = FilePath(log_file.path + ".1")
        FilePath(log_file.path).moveTo(moved)
        fresh = FilePath(log_file.path)
        fresh.setContent(b"")
        os.chown(fresh.path, user, -1)
        fresh.chmod(0o644)
        directory = FilePath(log_file.directory)
        directory.chmod(0o555)
        self.addCleanup(directory.chmod, 0o755)
        with acting_as(user):
            self.hangup(log_file)
        log_file.write("after\n")
        self.assertEqual((moved.getContent(), fresh.getContent()), (b"before\n", b"after\n"))
        self.assertEqual(self.messages()[-1], f"Reopened the log file path={log_file.path}")

    def test_without_log_file(self) -> None:
        """Under twist or clinvk serve SIGHUP is logged, and the process lives on."""
        self.hangup(None)
        self.assertEqual(self.messages(), ["Received SIGHUP, no log file to reopen"])


class _RunningReactor(FakeProcessReactor):
    """
    A fake reactor that runs: what is to be called when it runs is called
    at once, calls from other threads too, and its stops are counted.
    """

    def __init__(self) -> None:
        super().__init__()
        self.running = True
        self.hasRun = True
        self.stops = 0

    def stop(self) -> None:
        self.stops += 1

    def callFromThread(self, f: Any, *args: Any) -> None:  # noqa: N802 - Twisted's name
        f(*args)


def _restore_signals(case: SynchronousTestCase) -> None:
    """Put back, after C{case}, the handlers of the signals the command-line tree handles."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        case.addCleanup(signal.signal, signum, signal.getsignal(signum))


class TwistdLogFileTests(_ConfigFileMixin):
    """
    Which log file twistd would write to, read from twistd's own options,
    the parent of clinvk's.
    """

    def twistd(self, *args: str) -> str | None:
        options = ServerOptions()
        options.parseOptions([*args, "clinvk", "--config", self.config_file()])
        clinvk = options.subOptions
        assert isinstance(clinvk, tap.Options)
        return clinvk.twistd_log_file

    def test_log_file(self) -> None:
        """--logfile names it, with or without --nodaemon."""
        self.assertEqual(self.twistd("--logfile", "/var/log/clinvk.log"), "/var/log/clinvk.log")
        self.assertEqual(self.twistd("--nodaemon", "--logfile", "c.log"), "c.log")

    def test_default(self) -> None:
        """A daemon without --logfile writes twistd.log."""
        self.assertEqual(self.twistd(), "twistd.log")

    def test_elsewhere(self) -> None:
        """Standard output, syslog and an observer of one's own are no log file."""
        self.assertIsNone(self.twistd("--nodaemon"))
        self.assertIsNone(self.twistd("--nodaemon", "--logfile", "-"))
        self.assertIsNone(self.twistd("--syslog", "--logfile", "c.log"))
        self.assertIsNone(self.twistd("--logger", "clinvk.logs.json_observer", "--logfile", "c.log"))

    def test_other_runners(self) -> None:
        """Under twist or any other parent (or none), there is no twistd log file."""
        self.assertIsNone(self.parse().twistd_log_file)
        self.assertIsNone(tap.twistd_log_file(UsageOptions()))


class TwistdLogObserverTests(_ConfigFileMixin):
    """
    Under twistd with a log file, clinvk gives twistd the log observer of
    its application (twistd's documented way to choose it), writing to a
    L{ReopenableLogFile}, which SIGHUP reopens and SIGUSR1 rotates.
    """

    def setUp(self) -> None:
        isolate_home(self)
        _restore_signals(self)
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        directory = FilePath(self.mktemp())
        directory.makedirs()
        self.path = directory.child("clinvk.log")
        self.reactor = _RunningReactor()

    def tree(self, log_file_path: str | None) -> Any:
        config = self.parse().config
        return tap.service_for(
            config,
            cast("IClinvkReactor", self.reactor),
            log_file_path=log_file_path,
            supervisor=fake_supervisor(self.reactor),
        )

    def test_observer_of_the_application(self) -> None:
        """
        Joining twistd's application, the tree gives it an observer that
        writes Twisted's text lines to the log file, which SIGHUP reopens
        after it was moved away, and SIGUSR1 rotates.
        """
        tree = self.tree(self.path.path)
        application = Application("clinvk")
        tree.setServiceParent(application)
        observer = application.getComponent(ILogObserver)
        self.assertIsNotNone(observer)
        self.assertEqual(tree.log_file.path, self.path.path)
        observer({"log_format": "before", "log_level": LogLevel.info, "log_time": 0, "log_namespace": "t"})
        self.assertIn(b"[t#info] before\n", self.path.getContent())

        tree.startService()
        self.addCleanup(tree.stopService)
        moved = self.path.sibling("clinvk.log.moved")
        self.path.moveTo(moved)
        handler = signal.getsignal(signal.SIGHUP)
        assert callable(handler)
        handler(signal.SIGHUP, None)
        observer({"log_format": "after", "log_level": LogLevel.info, "log_time": 0, "log_namespace": "t"})
        self.assertNotIn(b"after", moved.getContent())
        self.assertIn(b"[t#info] after\n", self.path.getContent())

        rotate = signal.getsignal(signal.SIGUSR1)
        assert callable(rotate)
        rotate(signal.SIGUSR1, None)
        self.assertIn(b"after", self.path.sibling("clinvk.log.1").getContent())
        tree.log_file.close()

    def test_own_observer_kept(self) -> None:
        """An application that already has its observer (a .tac file's) keeps it."""
        application = Application("clinvk")
        own: list[LogEvent] = []
        application.setComponent(ILogObserver, own.append)
        tree = self.tree(self.path.path)
        tree.setServiceParent(application)
        self.assertEqual(application.getComponent(ILogObserver), own.append)
        self.assertIsNone(tree.log_file)
        self.assertFalse(self.path.exists())

    def test_sigusr1_taken(self) -> None:
        """A SIGUSR1 handler already there is left alone, as twistd leaves it."""
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        tree = self.tree(self.path.path)
        tree.setServiceParent(Application("clinvk"))
        self.addCleanup(tree.log_file.close)
        self.assertEqual(signal.getsignal(signal.SIGUSR1), signal.SIG_IGN)

    def test_no_log_file(self) -> None:
        """Without a twistd log file (twist, clinvk serve), the application's logging is left to the runner."""
        application = Application("clinvk")
        tree = self.tree(None)
        tree.setServiceParent(application)
        self.assertIsNone(application.getComponent(ILogObserver))
        self.assertIsNone(tree.log_file)
        self.assertEqual(signal.getsignal(signal.SIGUSR1), signal.SIG_DFL)


class FailureTests(_ConfigFileMixin):
    """
    When the server gives up (its API keys cannot be loaded), the
    composition root stops the reactor; a stop is never such a failure.
    """

    def setUp(self) -> None:
        isolate_home(self)
        _restore_signals(self)
        self.events: list[LogEvent] = []
        observer = cast("ILogObserver", self.events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def tree(self, reactor: FakeProcessReactor, gopass: bool = True) -> Any:
        bin_dir: FilePath[str] = FilePath(self.mktemp())
        bin_dir.makedirs()
        if gopass:
            bin_dir.child("gopass").setContent(b"#!/bin/sh\n")
            bin_dir.child("gopass").chmod(0o755)
        self.patch(os, "environ", {**os.environ, "PATH": bin_dir.path})
        config = self.parse("--port", "8080", content="server:\n  api_keys_gopass_path: team/clinvk\n").config
        return tap.service_for(config, cast("IClinvkReactor", reactor), supervisor=fake_supervisor(reactor))

    def gopass(self, reactor: FakeProcessReactor) -> Any:
        [gopass] = [t for t in reactor.spawned if t.argv[-3:] == ["show", "--password", "team/clinvk"]]
        return gopass

    def loud(self) -> list[str]:
        return [formatEvent(e) for e in self.events if e["log_level"] > LogLevel.warn]

    def test_stopped_during_first_load(self) -> None:
        """
        SIGTERM while gopass has not answered yet: the stop is clean,
        nothing is logged as fatal and no failure is recorded, so clinvk
        serve would exit 0.
        """
        reactor = _RunningReactor()
        tree = self.tree(reactor)
        tree.startService()
        gopass = self.gopass(reactor)
        self.successResultOf(tree.stopService())
        self.assertTrue(gopass.ended)
        self.assertIsNone(tree.getServiceNamed("clinvk").failure)
        self.assertEqual(self.loud(), [])
        self.assertEqual(reactor.stops, 0)
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_failure_stops_the_reactor(self) -> None:
        """gopass failing at start-up is fatal: logged, recorded, and the reactor stops."""
        reactor = _RunningReactor()
        tree = self.tree(reactor)
        tree.startService()
        self.addCleanup(tree.stopService)
        gopass = self.gopass(reactor)
        gopass.emit_stderr(b"no such secret\n")
        gopass.exit(11)
        failure = tree.getServiceNamed("clinvk").failure
        self.assertEqual(failure, "gopass exited with status 11: no such secret")
        self.assertEqual(self.loud(), [f"Error: failed to load API keys from gopass: {failure}"])
        self.assertEqual(reactor.stops, 1)

    def test_failure_before_the_reactor_runs(self) -> None:
        """
        A failure while the tree starts, before the reactor runs (gopass
        is not installed), stops the reactor as soon as it runs.
        """
        reactor = FakeProcessReactor()
        tree = self.tree(reactor, gopass=False)
        tree.startService()
        self.addCleanup(tree.stopService)
        self.assertEqual(tree.getServiceNamed("clinvk").failure, "gopass is not on PATH")
        self.assertFalse(reactor.hasStopped)
        reactor.run()
        self.assertTrue(reactor.hasStopped)
        self.assertEqual(self.flushLoggedErrors(), [])
