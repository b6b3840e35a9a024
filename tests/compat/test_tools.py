"""
The client's tools in each dialect (docs/design/client-tools.md): what a
request offers, its tool_choice, and calls and results as history text.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from clinvk.compat.conversation import anthropic_turns, flatten, openai_turns
from clinvk.compat.responses import responses_turns
from clinvk.compat.tools import (
    NAMED,
    NONE,
    REQUIRED,
    ToolCall,
    ToolChoice,
    ToolExchanges,
    anthropic_tool_choice,
    anthropic_tools,
    calls_text,
    canonical,
    openai_tool_choice,
    openai_tools,
    responses_tools,
)
from clinvk.errors import InvalidRequest

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}}


class DialectTests(SynchronousTestCase):
    def test_openai(self) -> None:
        """Functions with their name, description and schema; no schema is an empty object."""
        tools = openai_tools(
            [
                {"type": "function", "function": {"name": "w", "description": "d", "parameters": SCHEMA}},
                {"type": "function", "function": {"name": "t"}},
            ]
        )
        self.assertEqual(
            [(tool.name, tool.description, tool.input_schema) for tool in tools],
            [("w", "d", SCHEMA), ("t", "", {"type": "object", "properties": {}})],
        )

    def test_responses_and_anthropic(self) -> None:
        self.assertEqual(
            responses_tools([{"type": "function", "name": "w", "parameters": SCHEMA}])[0].input_schema, SCHEMA
        )
        self.assertEqual(anthropic_tools([{"name": "w", "input_schema": SCHEMA}])[0].name, "w")

    def test_refused(self) -> None:
        """Other tool types, bad names, schemas of no object and twins are 400s naming where."""
        cases: list[tuple[Any, Any, str]] = [
            (openai_tools, [{"type": "web_search"}], "tools[0].type"),
            (openai_tools, [{"type": "function", "function": {"name": "a b"}}], "tools[0].function.name"),
            (
                openai_tools,
                [{"type": "function", "function": {"name": "a", "parameters": {"type": "string"}}}],
                "tools[0].function.parameters",
            ),
            (openai_tools, [{"type": "function", "function": {"name": "a"}}] * 2, "tools"),
            (responses_tools, [{"type": "file_search"}], "tools[0].type"),
            (anthropic_tools, [{"type": "web_search_20250305", "name": "web_search"}], "tools[0].type"),
            (anthropic_tools, [{"name": "x" * 65, "input_schema": SCHEMA}], "tools[0].name"),
        ]
        for parse, tools, param in cases:
            with self.assertRaises(InvalidRequest) as raised:
                parse(tools)
            self.assertEqual(raised.exception.param, param)


class ChoiceTests(SynchronousTestCase):
    tools = openai_tools([{"type": "function", "function": {"name": "w"}}])

    def test_openai(self) -> None:
        self.assertEqual(openai_tool_choice(None, self.tools), ToolChoice())
        self.assertEqual(openai_tool_choice("required", self.tools).mode, REQUIRED)
        named = openai_tool_choice({"type": "function", "function": {"name": "w"}}, self.tools)
        self.assertEqual((named.mode, named.name), (NAMED, "w"))
        # The Responses API names it at the top level.
        self.assertEqual(openai_tool_choice({"type": "function", "name": "w"}, self.tools).name, "w")

    def test_anthropic(self) -> None:
        self.assertEqual(anthropic_tool_choice({"type": "any"}, self.tools).mode, REQUIRED)
        self.assertEqual(anthropic_tool_choice({"type": "none"}, self.tools).mode, NONE)
        self.assertEqual(anthropic_tool_choice({"type": "tool", "name": "w"}, self.tools).name, "w")

    def test_unknown_name(self) -> None:
        """A named tool that is not offered is a 400 naming tool_choice."""
        with self.assertRaises(InvalidRequest) as raised:
            openai_tool_choice({"type": "function", "function": {"name": "x"}}, self.tools)
        self.assertEqual(raised.exception.param, "tool_choice")

    def test_instruction(self) -> None:
        """Only required and named choices say something to the CLI."""
        self.assertEqual(ToolChoice().instruction(), "")
        self.assertIn("one of the tools", ToolChoice(REQUIRED).instruction())
        self.assertIn("the tool w", ToolChoice(NAMED, "w").instruction())


class HistoryTests(SynchronousTestCase):
    """Calls and results are text of the history, the same in every dialect."""

    def test_canonical(self) -> None:
        """Arguments compare alike whatever their spacing and order."""
        self.assertEqual(canonical('{"b": 1, "a": [2]}'), canonical({"a": [2], "b": 1}))
        self.assertEqual(canonical("not json"), "not json")

    def test_alike(self) -> None:
        """
        The same exchange in the three dialects is the same assistant text,
        so a conversation's lineage follows it in any of them.
        """
        call = ToolCall("c1", "w", '{"city":"Paris"}')
        expected = calls_text("Let me look", [call])
        chat, _ = openai_turns(
            [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": "Let me look",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "w", "arguments": '{"city": "Paris"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
            ]
        )
        messages, _ = anthropic_turns(
            [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Let me look"},
                        {"type": "tool_use", "id": "c1", "name": "w", "input": {"city": "Paris"}},
                    ],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "c1", "content": "sunny"}],
                },
            ],
            None,
        )
        responses, _ = responses_turns(
            [
                {"role": "user", "content": "q"},
                {
                    "type": "message",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": "Let me look"}],
                },
                {"type": "function_call", "call_id": "c1", "name": "w", "arguments": '{"city":"Paris"}'},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
            ]
        )
        for turns in (chat, messages, responses):
            self.assertEqual(turns[1], ("assistant", expected))
            self.assertEqual(turns[2][1], "[Tool result c1: sunny]")

    def test_results_collected(self) -> None:
        """The results are collected by call id; an error result says it failed."""
        exchanges = ToolExchanges()
        turns, _ = anthropic_turns(
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "tool_result",
                            "tool_use_id": "a",
                            "content": [{"type": "text", "text": "x"}],
                        },
                        {"type": "tool_result", "tool_use_id": "b", "content": "boom", "is_error": True},
                        {"type": "text", "text": "and go on"},
                    ],
                }
            ],
            None,
            exchanges=exchanges,
        )
        self.assertEqual(
            [(r.call_id, r.text, r.is_error) for r in exchanges.results.values()],
            [("a", "x", False), ("b", "boom", True)],
        )
        self.assertEqual(turns[0][1], "[Tool result a: x]\n[Tool result b (failed): boom]\nand go on")

    def test_seeded(self) -> None:
        """A history with calls, seeded into one prompt, shows the calls and their results."""
        turns, _ = openai_turns(
            [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c", "function": {"name": "w", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "c", "content": "sunny"},
            ]
        )
        self.assertEqual(
            flatten(turns), "q\n[Previous response: [Tool call c: w({})]]\n\n[Tool result c: sunny]"
        )

    def test_result_needs_id(self) -> None:
        with self.assertRaises(InvalidRequest) as raised:
            openai_turns(
                [{"role": "user", "content": "q"}, {"role": "tool", "tool_call_id": "", "content": "x"}]
            )
        self.assertEqual(raised.exception.param, "messages[1].tool_call_id")
