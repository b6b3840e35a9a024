"""
Tests for L{clinvk.backends.results}: docs/design/cli-runs.md#raw-output,
docs/design/cli-runs.md#output-parsing, docs/design/cli-runs.md#run-errors and
docs/design/cli-runs.md#stream-outcome.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from clinvk.backends import build_backends, events
from clinvk.backends.claude import ClaudeStreamParser
from clinvk.backends.events import readable
from clinvk.backends.results import StreamOutcome, exit_error, finish_response
from clinvk.model import TokenUsage
from tests.backends.helpers import sample

BACKENDS = build_backends()


class FinishResponseTests(SynchronousTestCase):
    """Choosing the raw text, parsing it, and what counts as an error."""

    def test_success(self) -> None:
        """A clean run keeps the parsed content, id and usage."""
        finished = finish_response(
            BACKENDS["claude"], stdout=sample("claude/result.json"), stderr="", exit_code=0
        )
        self.assertEqual(finished.exit_code, 0)
        self.assertEqual(finished.output, "The capital of France is Paris.")
        self.assertEqual(finished.error, "")
        self.assertEqual(finished.native_session_id, "6c0d2f64-8d7e-4a51-9f3b-51a2c7e9d3aa")

    def test_stderr_on_failure(self) -> None:
        """A failed run with stderr is parsed from stderr (gemini's error object)."""
        finished = finish_response(
            BACKENDS["gemini"], stdout="", stderr=sample("gemini/error_stderr.json"), exit_code=41
        )
        self.assertEqual(finished.error, "Please set an Auth method in your settings.json")
        self.assertEqual(finished.exit_code, 41)

    def test_parsed_error_raises_exit_code(self) -> None:
        """A backend error with exit status 0 makes the exit code 1."""
        finished = finish_response(
            BACKENDS["claude"], stdout=sample("claude/auth_error.json"), stderr="", exit_code=0
        )
        self.assertEqual((finished.exit_code, finished.error), (1, "Invalid API key · Please run /login"))

    def test_claude_api_error(self) -> None:
        """
        A recorded claude API error (C{--output-format json}, exit 1) fails
        with the API's text as its error, once: the output is not that text
        again, nor the raw result object.
        """
        finished = finish_response(
            BACKENDS["claude"], stdout=sample("recordings/claude-error-json.stdout"), stderr="", exit_code=1
        )
        self.assertEqual(
            (finished.exit_code, finished.output, finished.error, finished.native_session_id),
            (1, "", "API Error: 400 scripted bad request", "<uuid-1>"),
        )

    def test_claude_text_error(self) -> None:
        """
        A recorded claude API error in text mode (exit 1, the complaint on
        its merged output) has that complaint as its error.
        """
        finished = finish_response(
            BACKENDS["claude"], stdout=sample("recordings/claude-error-text.stdout"), stderr="", exit_code=1
        )
        self.assertEqual((finished.exit_code, finished.error), (1, "API Error: 400 scripted bad request"))

    def test_codex_stderr_surfaces(self) -> None:
        """A codex usage error on stderr becomes the error (2.2 and 6.4 fixes)."""
        finished = finish_response(
            BACKENDS["codex"],
            stdout="",
            stderr="error: unexpected argument '--ask-for-approval' found\n",
            exit_code=2,
        )
        self.assertEqual(finished.error, "error: unexpected argument '--ask-for-approval' found")
        self.assertEqual(finished.output, "")

    def test_status_when_silent(self) -> None:
        """A failure with nothing on stderr reports its status, or termination."""
        self.assertEqual(
            finish_response(BACKENDS["codex"], stdout="", stderr="", exit_code=3).error,
            "backend exited with status 3",
        )
        self.assertEqual(
            finish_response(BACKENDS["codex"], stdout="", stderr="", exit_code=-1).error,
            "backend process was terminated",
        )

    def test_plain_text_output(self) -> None:
        """Text that is not the CLI's JSON is the output, unchanged."""
        finished = finish_response(BACKENDS["claude"], stdout="just text\n", stderr="", exit_code=0)
        self.assertEqual((finished.output, finished.error), ("just text\n", ""))

    def test_start_error_kept(self) -> None:
        """A start failure's text is the error unless the parser found another."""
        finished = finish_response(
            BACKENDS["codex"], stdout="", stderr="", exit_code=1, start_error="No such file"
        )
        self.assertEqual(finished.error, "No such file")

    def test_stop_error_wins(self) -> None:
        """Why the server stopped a run wins over what the CLI said as it died."""
        finished = finish_response(
            BACKENDS["gemini"],
            stdout="",
            stderr="Terminated\n",
            exit_code=-1,
            stop_error="backend command timed out after 5s",
        )
        self.assertEqual(finished.error, "backend command timed out after 5s")

    def test_stdout_errors_not_lost(self) -> None:
        """Diagnostics on stderr do not hide the error events a failed codex run printed on stdout."""
        finished = finish_response(
            BACKENDS["codex"],
            stdout=sample("codex/failed.jsonl"),
            stderr="Reading prompt from stdin...\n",
            exit_code=1,
        )
        self.assertEqual(
            finished.error, "unexpected status 401 Unauthorized: Missing bearer authentication in header"
        )
        self.assertEqual(finished.native_session_id, "0199a213-81c0-7800-8aa1-bbab2a035a53")

    def test_fallback_only_without_answer(self) -> None:
        """
        The text fallback (Codex's parses the whole output again) is only
        worked out when the parser found no answer.
        """
        backend = BACKENDS["codex"]
        fallbacks = []

        def fallback(raw: str) -> str:
            fallbacks.append(raw)
            return "fallback"

        self.patch(backend, "text_fallback", fallback)
        answer = '{"type":"item.completed","item":{"type":"agent_message","text":"hi"}}\n'
        self.assertEqual(finish_response(backend, stdout=answer, stderr="", exit_code=0).output, "hi")
        self.assertEqual(fallbacks, [])
        self.assertEqual(finish_response(backend, stdout="plain", stderr="", exit_code=0).output, "fallback")
        self.assertEqual(fallbacks, ["plain"])

    def test_exit_error_strips_credentials(self) -> None:
        """Gemini's credentials line is not an error text."""
        gemini = BACKENDS["gemini"]
        self.assertEqual(exit_error(gemini, 1, "Loaded cached credentials.\nboom\n"), "boom")
        self.assertEqual(
            exit_error(gemini, 1, "Loaded cached credentials.\n"), "backend exited with status 1"
        )

    def test_exit_error_of_the_backend(self) -> None:
        """The backend says what of its stderr is noise: the credentials line is Gemini's alone."""
        self.assertEqual(
            exit_error(BACKENDS["codex"], 1, "Loaded cached credentials.\nboom\n"),
            "Loaded cached credentials.\nboom",
        )
        gemini = BACKENDS["gemini"]
        self.assertEqual(StreamOutcome(gemini).finish(1, "Loaded cached credentials.\nboom\n").error, "boom")


class StreamOutcomeTests(SynchronousTestCase):
    """The result of a streaming run (7.1)."""

    def test_observed(self) -> None:
        """The last init id, the last done usage and the last failing error are kept."""
        outcome = StreamOutcome(BACKENDS["claude"])
        for event in [
            events.init(1, native_id="a"),
            events.init(2, native_id="b"),
            events.error("just a warning", 3, code="warning", warning=True),
            events.done(4, TokenUsage(1, 2)),
            events.done(5, TokenUsage(3, 4, 5)),
        ]:
            outcome.observe(event)
        finished = outcome.finish(0, "")
        self.assertEqual(
            (finished.native_session_id, finished.usage, finished.error), ("b", TokenUsage(3, 4, 5), "")
        )
        self.assertFalse(outcome.failure_seen)

    def test_error_event(self) -> None:
        """An error event sets the error and raises exit status 0 to 1."""
        outcome = StreamOutcome(BACKENDS["claude"])
        outcome.observe(events.error("quota", 1))
        self.assertEqual((outcome.finish(0, "").exit_code, outcome.finish(0, "").error), (1, "quota"))
        self.assertTrue(outcome.failure_seen)

    def test_exit_without_error(self) -> None:
        """A non-zero exit without an error event takes stderr, else the status."""
        self.assertEqual(StreamOutcome(BACKENDS["claude"]).finish(2, "bad flag\n").error, "bad flag")
        self.assertEqual(
            StreamOutcome(BACKENDS["claude"]).finish(-1, "").error, "backend process was terminated"
        )

    def test_claude_recorded_api_error(self) -> None:
        """
        A recorded claude C{stream-json} API error: no answer text is
        delivered, the run fails with the API's text and its session id.
        """
        outcome = StreamOutcome(BACKENDS["claude"])
        parser = ClaudeStreamParser()
        found = []
        lines = sample("recordings/claude-error-stream-json.stdout").splitlines()
        for number, line in enumerate(lines, 1):
            for event in parser.feed(line, number):
                outcome.observe(event)
                found.append(event.type)
        self.assertNotIn("message", found)
        finished = outcome.finish(1, "")
        self.assertEqual(
            (finished.exit_code, finished.error, finished.native_session_id),
            (1, "API Error: 400 scripted bad request", "<uuid-1>"),
        )

    def test_server_error_wins(self) -> None:
        """A failure the server saw wins over the CLI's own error events."""
        outcome = StreamOutcome(BACKENDS["claude"])
        outcome.observe(events.error("cli", 1))
        self.assertEqual(
            outcome.finish(-1, "", "backend command timed out after 5s").error,
            "backend command timed out after 5s",
        )


class ReadableTests(SynchronousTestCase):
    """Error texts as clients read them (events.readable)."""

    def test_colour_codes(self) -> None:
        """Terminal colour and cursor sequences go."""
        self.assertEqual(readable("\x1b[31mERROR\x1b[0m: \x1b[1mbad\x1b[22m thing\n"), "ERROR: bad thing")

    def test_vendor_body(self) -> None:
        """A vendor's JSON error body, alone or after a prefix, is its message."""
        body = '{"error": {"message": "Refused.", "type": "invalid_request_error"}}'
        self.assertEqual(readable(body), "Refused.")
        self.assertEqual(readable(f"_ApiError: {body}\n    at throwErrorIfNotOK (x.js:1:2)"), "Refused.")

    def test_other_text(self) -> None:
        """Other text, braces included, stays as it is."""
        self.assertEqual(readable('bad value {"error": 3}'), 'bad value {"error": 3}')
        self.assertEqual(readable("plain"), "plain")

    def test_error_events(self) -> None:
        """Error events carry readable messages."""
        self.assertEqual(events.error("\x1b[31mboom\x1b[0m", 1).content["message"], "boom")
