"""
End-to-end tests of the native REST API (docs/design/native-api.md#native-api,
docs/design/decisions.md#d1-prompts-on-stdin, docs/design/decisions.md#d3-session-continuation,
docs/design/decisions.md#d6-no-orphans): the real server started as
C{python -m twisted clinvk}, the fake CLIs first on its C{PATH}, real
HTTP on 127.0.0.1 and real child processes.

Each test runs its own server with C{HOME} in a temporary directory (the
sessions go to C{<HOME>/.clinvk/sessions}) and stops it with SIGTERM
afterwards.  The fakes record how they were run (C{CLINVK_FAKE_RECORD}),
which shows what reached the CLI: its argv, its stdin, its pid.

Waiting is event-driven (output arriving, a process ending) or a bounded
poll of the server's own state; nothing waits for a fixed time.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater

from tests.integration._processes import TIMEOUT, alive, get_json, post_json, process_exit, reactor
from tests.integration._server import KILL_GRACE, NDJSONClient, ServerTestCase

T = TypeVar("T")

SESSION_ID = r"^[0-9a-f]{32}$"


class NativeApiTestCase(ServerTestCase):
    """A real clinvk server per test (L{ServerTestCase}), and the native API's requests."""

    timeout = 90

    server_config = {"server": {"shutdown_timeout_secs": 5}}

    async def post(self, path: str, body: Any) -> Any:
        """POST C{body} to C{path}; the JSON answer, which must be a 200."""
        code, answer = await post_json(self.url(path), body)
        self.assertEqual(code, 200, answer)
        return answer

    async def get(self, path: str) -> Any:
        """GET C{path}; the JSON answer, which must be a 200."""
        code, answer = await get_json(self.url(path))
        self.assertEqual(code, 200, answer)
        return answer

    async def found_eventually(self, probe: Callable[[], Awaitable[T | None]]) -> T:
        """Poll C{probe} until it returns something, for at most L{TIMEOUT} seconds."""
        deadline = reactor.seconds() + TIMEOUT
        while True:
            found = await probe()
            if found is not None:
                return found
            if reactor.seconds() > deadline:
                self.fail("the condition did not come true in time")
            await deferLater(reactor, 0.05)

    def run_of(self, prompt: str) -> dict[str, Any]:
        """The one recorded run whose stdin was C{prompt}."""
        [record] = [record for record in self.runs() if record["stdin"] == prompt]
        return record

    async def gone(self, record: dict[str, Any]) -> None:
        """Wait until the fake of C{record} and its grandchildren have exited."""
        for pid in (record["pid"], *record["grandchildren"]):
            await process_exit(pid)
            self.assertFalse(alive(pid), f"{record['name']} process {pid} is still running")


class PromptTests(NativeApiTestCase):
    """C{POST /api/v1/prompt}: a new session per prompt (docs/design/native-api.md#prompt-sessions)."""

    async def test_prompt(self) -> None:
        """
        A prompt is answered by the CLI, which read it on stdin
        (docs/design/decisions.md#d1-prompts-on-stdin), and leaves a completed session
        on disk, readable only by its owner.
        """
        prompt = 'Explain `ls -la $HOME`; it\'s "fine" | really\nsecond line'
        answer = await self.post("/api/v1/prompt", {"backend": "claude", "prompt": prompt})

        self.assertRegex(answer["session_id"], SESSION_ID)
        self.assertEqual(
            {key: answer[key] for key in ("backend", "exit_code", "output")},
            {
                "backend": "claude",
                "exit_code": 0,
                "output": 'claude answers: Explain `ls -la $HOME`; it\'s "fine" | really',
            },
        )
        self.assertNotIn("error", answer)
        self.assertNotIn("$schema", answer)
        self.assertEqual(answer["token_usage"]["input_tokens"], 4)
        self.assertGreater(answer["token_usage"]["output_tokens"], 0)

        [run] = self.runs("claude")
        self.assertEqual(run["stdin"], prompt)
        self.assertFalse(any("Explain" in arg or "second" in arg for arg in run["argv"]), run["argv"])
        self.assertEqual(run["argv"][0], "--print")

        session = await self.get(f"/api/v1/sessions/{answer['session_id']}")
        self.assertEqual(
            {key: session[key] for key in ("id", "backend", "status", "turn_count", "initial_prompt")},
            {
                "id": answer["session_id"],
                "backend": "claude",
                "status": "completed",
                "turn_count": 1,
                "initial_prompt": prompt,
            },
        )
        self.assertIn("api", session["tags"])

        sessions = self.home.descendant([".clinvk", "sessions"])
        stored = sessions.child(f"{answer['session_id']}.json")
        self.assertEqual(stat.S_IMODE(os.stat(stored.path).st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(sessions.path).st_mode), 0o700)
        self.assertEqual(json.loads(stored.getContent())["status"], "completed")


