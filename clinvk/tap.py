# -*- test-case-name: tests.test_tap -*-
"""
The composition root: command-line options, C{makeService} for C{twist}
and C{twistd}, and the runner of C{clinvk serve}.

This is the only module that touches the global reactor, and only inside
functions, so that C{twistd --reactor} is honoured.  It is also where the
server takes what it needs from the system it runs on (the process
environment, the home directory, real processes) and decides what a
failure means: the services report, the runners stop and exit.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType
from typing import IO, Any, NoReturn, cast

from twisted.application import app
from twisted.application.service import IService, MultiService
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import ReactorNotRunning
from twisted.logger import (
    ILogObserver,
    InvalidLogLevelError,
    Logger,
    LogLevel,
    globalLogBeginner,
    textFileLogObserver,
)
from twisted.python import usage
from twisted.python.components import Componentized
from twisted.python.failure import Failure

from clinvk._version import API_VERSION, __version__
from clinvk.assembly import build_service
from clinvk.config import ClinvkConfig, ConfigError, ServerConfig, load_config
from clinvk.doctor import Diagnosis, diagnose, report, try_fakes_command
from clinvk.logs import ReopenableLogFile, logfmt_observer
from clinvk.process.supervisor import ProcessSupervisor
from clinvk.service import ClinvkService, InstalledCLIAnnouncement
from clinvk.types import IClinvkReactor, provides_clinvk_reactor

log = Logger()

BANNER = """\
clinvk API server starting on http://{host}:{port}

