"""
Client tools (docs/design/client-tools.md) through the official SDKs and
LangChain: the fake CLIs, MCP clients as the real ones are, call the
client's tools the prompt names; each call comes back to the client as its
API's tool call, and the client's result goes back to the CLI run that
waits on it, which answers with it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar
from urllib.parse import urlparse

from twisted.internet.threads import deferToThread

from tests.integration._processes import alive
from tests.integration._sdk_server import (
    ANTHROPIC_MODELS,
    OPENAI_MODELS,
    SDKServerTestCase,
    off_reactor,
)
from tests.integration._server import Config

PARAMETERS: Any = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER: Any = {
    "type": "function",
    "function": {"name": "get_weather", "description": "The weather in a city.", "parameters": PARAMETERS},
}
TIME: Any = {
    "type": "function",
    "function": {"name": "get_time", "description": "The time in a city.", "parameters": PARAMETERS},
}
ANTHROPIC_WEATHER: Any = {
    "name": "get_weather",
    "description": "The weather in a city.",
    "input_schema": PARAMETERS,
}
RESPONSES_WEATHER: Any = {"type": "function", **WEATHER["function"]}

FORECAST = "sunny, 21 C"

# The backends whose CLIs call client tools.
BACKENDS = ("claude", "codex", "gemini")


def question(backend: str, api: str) -> str:
    """A prompt that asks for get_weather, unique to a backend and an API (the fakes' records tell them apart)."""
    return f"What is the weather in Paris ({api} on {backend})? Use get_weather."


def answered(backend: str, *said: tuple[str, str]) -> str:
    """What a fake answers once its tools said C{said}, C{(tool, result)} each."""
    return f"{backend} answers: " + "; ".join(f"{tool} said {result}" for tool, result in said)


class ToolTestCase(SDKServerTestCase):
    """What the tool tests share: the checks of a fake's record."""

    def assert_called(self, backend: str, prompt: str, *said: tuple[str, str]) -> None:
        """The run of C{backend} for C{prompt} called the tools of C{said} and got their results."""
        record = self.run_with(backend, prompt)
        made = {(call["name"], call["result"]) for call in record["tool_calls"]}
        self.assertEqual(made, set(said), backend)
        for call in record["tool_calls"]:
            # The arguments the fake made from the schema: the prompt's first line as the city.
            self.assertEqual(call["input"], {"city": prompt})


class OpenAIChatToolTests(ToolTestCase):
    """Chat completions: C{tool_calls}, then the C{tool} messages' results."""

    @off_reactor
    def test_round_trip(self) -> None:
        """
        The answer is a C{get_weather} call with C{finish_reason}
        C{tool_calls}; sent its result, the same CLI run answers with it,
        in the same session.
        """
        with self.openai_client() as client:
            for backend in BACKENDS:
                prompt = question(backend, "chat")
                messages: list[Any] = [{"role": "user", "content": prompt}]
                raw = client.chat.completions.with_raw_response.create(
                    model=OPENAI_MODELS[backend], messages=messages, tools=[WEATHER]
                )
                first = raw.parse()
                choice = first.choices[0]
                self.assertEqual(choice.finish_reason, "tool_calls", backend)
                self.assertIsNone(choice.message.content)
                calls: Any = choice.message.tool_calls or []
                [call] = calls
                self.assertRegex(call.id, "^call_[0-9a-f]{24}$")
                self.assertEqual(
                    (call.function.name, json.loads(call.function.arguments)),
                    ("get_weather", {"city": prompt}),
                )
                messages += [
                    choice.message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": call.id, "content": FORECAST},
                ]
                second = client.chat.completions.with_raw_response.create(
                    model=OPENAI_MODELS[backend], messages=messages, tools=[WEATHER]
                )
                self.assertEqual(second.headers["x-clinvk-session-id"], raw.headers["x-clinvk-session-id"])
                answer = second.parse().choices[0]
                self.assertEqual(
                    (answer.finish_reason, answer.message.content),
                    ("stop", answered(backend, ("get_weather", FORECAST))),
                )
                self.assert_called(backend, prompt, ("get_weather", FORECAST))

    @off_reactor
    def test_stream(self) -> None:
        """
        Streamed, the calls come as C{tool_calls} deltas with their
        C{index}, and the finish reason C{tool_calls}; two tools the prompt
        names are called at once and come back together.
        """
        with self.openai_client() as client:
            for backend in BACKENDS:
                prompt = f"Weather and time in Paris on {backend}? Use get_weather and get_time."
                messages: list[Any] = [{"role": "user", "content": prompt}]
                chunks = list(
                    client.chat.completions.create(
                        model=OPENAI_MODELS[backend], messages=messages, tools=[WEATHER, TIME], stream=True
                    )
                )
                self.assertEqual(chunks[-1].choices[0].finish_reason, "tool_calls")
                deltas = [call for chunk in chunks for call in (chunk.choices[0].delta.tool_calls or [])]
                calls: dict[int, dict[str, str]] = {}
                for delta in deltas:
                    found = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                    found["id"] += delta.id or ""
                    found["name"] += (delta.function.name or "") if delta.function else ""
                    found["arguments"] += (delta.function.arguments or "") if delta.function else ""
                self.assertEqual(sorted(call["name"] for call in calls.values()), ["get_time", "get_weather"])
                results = {"get_weather": FORECAST, "get_time": "noon"}
                messages.append(
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": call["name"], "arguments": call["arguments"]},
                            }
                            for call in calls.values()
                        ],
                    }
                )
                messages += [
                    {"role": "tool", "tool_call_id": call["id"], "content": results[call["name"]]}
                    for call in calls.values()
                ]
                text = "".join(
                    chunk.choices[0].delta.content or ""
                    for chunk in client.chat.completions.create(
                        model=OPENAI_MODELS[backend], messages=messages, tools=[WEATHER, TIME], stream=True
                    )
                    if chunk.choices
                )
                self.assertIn("get_weather said " + FORECAST, text)
                self.assertIn("get_time said noon", text)
                self.assert_called(backend, prompt, ("get_weather", FORECAST), ("get_time", "noon"))

    @off_reactor
    def test_async(self) -> None:
        """The async client makes the same round trip."""

        async def round_trip(backend: str) -> str:
            async with self.async_openai_client() as client:
                prompt = question(backend, "async")
                messages: list[Any] = [{"role": "user", "content": prompt}]
                first = await client.chat.completions.create(
                    model=OPENAI_MODELS[backend], messages=messages, tools=[WEATHER]
                )
                [call] = first.choices[0].message.tool_calls or []
                messages += [
                    first.choices[0].message.model_dump(exclude_none=True),
                    {"role": "tool", "tool_call_id": call.id, "content": FORECAST},
                ]
                second = await client.chat.completions.create(
                    model=OPENAI_MODELS[backend], messages=messages, tools=[WEATHER]
                )
                return second.choices[0].message.content or ""

        for backend in BACKENDS:
            self.assertEqual(asyncio.run(round_trip(backend)), answered(backend, ("get_weather", FORECAST)))

    @off_reactor
    def test_tool_choice_none(self) -> None:
        """With C{tool_choice} C{none} the CLI is given no tools, and answers in words."""
        with self.openai_client() as client:
            for backend in BACKENDS:
                prompt = question(backend, "none")
                answer = client.chat.completions.create(
                    model=OPENAI_MODELS[backend],
                    messages=[{"role": "user", "content": prompt}],
                    tools=[WEATHER],
                    tool_choice="none",
                )
                self.assertEqual(answer.choices[0].finish_reason, "stop")
                self.assertNotIn("tool_calls", self.run_with(backend, prompt))

    @off_reactor
    def test_named_tool_choice(self) -> None:
        """A named C{tool_choice} asks the CLI to call it: the fakes do, as a model told to would."""
        with self.openai_client() as client:
            for backend in BACKENDS:
                prompt = f"What is it like in Paris on {backend}?"
                answer = client.chat.completions.create(
                    model=OPENAI_MODELS[backend],
                    messages=[{"role": "user", "content": prompt}],
                    tools=[WEATHER],
                    tool_choice={"type": "function", "function": {"name": "get_weather"}},
                )
                self.assertEqual(answer.choices[0].finish_reason, "tool_calls", backend)
                record = self.run_with(backend, prompt)
                self.assertIn("call the tool get_weather", record["stdin"])
                # Never answered: the run is stopped at the end of the test.
                self.assert_not_public(record["mcp_url"])

    def assert_not_public(self, url: str) -> None:
        """The MCP endpoint at C{url} answers on its own listener alone, not the API's."""
        listing = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
        headers = {"Content-Type": "application/json"}
        found = urlparse(url)
        self.assertEqual(found.hostname, "127.0.0.1")
        self.assertNotEqual(found.port, urlparse(self.base_url).port)
        status, _, _ = self.request_raw("POST", found.path, listing, headers)
        self.assertEqual(status, 404)


