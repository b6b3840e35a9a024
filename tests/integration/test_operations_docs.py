"""
The examples of C{docs/operations.md}, run for real: every file under
C{docs/examples/operations/} is executed or applied here, against real
clinvk servers with the fake CLIs.

The examples name the paths of an installation (C{/opt/clinvk/bin},
C{/etc/clinvk}, C{/run/clinvk}, C{/var/log/clinvk}, C{/var/lib/clinvk},
C{/etc/nginx/tls}) and port 8080; L{Installation.localize} maps them into a temporary
directory and a free port, and changes nothing else.  The fake CLIs are
installed where the systemd unit looks for the service account's CLIs
(C{/var/lib/clinvk/.local/bin}), and the scripts run with the system
C{PATH} plus that directory only, so they work from their absolute paths.

nginx, openssl, logrotate and systemd-analyze are used when installed;
the tests that need them say so when they skip.  CI installs nginx,
openssl and logrotate and sets C{CLINVK_REQUIRE_SYSTEM_TOOLS=1}: there
the tests that need them fail rather than skip without them.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from http.client import HTTPSConnection
from pathlib import Path
from typing import Any, TypeVar

import yaml

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.threads import deferToThread
from twisted.python.filepath import FilePath

from clinvk.testing.fake_cli import install
from tests._docs import DOCS, EXAMPLES, ROOT
from tests.integration._daemon import (
    ACCESS_LINE,
    BIN,
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
    require_tool,
    spawn,
)

T = TypeVar("T")

# The files of docs/examples/operations/, named as the docs checker wants.
CONFIG = "operations/config.yaml"
START = "operations/start.sh"
STOP = "operations/stop.sh"
REOPEN_LOG = "operations/reopen-log.sh"
ROTATE_LOG = "operations/rotate-log.sh"
TWIST_JSON = "operations/twist-json.sh"
JSON_LINES = "operations/json-lines.sh"
SYSLOG = "operations/syslog.sh"
METRICS = "operations/metrics.sh"
PROMETHEUS = "operations/prometheus.yml"
LOGROTATE = "operations/logrotate.conf"
SYSTEMD_UNIT = "operations/clinvk.service"
NGINX = "operations/nginx.conf"

# How long a client waits for one answer through the proxy.
CLIENT_TIMEOUT = 20.0

# How long stop.sh may take to find that no daemon runs: it only reads
# the pidfile and tries one signal.
STALE_STOP_SECS = 10

# How a streamed answer through nginx is made: the fake CLI sends its
# first piece, then holds the rest back until the client has received that
# piece (and releases it).  An unbuffered proxy passes the piece on at
# once; a buffering one never would, as the answer does not end first.
HELD_STREAM = "#fake chunks=3 hold=rest"


def example(name: str) -> str:
    return (EXAMPLES / name).read_text()


class Installation:
    """
    The directories of an installation, in a temporary directory: what
    the examples' absolute paths stand for in a test.
    """

    def __init__(self, root: FilePath[str], port: int) -> None:
        self.root = root
        self.port = port
        self.etc = root.child("etc")
        self.run = root.child("run")
        self.log = root.child("log")
        self.home = root.child("home")
        self.tls = root.child("tls")
        self.records = root.child("records")
        for directory in (self.etc, self.run, self.log, self.home, self.tls, self.records):
            directory.makedirs()
        self.fakes = install(self.home.descendant([".local", "bin"]).path)
        self.config = self.etc.child("config.yaml")
        self.pidfile = self.run.child("clinvk.pid")
        self.logfile = self.log.child("clinvk.log")

    def localize(self, text: str) -> str:
        """C{text} with the installation's paths and port 8080 mapped to this one's."""
        for installed, here in (
            ("/opt/clinvk/bin", str(BIN)),
            ("/etc/clinvk", self.etc.path),
            ("/run/clinvk", self.run.path),
            ("/var/log/clinvk", self.log.path),
            ("/var/lib/clinvk", self.home.path),
            ("/etc/nginx/tls", self.tls.path),
        ):
            text = text.replace(installed, here)
        return re.sub(r"\b8080\b", str(self.port), text)

    def environment(self) -> dict[str, str]:
        """
        The environment of the scripts: the system C{PATH} after the
        account's CLIs, and none of the caller's C{CLINVK_*} settings.
        """
        env = {key: value for key, value in os.environ.items() if not key.startswith("CLINVK_")}
        system_path = os.pathsep.join(
            p for p in os.environ.get("PATH", "").split(os.pathsep) if p != str(BIN)
        )
        env.update(
            HOME=self.home.path,
            PATH=f"{self.fakes}{os.pathsep}{system_path}",
            CLINVK_FAKE_RECORD=self.records.path,
            CLINVK_URL=f"http://127.0.0.1:{self.port}",
        )
        return env


class OperationsTestCase(DaemonHarness):
    """An installation per test, its configuration the example's, and the means to run the examples."""

    def setUp(self) -> None:
        self.port = free_port()
        self.installed = Installation(FilePath(self.mktemp()), self.port)
        self.installed.config.setContent(self.installed.localize(example(CONFIG)).encode())
        self.env = self.installed.environment()
        self.records_dir = self.installed.records
        self.logfile = self.installed.logfile
        self.daemons = []
        self.addCleanup(self.leave_nothing_behind)

    def script(self, name: str) -> FilePath[str]:
        """The example C{name}, localized, as a file of the installation."""
        path = self.installed.root.child(Path(name).name)
        path.setContent(self.installed.localize(example(name)).encode())
        return path

    async def run_command(
        self, command: list[str], env: Mapping[str, str] | None = None, within: float = TIMEOUT
    ) -> CommandProtocol:
        """Run C{command} in the account's home until it ends, for at most C{within} seconds."""
        protocol, _ = spawn(command, dict(env or self.env), self.installed.home.path, within)
        await protocol.ended
        return protocol

    async def run_script(self, name: str, within: float = TIMEOUT) -> CommandProtocol:
        """Run the example script C{name} with sh until it ends, for at most C{within} seconds."""
        return await self.run_command(["/bin/sh", self.script(name).path], within=within)

    def start(self, name: str) -> tuple[CommandProtocol, Any]:
        """Start the example script C{name}, a foreground server, in the background of the test."""
        return background(self, ["/bin/sh", self.script(name).path], self.env, self.installed.home.path)

    async def succeeds(self, name: str) -> CommandProtocol:
        """Run the example script C{name}: it must exit 0."""
        protocol = await self.run_script(name)
        self.assertEqual(protocol.ended.result, 0, (protocol.stdout + protocol.stderr).decode())
        return protocol

    async def start_daemon(self, script: str = START) -> int:
        """Start the daemon with C{script}; return its pid once it serves."""
        await self.succeeds(script)
        pid = int(self.installed.pidfile.getContent())
        self.daemons.append(pid)
        await until_serving(self.url("/health"))
        return pid

    async def stop_daemon(self, pid: int) -> None:
        """Stop it with the stop script: the daemon is gone when the script returns."""
        await self.succeeds(STOP)
        await process_exit(pid)
        self.assertFalse(self.installed.pidfile.exists())


