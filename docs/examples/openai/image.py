"""An image, sent inline as a data URL, in a user message."""

import base64
import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("CLINVK_URL", "http://127.0.0.1:8080") + "/openai/v1",
    api_key=os.environ.get("CLINVK_API_KEY", "unused"),
)
# A one-pixel red PNG; read your own file's bytes instead.
png = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)
answer = client.chat.completions.create(
    model="claude",
    messages=[
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What colour is this square?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()},
                },
            ],
        }
    ],
)
print(answer.choices[0].message.content)
