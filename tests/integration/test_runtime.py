"""
Real-process tests of the backend runtime with the fake CLIs: prompts on
stdin, process groups, the kill protocol, deadlines, concurrency, and no
process left behind.

Waiting is event-driven: for output, for a process's end (through its
pidfd), or for the run's own Deferred.  Deadlines in these tests are short
but real, because they are what is being tested.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, gatherResults
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from clinvk.backends import build_backends
from clinvk.backends.availability import BackendAvailability
from clinvk.config import config_from_mapping
from clinvk.model import RunRequest, RunResult, UnifiedEvent
from clinvk.process.leader import PosixSpawn
from clinvk.process.runner import ProcessRunner
from clinvk.process.spawn import Launcher, signal_group
from clinvk.process.supervisor import ProcessSupervisor
from clinvk.runs.runtime import BackendRuntime, EventChannel
from clinvk.testing.fake_cli import install
from tests.integration._processes import (
    TIMEOUT,
    alive,
    eventually,
    fake_records,
    process_exit,
    reactor,
    spawn,
)

BACKENDS = ("claude", "codex", "gemini")
KILL_GRACE = 0.5


class _RuntimeTestCase(TestCase):
    def setUp(self) -> None:
        base = FilePath(self.mktemp())
        self.bin = install(base.child("bin").path)
        self.records = base.child("records")
        self.records.makedirs()
        self.home = base.child("home")
        self.home.makedirs()
        self.supervisor = ProcessSupervisor(
            ProcessRunner(reactor, launcher=self.launcher(), signal_group=signal_group, kill_grace=KILL_GRACE)
        )
        self.supervisor.startService()
        self.addCleanup(self.supervisor.stopService)
        self.runtime = self.make_runtime()

    def launcher(self) -> Launcher:
        """How the CLIs are started: the best way this system has."""
        return Launcher.detect()

    def make_runtime(self, raw: dict[str, Any] | None = None) -> BackendRuntime:
        return BackendRuntime(
            config=config_from_mapping(raw, {}, source=None),
            backends=build_backends(),
            supervisor=self.supervisor,
            availability=BackendAvailability(reactor, which=lambda name: str(self.bin / name)),
            clock=reactor,
            environ={**os.environ, "CLINVK_FAKE_RECORD": self.records.path, "HOME": self.home.path},
            home=self.home.path,
        )

    def run_request(self, runtime: BackendRuntime | None = None, **request: Any) -> Deferred[RunResult]:
        runtime = runtime or self.runtime
        return Deferred.fromCoroutine(runtime.run(RunRequest(**request))).addTimeout(TIMEOUT, reactor)

    def records_of(self, name: str | None = None) -> list[dict[str, Any]]:
        return fake_records(self.records, name)

    async def first_event(self, stream: EventChannel) -> UnifiedEvent:
        async for event in stream:
            return event
        raise AssertionError("the stream ended without an event")

    async def gone(self, *pids: int) -> None:
        for pid in pids:
            await process_exit(pid)
            self.assertFalse(alive(pid), pid)


class StdinTests(_RuntimeTestCase):
    """Prompts travel on stdin, never in argv (docs/design/decisions.md#d1-prompts-on-stdin)."""

    async def test_one_mebibyte_prompt(self) -> None:
        """A 1 MiB prompt of varied UTF-8 reaches every CLI byte for byte."""
        unit = '¡Hola! 中文 — émoji 🙂 tab\t quote" back\\slash $HOME `x` ;|&\n'
        prompt = "-" + (unit * (1024 * 1024 // len(unit.encode()) + 1))
        prompt = prompt.encode()[: 1024 * 1024].decode("utf-8", "ignore")
        for backend in BACKENDS:
            result = await self.run_request(backend=backend, prompt=prompt)
            self.assertEqual(result.exit_code, 0, result.error)
        for record in self.records_of():
            self.assertEqual(record["stdin"], prompt, record["name"])
            self.assertFalse(any("Hola" in arg for arg in record["argv"]), record["name"])
        self.assertEqual(sorted(r["name"] for r in self.records_of()), list(BACKENDS))

    async def test_dash_prompt_is_not_a_flag(self) -> None:
        """A prompt starting with - is answered, not parsed as an option."""
        for backend in BACKENDS:
            result = await self.run_request(backend=backend, prompt="--version please")
            self.assertEqual((result.exit_code, result.error), (0, ""), backend)
            self.assertIn("--version please", result.output)

    async def test_own_process_group(self) -> None:
        """Each CLI runs in a process group of its own, not the server's."""
        await self.run_request(backend="claude", prompt="hello")
        [record] = self.records_of("claude")
        self.assertNotEqual(record["pgid"], os.getpgid(0))
        # The CLI leads its group and is the server's own child: its exit
        # status and signals are its own.
        self.assertEqual(record["pgid"], record["pid"])
        self.assertEqual(record["ppid"], os.getpid())
        # Not with the signals a shell's background jobs ignore.
        self.assertNotIn(signal.SIGINT, record["ignored_signals"])
        self.assertNotIn(signal.SIGQUIT, record["ignored_signals"])

    async def test_exit_codes_are_the_cli_own(self) -> None:
        """A CLI's exit status comes through unchanged, even one that looks like a signal death."""
        for code in (3, 130, 137):
            result = await self.run_request(backend="codex", prompt=f"#fake exit={code}\nhi")
            self.assertEqual(result.exit_code, code)


class ResultTests(_RuntimeTestCase):
    """Real output formats through the whole runtime."""

    async def test_each_backend(self) -> None:
        """Answers, native ids and usage from each fake's own format."""
        for backend in BACKENDS:
            result = await self.run_request(backend=backend, prompt="what is 2+2")
            self.assertTrue(result.succeeded, result.error)
            self.assertEqual(result.output, f"{backend} answers: what is 2+2")
            self.assertTrue(result.native_session_id)
            self.assertIsNotNone(result.usage)

    async def test_held_answer(self) -> None:
        """A fake told C{hold} answers only once it is sent SIGUSR1."""
        running = self.run_request(backend="claude", prompt="#fake hold\nheld")
        await eventually(lambda: bool(self.records_of("claude")), "the held fake has started")
        [record] = self.records_of("claude")
        self.assertFalse(running.called)
        self.assertTrue(alive(record["pid"]))
        os.kill(record["pid"], signal.SIGUSR1)
        result = await running
        self.assertEqual((result.exit_code, result.output), (0, "claude answers: held"))

    async def test_failures_in_each_dialect(self) -> None:
        """Each CLI's own failure output becomes the error."""
        expected = {
            "claude": "Invalid API key · Please run /login",
            "codex": "unexpected status 401 Unauthorized: Missing bearer authentication in header",
            "gemini": "Please set an Auth method",
        }
        for backend, message in expected.items():
            result = await self.run_request(backend=backend, prompt="#fake fail=auth\nhi")
            self.assertEqual(result.error, message)
            self.assertNotEqual(result.exit_code, 0)

    async def test_noise_and_large_answers(self) -> None:
        """Noise around the JSON is skipped; multi-megabyte answers and lines come through whole."""
        noisy = await self.run_request(backend="claude", prompt="#fake garbage\nhi")
        self.assertEqual((noisy.output, noisy.error), ("claude answers: hi", ""))
        credentials = await self.run_request(backend="gemini", prompt="#fake credentials\nhi")
        self.assertEqual((credentials.output, credentials.error), ("gemini answers: hi", ""))
        large = await self.run_request(backend="codex", prompt="#fake huge=5000000")
        self.assertEqual(len(large.output), 5_000_000)
        stream = self.runtime.stream(
            self.runtime.prepare(RunRequest(backend="claude", prompt="#fake huge=3000000"), streaming=True)
        )
        texts = [e.content["text"] for e in [event async for event in stream] if e.type == "message"]
        self.assertEqual([len(text) for text in texts], [3_000_000])

    async def test_codex_approval_flag_surfaces(self) -> None:
        """codex exec refusing --ask-for-approval shows up as the error (2.2 fix)."""
        result = await self.run_request(backend="codex", prompt="x", approval_mode="none")
        self.assertEqual(result.exit_code, 2)
        self.assertIn("unexpected argument '--ask-for-approval'", result.error)

    async def test_ephemeral_gemini_cleanup(self) -> None:
        """An ephemeral gemini run deletes its native session with --delete-session, after its result."""
        result = await self.run_request(backend="gemini", prompt="#fake session=abc-123\nhi", ephemeral=True)
        await eventually(lambda: self.runtime.cleanups == 0, "the clean-up ended")
        deletions = [r for r in self.records_of("gemini") if "--delete-session" in r["argv"]]
        self.assertEqual([r["argv"][-1] for r in deletions], ["abc-123"])
        self.assertEqual(result.native_session_id, "abc-123")

    async def test_streamed_tokens(self) -> None:
        """
        Claude's deltas arrive as separate partial messages whose text is
        the answer (docs/design/decisions.md#d9-token-streaming).
        """
        stream = self.runtime.stream(
            self.runtime.prepare(
                RunRequest(backend="claude", prompt="#fake chunks=5\nstream this"), streaming=True
            )
        )
        events = [event async for event in stream]
        partial = [e.content["text"] for e in events if e.type == "message"]
        self.assertEqual(len(partial), 5)
        self.assertEqual("".join(partial), "claude answers: stream this")
        self.assertEqual(events[-1].type, "done")

    async def test_held_rest(self) -> None:
        """
        A fake told C{hold=rest} streams its first piece at once and the
        rest only once it is sent SIGUSR1.
        """
        stream = self.runtime.stream(
            self.runtime.prepare(
                RunRequest(backend="claude", prompt="#fake chunks=3 hold=rest\nstream this"), streaming=True
            )
        )
        events = aiter(stream)
        first = await anext(events)
        while first.type != "message":
            first = await anext(events)
        [record] = self.records_of("claude")
        self.assertTrue(alive(record["pid"]))
        os.kill(record["pid"], signal.SIGUSR1)
        rest = [event async for event in events]
        partial = [first.content["text"]] + [e.content["text"] for e in rest if e.type == "message"]
        self.assertEqual(len(partial), 3)
        self.assertEqual("".join(partial), "claude answers: stream this")
        self.assertEqual(rest[-1].type, "done")


class ConcurrencyTests(_RuntimeTestCase):
    """Many runs at once."""

    async def test_twenty_runs(self) -> None:
        """20 concurrent runs all complete, each with its own output."""
        runs = [self.run_request(backend=BACKENDS[n % 3], prompt=f"task number {n}") for n in range(20)]
        results = await gatherResults(runs)
        for n, result in enumerate(results):
            self.assertEqual(result.output, f"{BACKENDS[n % 3]} answers: task number {n}")
        pids = [record["pid"] for record in self.records_of()]
        self.assertEqual(len(pids), 20)
        await self.gone(*pids)


class StoppingTests(_RuntimeTestCase):
    """The kill protocol with real process groups (docs/design/decisions.md#d6-no-orphans)."""

    async def test_cancel_kills_grandchild(self) -> None:
        """Cancelling a run kills the CLI and the grandchild it forked."""
        stream = self.runtime.stream(
            self.runtime.prepare(
                RunRequest(backend="claude", prompt="#fake grandchild hang\nhi"), streaming=True
            )
        )
        await self.first_event(stream)
        [record] = self.records_of("claude")
        [grandchild] = record["grandchildren"]
        self.assertTrue(alive(grandchild))
        stream.cancel()
        with self.assertRaises(CancelledError):
            await stream.result()
        await self.gone(record["pid"], grandchild)

    async def test_term_ignored_then_killed(self) -> None:
        """A CLI that ignores SIGTERM is killed after the grace period; the timeout says why."""
        runtime = self.make_runtime({"unified_flags": {"command_timeout_secs": 1}})
        started = reactor.seconds()
        result = await self.run_request(
            runtime, backend="codex", prompt="#fake ignore_term grandchild hang\nhi"
        )
        elapsed = reactor.seconds() - started
        self.assertEqual((result.exit_code, result.error), (-1, "backend command timed out after 1s"))
        self.assertGreaterEqual(elapsed, 1 + KILL_GRACE)
        [record] = self.records_of("codex")
        await self.gone(record["pid"], *record["grandchildren"])

    async def test_idle_watchdog(self) -> None:
        """A CLI silent for longer than output_idle_timeout_secs is stopped."""
        runtime = self.make_runtime({"server": {"output_idle_timeout_secs": 1}})
        result = await self.run_request(runtime, backend="gemini", prompt="#fake silent=60\nhi")
        self.assertEqual((result.exit_code, result.error), (-1, "backend produced no output for 1s"))

    async def test_supervisor_stop_reaps_all(self) -> None:
        """Stopping the supervisor ends every run and leaves no process behind."""
        streams = [
            self.runtime.stream(
                self.runtime.prepare(
                    RunRequest(backend=backend, prompt="#fake grandchild hang\nhi"), streaming=True
                )
            )
            for backend in BACKENDS
        ]
        for stream in streams:
            await self.first_event(stream)
        records = self.records_of()
        self.assertEqual(len(records), 3)
        await self.supervisor.stopService()
        self.assertEqual(self.supervisor.live, 0)
        for record in records:
            await self.gone(record["pid"], *record["grandchildren"])
        for stream in streams:
            self.assertEqual((await stream.result()).error, "server is shutting down")


SERVER_SCRIPT = """
import json, os, sys
from twisted.internet import task
from twisted.internet.defer import Deferred
from clinvk.backends import build_backends
from clinvk.backends.availability import BackendAvailability
from clinvk.model import RunRequest
from clinvk.runs.runtime import BackendRuntime
from clinvk.config import config_from_mapping
from clinvk.process.runner import ProcessRunner
from clinvk.process.spawn import Launcher, signal_group
from clinvk.process.supervisor import ProcessSupervisor

async def main(reactor):
    bin, mode, grace, directives = sys.argv[1:]
    launcher = Launcher.detect() if mode == "direct" else Launcher.launched()
    supervisor = ProcessSupervisor(ProcessRunner(reactor, launcher=launcher, signal_group=signal_group, kill_grace=float(grace)))
    supervisor.startService()
    runtime = BackendRuntime(
        config=config_from_mapping(None, {}, source=None), backends=build_backends(), supervisor=supervisor,
        availability=BackendAvailability(reactor, which=lambda name: os.path.join(bin, name)),
        clock=reactor, environ=os.environ, home=os.environ["HOME"])
    stream = runtime.stream(runtime.prepare(RunRequest(backend="gemini", prompt=f"#fake {directives}\\nhi"), streaming=True))
    async for event in stream:
        print("ready", type(launcher.spawner(reactor)).__name__, flush=True)
        break
    await Deferred()

task.react(lambda reactor: Deferred.fromCoroutine(main(reactor)))
"""


class ServerDeathTests(_RuntimeTestCase):
    """
    Children die with the server, even when it is SIGKILLed
    (docs/design/decisions.md#d6-no-orphans): spawned directly, without a
    parent-death signal, the group reaper alone ends them
    (docs/design-notes.md#spawn-group-leader); through the launcher chain,
    the parent-death signal and the reaper.
    """

    async def kill_server(self, mode: str, directives: str, grace: float = 5.0) -> float:
        """
        Start a server (spawning C{mode}) whose gemini runs with
        C{directives}, SIGKILL it once the run has started, and wait until
        the CLI and its grandchild are gone; the seconds that took.
        """
        env = {**os.environ, "CLINVK_FAKE_RECORD": self.records.path, "HOME": self.home.path}
        server, transport = spawn(
            [sys.executable, "-c", SERVER_SCRIPT, str(self.bin), mode, str(grace), directives],
            env,
            self.home.path,
        )
        spawner = {"direct": "LeaderSpawner", "launched": "PrefixSpawner"}[mode]
        await server.wait_for(f"ready {spawner}")
        [record] = self.records_of("gemini")
        self.assertEqual(record["pgid"], record["pid"])
        transport.signalProcess("KILL")
        killed = reactor.seconds()
        self.assertEqual(await server.ended, -signal.SIGKILL)
        await self.gone(record["pid"], *record["grandchildren"])
        took: float = reactor.seconds() - killed
        return took

    def require_direct(self) -> None:
        if PosixSpawn.load() is None:
            self.skipTest("posix_spawn of a session leader is not available here")

    async def test_sigkill_of_server(self) -> None:
        """SIGKILL of the server takes its CLI and the CLI's grandchild down too."""
        self.require_direct()
        await self.kill_server("direct", "grandchild hang")

    async def test_sigkill_term_ignored(self) -> None:
        """
        A CLI that ignores SIGTERM, with its grandchild, is killed by the
        reaper once the grace period has passed: no parent-death signal
        killed it before.
        """
        self.require_direct()
        took = await self.kill_server("direct", "ignore_term grandchild hang", grace=1.0)
        self.assertGreaterEqual(took, 1.0)

    async def test_sigkill_of_server_launched(self) -> None:
        """The same through the launcher chain."""
        if shutil.which("setpriv") is None:
            self.skipTest("setpriv is not installed: no parent-death signal on this machine")
        await self.kill_server("launched", "grandchild hang")


class LaunchedStoppingTests(StoppingTests):
    """The kill protocol with the launcher chain, where a system cannot spawn directly."""

    def launcher(self) -> Launcher:
        return Launcher.launched()