class DaemonScriptTests(OperationsTestCase):
    """start.sh, stop.sh, reopen-log.sh, rotate-log.sh and syslog.sh."""

    async def test_start_and_stop(self) -> None:
        """start.sh returns once the daemon serves; stop.sh once it has exited."""
        pid = await self.start_daemon()
        await self.prompt("hello operations")
        await self.log_shows(
            ACCESS_LINE.format(method="POST", path="/api/v1/prompt", status=200, request_id=r"\S+")
        )
        await self.stop_daemon(pid)
        self.assertIn("Server stopped", text_of(self.installed.logfile))

    async def test_reopen_and_rotate(self) -> None:
        """
        reopen-log.sh makes the daemon reopen a log file moved away;
        rotate-log.sh makes twistd rotate it to clinvk.log.1.
        """
        pid = await self.start_daemon()
        await fetch(self.url("/health"), request_id="first")
        await self.log_shows("request_id=first")
        moved = self.installed.log.child("clinvk.log.moved")
        self.installed.logfile.moveTo(moved)
        await self.succeeds(REOPEN_LOG)
        await self.log_shows("Reopened the log file")
        await fetch(self.url("/health"), request_id="second")
        await self.log_shows("request_id=second")
        self.assertIn("request_id=first", text_of(moved))

        await self.succeeds(ROTATE_LOG)
        rotated = self.installed.log.child("clinvk.log.1")
        await eventually(rotated.exists, "twistd renames clinvk.log to clinvk.log.1")
        await fetch(self.url("/health"), request_id="third")
        await self.log_shows("request_id=third")
        self.assertIn("request_id=second", text_of(rotated))
        self.assertNotIn("request_id=second", text_of(self.installed.logfile))
        await self.stop_daemon(pid)

    async def test_restart_drains_and_keeps_sessions(self) -> None:
        """
        The upgrade restart, stop.sh then start.sh: new connections are
        refused at once, the request in flight still gets its answer, and
        a session made before the restart continues after it.

        The answer in flight is held (C{#fake hold}) until the drain has
        begun and new connections are refused, then released, well within
        the drain (C{server.shutdown_timeout_secs}).
        """
        pid = await self.start_daemon()
        first = await self.prompt("remember me", ephemeral=False)
        slow: Deferred[tuple[int, bytes]] = Deferred.fromCoroutine(
            fetch(
                self.url("/api/v1/prompt"),
                "POST",
                {"backend": "claude", "prompt": "#fake hold\nslow answer", "ephemeral": True},
            )
        )
        await eventually(
            lambda: any("slow answer" in record["stdin"] for record in self.records()), "the slow CLI runs"
        )
        [held] = [record for record in self.records() if "slow answer" in record["stdin"]]
        stopping, _ = spawn(["/bin/sh", self.script(STOP).path], self.env, self.installed.home.path)
        # The listener is closed before the drain begins.
        await self.log_shows("Draining requests count=1")
        with self.assertRaises(ConnectionRefusedError):
            await fetch(self.url("/health"))
        self.assertFalse(slow.called)
        os.kill(held["pid"], signal.SIGUSR1)
        code, content = await slow
        self.assertEqual((code, json.loads(content)["output"]), (200, "claude answers: slow answer"))
        self.assertEqual(await stopping.ended, 0, stopping.stderr)
        await process_exit(pid)

        again_pid = await self.start_daemon()
        again = await self.prompt("still there?", session_id=first["session_id"], ephemeral=False)
        self.assertEqual(again["session_id"], first["session_id"])
        await self.stop_daemon(again_pid)

    async def test_bad_configuration(self) -> None:
        """
        A configuration the new version rejects: start.sh exits 1 with the
        line the page shows as all it prints, on stderr, and starts
        nothing.
        """
        self.installed.config.setContent(b"server:\n  metrics_enabled: sometimes\n")
        protocol = await self.run_script(START)
        self.assertEqual(protocol.ended.result, 1)
        page = (DOCS / "operations.md").read_text()
        [shown] = [line for line in page.splitlines() if line.startswith("Error: configuration has ")]
        self.assertEqual(
            (protocol.stdout.decode(), protocol.stderr.decode()), ("", self.installed.localize(shown) + "\n")
        )
        self.assertFalse(self.installed.pidfile.exists())
        self.assertFalse(self.installed.logfile.exists())

    async def assert_stop_refused(self) -> None:
        """stop.sh exits 1 within seconds, saying that clinvk is not running."""
        protocol = await self.run_script(STOP, within=STALE_STOP_SECS)
        self.assertEqual(protocol.ended.result, 1)
        self.assertIn(
            f"clinvk is not running: no process for the pid in {self.installed.pidfile.path}\n",
            protocol.stderr.decode(),
        )

    async def test_stop_stale_pidfile(self) -> None:
        """
        After the daemon was killed with SIGKILL, its pidfile stays behind:
        stop.sh says no daemon runs and exits 1 at once, rather than wait
        for the pidfile to go; the next start replaces the pidfile.
        """
        pid = await self.start_daemon()
        os.kill(pid, signal.SIGKILL)
        # Gone, not only exited: a zombie still takes signals.
        await eventually(lambda: not Path(f"/proc/{pid}").exists(), "the killed daemon is reaped")
        self.assertEqual(self.installed.pidfile.getContent(), str(pid).encode())
        await self.assert_stop_refused()
        again = await self.start_daemon()
        self.assertNotEqual(again, pid)
        await self.stop_daemon(again)

    async def test_stop_without_pidfile(self) -> None:
        """Without a pidfile, stop.sh says no daemon runs and exits 1."""
        await self.assert_stop_refused()

    async def test_unknown_key_ignored(self) -> None:
        """A key the version does not know is ignored, as the page warns: the daemon starts."""
        config = self.installed.config
        config.setContent(config.getContent() + b"  renamed_in_some_release: true\n")
        pid = await self.start_daemon()
        await self.stop_daemon(pid)

    async def test_syslog(self) -> None:
        """syslog.sh starts a daemon that serves and writes no log file; stop.sh stops it."""
        pid = await self.start_daemon(SYSLOG)
        await self.prompt("to syslog")
        self.assertEqual(self.installed.log.listdir(), [])
        await self.stop_daemon(pid)


