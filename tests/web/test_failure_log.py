"""
A CLI that fails is logged once, at warning level, whichever API ran it
and however many layers pass its failure on (issue 16).
"""

from __future__ import annotations

import json
from typing import Any, cast

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, globalLogPublisher
from twisted.trial.unittest import TestCase

from tests.backends.helpers import sample
from tests.web._native import NativeTestCase


class FailureLogTests(NativeTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.events = EventLoggingObserver.createWithCleanup(cast("TestCase", self), globalLogPublisher)

    def failures(self) -> list[tuple[Any, ...]]:
        """The backend, exit status and message of each failure logged."""
        return [
            (event["log_level"], event["backend"], event["exit_code"], event["error"])
            for event in self.events
            if event.get("log_format", "").startswith("Backend run failed ")
        ]

    def fail_child(self, output: bytes = b"Invalid API key\n", index: int = -1) -> None:
        """The child prints C{output} (Claude's stderr is merged into it) and exits 1."""
        self.child(index).emit_stdout(output)
        self.child(index).exit(1)

    def test_openai_502(self) -> None:
        """The 502 of the OpenAI API: one warning, beside the access line."""
        pending = self.start(
            "POST",
            "/openai/v1/chat/completions",
            {"model": "claude", "messages": [{"role": "user", "content": "x"}]},
        )
        self.fail_child()
        self.assertEqual(self.finish(pending).code, 502)
        self.assertEqual(self.failures(), [(LogLevel.warn, "claude", 1, "Invalid API key")])

    def test_anthropic_stream(self) -> None:
        """A failure in an Anthropic stream, once it has started: one warning."""
        _, chunks = self.stream(
            self.start(
                "POST",
                "/anthropic/v1/messages",
                {
                    "model": "gemini",
                    "max_tokens": 16,
                    "stream": True,
                    "messages": [{"role": "user", "content": "x"}],
                },
            )
        )
        self.fail_child(sample("gemini/stream_error.jsonl").encode())
        self.stub.flush()
        self.assertIn(b"event: error", b"".join(chunks))
        self.assertEqual(self.failures(), [(LogLevel.warn, "gemini", 1, "Quota exceeded for model")])

    def test_native_prompt(self) -> None:
        """A failed native prompt is a 200 result, and one warning."""
        pending = self.start("POST", "/api/v1/prompt", {"backend": "claude", "prompt": "x"})
        self.fail_child()
        response = self.finish(pending)
        self.assertEqual((response.code, json.loads(response.body)["exit_code"]), (200, 1))
        self.assertEqual(self.failures(), [(LogLevel.warn, "claude", 1, "Invalid API key")])

    def test_native_parallel(self) -> None:
        """Each failed run of a batch: one warning each."""
        pending = self.start(
            "POST",
            "/api/v1/parallel",
            {"tasks": [{"backend": "claude", "prompt": "a"}, {"backend": "claude", "prompt": "b"}]},
        )
        self.fail_child(b"first failure\n", index=0)
        self.fail_child(b"second failure\n", index=1)
        self.assertEqual(self.finish(pending).code, 200)
        self.assertEqual(
            sorted(self.failures()),
            [(LogLevel.warn, "claude", 1, "first failure"), (LogLevel.warn, "claude", 1, "second failure")],
        )
