"""
Conversations on the compatibility APIs (docs/design/conversations.md):
the next turn of a known history continues its CLI session with the new
input alone; other histories start seeded sessions.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred

from clinvk.sessions import SessionRecord
from tests.helpers import Response
from tests.web._native import CLAUDE_NATIVE_ID, NativeTestCase, claude_result, frames

CHAT = "/openai/v1/chat/completions"
MESSAGES = "/anthropic/v1/messages"
HEADER = "X-Clinvk-Session-Id"
INIT = json.dumps({"type": "system", "subtype": "init", "session_id": CLAUDE_NATIVE_ID}).encode() + b"\n"
ASSISTANT = b'{"type":"assistant","message":{"content":[{"type":"text","text":"Fo"}]}}\n'
OTHER_NATIVE_ID = "0b7c5e2a-1f4d-4c8e-9a3b-6d2e8f1c7a90"


def chat(*turns: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return {"model": "claude", "messages": [{"role": r, "content": c} for r, c in turns], **extra}


def messages(*turns: tuple[str, str], **extra: Any) -> dict[str, Any]:
    # Anthropic clients send earlier answers back as content blocks.
    listed = [
        {"role": role, "content": [{"type": "text", "text": text}] if role == "assistant" else text}
        for role, text in turns
    ]
    return {"model": "claude", "max_tokens": 100, "messages": listed, **extra}


class ConversationTestCase(NativeTestCase):
    def turn(
        self,
        path: str,
        request: dict[str, Any],
        answer: str,
        *,
        native_id: str = CLAUDE_NATIVE_ID,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Send C{request}; its CLI answers C{answer}; the response."""
        pending = self.start("POST", path, request, headers=headers)
        child = self.child()
        child.emit_stdout(claude_result(answer, native_id=native_id))
        child.exit(0)
        response = self.finish(pending)
        self.assertEqual(response.code, 200, response.body)
        return response

    def streamed_turn(self, path: str, request: dict[str, Any]) -> tuple[str, list[bytes]]:
        """
        Stream C{request}; its CLI streams C{Fo}; the session named (before
        the first event) and what the client received.
        """
        response, chunks = self.stream(self.start("POST", path, request))
        session_id = response.headers.getRawHeaders(HEADER)[0]
        child = self.child()
        child.emit_stdout(INIT)
        child.emit_stdout(ASSISTANT)
        child.emit_stdout(claude_result("Fo"))
        child.exit(0)
        self.stub.flush()
        return session_id, chunks

    def session_turn(self, path: str, request: dict[str, Any], answer: str, **options: Any) -> str:
        """As L{turn}: the session the response names."""
        session_id = self.turn(path, request, answer, **options).header(HEADER)
        assert session_id is not None
        return session_id

    def record(self, session_id: str | None) -> SessionRecord:
        assert session_id is not None
        return self.successResultOf(self.server.store.get(session_id))


