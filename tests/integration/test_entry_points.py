"""
Real-process tests of the three ways to start clinvk: C{clinvk serve},
C{twist clinvk} and C{twistd … clinvk}.
"""

from __future__ import annotations

import json
import os
import signal
import socket
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from tests.integration._processes import (
    CommandProtocol,
    free_port,
    get_json,
    process_exit,
    python_command,
    spawn,
)
from tests.test_tap import EXPECTED_BANNER


class _EntryPointTestCase(TestCase):
    def setUp(self) -> None:
        self.home = FilePath(self.mktemp())
        self.home.makedirs()
        self.config = self.home.child("config.yaml")
        self.config.setContent(b"server:\n  host: 127.0.0.1\n")
        # HOME points at an empty directory: the user's own configuration
        # must not leak into the test.
        self.env = {**os.environ, "HOME": self.home.path}

    def start(self, *args: str) -> tuple[CommandProtocol, Any]:
        protocol, transport = spawn(python_command(*args), self.env, self.home.path)

        def kill_leftover() -> Deferred[int] | None:
            if protocol.ended.called:
                return None
            transport.signalProcess("KILL")
            return protocol.ended

        self.addCleanup(kill_leftover)
        return protocol, transport

    async def run_on_taken_port(self, *args: str) -> CommandProtocol:
        """Run a command given C{--port} of a port already in use; wait for its end."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            protocol, _ = self.start(*args, "--port", str(port), "--config", self.config.path)
            await protocol.ended
        return protocol


class ServeTests(_EntryPointTestCase):
    """clinvk serve in the foreground."""

    async def test_health_then_sigterm(self) -> None:
        """serve binds, prints the banner, answers /health and exits 0 on SIGTERM."""
        port = free_port()
        protocol, transport = self.start(
            "-m", "clinvk", "serve", "--port", str(port), "--config", self.config.path
        )
        await protocol.wait_for("Press Ctrl\\+C to stop")
        code, body = await get_json(f"http://127.0.0.1:{port}/health")
        self.assertEqual(code, 200)
        self.assertEqual(body["version"], "1.0.0")
        transport.signalProcess("TERM")
        status = await protocol.ended
        self.assertEqual(status, 0, protocol.stderr)
        output = protocol.stdout.decode("utf-8")
        self.assertIn(EXPECTED_BANNER.replace("8080", str(port)) + "\n", output)
        for message in ('msg="Starting server"', 'msg="Received shutdown signal"', 'msg="Server stopped"'):
            self.assertIn(message, output)
        self.assertRegex(
            output, r"msg=request method=GET path=/health status=200 bytes=\d+ duration_ms=\d+ request_id="
        )
        # The banner comes after the server is listening.
        self.assertLess(output.index("Listening"), output.index("clinvk API server starting"))

    async def test_sigint(self) -> None:
        """SIGINT (Ctrl+C) stops serve cleanly too."""
        port = free_port()
        protocol, transport = self.start(
            "-m", "clinvk", "serve", "-p", str(port), "--config", self.config.path
        )
        await protocol.wait_for("Press Ctrl\\+C to stop")
        transport.signalProcess("INT")
        self.assertEqual(await protocol.ended, 0)

    async def test_port_in_use(self) -> None:
        """A port in use: 'Error: server error: …' on stderr, exit 1, no banner."""
        protocol = await self.run_on_taken_port("-m", "clinvk", "serve")
        self.assertEqual(protocol.ended.result, 1)
        self.assertTrue(protocol.stderr.startswith(b"Error: server error: "), protocol.stderr)
        self.assertIn(b"Address already in use", protocol.stderr)
        self.assertEqual(protocol.stderr.count(b"\n"), 1)
        self.assertNotIn(b"clinvk API server starting", protocol.stdout)

    async def test_bad_config(self) -> None:
        """An invalid configuration stops start-up with one line and exit 1."""
        self.config.setContent(b"unified_flags:\n  approval_mode: sometimes\n")
        protocol, _ = self.start(
            "-m", "clinvk", "serve", "--port", str(free_port()), "--config", self.config.path
        )
        self.assertEqual(await protocol.ended, 1)
        self.assertEqual(
            protocol.stderr.decode(),
            "Error: configuration has 1 error(s): config validation: unified_flags.approval_mode: "
            'invalid mode "sometimes" (valid: default, auto, none, always) '
            f"[config file: {self.config.path}]\n",
        )
        self.assertEqual(protocol.stdout, b"")


class TwistTests(_EntryPointTestCase):
    """twist clinvk, the canonical start."""

    async def test_listen_json_logs_and_stop(self) -> None:
        """
        --listen on an ephemeral port, JSON access logs with the fields of
        docs/design/http.md#access-log, and a clean exit 0 on SIGTERM.
        """
        protocol, transport = self.start(
            "-m",
            "twisted",
            "--log-format",
            "json",
            "clinvk",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--config",
            self.config.path,
        )
        listening = await protocol.wait_for(r'"address": "127\.0\.0\.1:(\d+)"')
        port = int(listening.group(1))
        code, body = await get_json(f"http://127.0.0.1:{port}/health")
        self.assertEqual((code, body["status"] in ("ok", "degraded")), (200, True))
        await protocol.wait_for(r'"path": "/health"')
        transport.signalProcess("TERM")
        self.assertEqual(await protocol.ended, 0, protocol.stderr)
        events = [json.loads(line) for line in protocol.stdout.decode().splitlines() if line.strip()]
        [access] = [e for e in events if e.get("log_namespace", "").endswith("AccessLog")]
        for key, value in {"method": "GET", "path": "/health", "status": 200}.items():
            self.assertEqual(access[key], value)
        for key in ("bytes", "duration_ms", "request_id"):
            self.assertIn(key, access)
        self.assertIn("Server stopped", [e.get("log_format") for e in events])

    async def test_port_in_use(self) -> None:
        """twist reports a port in use in one line, without a traceback."""
        protocol = await self.run_on_taken_port("-m", "twisted", "clinvk")
        self.assertEqual(protocol.ended.result, 1)
        self.assertTrue(protocol.stderr.startswith(b"Error: server error: Couldn't listen"), protocol.stderr)
        self.assertNotIn(b"Traceback", protocol.stderr)


class TwistdTests(_EntryPointTestCase):
    """twistd daemonizes clinvk with a pidfile and a logfile."""

    async def test_daemon(self) -> None:
        """The daemon serves, writes its pidfile and log, and removes the pidfile on SIGTERM."""
        port = free_port()
        pidfile = self.home.child("clinvk.pid")
        logfile = self.home.child("clinvk.log")
        launcher, _ = self.start(
            "-c",
            "from twisted.scripts.twistd import run; run()",
            "--pidfile",
            pidfile.path,
            "--logfile",
            logfile.path,
            "clinvk",
            "--port",
            str(port),
            "--config",
            self.config.path,
        )
        # twistd's parent returns once the daemon has started (and bound).
        self.assertEqual(await launcher.ended, 0, launcher.stderr)
        pid = int(pidfile.getContent())
        self.addCleanup(_kill_quietly, pid)
        code, _ = await get_json(f"http://127.0.0.1:{port}/health")
        self.assertEqual(code, 200)
        os.kill(pid, signal.SIGTERM)
        await process_exit(pid)
        self.assertFalse(pidfile.exists())
        log = logfile.getContent().decode("utf-8")
        self.assertIn("request method=GET path=/health status=200", log)
        self.assertIn("Server stopped", log)


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
