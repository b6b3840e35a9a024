"""Stream an answer from clinvk through the official openai SDK."""

import os

from openai import OpenAI

base_url = os.environ.get("CLINVK_URL", "http://127.0.0.1:8080")
# clinvk needs no key unless you configure some; the SDK wants one.
client = OpenAI(base_url=f"{base_url}/openai/v1", api_key="unused")

# The first line steers the fake CLIs: answer in five pieces, 0.3 s
# apart, so that you can watch the stream. A real CLI would read it as
# part of the prompt.
prompt = "#fake chunks=5 chunk_delay=0.3\nSay hello to a new user"

stream = client.chat.completions.create(
    model="claude",
    messages=[{"role": "user", "content": prompt}],
    stream=True,
)
pieces = 0
for chunk in stream:
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
        pieces += 1
print(f"\n({pieces} pieces)")