class LogrotateTests(OperationsTestCase):
    """logrotate.conf: its postrotate commands, and logrotate itself when installed."""

    def localized_config(self) -> str:
        user = pwd.getpwuid(os.getuid()).pw_name
        group = grp.getgrgid(os.getgid()).gr_name
        return self.installed.localize(example(LOGROTATE)).replace("su clinvk clinvk", f"su {user} {group}")

    def postrotate(self) -> str:
        """The commands between C{postrotate} and C{endscript}."""
        match = re.search(r"^\s*postrotate\n(.*?)^\s*endscript$", self.localized_config(), re.S | re.M)
        assert match is not None
        return match.group(1)

    async def test_postrotate(self) -> None:
        """
        After a rename as logrotate makes it, the postrotate commands make
        the daemon log to a new file, and drop twistd's own rotations older
        than two weeks.
        """
        pid = await self.start_daemon()
        await fetch(self.url("/health"), request_id="before")
        await self.log_shows("request_id=before")
        rotated = self.installed.log.child("clinvk.log-20250304")
        self.installed.logfile.moveTo(rotated)
        recent, old = self.installed.log.child("clinvk.log.1"), self.installed.log.child("clinvk.log.2")
        for path in (recent, old):
            path.setContent(b"twistd's rotation\n")
        month_ago = time.time() - 30 * 86400
        os.utime(old.path, (month_ago, month_ago))

        script = self.installed.root.child("postrotate.sh")
        script.setContent(self.postrotate().encode())
        protocol = await self.run_command(["/bin/sh", "-e", script.path])
        self.assertEqual(protocol.ended.result, 0, protocol.stderr)
        await self.log_shows("Reopened the log file")
        await fetch(self.url("/health"), request_id="after")
        await self.log_shows("request_id=after")
        self.assertIn("request_id=before", text_of(rotated))
        self.assertNotIn("request_id=after", text_of(rotated))
        self.assertTrue(recent.exists())
        self.assertFalse(old.exists())
        await self.stop_daemon(pid)

    async def test_logrotate(self) -> None:
        """logrotate with the example configuration rotates the file, and the daemon reopens it."""
        logrotate = require_tool("logrotate", "apt-get install logrotate")
        pid = await self.start_daemon()
        await fetch(self.url("/health"), request_id="before")
        await self.log_shows("request_id=before")
        config = self.installed.root.child("logrotate.conf")
        config.setContent(self.localized_config().encode())
        config.chmod(0o644)
        state = self.installed.root.child("logrotate.state")
        protocol = await self.run_command([logrotate, "--force", "--state", state.path, config.path])
        self.assertEqual(protocol.ended.result, 0, protocol.stderr)
        [rotated] = [
            child for child in self.installed.log.children() if child.basename().startswith("clinvk.log-")
        ]
        self.assertRegex(rotated.basename(), r"^clinvk\.log-\d{8}$")
        await self.log_shows("Reopened the log file")
        await fetch(self.url("/health"), request_id="after")
        await self.log_shows("request_id=after")
        self.assertIn("request_id=before", text_of(rotated))
        self.assertNotIn("request_id=after", text_of(rotated))
        await self.stop_daemon(pid)


