"""An answer held to a schema: the SDK's parse helper on claude and on codex."""

import os

from openai import OpenAI
from pydantic import BaseModel

client = OpenAI(
    base_url=os.environ.get("CLINVK_URL", "http://127.0.0.1:8080") + "/openai/v1",
    api_key=os.environ.get("CLINVK_API_KEY", "unused"),
)


class Pick(BaseModel):
    label: str
    n: int


for model in ("claude", "codex"):
    completion = client.chat.completions.parse(
        model=model,
        messages=[{"role": "user", "content": "Pick a colour"}],
        response_format=Pick,
    )
    print(completion.choices[0].message.parsed)
