"""
Live sessions with the real CLIs (docs/design/live-sessions.md): the turns
of a conversation run in one long-lived process; a process ended by
eviction, by a kill or by its client going away loses nothing of the
conversation; a new conversation takes a process started ahead where
one is kept warm; and with live sessions off the same routes run one
process per turn.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any, ClassVar

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from clinvk.testing import model_server
from tests.integration._processes import group_reaper, reactor
from tests.integration._sdk_server import off_reactor
from tests.integration._server import Config, NDJSONClient
from tests.realcli._harness import HEADLESS_CONFIG, RealCLITestCase, marked_processes

METRICS: Config = {"server": {"metrics_enabled": True}}


class _Conversations(RealCLITestCase):
    """Helpers to hold conversations with one backend, L{backend}."""

    backend: ClassVar[str]
    server_config: ClassVar[Config] = METRICS

    def turn(self, prompt: str, session_id: str = "", **fields: Any) -> dict[str, Any]:
        """One successful native turn (blocking); its body."""
        if session_id:
            fields["session_id"] = session_id
        status, _, body = self.prompt(self.backend, prompt, **fields)
        self.assertEqual(status, 200, body)
        self.assertEqual(body["exit_code"], 0, body)
        return dict(body)

    def streamed_turn(self, prompt: str, session_id: str) -> str:
        """One successful NDJSON turn (blocking); the text it streamed."""
        status, _, raw = self.post_raw(
            "/api/v1/prompt",
            {
                "backend": self.backend,
                "prompt": prompt,
                "session_id": session_id,
                "output_format": "stream-json",
            },
        )
        self.assertEqual(status, 200, raw)
        events = [json.loads(line) for line in raw.decode().splitlines() if line]
        kinds = [event["type"] for event in events]
        self.assertEqual((kinds[0], kinds[-1]), ("init", "done"), events)
        self.assertNotIn("error", kinds, events)
        messages = [event["content"] for event in events if event["type"] == "message"]
        # Deltas where the CLI streams them (cold codex sends whole messages).
        partial = [message["text"] for message in messages if message.get("is_partial")]
        return "".join(partial or [message["text"] for message in messages])

    def last_request(self) -> str:
        """The body of the model request the backend's CLI made last, as JSON text."""
        return json.dumps(self.model.turns(self.backend)[-1].body)

    def metric(self, name: str) -> float:
        """A metric's value on C{/metrics} (blocking)."""
        status, _, raw = self.get_raw("/metrics")
        self.assertEqual(status, 200)
        for line in raw.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"no metric {name}")

    def stored_by_cli(self, text: str) -> bool:
        """
        Whether the CLI's own store of conversations (under the test's
        C{HOME}) holds C{text}: a CLI may write a turn down a moment after
        it answered it (claude, about 80 ms).
        """
        for path in Path(self.home.path).rglob("*.json*"):
            try:
                if text in path.read_text(errors="replace"):
                    return True
            except OSError:
                continue
        return False

    def cli_groups(self) -> set[int]:
        """The process groups of the CLIs the server runs (not its group reaper)."""
        groups = set()
        for pid in marked_processes(self.token):
            if pid == self.server_pid or group_reaper(pid):
                continue
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except FileNotFoundError:
                # It ended since it was listed.
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == self.server_pid:
                groups.add(int(fields[2]))
        return groups


