"""
Tests for L{clinvk.orchestration}: how prompts keep their sessions when
the store or the process layer misbehaves, and when the consumer of a
stream goes away early.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.trial.unittest import SynchronousTestCase

from clinvk.errors import ShuttingDown
from clinvk.model import RunRequest, UnifiedEvent
from clinvk.orchestration import PromptStream
from clinvk.sessions import SessionRecord, StoreError
from clinvk.sessions.memory import MemorySessionStore
from tests.helpers import Server


class HeldCreates(MemorySessionStore):
    """A memory store whose creations complete only when the test says so."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[SessionRecord, Deferred[None]]] = []

    def create(self, record: SessionRecord) -> Deferred[None]:
        waiting: Deferred[None] = Deferred()
        self.held.append((record, waiting))
        return waiting

    def release(self) -> None:
        for record, waiting in self.held:
            super().create(record).chainDeferred(waiting)
        self.held = []


class FailingStore(MemorySessionStore):
    """A memory store that cannot create or update anything."""

    def create(self, record: SessionRecord) -> Deferred[None]:
        return fail(StoreError("disk full"))

    def update(
        self, session_id: str, change: Callable[[SessionRecord], SessionRecord]
    ) -> Deferred[SessionRecord]:
        return fail(StoreError("disk full"))


def drain(case: SynchronousTestCase, stream: PromptStream) -> list[UnifiedEvent]:
    """Every event of a finished stream."""
    events: list[UnifiedEvent] = []

    async def collect() -> None:
        async for event in stream:
            events.append(event)

    case.successResultOf(Deferred.fromCoroutine(collect()))
    return events


class PromptSessionTests(SynchronousTestCase):
    def test_store_failure_does_not_fail_the_run(self) -> None:
        """A session that cannot be written leaves the run without a session_id, and nothing else."""
        server = Server(store=FailingStore())
        pending = server.orchestrator.prompt(RunRequest(backend="claude", prompt="x"))
        server.reactor.spawned[-1].exit(0)
        outcome = self.successResultOf(pending)
        self.assertEqual((outcome.exit_code, outcome.session_id), (0, ""))
        self.flushLoggedErrors()

    def test_cancelled_while_creating_the_session(self) -> None:
        """A stream given up before its session exists never starts the CLI, and its session records the failure."""
        store = HeldCreates()
        server = Server(store=store)
        stream = self.successResultOf(
            server.orchestrator.stream_prompt(RunRequest(backend="claude", prompt="x"))
        )
        stream.cancel()
        store.release()
        self.assertEqual(server.reactor.spawned, [])
        outcome = self.successResultOf(stream.result())
        self.assertEqual(outcome.exit_code, -1)
        record = self.successResultOf(store.get(outcome.session_id))
        self.assertEqual(
            (record.status, record.turn_count, record.error_message), ("error", 1, "client disconnected")
        )

    def test_stream_when_shutting_down(self) -> None:
        """A run the supervisor refuses is an error event of the stream, and an error in the session."""
        server = Server()
        self.successResultOf(server.supervisor.stopService())
        stream = self.successResultOf(
            server.orchestrator.stream_prompt(RunRequest(backend="claude", prompt="x"))
        )
        [event] = drain(self, stream)
        self.assertEqual(event.type, "error")
        self.assertEqual(event.content["message"], "server is shutting down")
        outcome = self.successResultOf(stream.result())
        record = self.successResultOf(server.store.get(outcome.session_id))
        self.assertEqual(record.status, "error")

    def test_settled_waits_for_streams(self) -> None:
        """The orchestrator is settled once a stream under way has ended and its turn is recorded."""
        server = Server()
        stream = self.successResultOf(
            server.orchestrator.stream_prompt(RunRequest(backend="claude", prompt="x"))
        )
        settled = server.orchestrator.settled()
        self.assertNoResult(settled)
        server.reactor.spawned[-1].exit(0)
        self.successResultOf(settled)
        outcome = self.successResultOf(stream.result())
        record = self.successResultOf(server.store.get(outcome.session_id))
        self.assertEqual(record.turn_count, 1)
        self.successResultOf(server.orchestrator.settled())

    def test_prompt_when_shutting_down(self) -> None:
        """A non-streaming run the supervisor refuses fails with ShuttingDown (a 503)."""
        server = Server()
        self.successResultOf(server.supervisor.stopService())
        failure = self.failureResultOf(server.orchestrator.prompt(RunRequest(backend="claude", prompt="x")))
        failure.trap(ShuttingDown)

    def test_cancel_prompt(self) -> None:
        """Cancelling a prompt stops its CLI and records the turn as failed."""
        server = Server()
        pending = server.orchestrator.prompt(RunRequest(backend="claude", prompt="x"))
        child = server.reactor.spawned[-1]
        pending.cancel()
        self.failureResultOf(pending, CancelledError)
        server.reactor.advance(5)
        self.assertTrue(child.ended)
        page = self.successResultOf(server.store.list())
        [record] = page.sessions
        self.assertEqual((record.status, record.error_message), ("error", "client disconnected"))

    def test_stream_events_then_added(self) -> None:
        """The CLI's events come first, in order, then the run's result is recorded."""
        server = Server()
        stream = self.successResultOf(
            server.orchestrator.stream_prompt(RunRequest(backend="claude", prompt="x", ephemeral=True))
        )
        child = server.reactor.spawned[-1]
        child.emit_stdout(b'{"type":"assistant","message":{"content":[{"type":"text","text":"hi"}]}}\n')
        child.exit(0)
        events: list[Any] = drain(self, stream)
        self.assertEqual([e.type for e in events], ["message"])
        outcome = self.successResultOf(stream.result())
        self.assertEqual((outcome.exit_code, outcome.session_id), (0, ""))