class AnthropicToolTests(ToolTestCase):
    """Messages: C{tool_use} blocks, then the C{tool_result} blocks."""

    @off_reactor
    def test_round_trip(self) -> None:
        """C{stop_reason} C{tool_use} with one C{tool_use} block; its result is answered."""
        with self.anthropic_client() as client:
            for backend in BACKENDS:
                prompt = question(backend, "messages")
                messages: list[Any] = [{"role": "user", "content": prompt}]
                first = client.messages.create(
                    model=ANTHROPIC_MODELS[backend],
                    max_tokens=256,
                    messages=messages,
                    tools=[ANTHROPIC_WEATHER],
                )
                self.assertEqual(first.stop_reason, "tool_use", backend)
                [block] = [block for block in first.content if block.type == "tool_use"]
                self.assertRegex(block.id, "^toolu_[0-9a-f]{24}$")
                self.assertEqual((block.name, block.input), ("get_weather", {"city": prompt}))
                messages += [
                    {"role": "assistant", "content": [block.model_dump() for block in first.content]},
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": block.id, "content": FORECAST}],
                    },
                ]
                second = client.messages.create(
                    model=ANTHROPIC_MODELS[backend],
                    max_tokens=256,
                    messages=messages,
                    tools=[ANTHROPIC_WEATHER],
                )
                self.assertEqual(second.stop_reason, "end_turn")
                self.assertEqual(second.content[0].text, answered(backend, ("get_weather", FORECAST)))  # type: ignore[union-attr]
                self.assert_called(backend, prompt, ("get_weather", FORECAST))

    @off_reactor
    def test_stream(self) -> None:
        """
        Streamed, the call is a C{tool_use} block whose input arrives as
        C{input_json_delta}; the SDK's final message holds it, and a
        failed result goes back as a tool error.
        """
        with self.anthropic_client() as client:
            for backend in BACKENDS:
                prompt = question(backend, "stream")
                messages: list[Any] = [{"role": "user", "content": prompt}]
                with client.messages.stream(
                    model=ANTHROPIC_MODELS[backend],
                    max_tokens=256,
                    messages=messages,
                    tools=[ANTHROPIC_WEATHER],
                ) as stream:
                    kinds = [event.type for event in stream]
                    first = stream.get_final_message()
                self.assertIn("input_json", kinds)
                self.assertEqual(first.stop_reason, "tool_use")
                [block] = [block for block in first.content if block.type == "tool_use"]
                self.assertEqual(block.input, {"city": prompt})
                messages += [
                    {"role": "assistant", "content": [block.model_dump() for block in first.content]},
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": block.id,
                                "content": "no such city",
                                "is_error": True,
                            }
                        ],
                    },
                ]
                with client.messages.stream(
                    model=ANTHROPIC_MODELS[backend],
                    max_tokens=256,
                    messages=messages,
                    tools=[ANTHROPIC_WEATHER],
                ) as stream:
                    second = stream.get_final_message()
                self.assertEqual(second.content[0].text, answered(backend, ("get_weather", "no such city")))  # type: ignore[union-attr]
                [call] = self.run_with(backend, prompt)["tool_calls"]
                self.assertTrue(call["is_error"])


