"""Call a server that requires API keys: the SDK sends its api_key as a Bearer token."""

import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("CLINVK_URL", "http://127.0.0.1:8080") + "/openai/v1",
    api_key=os.environ["CLINVK_API_KEY"],  # one of the keys in the server's CLINVK_API_KEYS
)
completion = client.chat.completions.create(model="claude", messages=[{"role": "user", "content": "Hello"}])
print(completion.choices[0].message.content)
