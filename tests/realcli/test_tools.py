"""
Client tools with the real CLIs (docs/design/client-tools.md): the model
server asks for the client's tool the way each model would; the CLI calls
it through clinvk's MCP endpoint, and the call reaches the SDK client.
The client's result goes back to the same, waiting CLI process, which
sends it to the model and answers.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from clinvk.testing import model_server
from tests.integration._sdk_server import off_reactor
from tests.realcli._harness import MODELS, RealCLITestCase

HEADER = "x-clinvk-session-id"
FORECAST = "sunny, 21 C"
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


class _ToolsMixin:
    backend: ClassVar[str]

    def call_reply(self) -> model_server.Reply:
        """The model's call of the client's tool, named the way this CLI offers it."""
        raise NotImplementedError

    def offered(self, body: Any) -> list[str]:
        """The names of the tools this CLI offered the model in C{body}."""
        raise NotImplementedError

    @off_reactor
    def test_round_trip(self: Any) -> None:
        """
        The model asks for get_weather: the SDK gets the call; its result
        reaches the model from the same CLI run (no new conversation seeded
        with it), and the answer comes back in the same clinvk session.
        """
        self.model.script(self.backend, self.call_reply(), model_server.text("It is sunny in Paris."))
        chat = self.openai_client().chat.completions.with_raw_response
        model = MODELS[self.backend]
        messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
        first = chat.create(model=model, messages=messages, tools=[WEATHER])
        choice = first.parse().choices[0]
        self.assertEqual(choice.finish_reason, "tool_calls")
        calls: Any = choice.message.tool_calls
        [call] = calls
        self.assertEqual(
            (call.function.name, json.loads(call.function.arguments)), ("get_weather", {"city": "Paris"})
        )
        messages += [
            choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": FORECAST},
        ]
        second = chat.create(model=model, messages=messages, tools=[WEATHER])
        self.assertEqual(second.parse().choices[0].message.content, "It is sunny in Paris.")
        self.assertEqual(first.headers[HEADER], second.headers[HEADER])
        asked, told = self.model.turns(self.backend)[-2:]
        self.assertIn("get_weather", " ".join(self.offered(asked.body)))
        sent = json.dumps(told.body)
        self.assertIn(FORECAST, sent)
        # The waiting run sent the result as the tool's: no seeded history.
        self.assertNotIn("[Tool result", sent)
        self.assert_only_client_tools(asked.body)

    def assert_only_client_tools(self: Any, body: Any) -> None:
        """The CLI offered the model the client's tool, and none of its own that runs anything."""
        raise NotImplementedError


class ClaudeToolTests(_ToolsMixin, RealCLITestCase):
    backend = "claude"

    def call_reply(self) -> model_server.Reply:
        return model_server.tool_call("mcp__clinvk__get_weather", {"city": "Paris"})

    def offered(self, body: Any) -> list[str]:
        return [tool.get("name", "") for tool in body.get("tools") or []]

    def assert_only_client_tools(self, body: Any) -> None:
        self.assertEqual(self.offered(body), ["mcp__clinvk__get_weather"])


class CodexToolTests(_ToolsMixin, RealCLITestCase):
    backend = "codex"

    def call_reply(self) -> model_server.Reply:
        return model_server.tool_call("get_weather", {"city": "Paris"}, namespace="mcp__clinvk")

    def offered(self, body: Any) -> list[str]:
        names = []
        for tool in body.get("tools") or []:
            names.append(tool.get("name", tool.get("type", "")))
            names += [f"{tool.get('name')}.{inner.get('name')}" for inner in tool.get("tools") or []]
        return names

    def assert_only_client_tools(self, body: Any) -> None:
        offered = self.offered(body)
        self.assertIn("mcp__clinvk.get_weather", offered)
        for own in ("exec_command", "shell", "apply_patch", "view_image", "web_search"):
            self.assertNotIn(own, offered)


class GeminiToolTests(_ToolsMixin, RealCLITestCase):
    backend = "gemini"

    def call_reply(self) -> model_server.Reply:
        return model_server.tool_call("mcp_clinvk_get_weather", {"city": "Paris"})

    def offered(self, body: Any) -> list[str]:
        return [
            declaration.get("name", "")
            for tool in body.get("tools") or []
            for declaration in tool.get("functionDeclarations") or []
        ]

    def assert_only_client_tools(self, body: Any) -> None:
        self.assertEqual(self.offered(body), ["mcp_clinvk_get_weather"])
