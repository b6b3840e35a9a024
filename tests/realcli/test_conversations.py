"""
Conversations on the compatibility APIs with the real CLIs
(docs/design/conversations.md): an SDK client that sends its whole history
each time holds a three-turn conversation in one CLI session. The model
server sees it: the third request carries the CLI's own transcript, each
question a user message of its own and no flattened history. The same
holds through the Responses API, each turn naming the response before it.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from clinvk.testing import model_server
from tests.integration._sdk_server import off_reactor
from tests.integration._server import Config
from tests.realcli._harness import MODELS, RealCLITestCase

QUESTIONS = ("Pick a number", "Double it", "Now add ten")
ANSWERS = ("Seven.", "Fourteen.", "Twenty-four.")
HEADER = "x-clinvk-session-id"


class _ConversationMixin:
    backend: ClassVar[str]
    server_config: ClassVar[Config] = {"server": {"metrics_enabled": True}}

    def assert_one_session(self: Any, sessions: set[str]) -> None:
        """One clinvk session, one CLI process, and the model saw the CLI's transcript."""
        [session_id] = sessions
        _, _, record = self.get_json(f"/api/v1/sessions/{session_id}")
        self.assertEqual((record["turn_count"], record["status"]), (3, "completed"), record)
        status, _, raw = self.get_raw("/metrics")
        self.assertEqual(status, 200)
        self.assertIn("clinvk_live_cold_starts_total 1.0", raw.decode())
        turns = self.model.turns(self.backend)
        self.assertEqual(len(turns), 3, [turn.path for turn in turns])
        last = turns[-1]
        texts = last.user_texts()
        # Each question is a user message of the transcript, in order.
        found = [next(i for i, text in enumerate(texts) if question in text) for question in QUESTIONS]
        self.assertEqual(found, sorted(set(found)), texts)
        body = json.dumps(last.body)
        self.assertNotIn("[Previous response", body)
        for answer in ANSWERS[:2]:
            self.assertIn(answer, body)

    @off_reactor
    def test_openai_sdk(self: Any) -> None:
        """C{chat.completions.create} with the growing history, three times."""
        self.model.script(self.backend, *(model_server.text(answer) for answer in ANSWERS))
        client = self.openai_client()
        messages: list[Any] = [{"role": "system", "content": "Answer with a number."}]
        sessions = set()
        for question, expected in zip(QUESTIONS, ANSWERS, strict=True):
            messages.append({"role": "user", "content": question})
            raw = client.chat.completions.with_raw_response.create(
                model=MODELS[self.backend], messages=messages
            )
            sessions.add(raw.headers[HEADER])
            answer = raw.parse().choices[0].message.content
            self.assertEqual(answer, expected)
            messages.append({"role": "assistant", "content": answer})
        self.assert_one_session(sessions)

    @off_reactor
    def test_anthropic_sdk(self: Any) -> None:
        """C{messages.stream} with the growing history, answers sent back as blocks."""
        self.model.script(self.backend, *(model_server.text(answer, chunks=2) for answer in ANSWERS))
        client = self.anthropic_client()
        messages: list[Any] = []
        sessions = set()
        for question, expected in zip(QUESTIONS, ANSWERS, strict=True):
            messages.append({"role": "user", "content": question})
            with client.messages.stream(model=self.backend, max_tokens=100, messages=messages) as stream:
                sessions.add(stream.response.headers[HEADER])
                message = stream.get_final_message()
            self.assertEqual([block.text for block in message.content if block.type == "text"], [expected])
            messages.append(
                {"role": "assistant", "content": [block.model_dump() for block in message.content]}
            )
        self.assert_one_session(sessions)

    @off_reactor
    def test_responses_sdk(self: Any) -> None:
        """C{responses.create} three times, each naming the response before it."""
        self.model.script(self.backend, *(model_server.text(answer) for answer in ANSWERS))
        client = self.openai_client()
        previous = None
        sessions = set()
        for question, expected in zip(QUESTIONS, ANSWERS, strict=True):
            raw = client.responses.with_raw_response.create(
                model=MODELS[self.backend], input=question, previous_response_id=previous
            )
            sessions.add(raw.headers[HEADER])
            response = raw.parse()
            self.assertEqual(response.output_text, expected)
            previous = response.id
        self.assert_one_session(sessions)


class ClaudeConversationTests(_ConversationMixin, RealCLITestCase):
    backend = "claude"

    @off_reactor
    def test_regenerate_forks_natively(self) -> None:
        """
        The second question asked anew after three turns: claude forks its
        own session at the first answer (--resume-session-at), and the
        model sees the transcript up to that answer and the new question.
        """
        self.model.script(self.backend, *(model_server.text(answer) for answer in (*ANSWERS, "Twenty-one.")))
        client = self.openai_client()
        messages: list[Any] = []
        sessions = set()
        for question in QUESTIONS:
            messages.append({"role": "user", "content": question})
            raw = client.chat.completions.with_raw_response.create(model="claude", messages=messages)
            sessions.add(raw.headers[HEADER])
            messages.append({"role": "assistant", "content": raw.parse().choices[0].message.content})
        regenerated = [*messages[:2], {"role": "user", "content": "Triple it"}]
        raw = client.chat.completions.with_raw_response.create(model="claude", messages=regenerated)
        self.assertEqual(raw.parse().choices[0].message.content, "Twenty-one.")
        [parent] = sessions
        self.assertNotEqual(raw.headers[HEADER], parent)
        last = self.model.turns(self.backend)[-1]
        texts, body = last.user_texts(), json.dumps(last.body)
        self.assertTrue(any("Pick a number" in text for text in texts), texts)
        self.assertTrue(texts[-1].endswith("Triple it"), texts)
        self.assertFalse(any("Double it" in text for text in texts), texts)
        self.assertIn("Seven.", body)
        self.assertNotIn("Fourteen.", body)
        self.assertNotIn("[Previous response", body)


class CodexConversationTests(_ConversationMixin, RealCLITestCase):
    backend = "codex"


class GeminiConversationTests(_ConversationMixin, RealCLITestCase):
    backend = "gemini"