class LiveMixin:
    """A conversation's turns in one live process (mixed into a L{_Conversations})."""

    def session_status(self: Any, session_id: str) -> str:
        """The session's status, read from the store's file (it is updated when a turn ends)."""
        path = Path(self.home.path) / ".clinvk" / "sessions" / f"{session_id}.json"
        try:
            return str(json.loads(path.read_text()).get("status"))
        except (OSError, ValueError):
            return ""

    @off_reactor
    def test_follow_ups(self: Any) -> None:
        """
        The second and third turns go to the process the first started
        (JSON, then NDJSON): the model sees the whole conversation, and one
        CLI start served three turns.
        """
        self.model.script(
            self.backend,
            model_server.text("Seven."),
            model_server.text("Fourteen."),
            model_server.text("Twenty-eight.", chunks=3),
        )
        first = self.turn("Pick a number")
        session = first["session_id"]
        self.assertEqual(self.turn("Double it", session)["output"], "Fourteen.")
        self.assertIn("Pick a number", self.last_request())
        self.assertIn("Seven.", self.last_request())
        self.assertEqual(self.streamed_turn("Double it again", session), "Twenty-eight.")
        self.assertIn("Fourteen.", self.last_request())
        self.assertEqual(self.metric("clinvk_live_cold_starts_total"), 1)
        self.assertEqual(self.metric("clinvk_live_reused_turns_total"), 2)
        self.assertEqual(self.metric("clinvk_live_processes"), 1)
        _, _, record = self.get_json(f"/api/v1/sessions/{session}")
        self.assertEqual(record["turn_count"], 3)
        _, _, backends = self.get_json("/api/v1/backends")
        self.assertIn({"name": self.backend, "available": True, "live": "live"}, backends["backends"])

    def test_killed_process(self: Any) -> Deferred[None]:
        """
        A live process killed between turns loses nothing that the CLI
        had stored: the next turn resumes the conversation, in a new
        process (live, or cold for gemini in the minute of the last turn).
        """
        return Deferred.fromCoroutine(self._killed())

    async def _killed(self: Any) -> None:
        self.model.script(self.backend, model_server.text("Blue-7319."), model_server.text("It was blue."))
        session = (await deferToThread(self.turn, "Pick a colour"))["session_id"]
        await self.eventually(lambda: self.stored_by_cli("Blue-7319."))
        groups = self.cli_groups()
        self.assertEqual(len(groups), 1, groups)
        for group in groups:
            os.killpg(group, signal.SIGKILL)
        await self.eventually(lambda: not self.cli_groups())
        after = await deferToThread(self.turn, "Which colour?", session)
        self.assertEqual(after["output"], "It was blue.")
        self.assertIn("Pick a colour", self.last_request())
        self.assertIn("Blue-7319.", self.last_request())

    @off_reactor
    def test_deleted_session(self: Any) -> None:
        """Deleting a session ends its live process."""
        self.model.script(self.backend, model_server.text("Hello."))
        session = self.turn("Hello")["session_id"]
        self.assertEqual(self.metric("clinvk_live_processes"), 1)
        status, _, _ = self.request_raw("DELETE", f"/api/v1/sessions/{session}", None, {})
        self.assertEqual(status, 200)
        self.assertEqual(self.metric("clinvk_live_processes"), 0)

    def test_client_goes_away(self: Any) -> Deferred[None]:
        """
        A client that leaves in the middle of a turn interrupts it: the
        process stays, and serves the next turn of the conversation.
        """
        return Deferred.fromCoroutine(self._goes_away())

    async def _goes_away(self: Any) -> None:
        self.model.script(self.backend, model_server.text("Ready."))
        first = await deferToThread(self.turn, "Get ready")
        self.model.script(
            self.backend,
            model_server.text("Never seen.", first_byte_delay=120),
            model_server.text("Still here."),
        )
        client = NDJSONClient.post(
            "/api/v1/prompt",
            self.port,
            {
                "backend": self.backend,
                "prompt": "Take your time",
                "session_id": first["session_id"],
                "output_format": "stream-json",
            },
        )
        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), client)
        # (gemini's init event comes with its first token: wait for the model to be asked.)
        turns = len(self.model.turns(self.backend))
        await self.eventually(lambda: len(self.model.turns(self.backend)) > turns, within=60)
        groups = self.cli_groups()
        client.abort()
        await client.closed
        # The interrupted turn is recorded as failed, then the session is
        # free: until then a turn is refused (409), and asked again.
        await self.eventually(lambda: self.session_status(first["session_id"]) == "error", within=30)
        asked = {"session_id": first["session_id"]}
        while (answer := await deferToThread(self.prompt, self.backend, "Are you there?", **asked))[0] == 409:
            await deferLater(reactor, 0.05)
        status, _, after = answer
        self.assertEqual((status, after["exit_code"], after["output"]), (200, 0, "Still here."), after)
        self.assertEqual(self.cli_groups(), groups)


