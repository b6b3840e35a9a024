"""
Live sessions end to end with the fake CLIs (docs/design/live-sessions.md,
docs/design/decisions.md#d6-no-orphans): the real server, real processes,
each fake in its long-lived mode.  A session's turns go to one process; a
process that is killed or evicted is replaced by one that resumes the
conversation; a client that leaves interrupts its turn; and neither
SIGTERM nor SIGKILL of the server leaves a live process behind.  A new
session's first turn takes a process started ahead, where one is kept warm.
"""

from __future__ import annotations

import functools
import json
import os
import signal
from typing import Any

from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from tests.integration._processes import alive, get_bytes, process_exit, reactor
from tests.integration._server import KILL_GRACE, NDJSONClient
from tests.integration.test_native_api import NativeApiTestCase

BACKENDS = ("claude", "codex", "gemini")


# gemini runs live only when told to skip its folder-trust check, which its
# long-lived mode does not make (docs/design/live-sessions.md#live-turns).
GEMINI_LIVE: dict[str, Any] = {"backends": {"gemini": {"extra_flags": ["--skip-trust"]}}}


class _LiveTestCase(NativeApiTestCase):
    server_config = {"server": {"shutdown_timeout_secs": 5}, **GEMINI_LIVE}

    async def turn(self, backend: str, prompt: str, session_id: str = "") -> dict[str, Any]:
        body: dict[str, Any] = {"backend": backend, "prompt": prompt}
        if session_id:
            body["session_id"] = session_id
        answer: dict[str, Any] = await self.post("/api/v1/prompt", body)
        self.assertEqual(answer["exit_code"], 0, answer)
        self.assertEqual(answer["output"], f"{backend} answers: {prompt}")
        return answer

    def stored(self, session_id: str) -> dict[str, Any]:
        """The session's record as stored on disk."""
        path = self.home.descendant([".clinvk", "sessions", f"{session_id}.json"])
        record: dict[str, Any] = json.loads(path.getContent())
        return record


class ContinuationTests(_LiveTestCase):
    """A session's turns in one live process, and its conversation kept when the process goes."""

    async def test_turns_in_one_process(self) -> None:
        """On every backend: the second turn is the live process's second turn."""
        for backend in BACKENDS:
            first = await self.turn(backend, f"{backend} one")
            await self.turn(backend, f"{backend} two", first["session_id"])
            one, two = self.run_of(f"{backend} one"), self.run_of(f"{backend} two")
            self.assertEqual((two["pid"], two["turn"]), (one["pid"], 2), backend)
            self.assertTrue(alive(one["pid"]), backend)
            session = await self.get(f"/api/v1/sessions/{first['session_id']}")
            self.assertEqual((session["status"], session["turn_count"]), ("completed", 2), backend)

    async def test_killed_process_resumed(self) -> None:
        """
        On every backend: a live process killed between turns is replaced
        at the next turn by one that resumes the session's conversation.
        """
        for backend in BACKENDS:
            first = await self.turn(backend, f"{backend} before")
            before = self.run_of(f"{backend} before")
            os.killpg(before["pgid"], signal.SIGKILL)
            await process_exit(before["pid"])
            await self.turn(backend, f"{backend} after", first["session_id"])
            after = self.run_of(f"{backend} after")
            self.assertNotEqual(after["pid"], before["pid"], backend)
            stored = self.stored(first["session_id"])
            self.assertTrue(stored["backend_session_id"], backend)
            # The native conversation continues (gemini's in the next
            # minute only: before, that turn ran cold, with --resume).
            resumed = after.get("resumed") or after["argv"][after["argv"].index("--resume") + 1]
            self.assertEqual(resumed, stored["backend_session_id"], backend)


class EvictionTests(_LiveTestCase):
    """With room for one live process, another session's turn evicts the idle one."""

    server_config = {
        "server": {"shutdown_timeout_secs": 5, "max_live_processes": 1},
        **GEMINI_LIVE,
    }

    async def test_evicted_and_resumed(self) -> None:
        first = await self.turn("claude", "first conversation")
        await self.turn("claude", "second conversation")
        evicted = self.run_of("first conversation")
        await process_exit(evicted["pid"])
        await self.turn("claude", "first again", first["session_id"])
        again = self.run_of("first again")
        self.assertNotEqual(again["pid"], evicted["pid"])
        stored = self.stored(first["session_id"])
        self.assertEqual((again["resumed"], again["turn"]), (stored["backend_session_id"], 1))


