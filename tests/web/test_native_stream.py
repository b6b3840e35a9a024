"""
POST /api/v1/prompt as an NDJSON stream (docs/design/native-api.md#prompt-stream):
events as the CLI produces them, every outcome inside the stream,
backpressure and disconnects.
"""

from __future__ import annotations

import json
import signal
from typing import Any

from tests.web._native import NativeTestCase

STREAM = {"backend": "claude", "prompt": "hi", "output_format": "stream-json"}


def line(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode() + b"\n"


ASSISTANT = line({"type": "assistant", "message": {"content": [{"type": "text", "text": "Hello"}]}})
RESULT = line(
    {
        "type": "result",
        "subtype": "success",
        "result": "Hello",
        "session_id": "n-1",
        "usage": {"input_tokens": 3, "output_tokens": 7},
    }
)


class StreamTests(NativeTestCase):
    def test_events_as_produced(self) -> None:
        """
        Headers first, then each event on its own line as soon as the CLI
        writes it, all carrying the server session id.
        """
        response, chunks = self.stream(self.start("POST", "/api/v1/prompt", STREAM))
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/x-ndjson"])
        self.assertEqual(response.headers.getRawHeaders("cache-control"), ["no-cache"])
        child = self.child()
        self.assertIn("stream-json", child.argv)
        child.emit_stdout(ASSISTANT)
        [first] = self.lines(chunks)
        self.assertEqual(
            (first["type"], first["content"]["text"], first["sequence"]), ("message", "Hello", 1)
        )
        self.assertNotIn(b" ", b"".join(chunks).split(b'"text"')[0])  # compact JSON
        child.emit_stdout(RESULT)
        child.exit(0)
        events = self.lines(chunks)
        self.assertEqual([e["type"] for e in events], ["message", "done"])
        self.assertEqual(events[-1]["content"]["token_usage"], {"input_tokens": 3, "output_tokens": 7})
        session_ids = {e["session_id"] for e in events}
        [session_id] = session_ids
        self.assertEqual(self.session(session_id)["status"], "completed")
        self.successResultOf(self.collected)
        for event in events:
            self.assertNotIn("$schema", event)

    def test_configured_default_streams(self) -> None:
        """output.format stream-json makes a prompt without output_format stream."""
        self.use_server(config={"output": {"format": "stream-json"}})
        response, chunks = self.stream(
            self.start("POST", "/api/v1/prompt", {"backend": "claude", "prompt": "x"})
        )
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["application/x-ndjson"])
        self.child().emit_stdout(RESULT)
        self.child().exit(0)
        self.assertEqual([e["type"] for e in self.lines(chunks)], ["done"])

    def test_preflight_failure_in_stream(self) -> None:
        """An unknown backend is one error event, with status 200 and no session."""
        _, chunks = self.stream(self.start("POST", "/api/v1/prompt", {**STREAM, "backend": "gpt"}))
        [event] = self.lines(chunks)
        self.assertEqual((event["type"], event["backend"]), ("error", "gpt"))
        self.assertTrue(event["content"]["message"].startswith('unknown backend "gpt"'))
        self.assertNotIn("session_id", event)
        self.assertEqual(json.loads(self.request("GET", "/api/v1/sessions").body)["total"], 0)

    def test_dry_run(self) -> None:
        """Two events: the command line as a message, then done; no sequence."""
        _, chunks = self.stream(self.start("POST", "/api/v1/prompt", {**STREAM, "dry_run": True}))
        message, done = self.lines(chunks)
        self.assertEqual((message["type"], message["content"]["role"]), ("message", "assistant"))
        self.assertTrue(message["content"]["text"].startswith("Would execute:"))
        self.assertEqual((done["type"], done["content"]), ("done", {}))
        self.assertNotIn("sequence", message)
        self.assertNotIn("sequence", done)

    def test_ephemeral_has_no_session(self) -> None:
        _, chunks = self.stream(
            self.start("POST", "/api/v1/prompt", {**STREAM, "ephemeral": True, "dry_run": True})
        )
        for event in self.lines(chunks):
            self.assertNotIn("session_id", event)

    def test_silent_failure(self) -> None:
        """A CLI exiting 2 without any error output ends the stream with error code exit_2."""
        _, chunks = self.stream(self.start("POST", "/api/v1/prompt", STREAM))
        self.child().exit(2)
        [event] = self.lines(chunks)
        self.assertEqual((event["type"], event["content"]["code"]), ("error", "exit_2"))

    def test_disconnect(self) -> None:
        """Closing the connection kills the CLI; the session ends in error, not active."""
        _, chunks = self.stream(self.start("POST", "/api/v1/prompt", STREAM))
        child = self.child()
        child.emit_stdout(ASSISTANT)
        [event] = self.lines(chunks)
        self.disconnect()
        self.assertIn((child.pid, signal.SIGTERM), self.reactor.signals)
        self.reactor.advance(5)
        session = self.session(event["session_id"])
        self.assertEqual((session["status"], session["turn_count"]), ("error", 1))

    def test_slow_client_pauses_the_cli(self) -> None:
        """
        While the client's connection is full the CLI's output is not read;
        once it drains, every event arrives in order.
        """
        _, chunks = self.stream(self.start("POST", "/api/v1/prompt", STREAM))
        child = self.child()
        [pump] = self.stub._agent._pumps
        # The server's HTTP channel: its transport pauses it when full.
        channel = pump.server._channel
        channel.pauseProducing()
        for _ in range(100):
            child.emit_stdout(ASSISTANT)
        self.assertTrue(child.paused)
        channel.resumeProducing()
        self.stub.flush()
        self.assertFalse(child.paused)
        child.exit(0)
        events = self.lines(chunks)
        self.assertEqual([e["sequence"] for e in events if e["type"] == "message"], list(range(1, 101)))


class AdmissionTests(NativeTestCase):
    """
    A streamed prompt refused a run slot is refused as any request is
    (docs/design/decisions.md#d4-admission-control).
    """

    config = {"server": {"max_concurrent_runs": 1, "max_queued_runs": 0}}

    def test_refused_is_429(self) -> None:
        """With the only slot taken, an NDJSON prompt gets 429 and Retry-After, not a 200 stream."""
        holder, _ = self.stream(self.start("POST", "/api/v1/prompt", STREAM))
        self.assertEqual(holder.code, 200)
        refused = self.request("POST", "/api/v1/prompt", STREAM)
        self.assertEqual(refused.code, 429, refused.body)
        self.assertTrue(refused.header("Retry-After"))
        self.assertEqual(len(self.reactor.spawned), 1)

    def test_queued_stream_waits_for_its_slot(self) -> None:
        """A queued NDJSON prompt answers once its CLI runs."""
        self.use_server(config={"server": {"max_concurrent_runs": 1, "max_queued_runs": 1}})
        self.stream(self.start("POST", "/api/v1/prompt", STREAM))
        queued = self.start("POST", "/api/v1/prompt", STREAM)
        self.stub.flush()
        self.assertNoResult(queued)
        first = self.child()
        first.emit_stdout(RESULT)
        first.exit(0)
        response, _ = self.stream(queued)
        self.assertEqual(response.code, 200)
        self.assertEqual(len(self.reactor.spawned), 2)
