"""Stream an answer with the asynchronous Anthropic client."""

import asyncio
import os

import anthropic


async def main() -> None:
    client = anthropic.AsyncAnthropic(
        base_url=os.environ.get("CLINVK_URL", "http://127.0.0.1:8080") + "/anthropic",
        api_key=os.environ.get("CLINVK_API_KEY", "unused"),
    )
    async with client.messages.stream(
        model="claude",
        max_tokens=1024,
        messages=[{"role": "user", "content": "Write a haiku about autumn"}],
    ) as stream:
        async for text in stream.text_stream:
            print(text, end="", flush=True)
    print()


asyncio.run(main())