class DisconnectTests(_LiveTestCase):
    """A client that leaves in the middle of a live turn."""

    def asked(self, text: str) -> bool:
        """Whether a fake has been sent a turn ending with C{text}."""
        return any(run["stdin"].endswith(text) for run in self.runs())

    async def test_disconnect_interrupts(self) -> None:
        """On every backend: the turn is interrupted, the process kept, and the next turn served by it."""
        for backend in BACKENDS:
            first = await self.turn(backend, f"{backend} ready")
            client = NDJSONClient.post(
                "/api/v1/prompt",
                self.port,
                {
                    "prompt": f"#fake hang\n{backend} never answered",
                    "session_id": first["session_id"],
                    "output_format": "stream-json",
                },
            )
            await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), client)
            await self.eventually(functools.partial(self.asked, f"{backend} never answered"))
            client.abort()
            await client.closed

            async def released(session_id: str = first["session_id"]) -> dict[str, Any] | None:
                session: dict[str, Any] = await self.get(f"/api/v1/sessions/{session_id}")
                return None if session["status"] == "active" else session

            self.assertEqual((await self.found_eventually(released))["status"], "error")
            await self.turn(backend, f"{backend} still here", first["session_id"])
            ready, still = self.run_of(f"{backend} ready"), self.run_of(f"{backend} still here")
            self.assertEqual((still["pid"], still["turn"]), (ready["pid"], 3), backend)


class StopTests(_LiveTestCase):
    """No live process outlives its server (docs/design/decisions.md#d6-no-orphans)."""

    async def live_processes(self) -> list[int]:
        """An idle live process of every backend, and a claude one in a turn that never ends."""
        for backend in BACKENDS:
            await self.turn(backend, f"{backend} idle")
        client = NDJSONClient.post(
            "/api/v1/prompt",
            self.port,
            {"backend": "claude", "prompt": "#fake hang\nbusy", "output_format": "stream-json"},
        )
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), client)
        await self.eventually(lambda: any(r["stdin"].endswith("busy") for r in self.runs("claude")))
        pids = sorted({record["pid"] for record in self.runs()})
        self.assertEqual(len(pids), 4)
        self.assertTrue(all(alive(pid) for pid in pids))
        return pids

    async def test_sigterm(self) -> None:
        """SIGTERM: the server exits 0 and every live process, idle or busy, is gone."""
        pids = await self.live_processes()
        self.signal_server("TERM")
        signalled = reactor.seconds()
        self.assertEqual(await self.server.ended, 0, self.server_output())
        await self.all_exit(pids, since=signalled, within=5 + 2 * KILL_GRACE + 3)

    async def test_sigkill(self) -> None:
        """SIGKILL: every live process, idle or busy, is gone within the kill grace."""
        pids = await self.live_processes()
        self.signal_server("KILL")
        killed = reactor.seconds()
        self.assertEqual(await self.server.ended, -signal.SIGKILL)
        await self.all_exit(pids, since=killed, within=KILL_GRACE + 1)


class WarmTests(_LiveTestCase):
    """Processes kept warm for new conversations (docs/design/live-sessions.md#warm-pool)."""

    server_config = {
        "server": {"shutdown_timeout_secs": 5, "metrics_enabled": True},
        "backends": {
            "claude": {"warm": 1},
            "codex": {"warm": 1},
            "gemini": {"warm": 1, "extra_flags": ["--skip-trust"]},
        },
    }

    def waiting(self) -> dict[str, int]:
        """The pid of each backend's live process that is running and has served no turn."""
        return {
            record["name"]: record["pid"]
            for record in self.records_of()
            if record.get("live") and not record.get("turns") and alive(record["pid"])
        }

    async def test_taken_and_replaced(self) -> None:
        """
        On every backend: a new session's first turn is the first turn of
        the process started ahead, a replacement starts, and SIGTERM
        leaves none of them behind.
        """
        await self.eventually(lambda: len(self.waiting()) == 3)
        warm = self.waiting()
        for backend in BACKENDS:
            await self.turn(backend, f"{backend} new")
            run = self.run_of(f"{backend} new")
            self.assertEqual((run["pid"], run["turn"]), (warm[backend], 1), backend)
        await self.eventually(lambda: len(self.waiting()) == 3)
        replacements = self.waiting()
        self.assertFalse(set(replacements.values()) & set(warm.values()))
        code, body = await get_bytes(self.url("/metrics"))
        self.assertEqual(code, 200)
        self.assertIn(b"\nclinvk_live_warm_taken_total 3.0\n", body)
        self.assertIn(b"\nclinvk_live_cold_starts_total 0.0\n", body)
        self.assertIn(b"\nclinvk_warm_processes 3.0\n", body)
        pids = [*warm.values(), *replacements.values()]
        self.signal_server("TERM")
        signalled = reactor.seconds()
        self.assertEqual(await self.server.ended, 0, self.server_output())
        await self.all_exit(pids, since=signalled, within=5 + 2 * KILL_GRACE + 3)
