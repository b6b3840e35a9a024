"""
A real clinvk server per test for the real-process tests (L{ServerTestCase}),
and L{NDJSONClient}, which reads a stream of the native API as it arrives.

The server is started with the fake CLIs first on its C{PATH}, C{HOME} in
a temporary directory and the fakes recording how they were run
(C{CLINVK_FAKE_RECORD}).  After the test it is stopped with SIGTERM: it
must exit 0 in time, and no process any fake started may be left.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import yaml

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from clinvk.testing.fake_cli import NAMES, install
from tests.integration._processes import (
    TIMEOUT,
    CommandProtocol,
    alive,
    eventually,
    fake_pids,
    fake_records,
    get_bytes,
    live_process_groups,
    process_exit,
    python_command,
    reactor,
)

# A configuration file's content, section by section.
Config = Mapping[str, Mapping[str, Any]]

KILL_GRACE = 2

# The shutdown timeout of the tests that time a shutdown (the default is 30 s).
SHUTDOWN_TIMEOUT = 2

# How long the server may take to stop after SIGTERM: the longest shutdown
# timeout a test class sets (5 s), its kill grace, and a margin for a
# loaded machine.
STOP_WITHIN = 15

# The configuration of every server, which ServerTestCase.config_layers
# adds to.
SERVER_CONFIG: Config = {"server": {"host": "127.0.0.1", "kill_grace_secs": KILL_GRACE}}


def config_yaml(*layers: Config) -> str:
    """
    The configuration file made of C{layers}, merged section by section and
    key by key: a later layer's key replaces an earlier one's.
    """
    merged: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, settings in layer.items():
            merged.setdefault(section, {}).update(settings)
    return yaml.safe_dump(merged, sort_keys=False)


class ServerTestCase(TestCase):
    """
    A real clinvk server per test, listening on L{port} of 127.0.0.1 (a
    port the system picked: no other test can hold it).
    Cleanup stops it if it still runs and checks that nothing any fake
    started is left.

    @cvar installed: The fake CLIs the server finds; the others are not
        installed (their backends are unavailable).
    @cvar server_config: Configuration merged into the harness's own
        (L{config_layers}) section by section and key by key, e.g.
        C{{"server": {"max_concurrent_runs": 2}}}.
    @cvar server_environment: Environment variables of the server process
        beyond the harness's own (which drops the caller's C{CLINVK_*}
        variables), e.g. C{{"CLINVK_API_KEYS": "k1,k2"}}.
    """

    timeout = 120

    installed: ClassVar[Sequence[str]] = NAMES
    server_config: ClassVar[Config] = {}
    server_environment: ClassVar[Mapping[str, str]] = {}

    def config_layers(self) -> list[Config]:
        """The layers of the server's configuration, earliest first."""
        return [SERVER_CONFIG, self.server_config]

    def server_command(self, config_file: str) -> list[str]:
        """
        The command that starts the server with C{config_file}, on a port
        of 127.0.0.1 that the system picks (port 0 of a C{--listen}
        endpoint: C{--port 0} means the configured port); L{started_pattern}
        reads which.
        """
        return python_command(
            "-m", "twisted", "clinvk", "--listen", "tcp:0:interface=127.0.0.1", "--config", config_file
        )

    # A path the server answers once it runs (with any status); None to
    # send nothing, for tests that count every request.
    ready_path: str | None = "/health"

    def started_pattern(self) -> str:
        """
        What the server writes once it listens, with the port it listens on
        as the group C{port}.
        """
        return r"address[=\": ]+127\.0\.0\.1:(?P<port>\d+)\b"

    def probed_pattern(self) -> str | None:
        """
        What the server writes once it has run C{--version} on every
        backend CLI it looks for (gemini is the last); L{None} for a
        server that does not look.  A test begins after it, so that those
        runs neither outlive the test's server nor count among its CLIs.
        """
        return r"^(?=.*(?:backend=gemini\b|\"backend\": \"gemini\"))(?=.*(?:Found backend CLI|Backend CLI not found))"

    def setUp(self) -> Deferred[None]:  # type: ignore[override] # trial waits for it
        base = FilePath(self.mktemp())
        self.bin = install(base.child("bin").path)
        for name in NAMES:
            if name not in self.installed:
                (self.bin / name).unlink()
        self.records = base.child("records")
        self.records.makedirs()
        self.home = base.child("home")
        self.home.makedirs()
        self.config = base.child("config.yaml")
        self.config.setContent(config_yaml(*self.config_layers()).encode())
        # Known once the server says where it listens.
        self.port = 0
        self.base_url = ""
        env = self.environment()
        command = self.server_command(self.config.path)
        # Not spawn(): its limit on the whole life of a command does not
        # suit a server; cleanup bounds the stop.
        self.server = CommandProtocol()
        self.transport = reactor.spawnProcess(self.server, command[0], command, env=env, path=self.home.path)
        self.server_pid: int = self.transport.pid
        # Kept here: whoever awaits server.ended first takes its result.
        self.server_status: int | None = None
        self.server.ended.addCallback(self._ended)
        self.signalled_by_test = False
        self.addCleanup(self.cleanup)
        return Deferred.fromCoroutine(self._until_serving())

    def environment(self) -> dict[str, str]:
        """
        The server's environment: the caller's without its C{CLINVK_*}
        settings, C{HOME} and C{PATH} as above, and L{server_environment}.
        """
        env = {key: value for key, value in os.environ.items() if not key.startswith("CLINVK_")}
        env.update(
            HOME=self.home.path,
            PATH=f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            CLINVK_FAKE_RECORD=self.records.path,
        )
        env.update(self.server_environment)
        return env

    async def _until_serving(self) -> None:
        """
        Wait until the server listens (and read on which port), until it
        has looked for the backend CLIs (L{probed_pattern}), then until it
        answers L{ready_path}: a server that answers runs its reactor, with
        its signal handlers in place, so a SIGTERM from then on is a clean
        stop.
        """
        try:
            started = await self.server.wait_for(self.started_pattern())
            self.port = int(started.group("port"))
            self.base_url = f"http://127.0.0.1:{self.port}"
            probed = self.probed_pattern()
            if probed is not None:
                await self.server.wait_for(probed)
            if self.ready_path is not None:
                await get_bytes(self.url(self.ready_path))
        except Exception as e:
            self.fail(f"the server did not start: {e!r}\n{self.server_output()}")

    def _ended(self, status: int) -> int:
        self.server_status = status
        return status

    def url(self, path: str) -> str:
        return self.base_url + path

    def signal_server(self, name: str) -> None:
        """Send the server signal C{name}; the test then checks how it ended."""
        self.signalled_by_test = True
        self._signal(name)

    def _signal(self, name: str) -> None:
        try:
            self.transport.signalProcess(name)
        except ProcessExitedAlready:
            pass

    def server_output(self) -> str:
        return (self.server.stdout + self.server.stderr).decode("utf-8", "replace")

    async def cleanup(self) -> None:
        """Stop the server, then check that nothing of the fakes is left, even if it failed to stop."""
        try:
            await self.stop_server()
        finally:
            await self.check_nothing_left()

    async def stop_server(self) -> None:
        """
        SIGTERM the server if it still runs: it must exit 0 within
        L{STOP_WITHIN} seconds (it is killed otherwise).  A server that
        ended without a signal of the test must have exited 0 too.
        """
        if self.server.ended.called:
            if not self.signalled_by_test:
                self.assertEqual(self.server_status, 0, self.server_output())
            return
        self._signal("TERM")
        overdue = reactor.callLater(STOP_WITHIN, self._signal, "KILL")
        await self.server.ended
        if not overdue.active():
            self.fail(f"the server did not stop within {STOP_WITHIN}s of SIGTERM:\n{self.server_output()}")
        overdue.cancel()
        self.assertEqual(self.server_status, 0, self.server_output())

    async def check_nothing_left(self) -> None:
        """
        Every process a fake started, and every process of the fakes'
        process groups (the launcher's watchers), must be gone.
        Stragglers are killed by pid, so that a failing test leaves
        nothing behind, and fail the test.
        """
        records = self.records_of()
        pids = fake_pids(records)
        groups = {record["pgid"] for record in records}
        try:
            await self.eventually(
                lambda: not ({pid for pid in pids if alive(pid)} or groups & live_process_groups())
            )
        finally:
            for pid in pids:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)

    async def eventually(self, probe: Callable[[], bool], within: float = TIMEOUT) -> None:
        """Poll C{probe} until it is true, for at most C{within} seconds."""
        await eventually(probe, "the condition came true", within)

    def records_of(self, name: str | None = None) -> list[dict[str, Any]]:
        """What every run of the fake C{name} (of all fakes if C{None}) recorded."""
        return fake_records(self.records, name)

    def runs(self, name: str | None = None) -> list[dict[str, Any]]:
        """
        The prompt runs among L{records_of}: without the C{gemini
        --delete-session} runs that clean up after ephemeral prompts.
        """
        return [record for record in self.records_of(name) if "--delete-session" not in record["argv"]]

    async def all_exit(self, pids: list[int], since: float, within: float) -> None:
        """Every process of C{pids} has exited C{within} seconds after C{since}."""
        for pid in pids:
            await process_exit(pid)
        self.assertEqual([pid for pid in pids if alive(pid)], [])
        self.assertLess(reactor.seconds() - since, within)


