"""Ask Claude a question through the official Anthropic SDK."""

import os

import anthropic

client = anthropic.Anthropic(
    base_url=os.environ.get("CLINVK_URL", "http://127.0.0.1:8080") + "/anthropic",
    api_key=os.environ.get("CLINVK_API_KEY", "unused"),  # any text when the server has no keys
)
message = client.messages.create(
    model="sonnet",  # not a backend name: runs Claude with --model sonnet
    max_tokens=1024,
    messages=[{"role": "user", "content": "What is Twisted?"}],
)
# The answer is one text block.
print("".join(block.text for block in message.content if block.type == "text"))
print(message.stop_reason, message.usage.input_tokens, message.usage.output_tokens)
