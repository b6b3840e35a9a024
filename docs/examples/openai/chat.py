"""Ask Claude a question through the official OpenAI SDK."""

import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("CLINVK_URL", "http://127.0.0.1:8080") + "/openai/v1",
    api_key=os.environ.get("CLINVK_API_KEY", "unused"),  # any text when the server has no keys
)
completion = client.chat.completions.create(
    model="claude",  # or "gpt-4o" for Codex, "gemini-2.5-pro" for Gemini
    messages=[
        {"role": "system", "content": "Answer in one sentence."},
        {"role": "user", "content": "What is Twisted?"},
    ],
)
print(completion.choices[0].message.content)
