"""
Tests for L{clinvk.backends.gemini}: command lines
(docs/design/cli-runs.md#gemini-argv, docs/design/cli-runs.md#resume-argv), the JSON parser
(docs/design/cli-runs.md#gemini-output) and the stream mapping
(docs/design/cli-runs.md#gemini-stream), with the recorded samples under
tests/data/gemini.
"""

from __future__ import annotations

from typing import Any

import attrs

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from clinvk.backends.gemini import GeminiBackend, GeminiStreamParser, parse_response
from clinvk.interfaces import IBackend, IStreamParser
from clinvk.model import ParsedResponse, TokenUsage
from tests.backends.helpers import options, sample


def stream(text: str) -> list[tuple[str, dict[str, Any]]]:
    parser = GeminiStreamParser()
    return [
        (e.type, dict(e.content)) for n, line in enumerate(text.splitlines(), 1) for e in parser.feed(line, n)
    ]


class CommandTests(SynchronousTestCase):
    """argv for new runs and resumes, prompt on stdin."""

    def setUp(self) -> None:
        self.backend = GeminiBackend()

    def test_provides(self) -> None:
        """It provides IBackend, and its stream parser IStreamParser."""
        verifyObject(IBackend, self.backend)
        verifyObject(IStreamParser, self.backend.stream_parser())

    def test_spec_example(self) -> None:
        """The example of docs/design/cli-runs.md#gemini-argv, without the prompt."""
        self.assertEqual(
            self.backend.command("gemini", options("gemini", approval_mode="none", verbose=True), ""),
            ["gemini", "--yolo", "--output-format", "json", "--debug"],
        )

    def test_leading_output_format(self) -> None:
        """--output-format text leads only when no output format is mapped."""
        without = attrs.evolve(options("gemini"), output_format="")
        self.assertEqual(self.backend.command("gemini", without, ""), ["gemini", "--output-format", "text"])
        explicit = attrs.evolve(without, extra=("--output-format=json",))
        self.assertEqual(self.backend.command("gemini", explicit, ""), ["gemini", "--output-format=json"])

    def test_resume(self) -> None:
        """A resume: --resume <id> before the model (docs/design/cli-runs.md#gemini-argv)."""
        self.assertEqual(
            self.backend.command("gemini", options("gemini", model="fast"), "s-1"),
            ["gemini", "--resume", "s-1", "--model", "gemini-2.5-flash", "--output-format", "json"],
        )

    def test_system_prompt_prepended(self) -> None:
        """gemini has no system-prompt flag: it goes in front of the prompt (2.2 fix)."""
        self.assertEqual(self.backend.stdin_text(options("gemini", system_prompt="S"), "p"), "S\n\np")

    def test_cleanup_command(self) -> None:
        """Ephemeral sessions are deleted with --delete-session."""
        self.assertEqual(
            self.backend.cleanup_command("/bin/gemini", "s-1"), ["/bin/gemini", "--delete-session", "s-1"]
        )


class ParseResponseTests(SynchronousTestCase):
    """The JSON parser of docs/design/cli-runs.md#gemini-output."""

    def test_recorded_success(self) -> None:
        """Response, session id, and usage: prompt tokens as input, cached and thoughts kept."""
        self.assertEqual(
            parse_response(sample("gemini/success.json")),
            ParsedResponse(
                content="Paris is the capital of France.",
                session_id="0f3c9a52-5e0b-4c7e-9d1e-2f6a8b7c4d10",
                usage=TokenUsage(
                    input_tokens=9311, output_tokens=12, cached_tokens=5191, reasoning_tokens=157
                ),
            ),
        )

    def test_old_release_and_credentials_line(self) -> None:
        """A credentials line before the JSON is skipped; old token fields add up per model."""
        parsed = parse_response(sample("gemini/two_models_old.json"))
        assert parsed is not None
        self.assertEqual(parsed.content, "Done.")
        self.assertEqual(
            parsed.usage, TokenUsage(input_tokens=170, output_tokens=8, cached_tokens=20, reasoning_tokens=5)
        )

    def test_recorded_router_not_counted(self) -> None:
        """
        The CLI's own model-router call (a model whose only role is
        C{utility_router}) is not the run's usage: only the main model's
        tokens count, with and without a tool call.
        """
        parsed = parse_response(sample("recordings/gemini-json.stdout"))
        assert parsed is not None
        self.assertEqual(parsed.content, "Hello there.")
        self.assertEqual(parsed.usage, TokenUsage(input_tokens=20, output_tokens=3))
        parsed = parse_response(sample("recordings/gemini-tool-json.stdout"))
        assert parsed is not None
        self.assertEqual(parsed.usage, TokenUsage(input_tokens=40, output_tokens=6))

    def test_roles_of_one_model(self) -> None:
        """
        A model serving both the main role and a utility one counts the
        main role's tokens only.
        """
        parsed = parse_response(sample("gemini/shared_model_roles.json"))
        assert parsed is not None
        self.assertEqual(
            parsed.usage, TokenUsage(input_tokens=100, output_tokens=7, cached_tokens=10, reasoning_tokens=2)
        )

    def test_error_with_string_code(self) -> None:
        """An error object with a string code is an error (the reference missed it)."""
        self.assertEqual(
            parse_response(sample("gemini/error_stderr.json")),
            ParsedResponse(
                session_id="0f3c9a52-5e0b-4c7e-9d1e-2f6a8b7c4d10",
                error="Please set an Auth method in your settings.json",
            ),
        )
        self.assertEqual(
            parse_response('{"error":{"message":"quota","code":429}}'), ParsedResponse(error="quota")
        )

    def test_plain_text(self) -> None:
        """Plain text after the credentials line is the error; nothing at all is a failure."""
        self.assertEqual(
            parse_response("Loaded cached credentials.\nAPI key not valid\n"),
            ParsedResponse(error="API key not valid"),
        )
        self.assertIsNone(parse_response("Loaded cached credentials.\n"))
        self.assertIsNone(parse_response(""))

    def test_mistyped(self) -> None:
        """A response that is not a string is not Gemini's JSON."""
        self.assertIsNone(parse_response('{"response": 5}'))


