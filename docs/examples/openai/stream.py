"""Stream an answer through the OpenAI SDK, printing the text as it arrives."""

import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("CLINVK_URL", "http://127.0.0.1:8080") + "/openai/v1",
    api_key=os.environ.get("CLINVK_API_KEY", "unused"),
)
stream = client.chat.completions.create(
    model="claude",
    messages=[{"role": "user", "content": "Write a haiku about autumn"}],
    stream=True,
)
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
print()
