"""
POST /api/v1/prompt without streaming (docs/design/native-api.md#prompt-result),
the sessions it creates (docs/design/session-store.md#session-turns) and continuing
them (docs/design/decisions.md#d3-session-continuation).
"""

from __future__ import annotations

import json
import signal
from typing import Any

from tests.backends.helpers import sample
from tests.web._native import CLAUDE_NATIVE_ID, NativeTestCase, claude_result


class PromptResultTests(NativeTestCase):
    """Execution problems are results with status 200."""

    installed: tuple[str, ...] = ("claude", "gemini")

    def error(self, **body: Any) -> str:
        answer = self.post("/api/v1/prompt", {"backend": "claude", "prompt": "x", **body})
        self.assertEqual(answer["exit_code"], 1)
        self.assertNotIn("session_id", answer)
        self.assertNotIn("output", answer)
        self.assertEqual(self.reactor.spawned, [])
        error: str = answer["error"]
        return error

    def test_unknown_backend(self) -> None:
        """Names are listed sorted."""
        self.assertEqual(
            self.error(backend="gpt"), 'unknown backend "gpt" (available: [claude codex gemini])'
        )

    def test_not_installed(self) -> None:
        """A backend whose CLI is not on PATH, dry runs included."""
        self.assertEqual(self.error(backend="codex"), 'backend "codex" is not available')
        self.assertEqual(self.error(backend="codex", dry_run=True), 'backend "codex" is not available')

    def test_output_format(self) -> None:
        """A bad format is reported first, even before an unknown backend."""
        message = 'invalid output_format "xml": must be one of default, text, json, stream-json'
        self.assertEqual(self.error(output_format="xml"), message)
        self.assertEqual(self.error(output_format="xml", backend="gpt"), message)

    def test_format_trimmed(self) -> None:
        """JSON  is accepted; text, json and default answer the same shape."""
        shapes = []
        for output_format in (" JSON ", "text", "json", "default"):
            answer = self.post(
                "/api/v1/prompt",
                {"backend": "claude", "prompt": "x", "output_format": output_format, "dry_run": True},
            )
            shapes.append(sorted(answer))
        self.assertEqual(len({tuple(shape) for shape in shapes}), 1)

    def test_workdir(self) -> None:
        """Working-directory rules are execution errors."""
        self.assertEqual(
            self.error(workdir="relative/dir"), "invalid work directory: must be an absolute path"
        )
        self.assertEqual(self.error(workdir="/etc"), "work directory not allowed: /etc (blocked path)")

    def test_extra_flags(self) -> None:
        """The allow-list decides per backend."""
        self.assertEqual(
            self.error(extra=["--dangerously-skip-permissions"]),
            "flag not allowed for claude: --dangerously-skip-permissions",
        )
        self.assertEqual(
            self.error(extra=["./docs"]), "invalid flag format: ./docs (must start with - or --)"
        )

    def test_dry_run(self) -> None:
        """A dry run reports the command line with the prompt on stdin, and no token usage."""
        answer = self.post("/api/v1/prompt", {"backend": "claude", "prompt": "What is 2+2?", "dry_run": True})
        self.assertEqual(answer["exit_code"], 0)
        self.assertEqual(
            answer["output"],
            "Would execute: /usr/local/bin/claude [--print --output-format json] < stdin (12 bytes)",
        )
        self.assertNotIn("token_usage", answer)
        self.assertNotIn("error", answer)
        self.assertNotIn("$schema", answer)

    def test_ephemeral_dry_run(self) -> None:
        """No session, and Claude is told not to keep one."""
        answer = self.post(
            "/api/v1/prompt", {"backend": "claude", "prompt": "x", "dry_run": True, "ephemeral": True}
        )
        self.assertNotIn("session_id", answer)
        self.assertIn("--no-session-persistence", answer["output"])
        self.assertEqual(json.loads(self.request("GET", "/api/v1/sessions").body)["total"], 0)

    def test_text_no_command_line_can_carry(self) -> None:
        """
        A lone surrogate escape becomes U+FFFD (as Go's decoder does) and a
        NUL byte in a path is an execution error: neither is a 500.
        """
        body = b'{"backend": "claude", "prompt": "a\\ud800b", "dry_run": true}'
        response = self.request("POST", "/api/v1/prompt", data=body)
        self.assertEqual(json.loads(response.body)["exit_code"], 0)
        self.assertEqual(
            self.error(workdir="/tmp/\x00x"), "cannot resolve work directory: embedded null byte"
        )

    def test_null_session_id_is_absent(self) -> None:
        """session_id null is no session: backend is required again."""
        problem = self.problem(
            self.request("POST", "/api/v1/prompt", {"prompt": "x", "session_id": None}), 422
        )
        self.assertEqual(problem["errors"][0]["message"], "expected required property backend to be present")

    def test_max_tokens_never_forwarded(self) -> None:
        answer = self.post(
            "/api/v1/prompt", {"backend": "claude", "prompt": "x", "dry_run": True, "max_tokens": 100}
        )
        self.assertNotIn("100", answer["output"])


