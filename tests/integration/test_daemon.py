"""
clinvk as a daemon, with real processes (docs/design/decisions.md#d7-twisted-entry-points): C{twistd} with
C{--pidfile}, C{--logfile}, C{--umask}, C{--reactor} and C{--syslog};
stale pidfiles; SIGHUP reopening the log file and SIGUSR1 rotating it;
C{twist --log-format json}; SIGHUP under the foreground runners; and the
commands of the README's "Running it" section, as written.

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

import datetime
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    UNIXClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SkipTest
from twisted.web.client import URI, Agent, HTTPConnectionPool, readBody
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from clinvk.testing.fake_cli import install
from tests._docs import README, section
from tests.integration._daemon import (
    ACCESS_LINE,
    BIN,
    CLINVK,
    TWIST,
    TWISTD,
    DaemonHarness,
    background,
    fetch,
    text_of,
    until_serving,
)
from tests.integration._processes import (
    TIMEOUT,
    CommandProtocol,
    alive,
    eventually,
    free_port,
    process_exit,
    reactor,
    spawn,
)

# Short grace periods, so that a stop takes seconds.
SERVER = {"host": "127.0.0.1", "kill_grace_secs": 2, "shutdown_timeout_secs": 5}


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


def file_mode(path: FilePath[str]) -> int:
    return stat.S_IMODE(os.stat(path.path).st_mode)


class DaemonTestCase(DaemonHarness):
    """
    The harness: a directory per test with the fakes, C{HOME}, the
    configuration and twistd's run directory (where its pidfile and log
    file go), and the means to start, query and stop daemons there.
    """

    def setUp(self) -> None:
        self.base = FilePath(self.mktemp())
        self.base.makedirs()
        self.bin = install(self.base.child("bin").path)
        self.records_dir = self.base.child("records")
        self.records_dir.makedirs()
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
        self.env = server_environment(self.home.path, self.bin, self.records_dir.path)
        self.daemons = []
        self.addCleanup(self.leave_nothing_behind)

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
        status 1, the reason as the one line on stderr, nothing on stdout,
        no pidfile and no log file.
        """
        self.config.setContent(b"unified_flags:\n  approval_mode: sometimes\n")
        launcher = await self.launch(
            self.twistd_command("--pidfile", self.pidfile.path, "--logfile", self.logfile.path)
        )
        self.assertEqual(launcher.ended.result, 1)
        self.assertEqual(
            launcher.stderr.decode(),
            "Error: configuration has 1 error(s): config validation: unified_flags.approval_mode: "
            'invalid mode "sometimes" (valid: default, auto, none, always) '
            f"[config file: {self.config.path}]\n",
        )
        self.assertEqual(launcher.stdout, b"")
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


def running_it() -> str:
    """The "Running it" section of the README."""
    return section(README.read_text("utf-8"), "Running it")


def readme_command(how: str) -> str:
    """The command of the row C{how} of the README's table of ways to run clinvk."""
    [command] = [
        match.group(1) for match in re.finditer(rf"^\| {re.escape(how)} \| `([^`]+)` \|$", running_it(), re.M)
    ]
    return command


def listen_examples() -> list[str]:
    """The endpoints the README gives as examples of C{--listen}."""
    match = re.search(r"`--listen` takes any Twisted server endpoint \((.*?)\)", running_it(), re.S)
    assert match is not None, "README no longer gives --listen examples"
    return re.findall(r"`([^`]+)`", match.group(1))


def free_ipv6_port() -> int:
    """A TCP port that was free on ::1 a moment ago; skip the test without IPv6 loopback."""
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            port: int = probe.getsockname()[1]
            return port
    except OSError as e:
        raise SkipTest(f"no IPv6 loopback (::1) here: {e}") from None