class AnthropicAsyncToolTests(ToolTestCase):
    """The async Anthropic client makes the same round trip."""

    @off_reactor
    def test_round_trip(self) -> None:
        async def round_trip(backend: str) -> str:
            async with self.async_anthropic_client() as client:
                prompt = question(backend, "async messages")
                messages: list[Any] = [{"role": "user", "content": prompt}]
                first = await client.messages.create(
                    model=ANTHROPIC_MODELS[backend],
                    max_tokens=256,
                    messages=messages,
                    tools=[ANTHROPIC_WEATHER],
                )
                [block] = [block for block in first.content if block.type == "tool_use"]
                messages += [
                    {"role": "assistant", "content": [block.model_dump() for block in first.content]},
                    {
                        "role": "user",
                        "content": [{"type": "tool_result", "tool_use_id": block.id, "content": FORECAST}],
                    },
                ]
                second = await client.messages.create(
                    model=ANTHROPIC_MODELS[backend],
                    max_tokens=256,
                    messages=messages,
                    tools=[ANTHROPIC_WEATHER],
                )
                text: str = second.content[0].text  # type: ignore[union-attr]
                return text

        for backend in BACKENDS:
            self.assertEqual(asyncio.run(round_trip(backend)), answered(backend, ("get_weather", FORECAST)))


