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


TIME: Any = {
    "type": "function",
    "function": {**WEATHER["function"], "name": "get_time", "description": "The time in a city."},
}


class _ToolsMixin:
    backend: ClassVar[str]

    def call(self, tool: str) -> model_server.ToolCall:
        """The model's call of the client's C{tool}, named the way this CLI offers it."""
        raise NotImplementedError

    def call_reply(self) -> model_server.Reply:
        return model_server.Reply(tool_call=self.call("get_weather"))

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

    @off_reactor
    def test_calls_of_one_step(self: Any) -> None:
        """
        The model asks for two tools in one message: the CLI makes both
        calls at once, and both reach the client in one answer; their
        results go back together.
        """
        calls = (self.call("get_weather"), self.call("get_time"))
        self.model.script(self.backend, model_server.tool_calls(*calls), model_server.text("Sunny, at noon."))
        client = self.openai_client()
        model = MODELS[self.backend]
        messages: list[Any] = [{"role": "user", "content": "Weather and time in Paris?"}]
        first = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER, TIME])
        made: Any = first.choices[0].message.tool_calls
        self.assertEqual(sorted(call.function.name for call in made), ["get_time", "get_weather"])
        results = {"get_weather": FORECAST, "get_time": "noon"}
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages += [
            {"role": "tool", "tool_call_id": call.id, "content": results[call.function.name]} for call in made
        ]
        second = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER, TIME])
        self.assertEqual(second.choices[0].message.content, "Sunny, at noon.")
        sent = json.dumps(self.model.turns(self.backend)[-1].body)
        self.assertIn(FORECAST, sent)
        self.assertIn("noon", sent)

    def assert_only_client_tools(self: Any, body: Any) -> None:
        """The CLI offered the model the client's tool, and none of its own that runs anything."""
        raise NotImplementedError


class ClaudeToolTests(_ToolsMixin, RealCLITestCase):
    backend = "claude"

    def call(self, tool: str) -> model_server.ToolCall:
        return model_server.ToolCall(f"mcp__clinvk__{tool}", {"city": "Paris"})

    def offered(self, body: Any) -> list[str]:
        return [tool.get("name", "") for tool in body.get("tools") or []]

    def assert_only_client_tools(self, body: Any) -> None:
        self.assertEqual(self.offered(body), ["mcp__clinvk__get_weather"])


class CodexToolTests(_ToolsMixin, RealCLITestCase):
    backend = "codex"

    def call(self, tool: str) -> model_server.ToolCall:
        return model_server.ToolCall(tool, {"city": "Paris"}, namespace="mcp__clinvk")

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

    def call(self, tool: str) -> model_server.ToolCall:
        return model_server.ToolCall(f"mcp_clinvk_{tool}", {"city": "Paris"})

    def offered(self, body: Any) -> list[str]:
        return [
            declaration.get("name", "")
            for tool in body.get("tools") or []
            for declaration in tool.get("functionDeclarations") or []
        ]

    def assert_only_client_tools(self, body: Any) -> None:
        self.assertEqual(self.offered(body), ["mcp_clinvk_get_weather"])