class NDJSONClient(Protocol):
    """
    Sends one HTTP/1.0 request by hand and parses the NDJSON body as it
    arrives, so a test can read part of a stream and then walk away.
    (HTTP/1.0: the body comes unchunked and the connection ends with it.)

    @ivar events: The events received so far.
    @ivar closed: Fires once the connection is gone.
    """

    def __init__(self, request: bytes) -> None:
        self._request = request
        self._buffer = b""
        self.head: bytes | None = None
        self.events: list[dict[str, Any]] = []
        self._waiting: list[tuple[Callable[[dict[str, Any]], bool], Deferred[dict[str, Any]]]] = []
        self.closed: Deferred[None] = Deferred()

    @classmethod
    def post(cls, path: str, port: int, body: Any) -> NDJSONClient:
        data = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        return cls(head.encode() + data)

    def connectionMade(self) -> None:
        self.transport.write(self._request)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        if self.head is None:
            head, separator, rest = self._buffer.partition(b"\r\n\r\n")
            if not separator:
                return
            self.head, self._buffer = head, rest
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            event = json.loads(line)
            self.events.append(event)
            for entry in list(self._waiting):
                matches, waiting = entry
                if matches(event):
                    self._waiting.remove(entry)
                    waiting.callback(event)

    def wait_for(self, event_type: str) -> Deferred[dict[str, Any]]:
        """Fire with the first event of C{event_type}, received already or to come."""
        waiting: Deferred[dict[str, Any]] = Deferred()
        for event in self.events:
            if event["type"] == event_type:
                waiting.callback(event)
                return waiting
        self._waiting.append((lambda event: event["type"] == event_type, waiting))
        return waiting.addTimeout(TIMEOUT, reactor)

    def abort(self) -> None:
        """Drop the connection at once, as a client that crashed or gave up."""
        self.transport.abortConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        for _, waiting in self._waiting:
            waiting.errback(reason)
        self._waiting.clear()
        self.closed.callback(None)