class AbandonedStreamTests(NativeApiTestCase):
    """
    A client that leaves in the middle of a stream (docs/design/native-api.md#prompt-stream,
    docs/design/decisions.md#d6-no-orphans), with one process per turn (a
    live turn is interrupted instead: tests.integration.test_live_sessions).
    """

    server_config = {"server": {"shutdown_timeout_secs": 5, "live_idle_secs": 0}}

    async def test_disconnect_kills_cli_and_fails_session(self) -> None:
        """
        When the client drops the connection mid-stream, the CLI and the
        grandchild it forked are killed within C{kill_grace_secs} + 1 s
        (docs/design/decisions.md#d6-no-orphans), though both ignore SIGTERM, and the
        session records the
        failed turn (status C{error}, not C{active} forever).
        """
        prompt = "#fake ignore_term grandchild chunks=3 chunk_delay=60\ntell a long story"
        client = NDJSONClient.post(
            "/api/v1/prompt",
            self.port,
            {"backend": "claude", "prompt": prompt, "output_format": "stream-json"},
        )
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), client)

        # The first piece of the answer arrives; the fake then waits a minute.
        first = await client.wait_for("message")
        assert client.head is not None
        self.assertTrue(client.head.startswith(b"HTTP/1.0 200 "), client.head)
        self.assertIn(b"content-type: application/x-ndjson", client.head.lower())
        self.assertTrue(first["content"]["text"])
        self.assertTrue("claude answers: tell a long story".startswith(first["content"]["text"]))
        self.assertEqual(client.events[0]["type"], "init")
        session_id = first["session_id"]
        self.assertRegex(session_id, SESSION_ID)
        self.assertEqual({event["session_id"] for event in client.events}, {session_id})
        [run] = self.runs("claude")
        [grandchild] = run["grandchildren"]
        self.assertTrue(alive(run["pid"]) and alive(grandchild))

        client.abort()
        left = reactor.seconds()
        await client.closed
        await self.gone(run)
        self.assertLess(reactor.seconds() - left, KILL_GRACE + 1)

        async def settled() -> dict[str, Any] | None:
            session: dict[str, Any] = await self.get(f"/api/v1/sessions/{session_id}")
            return None if session["status"] == "active" else session

        session = await self.found_eventually(settled)
        self.assertEqual((session["status"], session["turn_count"]), ("error", 1))


class ParallelTests(NativeApiTestCase):
    """C{POST /api/v1/parallel} with C{fail_fast} (docs/design/native-api.md#parallel-fail-fast)."""

    async def test_fail_fast(self) -> None:
        """
        With two slots, the first task fails while the second still runs:
        the second is killed (failed, C{exit_code} -1), the two tasks that
        never got a slot are C{canceled} (counted neither completed nor
        failed), results keep the order of the tasks, and no CLI is left.

        The failing fake waits a second before failing, so that the hanging
        one has surely started by then.
        """
        tasks = [
            {"backend": "codex", "prompt": "#fake delay=1 fail=auth\nfirst"},
            {"backend": "gemini", "prompt": "#fake hang\nsecond"},
            {"backend": "claude", "prompt": "third"},
            {"backend": "codex", "prompt": "fourth"},
        ]
        answer = await self.post("/api/v1/parallel", {"tasks": tasks, "max_parallel": 2, "fail_fast": True})

        self.assertEqual(
            {key: answer[key] for key in ("total_tasks", "completed", "failed")},
            {"total_tasks": 4, "completed": 0, "failed": 2},
        )
        failed, killed, *never_started = answer["results"]
        self.assertEqual(
            (failed["backend"], failed["exit_code"], failed["error"]),
            ("codex", 1, "unexpected status 401 Unauthorized: Missing bearer authentication in header"),
        )
        self.assertGreaterEqual(failed["duration_ms"], 1000)
        self.assertEqual(
            (killed["backend"], killed["exit_code"], killed["error"]), ("gemini", -1, "canceled")
        )
        self.assertEqual(
            never_started,
            [
                {"backend": "claude", "exit_code": -1, "duration_ms": 0, "error": "canceled"},
                {"backend": "codex", "exit_code": -1, "duration_ms": 0, "error": "canceled"},
            ],
        )

        # Only the first two ever ran, and neither is running any more.
        self.assertEqual(
            sorted(record["stdin"] for record in self.runs()), sorted(task["prompt"] for task in tasks[:2])
        )
        await self.gone(self.run_of(tasks[0]["prompt"]))
        await self.gone(self.run_of(tasks[1]["prompt"]))


