"""A tool round trip on chat completions: the CLI asks for the tool, the client runs it."""

import json
import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("CLINVK_URL", "http://127.0.0.1:8080") + "/openai/v1",
    api_key=os.environ.get("CLINVK_API_KEY", "unused"),
)
tools = [
    {
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
]


def get_weather(city: str) -> str:
    return "sunny, 21 C"


messages = [{"role": "user", "content": "What is the weather in Paris? Use get_weather."}]
while True:
    completion = client.chat.completions.create(model="claude", messages=messages, tools=tools)
    message = completion.choices[0].message
    if completion.choices[0].finish_reason != "tool_calls":
        print(message.content)
        break
    messages.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls:
        print("claude asks for", call.function.name)
        result = get_weather(**json.loads(call.function.arguments))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
