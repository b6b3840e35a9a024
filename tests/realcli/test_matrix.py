"""
Every route on every backend, with the real CLIs: the native prompt (JSON
and NDJSON), session continuation, parallel, chain and compare, OpenAI
chat completions and Anthropic messages (JSON and SSE, through the
official SDKs).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from clinvk.testing import model_server
from tests.integration._sdk_server import off_reactor
from tests.realcli._harness import MODELS, RealCLITestCase


class MatrixMixin:
    """The matrix for one backend, L{backend}."""

    backend: ClassVar[str]

    def assert_turn(self: Any, number: int, expected_user_text: str) -> None:
        """The model's turn C{number} (from 1) carried C{expected_user_text} as its last user text."""
        turns = self.model.turns(self.backend)
        self.assertGreaterEqual(len(turns), number, [t.path for t in turns])
        self.assertIn(expected_user_text, turns[number - 1].user_texts()[-1])

    @off_reactor
    def test_native_prompt(self: Any) -> None:
        """A prompt reaches the model through the CLI's stdin; its answer, session and tokens come back."""
        self.model.script(self.backend, model_server.text("Four.", input_tokens=31))
        status, _, body = self.prompt(self.backend, "What is 2+2?")
        self.assertEqual(status, 200, body)
        self.assertEqual((body["exit_code"], body["output"]), (0, "Four."), body)
        self.assertNotIn("error", body)
        self.assertTrue(body["session_id"])
        self.assertGreaterEqual(body["token_usage"]["input_tokens"], 31)
        self.assert_turn(1, "What is 2+2?")

    @off_reactor
    def test_native_stream(self: Any) -> None:
        """An NDJSON prompt streams the answer's text and ends with its usage."""
        answer = "One two three four five six."
        self.model.script(self.backend, model_server.text(answer, chunks=3))
        status, headers, raw = self.post_raw(
            "/api/v1/prompt", {"backend": self.backend, "prompt": "Count", "output_format": "stream-json"}
        )
        self.assertEqual(status, 200)
        self.assertIn("ndjson", headers["content-type"])
        events = [json.loads(line) for line in raw.decode().splitlines() if line]
        kinds = [event["type"] for event in events]
        self.assertEqual(kinds[0], "init", kinds)
        self.assertEqual(kinds[-1], "done", kinds)
        self.assertNotIn("error", kinds, events)
        self.assertTrue(events[0]["content"]["backend_session_id"])
        text = "".join(
            event["content"]["text"]
            for event in events
            if event["type"] == "message" and event["content"].get("is_partial")
        ) or "".join(event["content"]["text"] for event in events if event["type"] == "message")
        self.assertEqual(text, answer)

    @off_reactor
    def test_session_continuation(self: Any) -> None:
        """A second prompt on a session resumes the CLI's own conversation: the model sees the first exchange."""
        self.model.script(self.backend, model_server.text("Seven."), model_server.text("Fourteen."))
        _, _, first = self.prompt(self.backend, "Pick a number")
        self.assertEqual(first["exit_code"], 0, first)
        _, _, second = self.prompt(self.backend, "Double it", session_id=first["session_id"])
        self.assertEqual((second["exit_code"], second["output"]), (0, "Fourteen."), second)
        self.assertEqual(second["session_id"], first["session_id"])
        history = json.dumps(self.model.turns(self.backend)[-1].body)
        self.assertIn("Pick a number", history)
        self.assertIn("Seven.", history)
        _, _, session = self.get_json(f"/api/v1/sessions/{first['session_id']}")
        self.assertEqual(session["turn_count"], 2)

    @off_reactor
    def test_parallel_and_chain(self: Any) -> None:
        """Parallel tasks each get their answer; a chain's second step sees the first step's answer."""
        self.model.script(self.backend, model_server.text("Alpha."), model_server.text("Beta."))
        tasks = [
            {"backend": self.backend, "prompt": "first task"},
            {"backend": self.backend, "prompt": "second task"},
        ]
        status, _, raw = self.post_raw("/api/v1/parallel", {"tasks": tasks})
        self.assertEqual(status, 200, raw)
        results = json.loads(raw)["results"]
        self.assertEqual(sorted(result["output"] for result in results), ["Alpha.", "Beta."], results)
        self.assertTrue(all(result["exit_code"] == 0 for result in results), results)

        self.model.script(self.backend, model_server.text("Paris."))
        steps = [
            {"name": "ask", "backend": self.backend, "prompt": "Capital of France?"},
            {"name": "use", "backend": self.backend, "prompt": "Spell {{previous}} backwards"},
        ]
        status, _, raw = self.post_raw("/api/v1/chain", {"steps": steps})
        self.assertEqual(status, 200, raw)
        chained = json.loads(raw)["results"]
        self.assertEqual([step["exit_code"] for step in chained], [0, 0], chained)
        self.assert_turn(4, "Spell Paris. backwards")

    @off_reactor
    def test_openai_chat(self: Any) -> None:
        """The OpenAI SDK gets the answer as a completion and as a stream of chunks."""
        client = self.openai_client()
        self.model.script(self.backend, model_server.text("Hello there."))
        completion = client.chat.completions.create(
            model=MODELS[self.backend], messages=[{"role": "user", "content": "Say hello"}]
        )
        self.assertEqual(completion.choices[0].message.content, "Hello there.")
        self.assertEqual(completion.choices[0].finish_reason, "stop")
        self.assertGreater(completion.usage.prompt_tokens, 0)

        self.model.script(self.backend, model_server.text("Streamed hello.", chunks=3))
        stream = client.chat.completions.create(
            model=MODELS[self.backend], messages=[{"role": "user", "content": "Say hello"}], stream=True
        )
        chunks = list(stream)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        self.assertEqual(text, "Streamed hello.")
        self.assertEqual([chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1], "stop")
        self.assert_turn(2, "Say hello")

    @off_reactor
    def test_anthropic_messages(self: Any) -> None:
        """The Anthropic SDK gets the answer as a message and as an event stream."""
        client = self.anthropic_client()
        self.model.script(self.backend, model_server.text("Bonjour."))
        message = client.messages.create(
            model=self.backend, max_tokens=100, messages=[{"role": "user", "content": "Say hello in French"}]
        )
        self.assertEqual([block.text for block in message.content], ["Bonjour."])
        self.assertEqual(message.stop_reason, "end_turn")

        self.model.script(self.backend, model_server.text("Bonjour, le monde.", chunks=3))
        with client.messages.stream(
            model=self.backend, max_tokens=100, messages=[{"role": "user", "content": "Say hello in French"}]
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        self.assertEqual(text, "Bonjour, le monde.")
        self.assertEqual(final.stop_reason, "end_turn")


# Each CLI's shell tool and the request options that let it run unasked.
SHELL_TOOLS = {
    "claude": (
        "Bash",
        {"command": "echo hi-from-tool", "description": "Print a word"},
        {"approval_mode": "none"},
    ),
    "codex": ("exec_command", {"cmd": "echo hi-from-tool"}, {"sandbox_mode": "full"}),
    "gemini": (
        "run_shell_command",
        {"command": "echo hi-from-tool", "description": "Print a word"},
        {"approval_mode": "none"},
    ),
}


class ToolMixin:
    backend: ClassVar[str]

    @off_reactor
    def test_builtin_tool(self: Any) -> None:
        """
        The model calls the CLI's own shell tool: the CLI runs it, the
        stream shows the call and its result, and the model gets the
        command's output before it answers.
        """
        name, arguments, options = SHELL_TOOLS[self.backend]
        self.model.script(
            self.backend, model_server.tool_call(name, arguments), model_server.text("It printed hi.")
        )
        status, _, raw = self.post_raw(
            "/api/v1/prompt",
            {"backend": self.backend, "prompt": "Run it", "output_format": "stream-json", **options},
        )
        self.assertEqual(status, 200)
        events = [json.loads(line) for line in raw.decode().splitlines() if line]
        kinds = [event["type"] for event in events]
        self.assertIn("tool_use", kinds, events)
        results = [event["content"] for event in events if event["type"] == "tool_result"]
        self.assertTrue(results, events)
        if self.backend != "gemini":
            # gemini --acp, the live mode this session's turn runs in, sends a
            # tool's status but not its output (docs/design/live-sessions.md#live-gemini).
            self.assertTrue(any("hi-from-tool" in str(result.get("output")) for result in results), events)
        self.assertEqual(kinds[-1], "done", events)
        self.assertNotIn("error", kinds, events)
        self.assertIn("hi-from-tool", json.dumps(self.model.turns(self.backend)[-1].body))


class ClaudeMatrixTests(MatrixMixin, ToolMixin, RealCLITestCase):
    backend = "claude"


class CodexMatrixTests(MatrixMixin, ToolMixin, RealCLITestCase):
    backend = "codex"


class GeminiMatrixTests(MatrixMixin, ToolMixin, RealCLITestCase):
    backend = "gemini"


class CompareTests(RealCLITestCase):
    @off_reactor
    def test_compare(self) -> None:
        """One prompt on all three real CLIs: each answers through its own wire format."""
        for name, answer in (
            ("claude", "From Claude."),
            ("codex", "From Codex."),
            ("gemini", "From Gemini."),
        ):
            self.model.script(name, model_server.text(answer))
        status, _, raw = self.post_raw(
            "/api/v1/compare", {"prompt": "Who are you?", "backends": ["claude", "codex", "gemini"]}
        )
        self.assertEqual(status, 200, raw)
        results = {result["backend"]: result for result in json.loads(raw)["results"]}
        self.assertEqual(
            {name: (result["exit_code"], result["output"]) for name, result in results.items()},
            {"claude": (0, "From Claude."), "codex": (0, "From Codex."), "gemini": (0, "From Gemini.")},
        )
        self.assertEqual({turn.vendor for turn in self.model.turns()}, {"anthropic", "openai", "gemini"})
