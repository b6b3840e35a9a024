"""
What every row shares: the run's working directory and fake CLI, a real
clinvk server started as C{python -m twisted clinvk} with C{HOME} in a
temporary directory and the fake first on its C{PATH}, the memory of a
process read from C{/proc}, and closed-loop clients.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from attrs import define, field

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from benchmarks.client import HTTPConnection, Response, build_request, connect, now_ns
from benchmarks.report import Line

API_KEY = "sk-clinvk-bench"
AUTHORIZATION = {"Authorization": f"Bearer {API_KEY}"}

# Every server: API keys (CLINVK_API_KEYS) and metrics on, as row a asks,
# so that every row measures the server as it is deployed.
BASE_CONFIG: Mapping[str, Mapping[str, Any]] = {
    "server": {
        "host": "127.0.0.1",
        "metrics_enabled": True,
        "kill_grace_secs": 2,
        "shutdown_timeout_secs": 5,
    },
}

START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
OUTPUT_TAIL = 64 * 1024


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def merged(*layers: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Configuration layers merged section by section, later keys winning."""
    result: dict[str, dict[str, Any]] = {}
    for layer in layers:
        for section, settings in layer.items():
            result.setdefault(section, {}).update(settings)
    return result


def memory_of(pid: int) -> dict[str, int]:
    """
    C{VmRSS} (resident now) and C{VmHWM} (the peak so far) of process
    C{pid}, in bytes, from C{/proc/<pid>/status}.
    """
    sizes = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                sizes[name] = int(value.split()[0]) * 1024
    return sizes


def reset_peak(pid: int) -> bool:
    """
    Reset the peak resident size (C{VmHWM}) of C{pid} to its current size
    (Linux C{clear_refs} 5).

    @return: Whether the kernel allowed it.
    """
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return False
    return True


def children_of(pid: int) -> list[int]:
    """The direct children of C{pid} (from C{/proc/<pid>/task/*/children})."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


class WatchedProcess(ProcessProtocol):
    """
    A child of the benchmark: the tail of its output, and its end.

    @ivar ended: Fires with the exit status (C{-signal} when killed).
    """

    def __init__(self) -> None:
        self.output = b""
        self.ended: Deferred[int] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.output = (self.output + data)[-OUTPUT_TAIL:]

    def errReceived(self, data: bytes) -> None:
        self.outReceived(data)

    def processEnded(self, reason: Failure) -> None:
        value = reason.value
        if isinstance(value, ProcessDone):
            self.ended.callback(0)
        elif isinstance(value, ProcessTerminated):
            self.ended.callback(value.exitCode if value.exitCode is not None else -(value.signal or 0))
        else:
            self.ended.callback(-1)

    def text(self) -> str:
        return self.output.decode("utf-8", "replace")


class StartFailed(Exception):
    """A server did not start."""


@define
class Server:
    """
    A process serving HTTP on 127.0.0.1: clinvk, or the bare app row a
    compares it with.

    @ivar name: Says which, in messages.
    @ivar home: Its C{HOME} and working directory.
    """

    reactor: Any
    name: str
    port: int
    home: Path
    watched: WatchedProcess
    transport: Any

    @property
    def pid(self) -> int:
        pid: int = self.transport.pid
        return pid

    def rss(self) -> int:
        """The resident size now, in bytes."""
        return memory_of(self.pid)["VmRSS"]

    def peak(self) -> int:
        """The peak resident size since start (or the last L{reset_peak}), in bytes."""
        return memory_of(self.pid)["VmHWM"]

    def reset_peak(self) -> bool:
        """Count the peak from now; see L{reset_peak}."""
        return reset_peak(self.pid)

    async def wait_ready(self) -> None:
        """Wait until C{GET /health} answers (any status)."""
        deadline = self.reactor.seconds() + START_TIMEOUT
        while True:
            if self.watched.ended.called:
                raise StartFailed(f"{self.name} exited at start:\n{self.watched.text()}")
            try:
                connection = await connect(self.reactor, self.port)
            except Exception:
                if self.reactor.seconds() > deadline:
                    raise StartFailed(f"{self.name} did not listen:\n{self.watched.text()}") from None
                await deferLater(self.reactor, 0.05)
                continue
            try:
                await connection.request(
                    build_request("GET", "/health", port=self.port, headers=AUTHORIZATION)
                )
            finally:
                connection.close()
            return

    def signal(self, name: str) -> None:
        try:
            self.transport.signalProcess(name)
        except ProcessExitedAlready:
            pass

    async def stop(self) -> int:
        """SIGTERM, then SIGKILL after L{STOP_TIMEOUT}; the exit status."""
        if not self.watched.ended.called:
            self.signal("TERM")
        overdue = self.reactor.callLater(STOP_TIMEOUT, self.signal, "KILL")
        status = await self.watched.ended
        if overdue.active():
            overdue.cancel()
        return status


@define
class Bench:
    """
    One run of the suite.

    @ivar work: A temporary directory, removed after the run.
    @ivar fakes: The directory of the fake CLI, first on every server's
        C{PATH}.
    @ivar quick: Shorter measurements, for development.
    @ivar notes: How each row was measured, for the report.
    """

    reactor: Any
    work: Path
    fakes: Path
    quick: bool
    notes: list[str] = field(factory=list)
    lines: list[Line] = field(factory=list)
    _servers: list[Server] = field(factory=list)
    _counter: int = 0

    def directory(self, name: str) -> Path:
        """A new directory in the run's working directory."""
        self._counter += 1
        path = self.work / f"{self._counter:02d}-{name}"
        path.mkdir(parents=True)
        return path

    def fake_path(self, name: str) -> str:
        """The fake CLI called C{name}."""
        return str(self.fakes / name)

    def environment(self, home: Path) -> dict[str, str]:
        """A server's environment: nothing of the caller's clinvk settings, the fake first on PATH."""
        env = {key: value for key, value in os.environ.items() if not key.startswith("CLINVK_")}
        env.update(
            HOME=str(home),
            PATH=f"{self.fakes}{os.pathsep}{os.environ.get('PATH', '')}",
            CLINVK_API_KEYS=API_KEY,
        )
        return env

    async def start_server(
        self,
        name: str,
        config: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        prepare_home: Callable[[Path], None] | None = None,
        environment: Callable[[Path], Mapping[str, str]] | None = None,
    ) -> Server:
        """
        Start clinvk: C{python -m twisted --log-file <file> clinvk --port N
        --config <file>}, with the configuration L{BASE_CONFIG} merged with
        C{config}, and wait until it answers.

        @param prepare_home: Called with the server's C{HOME} before it
            starts (to store sessions there).
        @param environment: Called with the server's C{HOME}: variables to
            set in its environment beyond L{environment}'s.
        """
        base = self.directory(name)
        home = base / "home"
        home.mkdir()
        if prepare_home is not None:
            prepare_home(home)
        config_file = base / "config.json"
        config_file.write_text(json.dumps(merged(BASE_CONFIG, config or {})))  # JSON is YAML
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "twisted",
            "--log-file",
            str(base / f"{name}.log"),
            "clinvk",
            "--port",
            str(port),
            "--config",
            str(config_file),
        ]
        env = self.environment(home)
        if environment is not None:
            env.update(environment(home))
        return await self._start(name, command, home, port, env)

    async def start_process_server(self, name: str, command: Sequence[str], port: int) -> Server:
        """Start another server (C{command} must listen on C{port}) and wait until it answers."""
        home = self.directory(name)
        return await self._start(name, command, home, port, dict(os.environ))

    async def _start(
        self, name: str, command: Sequence[str], home: Path, port: int, env: dict[str, str]
    ) -> Server:
        watched = WatchedProcess()
        transport = self.reactor.spawnProcess(watched, command[0], list(command), env=env, path=str(home))
        server = Server(self.reactor, name, port, home, watched, transport)
        self._servers.append(server)
        await server.wait_ready()
        return server

    async def stop_all(self) -> None:
        """Stop every server still running."""
        servers, self._servers = self._servers, []
        await gatherResults([Deferred.fromCoroutine(server.stop()) for server in servers])

    async def stop(self, server: Server) -> int:
        """Stop C{server}; the exit status."""
        if server in self._servers:
            self._servers.remove(server)
        return await server.stop()

    async def sleep(self, seconds: float) -> None:
        await deferLater(self.reactor, seconds)

    def note(self, text: str) -> None:
        """Say in the report how something was measured."""
        self.notes.append(text)


