"""
Helpers for the real-process tests: run a command, wait for a line or for
its end, talk HTTP to it, read what the fake CLIs recorded, and watch a
process that is not our child.

Every wait is event-driven (output arriving, a process ending, a pidfd
becoming readable), or a poll on the reactor clock where there is no event
to wait for (L{eventually}), and bounded by a timeout on the reactor, so a
broken server fails a test instead of hanging it.  L{require_tool} finds
the system tools some tests drive.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from treq.client import HTTPClient
from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessExitedAlready, ProcessTerminated
from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.trial.unittest import FailTest, SkipTest
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from zope.interface import implementer

# Integration tests run on trial's real reactor.
reactor: Any = _reactor

TIMEOUT = 30.0

# Set to 1 where the system tools some tests drive must be installed (CI
# installs them): a test that needs a missing one then fails, not skips.
REQUIRE_SYSTEM_TOOLS = "CLINVK_REQUIRE_SYSTEM_TOOLS"

# Where system tools live besides PATH (a non-root PATH often lacks them).
_SYSTEM_DIRECTORIES = ("/usr/sbin", "/sbin")


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def python_command(*args: str) -> list[str]:
    """Run a module or script with the interpreter running the tests."""
    return [sys.executable, *args]


class CommandProtocol(ProcessProtocol):
    """
    Collects a command's output and tells when a line appears and when the
    command has ended.

    @ivar ended: Fires with the exit status (or C{-signal}) once the process
        has ended and all its output has arrived.
    """

    def __init__(self) -> None:
        self.stdout = b""
        self.stderr = b""
        self.ended: Deferred[int] = Deferred()
        self._waiting: list[tuple[re.Pattern[bytes], Deferred[re.Match[bytes]]]] = []

    def outReceived(self, data: bytes) -> None:
        self.stdout += data
        self._check()

    def errReceived(self, data: bytes) -> None:
        self.stderr += data
        self._check()

    def _check(self) -> None:
        for entry in list(self._waiting):
            pattern, waiting = entry
            match = pattern.search(self.stdout + self.stderr)
            if match:
                self._waiting.remove(entry)
                waiting.callback(match)

    def wait_for(self, pattern: str) -> Deferred[re.Match[bytes]]:
        """Fire with the first match of C{pattern} in the output so far or to come."""
        waiting: Deferred[re.Match[bytes]] = Deferred()
        self._waiting.append((re.compile(pattern.encode("utf-8"), re.M), waiting))
        self._check()
        return waiting.addTimeout(TIMEOUT, reactor)

    def processEnded(self, reason: Failure) -> None:
        for _, waiting in self._waiting:
            waiting.errback(reason)
        self._waiting.clear()
        if reason.check(ProcessDone):
            self.ended.callback(0)
        elif reason.check(ProcessTerminated):
            value = cast("ProcessTerminated", reason.value)
            self.ended.callback(value.exitCode if value.exitCode is not None else -value.signal)


def spawn(
    command: Sequence[str], env: dict[str, str], path: str, timeout: float = TIMEOUT
) -> tuple[CommandProtocol, Any]:
    """
    Start C{command}; return its protocol and process transport.

    The command has C{timeout} seconds to end: then its C{ended} fails with
    a timeout and the process is killed, so that it does not outlive the
    test.
    """
    protocol = CommandProtocol()
    transport = reactor.spawnProcess(protocol, command[0], list(command), env=env, path=path)

    def kill(reason: Failure) -> Failure:
        try:
            transport.signalProcess("KILL")
        except ProcessExitedAlready:
            pass
        return reason

    protocol.ended.addTimeout(timeout, reactor).addErrback(kill)
    return protocol, transport


async def eventually(probe: Callable[[], bool], what: str, within: float = TIMEOUT) -> None:
    """
    Poll C{probe} until it is true, for at most C{within} seconds on the
    reactor clock; then fail, saying C{what} did not happen.
    """
    deadline = reactor.seconds() + within
    while not probe():
        if reactor.seconds() > deadline:
            raise FailTest(f"not within {within}s: {what}")
        await deferLater(reactor, 0.05)


def require_tool(names: str | Sequence[str], install: str) -> str:
    """
    The path of a system tool that a test drives: the first of C{names}
    found on C{PATH} or in the system's C{sbin} directories.

    Without it the test is skipped, with a reason that says how to install
    it (C{install}); but where C{CLINVK_REQUIRE_SYSTEM_TOOLS=1} says the
    machine must have it, as on CI, the test fails instead, so that a tool
    missing there cannot pass for a passing test.

    @raise SkipTest: When none is installed.
    @raise FailTest: When none is installed and tools are required.
    """
    names = [names] if isinstance(names, str) else list(names)
    search = os.pathsep.join([os.environ.get("PATH", os.defpath), *_SYSTEM_DIRECTORIES])
    for name in names:
        found = shutil.which(name, path=search)
        if found is not None:
            return found
    reason = f"{' or '.join(names)} is not installed ({install})"
    if os.environ.get(REQUIRE_SYSTEM_TOOLS) == "1":
        raise FailTest(f"{reason}, and {REQUIRE_SYSTEM_TOOLS}=1 requires it")
    raise SkipTest(reason)


async def get_bytes(url: str) -> tuple[int, bytes]:
    """GET C{url} with a non-persistent client; return status and body."""
    client = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
    response = await client.get(url).addTimeout(TIMEOUT, reactor)
    body: bytes = await response.content()
    return response.code, body


async def get_json(url: str) -> tuple[int, Any]:
    """GET C{url} with a non-persistent client; return status and JSON body."""
    code, body = await get_bytes(url)
    return code, json.loads(body)


async def post_json(url: str, body: Any) -> tuple[int, Any]:
    """POST C{body} as JSON with a non-persistent client; return status and JSON body."""
    client = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
    response = await client.post(
        url, data=json.dumps(body).encode(), headers=Headers({b"Content-Type": [b"application/json"]})
    ).addTimeout(TIMEOUT, reactor)
    content = await response.content()
    return response.code, json.loads(content)


def fake_records(directory: FilePath[str], name: str | None = None) -> list[dict[str, Any]]:
    """
    What every run of the fake CLI C{name} (of all fakes if C{None})
    recorded in C{directory}, their C{CLINVK_FAKE_RECORD}.
    """
    found = [json.loads(path.read_text()) for path in Path(directory.path).glob("*.json")]
    return [record for record in _turns(found) if name is None or record["name"] == name]


def _turns(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """
    The records as runs: a live fake's record (one per process, with the
    turns it served) as one record per turn, whose C{stdin} is the turn's
    text, as a one-shot fake's is its prompt.
    """
    runs = []
    for record in records:
        if record.get("live") and record.get("turns"):
            runs += [
                {**record, "stdin": text, "turn": number} for number, text in enumerate(record["turns"], 1)
            ]
        else:
            runs.append(record)
    return runs


def fake_pids(records: Sequence[dict[str, Any]]) -> set[int]:
    """Every process the fakes of C{records} started, grandchildren included."""
    return {pid for record in records for pid in (record["pid"], *record["grandchildren"])}


@implementer(IReadDescriptor)
class _PidFd:
    def __init__(self, fd: int, exited: Deferred[None]) -> None:
        self._fd = fd
        self._exited = exited

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> None:
        reactor.removeReader(self)
        os.close(self._fd)
        self._exited.callback(None)

    def connectionLost(self, reason: Failure) -> None:
        pass

    def logPrefix(self) -> str:
        return "pidfd"


def process_exit(pid: int) -> Deferred[None]:
    """
    Fire when process C{pid}, which need not be our child, has exited
    (Linux pidfd: readable once the process is gone).
    """
    exited: Deferred[None] = Deferred()
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        exited.callback(None)
        return exited
    reactor.addReader(_PidFd(fd, exited))
    return exited.addTimeout(TIMEOUT, reactor)


def _stat_fields(pid: int | str) -> list[str] | None:
    """The fields of C{/proc/<pid>/stat} after the command name; C{None} once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat_file:
            return stat_file.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        # ProcessLookupError: the process went between open and read.
        return None


def alive(pid: int) -> bool:
    """Whether C{pid} still runs (a zombie counts as gone)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def _live_processes() -> list[tuple[int, list[str]]]:
    """Every process on the machine that is not a zombie, with its stat fields."""
    processes = []
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat_fields(entry.name)
        if fields is not None and fields[0] != "Z":
            processes.append((int(entry.name), fields))
    return processes


def group_reaper(pid: int) -> bool:
    """Whether C{pid} is a server's process group reaper (L{clinvk.process.reaper}), not a CLI."""
    try:
        return b"clinvk-reaper" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def live_process_groups() -> set[int]:
    """The process groups of every live process."""
    return {int(fields[2]) for _, fields in _live_processes()}


def live_children(parent: int) -> set[int]:
    """The live processes whose parent is C{parent}."""
    return {pid for pid, fields in _live_processes() if int(fields[1]) == parent}
