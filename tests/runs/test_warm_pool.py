"""
Tests for the warm processes of new conversations
(L{clinvk.runs.warm_pool}, through L{clinvk.runs.live_pool.LivePool} and
L{clinvk.runs.runtime.BackendRuntime}; docs/design/live-sessions.md#warm-pool)
on a fake process reactor, with Claude's live protocol.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.application.service import MultiService
from twisted.logger import ILogObserver, LogEvent, LogLevel, globalLogPublisher

from clinvk.metrics import LiveCounts
from clinvk.service import WarmProcesses
from clinvk.testing.reactor import FakeProcessTransport
from tests.runs.test_live import LIVE_ARGV, LiveTestCase, answer, result, turns_written

WARM_ONE = {"backends": {"claude": {"warm": 1}}}


class WarmTestCase(LiveTestCase):
    raw: dict[str, Any] = WARM_ONE

    def setUp(self) -> None:
        super().setUp()
        self.runtime.warm_up()

    def counts(self) -> LiveCounts:
        return self.runtime.live.counts()

    def warm_children(self) -> list[FakeProcessTransport]:
        """The children started so far that are still running and were sent nothing."""
        return [child for child in self.reactor.spawned if not child.exited and not child.stdin]


class WarmUpTests(WarmTestCase):
    """Processes started ahead, as a new conversation asking for nothing starts one."""

    raw = {"backends": {"claude": {"warm": 2}}}

    def test_started(self) -> None:
        """warm_up starts the configured number of live processes, stdin open, nothing sent."""
        self.assertEqual(len(self.reactor.spawned), 2)
        for child in self.reactor.spawned:
            self.assertEqual(child.argv, LIVE_ARGV)
            self.assertFalse(child.stdin_closed)
            self.assertEqual(child.stdin, b"")
        counts = self.counts()
        self.assertEqual((counts.warm, counts.live, counts.cold_starts), (2, 0, 0))

    def test_none_without_live_sessions(self) -> None:
        """A backend whose conversations run cold keeps nothing warm, and says why."""
        logged: list[LogEvent] = []
        observer = cast("ILogObserver", logged.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        for raw in (
            {"server": {"live_idle_secs": 0}, **WARM_ONE},
            {"backends": {"claude": {"warm": 1, "live": False}}},
            {"backends": {"claude": {"warm": 1, "extra_flags": ["--input-format", "text"]}}},
        ):
            spawned = len(self.reactor.spawned)
            self.make_runtime(raw).warm_up()
            self.assertEqual(len(self.reactor.spawned), spawned, raw)
        warnings = [event for event in logged if event.get("log_level") is LogLevel.warn]
        self.assertEqual(
            [event["why"] for event in warnings],
            [
                "live sessions are off: server.live_idle_secs is 0",
                "live sessions are off: backends.claude.live is false",
                "a new conversation with the configured options runs cold",
            ],
        )


class TakeTests(WarmTestCase):
    """A new conversation takes a warm process; a replacement starts."""

    def test_taken(self) -> None:
        """
        The first turn of a new conversation goes to the warm process:
        nothing is spawned for it, and a replacement starts right after.
        """
        [warm] = self.reactor.spawned
        running = self.turn("s1", "hello")
        self.assertEqual(len(self.reactor.spawned), 1)
        self.assertEqual([line["message"]["content"] for line in turns_written(warm)], ["hello"])
        self.reactor.advance(0)
        self.assertEqual(len(self.reactor.spawned), 2)
        self.assertEqual(self.reactor.spawned[1].argv, LIVE_ARGV)
        answer(warm, "n1", "Hello!")
        done = self.successResultOf(running)
        self.assertEqual((done.exit_code, done.output, done.native_session_id), (0, "Hello!", "n1"))
        counts = self.counts()
        self.assertEqual((counts.warm, counts.warm_taken, counts.live, counts.cold_starts), (1, 1, 1, 0))

    def test_follow_up(self) -> None:
        """The taken process is the conversation's own from then on."""
        [warm] = self.reactor.spawned
        running = self.turn("s1", "one")
        answer(warm, "n1", "1")
        self.successResultOf(running)
        self.reactor.advance(0)
        running = self.turn("s1", "two", resume_id="n1")
        answer(warm, "n1", "2")
        self.assertEqual(self.successResultOf(running).output, "2")
        self.assertEqual(len(self.reactor.spawned), 2)
        self.assertEqual(self.counts().reused, 1)

    def test_idle_expiry_once_taken(self) -> None:
        """A warm process never expires; once taken, it does, as any live process."""
        [warm] = self.reactor.spawned
        self.reactor.advance(10_000)
        self.assertFalse(warm.stdin_closed)
        running = self.turn("s1")
        answer(warm, "n1", "ok")
        self.successResultOf(running)
        self.reactor.advance(self.runtime.live.idle_seconds)
        self.assertTrue(warm.stdin_closed)
        self.assertEqual(self.counts().expired, 1)

    def test_streamed(self) -> None:
        """A streamed first turn takes the warm process too."""
        [warm] = self.reactor.spawned
        channel, running = self.stream("s1")
        self.successResultOf(channel.started())
        answer(warm, "n1", "Hi")
        self.assertEqual(self.successResultOf(running).output, "Hi")
        self.assertEqual(self.counts().warm_taken, 1)

    def test_other_options(self) -> None:
        """A new conversation asking for other options starts its own process; the warm one waits."""
        [warm] = self.reactor.spawned
        self.turn("s1", system_prompt="Be terse.")
        self.assertEqual(len(self.reactor.spawned), 2)
        self.assertIn("--system-prompt", self.child().argv)
        self.assertEqual(warm.stdin, b"")
        counts = self.counts()
        self.assertEqual((counts.warm, counts.warm_taken, counts.cold_starts), (1, 0, 1))

    def test_resumed(self) -> None:
        """A conversation resumed from cold is no new conversation: it starts its own process."""
        [warm] = self.reactor.spawned
        self.turn("s1", resume_id="n0")
        self.assertEqual(self.child().argv[:3], [LIVE_ARGV[0], "--resume", "n0"])
        self.assertEqual(warm.stdin, b"")

    def test_not_for_one_shot_runs(self) -> None:
        """A run that is no turn of a conversation runs cold, leaving the warm process be."""
        [warm] = self.reactor.spawned
        self.turn("")
        self.assertNotIn("--input-format", self.child().argv)
        self.assertEqual(warm.stdin, b"")

    def test_no_room(self) -> None:
        """Taking a warm process needs room among the live ones, as starting one does."""
        self.runtime = self.make_runtime({"server": {"max_live_processes": 1}, **WARM_ONE})
        self.runtime.warm_up()
        self.turn("s1")
        self.reactor.advance(0)
        spawned = len(self.reactor.spawned)
        self.turn("s2")
        self.assertEqual(len(self.reactor.spawned), spawned + 1)
        self.assertNotIn("--input-format", self.child().argv)
        self.assertEqual(self.counts().warm, 1)


