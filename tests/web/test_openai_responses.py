"""
The Responses API through the real root resource (docs/design/responses-api.md).
"""

from __future__ import annotations

import json
from typing import Any

from tests.web._native import CLAUDE_NATIVE_ID, NativeTestCase, claude_result, named_events

RESPONSES = "/openai/v1/responses"
HEADER = "X-Clinvk-Session-Id"
INIT = json.dumps({"type": "system", "subtype": "init", "session_id": CLAUDE_NATIVE_ID}).encode() + b"\n"


def assistant(text: str) -> bytes:
    line = {"type": "assistant", "message": {"content": [{"type": "text", "text": text}]}}
    return json.dumps(line).encode() + b"\n"


class ResponsesTestCase(NativeTestCase):
    def create(self, body: dict[str, Any], answer: str = "4", code: int = 0) -> Any:
        """POST a response whose CLI answers C{answer}; the response."""
        pending = self.start("POST", RESPONSES, body)
        child = self.child()
        child.emit_stdout(claude_result(answer))
        child.exit(code)
        return self.finish(pending)

    def answer(self, pending: Any) -> Any:
        response = self.finish(pending)
        self.assertEqual(response.code, 200, response.body)
        body = json.loads(response.body)
        self.assertConforms(body, "OpenAIResponse")
        return body

    def error(self, response: Any, status: int) -> dict[str, Any]:
        self.assertEqual(response.code, status, response.body)
        error: dict[str, Any] = json.loads(response.body)["error"]
        self.assertEqual(set(error), {"message", "type", "param", "code"})
        return error


class CreateTests(ResponsesTestCase):
    def test_string_input(self) -> None:
        """A string input is the prompt; the answer is one output message; usage as reported."""
        response = self.create({"model": "claude", "input": "2+2?", "instructions": "terse"})
        self.assertEqual(response.code, 200, response.body)
        body = json.loads(response.body)
        self.assertConforms(body, "OpenAIResponse")
        self.assertRegex(body["id"], "^resp_[0-9a-f]{24}$")
        self.assertEqual((body["object"], body["status"], body["model"]), ("response", "completed", "claude"))
        [message] = body["output"]
        self.assertRegex(message["id"], "^msg_[0-9a-f]{24}$")
        self.assertEqual(
            (message["type"], message["role"], message["status"], message["content"]),
            (
                "message",
                "assistant",
                "completed",
                [{"type": "output_text", "text": "4", "annotations": [], "logprobs": []}],
            ),
        )
        self.assertEqual(
            (body["usage"]["input_tokens"], body["usage"]["output_tokens"], body["usage"]["total_tokens"]),
            (3, 7, 10),
        )
        self.assertEqual(
            (body["instructions"], body["store"], body["previous_response_id"]), ("terse", True, None)
        )
        child = self.child()
        self.assertEqual(child.stdin, b"2+2?")
        self.assertEqual(child.argv[child.argv.index("--system-prompt") + 1], "terse")
        self.assertEqual(
            response.header(HEADER),
            json.loads(self.request("GET", "/api/v1/sessions").body)["sessions"][0]["id"],
        )

    def test_items(self) -> None:
        """Messages as items: system ones join the instructions; text parts are joined; reasoning skipped."""
        body = {
            "model": "claude",
            "instructions": "terse",
            "input": [
                {"role": "developer", "content": "no jokes"},
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "first"}]},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"role": "assistant", "content": [{"type": "output_text", "text": "resp"}]},
                {"role": "user", "content": "second"},
            ],
        }
        self.assertEqual(self.create(body).code, 200)
        child = self.child()
        self.assertEqual(child.stdin, b"first\n[Previous response: resp]\n\nsecond")
        self.assertEqual(child.argv[child.argv.index("--system-prompt") + 1], "terse\n\nno jokes")

    def test_refused(self) -> None:
        """Wrong types, non-text items and parts, no user message: 400s naming the member; nothing runs."""
        cases = [
            ({"model": "claude", "input": 5}, "input"),
            ({"model": "claude", "input": "x", "store": "yes"}, "store"),
            (
                {
                    "model": "claude",
                    "input": [{"type": "file_search_call", "id": "fs", "queries": []}],
                },
                "input[0]",
            ),
            (
                # A call without its output, and no user message.
                {
                    "model": "claude",
                    "input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}],
                },
                "input",
            ),
            (
                {
                    "model": "claude",
                    "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}],
                },
                "input[0].content[0].image_url",
            ),
            (
                {
                    "model": "claude",
                    "input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "x"}]}],
                },
                "input[0].content[0]",
            ),
            ({"model": "claude", "input": [{"role": "system", "content": "only"}]}, "input"),
            ({"model": "", "input": "x"}, "model"),
        ]
        for body, param in cases:
            error = self.error(self.request("POST", RESPONSES, body), 400)
            self.assertEqual((error["type"], error["param"]), ("invalid_request_error", param), body)
        self.assertEqual(self.reactor.spawned, [])

    def test_cli_failure(self) -> None:
        error = self.error(self.create({"model": "claude", "input": "x"}, answer="", code=2), 502)
        self.assertEqual(error["type"], "server_error")


