"""
Structured output on chat completions and the Responses API, through the
real root resource (docs/design/structured-output.md).
"""

from __future__ import annotations

import json
import os
from typing import Any

from clinvk.compat.structured import JSON_OBJECT_INSTRUCTION
from tests.web._native import CLAUDE_NATIVE_ID, NativeTestCase, claude_result, frames, named_events

CHAT = "/openai/v1/chat/completions"
RESPONSES = "/openai/v1/responses"
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
CANONICAL = '{"properties":{"n":{"type":"integer"}},"required":["n"],"type":"object"}'
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "number", "schema": SCHEMA, "strict": True}}


def chat(model: str = "claude", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Pick a number"}]} | extra


def codex_answer(text: str) -> bytes:
    lines = [
        {"type": "thread.started", "thread_id": "019a0000-0000-7000-8000-000000000001"},
        {"type": "turn.started"},
        {"type": "item.completed", "item": {"id": "item_0", "type": "agent_message", "text": text}},
        {"type": "turn.completed", "usage": {"input_tokens": 5, "output_tokens": 3}},
    ]
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def gemini_answer(text: str) -> bytes:
    return json.dumps({"session_id": "g-1", "response": text, "stats": {}}).encode() + b"\n"


class StructuredTestCase(NativeTestCase):
    def setUp(self) -> None:
        self.scratch = self.mktemp()
        os.mkdir(self.scratch)
        self.use_server(installed=self.installed, scratch_root=self.scratch)

    def error(self, response: Any, status: int) -> dict[str, Any]:
        self.assertEqual(response.code, status, response.body)
        error: dict[str, Any] = json.loads(response.body)["error"]
        self.assertEqual(set(error), {"message", "type", "param", "code"})
        return error

    def answered(self, body: dict[str, Any], output: bytes, path: str = CHAT) -> Any:
        """POST C{body}; its CLI prints C{output} and exits; the response."""
        pending = self.start("POST", path, body)
        child = self.child()
        child.emit_stdout(output)
        child.exit(0)
        return self.finish(pending)

    def content(self, response: Any) -> str:
        self.assertEqual(response.code, 200, response.body)
        answer = json.loads(response.body)
        self.assertConforms(answer, "ChatCompletion")
        text: str = answer["choices"][0]["message"]["content"]
        return text


class ChatSchemaTests(StructuredTestCase):
    def test_claude(self) -> None:
        """claude gets the schema as --json-schema; its matching answer is the content."""
        response = self.answered(chat(response_format=JSON_SCHEMA), claude_result('{"n": 7}'))
        self.assertEqual(self.content(response), '{"n": 7}')
        argv = self.child().argv
        self.assertEqual(argv[argv.index("--json-schema") + 1], CANONICAL)
        self.assertEqual(os.listdir(self.scratch), [])

    def test_mismatch(self) -> None:
        """An answer that does not match the schema is a 502 saying where, never a 200."""
        error = self.error(self.answered(chat(response_format=JSON_SCHEMA), claude_result('{"n": "x"}')), 502)
        self.assertIn("does not match response_format: n: 'x' is not of type 'integer'", error["message"])
        error = self.error(self.answered(chat(response_format=JSON_SCHEMA), claude_result("seven")), 502)
        self.assertIn("is not the JSON response_format asks for", error["message"])

    def test_codex_schema_file(self) -> None:
        """
        codex gets --output-schema naming a file of the run's own that
        holds the schema while the CLI runs and is gone once it ends.
        """
        pending = self.start("POST", CHAT, chat("gpt-5", response_format=JSON_SCHEMA))
        child = self.child()
        path = child.argv[child.argv.index("--output-schema") + 1]
        self.assertEqual(child.argv[-1], "-")
        self.assertEqual(os.path.dirname(os.path.dirname(path)), self.scratch)
        with open(path, encoding="utf-8") as schema:
            self.assertEqual(schema.read(), CANONICAL)
        self.assertEqual(os.stat(os.path.dirname(path)).st_mode & 0o777, 0o700)
        child.emit_stdout(codex_answer('{"n": 3}'))
        child.exit(0)
        self.assertEqual(self.content(self.finish(pending)), '{"n": 3}')
        self.assertFalse(os.path.exists(os.path.dirname(path)))

    def test_files_removed_after_failure_and_disconnect(self) -> None:
        """The run's files go however it ends: a failed CLI, a client gone."""
        pending = self.start("POST", CHAT, chat("gpt-5", response_format=JSON_SCHEMA))
        self.child().exit(2)
        self.error(self.finish(pending), 502)
        self.assertEqual(os.listdir(self.scratch), [])
        self.start("POST", CHAT, chat("gpt-5", response_format=JSON_SCHEMA))
        child = self.child()
        self.assertEqual(len(os.listdir(self.scratch)), 1)
        self.disconnect()
        self.reactor.advance(10)
        self.assertTrue(child.ended)
        self.assertEqual(os.listdir(self.scratch), [])

    def test_unwritable_files(self) -> None:
        """Files that cannot be written are a 503, and no CLI runs."""
        self.use_server(scratch_root=os.path.join(self.scratch, "missing"))
        error = self.error(self.request("POST", CHAT, chat("gpt-5", response_format=JSON_SCHEMA)), 503)
        self.assertIn("could not write the files of the run", error["message"])
        self.assertEqual(self.reactor.spawned, [])

    def test_gemini_cannot(self) -> None:
        """A schema for gemini, which cannot keep to one, is a 400 naming response_format."""
        error = self.error(self.request("POST", CHAT, chat("gemini", response_format=JSON_SCHEMA)), 400)
        self.assertEqual(error["param"], "response_format")
        self.assertIn("not supported by the gemini backend", error["message"])
        self.assertEqual(self.reactor.spawned, [])

    def test_bad_schema(self) -> None:
        """
        A schema that is missing, no JSON schema, too large for a command
        line or with a $ref that does not point into it is a 400 naming it.
        """
        schemas = [
            None,
            {"type": 5},
            {"$schema": 5},
            {"properties": {"a": {"$ref": "#/$defs/missing"}}},
            {"$ref": "https://example.com/schema.json"},
            {"description": "x" * 70_000},
        ]
        for schema in schemas:
            inner = {"name": "x"} if schema is None else {"name": "x", "schema": schema}
            response_format = {"type": "json_schema", "json_schema": inner}
            error = self.error(self.request("POST", CHAT, chat(response_format=response_format)), 400)
            self.assertEqual(error["param"], "response_format.json_schema.schema", schema)
        self.assertEqual(self.reactor.spawned, [])

    def test_endless_schema(self) -> None:
        """A schema that refers to itself without end is a 400, not a 500."""
        response_format = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#"}}}
        response = self.answered(chat(response_format=response_format), claude_result("{}"))
        self.assertIn("refers to itself without end", self.error(response, 400)["message"])

    def test_text_format(self) -> None:
        """response_format text asks for nothing."""
        response = self.answered(chat(response_format={"type": "text"}), claude_result("plain"))
        self.assertEqual(self.content(response), "plain")
        self.assertNotIn("--json-schema", self.child().argv)


class ChatJsonObjectTests(StructuredTestCase):
    def test_instruction_and_check(self) -> None:
        """
        json_object is an instruction after the prompt on any backend; an
        answer in a code fence comes without it.
        """
        fenced = '```json\n{"answer": 1}\n```'
        response = self.answered(
            chat("gemini", response_format={"type": "json_object"}), gemini_answer(fenced)
        )
        self.assertEqual(self.content(response), '{"answer": 1}')
        self.assertIn(b"Answer with one JSON object and nothing else", self.child().stdin)

    def test_conversation_goes_on(self) -> None:
        """
        A json_object turn continues its conversation: the instruction is
        said with the turn, out of the system prompt the conversation is
        known by.
        """
        first = chat(messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
        response = self.answered(first, claude_result("Hello."))
        session = response.header("X-Clinvk-Session-Id")
        follow_up = {
            **first,
            "messages": [
                *first["messages"],
                {"role": "assistant", "content": "Hello."},
                {"role": "user", "content": "As JSON"},
            ],
            "response_format": {"type": "json_object"},
        }
        response = self.answered(follow_up, claude_result('{"a": 1}'))
        self.assertEqual(
            (self.content(response), response.header("X-Clinvk-Session-Id")), ('{"a": 1}', session)
        )
        child = self.child()
        self.assertEqual(child.argv[child.argv.index("--resume") + 1], CLAUDE_NATIVE_ID)
        self.assertEqual(child.argv[child.argv.index("--system-prompt") + 1], "Be brief.")
        self.assertEqual(child.stdin.decode(), f"As JSON\n\n{JSON_OBJECT_INSTRUCTION}")

    def test_not_an_object(self) -> None:
        """An answer that is JSON but no object is a 502."""
        response = self.answered(chat(response_format={"type": "json_object"}), claude_result("[1]"))
        self.assertIn("[1] is not of type 'object'", self.error(response, 502)["message"])


class ChatStreamTests(StructuredTestCase):
    def data(self, chunks: list[bytes]) -> list[Any]:
        self.stub.flush()
        return [
            json.loads(frame.removeprefix("data: "))
            for frame in frames(chunks)
            if frame.startswith("data: ") and not frame.endswith("[DONE]")
        ]

    def test_stream(self) -> None:
        """A checked answer is streamed in one piece, after the CLI's whole run."""
        pending = self.start("POST", CHAT, chat(response_format=JSON_SCHEMA, stream=True))
        child = self.child()
        self.assertEqual(child.argv[child.argv.index("--output-format") + 1], "json")
        child.emit_stdout(claude_result('{"n": 7}'))
        child.exit(0)
        _, chunks = self.stream(pending)
        deltas = [chunk["choices"][0]["delta"] for chunk in self.data(chunks)]
        self.assertEqual(deltas, [{"role": "assistant", "content": ""}, {"content": '{"n": 7}'}, {}])
        self.assertTrue(frames(chunks)[-1].endswith("[DONE]"))

    def test_stream_mismatch(self) -> None:
        """A mismatch is a 502 error body: no stream has started."""
        pending = self.start("POST", CHAT, chat(response_format=JSON_SCHEMA, stream=True))
        self.child().emit_stdout(claude_result("{}"))
        self.child().exit(0)
        self.assertIn("'n' is a required property", self.error(self.finish(pending), 502)["message"])


class ResponsesFormatTests(StructuredTestCase):
    def test_json_schema(self) -> None:
        """text.format json_schema goes to the CLI; the output text is the checked answer."""
        text = {"format": {"type": "json_schema", "name": "number", "schema": SCHEMA, "strict": True}}
        response = self.answered(
            {"model": "gpt-5", "input": "Pick a number", "text": text}, codex_answer(' {"n": 2}\n'), RESPONSES
        )
        self.assertEqual(response.code, 200, response.body)
        body = json.loads(response.body)
        self.assertConforms(body, "OpenAIResponse")
        self.assertEqual(body["output"][0]["content"][0]["text"], '{"n": 2}')
        self.assertEqual(body["text"], text)
        self.assertIn("--output-schema", self.child().argv)

    def test_errors(self) -> None:
        """The Responses API names text.format in its errors."""
        bad = {"model": "claude", "input": "x", "text": {"format": {"type": "json_schema", "name": "x"}}}
        self.assertEqual(self.error(self.request("POST", RESPONSES, bad), 400)["param"], "text.format.schema")
        gemini = {
            "model": "gemini",
            "input": "x",
            "text": {"format": {"type": "json_schema", "schema": SCHEMA}},
        }
        self.assertEqual(self.error(self.request("POST", RESPONSES, gemini), 400)["param"], "text.format")
        response = self.answered(
            {"model": "claude", "input": "x", "text": {"format": {"type": "json_schema", "schema": SCHEMA}}},
            claude_result("no"),
            RESPONSES,
        )
        self.assertIn("not the JSON text.format asks for", self.error(response, 502)["message"])

    def test_stream(self) -> None:
        """A streamed structured response has one delta, the checked answer."""
        body = {"model": "claude", "input": "x", "stream": True, "text": {"format": {"type": "json_object"}}}
        pending = self.start("POST", RESPONSES, body)
        self.child().emit_stdout(claude_result('{"a": true}'))
        self.child().exit(0)
        _, chunks = self.stream(pending)
        self.stub.flush()
        received = named_events(chunks)
        deltas = [data["delta"] for kind, data in received if kind == "response.output_text.delta"]
        self.assertEqual(deltas, ['{"a": true}'])
        self.assertEqual(received[-1][0], "response.completed")
