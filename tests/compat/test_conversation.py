"""
Tests for L{clinvk.compat.conversation} and L{clinvk.compat.models}: the
flattening of chat histories and the choice of backend and model.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from clinvk.backends import build_backends
from clinvk.compat.conversation import anthropic_conversation, openai_conversation
from clinvk.compat.models import anthropic_backend, new_id, openai_backend, run_model, usage_or_estimate
from clinvk.errors import InvalidRequest
from clinvk.model import TokenUsage


def messages(*turns: tuple[str, object]) -> list[dict[str, object]]:
    return [{"role": role, "content": content} for role, content in turns]


BACKENDS = build_backends()


class OpenAIConversationTests(SynchronousTestCase):
    def test_flattening(self) -> None:
        """The worked examples of docs/design/openai-api.md#openai-flattening."""
        cases = [
            (
                messages(("user", "first"), ("assistant", "resp"), ("user", "second")),
                ("first\n[Previous response: resp]\n\nsecond", ""),
            ),
            (messages(("system", "be brief"), ("user", "hello")), ("hello", "be brief")),
            (messages(("assistant", "hi"), ("user", "hello")), ("hello", "")),
            (messages(("system", "x")), ("", "x")),
            (messages(("user", "a"), ("user", ""), ("user", "b")), ("a\n\nb", "")),
            (messages(("tool", "t"), ("User", "u"), ("user", "ok")), ("ok", "")),
        ]
        for given, expected in cases:
            self.assertEqual(openai_conversation(given), expected, given)

    def test_system_and_developer_joined(self) -> None:
        """Every system and developer message counts, joined by a blank line."""
        given = messages(("system", "one"), ("developer", "two"), ("user", "u"))
        self.assertEqual(openai_conversation(given), ("u", "one\n\ntwo"))

    def test_content_forms(self) -> None:
        """Text parts are joined; null or absent content is empty; other parts are refused."""
        parts = [{"type": "text", "text": "a"}, {"text": "b"}]
        self.assertEqual(openai_conversation(messages(("user", parts)))[0], "a\nb")
        self.assertEqual(
            openai_conversation(
                [{"role": "user"}, {"role": "user", "content": None}, {"role": "user", "content": "x"}]
            )[0],
            "x",
        )
        with self.assertRaises(InvalidRequest) as raised:
            openai_conversation(messages(("user", [{"type": "image_url", "image_url": {}}])))
        self.assertEqual(raised.exception.message, "unsupported content part type: image_url")


class AnthropicConversationTests(SynchronousTestCase):
    def test_flattening(self) -> None:
        """System text comes only from the top level; a system role in messages is ignored."""
        given = messages(
            ("user", "First question"),
            ("system", "no"),
            ("assistant", "First answer"),
            ("user", "Second question"),
        )
        self.assertEqual(
            anthropic_conversation(given, "be terse"),
            ("First question\n[Previous response: First answer]\n\nSecond question", "be terse"),
        )

    def test_blocks(self) -> None:
        """Text blocks are joined, thinking skipped; system blocks too; other types refused."""
        blocks = [
            {"type": "thinking", "thinking": "hm"},
            {"type": "text", "text": "a"},
            {"type": "text", "text": "b"},
        ]
        self.assertEqual(
            anthropic_conversation(messages(("user", blocks)), [{"type": "text", "text": "s"}]), ("a\nb", "s")
        )
        with self.assertRaises(InvalidRequest) as raised:
            anthropic_conversation(messages(("user", [{"type": "image", "source": {}}])), None)
        self.assertEqual(raised.exception.message, "unsupported content block type: image")
        with self.assertRaises(InvalidRequest) as raised:
            anthropic_conversation(messages(("user", "x")), [{"type": "image"}])
        self.assertEqual(raised.exception.message, "unsupported system block type: image")


class ModelTests(SynchronousTestCase):
    def test_openai_backends(self) -> None:
        cases = {
            "gpt-4o": "codex",
            "gemini-2.5-pro": "gemini",
            "o3": "claude",
            "GPT-4": "claude",
            "claude-x": "claude",
            "gpt-claude-x": "claude",
            "codex": "codex",
        }
        for model, backend in cases.items():
            self.assertEqual(openai_backend(model, BACKENDS), backend, model)

    def test_anthropic_backends(self) -> None:
        for model, backend in {"gpt-4": "claude", "gemini-2.5-pro": "claude", "gemini": "gemini"}.items():
            self.assertEqual(anthropic_backend(model, BACKENDS), backend, model)

    def test_run_model(self) -> None:
        """A bare backend name passes no model; any other name is passed on."""
        self.assertEqual(run_model("claude", BACKENDS), "")
        self.assertEqual(run_model("gpt-4o", BACKENDS), "gpt-4o")

    def test_ids_and_usage(self) -> None:
        first, second = new_id("chatcmpl-"), new_id("chatcmpl-")
        self.assertRegex(first, "^chatcmpl-[0-9a-f]{24}$")
        self.assertNotEqual(first, second)
        self.assertEqual(usage_or_estimate(TokenUsage(3, 0), "x" * 40, "y"), (3, 0))
        self.assertEqual(usage_or_estimate(None, "x" * 41, "é" * 4), (10, 2))
