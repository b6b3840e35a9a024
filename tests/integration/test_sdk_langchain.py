"""
LangChain's C{ChatOpenAI} pointed at clinvk's OpenAI-compatible API: the
way many applications reach an OpenAI-style endpoint.
"""

from __future__ import annotations

from typing import Any, ClassVar

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from tests.integration._sdk_server import (
    INPUT_TOKENS,
    LIVE_CONFIG,
    SDKServerTestCase,
    off_reactor,
    output_tokens,
)
from tests.integration._server import Config

QUESTIONS = ["Pick a number", "Double it", "Now add ten"]


class LangChainTests(SDKServerTestCase):
    """C{ChatOpenAI(base_url=…, model="claude")}."""

    def chat(self) -> ChatOpenAI:
        return self.langchain_chat("claude")

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


class LangChainConversationTests(SDKServerTestCase):
    """
    LangChain holding a conversation (docs/design/conversations.md): the
    messages it sends back each turn continue one CLI session, through
    chat completions and through the Responses API (which it takes for
    Codex model names).
    """

    server_config: ClassVar[Config] = LIVE_CONFIG

    def converse(self, chat: ChatOpenAI, backend: str) -> None:
        messages: list[BaseMessage] = [SystemMessage("Be brief.")] if backend == "claude" else []
        for question in QUESTIONS:
            messages.append(HumanMessage(question))
            reply = chat.invoke(messages)
            self.assertEqual(reply.text, f"{backend} answers: {question}")
            messages.append(reply)
        runs = [run for run in self.runs(backend) if run["stdin"] in QUESTIONS]
        self.assertEqual(sorted(run["stdin"] for run in runs), sorted(QUESTIONS))
        self.assertEqual(len({run["pid"] for run in runs}), 1, runs)

    def chat(self, model: str, **options: Any) -> ChatOpenAI:
        return self.langchain_chat(model, **options)

    @off_reactor
    def test_chat_completions(self) -> None:
        self.converse(self.chat("claude"), "claude")

    @off_reactor
    def test_responses_api(self) -> None:
        """A Codex model name: LangChain speaks the Responses API, history and all."""
        self.converse(self.chat("gpt-5-codex"), "codex")

    @off_reactor
    def test_responses_api_by_previous_id(self) -> None:
        """C{use_previous_response_id}: LangChain sends only the new message and the last response's id."""
        self.converse(self.chat("claude", use_responses_api=True, use_previous_response_id=True), "claude")
