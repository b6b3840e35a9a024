"""The OpenAI SDK raises its own exception classes for clinvk's errors."""

import os

import openai
from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("CLINVK_URL", "http://127.0.0.1:8080") + "/openai/v1",
    api_key=os.environ.get("CLINVK_API_KEY", "unused"),
    max_retries=0,
)

try:
    # clinvk fetches no remote image: the URL is refused before anything runs.
    client.chat.completions.create(
        model="claude",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this picture?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
                ],
            }
        ],
    )
except openai.BadRequestError as error:  # 400: the request itself is wrong
    print(f"bad request ({error.status_code}): {error.message}")
except openai.AuthenticationError:  # 401: a missing or wrong API key
    print("check CLINVK_API_KEY")
except openai.RateLimitError:  # 429: too many requests, or every run slot is busy
    print("try again later")
except openai.InternalServerError as error:  # the CLI failed (502), is missing (503), too slow (504)
    print(f"the backend failed ({error.status_code}): {error.message}")
except openai.APIConnectionError:
    print("is clinvk running?")