class LossTests(WarmTestCase):
    """Warm processes that end, and the end of warming."""

    def test_replaced_after_a_pause(self) -> None:
        """A warm process that ends untaken is replaced after 1 s, then 2 s, 4 s..."""
        for pause in (1, 2, 4):
            [warm] = self.warm_children()
            warm.exit(1)
            self.assertEqual(self.counts().warm, 0)
            spawned = len(self.reactor.spawned)
            self.reactor.advance(pause - 0.5)
            self.assertEqual(len(self.reactor.spawned), spawned)
            self.reactor.advance(0.5)
            self.assertEqual(len(self.reactor.spawned), spawned + 1)
        self.assertEqual(self.counts().warm, 1)

    def test_pause_reset_when_taken(self) -> None:
        """A process taken resets the pause: the next loss is replaced after 1 s again."""
        self.warm_children()[0].exit(1)
        self.reactor.advance(1)
        self.warm_children()[0].exit(1)
        self.reactor.advance(2)
        self.turn("s1")
        self.reactor.advance(0)
        [replacement] = self.warm_children()
        replacement.exit(1)
        spawned = len(self.reactor.spawned)
        self.reactor.advance(1)
        self.assertEqual(len(self.reactor.spawned), spawned + 1)

    def test_failed_to_serve(self) -> None:
        """
        A taken warm process that cannot serve its first turn turns the
        backend's live sessions off: the turn runs cold and nothing is
        kept warm any more.
        """
        [warm] = self.reactor.spawned
        running = self.turn("s1")
        self.reactor.advance(0)
        [replacement] = self.warm_children()
        warm.emit_stderr(b"error: unknown option '--input-format'\n")
        warm.exit(1)
        cold = self.child()
        cold.emit_stdout(result("n1", "cold answer"))
        cold.exit(0)
        self.assertEqual(self.successResultOf(running).output, "cold answer")
        self.assertTrue(replacement.stdin_closed)
        replacement.exit(0)
        self.reactor.advance(600)
        self.assertEqual(self.warm_children(), [])
        self.assertEqual(self.counts().warm, 0)

    def test_stopped_with_the_service(self) -> None:
        """
        The service starts the warm processes once the supervisor runs,
        and stopping it ends them and starts no other.
        """
        self.runtime = self.make_runtime(WARM_ONE)
        parent = MultiService()
        WarmProcesses(self.runtime).setServiceParent(parent)
        spawned = len(self.reactor.spawned)
        parent.startService()
        self.assertEqual(len(self.reactor.spawned), spawned + 1)
        warm = self.child()
        parent.stopService()
        self.assertTrue(warm.stdin_closed)
        warm.exit(0)
        self.reactor.advance(600)
        self.assertEqual(len(self.reactor.spawned), spawned + 1)
        self.assertEqual(self.runtime.live.counts().warm, 0)