class StreamTests(SynchronousTestCase):
    """The stream-json mapping of docs/design/cli-runs.md#gemini-stream."""

    def test_recorded_stream(self) -> None:
        """Real snake_case shapes; the user's own prompt is not echoed."""
        self.assertEqual(
            stream(sample("gemini/stream.jsonl")),
            [
                (
                    "init",
                    {"model": "gemini-2.5-pro", "backend_session_id": "0f3c9a52-5e0b-4c7e-9d1e-2f6a8b7c4d10"},
                ),
                (
                    "tool_use",
                    {
                        "tool_id": "read_file-1",
                        "tool_name": "read_file",
                        "input": {"absolute_path": "/srv/README.md"},
                    },
                ),
                ("tool_result", {"tool_id": "read_file-1", "tool_name": "", "output": "# Atlas"}),
                (
                    "tool_result",
                    {"tool_id": "glob-2", "tool_name": "", "is_error": True, "error_message": "no such file"},
                ),
                ("error", {"code": "warning", "message": "Loop detected, continuing"}),
                ("message", {"text": "It is ", "role": "assistant", "is_partial": True}),
                ("message", {"text": "a map.", "role": "assistant", "is_partial": True}),
                ("done", {"token_usage": {"input_tokens": 9311, "output_tokens": 12, "cached_tokens": 5191}}),
            ],
        )

    def test_error_result(self) -> None:
        """An error result gives an error event before done."""
        self.assertEqual(
            stream(sample("gemini/stream_error.jsonl"))[1:],
            [
                ("error", {"code": "QuotaExceeded", "message": "Quota exceeded for model"}),
                ("done", {"token_usage": {"input_tokens": 0, "output_tokens": 0}}),
            ],
        )

    def test_recorded_stream_usage(self) -> None:
        """
        The recorded C{stream-json} result: its per-model stats carry no
        roles (and the init line names the model C{auto}), so the router's
        call cannot be told from the main model's; the totals are kept.
        """
        self.assertEqual(
            stream(sample("recordings/gemini-stream-json.stdout"))[-1],
            ("done", {"token_usage": {"input_tokens": 40, "output_tokens": 17}}),
        )

    def test_legacy_camel_case(self) -> None:
        """The camelCase shapes the reference expected still work."""
        self.assertEqual(
            stream(sample("gemini/stream_legacy.jsonl")),
            [
                ("init", {"backend_session_id": "legacy-1"}),
                ("message", {"text": "Hello", "role": "assistant", "is_partial": True}),
                ("tool_use", {"tool_id": "c1", "tool_name": "ls", "input": {"path": "."}}),
                ("tool_result", {"tool_id": "c1", "tool_name": "ls", "output": "a b"}),
                ("error", {"code": "E1", "message": "boom", "details": {"x": 1}}),
                ("done", {"token_usage": {"input_tokens": 7, "output_tokens": 3}}),
            ],
        )

    def test_warning_with_code(self) -> None:
        """A warning keeps its code but is marked as only a warning."""
        parser = GeminiStreamParser()
        [event] = parser.feed('{"type":"error","severity":"warning","code":"LOOP","message":"m"}', 1)
        self.assertEqual((dict(event.content), event.warning), ({"code": "LOOP", "message": "m"}, True))
        [fatal] = parser.feed('{"type":"error","severity":"error","message":"m"}', 2)
        self.assertFalse(fatal.warning)

    def test_delta_false(self) -> None:
        """A message explicitly not a delta is not partial; numeric error codes become text."""
        self.assertEqual(
            stream(
                '{"type":"message","role":"assistant","content":"x","delta":false}\n{"type":"error","code":7,"message":"m"}'
            ),
            [("message", {"text": "x", "role": "assistant"}), ("error", {"code": "7", "message": "m"})],
        )
