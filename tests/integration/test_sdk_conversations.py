"""
Conversations through the official SDKs (docs/design/conversations.md):
a client that sends its whole history each time, as the SDKs do, gets one
CLI session per conversation on every backend, whose later turns are sent
only their new message; with live processes (the default) and without.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import anthropic
import openai

from tests.integration._sdk_server import (
    ANTHROPIC_MODELS,
    LIVE_CONFIG,
    OPENAI_MODELS,
    SDKServerTestCase,
    off_reactor,
)
from tests.integration._server import Config

QUESTIONS = ("Pick a number", "Double it", "Now add ten")
HEADER = "x-clinvk-session-id"


def answers_for(backend: str, questions: tuple[str, ...] = QUESTIONS) -> list[str]:
    """What a fake answers when each question reaches it alone."""
    return [f"{backend} answers: {question}" for question in questions]


class ConversationTestCase(SDKServerTestCase):
    """Three-turn conversations and what the fakes saw of them."""

    server_config: ClassVar[Config] = LIVE_CONFIG
    live = True

    def openai_turns(
        self, client: openai.OpenAI, model: str, stream: bool = False
    ) -> tuple[list[str], set[str]]:
        """Ask L{QUESTIONS} as one conversation; the answers and the sessions named."""
        messages: list[Any] = []
        answers, sessions = [], set()
        for question in QUESTIONS:
            messages.append({"role": "user", "content": question})
            if stream:
                with client.chat.completions.with_streaming_response.create(
                    model=model, messages=messages, stream=True
                ) as response:
                    sessions.add(response.headers[HEADER])
                    answer = "".join(
                        chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices
                    )
            else:
                raw = client.chat.completions.with_raw_response.create(model=model, messages=messages)
                sessions.add(raw.headers[HEADER])
                answer = raw.parse().choices[0].message.content or ""
            answers.append(answer)
            messages.append({"role": "assistant", "content": answer})
        return answers, sessions

    def anthropic_turns(
        self, client: anthropic.Anthropic, model: str, stream: bool = False
    ) -> tuple[list[str], set[str]]:
        """As L{openai_turns}, with earlier answers sent back as the SDK returned them (blocks)."""
        messages: list[Any] = []
        answers, sessions = [], set()
        for question in QUESTIONS:
            messages.append({"role": "user", "content": question})
            message: Any
            if stream:
                with client.messages.stream(model=model, max_tokens=100, messages=messages) as events:
                    sessions.add(events.response.headers[HEADER])
                    message = events.get_final_message()
            else:
                raw = client.messages.with_raw_response.create(model=model, max_tokens=100, messages=messages)
                sessions.add(raw.headers[HEADER])
                message = raw.parse()
            answers.append("".join(block.text for block in message.content if block.type == "text"))
            messages.append(
                {"role": "assistant", "content": [block.model_dump() for block in message.content]}
            )
        return answers, sessions

    def assert_one_session(self, backend: str, session_id: str) -> None:
        """
        The conversation was one CLI session, given each question alone:
        one live process that served the three turns, or three runs of
        which the later two resumed the first one's conversation.
        """
        runs = self.runs(backend)
        if self.live:
            # A live process's record is one run per turn (tests.integration._processes).
            self.assertEqual(len({run["pid"] for run in runs}), 1, runs)
            self.assertEqual(
                [run["stdin"] for run in sorted(runs, key=lambda run: run["turn"])], list(QUESTIONS)
            )
        else:
            new = [run["stdin"] for run in runs if "resume" not in " ".join(run["argv"])]
            resumed = [run["stdin"] for run in runs if "resume" in " ".join(run["argv"])]
            self.assertEqual((new, sorted(resumed)), ([QUESTIONS[0]], sorted(QUESTIONS[1:])), runs)
        status, _, body = self.get_raw(f"/api/v1/sessions/{session_id}")
        session = json.loads(body)
        self.assertEqual(
            (status, session["backend"], session["turn_count"], session["status"]),
            (200, backend, 3, "completed"),
        )


class OpenAIConversationTests(ConversationTestCase):
    @off_reactor
    def test_three_turns(self) -> None:
        """C{chat.completions.create} three times with the growing history: one session per backend."""
        with self.openai_client() as client:
            for backend, model in OPENAI_MODELS.items():
                answers, sessions = self.openai_turns(client, model)
                self.assertEqual(answers, answers_for(backend))
                [session_id] = sessions
                self.assert_one_session(backend, session_id)

    @off_reactor
    def test_three_streamed_turns(self) -> None:
        """The same, streamed: the history carries the streamed text."""
        with self.openai_client() as client:
            for backend, model in OPENAI_MODELS.items():
                answers, sessions = self.openai_turns(client, model, stream=True)
                self.assertEqual(answers, answers_for(backend))
                [session_id] = sessions
                self.assert_one_session(backend, session_id)

    @off_reactor
    def test_regenerate(self) -> None:
        """
        The second question asked anew forks the conversation: a new
        session.  At an answer a live claude gave, claude forks its own
        conversation and is given the new question alone; at any other
        answer the new session is seeded with the flattened history.
        """
        with self.openai_client() as client:
            answers, sessions = self.openai_turns(client, "claude")
            history: list[Any] = [
                {"role": "user", "content": QUESTIONS[0]},
                {"role": "assistant", "content": answers[0]},
                {"role": "user", "content": "Triple it"},
            ]
            raw = client.chat.completions.with_raw_response.create(model="claude", messages=history)
        forked = raw.headers[HEADER]
        self.assertNotIn(forked, sessions)
        status, _, body = self.get_raw(f"/api/v1/sessions/{forked}")
        self.assertEqual((status, json.loads(body)["turn_count"]), (200, 1))
        answer = raw.parse().choices[0].message.content
        if self.live:
            self.assertEqual(answer, "claude answers: Triple it")
            fork = self.run_with("claude", "Triple it")
            self.assertIn("--fork-session", fork["argv"])
            self.assertIn("--resume-session-at", fork["argv"])
        else:
            # Seeded: the fake answers the first line of the flattened history.
            self.assertEqual(answer, f"claude answers: {QUESTIONS[0]}")


class AnthropicConversationTests(ConversationTestCase):
    @off_reactor
    def test_three_turns(self) -> None:
        """C{messages.create} three times, answers sent back as content blocks: one session per backend."""
        with self.anthropic_client() as client:
            for backend, model in ANTHROPIC_MODELS.items():
                answers, sessions = self.anthropic_turns(client, model)
                self.assertEqual(answers, answers_for(backend))
                [session_id] = sessions
                self.assert_one_session(backend, session_id)

    @off_reactor
    def test_three_streamed_turns(self) -> None:
        """C{messages.stream} three times: one session per backend."""
        with self.anthropic_client() as client:
            for backend, model in ANTHROPIC_MODELS.items():
                answers, sessions = self.anthropic_turns(client, model, stream=True)
                self.assertEqual(answers, answers_for(backend))
                [session_id] = sessions
                self.assert_one_session(backend, session_id)


class ColdOpenAIConversationTests(OpenAIConversationTests):
    """Without live processes, each later turn resumes the conversation from cold."""

    server_config: ClassVar[Config] = {"server": {"live_idle_secs": 0}}
    live = False


class ColdAnthropicConversationTests(AnthropicConversationTests):
    server_config: ClassVar[Config] = {"server": {"live_idle_secs": 0}}
    live = False


class StatelessTests(ConversationTestCase):
    """C{server.compat_sessions: false}: the reference's stateless API."""

    server_config: ClassVar[Config] = {"server": {"compat_sessions": False, "live_idle_secs": 300}}

    @off_reactor
    def test_stateless(self) -> None:
        """Every request an ephemeral run of the flattened history; no session header."""
        with self.openai_client() as client:
            raw = client.chat.completions.with_raw_response.create(
                model="claude",
                messages=[
                    {"role": "user", "content": "Pick a number"},
                    {"role": "assistant", "content": "claude answers: Pick a number"},
                    {"role": "user", "content": "Double it"},
                ],
            )
        self.assertNotIn(HEADER, raw.headers)
        [run] = self.runs("claude")
        self.assertEqual(
            run["stdin"], "Pick a number\n[Previous response: claude answers: Pick a number]\n\nDouble it"
        )
        self.assert_ephemeral([run])
        status, _, body = self.get_raw("/api/v1/sessions")
        self.assertEqual((status, json.loads(body)["total"]), (200, 0))
