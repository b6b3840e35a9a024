"""List the models the OpenAI-compatible API offers: one per backend."""

import os

from openai import OpenAI

client = OpenAI(
    base_url=os.environ.get("CLINVK_URL", "http://127.0.0.1:8080") + "/openai/v1",
    api_key=os.environ.get("CLINVK_API_KEY", "unused"),
)
for model in client.models.list():
    print(model.id, model.owned_by)
