"""
What the tests of clinvk as a daemon share (C{test_daemon},
C{test_operations_docs}, C{test_configuration_docs}): the Twisted runners
of the environment running the tests, requests to a daemon that is not the
test's child, servers in the foreground that cleanup stops, and
L{DaemonHarness}, the part of a test case that runs prompts, reads the log
file and leaves no process behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from treq.client import HTTPClient
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import deferLater
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers

from tests.integration._processes import (
    TIMEOUT,
    CommandProtocol,
    alive,
    eventually,
    fake_pids,
    fake_records,
    reactor,
)

# The Twisted runners of the environment running the tests.
BIN = Path(sys.executable).parent
TWISTD = str(BIN / "twistd")
TWIST = str(BIN / "twist")
CLINVK = str(BIN / "clinvk")

ACCESS_LINE = (
    r"request method={method} path={path} status={status} bytes=\d+ duration_ms=\d+ request_id={request_id}\b"
)


def background(
    test: TestCase, command: list[str], env: Mapping[str, str], path: str, stop: int = signal.SIGTERM
) -> tuple[CommandProtocol, Any]:
    """
    Start C{command}, a process that runs until told to stop (a server in
    the foreground, nginx).  Unlike L{spawn}, its end is not bounded: the
    test's own timeout bounds its waits.  Cleanup sends it C{stop} if it
    still runs, and C{SIGKILL} if it lingers, so that nothing outlives the
    test.
    """
    protocol = CommandProtocol()
    transport = reactor.spawnProcess(protocol, command[0], command, env=dict(env), path=path)

    async def stop_it() -> None:
        if transport.pid is None:
            return
        transport.signalProcess(stop)
        overdue = reactor.callLater(TIMEOUT, lambda: transport.pid and transport.signalProcess("KILL"))
        try:
            await protocol.ended
        finally:
            if overdue.active():
                overdue.cancel()

    test.addCleanup(stop_it)
    return protocol, transport


async def fetch(
    url: str, method: str = "GET", body: Any = None, request_id: str | None = None
) -> tuple[int, bytes]:
    """
    Send one request with a non-persistent client, with C{body} as JSON
    and our own C{X-Request-Id}; return the status and the body.
    """
    client = HTTPClient(Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False)))
    headers = Headers({b"Content-Type": [b"application/json"]})
    if request_id is not None:
        headers.addRawHeader(b"X-Request-Id", request_id.encode())
    data = None if body is None else json.dumps(body).encode()
    response = await client.request(method, url, data=data, headers=headers).addTimeout(TIMEOUT, reactor)
    content: bytes = await response.content()
    return response.code, content


async def until_serving(url: str) -> None:
    """Wait until C{url} answers 200, retrying refused connections for a bounded time."""
    deadline = reactor.seconds() + TIMEOUT
    while True:
        try:
            code, _ = await fetch(url)
        except ConnectionRefusedError:
            if reactor.seconds() > deadline:
                raise
            await deferLater(reactor, 0.05)
            continue
        if code != 200:
            raise AssertionError(f"{url} answered {code}")
        return


def text_of(path: FilePath[str]) -> str:
    """The content of C{path}, or nothing while it does not exist."""
    try:
        return path.getContent().decode("utf-8")
    except FileNotFoundError:
        return ""


class DaemonHarness(TestCase):
    """
    Prompts, log files and cleanup for tests that start daemons.  The
    subclass's C{setUp} sets the attributes below and adds
    L{leave_nothing_behind} as a cleanup.

    @ivar port: The port the daemons listen on, on 127.0.0.1.
    @ivar records_dir: Where the fake CLIs record their runs.
    @ivar logfile: The daemons' log file.
    @ivar daemons: The pid of every daemon started.
    """

    timeout = 120

    port: int
    records_dir: FilePath[str]
    logfile: FilePath[str]
    daemons: list[int]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def prompt(
        self, text: str, *, request_id: str | None = None, url: str | None = None, **fields: Any
    ) -> Mapping[str, Any]:
        """
        Run C{text} through the fake claude (C{fields} added to the body);
        the answer must be a success with the fake's answer to C{text}.
        """
        body = {"backend": "claude", "prompt": text, "ephemeral": True, **fields}
        code, content = await fetch(url or self.url("/api/v1/prompt"), "POST", body, request_id)
        self.assertEqual(code, 200, content)
        answer: Mapping[str, Any] = json.loads(content)
        self.assertEqual(answer["output"], f"claude answers: {text}")
        return answer

    async def log_shows(self, pattern: str, log: FilePath[str] | None = None) -> re.Match[str]:
        """Wait until the log file (or C{log}) has a match of C{pattern}; return it."""
        path = log or self.logfile
        await eventually(lambda: re.search(pattern, text_of(path)) is not None, f"{pattern!r} in {path.path}")
        match = re.search(pattern, text_of(path))
        assert match is not None
        return match

    def records(self) -> list[dict[str, Any]]:
        """What every run of a fake CLI recorded."""
        return fake_records(self.records_dir)

    def fake_pids(self) -> set[int]:
        """Every process the fakes started, grandchildren included."""
        return fake_pids(self.records())

    def leave_nothing_behind(self) -> None:
        """Kill any daemon or fake a failed test left running."""
        for pid in [*self.daemons, *self.fake_pids()]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