class PromptSessionTests(NativeTestCase):
    """The session of a non-ephemeral prompt."""

    def test_dry_run_session(self) -> None:
        """A dry run gets a completed session with one turn, tagged api."""
        answer = self.post("/api/v1/prompt", {"backend": "claude", "prompt": "x", "dry_run": True})
        self.assertRegex(answer["session_id"], "^[0-9a-f]{32}$")
        session = self.session(answer["session_id"])
        self.assertEqual((session["status"], session["turn_count"]), ("completed", 1))
        self.assertIn("api", session["tags"])

    def test_run(self) -> None:
        """
        The session is created before the CLI runs (visible as active),
        then completed with its tokens, native id and a later last_used.
        """
        pending = self.start(
            "POST", "/api/v1/prompt", {"backend": "claude", "prompt": "2+2?", "metadata": {"ticket": "OPS-1"}}
        )
        child = self.child()
        self.assertEqual(child.stdin, b"2+2?")
        [running] = json.loads(self.request("GET", "/api/v1/sessions").body)["sessions"]
        self.assertEqual(
            (running["status"], running["token_usage"]), ("active", {"input_tokens": 0, "output_tokens": 0})
        )
        self.reactor.advance(2.5)
        child.emit_stdout(claude_result("4"))
        child.exit(0)
        answer = self.answer(pending)
        self.assertEqual(
            answer,
            {
                "session_id": running["id"],
                "backend": "claude",
                "exit_code": 0,
                "duration_ms": 2500,
                "output": "4",
                "token_usage": {"input_tokens": 3, "output_tokens": 7},
            },
        )
        session = self.session(running["id"])
        self.assertEqual(session["status"], "completed")
        self.assertEqual(session["token_usage"], {"input_tokens": 3, "output_tokens": 7})
        self.assertGreater(session["last_used"], session["created_at"])
        # The native id and the metadata are stored, never shown.
        record = self.successResultOf(self.server.store.get(running["id"]))
        self.assertEqual(record.backend_session_id, CLAUDE_NATIVE_ID)
        self.assertEqual(dict(record.metadata), {"ticket": "OPS-1"})
        self.assertNotIn("metadata", session)
        self.assertNotIn("backend_session_id", session)

    def test_duration_leaves_out_the_clean_up(self) -> None:
        """An ephemeral run's duration ends when its output is parsed, not after the native clean-up."""
        pending = self.start(
            "POST", "/api/v1/prompt", {"backend": "gemini", "prompt": "x", "ephemeral": True}
        )
        self.reactor.advance(1)
        self.child().emit_stdout(sample("gemini/success.json").encode())
        self.child().exit(0)
        clean_up = self.child()
        self.assertIn("--delete-session", clean_up.argv)
        self.reactor.advance(3)
        clean_up.exit(0)
        self.assertEqual(self.answer(pending)["duration_ms"], 1000)

    def test_failed_run_keeps_session(self) -> None:
        """A non-zero exit still answers with the session, now in error."""
        pending = self.start("POST", "/api/v1/prompt", {"backend": "claude", "prompt": "x"})
        self.child().exit(3)
        answer = self.answer(pending)
        self.assertEqual(answer["exit_code"], 3)
        session = self.session(answer["session_id"])
        self.assertEqual((session["status"], session["turn_count"]), ("error", 1))

    def test_disconnect_kills_and_records(self) -> None:
        """A client that goes away stops the CLI; the session records the failure."""
        self.start("POST", "/api/v1/prompt", {"backend": "claude", "prompt": "x"})
        child = self.child()
        [running] = json.loads(self.request("GET", "/api/v1/sessions").body)["sessions"]
        self.disconnect()
        self.assertIn((child.pid, signal.SIGTERM), self.reactor.signals)
        self.reactor.advance(5)
        self.assertTrue(child.ended)
        session = self.session(running["id"])
        self.assertEqual((session["status"], session["turn_count"]), ("error", 1))

    def test_store_token_usage_off(self) -> None:
        """With store_token_usage false, the session's tokens stay at zero."""
        self.use_server(config={"session": {"store_token_usage": False}})
        pending = self.start("POST", "/api/v1/prompt", {"backend": "claude", "prompt": "x"})
        self.child().emit_stdout(claude_result())
        self.child().exit(0)
        answer = self.answer(pending)
        self.assertEqual(
            self.session(answer["session_id"])["token_usage"], {"input_tokens": 0, "output_tokens": 0}
        )


