"""
Hardening of the real server under load and abuse
(docs/design/decisions.md#d4-admission-control, docs/design/decisions.md#d6-no-orphans,
docs/design/http.md#body-limit): admission control with real child processes,
request bodies far over the size limit, SIGTERM in the middle of streams,
and SIGKILL of the server itself.

Each test runs its own server, C{python -m twisted clinvk}, with C{HOME}
in a temporary directory and the fake CLIs first on its C{PATH}; the
fakes record how they were run (C{CLINVK_FAKE_RECORD}).  Waiting is
event-driven (output arriving, a process ending, a connection closing)
or a bounded poll; nothing waits for a fixed time.
"""

from __future__ import annotations

import json
import signal
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.interfaces import IPullProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import deferLater
from twisted.python.failure import Failure
from zope.interface import implementer

from tests.integration._processes import (
    TIMEOUT,
    alive,
    group_reaper,
    live_children,
    live_process_groups,
    post_json,
    reactor,
)
from tests.integration._server import KILL_GRACE, SHUTDOWN_TIMEOUT, NDJSONClient, ServerTestCase

T = TypeVar("T")

MiB = 1024 * 1024


def memory_of(pid: int) -> dict[str, int]:
    """
    The resident set size of process C{pid} and its peak so far, in bytes
    (C{VmRSS} and C{VmHWM} of C{/proc/<pid>/status}).
    """
    sizes = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                size, unit = value.split()
                assert unit == "kB", line
                sizes[name] = int(size) * 1024
    return sizes


@implementer(IPullProducer)
class _RepeatedBody:
    """
    Writes C{frame} C{count} times, then C{tail}, each time the transport
    asks for more: the body is never in memory as a whole, and its pace
    is the server's.
    """

    def __init__(self, transport: Any, frame: bytes, count: int, tail: bytes, per_call: int) -> None:
        self._transport = transport
        self._frame = frame
        self._left = count
        self._tail = tail
        self._per_call = per_call
        self.sent = 0
        self.done = False

    def resumeProducing(self) -> None:
        if self.done:
            return
        batch = min(self._per_call, self._left)
        self._left -= batch
        self._transport.writeSequence([self._frame] * batch)
        self.sent += batch * len(self._frame)
        if self._left == 0:
            self.done = True
            self._transport.write(self._tail)
            self._transport.unregisterProducer()

    def stopProducing(self) -> None:
        self.done = True