class ResponsesToolTests(ToolTestCase):
    """The Responses API: C{function_call} items, then C{function_call_output} items."""

    @off_reactor
    def test_round_trip(self) -> None:
        """A C{function_call} output item; its output, after C{previous_response_id}, is answered."""
        with self.openai_client() as client:
            for backend in BACKENDS:
                prompt = question(backend, "responses")
                first = client.responses.create(
                    model=OPENAI_MODELS[backend], input=prompt, tools=[RESPONSES_WEATHER]
                )
                [call] = [item for item in first.output if item.type == "function_call"]
                self.assertEqual((call.name, json.loads(call.arguments)), ("get_weather", {"city": prompt}))
                second = client.responses.create(
                    model=OPENAI_MODELS[backend],
                    previous_response_id=first.id,
                    input=[{"type": "function_call_output", "call_id": call.call_id, "output": FORECAST}],
                    tools=[RESPONSES_WEATHER],
                )
                self.assertEqual(second.output_text, answered(backend, ("get_weather", FORECAST)))
                self.assert_called(backend, prompt, ("get_weather", FORECAST))

    @off_reactor
    def test_stream_without_previous_response(self) -> None:
        """
        Streamed, the call's item and arguments events come before
        C{response.completed}; the follow-up may send the whole input back
        instead of naming the previous response.
        """
        with self.openai_client() as client:
            for backend in BACKENDS:
                prompt = question(backend, "responses stream")
                with client.responses.stream(
                    model=OPENAI_MODELS[backend], input=prompt, tools=[RESPONSES_WEATHER]
                ) as stream:
                    kinds = [event.type for event in stream]
                    first = stream.get_final_response()
                self.assertIn("response.function_call_arguments.done", kinds)
                [call] = [item for item in first.output if item.type == "function_call"]
                items: list[Any] = [
                    {"role": "user", "content": prompt},
                    call.model_dump(exclude_none=True),
                    {"type": "function_call_output", "call_id": call.call_id, "output": FORECAST},
                ]
                second = client.responses.create(
                    model=OPENAI_MODELS[backend], input=items, tools=[RESPONSES_WEATHER]
                )
                self.assertEqual(second.output_text, answered(backend, ("get_weather", FORECAST)))


class LangChainToolTests(ToolTestCase):
    """LangChain's C{bind_tools}, and an agent loop that runs the tool itself."""

    @off_reactor
    def test_agent_loop(self) -> None:
        """
        An agent's loop with C{bind_tools}: while the model asks for tools,
        LangChain runs them and sends their results; the model's last
        answer uses them.
        """
        from langchain_core.messages import HumanMessage, ToolMessage
        from langchain_core.tools import tool

        @tool
        def get_weather(city: str) -> str:
            """The weather in a city."""
            return FORECAST

        for backend in BACKENDS:
            chat = self.langchain_chat(OPENAI_MODELS[backend]).bind_tools([get_weather])
            prompt = question(backend, "langchain")
            messages: list[Any] = [HumanMessage(prompt)]
            asked: list[dict[str, Any]] = []
            reply = chat.invoke(messages)
            while reply.tool_calls:
                messages.append(reply)
                for call in reply.tool_calls:
                    asked.append(call["args"])
                    messages.append(ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"]))
                reply = chat.invoke(messages)
            self.assertEqual(asked, [{"city": prompt}])
            self.assertEqual(reply.content, answered(backend, ("get_weather", FORECAST)))


class ExpiryTests(ToolTestCase):
    """A client that never returns: the run is stopped; a late follow-up starts afresh."""

    server_config: ClassVar[Config] = {"server": {"tool_call_timeout_secs": 1}}

    async def test_late_follow_up(self) -> None:
        """
        Once C{tool_call_timeout_secs} passed, the waiting CLI is stopped;
        the late follow-up runs as a new conversation seeded with the whole
        history, results included, and the CLI answers from them.
        """
        prompt = question("claude", "late")
        messages: list[Any] = [{"role": "user", "content": prompt}]
        client = self.openai_client()
        self.addCleanup(client.close)
        first = await deferToThread(
            client.chat.completions.create, model="claude", messages=messages, tools=[WEATHER]
        )
        calls: Any = first.choices[0].message.tool_calls
        [call] = calls
        pid = self.run_with("claude", prompt)["pid"]
        # The client takes its time: the server's clock expires the call.
        await self.eventually(lambda: not alive(pid))
        messages += [
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": FORECAST},
        ]
        second = await deferToThread(
            client.chat.completions.create, model="claude", messages=messages, tools=[WEATHER]
        )
        self.assertEqual(second.choices[0].finish_reason, "stop")
        [later] = [record for record in self.runs("claude") if record["pid"] != pid]
        self.assertIn(f"[Tool result {call.id}: {FORECAST}]", later["stdin"])


class StatelessToolTests(ToolTestCase):
    """With C{server.compat_sessions} off, a round trip still goes back to the waiting run."""

    server_config: ClassVar[Config] = {"server": {"compat_sessions": False}}

    @off_reactor
    def test_round_trip(self) -> None:
        """No session is kept, but the call's id finds the run that waits on it."""
        with self.openai_client() as client:
            prompt = question("codex", "stateless")
            messages: list[Any] = [{"role": "user", "content": prompt}]
            first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=[WEATHER])
            calls: Any = first.choices[0].message.tool_calls
            [call] = calls
            messages += [
                first.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": FORECAST},
            ]
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=messages, tools=[WEATHER]
            )
            self.assertEqual(
                raw.parse().choices[0].message.content, answered("codex", ("get_weather", FORECAST))
            )
            self.assertNotIn("x-clinvk-session-id", raw.headers)
            self.assertEqual(len(self.runs("codex")), 1)
