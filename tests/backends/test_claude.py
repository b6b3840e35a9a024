"""
Tests for L{clinvk.backends.claude}: command lines
(docs/design/cli-runs.md#claude-argv, docs/design/cli-runs.md#resume-argv), the JSON parser
(docs/design/cli-runs.md#claude-output) and the stream parser
(docs/design/cli-runs.md#claude-stream, docs/design/decisions.md#d9-token-streaming), with
the recorded samples under tests/data/claude.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from clinvk.backends.claude import ClaudeBackend, ClaudeLiveSession, ClaudeStreamParser, parse_response
from clinvk.interfaces import IBackend, IStreamParser
from clinvk.model import ParsedResponse, TokenUsage
from tests.backends.helpers import options, sample


def stream(text: str) -> list[tuple[str, dict[str, Any], int]]:
    parser = ClaudeStreamParser()
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for event in parser.feed(line, number):
            found.append((event.type, dict(event.content), event.sequence))
    return found


class CommandTests(SynchronousTestCase):
    """argv for new runs and resumes, prompt on stdin."""

    def setUp(self) -> None:
        self.backend = ClaudeBackend()

    def test_provides(self) -> None:
        """It provides IBackend, and its stream parser IStreamParser."""
        verifyObject(IBackend, self.backend)
        verifyObject(IStreamParser, self.backend.stream_parser())

    def test_spec_example(self) -> None:
        """The example of docs/design/cli-runs.md#claude-argv, without the prompt."""
        opts = options("claude", model="best", max_turns=3, approval_mode="auto")
        self.assertEqual(
            self.backend.command("claude", opts, ""),
            [
                "claude",
                "--print",
                "--model",
                "opus",
                "--permission-mode",
                "acceptEdits",
                "--output-format",
                "json",
                "--max-turns",
                "3",
            ],
        )
        ephemeral = options("claude", model="best", max_turns=3, approval_mode="auto", ephemeral=True)
        self.assertEqual(self.backend.command("claude", ephemeral, "")[-1], "--no-session-persistence")

    def test_resume(self) -> None:
        """A resume puts --resume <id> before --print (docs/design/cli-runs.md#claude-argv)."""
        self.assertEqual(
            self.backend.command("/usr/bin/claude", options("claude", model="fast"), "sess-1"),
            [
                "/usr/bin/claude",
                "--resume",
                "sess-1",
                "--print",
                "--model",
                "haiku",
                "--output-format",
                "json",
            ],
        )

    def test_stdin(self) -> None:
        """The prompt alone goes to stdin; the system prompt stays a flag."""
        opts = options("claude", system_prompt="S")
        self.assertEqual(self.backend.stdin_text(opts, "-p looks like a flag"), "-p looks like a flag")
        self.assertIn("--system-prompt", self.backend.command("claude", opts, ""))

    def test_no_cleanup(self) -> None:
        """--no-session-persistence leaves nothing to delete."""
        self.assertIsNone(self.backend.cleanup_command("claude", "x"))
        self.assertEqual(self.backend.session_file_roots("/home/u"), ())