def unit_settings(text: str) -> dict[str, dict[str, list[str]]]:
    """The settings of a systemd unit file: section, then key, then every value given."""
    sections: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key, []).append(value)
    return sections


def config_default(key: str) -> Any:
    """The default of C{server.<key>} in the configuration schema."""
    schema = json.loads((ROOT / "clinvk" / "schemas" / "config.json").read_text())
    return schema["properties"]["server"]["properties"][key]["default"]


class ForegroundScriptTests(OperationsTestCase):
    """twist-json.sh, json-lines.sh and the systemd unit: servers in the foreground."""

    async def run_until_term(
        self, protocol: CommandProtocol, transport: Any, listening: str, request_id: str
    ) -> None:
        """Wait for C{listening}, run a prompt as C{request_id}, then SIGTERM: the exit status is 0."""
        await protocol.wait_for(listening)
        code, _ = await fetch(
            self.url("/api/v1/prompt"),
            "POST",
            {"backend": "claude", "prompt": "logged", "ephemeral": True},
            request_id=request_id,
        )
        self.assertEqual(code, 200)
        await protocol.wait_for(f'"request_id": "{request_id}"')
        transport.signalProcess("TERM")
        self.assertEqual(await protocol.ended, 0, protocol.stderr)

    def assert_request_event(self, events: Sequence[Mapping[str, Any]], request_id: str) -> None:
        [request] = [event for event in events if event.get("request_id") == request_id]
        self.assertEqual(
            {key: request[key] for key in ("method", "path", "status")},
            {"method": "POST", "path": "/api/v1/prompt", "status": 200},
        )
        self.assertEqual({type(request[key]) for key in ("bytes", "duration_ms")}, {int})

    async def test_twist_json(self) -> None:
        """twist-json.sh: each line of stdout is RS and one JSON object (RFC 7464)."""
        protocol, transport = self.start(TWIST_JSON)
        await self.run_until_term(protocol, transport, rf'"address": "127\.0\.0\.1:{self.port}"', "json-1")
        lines = protocol.stdout.decode().split("\n")
        self.assertEqual(lines.pop(), "")
        self.assertEqual([line[:1] for line in lines], ["\x1e"] * len(lines))
        events = [json.loads(line[1:]) for line in lines]
        self.assert_request_event(events, "json-1")
        # The page's sample event has the keys, and the message, of a real one.
        [sample] = re.findall(r"^```json\n(.*?)\n```$", (DOCS / "operations.md").read_text(), re.S | re.M)
        shown = json.loads(sample)
        [real] = [event for event in events if event.get("request_id") == "json-1"]
        self.assertEqual([key for key in shown if key not in real], [])
        self.assertEqual(shown["log_format"], real["log_format"])

    async def test_json_lines(self) -> None:
        """json-lines.sh: each line of stdout is one JSON object, and no pidfile is written."""
        protocol, transport = self.start(JSON_LINES)
        await self.run_until_term(protocol, transport, rf'"address": "127\.0\.0\.1:{self.port}"', "lines-1")
        lines = protocol.stdout.decode().split("\n")
        self.assertEqual(lines.pop(), "")
        events = [json.loads(line) for line in lines]
        self.assertEqual({type(event) for event in events}, {dict})
        self.assert_request_event(events, "lines-1")
        self.assertIn("Server stopped", [event.get("log_format") for event in events])
        self.assertEqual(self.installed.home.globChildren("*.pid"), [])

    async def test_systemd_unit(self) -> None:
        """
        The unit's ExecStart, run in its working directory with its PATH
        (where the account's CLIs are), serves prompts; its stop signal
        stops it with status 0; its stop timeout leaves room for the
        drain and the kill grace.
        """
        text = self.installed.localize(example(SYSTEMD_UNIT))
        service = unit_settings(text)["Service"]
        self.assertEqual(service["Type"], ["exec"])
        self.assertEqual(service["KillMode"], ["mixed"])
        drain_and_grace = config_default("shutdown_timeout_secs") + config_default("kill_grace_secs")
        self.assertGreater(int(service["TimeoutStopSec"][0]), drain_and_grace)

        environment = dict(setting.partition("=")[::2] for setting in service["Environment"])
        env = {**self.env, **environment}
        [command] = service["ExecStart"]
        [cwd] = service["WorkingDirectory"]
        protocol, transport = background(self, shlex.split(command), env, cwd)
        await protocol.wait_for(rf"Listening endpoint=tcp:{self.port}:interface=127\.0\.0\.1")
        answer = await self.prompt("from systemd")
        self.assertEqual(answer["output"], "claude answers: from systemd")
        transport.signalProcess(service.get("KillSignal", ["SIGTERM"])[0].removeprefix("SIG"))
        self.assertEqual(await protocol.ended, 0, protocol.stderr)

    async def test_systemd_unit_bad_configuration(self) -> None:
        """
        With a configuration it cannot use, the unit's ExecStart exits at
        once with the status the page's notes give, and writes the reason
        as one line on stderr, for the journal.
        """
        notes = " ".join((DOCS / "operations.md").read_text().split())
        status = re.search(r"A configuration error makes it exit with status (\d+) at once", notes)
        assert status is not None, "the page no longer says how a configuration error ends the unit"
        self.installed.config.setContent(b"server:\n  metrics_enabled: sometimes\n")
        service = unit_settings(self.installed.localize(example(SYSTEMD_UNIT)))["Service"]
        environment = dict(setting.partition("=")[::2] for setting in service["Environment"])
        [command] = service["ExecStart"]
        protocol = await self.run_command(shlex.split(command), {**self.env, **environment})
        self.assertEqual(protocol.ended.result, int(status.group(1)))
        self.assertEqual(protocol.stdout, b"")
        self.assertRegex(
            protocol.stderr.decode(),
            r"\AError: configuration has 1 error\(s\): .*server\.metrics_enabled.*\n\Z",
        )

    async def test_systemd_unit_verifies(self) -> None:
        """systemd-analyze verify finds nothing to report in the unit."""
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            self.skipTest("systemd-analyze is not installed")
        unit = self.installed.root.child("clinvk.service")
        unit.setContent(self.installed.localize(example(SYSTEMD_UNIT)).encode())
        unit.chmod(0o644)
        verify = await self.run_command([analyze, "verify", unit.path])
        self.assertEqual(verify.ended.result, 0, verify.stderr)
        self.assertEqual(verify.stderr.decode(), "")