class StoreTests(ResponsesTestCase):
    def test_retrieve_and_delete(self) -> None:
        """A stored response is there to GET until DELETEd; then both are 404s."""
        body = json.loads(self.create({"model": "claude", "input": "2+2?", "metadata": {"k": "v"}}).body)
        path = f"{RESPONSES}/{body['id']}"
        got = json.loads(self.request("GET", path).body)
        self.assertEqual(got, body)
        self.assertEqual(got["metadata"], {"k": "v"})
        deleted = self.request("DELETE", path)
        self.assertEqual(json.loads(deleted.body), {"id": body["id"], "object": "response", "deleted": True})
        for method in ("GET", "DELETE"):
            error = self.error(self.request(method, path), 404)
            self.assertEqual(error["message"], f"Response with id '{body['id']}' not found.")

    def test_not_stored(self) -> None:
        body = json.loads(self.create({"model": "claude", "input": "x", "store": False}).body)
        self.assertFalse(body["store"])
        self.error(self.request("GET", f"{RESPONSES}/{body['id']}"), 404)

    def test_previous_response_continues(self) -> None:
        """previous_response_id continues that conversation's CLI session with the new input alone."""
        first = json.loads(self.create({"model": "claude", "input": "2+2?", "instructions": "terse"}).body)
        response = self.create(
            {"model": "claude", "input": "+1?", "instructions": "terse", "previous_response_id": first["id"]},
            "5",
        )
        body = json.loads(response.body)
        self.assertEqual(body["previous_response_id"], first["id"])
        child = self.child()
        self.assertEqual(child.stdin, b"+1?")
        self.assertEqual(child.argv[child.argv.index("--resume") + 1], CLAUDE_NATIVE_ID)
        # And on, from the second.
        self.create(
            {"model": "claude", "input": "x2?", "instructions": "terse", "previous_response_id": body["id"]},
            "10",
        )
        self.assertEqual(self.child().stdin, b"x2?")
        self.assertEqual(json.loads(self.request("GET", "/api/v1/sessions").body)["total"], 1)

    def test_previous_response_without_instructions(self) -> None:
        """Instructions are not carried over: without them, the history seeds a new session."""
        first = json.loads(self.create({"model": "claude", "input": "2+2?", "instructions": "terse"}).body)
        self.create({"model": "claude", "input": "+1?", "previous_response_id": first["id"]}, "5")
        child = self.child()
        self.assertNotIn("--resume", child.argv)
        self.assertEqual(child.stdin, b"2+2?\n[Previous response: 4]\n\n+1?")

    def test_previous_response_keeps_system_messages(self) -> None:
        """
        System messages in the input are the conversation's and carry over
        (LangChain sends them once): the follow-up continues the session.
        """
        first = json.loads(
            self.create(
                {
                    "model": "claude",
                    "input": [{"role": "system", "content": "terse"}, {"role": "user", "content": "2+2?"}],
                }
            ).body
        )
        self.create({"model": "claude", "input": "+1?", "previous_response_id": first["id"]}, "5")
        child = self.child()
        self.assertEqual(child.stdin, b"+1?")
        self.assertEqual(child.argv[child.argv.index("--system-prompt") + 1], "terse")
        self.assertIn("--resume", child.argv)

    def test_pinned_without_new_input(self) -> None:
        """A pinned conversation needs a user message after the last answer: a 400 naming input."""
        self.create({"model": "claude", "input": "2+2?"})
        session_id = json.loads(self.request("GET", "/api/v1/sessions").body)["sessions"][0]["id"]
        items = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
        response = self.request(
            "POST", RESPONSES, {"model": "claude", "input": items}, headers={HEADER: session_id}
        )
        self.assertEqual(self.error(response, 400)["param"], "input")

    def test_item_reference(self) -> None:
        """
        An item_reference to an answer clinvk gave stands for that answer
        (the AI SDK sends them): the history continues the conversation.
        """
        first = json.loads(self.create({"model": "claude", "input": "2+2?"}).body)
        message_id = first["output"][0]["id"]
        self.assertEqual(message_id.removeprefix("msg_"), first["id"].removeprefix("resp_"))
        items = [
            {"role": "user", "content": [{"type": "input_text", "text": "2+2?"}]},
            {"type": "item_reference", "id": message_id},
            {"role": "user", "content": [{"type": "input_text", "text": "+1?"}]},
        ]
        self.create({"model": "claude", "input": items}, "5")
        self.assertEqual(self.child().stdin, b"+1?")
        self.assertIn("--resume", self.child().argv)
        missing = {**items[1], "id": "msg_0123456789abcdef01234567"}
        error = self.error(
            self.request("POST", RESPONSES, {"model": "claude", "input": [items[0], missing]}), 404
        )
        self.assertEqual(
            (error["param"], error["message"]),
            ("input[1]", "Item with id 'msg_0123456789abcdef01234567' not found."),
        )

    def test_unknown_previous_response(self) -> None:
        error = self.error(
            self.request(
                "POST", RESPONSES, {"model": "claude", "input": "x", "previous_response_id": "resp_0"}
            ),
            404,
        )
        self.assertEqual(
            (error["param"], error["message"]),
            ("previous_response_id", "Previous response with id 'resp_0' not found."),
        )
        self.assertEqual(self.reactor.spawned, [])


