"""A conversation through the Responses API: each turn names the response before it."""

import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("CLINVK_URL", "http://127.0.0.1:8080") + "/openai/v1",
    api_key=os.environ.get("CLINVK_API_KEY", "unused"),
)
first = client.responses.create(model="claude", input="Pick a number")
print(first.output_text)
second = client.responses.create(model="claude", input="Double it", previous_response_id=first.id)
print(second.output_text)
with client.responses.stream(model="claude", input="Now add ten", previous_response_id=second.id) as stream:
    for event in stream:
        if event.type == "response.output_text.delta":
            print(event.delta, end="", flush=True)
print()