class ParseResponseTests(SynchronousTestCase):
    """The JSON parser of docs/design/cli-runs.md#claude-output."""

    def test_result(self) -> None:
        """content, session id and usage (cache reads as cached tokens)."""
        self.assertEqual(
            parse_response(sample("claude/result.json")),
            ParsedResponse(
                content="The capital of France is Paris.",
                session_id="6c0d2f64-8d7e-4a51-9f3b-51a2c7e9d3aa",
                usage=TokenUsage(input_tokens=12, output_tokens=42, cached_tokens=13250),
            ),
        )

    def test_verbose_array(self) -> None:
        """The verbose array form: its last result element is the result."""
        parsed = parse_response(sample("claude/verbose_array.json"))
        assert parsed is not None
        self.assertEqual(parsed.content, "The capital of France is Paris.")
        self.assertEqual(parsed.session_id, "6c0d2f64-8d7e-4a51-9f3b-51a2c7e9d3aa")

    def test_noise(self) -> None:
        """stderr noise merged around the result is skipped."""
        parsed = parse_response(sample("claude/noisy.txt"))
        assert parsed is not None
        self.assertEqual(parsed.content, "Done.")
        self.assertEqual(parsed.usage, TokenUsage(3, 2, 7))

    def test_error_subtype(self) -> None:
        """An error subtype without result text reports its errors."""
        parsed = parse_response(sample("claude/error_max_turns.json"))
        assert parsed is not None
        self.assertEqual(parsed.error, "Reached maximum number of turns (3)")
        self.assertEqual(parsed.content, "")

    def test_is_error(self) -> None:
        """is_error with result text: that text is the error, and not an answer."""
        parsed = parse_response(sample("claude/auth_error.json"))
        assert parsed is not None
        self.assertEqual(parsed.error, "Invalid API key · Please run /login")
        self.assertEqual(parsed.content, "")

    def test_recorded_api_error(self) -> None:
        """
        The recorded API error (C{"subtype": "success"} with C{"is_error":
        true}) is an error with its session and usage, and no content.
        """
        self.assertEqual(
            parse_response(sample("recordings/claude-error-json.stdout")),
            ParsedResponse(
                session_id="<uuid-1>",
                usage=TokenUsage(input_tokens=0, output_tokens=0, cached_tokens=0),
                error="API Error: 400 scripted bad request",
            ),
        )

    def test_subtype_alone(self) -> None:
        """Without result or errors the subtype is the error."""
        parsed = parse_response('{"type":"result","subtype":"error_during_execution","session_id":"s"}')
        assert parsed is not None
        self.assertEqual(parsed.error, "error_during_execution")

    def test_error_members(self) -> None:
        """An error member, or a type error object, is the error, without usage."""
        self.assertEqual(
            parse_response('{"error":"overloaded","session_id":"s"}'),
            ParsedResponse(session_id="s", error="overloaded"),
        )
        self.assertEqual(parse_response('{"type":"error","message":"bad"}'), ParsedResponse(error="bad"))

    def test_failures(self) -> None:
        """Plain text, empty output and mistyped fields are not Claude JSON."""
        for raw in ("", "Error: not logged in", '{"result": 5}', '{"session_id": 5}', "[1, 2]"):
            self.assertIsNone(parse_response(raw), raw)


