"""
Tests for L{clinvk.backends.codex}: command lines (docs/design/cli-runs.md#codex-argv,
docs/design/cli-runs.md#resume-argv), the JSONL parser (docs/design/cli-runs.md#codex-output)
and the stream mapping (docs/design/cli-runs.md#codex-stream), with the recorded
samples under tests/data/codex.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from clinvk.backends.codex import CodexBackend, CodexStreamParser, _events, parse_response
from clinvk.interfaces import IBackend, IStreamParser
from clinvk.model import ParsedResponse, TokenUsage
from tests.backends.helpers import options, sample


def stream(text: str) -> list[tuple[str, dict[str, Any]]]:
    parser = CodexStreamParser()
    return [
        (e.type, dict(e.content)) for n, line in enumerate(text.splitlines(), 1) for e in parser.feed(line, n)
    ]


class JSONLinesTests(SynchronousTestCase):
    """The JSON lines of an answer, decoded where they lie in the output."""

    def test_lines_as_splitlines(self) -> None:
        """Lines end where str.splitlines ends them; only whole-line objects count."""
        raw = (
            '{"type":"error","message":"a"}\r\n'
            '  {"type":"error","message":"b"}  \x1c\n'
            '{"type":"error","message":"c"} trailing\n'
            '{"type":"error",\n"message":"split"}\n'
            "[1]\n\n"
            '{"type":"error","message":"d\u2028e"}\n'
            '{"type":"error","message":"f"}'
        )
        self.assertEqual(parse_response(raw).error, "f")
        found = [event["message"] for event in _events(raw)]
        self.assertEqual(found, ["a", "b", "f"])

    def test_text_fallback_of_large_line(self) -> None:
        """A long answer on one line is found whole."""
        text = "x" * 100_000
        raw = '{"type":"item.completed","item":{"type":"agent_message","text":"' + text + '"}}\n'
        self.assertEqual(CodexBackend().text_fallback(raw), text)


class CommandTests(SynchronousTestCase):
    """argv for new runs and resumes, prompt on stdin."""

    def setUp(self) -> None:
        self.backend = CodexBackend()

    def test_provides(self) -> None:
        """It provides IBackend, and its stream parser IStreamParser."""
        verifyObject(IBackend, self.backend)
        verifyObject(IStreamParser, self.backend.stream_parser())

    def test_spec_example(self) -> None:
        """The example of docs/design/cli-runs.md#codex-argv, with "-" for stdin."""
        self.assertEqual(
            self.backend.command("codex", options("codex", sandbox_mode="workspace"), ""),
            ["codex", "exec", "--sandbox", "workspace-write", "--json", "-"],
        )

    def test_model_after_exec(self) -> None:
        """A model goes right after exec, resolved from its alias."""
        self.assertEqual(
            self.backend.command("codex", options("codex", model="best"), ""),
            ["codex", "exec", "--model", "gpt-5-codex", "--json", "-"],
        )

    def test_leading_json(self) -> None:
        """--json leads only when the mapped flags lack it; it is never doubled."""
        opts = options("codex")
        self.assertEqual(self.backend.command("codex", opts, ""), ["codex", "exec", "--json", "-"])
        without = attrs.evolve(opts, output_format="text")
        self.assertEqual(self.backend.command("codex", without, ""), ["codex", "exec", "--json", "-"])
        resumed = self.backend.command("codex", without, "t")
        self.assertEqual(resumed, ["codex", "exec", "--json", "resume", "t", "-"])

    def test_resume(self) -> None:
        """A resume: exec [--json] resume <id> [--model m] M... - (docs/design/cli-runs.md#codex-argv)."""
        self.assertEqual(
            self.backend.command("codex", options("codex", model="fast"), "thread-9"),
            ["codex", "exec", "resume", "thread-9", "--model", "gpt-4.1-mini", "--json", "-"],
        )

    def test_system_prompt_prepended(self) -> None:
        """codex has no system-prompt flag: it goes in front of the prompt (2.2 fix)."""
        opts = options("codex", system_prompt="Be terse.")
        self.assertEqual(self.backend.stdin_text(opts, "fix it"), "Be terse.\n\nfix it")
        self.assertNotIn("Be terse.", self.backend.command("codex", opts, ""))
        self.assertEqual(self.backend.stdin_text(options("codex"), "fix it"), "fix it")

    def test_session_files(self) -> None:
        """Native sessions are files under ~/.codex/sessions."""
        self.assertEqual(self.backend.session_file_roots("/home/u"), ("/home/u/.codex/sessions",))
        self.assertIsNone(self.backend.cleanup_command("codex", "x"))


