"""A conversation of three turns: each one continues the CLI's own session."""

import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("CLINVK_URL", "http://127.0.0.1:8080") + "/openai/v1",
    api_key=os.environ.get("CLINVK_API_KEY", "unused"),
)
messages = [{"role": "system", "content": "Answer in one sentence."}]
sessions = set()
for question in ("Pick a number", "Double it", "Now add ten"):
    messages.append({"role": "user", "content": question})
    raw = client.chat.completions.with_raw_response.create(model="claude", messages=messages)
    sessions.add(raw.headers["X-Clinvk-Session-Id"])
    answer = raw.parse().choices[0].message.content
    messages.append({"role": "assistant", "content": answer})
    print(answer)
print("sessions used:", len(sessions))