def accepts(port: int) -> bool:
    """Whether a connection to C{port} on 127.0.0.1 is accepted (on loopback the answer is immediate)."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


METRIC_ROW = re.compile(r"^\| `(clinvk_[a-z_]+)` \|", re.M)


class MetricsTests(OperationsTestCase):
    """metrics.sh and prometheus.yml against a server with metrics enabled."""

    async def test_metrics_and_scrape_config(self) -> None:
        """
        metrics.sh prints clinvk's metrics; every target of the scrape
        configuration serves, at its metrics path, each metric the page
        lists.
        """
        pid = await self.start_daemon()
        await self.prompt("count me")
        await fetch(self.url("/api/v1/sessions/0123abcd"))
        shown = await self.succeeds(METRICS)
        self.assertIn(
            b'clinvk_requests_total{method="POST",path="/api/v1/prompt",status="200"}', shown.stdout
        )
        # The page's example of a route label.
        self.assertIn(
            b'clinvk_requests_total{method="GET",path="/api/v1/sessions/:id",status="404"}', shown.stdout
        )
        self.assertIn("`/api/v1/sessions/:id`", (DOCS / "operations.md").read_text())

        listed = METRIC_ROW.findall((DOCS / "operations.md").read_text())
        self.assertGreater(len(listed), 5)
        scrape = yaml.safe_load(self.installed.localize(example(PROMETHEUS)))
        [job] = scrape["scrape_configs"]
        for target in [t for group in job["static_configs"] for t in group["targets"]]:
            code, body = await fetch(f"http://{target}{job['metrics_path']}")
            self.assertEqual(code, 200)
            exposed = set(re.findall(r"^# TYPE (\S+) ", body.decode(), re.M))
            exposed |= {f"{name}_total" for name in exposed}
            self.assertEqual([name for name in listed if name not in exposed], [])
        await self.stop_daemon(pid)


# A line of a streamed answer: when it came, the line, and whether the CLI
# still ran then.
Arrival = tuple[float, str, bool]


class NginxTests(OperationsTestCase):
    """
    nginx with the example server block in front of a clinvk daemon with
    the example configuration: TLS, streams unbuffered, client addresses,
    the body limit and the hidden metrics.
    """

    def setUp(self) -> Deferred[None]:  # type: ignore[override] # trial waits for it
        super().setUp()
        # One-shot CLIs: the held stream is released through the fake's own
        # process, which a live claude would outlive.
        config = self.installed.config.getContent().decode()
        self.installed.config.setContent(
            config.replace("server:\n", "server:\n  live_idle_secs: 0\n", 1).encode()
        )
        self.nginx_binary = require_tool("nginx", "apt-get install nginx-light or nginx")
        self.openssl = require_tool("openssl", "apt-get install openssl; nginx needs a certificate")
        return Deferred.fromCoroutine(self.start_proxy())

    async def start_proxy(self) -> None:
        self.addCleanup(self.stop_daemon, await self.start_daemon())
        tls = self.installed.tls
        certificate = await self.run_command(
            [
                self.openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                "-keyout", tls.child("clinvk.key").path, "-out", tls.child("clinvk.crt").path,
            ]
        )  # fmt: skip
        self.assertEqual(certificate.ended.result, 0, certificate.stderr)
        self.trust = ssl.create_default_context(cafile=tls.child("clinvk.crt").path)

        self.proxy_port = free_port()
        nginx_dir = self.installed.root.child("nginx")
        nginx_dir.makedirs()
        server_block = self.installed.localize(example(NGINX)).replace(
            "listen 443 ssl;", f"listen 127.0.0.1:{self.proxy_port} ssl;"
        )
        nginx_dir.child("clinvk.conf").setContent(server_block.encode())
        temp_paths = "\n".join(
            f"    {kind}_temp_path {nginx_dir.child(kind).path};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        nginx_dir.child("nginx.conf").setContent(
            f"""\
