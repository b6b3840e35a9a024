"""A tool round trip on the Messages API: a tool_use block, then its tool_result."""

import os

from anthropic import Anthropic

client = Anthropic(
    base_url=os.environ.get("CLINVK_URL", "http://127.0.0.1:8080") + "/anthropic",
    api_key=os.environ.get("CLINVK_API_KEY", "unused"),
)
tools = [
    {
        "name": "get_weather",
        "description": "The weather in a city.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


def get_weather(city: str) -> str:
    return "sunny, 21 C"


messages = [{"role": "user", "content": "What is the weather in Paris? Use get_weather."}]
while True:
    message = client.messages.create(model="gemini", max_tokens=1024, messages=messages, tools=tools)
    if message.stop_reason != "tool_use":
        print(message.content[0].text)
        break
    messages.append({"role": "assistant", "content": message.content})
    results = []
    for block in message.content:
        if block.type == "tool_use":
            print("gemini asks for", block.name)
            results.append(
                {"type": "tool_result", "tool_use_id": block.id, "content": get_weather(**block.input)}
            )
    messages.append({"role": "user", "content": results})