class StreamTests(SynchronousTestCase):
    """The stream-json mapping of docs/design/cli-runs.md#claude-stream, with its deltas."""

    def test_recorded_stream(self) -> None:
        """Init, deltas, no duplicate text, tool use and result, done with usage."""
        self.assertEqual(
            stream(sample("claude/stream.jsonl")),
            [
                (
                    "init",
                    {
                        "model": "claude-sonnet-4-5",
                        "backend_session_id": "6c0d2f64-8d7e-4a51-9f3b-51a2c7e9d3aa",
                        "working_dir": "/srv/projects/atlas",
                    },
                    1,
                ),
                ("thinking", {"text": "The user asks", "is_partial": True}, 4),
                ("message", {"text": "Let me ", "role": "assistant", "is_partial": True}, 5),
                ("message", {"text": "look.", "role": "assistant", "is_partial": True}, 6),
                (
                    "tool_use",
                    {
                        "tool_id": "toolu_01",
                        "tool_name": "Read",
                        "input": {"file_path": "/srv/projects/atlas/README.md"},
                    },
                    7,
                ),
                ("tool_result", {"tool_id": "toolu_01", "tool_name": "", "output": "# Atlas\nA map."}, 9),
                ("message", {"text": "It is a map.", "role": "assistant", "is_partial": True}, 11),
                ("done", {"token_usage": {"input_tokens": 52, "output_tokens": 36, "cached_tokens": 9}}, 14),
            ],
        )

    def test_streamed_text_equals_result(self) -> None:
        """
        The text a client receives is the final result text
        (docs/design/decisions.md#d9-token-streaming).
        """
        text = "".join(
            content["text"] for kind, content, _ in stream(sample("claude/stream.jsonl")) if kind == "message"
        )
        self.assertEqual(text, "Let me look.It is a map.")

    def test_without_partial_messages(self) -> None:
        """Without deltas, every block of the complete message is an event."""
        line = '{"type":"assistant","message":{"id":"m","content":[{"type":"text","text":"a"},{"type":"thinking","thinking":"t"},{"type":"text","text":"b"}]}}'
        self.assertEqual(
            [(kind, content) for kind, content, _ in stream(line)],
            [
                ("message", {"text": "a", "role": "assistant"}),
                ("thinking", {"text": "t"}),
                ("message", {"text": "b", "role": "assistant"}),
            ],
        )

    def test_system_subtypes(self) -> None:
        """Only the init system line is an init event."""
        self.assertEqual(stream('{"type":"system","subtype":"hook_response","session_id":"x"}'), [])
        self.assertEqual(
            stream('{"type":"system","session_id":"x"}'), [("init", {"backend_session_id": "x"}, 1)]
        )

    def test_recorded_retry(self) -> None:
        """
        The recorded C{system/api_retry} line is a C{retrying} progress event
        saying the attempt and the status; the answer that follows is
        delivered as usual.
        """
        self.assertEqual(
            stream(sample("recordings/claude-retry-stream-json.stdout"))[1:],
            [
                (
                    "progress",
                    {"stage": "retrying", "message": "API error 529 (overloaded), retry 1 of 10"},
                    3,
                ),
                ("message", {"text": "Hello after a retry.", "role": "assistant", "is_partial": True}, 6),
                ("done", {"token_usage": {"input_tokens": 20, "output_tokens": 5}}, 11),
            ],
        )

    def test_retry_without_details(self) -> None:
        """An C{api_retry} line without attempt or status is still a progress event."""
        self.assertEqual(
            stream('{"type":"system","subtype":"api_retry","session_id":"x"}'),
            [("progress", {"stage": "retrying"}, 1)],
        )
        self.assertEqual(
            stream('{"type":"system","subtype":"api_retry","attempt":2,"session_id":"x"}'),
            [("progress", {"stage": "retrying", "message": "retry 2"}, 1)],
        )

    def test_error_result(self) -> None:
        """An error result gives an error event, then done."""
        self.assertEqual(
            [(kind, content) for kind, content, _ in stream(sample("claude/error_max_turns.json"))],
            [
                ("error", {"code": "error_max_turns", "message": "Reached maximum number of turns (3)"}),
                ("done", {"token_usage": {"input_tokens": 30, "output_tokens": 120}}),
            ],
        )

    def test_recorded_api_error(self) -> None:
        """
        The recorded API error: the made-up C{<synthetic>} assistant message
        is not delivered as answer text, and the result line is an error
        whose code is the API's status (not the result's C{"success"}
        subtype).
        """
        self.assertEqual(
            stream(sample("recordings/claude-error-stream-json.stdout"))[1:],
            [
                ("error", {"code": "api_error_400", "message": "API Error: 400 scripted bad request"}, 4),
                ("done", {"token_usage": {"input_tokens": 0, "output_tokens": 0}}, 4),
            ],
        )

    def test_error_codes(self) -> None:
        """
        An error result's code is C{api_error_<status>} when the API's status
        is known, else its subtype unless that is C{"success"}, else none.
        """
        base = '"type":"result","is_error":true,"result":"boom","session_id":"s"'
        for extra, content in [
            (',"subtype":"success","api_error_status":529', {"code": "api_error_529", "message": "boom"}),
            (
                ',"subtype":"error_during_execution","api_error_status":null',
                {"code": "error_during_execution", "message": "boom"},
            ),
            (',"subtype":"success","api_error_status":null', {"message": "boom"}),
            ("", {"message": "boom"}),
        ]:
            [(kind, found, _), _done] = stream("{" + base + extra + "}")
            self.assertEqual((kind, found), ("error", content), extra)

    def test_synthetic_error_message(self) -> None:
        """
        An assistant line the CLI made up for an error (top-level C{error},
        or the C{<synthetic>} model) is no answer; a real one is.
        """
        text = '[{"type":"text","text":"API Error: 529 overloaded"}]'
        self.assertEqual(
            stream('{"type":"assistant","message":{"model":"m","content":' + text + '},"error":"unknown"}'),
            [],
        )
        self.assertEqual(
            stream('{"type":"assistant","message":{"model":"<synthetic>","content":' + text + "}}"), []
        )
        self.assertEqual(
            stream('{"type":"assistant","message":{"model":"m","content":' + text + '},"error":null}'),
            [("message", {"text": "API Error: 529 overloaded", "role": "assistant"}, 1)],
        )

    def test_legacy_shapes(self) -> None:
        """Top-level deltas, tool results, errors and message_stop, as the reference read them."""
        lines = "\n".join(
            [
                '{"type":"content_block_delta","delta":{"type":"text_delta","text":"hi"}}',
                '{"type":"content_block_delta","delta":{"type":"thinking_delta","thinking":"hm"}}',
                '{"type":"tool_result","tool_use_id":"t1","content":"ok"}',
                '{"type":"error","error":{"message":"overloaded"}}',
                '{"type":"error","message":"plain"}',
                '{"type":"message_stop"}',
            ]
        )
        self.assertEqual(
            [(kind, content) for kind, content, _ in stream(lines)],
            [
                ("message", {"text": "hi", "role": "assistant", "is_partial": True}),
                ("thinking", {"text": "hm", "is_partial": True}),
                ("tool_result", {"tool_id": "t1", "tool_name": "", "output": "ok"}),
                ("error", {"message": "overloaded"}),
                ("error", {"message": "plain"}),
                ("done", {"token_usage": {"input_tokens": 0, "output_tokens": 0}}),
            ],
        )

    def test_mess(self) -> None:
        """Non-JSON lines are messages; JSON that is not an object, or of an unknown type, is nothing."""
        self.assertEqual(
            stream("(node) warning"), [("message", {"text": "(node) warning", "role": "assistant"}, 1)]
        )
        self.assertEqual(stream('[1,2]\n"x"\nnull\n{"type":"rate_limit_event"}\n{"no":"type"}'), [])

    def test_tool_result_error(self) -> None:
        """A failed tool result is marked as an error."""
        line = '{"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t","content":"denied","is_error":true}]}}'
        self.assertEqual(
            stream(line),
            [("tool_result", {"tool_id": "t", "tool_name": "", "output": "denied", "is_error": True}, 1)],
        )


class LiveSessionTests(SynchronousTestCase):
    """The turn of a live claude (docs/design/live-sessions.md#live-claude)."""

    def test_answer_message_id(self) -> None:
        """
        A turn ends with the uuid of its last assistant message, which a
        fork resumes at (docs/design/conversations.md#native-fork); the
        next turn starts without one.
        """
        session = ClaudeLiveSession()
        session.turn("hi")
        steps = [session.feed(line) for line in sample("recordings/claude-stream-json.stdout").splitlines()]
        ended = steps[-1].ended
        assert ended is not None
        self.assertEqual((ended.content, ended.message_id), ("Hello there, friend.", "<uuid-9>"))
        session.turn("again")
        result = '{"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"s"}'
        after = session.feed(result).ended
        assert after is not None
        self.assertEqual(after.message_id, "")

    def test_fork_flags(self) -> None:
        self.assertEqual(ClaudeBackend().fork_flags("m-1"), ("--resume-session-at", "m-1", "--fork-session"))
