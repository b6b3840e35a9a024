"""Call a server that requires API keys: the SDK sends its api_key as X-Api-Key."""

import os

import anthropic

client = anthropic.Anthropic(
    base_url=os.environ.get("CLINVK_URL", "http://127.0.0.1:8080") + "/anthropic",
    api_key=os.environ["CLINVK_API_KEY"],  # one of the keys in the server's CLINVK_API_KEYS
)
message = client.messages.create(
    model="claude", max_tokens=1024, messages=[{"role": "user", "content": "Hello"}]
)
# The answer is one text block.
print("".join(block.text for block in message.content if block.type == "text"))
