"""
clinvk as a daemon, with real processes (DECISIONS D7): C{twistd} with
C{--pidfile}, C{--logfile}, C{--umask}, C{--reactor} and C{--syslog};
stale pidfiles; SIGHUP reopening the log file and SIGUSR1 rotating it;
C{twist --log-format json}; and SIGHUP under the foreground runners.

Every daemon runs the venv's C{twistd} in a directory of its own, with
C{HOME} in a temporary directory and the fake CLIs first on its C{PATH},
on a free port of 127.0.0.1.  twistd's parent exits once the daemon
listens; the tests then talk to the daemon and read its pidfile and log
file, waiting on events (a process ending, a pidfd becoming readable) or
polling with a bound on the reactor clock.  Stopping a daemon checks that
no fake CLI outlived it; cleanup kills whatever a failed test left
running.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import stat
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from treq.client import HTTPClient
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import deferLater
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers

from clinvk.testing.fake_cli import install
from tests.integration._processes import (
    TIMEOUT,
    CommandProtocol,
    alive,
    free_port,
    process_exit,
    reactor,
    spawn,
)

# The Twisted runners of the environment running the tests.
BIN = Path(sys.executable).parent
TWISTD = str(BIN / "twistd")
TWIST = str(BIN / "twist")
CLINVK = str(BIN / "clinvk")

# Short grace periods, so that a stop takes seconds.
SERVER = {"host": "127.0.0.1", "kill_grace_secs": 2, "shutdown_timeout_secs": 5}

ACCESS_LINE = (
    r"request method={method} path={path} status={status} bytes=\d+ duration_ms=\d+ request_id={request_id}\b"
)


def server_environment(home: str, fakes: Path, records: str) -> dict[str, str]:
    """
    The environment of a server: none of the caller's C{CLINVK_*} settings,
    C{HOME} at C{home}, the fake CLIs of C{fakes} and then this Python's
    scripts (C{twistd}, C{twist}, C{clinvk}) first on C{PATH}, and the fakes
    recording their runs in C{records}.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("CLINVK_")}
    env.update(
        HOME=home,
        PATH=os.pathsep.join([str(fakes), str(BIN), os.environ.get("PATH", "")]),
        CLINVK_FAKE_RECORD=records,
    )
    return env


def with_umask(umask: str, command: list[str]) -> list[str]:
    """C{command}, run with the file creation mask C{umask} (octal)."""
    return ["/bin/sh", "-c", f'umask {umask} && exec "$@"', "sh", *command]


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


async def eventually(probe: Callable[[], bool], what: str, within: float = TIMEOUT) -> None:
    """Poll C{probe} until it is true, for at most C{within} seconds on the reactor clock."""
    deadline = reactor.seconds() + within
    while not probe():
        if reactor.seconds() > deadline:
            raise AssertionError(f"not within {within}s: {what}")
        await deferLater(reactor, 0.05)


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


def file_mode(path: FilePath[str]) -> int:
    return stat.S_IMODE(os.stat(path.path).st_mode)


def text_of(path: FilePath[str]) -> str:
    """The content of C{path}, or nothing while it does not exist."""
    try:
        return path.getContent().decode("utf-8")
    except FileNotFoundError:
        return ""


