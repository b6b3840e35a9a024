"""
The Anthropic-compatible API through the real root resource
(docs/design/anthropic-api.md#anthropic-api, docs/design/decisions.md#d2-sdk-error-dialects,
docs/design/decisions.md#d5-stream-keepalive, docs/design/decisions.md#d9-token-streaming).
"""

from __future__ import annotations

import json
from typing import Any

from tests.web._native import NativeTestCase, claude_result, named_events

MESSAGES = "/anthropic/v1/messages"


def body(
    *turns: tuple[str, Any], model: str = "claude", max_tokens: int = 64, **extra: Any
) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": r, "content": c} for r, c in turns],
        **extra,
    }


def delta(text: str) -> bytes:
    """A Claude partial-message line carrying C{text} (docs/design/decisions.md#d9-token-streaming)."""
    event = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
    return json.dumps({"type": "stream_event", "event": event}).encode() + b"\n"


class AnthropicTestCase(NativeTestCase):
    def error(self, response: Any, status: int) -> dict[str, Any]:
        self.assertEqual(response.code, status, response.body)
        answer = json.loads(response.body)
        self.assertEqual(answer["type"], "error")
        error: dict[str, Any] = answer["error"]
        return error


class MessagesTests(AnthropicTestCase):
    def test_message(self) -> None:
        """One text block, end_turn, usage; no stop_sequence; anthropic-version not needed."""
        pending = self.start(
            "POST", MESSAGES, body(("user", "2+2?"), system=[{"type": "text", "text": "be terse"}])
        )
        child = self.child()
        self.assertEqual(child.argv[child.argv.index("--system-prompt") + 1], "be terse")
        child.emit_stdout(claude_result("4"))
        child.exit(0)
        answer = json.loads(self.finish(pending).body)
        self.assertConforms(answer, "AnthropicMessageResponse")
        self.assertRegex(answer["id"], "^msg_[0-9a-f]{24}$")
        self.assertEqual(answer["content"], [{"type": "text", "text": "4"}])
        self.assertEqual(
            (answer["stop_reason"], answer["usage"]), ("end_turn", {"input_tokens": 3, "output_tokens": 7})
        )
        self.assertNotIn("stop_sequence", answer)

    def test_models_and_history(self) -> None:
        """gpt-4 runs on Claude here; a system role in messages is ignored; metadata is accepted."""
        request = body(
            ("user", "q1"),
            ("system", "ignored"),
            ("assistant", "a1"),
            ("user", "q2"),
            model="gpt-4",
            metadata={"user_id": "u1"},
        )
        pending = self.start("POST", MESSAGES, request)
        child = self.child()
        self.assertTrue(child.argv[0].endswith("claude"))
        self.assertEqual(child.argv[child.argv.index("--model") + 1], "gpt-4")
        self.assertEqual(child.stdin, b"q1\n[Previous response: a1]\n\nq2")
        child.exit(0)
        self.finish(pending)

    def test_validation(self) -> None:
        """400 in Anthropic's dialect, handler checks in order model, messages, max_tokens, user text."""
        cases = [
            (
                {"model": "claude", "messages": [{"role": "user", "content": "x"}]},
                "max_tokens: expected required property max_tokens to be present",
            ),
            (body(("user", "x"), model=""), "model is required"),
            (body(model="claude", max_tokens=0), "messages are required"),
            (body(("user", "x"), max_tokens=0), "max_tokens must be greater than 0"),
            (body(("assistant", "x")), "no user messages found"),
            (body(("user", [{"type": "image", "source": {}}])), "an image block needs its source"),
            (body(("user", "x"), tools="x"), "tools: expected array"),
            (
                body(("user", "x"), tools=[{"input_schema": {}}]),
                "tools[0].name: expected required property name to be present",
            ),
            (body(("user", "x"), tool_choice="auto"), "tool_choice: expected object"),
            (
                body(("user", "x"), tool_choice={"type": "sometimes"}),
                'tool_choice.type: expected value to be one of "auto, any, tool, none"',
            ),
            (body(("user", "x"), thinking=True), "thinking: expected object"),
        ]
        for request, message in cases:
            error = self.error(self.request("POST", MESSAGES, request), 400)
            self.assertEqual((error["type"], error["message"]), ("invalid_request_error", message))

    def test_errors(self) -> None:
        """Unknown routes, missing CLIs and failed CLIs in Anthropic's types."""
        self.assertEqual(
            self.error(self.request("GET", "/anthropic/v1/files"), 404)["type"], "not_found_error"
        )
        self.use_server(installed=("claude",))
        error = self.error(self.request("POST", MESSAGES, body(("user", "x"), model="gemini")), 503)
        self.assertEqual(error["type"], "overloaded_error")
        pending = self.start("POST", MESSAGES, body(("user", "x")))
        self.child().exit(1)
        self.assertEqual(self.error(self.finish(pending), 502)["type"], "api_error")


