"""A Responses request's input as turns (docs/design/responses-api.md#responses-input)."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from clinvk.compat.responses import output_message, responses_turns, usage
from clinvk.errors import InvalidRequest


class TurnsTests(SynchronousTestCase):
    def test_string(self) -> None:
        self.assertEqual(responses_turns("hi"), ([("user", "hi")], []))

    def test_items(self) -> None:
        """System and developer messages join the instructions; parts are joined; reasoning and refusals skipped."""
        items = [
            {"role": "system", "content": "a"},
            {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "x"}, {"type": "input_text", "text": "y"}],
            },
            {"type": "reasoning", "summary": []},
            {
                "role": "assistant",
                "content": [{"type": "output_text", "text": "z"}, {"type": "refusal", "refusal": "no"}],
            },
            {"role": "developer", "content": [{"type": "input_text", "text": "b"}]},
        ]
        self.assertEqual(responses_turns(items), ([("user", "x\ny"), ("assistant", "z")], ["a", "b"]))

    def test_refused(self) -> None:
        """Items and parts that are not text are refused, naming where they are."""
        cases: list[tuple[list[Any], str, str]] = [
            (
                [{"type": "file_search_call", "id": "fs", "queries": []}],
                "input[0]",
                "unsupported input item type: file_search_call",
            ),
            (
                [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}],
                "input[0].content[0]",
                "unsupported content part type: input_file",
            ),
        ]
        for items, param, message in cases:
            with self.assertRaises(InvalidRequest) as raised:
                responses_turns(items)
            self.assertEqual((raised.exception.param, str(raised.exception)), (param, message))


class ShapeTests(SynchronousTestCase):
    def test_output_message(self) -> None:
        self.assertEqual(output_message("m", None, "in_progress")["content"], [])
        self.assertEqual(output_message("m", "t")["content"][0]["text"], "t")

    def test_usage(self) -> None:
        self.assertEqual(usage(3, 4)["total_tokens"], 7)