class DaemonTestCase(TestCase):
    """
    The harness: a directory per test with the fakes, C{HOME}, the
    configuration and twistd's run directory (where its pidfile and log
    file go), and the means to start, query and stop daemons there.
    """

    timeout = 120

    def setUp(self) -> None:
        self.base = FilePath(self.mktemp())
        self.base.makedirs()
        self.bin = install(self.base.child("bin").path)
        self.records = self.base.child("records")
        self.records.makedirs()
        self.home = self.base.child("home")
        self.home.makedirs()
        self.run_dir = self.base.child("run")
        self.run_dir.makedirs()
        self.config = self.base.child("config.yaml")
        # JSON is YAML.
        self.config.setContent(json.dumps({"server": SERVER}).encode())
        self.port = free_port()
        self.pidfile = self.run_dir.child("clinvk.pid")
        self.logfile = self.run_dir.child("clinvk.log")
        self.env = server_environment(self.home.path, self.bin, self.records.path)
        self.daemons: list[int] = []
        self.addCleanup(self.leave_nothing_behind)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def twistd_command(self, *twistd_options: str, umask: str = "022") -> list[str]:
        """C{twistd <twistd_options> clinvk} on our port and configuration, from a shell with C{umask}."""
        clinvk = ["clinvk", "--port", str(self.port), "--config", self.config.path]
        return with_umask(umask, [TWISTD, *twistd_options, *clinvk])

    async def launch(self, command: list[str]) -> CommandProtocol:
        """Run C{command} in the run directory until it ends."""
        protocol, _ = spawn(command, self.env, self.run_dir.path)
        await protocol.ended
        return protocol

    async def start_daemon(self, *twistd_options: str, log_file: bool = True, umask: str = "022") -> int:
        """
        Start a daemon with our pidfile, log file (unless not C{log_file})
        and C{twistd_options}; its parent must exit 0, and the daemon
        serve /health.

        @return: The daemon's pid, read from the pidfile.
        """
        options = ["--pidfile", self.pidfile.path]
        if log_file:
            options += ["--logfile", self.logfile.path]
        launcher = await self.launch(self.twistd_command(*options, *twistd_options, umask=umask))
        self.assertEqual(launcher.ended.result, 0, (launcher.stdout + launcher.stderr).decode())
        pid = int(self.pidfile.getContent())
        self.daemons.append(pid)
        await until_serving(self.url("/health"))
        return pid

    async def stop_daemon(self, pid: int) -> None:
        """SIGTERM the daemon: it exits, removes its pidfile, and leaves no fake CLI running."""
        os.kill(pid, signal.SIGTERM)
        await process_exit(pid)
        self.assertFalse(self.pidfile.exists())
        self.assertEqual([p for p in self.fake_pids() if alive(p)], [])

    async def prompt(
        self, text: str, request_id: str | None = None, ephemeral: bool = True
    ) -> Mapping[str, Any]:
        """Run C{text} through the fake claude; the answer must be a success."""
        body = {"backend": "claude", "prompt": text, "ephemeral": ephemeral}
        code, content = await fetch(self.url("/api/v1/prompt"), "POST", body, request_id)
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

    def fake_pids(self) -> set[int]:
        """Every process the fakes started, grandchildren included."""
        pids = set()
        for record in Path(self.records.path).glob("*.json"):
            data = json.loads(record.read_text())
            pids |= {data["pid"], *data["grandchildren"]}
        return pids

    def leave_nothing_behind(self) -> None:
        """Kill any daemon or fake a failed test left running."""
        for pid in [*self.daemons, *self.fake_pids()]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


class DaemonTests(DaemonTestCase):
    """twistd --pidfile P --logfile L clinvk: start, serve, log, stop."""

    async def test_lifecycle(self) -> None:
        """
        The parent exits 0 once the daemon listens; the pidfile holds the
        live daemon's pid (a process of its own, no longer our child); a
        prompt runs through a fake CLI; the log has the request line; on
        SIGTERM the daemon exits, removes its pidfile and leaves no CLI.
        """
        pid = await self.start_daemon()
        self.assertTrue(alive(pid))
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            self.assertIn(b"clinvk", cmdline.read().split(b"\0"))
        self.assertNotEqual(os.getsid(pid), os.getsid(0), "the daemon has a session of its own")
        # Without --umask, a daemon's files are private (twistd's default 077).
        self.assertEqual(file_mode(self.pidfile), 0o600)

        await self.prompt("hello daemon", request_id="daemon-prompt-1")
        await self.log_shows(
            ACCESS_LINE.format(method="POST", path="/api/v1/prompt", status=200, request_id="daemon-prompt-1")
        )
        [fake] = self.fake_pids()

        await self.stop_daemon(pid)
        self.assertFalse(alive(fake))
        log = text_of(self.logfile)
        for line in ("Listening endpoint=tcp:", "Received shutdown signal signal=SIGTERM", "Server stopped"):
            self.assertIn(line, log)
        with self.assertRaises(ConnectionRefusedError):
            await fetch(self.url("/health"))

    async def test_stale_pidfile(self) -> None:
        """A pidfile naming a process that is gone is replaced, as twistd does."""
        finished, transport = spawn([sys.executable, "-c", "pass"], self.env, self.run_dir.path)
        gone = transport.pid
        await finished.ended
        self.pidfile.setContent(str(gone).encode())
        pid = await self.start_daemon()
        self.assertNotEqual(pid, gone)
        await self.log_shows(re.escape(f"Removing stale pidfile {self.pidfile.path}"))
        await self.stop_daemon(pid)

    async def test_live_pidfile(self) -> None:
        """
        A pidfile naming a live process makes twistd refuse to start, with
        its message and status 1; the pidfile is left alone.
        """
        # The test's own process stands for another server.
        live = os.getpid()
        self.pidfile.setContent(str(live).encode())
        launcher = await self.launch(
            self.twistd_command("--pidfile", self.pidfile.path, "--logfile", self.logfile.path)
        )
        self.assertEqual(launcher.ended.result, 1)
        self.assertIn(f"Another twistd server is running, PID {live}".encode(), launcher.stderr)
        self.assertEqual(self.pidfile.getContent(), str(live).encode())
        self.assertFalse(self.logfile.exists())
        with self.assertRaises(ConnectionRefusedError):
            await fetch(self.url("/health"))

    async def test_bad_configuration(self) -> None:
        """
        A configuration the server rejects stops twistd before it forks:
        status 1, the reason on the last line, no pidfile and no log file.
        """
        self.config.setContent(b"unified_flags:\n  approval_mode: sometimes\n")
        launcher = await self.launch(
            self.twistd_command("--pidfile", self.pidfile.path, "--logfile", self.logfile.path)
        )
        self.assertEqual(launcher.ended.result, 1)
        last = launcher.stdout.decode().strip().splitlines()[-1]
        self.assertIn(
            'configuration has 1 error(s): config validation: unified_flags.approval_mode: invalid mode "sometimes"',
            last,
        )
        self.assertIn(f"[config file: {self.config.path}]", last)
        self.assertEqual(self.run_dir.listdir(), [])

    async def test_port_in_use(self) -> None:
        """
        A port in use: twistd's parent exits 1 with twistd's message, the
        log file has the reason, and no pidfile is left.
        """
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", self.port))
            taken.listen()
            options = ["--pidfile", self.pidfile.path, "--logfile", self.logfile.path]
            launcher = await self.launch(self.twistd_command(*options))
        self.assertEqual(launcher.ended.result, 1)
        self.assertTrue(launcher.stderr.startswith(b"An error has occurred: "), launcher.stderr)
        self.assertIn(b"CannotListenError", launcher.stderr)
        # The daemon writes the traceback as it ends, maybe after the parent is gone.
        await self.log_shows(
            re.escape(f"Couldn't listen on 127.0.0.1:{self.port}: [Errno 98] Address already in use.")
        )
        await eventually(lambda: not self.pidfile.exists(), "the daemon removes its pidfile")