async def closed_loop(
    reactor: Any,
    port: int,
    clients: int,
    make_request: Callable[[int], bytes],
    *,
    requests: int | None = None,
    duration: float | None = None,
    check: Callable[[Response], None] | None = None,
) -> tuple[list[float], float]:
    """
    C{clients} keep-alive connections, each sending a request as soon as
    its previous answer has arrived, until C{requests} have been sent in
    all or C{duration} seconds have passed.

    @param make_request: The bytes of request number C{i}.
    @param check: Called with every response; raises when it is wrong.
    @return: Every request's latency (seconds) and the wall time of the
        whole loop (seconds).
    """
    connections: list[HTTPConnection] = [await connect(reactor, port) for _ in range(clients)]
    latencies: list[float] = []
    sent = 0
    started = now_ns()
    stop_at = started + int(duration * 1e9) if duration is not None else None

    def more() -> bool:
        if requests is not None and sent >= requests:
            return False
        return stop_at is None or now_ns() < stop_at

    async def run(connection: HTTPConnection) -> None:
        nonlocal sent
        while more():
            number = sent
            sent += 1
            begun = now_ns()
            response = await connection.request(make_request(number))
            latencies.append((now_ns() - begun) / 1e9)
            if check is not None:
                check(response)

    try:
        # consumeErrors: once one client has failed, the others fail too
        # as their connections close; the first failure is the one raised.
        await gatherResults(
            [Deferred.fromCoroutine(run(connection)) for connection in connections], consumeErrors=True
        )
    finally:
        for connection in connections:
            connection.close()
    return latencies, (now_ns() - started) / 1e9


def expect_status(status: int) -> Callable[[Response], None]:
    """A check that every response has C{status}."""

    def check(response: Response) -> None:
        if response.status != status:
            raise AssertionError(f"status {response.status}, not {status}: {response.body[:500]!r}")

    return check