class ChainTests(NativeApiTestCase):
    """C{POST /api/v1/chain} (docs/design/native-api.md#chain)."""

    async def test_previous_output_feeds_next_step(self) -> None:
        """
        The second step's CLI receives the first step's answer in place of
        C{{{previous}}}; in the first step the placeholder is sent as written.
        """
        steps = [
            {
                "backend": "claude",
                "name": "ask",
                "prompt": "#fake-answer Paris\nCapital of France? {{previous}}",
            },
            {
                "backend": "gemini",
                "name": "poem",
                "prompt": "Write a poem about {{previous}}, then {{previous}}.",
            },
        ]
        answer = await self.post("/api/v1/chain", {"steps": steps})

        self.assertEqual((answer["total_steps"], answer["completed_steps"]), (2, 2))
        self.assertNotIn("failed_step", answer)
        self.assertEqual(
            [(r["step"], r["name"], r["backend"], r["exit_code"], r["output"]) for r in answer["results"]],
            [
                (1, "ask", "claude", 0, "Paris"),
                (2, "poem", "gemini", 0, "gemini answers: Write a poem about Paris, then Paris."),
            ],
        )
        [first] = self.runs("claude")
        [second] = self.runs("gemini")
        self.assertEqual(first["stdin"], steps[0]["prompt"])
        self.assertEqual(second["stdin"], "Write a poem about Paris, then Paris.")
        # Chains are ephemeral (claude is told not to keep the conversation).
        self.assertIn("--no-session-persistence", first["argv"])
        self.assertNotIn("session_id", answer["results"][0])


class ContinuedSessionTests(NativeApiTestCase):
    """
    C{session_id} on C{POST /api/v1/prompt} continues a session
    (docs/design/decisions.md#d3-session-continuation).
    """

    # Each turn its own process: the resume on the command line
    # (tests.integration.test_live_sessions continues live).
    server_config = {"server": {"shutdown_timeout_secs": 5, "live_idle_secs": 0}}

    async def continue_session(self, backend: str, native_id: str) -> dict[str, Any]:
        """
        Prompt C{backend}, whose fake reports C{native_id}, then continue
        the session by a prefix of its id.  Check what both answers and
        the session say; return the second run's record.
        """
        first_prompt = f"#fake session={native_id}\nremember the number 7"
        first = await self.post("/api/v1/prompt", {"backend": backend, "prompt": first_prompt})
        session_id = first["session_id"]
        self.assertEqual(first["exit_code"], 0, first)

        second_prompt = "what number was it?"
        second = await self.post("/api/v1/prompt", {"prompt": second_prompt, "session_id": session_id[:8]})
        self.assertEqual(
            {key: second[key] for key in ("session_id", "backend", "exit_code", "output")},
            {
                "session_id": session_id,
                "backend": backend,
                "exit_code": 0,
                "output": f"{backend} answers: {second_prompt}",
            },
        )

        session = await self.get(f"/api/v1/sessions/{session_id}")
        self.assertEqual(
            {key: session[key] for key in ("status", "turn_count", "initial_prompt")},
            {"status": "completed", "turn_count": 2, "initial_prompt": first_prompt},
        )
        # The same session was updated; no other was made.
        listing = await self.get("/api/v1/sessions")
        self.assertEqual([s["id"] for s in listing["sessions"]], [session_id])
        stored = json.loads(self.home.descendant([".clinvk", "sessions", f"{session_id}.json"]).getContent())
        self.assertEqual(stored["backend_session_id"], native_id)

        first_run = self.run_of(first_prompt)
        second_run = self.run_of(second_prompt)
        self.assertNotIn(native_id, first_run["argv"])
        self.assertFalse(any("number" in arg for arg in second_run["argv"]), second_run["argv"])
        self.assertEqual(second_run["cwd"], first_run["cwd"])
        return second_run

    async def test_claude(self) -> None:
        """The second claude run is C{claude --resume <native id> --print …}, prompt on stdin."""
        native_id = "2f0c5d8e-6b1a-4c3e-9d7f-0a1b2c3d4e5f"
        second_run = await self.continue_session("claude", native_id)
        self.assertEqual(second_run["argv"][:3], ["--resume", native_id, "--print"])

    async def test_codex(self) -> None:
        """The second codex run is C{codex exec … resume <thread id> … -}, prompt on stdin."""
        thread_id = "0199a213-81c0-7800-8aa1-bbab2a035a53"
        second_run = await self.continue_session("codex", thread_id)
        # The fake records the arguments after "exec".
        argv = second_run["argv"]
        self.assertEqual(argv[argv.index("resume") + 1], thread_id)
        self.assertEqual(argv[-1], "-")
