"""Stream answers from two backends at once with the asynchronous OpenAI client."""

import asyncio
import os

from openai import AsyncOpenAI

client = AsyncOpenAI(
    base_url=os.environ.get("CLINVK_URL", "http://127.0.0.1:8080") + "/openai/v1",
    api_key=os.environ.get("CLINVK_API_KEY", "unused"),
)


async def ask(model: str, question: str) -> str:
    """Stream one answer, printing each piece as it arrives; return the whole text."""
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}], stream=True
    )
    pieces = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            print(f"[{model}] {chunk.choices[0].delta.content}", flush=True)
            pieces.append(chunk.choices[0].delta.content)
    return "".join(pieces)


async def main() -> None:
    answers = await asyncio.gather(
        ask("claude", "Explain Deferreds briefly"),
        ask("gemini-2.5-pro", "Explain Deferreds briefly"),
    )
    for answer in answers:
        print(answer)


asyncio.run(main())
