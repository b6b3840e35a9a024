"""Stream an answer with the Anthropic SDK's stream helper."""

import os

import anthropic

client = anthropic.Anthropic(
    base_url=os.environ.get("CLINVK_URL", "http://127.0.0.1:8080") + "/anthropic",
    api_key=os.environ.get("CLINVK_API_KEY", "unused"),
)
with client.messages.stream(
    model="claude",
    max_tokens=1024,
    messages=[{"role": "user", "content": "Write a haiku about autumn"}],
) as stream:
    for text in stream.text_stream:
        print(text, end="", flush=True)
    print()
    final = stream.get_final_message()
print(final.stop_reason, final.usage.output_tokens)