def write_self_signed(key: FilePath[str], certificate: FilePath[str]) -> None:
    """A key and a certificate for 127.0.0.1, signed by that key, for a day."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    signed = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(private_key, hashes.SHA256())
    )
    key.setContent(
        private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    certificate.setContent(signed.public_bytes(serialization.Encoding.PEM))


@implementer(IAgentEndpointFactory)
class _OneEndpoint:
    """Sends every request of an L{Agent} to one endpoint."""

    def __init__(self, endpoint: IStreamClientEndpoint) -> None:
        self._endpoint = endpoint

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:  # noqa: N802 - Twisted's name
        return self._endpoint


async def health_through(endpoint: IStreamClientEndpoint, url: bytes) -> dict[str, Any]:
    """GET C{url} through C{endpoint}; the answer must be a 200 with a JSON body."""
    agent = Agent.usingEndpointFactory(
        reactor, _OneEndpoint(endpoint), pool=HTTPConnectionPool(reactor, persistent=False)
    )
    response = await agent.request(b"GET", url).addTimeout(TIMEOUT, reactor)
    body = await readBody(response)
    if response.code != 200:
        raise AssertionError(f"{url!r} answered {response.code}: {body!r}")
    health: dict[str, Any] = json.loads(body)
    return health


class ReadmeRunningItTests(DaemonTestCase):
    """
    The commands of the README's "Running it" section, as written but for
    the ports: its daemon command, and each of its C{--listen} examples.
    """

    async def test_daemon_command(self) -> None:
        """
        The daemon command, run in a directory of its own with C{HOME} set
        and no configuration file: twistd returns 0, the daemon writes
        clinvk.pid and clinvk.log there, serves, and on SIGTERM stops and
        removes its pidfile.
        """
        shown = readme_command("As a daemon")
        command, replaced = re.subn(r"--port 8080\b", f"--port {self.port}", shown)
        self.assertEqual(replaced, 1, shown)
        launcher = await self.launch(shlex.split(command))
        self.assertEqual(launcher.ended.result, 0, (launcher.stdout + launcher.stderr).decode())
        self.assertEqual(sorted(self.run_dir.listdir()), ["clinvk.log", "clinvk.pid"])
        pid = int(self.pidfile.getContent())
        self.daemons.append(pid)
        await until_serving(self.url("/health"))
        await self.prompt("from the README", request_id="readme-1")
        await self.log_shows(
            ACCESS_LINE.format(method="POST", path="/api/v1/prompt", status=200, request_id="readme-1")
        )
        self.assertIn(f"Listening endpoint=tcp:{self.port}:interface=127.0.0.1", text_of(self.logfile))
        await self.stop_daemon(pid)
        self.assertIn("Server stopped", text_of(self.logfile))

    def listen_example(self, kind: str) -> str:
        """The README's C{--listen} example of endpoint type C{kind}."""
        [endpoint] = [e for e in listen_examples() if e.startswith(f"{kind}:")]
        return endpoint

    async def serve_on(self, endpoints: list[str], directory: FilePath[str]) -> tuple[CommandProtocol, Any]:
        """Start C{twist clinvk} with a C{--listen} for each of C{endpoints}, in C{directory}; wait until it listens on all."""
        command = [TWIST, "--log-format", "text", "clinvk", "--config", self.config.path]
        for endpoint in endpoints:
            command += ["--listen", endpoint]
        protocol, transport = background(self, command, self.env, directory.path)
        for endpoint in endpoints:
            await protocol.wait_for(re.escape(f"Listening endpoint={endpoint} "))
        return protocol, transport

    async def test_listen_unix_and_ssl(self) -> None:
        """
        The unix: and ssl: examples, both at once (C{--listen} repeats):
        a socket file at a path of ours instead of /run, and TLS with
        key.pem and cert.pem of the current directory, as written; each
        serves /health, and SIGTERM stops the server with status 0.
        """
        unix = self.listen_example("unix")
        ssl = self.listen_example("ssl")
        self.assertEqual(unix, "unix:/run/clinvk.sock")
        # AF_UNIX paths are short; trial's temporary directory may be too deep.
        short = tempfile.mkdtemp(prefix="clinvk-listen-")
        self.addCleanup(shutil.rmtree, short)
        socket_path = os.path.join(short, "clinvk.sock")
        tls_port = free_port()
        local_ssl, replaced = re.subn(r"^ssl:8443:", f"ssl:{tls_port}:", ssl)
        self.assertEqual(replaced, 1, ssl)
        directory = self.base.child("tls")
        directory.makedirs()
        write_self_signed(directory.child("key.pem"), directory.child("cert.pem"))
        self.assertIn("privateKey=key.pem:certKey=cert.pem", local_ssl)

        protocol, transport = await self.serve_on([f"unix:{socket_path}", local_ssl], directory)
        through_unix = await health_through(
            UNIXClientEndpoint(reactor, socket_path), b"http://localhost/health"
        )
        trust = Certificate.loadPEM(directory.child("cert.pem").getContent())
        tls = wrapClientTLS(
            optionsForClientTLS("127.0.0.1", trustRoot=trust),
            TCP4ClientEndpoint(reactor, "127.0.0.1", tls_port),
        )
        through_tls = await health_through(tls, f"https://127.0.0.1:{tls_port}/health".encode())
        self.assertEqual((through_unix["version"], through_tls["version"]), ("1.0.0", "1.0.0"))
        transport.signalProcess("TERM")
        self.assertEqual(await protocol.ended, 0, protocol.stderr)
        self.assertFalse(os.path.exists(socket_path))

    async def test_listen_ipv6(self) -> None:
        """The tcp: example on ::1 (where there is IPv6 loopback) serves /health."""
        port = free_ipv6_port()
        tcp = self.listen_example("tcp")
        local_tcp, replaced = re.subn(r"^tcp:8080:", f"tcp:{port}:", tcp)
        self.assertEqual((replaced, local_tcp), (1, f"tcp:{port}:interface=\\:\\:1"))
        protocol, transport = await self.serve_on([local_tcp], self.run_dir)
        health = await health_through(
            TCP6ClientEndpoint(reactor, "::1", port), f"http://[::1]:{port}/health".encode()
        )
        self.assertEqual(health["version"], "1.0.0")
        transport.signalProcess("TERM")
        self.assertEqual(await protocol.ended, 0, protocol.stderr)
