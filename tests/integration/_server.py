"""
A real server per test for the real-process tests: started with the fake
CLIs first on its C{PATH} and C{HOME} in a temporary directory, stopped
with SIGTERM afterwards, and then checked to have left no process of any
fake behind.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from clinvk.testing.fake_cli import install
from tests.integration._processes import (
    TIMEOUT,
    CommandProtocol,
    alive,
    eventually,
    free_port,
    live_process_groups,
    process_exit,
    python_command,
    reactor,
)

KILL_GRACE = 2
SHUTDOWN_TIMEOUT = 2

# How long the server may take to stop after SIGTERM: its shutdown
# timeout, its kill grace, and a margin for a loaded machine.
STOP_WITHIN = SHUTDOWN_TIMEOUT + KILL_GRACE + 10


class ServerTestCase(TestCase):
    """
    A real clinvk server per test, configured by L{server_config}, with
    the fake CLIs on its C{PATH}.  Cleanup stops it if it still runs and
    checks that nothing any fake started is left.
    """

    timeout = 120

    server_config: dict[str, Any] = {}

    def server_command(self, config_file: str) -> list[str]:
        """The command that starts the server on L{port} with C{config_file}."""
        return python_command("-m", "twisted", "clinvk", "--port", str(self.port), "--config", config_file)

    def started_pattern(self) -> str:
        """What the server writes once it listens on L{port}."""
        return rf"address[=\": ]+127\.0\.0\.1:{self.port}\b"

    def setUp(self) -> Deferred[None]:  # type: ignore[override] # trial waits for it
        base = FilePath(self.mktemp())
        self.bin = install(base.child("bin").path)
        self.records = base.child("records")
        self.records.makedirs()
        self.home = base.child("home")
        self.home.makedirs()
        config = base.child("config.yaml")
        server = {"host": "127.0.0.1", "kill_grace_secs": KILL_GRACE, **self.server_config}
        config.setContent(json.dumps({"server": server}).encode())  # JSON is YAML
        self.port = free_port()
        env = {
            **os.environ,
            "HOME": self.home.path,
            "PATH": f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "CLINVK_FAKE_RECORD": self.records.path,
        }
        env.pop("CLINVK_FAKE", None)
        command = self.server_command(config.path)
        self.server = CommandProtocol()
        self.transport = reactor.spawnProcess(self.server, command[0], command, env=env, path=self.home.path)
        self.server_pid: int = self.transport.pid
        self.addCleanup(self.cleanup)
        waiting = self.server.wait_for(self.started_pattern())

        def not_started(reason: Failure) -> None:
            self.fail(f"the server did not start: {reason.getErrorMessage()}\n{self.server_output()}")

        return waiting.addCallbacks(lambda _: None, not_started)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def signal_server(self, name: str) -> None:
        try:
            self.transport.signalProcess(name)
        except ProcessExitedAlready:
            pass

    def server_output(self) -> str:
        return (self.server.stdout + self.server.stderr).decode("utf-8", "replace")

    async def cleanup(self) -> None:
        """
        Stop the server if it still runs (SIGTERM, SIGKILL if it lingers);
        then every process a fake started must be gone.  Stragglers are
        killed by pid, so that a failing test leaves nothing behind, and
        fail the test.
        """
        if not self.server.ended.called:
            self.signal_server("TERM")
            overdue = reactor.callLater(STOP_WITHIN, self.signal_server, "KILL")
            status = await self.server.ended
            if overdue.active():
                overdue.cancel()
            self.assertEqual(status, 0, self.server_output())
        else:
            await self.server.ended
        pids = {pid for record in self.records_of() for pid in (record["pid"], *record["grandchildren"])}
        groups = {record["pgid"] for record in self.records_of()}
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
        found = [json.loads(path.read_text()) for path in Path(self.records.path).glob("*.json")]
        return [record for record in found if name is None or record["name"] == name]

    async def all_exit(self, pids: list[int], since: float, within: float) -> None:
        """Every process of C{pids} has exited C{within} seconds after C{since}."""
        for pid in pids:
            await process_exit(pid)
        self.assertEqual([pid for pid in pids if alive(pid)], [])
        self.assertLess(reactor.seconds() - since, within)