Available endpoints:
  Custom API:     /api/v1/prompt, /api/v1/parallel, /api/v1/chain, /api/v1/compare
  OpenAI:         /openai/v1/models, /openai/v1/chat/completions
  Anthropic:      /anthropic/v1/messages
  Docs:           /docs, /openapi.json
  Health:         /health
{metrics}
Press Ctrl+C to stop"""


def banner(server: ServerConfig) -> str:
    """
    The start-up banner of docs/design/configuration.md#serve-banner, with
    the host as given, the explorer at C{/docs} beside the document, and
    C{/metrics} when on.
    """
    metrics = "  Metrics:        /metrics\n" if server.metrics_enabled else ""
    return BANNER.format(host=server.host, port=server.port, metrics=metrics)


def version_line() -> str:
    """What C{--version} prints, whichever way clinvk is started."""
    return f"clinvk {__version__} (API {API_VERSION})"


class _ConfigurationError(usage.UsageError):
    """The configuration, not the command line, is what is wrong."""


class _ConfigOptions(usage.Options):
    """The options of every command that reads the configuration."""

    optFlags = [
        [
            "strict-config",
            None,
            "Refuse a configuration with unknown keys (by default they are warned about).",
        ],
    ]
    optParameters = [
        ["config", None, None, "Configuration file [default: ~/.clinvk/config.yaml]."],
    ]

    def opt_version(self) -> NoReturn:
        """Print the version and exit."""
        print(version_line())
        raise SystemExit(0)


class _ServerOptions(_ConfigOptions):
    """The options every way of starting the server shares."""

    optParameters = [
        ["host", None, None, "Bind address [default: server.host, 127.0.0.1]."],
    ]

    config: ClinvkConfig

    def __init__(self) -> None:
        super().__init__()
        self["port"] = None

    def opt_port(self, value: str) -> None:
        """Listen port [default: server.port, 8080]."""
        try:
            self["port"] = int(value)
        except ValueError:
            raise usage.UsageError(f"--port: expected a port number from 0 to 65535, got {value!r}") from None

    opt_p = opt_port

    def postOptions(self) -> None:
        """
        Load and validate the configuration, then apply C{--host} and
        C{--port} over it.

        @raise usage.UsageError: With a one-line reason when it is unusable
            (a L{_ConfigurationError}, which runners may report apart).
        """
        try:
            self.config = load_config(
                self["config"], os.environ, strict=self["strict-config"]
            ).with_server_overrides(host=self["host"], port=self["port"])
        except ConfigError as e:
            raise _ConfigurationError(str(e)) from None


class Options(_ServerOptions):
    """Options of C{twist clinvk} and C{twistd clinvk}."""

    synopsis = "[--host HOST] [--port|-p PORT] [--listen ENDPOINT]... [--config FILE] [--strict-config]"
    longdesc = (
        "Serve the Claude Code, Codex and Gemini CLIs as one HTTP API. "
        "--listen takes any Twisted server endpoint (tcp:8080:interface=\\:\\:1, "
        "unix:/run/clinvk.sock, ssl:8443:privateKey=...) and may be repeated; "
        "without it clinvk listens on the configured host and port."
    )

    twistd_log_file: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, description: str) -> None:
        """Listen on this server endpoint (repeatable); replaces --host/--port."""
        if description in self["listen"]:
            raise usage.UsageError(f"--listen {description!r} is given twice")
        try:
            # Parsing only: the endpoint object is discarded, and no reactor
            # may be imported before twistd installs the chosen one.  Parsing
            # may read files (an ssl: endpoint's key), so any error counts.
            serverFromString(cast("Any", None), description)
        except Exception as e:
            raise usage.UsageError(f"invalid --listen {description!r}: {_reason(e)}") from None
        self["listen"].append(description)

    def postOptions(self) -> None:
        """
        Check C{--listen} against C{--host} and C{--port}, then load the
        configuration.

        @raise usage.UsageError: When the options contradict each other.
        @raise SystemExit: With C{Error: <reason>} when the configuration
            is unusable: C{twist} and C{twistd} then print that one line on
            stderr and exit 1, as C{clinvk serve} does, rather than add
            their usage text to a mistake that is not in the command line.
        """
        if self["listen"] and (self["host"] or self["port"]):
            raise usage.UsageError("--listen replaces --host and --port; give one or the other")
        try:
            super().postOptions()
        except _ConfigurationError as e:
            raise SystemExit(f"Error: {e}") from None
        self.twistd_log_file = twistd_log_file(getattr(self, "parent", None))


def twistd_log_file(runner_options: object) -> str | None:
    """
    The log file twistd writes to with C{runner_options}, its own options
    (the parent of clinvk's), or L{None} when it writes elsewhere (syslog,
    standard output, the observer of a C{--logger}) or the runner is not
    twistd.

    This follows twistd's documented options: C{--logfile}, else
    C{twistd.log} unless C{--nodaemon}; C{-} for standard output.
    """
    if not isinstance(runner_options, app.ServerOptions):
        return None
    if runner_options.get("logger") or runner_options.get("syslog"):
        return None
    path: str = runner_options.get("logfile") or ""
    if path == "-" or (runner_options.get("nodaemon") and not path):
        return None
    return path or "twistd.log"


class ServeOptions(_ServerOptions):
    """
    Options of C{clinvk serve}.  The clinvk tool's other global flags are
    accepted and ignored, as the reference does
    (docs/design/configuration.md#serve-command), and left
    out of the help, since they do nothing here.
    """

    synopsis = "[--host HOST] [--port|-p PORT] [--config FILE] [--strict-config] [--log-level LEVEL]"
    optFlags = [
        ["dry-run", None, "Ignored."],
        ["ephemeral", None, "Ignored."],
    ]
    optParameters = [
        ["backend", "b", None, "Ignored."],
        ["model", "m", None, "Ignored."],
        ["workdir", "w", None, "Ignored."],
        ["output-format", "o", None, "Ignored."],
    ]
    _IGNORED = frozenset(["dry-run", "ephemeral", "backend", "model", "workdir", "output-format"])

    def __init__(self) -> None:
        super().__init__()
        self["log-level"] = LogLevel.info

    def opt_log_level(self, value: str) -> None:
        """The least level logged: debug, info, warn, error or critical [default: info]."""
        try:
            self["log-level"] = LogLevel.levelWithName(value.lower())
        except InvalidLogLevelError:
            names = ", ".join(level.name for level in LogLevel.iterconstants())
            raise usage.UsageError(f"--log-level: expected one of {names}, got {value!r}") from None

    def getSynopsis(self) -> str:  # noqa: N802 (usage.Options' name)
        return f"Usage: clinvk serve {self.synopsis}"

    def getUsage(self, width: int | None = None) -> str:  # noqa: N802 (usage.Options' name)
        shown, self.longOpt = self.longOpt, [o for o in self.longOpt if o.rstrip("=") not in self._IGNORED]
        try:
            return super().getUsage(width)
        finally:
            self.longOpt = shown

    def postOptions(self) -> None:
        # The tool's --config is global: `clinvk --config F serve` works too.
        parent = getattr(self, "parent", None)
        if self["config"] is None and parent is not None:
            self["config"] = parent["config"]
        super().postOptions()


class _CommandLineService(MultiService):
    """
    The tree as the command-line runners run it.

      - Under C{twist}, a bind failure ends the program with one line on
        stderr instead of a traceback.  (twistd binds earlier, in
        C{privilegedStartService}, and reports failures itself.)
      - SIGINT and SIGTERM are logged, then stop the reactor so that the
        process exits 0 after its clean shutdown
        (docs/design/decisions.md#d6-no-orphans) rather than
        re-raising the signal.
      - Under twistd with a log file, the log file is clinvk's
        L{ReopenableLogFile}, given to twistd as its application's log
        observer (twistd's documented way to choose it) when the tree
        joins the application; SIGUSR1 rotates it, as twistd does its own.
      - SIGHUP reopens that log file at the same path, for logrotate;
        without one it is only logged, so that it never kills the server.

    @param log_file_path: The path of twistd's log file, or L{None}.
    @ivar log_file: The log file, once the tree has joined a twistd
        application with a log file.
    """

    def __init__(self, reactor: IClinvkReactor, log_file_path: str | None = None) -> None:
        super().__init__()
        self._reactor = reactor
        self._log_file_path = log_file_path
        self.log_file: ReopenableLogFile | None = None

    def setServiceParent(self, parent: Any) -> None:  # noqa: N802 (Twisted's name)
        super().setServiceParent(parent)
        if self._log_file_path is None or not isinstance(parent, Componentized):
            return
        if parent.getComponent(ILogObserver) is not None:
            return
        # twistd asks its application for this observer before it would
        # open the file itself (twisted.application.app.AppLogger.start).
        self.log_file = ReopenableLogFile.fromFullPath(self._log_file_path)
        # A LogFile is file-like enough: twistd passes its own the same way.
        parent.setComponent(ILogObserver, textFileLogObserver(cast("IO[str]", self.log_file)))
        _rotate_on_usr1(self._reactor, self.log_file)

    def startService(self) -> None:
        try:
            super().startService()
        except Exception as e:
            # Any failure to start listening (port in use, no permission,
            # port out of range) is a one-line start-up error.
            raise SystemExit(f"Error: server error: {_reason(e)}") from None
        self._reactor.callWhenRunning(_handle_stop_signals, self._reactor)
        self._reactor.callWhenRunning(_handle_hangup, self._reactor, self.log_file)


def _reason(error: Exception) -> str:
    """The text of an error, or its type's name when it has none."""
    return str(error) or type(error).__name__


def service_for(
    config: ClinvkConfig,
    reactor: IClinvkReactor,
    listen: Sequence[str] = (),
    *,
    log_file_path: str | None = None,
    supervisor: ProcessSupervisor | None = None,
) -> MultiService:
    """
    The service tree the command-line runners start: a container holding
    the L{ClinvkService}, named C{clinvk}, built with what it takes from
    this system: the process environment, the home directory, and real
    processes.  When it gives up after starting (its API keys cannot be
    loaded), the reactor stops; C{clinvk serve} then exits 1.

    @param log_file_path: twistd's log file, for L{_CommandLineService}.
    @param supervisor: The process supervisor, by default one of real
        processes.
    """
    if not provides_clinvk_reactor(reactor):
        raise TypeError(f"{reactor!r} lacks part of IClinvkReactor")
    container = _CommandLineService(reactor, log_file_path)
    if supervisor is None:
        supervisor = ProcessSupervisor.on_this_system(reactor, float(config.server.kill_grace_secs))
    service = build_service(
        config,
        reactor,
        listen,
        supervisor=supervisor,
        environ=os.environ,
        home=home_directory(),
        on_failure=_stop_when_running(reactor),
    )
    service.setName("clinvk")
    service.setServiceParent(container)
    # After the service, whose supervisor runs each CLI's --version.
    announcement = InstalledCLIAnnouncement(service.runtime, try_fakes_command())
    announcement.setName("installed-clis")
    announcement.setServiceParent(container)
    return container


def home_directory() -> str:
    """The user's home directory, or C{""} when there is none."""
    home = os.path.expanduser("~")
    return "" if home == "~" else home


def _stop_when_running(reactor: IClinvkReactor) -> Callable[[str], None]:
    """
    What a server does when its service gives up: stop C{reactor} (a clean
    stop), at once or, when it fails while starting, as soon as it runs.
    """

    def stop(reason: str) -> None:
        reactor.callWhenRunning(_stop_reactor, reactor)

    return stop


def _stop_reactor(reactor: IClinvkReactor) -> None:
    try:
        reactor.stop()
    except ReactorNotRunning:
        pass


def makeService(options: Options) -> IService:
    """Build the service for C{twist} and C{twistd}, on the global reactor."""
    from twisted.internet import reactor

    return service_for(
        options.config,
        cast("IClinvkReactor", reactor),
        options["listen"],
        log_file_path=options.twistd_log_file,
    )


def serve(options: ServeOptions, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """
    Run C{clinvk serve} in the foreground until SIGINT or SIGTERM.

    Binds first and prints the banner only once listening; a bind failure
    prints C{Error: server error: <reason>} and returns 1.

    @return: The exit status.
    """
    from twisted.internet import reactor

    clinvk_reactor = cast("IClinvkReactor", reactor)
    out = out or sys.stdout
    err = err or sys.stderr
    config = options.config
    globalLogBeginner.beginLoggingTo([logfmt_observer(out, options["log-level"])], redirectStandardIO=False)
    service = service_for(config, clinvk_reactor)
    log.info("Starting server addr={addr}", addr=config.server.address)
    try:
        service.privilegedStartService()
    except Exception as e:
        print(f"Error: server error: {_reason(e)}", file=err, flush=True)
        return 1
    service.startService()
    clinvk_reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    clinvk = cast("ClinvkService", service.getServiceNamed("clinvk"))

    def announce() -> None:
        if clinvk.failure is None:
            print(banner(config.server), file=out, flush=True)

    # Announce only once the reactor runs with clinvk's stop-signal handlers
    # (installed by the service's own startup call, which comes first), so
    # Ctrl+C after the banner always means a clean stop; and not at all
    # when the server gave up while starting.
    clinvk_reactor.callWhenRunning(announce)
    clinvk_reactor.run()
    failure = clinvk.failure
    if failure is not None:
        print(f"Error: {failure}", file=err, flush=True)
        return 1
    return 0


class DoctorOptions(_ConfigOptions):
    """Options of C{clinvk doctor}."""

    synopsis = "[--config FILE] [--strict-config]"

    def getSynopsis(self) -> str:  # noqa: N802 (usage.Options' name)
        return f"Usage: clinvk doctor {self.synopsis}"

    def postOptions(self) -> None:
        parent = getattr(self, "parent", None)
        if self["config"] is None and parent is not None:
            self["config"] = parent["config"]


def doctor(options: DoctorOptions, out: IO[str] | None = None, err: IO[str] | None = None) -> int:
    """
    Run C{clinvk doctor}: report what L{diagnose} finds, on the global
    reactor, which runs only until the CLIs have told their versions.

    @return: 0 when the server would start and some backend can serve,
        else 1.
    """
    from twisted.internet import reactor

    clinvk_reactor = cast("IClinvkReactor", reactor)
    out = out or sys.stdout
    err = err or sys.stderr
    outcome: list[Diagnosis | Failure] = []

    def examine() -> None:
        found = Deferred.fromCoroutine(
            diagnose(
                clinvk_reactor, options["config"], os.environ, os.getcwd(), strict=options["strict-config"]
            )
        )
        found.addBoth(outcome.append)
        found.addBoth(lambda ignored: clinvk_reactor.stop())

    clinvk_reactor.callWhenRunning(examine)
    clinvk_reactor.run()
    diagnosis = outcome[0] if outcome else Failure(RuntimeError("interrupted"))
    if isinstance(diagnosis, Failure):
        print(f"Error: doctor could not finish: {diagnosis.getErrorMessage()}", file=err, flush=True)
        return 1
    report(diagnosis, out)
    return 0 if diagnosis.healthy else 1


def _handle_stop_signals(reactor: IClinvkReactor) -> None:
    """
    Replace the reactor's SIGINT/SIGTERM handlers with ones that log the
    signal (docs/design/configuration.md#shutdown) before stopping the reactor.

    This is the one place where clinvk overrides its runners: C{twist}
    and C{twistd} note the stop signal in the reactor's handler and, once
    the reactor has stopped, kill the process with it, so that it never
    exits 0; they offer no way to choose otherwise, and
    docs/design/decisions.md#d6-no-orphans wants 0 after a clean stop.
    The handlers are Python's own (L{signal.signal}), installed once the
    reactor runs, after its own.
    """

    def stop(signum: int) -> None:
        log.info("Received shutdown signal signal={signal}", signal=signal.Signals(signum).name)
        _stop_reactor(reactor)

    def handler(signum: int, frame: FrameType | None) -> None:
        reactor.callFromThread(stop, signum)  # type: ignore[attr-defined]

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def _rotate_on_usr1(reactor: IClinvkReactor, log_file: ReopenableLogFile) -> None:
    """
    Rotate C{log_file} on SIGUSR1, as twistd rotates the log file it opens
    itself, unless SIGUSR1 already has a handler (as twistd checks too).
    """
    if signal.getsignal(signal.SIGUSR1) not in (signal.SIG_DFL, None):
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        reactor.callFromThread(log_file.rotate)  # type: ignore[attr-defined]

    signal.signal(signal.SIGUSR1, handler)


def _handle_hangup(reactor: IClinvkReactor, log_file: ReopenableLogFile | None) -> None:
    """
    Install the SIGHUP handler: reopen C{log_file}, or only log the signal
    when there is no log file (its default action would kill the server).

    logrotate renames the log file and then sends SIGHUP; lines logged in
    between still go to the renamed file, and the reopen creates a new one
    at the original path.  The reopen runs on the reactor thread, where
    clinvk writes its log lines, so none is lost or split across the two.
    When the new file cannot be opened, the reason is logged and logging
    goes on in the old file.
    """

    def reopen() -> None:
        if log_file is None:
            log.info("Received SIGHUP, no log file to reopen")
            return
        log.info("Received SIGHUP, reopening the log file path={path}", path=log_file.path)
        try:
            log_file.reopen()
        except OSError as e:
            log.error(
                "Cannot reopen the log file, still logging to the old one path={path} reason={reason}",
                path=log_file.path,
                reason=_reason(e),
            )
            return
        log.info("Reopened the log file path={path}", path=log_file.path)

    def handler(signum: int, frame: FrameType | None) -> None:
        reactor.callFromThread(reopen)  # type: ignore[attr-defined]

    signal.signal(signal.SIGHUP, handler)
