"""A system prompt and an earlier exchange, sent whole as the API is stateless."""

import os

import anthropic

client = anthropic.Anthropic(
    base_url=os.environ.get("CLINVK_URL", "http://127.0.0.1:8080") + "/anthropic",
    api_key=os.environ.get("CLINVK_API_KEY", "unused"),
)
message = client.messages.create(
    model="claude",  # the backend's configured model
    max_tokens=1024,
    system="You are a terse code reviewer.",
    messages=[
        {"role": "user", "content": "Is time.sleep fine in a Twisted server?"},
        {"role": "assistant", "content": "No: it blocks the reactor."},
        {"role": "user", "content": "What should I use instead?"},
    ],
)
# The answer is one text block.
print("".join(block.text for block in message.content if block.type == "text"))
