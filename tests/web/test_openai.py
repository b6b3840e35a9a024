"""
The OpenAI-compatible API through the real root resource
(docs/design/openai-api.md#openai-api, docs/design/decisions.md#d2-sdk-error-dialects,
docs/design/decisions.md#d5-stream-keepalive).
"""

from __future__ import annotations

import json
from typing import Any

from tests.web._native import NativeTestCase, claude_result, frames

CHAT = "/openai/v1/chat/completions"
ASSISTANT = b'{"type":"assistant","message":{"content":[{"type":"text","text":"Hel"}]}}\n'


def body(*turns: tuple[str, Any], model: str = "claude", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": r, "content": c} for r, c in turns], **extra}


class OpenAITestCase(NativeTestCase):
    def error(self, response: Any, status: int) -> dict[str, Any]:
        """The OpenAI error of a response with C{status}."""
        self.assertEqual(response.code, status, response.body)
        self.assertEqual(response.header("Content-Type"), "application/json")
        error: dict[str, Any] = json.loads(response.body)["error"]
        self.assertEqual(set(error), {"message", "type", "param", "code"})
        return error


class ModelsTests(OpenAITestCase):
    def test_models(self) -> None:
        response = self.request("GET", "/openai/v1/models")
        answer = json.loads(response.body)
        self.assertConforms(answer, "OpenAIModelsResponseBody")
        self.assertEqual([m["id"] for m in answer["data"]], ["claude", "codex", "gemini"])
        self.assertEqual({m["owned_by"] for m in answer["data"]}, {"clinvoker"})
        self.assertEqual({m["created"] for m in answer["data"]}, {int(self.reactor.seconds())})
        self.assertEqual([m["capabilities"]["streaming_tokens"] for m in answer["data"]], [True, False, True])
        self.assertEqual({m["capabilities"]["images"] for m in answer["data"]}, {True})
        self.assertEqual({m["capabilities"]["tools"] for m in answer["data"]}, {True})
        self.assertEqual({m["capabilities"]["resume"] for m in answer["data"]}, {True})
        self.assertEqual(
            [m["capabilities"]["structured_output"] for m in answer["data"]], [True, True, False]
        )

    def test_resume_capability_follows_compat_sessions(self) -> None:
        """Stateless (server.compat_sessions false), no model resumes a conversation."""
        self.use_server(config={"server": {"compat_sessions": False}})
        answer = json.loads(self.request("GET", "/openai/v1/models").body)
        self.assertEqual({m["capabilities"]["resume"] for m in answer["data"]}, {False})

    def test_model(self) -> None:
        """A listed model alone; any other name is a 404 naming it, code model_not_found."""
        response = self.request("GET", "/openai/v1/models/codex")
        answer = json.loads(response.body)
        self.assertConforms(answer, "OpenAIModel")
        self.assertEqual(
            (answer["id"], answer["object"], answer["owned_by"]), ("codex", "model", "clinvoker")
        )
        self.assertFalse(answer["capabilities"]["streaming_tokens"])
        error = self.error(self.request("GET", "/openai/v1/models/gpt-4o"), 404)
        self.assertEqual(
            (error["message"], error["type"], error["param"], error["code"]),
            ("The model 'gpt-4o' does not exist", "invalid_request_error", "model", "model_not_found"),
        )


class ChatTests(OpenAITestCase):
    def complete(self, request: dict[str, Any], stdout: bytes = b"", code: int = 0) -> Any:
        pending = self.start("POST", CHAT, request)
        child = self.child()
        child.emit_stdout(stdout or claude_result("4"))
        child.exit(code)
        return self.finish(pending)

    def test_completion(self) -> None:
        """One choice, stop, usage as reported; the prompt on stdin; the conversation's session named."""
        response = self.complete(body(("user", "2+2?")))
        answer = json.loads(response.body)
        self.assertConforms(answer, "ChatCompletion")
        self.assertRegex(answer["id"], "^chatcmpl-[0-9a-f]{24}$")
        self.assertEqual(
            answer["choices"],
            [{"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}],
        )
        self.assertEqual(answer["usage"], {"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10})
        child = self.child()
        self.assertEqual(child.stdin, b"2+2?")
        self.assertNotIn("--model", child.argv)
        [session] = json.loads(self.request("GET", "/api/v1/sessions").body)["sessions"]
        self.assertEqual(response.header("X-Clinvk-Session-Id"), session["id"])

    def test_ids_differ(self) -> None:
        first = json.loads(self.complete(body(("user", "a"))).body)["id"]
        second = json.loads(self.complete(body(("user", "a"))).body)["id"]
        self.assertNotEqual(first, second)

    def test_history_system_and_model(self) -> None:
        """The flattened history on stdin, the system messages as --system-prompt, the model mapped."""
        request = body(
            ("system", "be brief"),
            ("developer", "no jokes"),
            ("user", "first"),
            ("assistant", "resp"),
            ("user", "second"),
            model="gpt-4o",
        )
        pending = self.start("POST", CHAT, request)
        child = self.child()
        self.assertEqual(child.argv[1], "exec")
        self.assertEqual(child.argv[child.argv.index("--model") + 1], "gpt-4o")
        self.assertEqual(
            child.stdin.decode(), "be brief\n\nno jokes\n\nfirst\n[Previous response: resp]\n\nsecond"
        )
        child.exit(0)
        self.finish(pending)

    def test_estimated_usage(self) -> None:
        """Without reported usage, four bytes a token."""
        stdout = b"12345678"
        pending = self.start("POST", CHAT, body(("user", "x" * 40)))
        self.child().emit_stdout(stdout)
        self.child().exit(0)
        self.assertEqual(
            json.loads(self.finish(pending).body)["usage"],
            {"prompt_tokens": 10, "completion_tokens": 2, "total_tokens": 12},
        )

    def test_lenient_request(self) -> None:
        """Unknown members, stop as a string and content-part arrays are fine."""
        request = body(
            ("user", [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]),
            tools=[],
            seed=1,
            stop="x",
            stream_options=None,
        )
        request["messages"][0]["name"] = "me"
        pending = self.start("POST", CHAT, request)
        self.assertEqual(self.child().stdin, b"a\nb")
        self.child().exit(0)
        self.finish(pending)

    def test_validation(self) -> None:
        """Schema violations are 400 naming the field; handler checks in order."""
        cases = [
            ({"messages": []}, "model: expected required property model to be present"),
            (body(("user", "x"), model=""), "model is required"),
            (body(model="claude"), "messages are required"),
            (body(("system", "x")), "no user messages found"),
            (body(("user", [{"type": "image_url"}])), "an image needs its URL"),
            (body(("user", "x"), stream="yes"), "stream: expected boolean"),
            (body(("user", "x"), tools="x"), "tools: expected array"),
            (
                body(("user", "x"), tools=[{"function": {"name": "f"}}]),
                "tools[0].type: expected required property type to be present",
            ),
            (body(("user", "x"), tool_choice=5), "tool_choice: expected string"),
            (
                body(("user", "x"), tool_choice="sometimes"),
                'tool_choice: expected value to be one of "none, auto, required"',
            ),
            (body(("user", "x"), response_format="json"), "response_format: expected object"),
            (body(("user", "x"), parallel_tool_calls="yes"), "parallel_tool_calls: expected boolean"),
            (body(("user", "x"), seed="1"), "seed: expected integer"),
            (
                body(("user", "x"), model="\u0000"),
                "invalid request: a command-line value contains a NUL character",
            ),
        ]
        for request, message in cases:
            error = self.error(self.request("POST", CHAT, request), 400)
            self.assertEqual((error["message"], error["type"]), (message, "invalid_request_error"))
        self.assertEqual(self.reactor.spawned, [])

    def test_backend_missing(self) -> None:
        self.use_server(installed=("claude",))
        error = self.error(self.request("POST", CHAT, body(("user", "x"), model="gemini")), 503)
        self.assertEqual(
            (error["message"], error["type"]), ('backend "gemini" is not available', "server_error")
        )

    def test_cli_failure(self) -> None:
        """A CLI that fails without answering is a 502 with its own words."""
        pending = self.start("POST", CHAT, body(("user", "x")))
        self.child().emit_stderr(b"Invalid API key\n")
        self.child().exit(1)
        error = self.error(self.finish(pending), 502)
        self.assertIn("Invalid API key", error["message"])

    def test_unknown_route_and_method(self) -> None:
        self.error(self.request("GET", "/openai/v1/models/claude/versions"), 404)
        self.error(self.request("GET", CHAT), 405)


class ChatStreamTests(OpenAITestCase):
    def open(self, request: dict[str, Any]) -> list[bytes]:
        response, chunks = self.stream(self.start("POST", CHAT, {**request, "stream": True}))
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["text/event-stream"])
        self.assertEqual(response.headers.getRawHeaders("x-accel-buffering"), ["no"])
        return chunks

    def data(self, chunks: list[bytes]) -> list[Any]:
        self.stub.flush()
        return [
            frame.removeprefix("data: ")
            if frame.endswith("[DONE]")
            else json.loads(frame.removeprefix("data: "))
            for frame in frames(chunks)
            if frame.startswith("data: ")
        ]

    def test_stream(self) -> None:
        """The role chunk as soon as the CLI runs, each text as it comes, stop, [DONE]."""
        chunks = self.open(body(("user", "hi")))
        [role] = self.data(chunks)
        self.assertConforms(role, "ChatCompletionChunk")
        self.assertEqual(
            role["choices"],
            [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}],
        )
        self.child().emit_stdout(ASSISTANT)
        self.assertEqual(
            self.data(chunks)[-1]["choices"][0],
            {"index": 0, "delta": {"content": "Hel"}, "finish_reason": None},
        )
        self.child().emit_stdout(claude_result("Hel"))
        self.child().exit(0)
        received = self.data(chunks)
        self.assertEqual(received[-2]["choices"][0], {"index": 0, "delta": {}, "finish_reason": "stop"})
        self.assertEqual(received[-1], "[DONE]")
        self.assertEqual(len({c["id"] for c in received[:-1]}), 1)

    def test_include_usage(self) -> None:
        chunks = self.open(body(("user", "hi"), stream_options={"include_usage": True}))
        self.child().emit_stdout(claude_result("Hel"))
        self.child().exit(0)
        usage = self.data(chunks)[-2]
        self.assertEqual((usage["choices"], usage["usage"]["total_tokens"]), ([], 10))

    def test_failure_in_stream(self) -> None:
        """A failure after the stream started is an error event, then [DONE]."""
        chunks = self.open(body(("user", "hi")))
        self.child().exit(2)
        received = self.data(chunks)
        self.assertEqual(received[-2]["error"]["type"], "server_error")
        self.assertEqual(received[-1], "[DONE]")

    def test_preflight_before_headers(self) -> None:
        """A missing CLI is a 503 error body, not a stream."""
        self.use_server(installed=("claude",))
        self.error(self.request("POST", CHAT, body(("user", "x"), model="codex", stream=True)), 503)

    def test_keepalive(self) -> None:
        """Silence longer than stream_keepalive_secs gets a comment line."""
        self.use_server(config={"server": {"stream_keepalive_secs": 2}})
        chunks = self.open(body(("user", "hi")))
        self.reactor.advance(2)
        self.stub.flush()
        self.assertEqual(frames(chunks)[-1], ": keepalive")
        self.child().exit(0)

    def test_disconnect(self) -> None:
        """A client that goes away stops the CLI."""
        self.open(body(("user", "hi")))
        child = self.child()
        self.disconnect()
        self.reactor.advance(5)
        self.assertTrue(child.ended)