class Upload(Protocol):
    """
    Sends a request head, then a large body produced piece by piece with
    backpressure; collects the whole response (the request asks the server
    to close the connection after it).

    @ivar ended: Fires with everything the server sent once the connection
        is closed.
    """

    def __init__(self, head: bytes, frame: bytes, count: int, tail: bytes = b"") -> None:
        self._head = head
        self._frame = frame
        self._count = count
        self._tail = tail
        self.received = b""
        self.producer: _RepeatedBody | None = None
        self.ended: Deferred[bytes] = Deferred()

    def connectionMade(self) -> None:
        transport: Any = self.transport  # a TCP transport: also a consumer
        transport.write(self._head)
        # About 1 MiB each time the transport has sent what it had.
        per_call = max(1, MiB // len(self._frame))
        self.producer = _RepeatedBody(transport, self._frame, self._count, self._tail, per_call)
        transport.registerProducer(self.producer, False)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.producer is not None:
            self.producer.stopProducing()
        self.ended.callback(self.received)


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of a raw HTTP/1.1 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        decoded = b""
        while True:
            size_line, _, body = body.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            decoded, body = decoded + body[:size], body[size + 2 :]
        body = decoded
    return int(status_line.split()[1]), headers, body


class AdmissionTests(ServerTestCase):
    """
    At most C{max_concurrent_runs} CLIs at once; the others wait their turn
    (docs/design/decisions.md#d4-admission-control).
    """

    server_config = {"server": {"max_concurrent_runs": 2}}

    async def test_ten_prompts_two_slots(self) -> None:
        """
        Ten concurrent prompts of a second each on two slots: polled all
        along, never more than two CLIs are alive at once (counting both
        the server's children and the fakes that recorded themselves), two
        do run together, the whole takes at least five seconds, and all ten
        answer 200 with C{exit_code} 0.
        """
        prompts = [f"#fake delay=1\nslow prompt {number}" for number in range(10)]
        started = reactor.seconds()
        requests = [
            post_json(self.url("/api/v1/prompt"), {"backend": "claude", "prompt": prompt, "ephemeral": True})
            for prompt in prompts
        ]
        done: Deferred[list[tuple[int, Any]]] = gatherResults(
            [Deferred.fromCoroutine(request) for request in requests], consumeErrors=True
        )
        most = 0
        seen: set[int] = set()
        while not done.called:
            recorded = {record["pid"] for record in self.records_of()}
            children = {pid for pid in live_children(self.server_pid) if not group_reaper(pid)}
            running = children | {pid for pid in recorded if alive(pid)}
            seen |= running
            most = max(most, len(running))
            self.assertLessEqual(len(running), 2, f"more than two CLIs at once: {sorted(running)}")
            await deferLater(reactor, 0.02)
        answers = await done
        elapsed = reactor.seconds() - started

        for prompt, (code, answer) in zip(prompts, answers, strict=True):
            self.assertEqual(code, 200, answer)
            self.assertEqual(answer["exit_code"], 0, answer)
            self.assertEqual(answer["output"], f"claude answers: {prompt.splitlines()[1]}")
        self.assertEqual(sorted(record["stdin"] for record in self.records_of()), sorted(prompts))
        self.assertEqual(most, 2)
        self.assertGreaterEqual(len(seen), 10)
        self.assertGreaterEqual(elapsed, 5)


class BodyLimitTests(ServerTestCase):
    """
    A body over C{max_request_body_bytes} (10 MiB by default) gets 413, and
    the server does not keep it (docs/design/http.md#body-limit).
    """

    # Each upload is 100 MiB; the server may grow by far less than that.
    UPLOAD = 100 * MiB
    GROWTH = 20 * MiB

    async def upload(
        self, head: bytes, frame: bytes, count: int, tail: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        client = Upload(head, frame, count, tail)
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), client)
        raw = await client.ended.addTimeout(TIMEOUT * 2, reactor)
        return parse_response(raw)

    async def warm_up(self) -> dict[str, int]:
        """Exercise the request path once (a small invalid body); then the server's L{memory_of}."""
        code, answer = await post_json(self.url("/api/v1/prompt"), {"prompt": 1})
        self.assertEqual(code, 422, answer)
        return memory_of(self.server_pid)

    def assert_kept_nothing(self, before: dict[str, int]) -> None:
        """
        Neither the server's resident size nor its peak grew by
        L{GROWTH} since C{before} (the body went neither to memory nor,
        transiently, through it).
        """
        after = memory_of(self.server_pid)
        for name in ("VmRSS", "VmHWM"):
            self.assertLess(after[name] - before[name], self.GROWTH, f"{name} {before} -> {after}")

    def assert_too_large(self, code: int, headers: dict[str, str], body: bytes) -> None:
        self.assertEqual(code, 413, body)
        self.assertEqual(headers.get("content-type"), "application/json")
        self.assertEqual(
            json.loads(body),
            {"error": "request_too_large", "message": "request body exceeds size limit (10485760 bytes)"},
        )

    async def test_chunked_upload(self) -> None:
        """
        100 MiB sent chunked, at the pace the server reads it, gets 413, and
        the server's resident size (and its peak) grows by less than 20 MiB.
        """
        before = await self.warm_up()
        piece = 64 * 1024
        frame = b"%x\r\n" % piece + b"x" * piece + b"\r\n"
        head = (
            f"POST /api/v1/prompt HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        ).encode()
        code, headers, body = await self.upload(head, frame, self.UPLOAD // piece, b"0\r\n\r\n")
        self.assert_kept_nothing(before)
        self.assert_too_large(code, headers, body)
        # The server still serves.
        code, answer = await post_json(self.url("/api/v1/prompt"), {"backend": "claude", "prompt": "hi"})
        self.assertEqual((code, answer["exit_code"]), (200, 0), answer)

    async def test_declared_length(self) -> None:
        """
        A declared C{Content-Length: 104857600} gets 413 (after the body,
        sent at the pace the server reads it), and the server's resident
        size (and its peak) grows by less than 20 MiB.
        """
        before = await self.warm_up()
        piece = 64 * 1024
        head = (
            f"POST /api/v1/prompt HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {self.UPLOAD}\r\nConnection: close\r\n\r\n"
        ).encode()
        code, headers, body = await self.upload(head, b"x" * piece, self.UPLOAD // piece)
        self.assert_kept_nothing(before)
        self.assert_too_large(code, headers, body)


class ShutdownTests(ServerTestCase):
    """
    SIGTERM while streams run: they get C{shutdown_timeout_secs}, then
    their CLIs are stopped (docs/design/decisions.md#d6-no-orphans).
    """

    # One-shot runs (tests.integration.test_live_sessions stops live ones).
    server_config = {"server": {"shutdown_timeout_secs": SHUTDOWN_TIMEOUT, "live_idle_secs": 0}}

    async def test_sigterm_during_streams(self) -> None:
        """
        Three NDJSON streams whose CLIs (one per backend, each with a
        grandchild, one ignoring SIGTERM) would run for a minute: after
        SIGTERM the server waits C{shutdown_timeout_secs}, stops every CLI
        and grandchild, closes the streams and exits 0, within the shutdown
        timeout plus the kill grace (and a margin).
        """
        prompts = {
            "claude": "#fake grandchild chunks=30 chunk_delay=2\nclaude story",
            "codex": "#fake grandchild ignore_term chunks=30 chunk_delay=2\ncodex story",
            "gemini": "#fake grandchild chunks=30 chunk_delay=2\ngemini story",
        }
        clients = []
        for backend, prompt in prompts.items():
            client = NDJSONClient.post(
                "/api/v1/prompt",
                self.port,
                {"backend": backend, "prompt": prompt, "output_format": "stream-json"},
            )
            await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), client)
            clients.append(client)
        # Every CLI runs (with its grandchild) and every stream has begun.
        await self.eventually(
            lambda: len(self.records_of()) == 3 and all(client.events for client in clients)
        )
        records = self.records_of()
        self.assertEqual(sorted(record["name"] for record in records), sorted(prompts))
        pids = [pid for record in records for pid in (record["pid"], *record["grandchildren"])]
        self.assertEqual(len(pids), 6)
        self.assertTrue(all(alive(pid) for pid in pids))
        for client in clients:
            assert client.head is not None
            self.assertTrue(client.head.startswith(b"HTTP/1.0 200 "), client.head)

        self.signal_server("TERM")
        signalled = reactor.seconds()
        status = await self.server.ended
        stopped = reactor.seconds() - signalled
        self.assertEqual(status, 0, self.server_output())
        self.assertGreaterEqual(stopped, SHUTDOWN_TIMEOUT)
        self.assertLess(stopped, SHUTDOWN_TIMEOUT + KILL_GRACE + 3, self.server_output())

        # The CLIs and their grandchildren are gone (within moments of the
        # server's exit: a grandchild killed with its group may still be
        # on its way out), and so is the rest of their groups.
        await self.all_exit(pids, since=reactor.seconds(), within=1)
        # Each stream ends with an error event (cut short), then closes.
        for client in clients:
            await client.closed
            self.assertEqual(client.events[-1]["type"], "error", client.events)
        groups = {record["pgid"] for record in records}
        await self.eventually(lambda: not groups & live_process_groups(), within=KILL_GRACE + 1)


class KilledServerTests(ServerTestCase):
    """A server killed with SIGKILL takes its CLIs with it (docs/design/decisions.md#d6-no-orphans)."""

    # A one-shot run (tests.integration.test_live_sessions kills live ones).
    server_config = {"server": {"live_idle_secs": 0}}

    async def test_sigkill(self) -> None:
        """
        A CLI that hangs, with a grandchild: after SIGKILL of the server,
        neither exists within C{kill_grace_secs} + 1 s.
        """
        client = NDJSONClient.post(
            "/api/v1/prompt",
            self.port,
            {
                "backend": "claude",
                "prompt": "#fake grandchild hang\nnever done",
                "output_format": "stream-json",
            },
        )
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), client)
        await self.eventually(lambda: len(self.records_of()) == 1)
        [record] = self.records_of()
        [grandchild] = record["grandchildren"]
        self.assertTrue(alive(record["pid"]) and alive(grandchild))

        self.signal_server("KILL")
        killed = reactor.seconds()
        self.assertEqual(await self.server.ended, -signal.SIGKILL)
        await self.all_exit([record["pid"], grandchild], since=killed, within=KILL_GRACE + 1)
        await client.closed