class ParseResponseTests(SynchronousTestCase):
    """The JSONL parser of docs/design/cli-runs.md#codex-output."""

    def test_recorded_run(self) -> None:
        """Thread id, agent message, usage without adding the cached tokens twice."""
        self.assertEqual(
            parse_response(sample("codex/exec.jsonl")),
            ParsedResponse(
                content="I fixed the bug.",
                session_id="0199a213-81c0-7800-8aa1-bbab2a035a53",
                usage=TokenUsage(input_tokens=24763, output_tokens=122, cached_tokens=24448),
            ),
        )

    def test_turns_summed(self) -> None:
        """A run with several turns sums their usage and joins its messages."""
        parsed = parse_response(sample("codex/resumed.jsonl"))
        self.assertEqual(parsed.content, "First.\nSecond.")
        self.assertEqual(parsed.usage, TokenUsage(300, 30, 190))

    def test_failed(self) -> None:
        """The last error or turn failure is the error."""
        self.assertEqual(
            parse_response(sample("codex/failed.jsonl")).error,
            "unexpected status 401 Unauthorized: Missing bearer authentication in header",
        )

    def test_never_fails(self) -> None:
        """Empty or noisy input gives an empty response with zero usage."""
        self.assertEqual(parse_response(""), ParsedResponse(usage=TokenUsage()))
        self.assertEqual(parse_response("not json\n\n[1]\n").content, "")

    def test_text_fallback(self) -> None:
        """The fallback text is the agent messages, non-JSON lines ignored."""
        self.assertEqual(
            CodexBackend().text_fallback("noise\n" + sample("codex/resumed.jsonl")), "First.\nSecond."
        )


class StreamTests(SynchronousTestCase):
    """The exec --json mapping of docs/design/cli-runs.md#codex-stream."""

    def test_recorded_run(self) -> None:
        """Every item type of a recorded run."""
        self.assertEqual(
            stream(sample("codex/exec.jsonl")),
            [
                ("init", {"backend_session_id": "0199a213-81c0-7800-8aa1-bbab2a035a53"}),
                ("progress", {"stage": "turn_started", "message": "Processing..."}),
                ("thinking", {"text": "**Scanning the repository**"}),
                (
                    "tool_use",
                    {
                        "tool_id": "item_1",
                        "tool_name": "command_execution",
                        "input": {"command": "bash -lc ls"},
                    },
                ),
                (
                    "tool_result",
                    {"tool_id": "item_1", "tool_name": "command_execution", "output": "docs\nsrc\n"},
                ),
                (
                    "tool_result",
                    {
                        "tool_id": "item_2",
                        "tool_name": "file_change",
                        "output": '{"changes":[{"path":"src/main.rs","kind":"update"}],"status":"completed"}',
                    },
                ),
                (
                    "tool_result",
                    {
                        "tool_id": "item_3",
                        "tool_name": "docs.search",
                        "output": '{"server":"docs","tool":"search","arguments":{"q":"x"},"result":null,"error":{"message":"timeout"},"status":"failed"}',
                        "is_error": True,
                    },
                ),
                ("error", {"code": "warning", "message": "command output truncated"}),
                ("message", {"text": "I fixed the bug.", "role": "assistant"}),
                (
                    "done",
                    {"token_usage": {"input_tokens": 24763, "output_tokens": 122, "cached_tokens": 24448}},
                ),
            ],
        )

    def test_failures(self) -> None:
        """A stream error and a failed turn are error events."""
        self.assertEqual(
            stream(sample("codex/failed.jsonl"))[2:],
            [
                ("error", {"message": "stream disconnected before completion"}),
                (
                    "error",
                    {
                        "message": "unexpected status 401 Unauthorized: Missing bearer authentication in header"
                    },
                ),
            ],
        )

    def test_failed_command(self) -> None:
        """A command with a non-zero exit code, or declined, is an error result."""
        for item in ('"exit_code":2,"status":"completed"', '"exit_code":null,"status":"declined"'):
            line = (
                '{"type":"item.completed","item":{"id":"i","type":"command_execution","aggregated_output":"x",'
                + item
                + "}}"
            )
            self.assertTrue(stream(line)[0][1]["is_error"])

    def test_legacy_shapes(self) -> None:
        """The item shapes and events the reference understood."""
        lines = "\n".join(
            [
                '{"type":"item.completed","item":{"type":"message","content":[{"type":"input_text","text":"no"},{"type":"output_text","text":"yes"}]}}',
                '{"type":"item.completed","item":{"type":"function_call","call_id":"c","name":"shell","arguments":"{\\"cmd\\":\\"ls\\"}"}}',
                '{"type":"item.completed","item":{"type":"function_call_output","call_id":"c","output":"a"}}',
                '{"type":"reasoning","text":"hmm"}',
                '{"type":"event_msg","payload":{"type":"token_count","input_tokens":5,"output_tokens":6}}',
                '{"type":"error","code":"E","message":"bad"}',
            ]
        )
        self.assertEqual(
            stream(lines),
            [
                ("message", {"text": "yes", "role": "assistant"}),
                ("tool_use", {"tool_id": "c", "tool_name": "shell", "input": '{"cmd":"ls"}'}),
                ("tool_result", {"tool_id": "c", "tool_name": "", "output": "a"}),
                ("thinking", {"text": "hmm"}),
                ("token_usage", {"input_tokens": 5, "output_tokens": 6}),
                ("error", {"code": "E", "message": "bad"}),
            ],
        )

    def test_declined_change_is_not_failed(self) -> None:
        """Only a failed file change, MCP call or search is an error; a declined one is not."""
        line = '{"type":"item.completed","item":{"id":"i","type":"file_change","changes":[],"status":"declined"}}'
        self.assertNotIn("is_error", stream(line)[0][1])

    def test_item_error_is_a_warning(self) -> None:
        """A non-fatal item error is marked as a warning."""
        [event] = CodexStreamParser().feed(
            '{"type":"item.completed","item":{"type":"error","message":"m"}}', 1
        )
        self.assertTrue(event.warning)

    def test_ignored(self) -> None:
        """Newer event types produce nothing; non-JSON lines are messages."""
        self.assertEqual(stream('{"type":"item.plan.delta"}\n{"type":"request_user_input"}'), [])
        self.assertEqual(
            stream("Reading prompt from stdin..."),
            [("message", {"text": "Reading prompt from stdin...", "role": "assistant"})],
        )


