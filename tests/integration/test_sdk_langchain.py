"""
LangChain's C{ChatOpenAI} pointed at clinvk's OpenAI-compatible API: the
way many applications reach an OpenAI-style endpoint.
"""

from __future__ import annotations

import openai
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from tests.integration._sdk_server import (
    CLIENT_TIMEOUT,
    INPUT_TOKENS,
    SDKServerTestCase,
    off_reactor,
    output_tokens,
)


class LangChainTests(SDKServerTestCase):
    """C{ChatOpenAI(base_url=…, model="claude")}."""

    def chat(self) -> ChatOpenAI:
        return ChatOpenAI(
            base_url=f"{self.base_url}/openai/v1",
            api_key=SecretStr("sk-clinvk-test"),
            model="claude",
            max_retries=0,
            timeout=CLIENT_TIMEOUT,
            http_client=openai.DefaultHttpxClient(trust_env=False),
        )

    @off_reactor
    def test_invoke(self) -> None:
        """
        C{invoke} with a system and a user message answers with Claude's
        answer and its usage; Claude got the system prompt and the prompt.
        """
        reply = self.chat().invoke([SystemMessage("Be brief."), HumanMessage("Say hello")])
        self.assertIsInstance(reply, AIMessage)
        answer = "claude answers: Say hello"
        self.assertEqual(reply.content, answer)
        self.assertEqual(reply.response_metadata["finish_reason"], "stop")
        assert reply.usage_metadata is not None
        self.assertEqual(
            (reply.usage_metadata["input_tokens"], reply.usage_metadata["output_tokens"]),
            (INPUT_TOKENS["claude"], output_tokens(answer)),
        )
        [run] = self.runs("claude")
        self.assert_system_prompt(run, "Be brief.", "Say hello")

    @off_reactor
    def test_stream(self) -> None:
        """
        C{stream} yields Claude's token deltas as chunks that add up to
        the answer, with the usage at the end (C{stream_options}).
        """
        answer = "Tick Tack Tock"
        # A custom base_url leaves usage off by default; ask for it.
        chunks = list(self.chat().stream(f"#fake chunks=3\n#fake-answer {answer}\nCount", stream_usage=True))
        texts = [chunk.content for chunk in chunks if chunk.content]
        self.assertEqual(texts, ["Tick ", "Tack ", "Tock"])
        whole = chunks[0]
        for chunk in chunks[1:]:
            whole += chunk
        self.assertIsInstance(whole, AIMessageChunk)
        self.assertEqual(whole.content, answer)
        assert whole.usage_metadata is not None
        self.assertEqual(
            (whole.usage_metadata["input_tokens"], whole.usage_metadata["output_tokens"]),
            (INPUT_TOKENS["claude"], output_tokens(answer)),
        )
