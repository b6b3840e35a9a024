"""
The request deadline (docs/design/http.md#request-deadline): 504 before a
response started, the stream's own timeout error after, and the CLI's group
stopped either way.
"""

from __future__ import annotations

import json
import signal

from tests.web._native import NativeTestCase, frames, named_events

PROMPT = {"backend": "claude", "prompt": "x"}


class DeadlineTests(NativeTestCase):
    config = {"server": {"request_timeout_secs": 10}}

    def test_prompt(self) -> None:
        """A prompt still running at the deadline: 504 problem, the CLI stopped, the session in error."""
        pending = self.start("POST", "/api/v1/prompt", PROMPT)
        child = self.child()
        self.reactor.advance(10)
        problem = self.problem(self.finish(pending), 504)
        self.assertEqual(
            (problem["title"], problem["detail"]), ("Gateway Timeout", "request timed out after 10s")
        )
        self.assertIn((child.pid, signal.SIGTERM), self.reactor.signals)
        [session] = json.loads(self.request("GET", "/api/v1/sessions").body)["sessions"]
        self.assertEqual(session["status"], "error")

    def test_in_time(self) -> None:
        """A prompt that ends before the deadline is unaffected, and its timer is gone."""
        pending = self.start("POST", "/api/v1/prompt", PROMPT)
        self.reactor.advance(9)
        self.child().exit(0)
        self.assertEqual(self.finish(pending).code, 200)
        self.assertEqual(
            [call for call in self.reactor.getDelayedCalls() if call.getTime() >= 1_750_000_010], []
        )

    def test_chain_between_steps(self) -> None:
        """A chain whose deadline passes during a step: 504 and no further step."""
        steps = [{"backend": "claude", "prompt": "a"}, {"backend": "claude", "prompt": "b"}]
        pending = self.start("POST", "/api/v1/chain", {"steps": steps})
        self.reactor.advance(10)
        self.problem(self.finish(pending), 504)
        self.assertEqual(len(self.reactor.spawned), 1)

    def test_ndjson_stream(self) -> None:
        """A stream past its deadline ends with an error event whose code is timeout."""
        _, chunks = self.stream(
            self.start("POST", "/api/v1/prompt", {**PROMPT, "output_format": "stream-json"})
        )
        self.reactor.advance(10)
        last = self.lines(chunks)[-1]
        self.assertEqual((last["type"], last["content"]["code"]), ("error", "timeout"))
        self.successResultOf(self.collected)

    def test_openai(self) -> None:
        pending = self.start(
            "POST",
            "/openai/v1/chat/completions",
            {"model": "claude", "messages": [{"role": "user", "content": "x"}]},
        )
        self.reactor.advance(10)
        response = self.finish(pending)
        self.assertEqual(
            (response.code, json.loads(response.body)["error"]["message"]),
            (504, "request timed out after 10s"),
        )
        _, chunks = self.stream(
            self.start(
                "POST",
                "/openai/v1/chat/completions",
                {"model": "claude", "messages": [{"role": "user", "content": "x"}], "stream": True},
            )
        )
        self.reactor.advance(10)
        self.stub.flush()
        received = frames(chunks)
        self.assertEqual(json.loads(received[-2].removeprefix("data: "))["error"]["code"], "timeout")
        self.assertEqual(received[-1], "data: [DONE]")


class AnthropicDeadlineTests(NativeTestCase):
    config = {"server": {"request_timeout_secs": 10}}

    def test_stream_timeout(self) -> None:
        _, chunks = self.stream(
            self.start(
                "POST",
                "/anthropic/v1/messages",
                {
                    "model": "claude",
                    "max_tokens": 5,
                    "messages": [{"role": "user", "content": "x"}],
                    "stream": True,
                },
            )
        )
        self.reactor.advance(10)
        self.stub.flush()
        name, data = named_events(chunks)[-1]
        self.assertEqual((name, data["error"]["type"]), ("error", "timeout_error"))
