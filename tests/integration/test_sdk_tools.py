"""
Client tools (docs/design/client-tools.md) through the official SDKs and
LangChain: the fake CLIs, MCP clients as the real ones are, call the
client's tool the prompt names; the call comes back to the client as its
API's tool call, and the client's result goes back to the waiting CLI.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

from tests.integration._sdk_server import (
    ANTHROPIC_MODELS,
    OPENAI_MODELS,
    SDKServerTestCase,
    off_reactor,
)
from tests.integration._server import Config

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ANTHROPIC_WEATHER = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": WEATHER["function"]["parameters"],
}
RESPONSES_WEATHER = {"type": "function", **WEATHER["function"]}

QUESTION = "What is the weather in Paris? Use get_weather."
FORECAST = "sunny, 21 C"

# The backends with client tools, and the fakes' answer once they read the forecast.
BACKENDS = ("claude", "codex")


def answered(backend: str) -> str:
    return f"{backend} answers: get_weather said {FORECAST}"


class OpenAIToolTests(SDKServerTestCase):
    """Chat completions: C{tool_calls}, then the C{tool} message's result."""

    server_config: ClassVar[Config] = {}

    @off_reactor
    def test_round_trip(self) -> None:
        """
        The answer is a C{get_weather} call with C{finish_reason}
        C{tool_calls}; sent its result, the same CLI run answers with it.
        """
        with self.openai_client() as client:
            for backend in BACKENDS:
                model = OPENAI_MODELS[backend]
                messages: list[Any] = [{"role": "user", "content": QUESTION}]
                first = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
                choice = first.choices[0]
                self.assertEqual(choice.finish_reason, "tool_calls", backend)
                [call] = choice.message.tool_calls or []
                self.assertEqual(call.function.name, "get_weather")
                self.assertEqual(json.loads(call.function.arguments), {"city": QUESTION})
                messages += [
                    choice.message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": call.id, "content": FORECAST},
                ]
                second = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER])
                self.assertEqual(second.choices[0].finish_reason, "stop")
                self.assertEqual(second.choices[0].message.content, answered(backend))
                record = self.run_with(backend, QUESTION)
                self.assertEqual(record["tool_calls"][0]["result"], FORECAST)