class UmaskTests(DaemonTestCase):
    """
    --umask: the files the daemon makes get that mask.  twistd opens its
    log file before it applies the mask, so that file gets the mask of the
    shell that started it (022 here) until it is reopened.  Session files
    are private whatever the mask.
    """

    async def check_modes(self, umask: str, expected: int) -> None:
        pid = await self.start_daemon("--umask", umask)
        answer = await self.prompt("remember this", ephemeral=False)
        self.assertEqual(file_mode(self.pidfile), expected)
        self.assertEqual(file_mode(self.logfile), 0o644)
        sessions = self.home.descendant([".clinvk", "sessions"])
        self.assertEqual(file_mode(sessions), 0o700)
        files = sessions.children()
        self.assertIn(answer["session_id"], " ".join(f.basename() for f in files))
        self.assertEqual({f.basename(): file_mode(f) for f in files}, {f.basename(): 0o600 for f in files})
        # A log file reopened after rotation is made by the daemon: its mask applies.
        self.logfile.moveTo(self.run_dir.child("clinvk.log.old"))
        os.kill(pid, signal.SIGHUP)
        await self.log_shows("Reopened the log file")
        self.assertEqual(file_mode(self.logfile), expected)
        await self.stop_daemon(pid)

    async def test_umask_077(self) -> None:
        """--umask 077: the pidfile and a reopened log file are 0600."""
        await self.check_modes("077", 0o600)

    async def test_umask_027(self) -> None:
        """--umask 027 is honoured, not twistd's default 077: 0640."""
        await self.check_modes("027", 0o640)


class ReactorTests(DaemonTestCase):
    """--reactor chooses the reactor the daemon runs on."""

    async def test_poll_and_select(self) -> None:
        """With --reactor poll or select, the log names that reactor, and CLIs run on it."""
        for name, reactor_class in [
            ("poll", "pollreactor.PollReactor"),
            ("select", "selectreactor.SelectReactor"),
        ]:
            pid = await self.start_daemon("--reactor", name)
            await self.log_shows(re.escape(f"reactor class: twisted.internet.{reactor_class}."))
            await self.prompt(f"on the {name} reactor")
            await self.stop_daemon(pid)
            self.logfile.remove()