class RealShapesTests(SynchronousTestCase):
    """Shapes of codex 0.171.0 that only the real CLI showed (tests/data/recordings)."""

    RECONNECT = (
        '{"type":"error","message":"Reconnecting... 1/5 (stream disconnected before completion: '
        'Transport error: network error: error decoding response body)"}'
    )
    RECOVERED = "\n".join(
        [
            '{"type":"thread.started","thread_id":"t"}',
            '{"type":"turn.started"}',
            RECONNECT,
            '{"type":"item.completed","item":{"id":"item_0","type":"agent_message","text":"Kept."}}',
            '{"type":"turn.completed","usage":{"input_tokens":20,"cached_input_tokens":0,"output_tokens":1}}',
        ]
    )

    def test_reconnect_is_no_error(self) -> None:
        """A turn that reconnected and then completed has its answer and no error."""
        parsed = parse_response(self.RECOVERED)
        self.assertEqual((parsed.content, parsed.error), ("Kept.", ""))

    def test_reconnect_is_progress(self) -> None:
        """In a stream, a reconnection is progress, not an error."""
        self.assertEqual(
            stream(self.RECONNECT),
            [("progress", {"stage": "reconnecting", "message": json.loads(self.RECONNECT)["message"]})],
        )

    def test_api_error_body(self) -> None:
        """An API's refusal, given as its JSON body, is its message, said once in a stream."""
        body = '{\\"error\\": {\\"message\\": \\"Refused.\\", \\"type\\": \\"invalid_request_error\\"}}'
        lines = (
            f'{{"type":"error","message":"{body}"}}\n{{"type":"turn.failed","error":{{"message":"{body}"}}}}'
        )
        self.assertEqual(parse_response(lines).error, "Refused.")
        self.assertEqual(stream(lines), [("error", {"message": "Refused."})])

    def test_model_metadata_notice(self) -> None:
        """The notice about a model outside codex's catalogue is no event."""
        line = (
            '{"type":"item.completed","item":{"id":"item_0","type":"error","message":'
            '"Model metadata for `gpt-4o` not found. Defaulting to fallback metadata; this can degrade '
            'performance and cause issues."}}'
        )
        self.assertEqual(stream(line), [])

    def test_reports_running_usage(self) -> None:
        """Codex reports a resumed thread's running total; the runtime takes the earlier turns off."""
        self.assertTrue(CodexBackend.reports_running_usage)