class StreamTests(ResponsesTestCase):
    def open(self, body: dict[str, Any]) -> list[bytes]:
        response, chunks = self.stream(self.start("POST", RESPONSES, {**body, "stream": True}))
        self.assertEqual(response.code, 200)
        self.assertTrue(response.headers.getRawHeaders("Content-Type")[0].startswith("text/event-stream"))
        return chunks

    def test_event_sequence(self) -> None:
        """created, in_progress, item and part added, deltas, the dones, completed; numbered from 0."""
        chunks = self.open({"model": "claude", "input": "hi"})
        self.assertEqual(
            [name for name, _ in named_events(chunks)],
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
            ],
        )
        child = self.child()
        child.emit_stdout(INIT)
        child.emit_stdout(assistant("Hel"))
        child.emit_stdout(claude_result("Hel"))
        child.exit(0)
        self.stub.flush()
        received = named_events(chunks)
        self.assertEqual(
            [name for name, _ in received],
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ],
        )
        self.assertEqual([data["sequence_number"] for _, data in received], list(range(9)))
        self.assertEqual({data["type"] for _, data in received}, {name for name, _ in received})
        created, delta, done, completed = received[0][1], received[4][1], received[5][1], received[-1][1]
        self.assertEqual((created["response"]["status"], created["response"]["output"]), ("in_progress", []))
        self.assertEqual((delta["delta"], done["text"]), ("Hel", "Hel"))
        response = completed["response"]
        self.assertConforms(response, "OpenAIResponse")
        self.assertEqual(
            (response["status"], response["output"][0]["content"][0]["text"]), ("completed", "Hel")
        )
        self.assertEqual(response["id"], created["response"]["id"])
        self.assertEqual(json.loads(self.request("GET", f"{RESPONSES}/{response['id']}").body), response)

    def test_failure(self) -> None:
        """A CLI failure once streaming: response.failed with the error; nothing stored."""
        chunks = self.open({"model": "claude", "input": "hi"})
        self.child().exit(2)
        self.stub.flush()
        name, data = named_events(chunks)[-1]
        self.assertEqual((name, data["response"]["status"]), ("response.failed", "failed"))
        self.assertEqual(data["response"]["error"]["code"], "server_error")
        self.error(self.request("GET", f"{RESPONSES}/{data['response']['id']}"), 404)