class MessagesStreamTests(NativeTestCase):
    def events(self, chunks: list[bytes]) -> list[tuple[str, Any]]:
        self.stub.flush()
        return named_events(chunks)

    def test_sequence(self) -> None:
        """
        The opening events as soon as the CLI runs; each Claude token delta
        as its own event, the full message after them not repeated
        (docs/design/decisions.md#d9-token-streaming).
        """
        response, chunks = self.stream(self.start("POST", MESSAGES, body(("user", "count"), stream=True)))
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["text/event-stream"])
        opening = self.events(chunks)
        self.assertEqual([name for name, _ in opening], ["message_start", "content_block_start"])
        start = opening[0][1]["message"]
        self.assertEqual(start["usage"], {"input_tokens": 0, "output_tokens": 0})
        self.assertNotIn("stop_reason", start)
        child = self.child()
        self.assertIn("--include-partial-messages", child.argv)
        child.emit_stdout(delta("1, 2"))
        self.assertEqual(self.events(chunks)[-1][1]["delta"], {"type": "text_delta", "text": "1, 2"})
        child.emit_stdout(delta(", 3."))
        child.emit_stdout(b'{"type":"assistant","message":{"content":[{"type":"text","text":"1, 2, 3."}]}}\n')
        child.emit_stdout(claude_result("1, 2, 3.", input_tokens=5, output_tokens=12))
        child.exit(0)
        received = self.events(chunks)
        self.assertEqual(
            [name for name, _ in received],
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ],
        )
        self.assertEqual(
            "".join(data["delta"]["text"] for name, data in received if name == "content_block_delta"),
            "1, 2, 3.",
        )
        self.assertEqual(
            received[5][1],
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"input_tokens": 5, "output_tokens": 12},
            },
        )

    def test_failure_in_stream(self) -> None:
        """A CLI failing once the stream runs ends it with an error event."""
        _, chunks = self.stream(self.start("POST", MESSAGES, body(("user", "x"), stream=True)))
        self.child().exit(3)
        name, data = self.events(chunks)[-1]
        self.assertEqual((name, data["type"], data["error"]["type"]), ("error", "error", "api_error"))

    def test_preflight_before_headers(self) -> None:
        self.use_server(installed=("claude",))
        response = self.request("POST", MESSAGES, body(("user", "x"), model="codex", stream=True))
        self.assertEqual(response.code, 503)


class CountTokensTests(AnthropicTestCase):
    """docs/design/anthropic-api.md#anthropic-count-tokens."""

    def count(self, request: dict[str, Any]) -> int:
        response = self.request("POST", "/anthropic/v1/messages/count_tokens", request)
        self.assertEqual(response.code, 200, response.body)
        answer = json.loads(response.body)
        self.assertConforms(answer, "AnthropicTokensCount")
        return int(answer["input_tokens"])

    def test_estimate(self) -> None:
        """
        About a token per four bytes of the system prompt, the conversation
        as the CLI would get it, and the tools; no CLI runs.
        """
        request = {"model": "claude", "messages": [{"role": "user", "content": "x" * 40}]}
        self.assertEqual(self.count(request), 10)
        self.assertEqual(self.count({**request, "system": "y" * 20}), 15)
        tools = [{"name": "weather", "input_schema": {"type": "object"}}]
        with_tools = self.count({**request, "tools": tools})
        self.assertEqual(with_tools, 10 + len(json.dumps(tools, separators=(",", ":"))) // 4)
        self.assertEqual(self.reactor.spawned, [])

    def test_validation(self) -> None:
        """The request is checked as a message's, without max_tokens."""
        path = "/anthropic/v1/messages/count_tokens"
        cases = [
            ({"messages": []}, "model: expected required property model to be present"),
            ({"model": "claude", "messages": []}, "messages are required"),
            (
                {"model": "claude", "messages": [{"role": "user", "content": "x"}], "tools": "x"},
                "tools: expected array",
            ),
        ]
        for request, message in cases:
            error = self.error(self.request("POST", path, request), 400)
            self.assertEqual((error["type"], error["message"]), ("invalid_request_error", message))


class ModelsTests(AnthropicTestCase):
    """docs/design/anthropic-api.md#anthropic-models."""

    def page(self, query: str = "") -> dict[str, Any]:
        response = self.request("GET", "/anthropic/v1/models" + query)
        self.assertEqual(response.code, 200, response.body)
        answer: dict[str, Any] = json.loads(response.body)
        self.assertConforms(answer, "AnthropicModelsResponseBody")
        return answer

    def test_list(self) -> None:
        """One model per backend, sorted, in ModelInfo's shape with clinvk's capabilities."""
        answer = self.page()
        self.assertEqual([m["id"] for m in answer["data"]], ["claude", "codex", "gemini"])
        self.assertEqual(
            (answer["has_more"], answer["first_id"], answer["last_id"]), (False, "claude", "gemini")
        )
        first = answer["data"][0]
        self.assertEqual(
            (first["type"], first["created_at"], first["lifecycle"]),
            ("model", "1970-01-01T00:00:00Z", "active"),
        )
        self.assertTrue(first["clinvk_capabilities"]["streaming_tokens"])
        self.assertTrue(first["clinvk_capabilities"]["resume"])

    def test_pages(self) -> None:
        """limit, after_id and before_id page through the list as Anthropic's do."""
        first = self.page("?limit=2")
        self.assertEqual(([m["id"] for m in first["data"]], first["has_more"]), (["claude", "codex"], True))
        rest = self.page("?limit=2&after_id=codex")
        self.assertEqual(([m["id"] for m in rest["data"]], rest["has_more"]), (["gemini"], False))
        back = self.page("?limit=1&before_id=gemini")
        self.assertEqual(([m["id"] for m in back["data"]], back["has_more"]), (["codex"], True))
        for bad in ("0", "1001", "many"):
            error = self.error(self.request("GET", f"/anthropic/v1/models?limit={bad}"), 400)
            self.assertEqual(error["message"], "limit: expected an integer from 1 to 1000")

    def test_model(self) -> None:
        """A listed model alone; any other name is a 404."""
        response = self.request("GET", "/anthropic/v1/models/gemini")
        answer = json.loads(response.body)
        self.assertConforms(answer, "AnthropicModel")
        self.assertEqual(answer["id"], "gemini")
        error = self.error(self.request("GET", "/anthropic/v1/models/claude-opus-4"), 404)
        self.assertEqual((error["type"], error["message"]), ("not_found_error", "model: claude-opus-4"))