daemon off;
# Workers as the test's user (as root nginx would use nobody), who owns
# the temporary files' directories; nginx ignores this when not root.
user {pwd.getpwuid(os.getuid()).pw_name} {grp.getgrgid(os.getgid()).gr_name};
pid {nginx_dir.child("nginx.pid").path};
error_log {nginx_dir.child("error.log").path} info;
events {{
    worker_connections 64;
}}
http {{
    access_log {nginx_dir.child("access.log").path};
{temp_paths}
    include {nginx_dir.child("clinvk.conf").path};
}}
""".encode()
        )
        command = [
            self.nginx_binary, "-p", nginx_dir.path, "-e", nginx_dir.child("error.log").path,
            "-c", nginx_dir.child("nginx.conf").path,
        ]  # fmt: skip
        # QUIT: nginx's graceful stop.
        self.nginx, _ = background(self, command, self.env, nginx_dir.path, stop=signal.SIGQUIT)
        await eventually(lambda: accepts(self.proxy_port), "nginx listens")

    def off_reactor(self, blocking: Callable[[], T]) -> Deferred[T]:
        """Run the blocking client code C{blocking} in a thread."""
        return deferToThread(blocking)

    def connect(self, source: str = "127.0.0.1") -> HTTPSConnection:
        return HTTPSConnection(
            "127.0.0.1",
            self.proxy_port,
            context=self.trust,
            timeout=CLIENT_TIMEOUT,
            source_address=(source, 0),
        )

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        source: str = "127.0.0.1",
    ) -> tuple[int, bytes]:
        connection = self.connect(source)
        try:
            data = None if body is None else json.dumps(body).encode()
            connection.request(
                method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})}
            )
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def stream(self, path: str, body: Any, marker: str, first_piece: Callable[[str], bool]) -> list[Arrival]:
        """
        POST C{body} to C{path} and read the answer line by line as it
        arrives; for each line note when it came and whether the fake CLI
        whose prompt holds C{marker} (and L{HELD_STREAM}) was still
        running.  Once a line is the answer's first piece (C{first_piece})
        the CLI is released to send the rest.
        """
        arrivals = []
        released = False
        connection = self.connect()
        try:
            connection.request(
                "POST", path, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            self.assertEqual(response.status, 200)
            while line := response.readline():
                text = line.decode().rstrip("\r\n")
                records = [r for r in self.records() if marker in r["stdin"]]
                arrivals.append((time.monotonic(), text, any(alive(r["pid"]) for r in records)))
                if not released and first_piece(text):
                    [record] = records
                    os.kill(record["pid"], signal.SIGUSR1)
                    released = True
        except TimeoutError:
            self.fail(
                f"no first piece while the CLI held the rest back: nginx buffers the stream; {arrivals}"
            )
        finally:
            connection.close()
        return arrivals

    def assert_unbuffered(self, arrivals: list[Arrival], pieces: list[tuple[float, bool]]) -> None:
        """
        The first piece of the answer came while the CLI still ran (and
        held the rest back): nginx passed it on at once.
        """
        self.assertEqual(len(pieces), 3, arrivals)
        _, cli_running = pieces[0]
        self.assertTrue(cli_running, arrivals)

    async def test_sse_stream(self) -> None:
        """An OpenAI stream comes through nginx event by event, not at the end."""
        marker = "stream through nginx"
        body = {
            "model": "claude",
            "stream": True,
            "messages": [{"role": "user", "content": f"{HELD_STREAM}\n{marker}"}],
        }

        def delta(line: str) -> str | None:
            if not line.startswith("data: {"):
                return None
            content: str | None = json.loads(line[len("data: ") :])["choices"][0]["delta"].get("content")
            return content

        arrivals = await self.off_reactor(
            lambda: self.stream("/openai/v1/chat/completions", body, marker, lambda line: bool(delta(line)))
        )
        pieces, text = [], ""
        for at, line, running in arrivals:
            content = delta(line)
            if content:
                pieces.append((at, running))
                text += content
        self.assertEqual([line for _, line, _ in arrivals if line.startswith("data: ")][-1], "data: [DONE]")
        self.assertEqual(text, f"claude answers: {marker}")
        self.assert_unbuffered(arrivals, pieces)

    async def test_ndjson_stream(self) -> None:
        """
        A native NDJSON stream comes through event by event too: clinvk
        asks nginx not to buffer only its SSE streams, so this one relies
        on proxy_buffering off.
        """
        marker = "ndjson through nginx"
        body = {
            "backend": "claude",
            "prompt": f"{HELD_STREAM}\n{marker}",
            "output_format": "stream-json",
            "ephemeral": True,
        }

        def partial(line: str) -> bool:
            if not line.strip():
                return False
            event = json.loads(line)
            return bool(event["type"] == "message" and event["content"]["is_partial"])

        arrivals = await self.off_reactor(lambda: self.stream("/api/v1/prompt", body, marker, partial))
        events = [(at, json.loads(line), running) for at, line, running in arrivals if line.strip()]
        pieces = [(at, running) for at, line, running in arrivals if partial(line)]
        self.assertEqual(events[-1][1].get("type"), "done", arrivals)
        self.assert_unbuffered(arrivals, pieces)

    async def test_client_address(self) -> None:
        """
        clinvk logs the address nginx saw, not one the client put in
        X-Forwarded-For.
        """
        headers = {"X-Forwarded-For": "203.0.113.9", "X-Request-Id": "through-nginx"}
        code, _ = await self.off_reactor(
            lambda: self.request("GET", "/health", headers=headers, source="127.0.0.2")
        )
        self.assertEqual(code, 200)
        await self.log_shows(r"request_id=through-nginx client=127\.0\.0\.2$")

    async def test_limits(self) -> None:
        """/metrics is not served through nginx; bodies up to clinvk's own limit are."""
        code, _ = await self.off_reactor(lambda: self.request("GET", "/metrics"))
        self.assertEqual(code, 404)
        code, _ = await fetch(self.url("/metrics"))
        self.assertEqual(code, 200)
        large = {"backend": "claude", "prompt": "large\n" + "x" * (2 * 1024 * 1024), "ephemeral": True}
        code, content = await self.off_reactor(lambda: self.request("POST", "/api/v1/prompt", large))
        self.assertEqual(code, 200, content)
        self.assertEqual(json.loads(content)["output"], "claude answers: large")