class SignalTests(DaemonTestCase):
    """SIGHUP reopens the log file (for logrotate); SIGUSR1 rotates it as twistd does."""

    async def test_sighup_reopens(self) -> None:
        """
        Move the log file away as logrotate does, then SIGHUP: lines logged
        in between still reach the moved file, and after the signal a fresh
        file at the original path gets the new lines.  The daemon runs on.
        """
        pid = await self.start_daemon()
        request_line = ACCESS_LINE.format(method="GET", path="/health", status=200, request_id="{}")
        await fetch(self.url("/health"), request_id="before-move")
        await self.log_shows(request_line.format("before-move"))
        moved = self.run_dir.child("clinvk.log.1")
        self.logfile.moveTo(moved)
        await fetch(self.url("/health"), request_id="while-moved")
        await self.log_shows(request_line.format("while-moved"), moved)

        os.kill(pid, signal.SIGHUP)
        await self.log_shows(re.escape(f"Reopened the log file path={self.logfile.path}"))
        await fetch(self.url("/health"), request_id="after-reopen")
        await self.log_shows(request_line.format("after-reopen"))
        self.assertTrue(alive(pid))

        old, new = text_of(moved), text_of(self.logfile)
        self.assertIn("Received SIGHUP, reopening the log file", old)
        for request_id in ("before-move", "while-moved"):
            self.assertIn(f"request_id={request_id}", old)
            self.assertNotIn(f"request_id={request_id}", new)
        self.assertNotIn("after-reopen", old)
        await self.stop_daemon(pid)
        self.assertIn("Server stopped", text_of(self.logfile))

    async def test_sigusr1_rotates(self) -> None:
        """SIGUSR1 keeps twistd's meaning: the log file is renamed .1 and a new one begun."""
        pid = await self.start_daemon()
        await fetch(self.url("/health"), request_id="before-rotation")
        await self.log_shows("request_id=before-rotation")
        os.kill(pid, signal.SIGUSR1)
        rotated = self.run_dir.child("clinvk.log.1")
        await eventually(rotated.exists, "twistd renames the log file")
        await fetch(self.url("/health"), request_id="after-rotation")
        await self.log_shows("request_id=after-rotation")
        self.assertIn("request_id=before-rotation", text_of(rotated))
        self.assertNotIn("request_id=before-rotation", text_of(self.logfile))
        await self.stop_daemon(pid)


class _SyslogReceiver(DatagramProtocol):
    """Collects the datagrams that reach a unix socket standing in for /dev/log."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:  # noqa: N802 - Twisted's name
        self.messages.append(datagram)


# Run a command in a private mount namespace whose /dev is a copy of the
# machine's (the usual device nodes, bound in) with /dev/log a link to the
# socket given: syslog(3) always writes to /dev/log, and this way neither
# the machine's /dev nor its syslog is touched.
PRIVATE_DEV_LOG = """\
set -e
socket=$1 devices=$2
shift 2
mount --bind /dev "$devices"
mount -t tmpfs -o mode=0755 tmpfs /dev
for node in null zero full random urandom; do
    touch "/dev/$node"
    mount --bind "$devices/$node" "/dev/$node"