class OpenAIConversationTests(ConversationTestCase):
    def three_turns(self) -> str:
        first = self.turn(CHAT, chat(("system", "terse"), ("user", "2+2?")), "4")
        session_id = first.header(HEADER)
        assert session_id is not None
        self.assertRegex(session_id, "^[0-9a-f]{32}$")
        argv = self.child().argv
        self.assertNotIn("--no-session-persistence", argv)
        self.assertNotIn("--resume", argv)
        second = self.turn(
            CHAT, chat(("system", "terse"), ("user", "2+2?"), ("assistant", "4"), ("user", "+1?")), "5"
        )
        self.assertEqual(second.header(HEADER), session_id)
        child = self.child()
        self.assertEqual(child.stdin, b"+1?")
        self.assertEqual(child.argv[child.argv.index("--resume") + 1], CLAUDE_NATIVE_ID)
        self.assertEqual(child.argv[child.argv.index("--system-prompt") + 1], "terse")
        history = (
            ("system", "terse"),
            ("user", "2+2?"),
            ("assistant", "4"),
            ("user", "+1?"),
            ("assistant", "5"),
        )
        third = self.turn(CHAT, chat(*history, ("user", "x2?")), "10")
        self.assertEqual(third.header(HEADER), session_id)
        self.assertEqual(self.child().stdin, b"x2?")
        return session_id

    def test_continues(self) -> None:
        """Three turns, one session: each later turn resumes the CLI's conversation with its new input."""
        session_id = self.three_turns()
        record = self.record(session_id)
        self.assertEqual((record.turn_count, record.backend_session_id), (3, CLAUDE_NATIVE_ID))
        self.assertIn("openai", record.tags)
        self.assertEqual(len(record.lineage), 3)
        self.assertEqual(json.loads(self.request("GET", "/api/v1/sessions").body)["total"], 1)

    def test_regenerated_turn_forks(self) -> None:
        """A history that leaves a conversation before its end starts a session seeded with it."""
        session_id = self.three_turns()
        response = self.turn(
            CHAT,
            chat(("system", "terse"), ("user", "2+2?"), ("assistant", "4"), ("user", "-1?")),
            "3",
            native_id=OTHER_NATIVE_ID,
        )
        forked = response.header(HEADER)
        self.assertNotIn(forked, (None, session_id))
        child = self.child()
        self.assertNotIn("--resume", child.argv)
        self.assertEqual(child.stdin, b"2+2?\n[Previous response: 4]\n\n-1?")
        self.assertEqual(self.record(forked).parent_id, session_id)
        # Both go on from where each stands.
        self.turn(
            CHAT,
            chat(
                ("system", "terse"),
                ("user", "2+2?"),
                ("assistant", "4"),
                ("user", "-1?"),
                ("assistant", "3"),
                ("user", "more"),
            ),
            "2",
        )
        self.assertEqual(self.child().argv[self.child().argv.index("--resume") + 1], OTHER_NATIVE_ID)

    def test_unknown_history_is_seeded(self) -> None:
        """An answer clinvk never gave: a new session, the whole history flattened."""
        self.turn(CHAT, chat(("user", "2+2?")), "4")
        response = self.turn(CHAT, chat(("user", "2+2?"), ("assistant", "four"), ("user", "+1?")), "5")
        self.assertEqual(self.child().stdin, b"2+2?\n[Previous response: four]\n\n+1?")
        self.assertNotIn("--resume", self.child().argv)
        self.assertEqual(self.record(response.header(HEADER)).parent_id, "")

    def test_other_system_prompt_is_another_conversation(self) -> None:
        self.turn(CHAT, chat(("system", "terse"), ("user", "2+2?")), "4")
        self.turn(
            CHAT, chat(("system", "verbose"), ("user", "2+2?"), ("assistant", "4"), ("user", "+1?")), "5"
        )
        self.assertNotIn("--resume", self.child().argv)

    def test_streamed_answer_continues(self) -> None:
        """The text a stream delivered is the answer the next history carries."""
        session_id, chunks = self.streamed_turn(CHAT, chat(("user", "hi"), stream=True))
        self.assertEqual(frames(chunks)[-1], "data: [DONE]")
        later = self.turn(CHAT, chat(("user", "hi"), ("assistant", "Fo"), ("user", "more")), "o")
        self.assertEqual(later.header(HEADER), session_id)
        self.assertEqual(self.child().stdin, b"more")

    def test_failed_turn_ends_the_line(self) -> None:
        """After a failed turn the CLI's transcript is unknown: the same history starts afresh."""
        session_id = self.session_turn(CHAT, chat(("user", "2+2?")), "4")
        pending = self.start("POST", CHAT, chat(("user", "2+2?"), ("assistant", "4"), ("user", "+1?")))
        self.child().exit(2)
        response = self.finish(pending)
        self.assertEqual(response.code, 502)
        self.assertEqual(response.header(HEADER), session_id)
        self.assertEqual(self.record(session_id).lineage, ())
        retried = self.turn(CHAT, chat(("user", "2+2?"), ("assistant", "4"), ("user", "+1?")), "5")
        self.assertNotEqual(retried.header(HEADER), session_id)
        self.assertNotIn("--resume", self.child().argv)

    def test_refused_turn_keeps_the_line(self) -> None:
        """A turn refused before its CLI ran (no run slot: 429) changed nothing: the history still continues."""
        self.use_server(config={"server": {"max_concurrent_runs": 1, "max_queued_runs": 0}})
        session_id = self.session_turn(CHAT, chat(("user", "2+2?")), "4")
        busy = self.start("POST", CHAT, chat(("user", "elsewhere")))
        blocking = self.child()
        following = chat(("user", "2+2?"), ("assistant", "4"), ("user", "+1?"))
        refused = self.finish(self.start("POST", CHAT, following))
        self.assertEqual((refused.code, refused.header(HEADER)), (429, session_id))
        blocking.emit_stdout(claude_result("ok", native_id=OTHER_NATIVE_ID))
        blocking.exit(0)
        self.assertEqual(self.finish(busy).code, 200)
        self.assertEqual(self.session_turn(CHAT, following, "5"), session_id)
        self.assertEqual(self.child().stdin, b"+1?")

    def test_disconnect_ends_the_line(self) -> None:
        """A client gone mid-turn: the CLI stops, the session records the failure and is free again."""
        session_id = self.session_turn(CHAT, chat(("user", "2+2?")), "4")
        self.start("POST", CHAT, chat(("user", "2+2?"), ("assistant", "4"), ("user", "+1?"), stream=True))
        child = self.child()
        self.disconnect()
        self.reactor.advance(10)
        self.assertTrue(child.ended)
        record = self.record(session_id)
        self.assertEqual(
            (record.status, record.error_message, record.lineage), ("error", "client disconnected", ())
        )
        self.turn(CHAT, chat(("user", "again")), "ok", headers={HEADER: session_id})
        self.assertEqual(self.child().argv[self.child().argv.index("--resume") + 1], CLAUDE_NATIVE_ID)

    def test_turns_wait_for_each_other(self) -> None:
        """The same next turn sent twice: the second waits, then forks from the first's history."""
        session_id = self.session_turn(CHAT, chat(("user", "2+2?")), "4")
        request = chat(("user", "2+2?"), ("assistant", "4"), ("user", "+1?"))
        first = self.start("POST", CHAT, request)
        second = self.start("POST", CHAT, request)
        self.assertEqual(len(self.reactor.spawned), 2)
        self.child().emit_stdout(claude_result("5"))
        self.child().exit(0)
        self.assertEqual(self.finish(first).header(HEADER), session_id)
        self.assertEqual(len(self.reactor.spawned), 3)
        self.assertNotIn("--resume", self.child().argv)
        self.child().emit_stdout(claude_result("five", native_id=OTHER_NATIVE_ID))
        self.child().exit(0)
        regenerated = self.finish(second).header(HEADER)
        self.assertEqual(self.record(regenerated).parent_id, session_id)

    def test_pinned(self) -> None:
        """X-Clinvk-Session-Id continues that session with the messages after the last answer."""
        session_id = self.session_turn(CHAT, chat(("user", "2+2?")), "4")
        response = self.turn(CHAT, chat(("user", "and 3+3?")), "6", headers={HEADER: session_id})
        self.assertEqual(response.header(HEADER), session_id)
        self.assertEqual(self.child().stdin, b"and 3+3?")
        self.assertIn("--resume", self.child().argv)
        # The pinned turn's own history is where the conversation stands now.
        self.turn(CHAT, chat(("user", "and 3+3?"), ("assistant", "6"), ("user", "+1?")), "7")
        self.assertEqual(self.child().stdin, b"+1?")

    def pinned_error(
        self, session: str, status: int, request: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        response = self.request("POST", CHAT, request or chat(("user", "x")), headers={HEADER: session})
        self.assertEqual(response.code, status, response.body)
        error: dict[str, Any] = json.loads(response.body)["error"]
        return error

    def test_pinned_refusals(self) -> None:
        """Unknown: 404; another backend's: 400; nothing new to say: 400; all in OpenAI's format."""
        self.assertIn("no session found", self.pinned_error("0123456789abcdef", 404)["message"])
        session_id = self.session_turn(CHAT, chat(("user", "2+2?")), "4")
        other = self.pinned_error(session_id, 400, {**chat(("user", "x")), "model": "gemini"})
        self.assertIn('belongs to backend "claude"', other["message"])
        silent = self.pinned_error(session_id, 400, chat(("user", "2+2?"), ("assistant", "4")))
        self.assertEqual(silent["param"], "messages")
        self.assertEqual(len(self.reactor.spawned), 1)

    def test_native_turn_ends_the_line(self) -> None:
        """A turn through the native API moves the CLI's conversation where no history follows."""
        session_id = self.session_turn(CHAT, chat(("user", "2+2?")), "4")
        pending = self.start("POST", "/api/v1/prompt", {"prompt": "aside", "session_id": session_id})
        self.child().emit_stdout(claude_result("ok"))
        self.child().exit(0)
        self.answer(pending)
        self.turn(CHAT, chat(("user", "2+2?"), ("assistant", "4"), ("user", "+1?")), "5")
        self.assertNotIn("--resume", self.child().argv)

    def test_survives_a_restart(self) -> None:
        """A new server over the same store continues the conversation."""
        session_id = self.session_turn(CHAT, chat(("user", "2+2?")), "4")
        self.use_server(store=self.server.store)
        response = self.turn(CHAT, chat(("user", "2+2?"), ("assistant", "4"), ("user", "+1?")), "5")
        self.assertEqual(response.header(HEADER), session_id)
        self.assertEqual(self.child().stdin, b"+1?")

    def test_deleted_session_is_forgotten(self) -> None:
        session_id = self.session_turn(CHAT, chat(("user", "2+2?")), "4")
        self.assertEqual(self.request("DELETE", f"/api/v1/sessions/{session_id}").code, 200)
        response = self.turn(CHAT, chat(("user", "2+2?"), ("assistant", "4"), ("user", "+1?")), "5")
        self.assertNotEqual(response.header(HEADER), session_id)

    def test_stateless(self) -> None:
        """server.compat_sessions false: ephemeral runs, history flattened, no session, no header."""
        self.use_server(config={"server": {"compat_sessions": False}})
        self.turn(CHAT, chat(("user", "2+2?")), "4")
        response = self.turn(CHAT, chat(("user", "2+2?"), ("assistant", "4"), ("user", "+1?")), "5")
        self.assertIsNone(response.header(HEADER))
        self.assertIn("--no-session-persistence", self.child().argv)
        self.assertEqual(self.child().stdin, b"2+2?\n[Previous response: 4]\n\n+1?")
        self.assertEqual(json.loads(self.request("GET", "/api/v1/sessions").body)["total"], 0)


class AnthropicConversationTests(ConversationTestCase):
    def test_continues(self) -> None:
        """Answers sent back as text blocks match the answers given; three turns, one session."""
        first = self.turn(MESSAGES, messages(("user", "2+2?"), system="terse"), "4")
        session_id = first.header(HEADER)
        self.turn(
            MESSAGES, messages(("user", "2+2?"), ("assistant", "4"), ("user", "+1?"), system="terse"), "5"
        )
        self.assertEqual(self.child().stdin, b"+1?")
        history = (("user", "2+2?"), ("assistant", "4"), ("user", "+1?"), ("assistant", "5"), ("user", "x2?"))
        third = self.turn(MESSAGES, messages(*history, system="terse"), "10")
        self.assertEqual(third.header(HEADER), session_id)
        self.assertEqual(self.child().stdin, b"x2?")
        self.assertEqual(self.child().argv[self.child().argv.index("--resume") + 1], CLAUDE_NATIVE_ID)
        record = self.record(session_id)
        self.assertEqual((record.turn_count, record.tags[-1]), (3, "anthropic"))

    def test_pinned_unknown(self) -> None:
        response = self.request(
            "POST", MESSAGES, messages(("user", "x")), headers={HEADER: "0123456789abcdef"}
        )
        self.assertEqual(response.code, 404)
        self.assertEqual(json.loads(response.body)["error"]["type"], "not_found_error")

    def test_streamed(self) -> None:
        session_id, chunks = self.streamed_turn(MESSAGES, messages(("user", "hi"), stream=True))
        self.assertIn("message_stop", frames(chunks)[-1])
        later = self.turn(MESSAGES, messages(("user", "hi"), ("assistant", "Fo"), ("user", "more")), "o")
        self.assertEqual(later.header(HEADER), session_id)
        self.assertEqual(self.child().stdin, b"more")


class WaitingTests(ConversationTestCase):
    def test_cancelled_while_waiting(self) -> None:
        """A client gone while its turn waits for the conversation never runs a CLI."""
        self.turn(CHAT, chat(("user", "2+2?")), "4")
        request = chat(("user", "2+2?"), ("assistant", "4"), ("user", "+1?"))
        first = self.start("POST", CHAT, request)
        waiting: Deferred[Any] = self.start("POST", CHAT, request)
        self.assertEqual(len(self.reactor.spawned), 2)
        waiting.cancel()
        waiting.addErrback(lambda _: None)
        self.stub.flush()
        self.child().emit_stdout(claude_result("5"))
        self.child().exit(0)
        self.assertEqual(self.finish(first).code, 200)
        self.assertEqual(len(self.reactor.spawned), 2)


def assistant(text: str, uuid: str, native_id: str = CLAUDE_NATIVE_ID) -> bytes:
    """A live claude's assistant message line."""
    message = {"role": "assistant", "content": [{"type": "text", "text": text}]}
    line = {"type": "assistant", "message": message, "session_id": native_id, "uuid": uuid}
    return json.dumps(line).encode() + b"\n"


class LiveConversationTests(ConversationTestCase):
    """With live processes (the default outside these tests): turns and native forks."""

    def setUp(self) -> None:
        self.use_server(installed=self.installed, live=True)

    def live_turn(self, request: dict[str, Any], answer: str, uuid: str) -> str:
        """A turn the live claude answers with message C{uuid}; the session named."""
        pending = self.start("POST", CHAT, request)
        child = self.child()
        child.emit_stdout(assistant(answer, uuid))
        child.emit_stdout(claude_result(answer))
        response = self.finish(pending)
        self.assertEqual(response.code, 200, response.body)
        session_id = response.header(HEADER)
        assert session_id is not None
        return session_id

    def test_regenerated_turn_forks_natively(self) -> None:
        """
        Asked again at an answer a live claude gave, the conversation is
        forked there: --resume with --resume-session-at that answer's
        message and --fork-session, given the new input alone.
        """
        session_id = self.live_turn(chat(("user", "2+2?")), "4", "uuid-four")
        history = [("user", "2+2?"), ("assistant", "4")]
        self.assertEqual(self.live_turn(chat(*history, ("user", "+1?")), "5", "uuid-five"), session_id)
        self.assertEqual(len(self.reactor.spawned), 1)
        self.assertEqual(self.record(session_id).lineage[0].split("@")[1], "uuid-four")
        pending = self.start("POST", CHAT, chat(*history, ("user", "-1?")))
        fork = self.child()
        self.assertEqual(len(self.reactor.spawned), 2)
        argv = fork.argv
        self.assertEqual(argv[argv.index("--resume") + 1], CLAUDE_NATIVE_ID)
        self.assertEqual(argv[argv.index("--resume-session-at") + 1], "uuid-four")
        self.assertIn("--fork-session", argv)
        # A fork runs cold: the process would hold the fork's argv for good.
        self.assertNotIn("--input-format", argv)
        self.assertEqual(fork.stdin, b"-1?")
        fork.emit_stdout(claude_result("3", native_id=OTHER_NATIVE_ID))
        fork.exit(0)
        forked = self.finish(pending).header(HEADER)
        record = self.record(forked)
        self.assertEqual(
            (record.parent_id, record.backend_session_id, record.turn_count), (session_id, OTHER_NATIVE_ID, 1)
        )
        # The fork goes on from its own conversation.
        self.live_turn(chat(*history, ("user", "-1?"), ("assistant", "3"), ("user", "more")), "2", "u2")
        argv = self.child().argv
        self.assertEqual(argv[argv.index("--resume") + 1], OTHER_NATIVE_ID)
        self.assertNotIn("--fork-session", argv)

    def test_unmarked_point_is_seeded(self) -> None:
        """An answer without the CLI's message id (a cold turn) forks seeded."""
        session_id = self.live_turn(chat(("user", "2+2?")), "4", "")
        self.live_turn(chat(("user", "2+2?"), ("assistant", "4"), ("user", "+1?")), "5", "uuid-five")
        pending = self.start("POST", CHAT, chat(("user", "2+2?"), ("assistant", "4"), ("user", "-1?")))
        fork = self.child()
        self.assertNotIn("--fork-session", fork.argv)
        self.assertEqual(
            json.loads(fork.stdin.splitlines()[-1])["message"]["content"],
            "2+2?\n[Previous response: 4]\n\n-1?",
        )
        fork.emit_stdout(claude_result("3", native_id=OTHER_NATIVE_ID))
        self.assertEqual(self.record(self.finish(pending).header(HEADER)).parent_id, session_id)
