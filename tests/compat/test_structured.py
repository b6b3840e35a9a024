"""
Structured output's formats and checks (docs/design/structured-output.md).
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from clinvk.backends import build_backends
from clinvk.compat.structured import (
    JSON_OBJECT_INSTRUCTION,
    AnswerFormat,
    chat_answer_format,
    responses_answer_format,
)
from clinvk.errors import BackendFailed, InvalidRequest

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
BACKENDS = build_backends()


class FormatTests(SynchronousTestCase):
    def test_chat(self) -> None:
        """response_format's json_schema and json_object; text and none ask for nothing."""
        asked = chat_answer_format({"type": "json_schema", "json_schema": {"name": "n", "schema": SCHEMA}})
        self.assertEqual(asked, AnswerFormat(SCHEMA, "response_format"))
        self.assertEqual(chat_answer_format({"type": "json_object"}), AnswerFormat(None, "response_format"))
        self.assertIsNone(chat_answer_format({"type": "text"}))
        self.assertIsNone(chat_answer_format(None))

    def test_responses(self) -> None:
        """text.format's json_schema (schema beside its name) and json_object."""
        asked = responses_answer_format({"format": {"type": "json_schema", "name": "n", "schema": SCHEMA}})
        self.assertEqual(asked, AnswerFormat(SCHEMA, "text.format"))
        self.assertEqual(
            responses_answer_format({"format": {"type": "json_object"}}), AnswerFormat(None, "text.format")
        )
        self.assertIsNone(responses_answer_format({"format": {"type": "text"}}))
        self.assertIsNone(responses_answer_format(None))

    def test_invalid_schema(self) -> None:
        """A schema that is not one is refused, naming where it was."""
        with self.assertRaises(InvalidRequest) as raised:
            responses_answer_format({"format": {"type": "json_schema", "schema": {"type": "nothing"}}})
        self.assertEqual(raised.exception.param, "text.format.schema")
        self.assertIn("is not a valid JSON schema", str(raised.exception))

    def test_run_options(self) -> None:
        """A schema goes to the CLIs that keep to one, as compact JSON; json_object is an instruction."""
        asked = AnswerFormat({"type": "object", "required": ["n"]}, "response_format")
        self.assertEqual(asked.run_options(BACKENDS["claude"]), ('{"required":["n"],"type":"object"}', ""))
        self.assertEqual(asked.run_options(BACKENDS["codex"])[0], '{"required":["n"],"type":"object"}')
        with self.assertRaises(InvalidRequest) as raised:
            asked.run_options(BACKENDS["gemini"])
        self.assertEqual(raised.exception.param, "response_format")
        for backend in BACKENDS.values():
            self.assertEqual(
                AnswerFormat(None, "response_format").run_options(backend), ("", JSON_OBJECT_INSTRUCTION)
            )


class CheckedTests(SynchronousTestCase):
    def test_matching(self) -> None:
        """A matching answer comes back without the space around it."""
        self.assertEqual(AnswerFormat(SCHEMA, "response_format").checked(' {"n": 1}\n'), '{"n": 1}')

    def test_fences(self) -> None:
        """A json_object answer loses a code fence, with or without its info string."""
        asked = AnswerFormat(None, "response_format")
        for text in ('```json\n{"a": 1}\n```', '```\n{"a": 1}\n```', '```{"a": 1}```'):
            self.assertEqual(asked.checked(text), '{"a": 1}', text)

    def test_schema_answers_keep_fences(self) -> None:
        """A CLI held to a schema answers bare JSON: a fence there is a mismatch."""
        with self.assertRaises(BackendFailed):
            AnswerFormat(SCHEMA, "response_format").checked('```json\n{"n": 1}\n```')

    def test_mismatch(self) -> None:
        """A mismatch says where, and quotes the answer, cut short."""
        with self.assertRaises(BackendFailed) as raised:
            AnswerFormat(SCHEMA, "text.format").checked('{"n": 1.5, "pad": "' + "x" * 300 + '"}')
        message = str(raised.exception)
        self.assertIn("does not match text.format: n: 1.5 is not of type 'integer'", message)
        self.assertTrue(message.endswith('..."'), message)
        self.assertLess(len(message), 400)

    def test_not_json(self) -> None:
        with self.assertRaises(BackendFailed) as raised:
            AnswerFormat(None, "response_format").checked("Sure! Here it is.")
        self.assertIn("is not the JSON response_format asks for", str(raised.exception))