done
ln -s "$socket" /dev/log
exec "$@"
"""


class SyslogTests(DaemonTestCase):
    """twistd --syslog --prefix clinvk: no log file; the messages go to syslog."""

    async def test_syslog_without_log_file(self) -> None:
        """The daemon starts, serves and stops cleanly, and writes no log file."""
        pid = await self.start_daemon("--syslog", "--prefix", "clinvk", log_file=False)
        await self.prompt("logged to syslog")
        self.assertEqual(self.run_dir.listdir(), ["clinvk.pid"])
        await self.stop_daemon(pid)
        self.assertEqual(self.run_dir.listdir(), [])

    async def test_syslog_messages(self) -> None:
        """
        The messages reach syslog with the prefix: the daemon runs where
        /dev/log is a socket of the test's (a private mount namespace, so
        this needs root or user namespaces and is skipped without them).
        """
        unshare = shutil.which("unshare")
        if unshare is None:
            self.skipTest("unshare(1) is not installed")
        # AF_UNIX paths are short; trial's temporary directory may be too deep.
        short = tempfile.mkdtemp(prefix="clinvk-syslog-")
        self.addCleanup(shutil.rmtree, short)
        socket_path = os.path.join(short, "log")
        receiver = _SyslogReceiver()
        port = reactor.listenUNIXDatagram(socket_path, receiver)
        self.addCleanup(port.stopListening)
        devices = self.base.child("devices")
        devices.makedirs()

        def in_namespace(command: list[str]) -> list[str]:
            return [
                unshare,
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                PRIVATE_DEV_LOG,
                "sh",
                socket_path,
                devices.path,
                *command,
            ]

        probe = await self.launch(in_namespace(["true"]))
        if probe.ended.result != 0:
            self.skipTest(f"cannot make a private mount namespace here: {probe.stderr.decode().strip()}")

        options = ["--pidfile", self.pidfile.path, "--syslog", "--prefix", "clinvk"]
        launcher = await self.launch(in_namespace(self.twistd_command(*options)))
        self.assertEqual(launcher.ended.result, 0, (launcher.stdout + launcher.stderr).decode())
        pid = int(self.pidfile.getContent())
        self.daemons.append(pid)
        await until_serving(self.url("/health"))
        await fetch(self.url("/health"), request_id="to-syslog")

        def logged(text: str) -> bool:
            return any(b" clinvk: " in m and text.encode() in m for m in receiver.messages)

        await eventually(lambda: logged("request_id=to-syslog"), "the request line reaches syslog")
        self.assertTrue(logged("Listening endpoint=tcp:"), receiver.messages)
        await self.stop_daemon(pid)
        await eventually(lambda: logged("Server stopped"), "the last lines reach syslog")
        self.assertEqual(self.run_dir.listdir(), [])


class ForegroundTests(DaemonTestCase):
    """twist and clinvk serve: JSON logs, and SIGHUP does not kill them."""

    def start(self, command: list[str]) -> tuple[CommandProtocol, Any]:
        return background(self, command, self.env, self.run_dir.path)

    async def test_twist_json(self) -> None:
        """
        twist --log-format json writes one JSON object per line (each
        after an RS character, RFC 7464); the request event and the
        listening event carry their fields as keys.  SIGHUP is logged and
        the server runs on; SIGTERM stops it with status 0.
        """
        command = [
            TWIST,
            "--log-format",
            "json",
            "clinvk",
            "--port",
            str(self.port),
            "--config",
            self.config.path,
        ]
        protocol, transport = self.start(command)
        await protocol.wait_for(rf'"address": "127\.0\.0\.1:{self.port}"')
        await self.prompt("in json", request_id="json-1")
        await protocol.wait_for(r'"request_id": "json-1"')
        transport.signalProcess("HUP")
        await protocol.wait_for("Received SIGHUP, no log file to reopen")
        await until_serving(self.url("/health"))
        transport.signalProcess("TERM")
        self.assertEqual(await protocol.ended, 0, protocol.stderr)

        lines = protocol.stdout.decode().split("\n")
        self.assertEqual(lines[-1], "")
        events = []
        for line in lines[:-1]:
            self.assertTrue(line.startswith("\x1e"), line)
            event = json.loads(line[1:])
            self.assertIsInstance(event, dict)
            events.append(event)
        [request] = [e for e in events if e.get("request_id") == "json-1"]
        self.assertEqual(
            {key: request[key] for key in ("method", "path", "status")},
            {"method": "POST", "path": "/api/v1/prompt", "status": 200},
        )
        self.assertIsInstance(request["bytes"], int)
        self.assertIsInstance(request["duration_ms"], int)
        [listening] = [e for e in events if e.get("log_format", "").startswith("Listening ")]
        self.assertEqual(
            (listening["endpoint"], listening["address"]),
            (f"tcp:{self.port}:interface=127.0.0.1", f"127.0.0.1:{self.port}"),
        )
        formats = [e.get("log_format") for e in events]
        self.assertIn("Received SIGHUP, no log file to reopen", formats)
        self.assertIn("Server stopped", formats)

    async def test_twist_ends_on_sigusr1(self) -> None:
        """
        SIGUSR1 means something only to twistd with a log file: twist keeps
        the signal's default action, as the operations page warns.
        """
        protocol, transport = self.start(
            [TWIST, "clinvk", "--port", str(self.port), "--config", self.config.path]
        )
        await until_serving(self.url("/health"))
        transport.signalProcess(signal.SIGUSR1)
        self.assertEqual(await protocol.ended, -signal.SIGUSR1)

    async def test_serve_survives_sighup(self) -> None:
        """clinvk serve logs SIGHUP and keeps serving."""
        protocol, transport = self.start(
            [CLINVK, "serve", "--port", str(self.port), "--config", self.config.path]
        )
        await protocol.wait_for("Press Ctrl\\+C to stop")
        transport.signalProcess("HUP")
        await protocol.wait_for('msg="Received SIGHUP, no log file to reopen"')
        await self.prompt("after a hangup")
        transport.signalProcess("TERM")
        self.assertEqual(await protocol.ended, 0, protocol.stderr)
