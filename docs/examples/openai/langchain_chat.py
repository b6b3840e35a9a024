"""LangChain's ChatOpenAI talking to clinvk."""

import os

from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

chat = ChatOpenAI(
    base_url=os.environ.get("CLINVK_URL", "http://127.0.0.1:8080") + "/openai/v1",
    api_key=SecretStr(os.environ.get("CLINVK_API_KEY", "unused")),
    model="claude",
)

reply = chat.invoke([SystemMessage("Answer in one sentence."), HumanMessage("What is a reactor?")])
print(reply.content)

for chunk in chat.stream("Write a haiku about autumn"):
    print(chunk.content, end="", flush=True)
print()