class EvictedMixin:
    """Eviction with room for one live process (mixed into a L{_Conversations})."""

    server_config: ClassVar[Config] = {"server": {"metrics_enabled": True, "max_live_processes": 1}}

    @off_reactor
    def test_evicted_process(self: Any) -> None:
        """A conversation whose process was evicted for another resumes with its whole history."""
        self.model.script(
            self.backend,
            model_server.text("Red."),
            model_server.text("Green."),
            model_server.text("You said red."),
        )
        first = self.turn("Conversation one: pick red")["session_id"]
        self.turn("Conversation two: pick green")
        self.assertEqual(self.metric("clinvk_live_evicted_total"), 1)
        self.assertEqual(self.turn("What did you pick?", first)["output"], "You said red.")
        self.assertIn("pick red", self.last_request())
        self.assertNotIn("pick green", self.last_request())
        # gemini resumes cold in the UTC minute of the last turn (docs/design/live-sessions.md#live-gemini),
        # evicting nothing.
        expected = {1.0, 2.0} if self.backend == "gemini" else {2.0}
        self.assertIn(self.metric("clinvk_live_evicted_total"), expected)


class WarmMixin:
    """One process kept warm for new conversations (mixed into a L{_Conversations})."""

    def config_layers(self: Any) -> list[Config]:
        headless = HEADLESS_CONFIG["backends"].get(self.backend, {})
        return [*super().config_layers(), {"backends": {self.backend: {**headless, "warm": 1}}}]  # type: ignore[misc]

    @off_reactor
    def test_warm_new_conversation(self: Any) -> None:
        """
        A new session's first turn goes to the process started with the
        server, which then serves the follow-up; a replacement waits for
        the next new conversation.
        """
        self.model.script(self.backend, model_server.text("Seven."), model_server.text("Fourteen."))
        [warm] = self.cli_groups()
        self.assertEqual(self.metric("clinvk_warm_processes"), 1)
        session = self.turn("Pick a number")["session_id"]
        self.assertEqual(self.turn("Double it", session)["output"], "Fourteen.")
        self.assertIn("Seven.", self.last_request())
        self.assertEqual(self.metric("clinvk_live_warm_taken_total"), 1)
        self.assertEqual(self.metric("clinvk_live_cold_starts_total"), 0)
        self.assertEqual(self.metric("clinvk_live_reused_turns_total"), 1)
        self.assertEqual(self.metric("clinvk_warm_processes"), 1)
        groups = self.cli_groups()
        self.assertEqual(len(groups), 2)
        self.assertIn(warm, groups)


class ColdMixin:
    """The same session routes with live sessions off: one process per turn (mixed into a L{_Conversations})."""

    server_config: ClassVar[Config] = {"server": {"metrics_enabled": True, "live_idle_secs": 0}}

    @off_reactor
    def test_cold_turns(self: Any) -> None:
        """Every turn starts the CLI afresh and resumes its conversation; no process stays."""
        self.model.script(self.backend, model_server.text("Seven."), model_server.text("Fourteen.", chunks=2))
        session = self.turn("Pick a number")["session_id"]
        self.assertEqual(self.cli_groups(), set())
        self.assertEqual(self.streamed_turn("Double it", session), "Fourteen.")
        self.assertIn("Pick a number", self.last_request())
        self.assertEqual(self.metric("clinvk_live_cold_starts_total"), 0)
        _, _, backends = self.get_json("/api/v1/backends")
        self.assertIn(
            {"name": self.backend, "available": True, "live": "off: server.live_idle_secs is 0"},
            backends["backends"],
        )


class ClaudeLiveTests(LiveMixin, _Conversations):
    backend = "claude"


class CodexLiveTests(LiveMixin, _Conversations):
    backend = "codex"


class GeminiLiveTests(LiveMixin, _Conversations):
    backend = "gemini"


class ClaudeEvictedTests(EvictedMixin, _Conversations):
    backend = "claude"


class CodexEvictedTests(EvictedMixin, _Conversations):
    backend = "codex"


class GeminiEvictedTests(EvictedMixin, _Conversations):
    backend = "gemini"


class ClaudeColdTests(ColdMixin, _Conversations):
    backend = "claude"


class CodexColdTests(ColdMixin, _Conversations):
    backend = "codex"


class GeminiColdTests(ColdMixin, _Conversations):
    backend = "gemini"


class ClaudeWarmTests(WarmMixin, _Conversations):
    backend = "claude"


class CodexWarmTests(WarmMixin, _Conversations):
    backend = "codex"


class GeminiWarmTests(WarmMixin, _Conversations):
    backend = "gemini"
