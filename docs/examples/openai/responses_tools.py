"""A tool round trip on the Responses API, going on from the previous response."""

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
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]


def get_weather(city: str) -> str:
    return "sunny, 21 C"


response = client.responses.create(
    model="gpt-5.1-codex", input="What is the weather in Paris? Use get_weather.", tools=tools
)
while calls := [item for item in response.output if item.type == "function_call"]:
    outputs = []
    for call in calls:
        print("codex asks for", call.name)
        result = get_weather(**json.loads(call.arguments))
        outputs.append({"type": "function_call_output", "call_id": call.call_id, "output": result})
    response = client.responses.create(
        model="gpt-5.1-codex", previous_response_id=response.id, input=outputs, tools=tools
    )
print(response.output_text)
