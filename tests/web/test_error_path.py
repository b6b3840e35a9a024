"""
Tests for the one error path of L{clinvk.web._errors}: whatever a handler
raises, before its response started or once it streams, is answered by
L{render_failure} in the family's dialect, and a stream's last frame says
what the JSON body would have said.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import closing
from typing import TYPE_CHECKING, Any, ClassVar, cast

from twisted.internet.task import Clock
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.iweb import IRequest

from clinvk.backends import events
from clinvk.errors import (
    BackendFailed,
    ClinvkError,
    ErrorDetail,
    InternalError,
    NotFound,
    RunTimedOut,
    SessionNotFound,
    StoreError,
)
from clinvk.model import UnifiedEvent
from clinvk.openapi import Operation
from clinvk.orchestration import PromptStream
from clinvk.web._errors import Dialect, stream_error_frame
from clinvk.web._routing import family_app, route
from clinvk.web._sse import EventSource, frame
from clinvk.web._streaming import EventOrigin, stream_ndjson
from clinvk.web._wrappers import AccessLog, RequestIds
from clinvk.web.root import ClinvkRoot
from tests.helpers import Response, call
from tests.web._native import named_events
from tests.web.test_errors import ERRORS as _DIALECT_ERRORS

if TYPE_CHECKING:
    _TestCase = SynchronousTestCase
else:
    _TestCase = object

NOW = 1_750_000_000.0

ERRORS: dict[str, Exception] = {
    **_DIALECT_ERRORS,
    "session": SessionNotFound("no session found with prefix: abcd1234"),
    "store": StoreError("failed to read session index: permission denied"),
}

# The frames the hand-written error events of the streams were, byte for
# byte: the official SDKs parse them.
NATIVE_TIMEOUT = (
    b'{"type":"error","backend":"claude","session_id":"5e551","timestamp":"2025-06-15T15:06:40.000000+00:00",'
    b'"content":{"code":"timeout","message":"request timed out after 300s"}}\n'
)
OPENAI_TIMEOUT = (
    b'data: {"error":{"message":"request timed out after 300s","type":"server_error","param":null,'
    b'"code":"timeout"}}\n\ndata: [DONE]\n\n'
)
OPENAI_FAILED = (
    b'data: {"error":{"message":"claude exited with status 1: not logged in","type":"server_error",'
    b'"param":null,"code":"backend_failed"}}\n\ndata: [DONE]\n\n'
)
ANTHROPIC_TIMEOUT = (
    b'event: error\ndata: {"type":"error","error":{"type":"timeout_error",'
    b'"message":"request timed out after 300s"}}\n\n'
)
ANTHROPIC_FAILED = (
    b'event: error\ndata: {"type":"error","error":{"type":"api_error",'
    b'"message":"claude exited with status 1: not logged in"}}\n\n'
)


class FailingStream:
    """
    A prompt stream that delivers one event, then fails with C{error}
    (as a stream whose handler is cancelled, or whose writing fails).
    """

    backend = "claude"
    session_id = "5e551"

    def __init__(self, error: Exception) -> None:
        self._error = error
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    async def __aiter__(self) -> AsyncIterator[UnifiedEvent]:
        yield events.message("Hello", 1)
        raise self._error


def _operation(path: str) -> Operation:
    return Operation(operation_id=path, method="POST", path=path, tag="test", summary=path)


def failing_family(prefix: str, dialect: Dialect, clock: Clock) -> Any:
    """
    A family whose routes raise C{ERRORS[name]}:

      - C{<prefix>/raise/{name}} before it answers;
      - C{<prefix>/named/{name}}, a route that names its failure;
      - C{<prefix>/stream/{name}} once its stream (the family's kind) has
        started.
    """

    class Failing:
        operations: ClassVar[tuple[Operation, ...]] = ()
        app = family_app(dialect)
        streams: list[FailingStream] = []

        @route(app, _operation(f"{prefix}/raise/{{name}}"))
        def raise_error(self, request: IRequest, name: str) -> bytes:
            raise ERRORS[name]

        @route(app, _operation(f"{prefix}/named/{{name}}"), failure="widget failed")
        async def named(self, request: IRequest, name: str) -> bytes:
            raise ERRORS[name]

        @route(app, _operation(f"{prefix}/stream/{{name}}"))
        async def stream(self, request: IRequest, name: str) -> None:
            if dialect is Dialect.NATIVE:
                failing = FailingStream(ERRORS[name])
                self.streams.append(failing)
                await stream_ndjson(request, cast("PromptStream", failing), clock)
                return
            source = EventSource(request, clock, 0)
            with closing(source):
                await source.send(frame({"type": "ping"}, "ping" if dialect is Dialect.ANTHROPIC else None))
                raise ERRORS[name]

    Failing.dialect = dialect  # type: ignore[attr-defined]
    return Failing()


class PathMixin(_TestCase):
    """
    What holds in every dialect, mixed into a L{SynchronousTestCase} that
    says which family: mounted at C{mount}, its routes under C{prefix}.
    """

    mount: ClassVar[str]
    prefix: ClassVar[str]
    dialect: ClassVar[Dialect]

    def setUp(self) -> None:
        clock = Clock()
        clock.advance(NOW)
        self.family = failing_family(self.prefix, self.dialect, clock)
        self.root = ClinvkRoot(
            mounts=[(self.mount, self.family)],
            fallback=failing_family("", Dialect.META, clock),
            request_ids=RequestIds("test-host", "AAAAAAAAAA"),
            access_log=AccessLog(clock),
        )
        self.events = EventLoggingObserver.createWithCleanup(cast("TestCase", self), globalLogPublisher)

    def post(self, kind: str, name: str) -> Response:
        return call(self, self.root, "POST", f"{self.prefix}/{kind}/{name}")

    def stream_error(self, name: str) -> tuple[Response, bytes]:
        """The response of a stream that C{ERRORS[name]} ended, and its last frame."""
        response = self.post("stream", name)
        self.assertEqual(response.code, 200)
        return response, self.last_frame(response.body)

    def last_frame(self, body: bytes) -> bytes:
        raise NotImplementedError()

    def unhandled(self) -> list[dict[str, Any]]:
        """The events logged for unexpected errors."""
        return [event for event in self.events if "log_failure" in event]

    def test_unexpected_logged_once(self) -> None:
        """
        An unexpected error is logged once, with its traceback and the
        request id, whether or not the response has started.
        """
        for kind in ("raise", "stream"):
            logged = len(self.unhandled())
            response = self.post(kind, "crash")
            self.assertNotIn(b"secret", response.body)
            [event] = self.unhandled()[logged:]
            self.assertEqual(event["request_id"], response.header("X-Request-Id"))
            self.assertEqual(event["path"], f"{self.prefix}/{kind}/crash")
            self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_known_errors_not_logged(self) -> None:
        """Errors of the hierarchy are answers, not incidents: nothing is logged."""
        for name in ERRORS:
            if name != "crash":
                self.post("raise", name)
                self.post("stream", name)
        self.assertEqual(self.unhandled(), [])

    def test_session_errors(self) -> None:
        """The session store's errors are answered like any other error of the hierarchy."""
        for name, status in (("session", 404), ("store", 500)):
            self.assertEqual(self.post("raise", name).code, status)

    def test_store_failure_logged(self) -> None:
        """
        A failure of the session store is logged once, as an error with its
        cause and the request id, without a traceback.
        """
        response = self.post("raise", "store")
        [event] = [e for e in self.events if e.get("reason") == ERRORS["store"].args[0]]
        self.assertEqual(event["log_level"], LogLevel.error)
        self.assertEqual(event["request_id"], response.header("X-Request-Id"))
        self.assertNotIn("log_failure", event)


class NativePathTests(PathMixin, SynchronousTestCase):
    mount = "/api/v1"
    prefix = "/api/v1"
    dialect = Dialect.NATIVE

    def last_frame(self, body: bytes) -> bytes:
        return body.splitlines(keepends=True)[-1]

    def test_stream_frame_per_error(self) -> None:
        """
        Every error ends an NDJSON stream with an error event holding its
        code and message, from the stream's backend and session, after the
        events delivered; the stream's run is stopped.
        """
        for name, raised in ERRORS.items():
            error = raised if isinstance(raised, ClinvkError) else InternalError("internal server error")
            response, last = self.stream_error(name)
            self.assertEqual(response.header("Content-Type"), "application/x-ndjson")
            first, *_ = response.body.splitlines()
            self.assertEqual(json.loads(first)["type"], "message")
            event = json.loads(last)
            self.assertEqual(
                (event["type"], event["backend"], event["session_id"], event["content"]),
                ("error", "claude", "5e551", {"code": error.code, "message": error.message}),
                name,
            )
            self.assertTrue(self.family.streams[-1].cancelled)
        self.flushLoggedErrors(RuntimeError)

    def test_timeout_frame(self) -> None:
        """The deadline's event is the one the stream wrote before."""
        self.assertEqual(self.stream_error("timeout")[1], NATIVE_TIMEOUT)

    def test_named_failure(self) -> None:
        """
        On a route that names its failure, an unexpected error and a store
        failure are that failure, with their cause as the one detail
        (docs/design/error-mapping.md#problem-catalogue); the other errors keep their
        own answer.
        """
        for name, cause in (
            ("crash", "secret internal detail"),
            ("store", "failed to read session index: permission denied"),
        ):
            response = self.post("named", name)
            self.assertEqual(response.code, 500)
            problem = json.loads(response.body)
            self.assertEqual((problem["detail"], problem["errors"]), ("widget failed", [{"message": cause}]))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(json.loads(self.post("named", "invalid").body)["detail"], "prompt is required")
        self.assertEqual(json.loads(self.post("named", "timeout").body)["status"], 504)

    def test_unnamed_failure(self) -> None:
        """Elsewhere an unexpected error is the generic 500, and a store failure says its cause."""
        self.assertEqual(json.loads(self.post("raise", "crash").body)["detail"], "internal server error")
        self.flushLoggedErrors(RuntimeError)
        problem = json.loads(self.post("raise", "store").body)
        self.assertEqual(problem["detail"], "failed to read session index: permission denied")

    def test_session_not_found(self) -> None:
        """An unknown session is the reference's 404: C{session not found}, the reason as detail."""
        problem = json.loads(self.post("raise", "session").body)
        self.assertEqual(
            (problem["status"], problem["detail"], problem["errors"]),
            (404, "session not found", [{"message": "no session found with prefix: abcd1234"}]),
        )


class OpenAIPathTests(PathMixin, SynchronousTestCase):
    mount = "/openai"
    prefix = "/openai/v1"
    dialect = Dialect.OPENAI

    def last_frame(self, body: bytes) -> bytes:
        frames = body.split(b"\n\n")
        self.assertEqual(frames[-2:], [b"data: [DONE]", b""])
        return frames[-3] + b"\n\n" + frames[-2] + b"\n\n"

    def test_stream_frame_per_error(self) -> None:
        """
        Every error ends an OpenAI stream with the error object its JSON
        answer holds, then C{[DONE]} (docs/design/decisions.md#d2-sdk-error-dialects).
        """
        for name in ERRORS:
            answer = json.loads(self.post("raise", name).body)
            response, last = self.stream_error(name)
            self.assertEqual(response.header("Content-Type"), "text/event-stream")
            self.assertTrue(response.body.startswith(b'data: {"type":"ping"}\n\n'))
            data = last.split(b"\n\n")[0].removeprefix(b"data: ")
            self.assertEqual(json.loads(data), answer, name)
        self.flushLoggedErrors(RuntimeError)

    def test_frames_as_before(self) -> None:
        """The deadline's and the CLI's failures are the frames the stream wrote before."""
        self.assertEqual(self.stream_error("timeout")[1], OPENAI_TIMEOUT)
        self.assertEqual(self.stream_error("failed")[1], OPENAI_FAILED)


class AnthropicPathTests(PathMixin, SynchronousTestCase):
    mount = "/anthropic"
    prefix = "/anthropic/v1"
    dialect = Dialect.ANTHROPIC

    def last_frame(self, body: bytes) -> bytes:
        return body.split(b"\n\n")[-2] + b"\n\n"

    def test_stream_frame_per_error(self) -> None:
        """
        Every error ends an Anthropic stream with an C{error} event holding
        its JSON answer, but for the deadline, a C{timeout_error} in a
        stream (docs/design/http.md#request-deadline).
        """
        for name in ERRORS:
            answer = json.loads(self.post("raise", name).body)
            response, _ = self.stream_error(name)
            self.assertEqual(response.header("Content-Type"), "text/event-stream")
            (first, _), *_, (event, data) = named_events([response.body])
            self.assertEqual((first, event), ("ping", "error"))
            if name == "timeout":
                answer["error"]["type"] = "timeout_error"
            self.assertEqual(data, answer, name)
        self.flushLoggedErrors(RuntimeError)

    def test_frames_as_before(self) -> None:
        """The deadline's and the CLI's failures are the frames the stream wrote before."""
        self.assertEqual(self.stream_error("timeout")[1], ANTHROPIC_TIMEOUT)
        self.assertEqual(self.stream_error("failed")[1], ANTHROPIC_FAILED)


class StreamErrorFrameTests(SynchronousTestCase):
    """L{stream_error_frame} on its own."""

    origin = EventOrigin("claude", "5e551", NOW)

    def test_each_format(self) -> None:
        timeout = RunTimedOut("request timed out after 300s")
        failed = BackendFailed("claude exited with status 1: not logged in")
        self.assertEqual(stream_error_frame(Dialect.NATIVE, timeout, self.origin), NATIVE_TIMEOUT)
        self.assertEqual(stream_error_frame(Dialect.OPENAI, timeout), OPENAI_TIMEOUT)
        self.assertEqual(stream_error_frame(Dialect.OPENAI, failed), OPENAI_FAILED)
        self.assertEqual(stream_error_frame(Dialect.ANTHROPIC, timeout), ANTHROPIC_TIMEOUT)
        self.assertEqual(stream_error_frame(Dialect.ANTHROPIC, failed), ANTHROPIC_FAILED)

    def test_native_event_before_session(self) -> None:
        """An event of a stream without a session yet has no session_id; details stay out."""
        error = NotFound("session not found", details=[ErrorDetail("no session found with prefix: ab")])
        event = json.loads(stream_error_frame(Dialect.NATIVE, error, EventOrigin("codex", "", NOW)))
        self.assertNotIn("session_id", event)
        self.assertEqual(event["content"], {"code": "not_found", "message": "session not found"})

    def test_native_needs_origin(self) -> None:
        """A native event cannot be written without the stream's backend."""
        self.assertRaises(ValueError, stream_error_frame, Dialect.NATIVE, InternalError("x"))