class ContinueSessionTests(NativeTestCase):
    """
    A prompt with a session_id continues that session
    (docs/design/decisions.md#d3-session-continuation).
    """

    def first_turn(self) -> str:
        pending = self.start("POST", "/api/v1/prompt", {"backend": "claude", "prompt": "remember 7"})
        self.child().emit_stdout(claude_result("ok"))
        self.child().exit(0)
        session_id: str = self.answer(pending)["session_id"]
        return session_id

    def test_second_turn_resumes(self) -> None:
        """The CLI gets the resume command line; the same session has two turns and summed tokens."""
        session_id = self.first_turn()
        pending = self.start(
            "POST", "/api/v1/prompt", {"prompt": "what number?", "session_id": session_id[:8]}
        )
        child = self.child()
        self.assertIn("--resume", child.argv)
        self.assertEqual(child.argv[child.argv.index("--resume") + 1], CLAUDE_NATIVE_ID)
        self.assertEqual(child.stdin, b"what number?")
        child.emit_stdout(claude_result("7", input_tokens=10, output_tokens=1))
        child.exit(0)
        answer = self.answer(pending)
        self.assertEqual((answer["session_id"], answer["output"]), (session_id, "7"))
        session = self.session(session_id)
        self.assertEqual(session["turn_count"], 2)
        self.assertEqual(session["token_usage"], {"input_tokens": 13, "output_tokens": 8})
        self.assertEqual(json.loads(self.request("GET", "/api/v1/sessions").body)["total"], 1)

    def refused(self, body: dict[str, Any], status: int) -> dict[str, Any]:
        return self.problem(self.request("POST", "/api/v1/prompt", body), status)

    def test_unknown(self) -> None:
        problem = self.refused({"prompt": "x", "session_id": "0123456789abcdef"}, 404)
        self.assertEqual(problem["detail"], "session not found")
        self.assertEqual(problem["errors"], [{"message": "no session found with prefix: 0123456789abcdef"}])

    def test_other_backend(self) -> None:
        session_id = self.first_turn()
        problem = self.refused({"backend": "gemini", "prompt": "x", "session_id": session_id}, 400)
        self.assertIn('belongs to backend "claude"', problem["detail"])

    def test_ephemeral(self) -> None:
        session_id = self.first_turn()
        self.refused({"backend": "claude", "prompt": "x", "session_id": session_id, "ephemeral": True}, 400)

    def test_short_prefix(self) -> None:
        session_id = self.first_turn()
        self.refused({"prompt": "x", "session_id": session_id[:4]}, 400)

    def test_no_native_session(self) -> None:
        """A dry-run session has no native conversation to continue: 409."""
        answer = self.post("/api/v1/prompt", {"backend": "claude", "prompt": "x", "dry_run": True})
        self.refused({"prompt": "x", "session_id": answer["session_id"]}, 409)

    def test_streamed_turn(self) -> None:
        """A streamed turn resumes too, and its events carry the session's id."""
        session_id = self.first_turn()
        _, chunks = self.stream(
            self.start(
                "POST",
                "/api/v1/prompt",
                {"prompt": "again", "session_id": session_id, "output_format": "stream-json"},
            )
        )
        child = self.child()
        self.assertEqual(child.argv[child.argv.index("--resume") + 1], CLAUDE_NATIVE_ID)
        child.emit_stdout(b'{"type":"assistant","message":{"content":[{"type":"text","text":"hi"}]}}\n')
        child.exit(0)
        events = self.lines(chunks)
        self.assertEqual(len(events), 1)
        self.assertEqual({e["session_id"] for e in events}, {session_id})
        self.assertEqual(self.session(session_id)["turn_count"], 2)

    def test_turn_that_cannot_run(self) -> None:
        """A turn refused by pre-flight still answers with the session's id, and runs nothing."""
        session_id = self.first_turn()
        answer = self.post("/api/v1/prompt", {"prompt": "x", "session_id": session_id, "extra": ["--bogus"]})
        self.assertEqual((answer["exit_code"], answer["session_id"]), (1, session_id))
        self.assertEqual(len(self.reactor.spawned), 1)

    def test_other_workdir(self) -> None:
        """A turn runs where its session runs; asking for another directory is 400."""
        session_id = self.first_turn()
        problem = self.refused({"prompt": "x", "session_id": session_id, "workdir": "/srv"}, 400)
        self.assertIn("the server's directory", problem["detail"])

    def test_disconnected_turn_releases_the_session(self) -> None:
        """A turn whose client went away is recorded, and the next turn may run."""
        session_id = self.first_turn()
        self.start("POST", "/api/v1/prompt", {"prompt": "a", "session_id": session_id})
        self.disconnect()
        self.reactor.advance(5)
        self.assertEqual(self.session(session_id)["status"], "error")
        pending = self.start("POST", "/api/v1/prompt", {"prompt": "b", "session_id": session_id})
        self.child().exit(0)
        self.assertEqual(self.answer(pending)["session_id"], session_id)
        self.assertEqual(self.session(session_id)["turn_count"], 3)

    def test_turns_never_overlap(self) -> None:
        """A second turn while one runs is 409; once it ends, the next may start."""
        session_id = self.first_turn()
        pending = self.start("POST", "/api/v1/prompt", {"prompt": "a", "session_id": session_id})
        problem = self.refused({"prompt": "b", "session_id": session_id}, 409)
        self.assertIn("already has a turn running", problem["detail"])
        self.child().emit_stdout(claude_result())
        self.child().exit(0)
        self.assertEqual(self.finish(pending).code, 200)
        pending = self.start("POST", "/api/v1/prompt", {"prompt": "c", "session_id": session_id})
        self.child().exit(0)
        self.assertEqual(self.finish(pending).code, 200)


class LiveSessionTests(NativeTestCase):
    """
    With live sessions on (the default outside these tests), a session's
    turns run in one live CLI (docs/design/live-sessions.md#live-turns).
    """

    def setUp(self) -> None:
        self.use_server(installed=self.installed, live=True, config={"server": {"metrics_enabled": True}})

    def test_turns_in_one_process(self) -> None:
        """
        A new session's first turn starts a live claude; the next turn,
        JSON or NDJSON, is a line on the same process's stdin; the session
        records both.
        """
        pending = self.start("POST", "/api/v1/prompt", {"backend": "claude", "prompt": "remember 7"})
        child = self.child()
        self.assertIn("--input-format", child.argv)
        self.assertFalse(child.stdin_closed)
        child.emit_stdout(claude_result("ok"))
        session_id = self.answer(pending)["session_id"]
        pending = self.start("POST", "/api/v1/prompt", {"prompt": "what number?", "session_id": session_id})
        self.assertEqual(len(self.reactor.spawned), 1)
        self.assertEqual(json.loads(child.stdin.splitlines()[-1])["message"]["content"], "what number?")
        child.emit_stdout(claude_result("7", input_tokens=10, output_tokens=1))
        self.assertEqual(self.answer(pending)["output"], "7")
        _, chunks = self.stream(
            self.start(
                "POST",
                "/api/v1/prompt",
                {"prompt": "again", "session_id": session_id, "output_format": "stream-json"},
            )
        )
        child.emit_stdout(claude_result("still 7"))
        self.assertEqual([event["type"] for event in self.lines(chunks)], ["done"])
        self.assertEqual(self.session(session_id)["turn_count"], 3)
        self.assertFalse(child.exited)
        metrics = self.request("GET", "/metrics").body.decode()
        self.assertIn("clinvk_live_processes 1.0", metrics)
        self.assertIn("clinvk_live_reused_turns_total 2.0", metrics)

    def test_disconnect_interrupts(self) -> None:
        """A client gone mid-turn interrupts it; the session's next turn reuses the process."""
        pending = self.start("POST", "/api/v1/prompt", {"backend": "claude", "prompt": "one"})
        child = self.child()
        child.emit_stdout(claude_result("ok"))
        session_id = self.answer(pending)["session_id"]
        self.start("POST", "/api/v1/prompt", {"prompt": "slow", "session_id": session_id})
        self.disconnect()
        self.assertEqual(json.loads(child.stdin.splitlines()[-1])["type"], "control_request")
        child.emit_stdout(
            b'{"type":"result","subtype":"error_during_execution","is_error":true,"session_id":"x"}\n'
        )
        self.assertEqual(self.session(session_id)["status"], "error")
        pending = self.start("POST", "/api/v1/prompt", {"prompt": "three", "session_id": session_id})
        child.emit_stdout(claude_result("back"))
        self.assertEqual(self.answer(pending)["output"], "back")
        self.assertEqual(len(self.reactor.spawned), 1)

    def test_delete_ends_process(self) -> None:
        """Deleting a session closes its live process."""
        pending = self.start("POST", "/api/v1/prompt", {"backend": "claude", "prompt": "one"})
        child = self.child()
        child.emit_stdout(claude_result("ok"))
        session_id = self.answer(pending)["session_id"]
        self.assertEqual(self.request("DELETE", f"/api/v1/sessions/{session_id}").code, 200)
        self.assertTrue(child.stdin_closed)

    def test_ephemeral_cold(self) -> None:
        """An ephemeral prompt has no session: it runs one process, as before."""
        pending = self.start(
            "POST", "/api/v1/prompt", {"backend": "claude", "prompt": "x", "ephemeral": True}
        )
        child = self.child()
        self.assertNotIn("--input-format", child.argv)
        self.assertTrue(child.stdin_closed)
        child.emit_stdout(claude_result("once"))
        child.exit(0)
        self.assertEqual(self.answer(pending)["output"], "once")
