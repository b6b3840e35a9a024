"""
Failures with the real CLIs: the model API refusing, a stream that
breaks and is retried, a CLI that refuses to start, a run that outlives
its time, a client that goes away; and afterwards no process left.
"""

from __future__ import annotations

import functools
import json
import shutil
import tempfile
from typing import ClassVar

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

from clinvk.testing import model_server
from tests.integration._processes import group_reaper, reactor
from tests.integration._sdk_server import off_reactor
from tests.integration._server import Config, NDJSONClient
from tests.realcli._harness import RealCLITestCase, marked_processes

BACKENDS = ("claude", "codex", "gemini")


class APIErrorTests(RealCLITestCase):
    @off_reactor
    def test_refused_request(self) -> None:
        """A 400 from the model API fails the run with the API's message, on every backend."""
        for backend in BACKENDS:
            self.model.always(backend, model_server.failure(400, "Your request was malformed."))
            _, _, body = self.prompt(backend, "Fail please")
            self.assertNotEqual(body["exit_code"], 0, (backend, body))
            self.assertIn("Your request was malformed.", body["error"], backend)
            self.assertEqual(body["error"].count("Your request was malformed."), 1, (backend, body))

    @off_reactor
    def test_refused_stream(self) -> None:
        """A streamed run the API refuses ends with one error event carrying the API's message."""
        for backend in BACKENDS:
            self.model.always(backend, model_server.failure(400, "Your request was malformed."))
            _, _, raw = self.post_raw(
                "/api/v1/prompt",
                {"backend": backend, "prompt": "Fail please", "output_format": "stream-json"},
            )
            events = [json.loads(line) for line in raw.decode().splitlines() if line]
            errors = [event["content"]["message"] for event in events if event["type"] == "error"]
            self.assertTrue(errors, (backend, events))
            self.assertIn("Your request was malformed.", errors[-1], backend)


class RecoveryTests(RealCLITestCase):
    @off_reactor
    def test_dropped_stream_retried(self) -> None:
        """A stream that breaks before it completes is retried by Claude and Codex; the run succeeds."""
        for backend in ("claude", "codex"):
            self.model.script(
                backend, model_server.dropped("Half an ans", chunks=3, after=1), model_server.text("Whole.")
            )
            _, _, body = self.prompt(backend, "Try again")
            self.assertEqual((body["exit_code"], body.get("output")), (0, "Whole."), (backend, body))
            self.assertGreaterEqual(len(self.model.turns(backend)), 2, backend)

    @off_reactor
    def test_dropped_stream_fails_gemini(self) -> None:
        """
        Gemini 0.61 does not retry a stream that breaks after its first
        chunk: the run fails with what Gemini says, and no half answer.
        """
        self.model.script("gemini", model_server.dropped("Half an ans", chunks=3, after=1))
        _, _, body = self.prompt("gemini", "Try again")
        self.assertNotEqual(body["exit_code"], 0, body)
        self.assertTrue(body["error"], body)
        self.assertNotIn("Half", body.get("output", ""), body)


class RefusalToStartTests(RealCLITestCase):
    # Without the options that let codex run outside a git repository and
    # gemini in an untrusted folder.
    server_config: ClassVar[Config] = {
        "backends": {"codex": {"extra_flags": []}, "gemini": {"extra_flags": []}}
    }

    @off_reactor
    def test_codex_outside_git_repository(self) -> None:
        """Codex refuses a folder that is no git repository; clinvk says why."""
        # Not under the test's own folder, which lies in clinvk's repository.
        outside = tempfile.mkdtemp(prefix="clinvk-no-git-")
        self.addCleanup(shutil.rmtree, outside, True)
        _, _, body = self.prompt("codex", "Hello", workdir=outside)
        self.assertNotEqual(body["exit_code"], 0, body)
        self.assertIn("git", body["error"].lower(), body)
        self.assertEqual(self.model.turns("codex"), [])

    @off_reactor
    def test_gemini_untrusted_folder(self) -> None:
        """Gemini refuses an untrusted folder; clinvk says why."""
        _, _, body = self.prompt("gemini", "Hello")
        self.assertNotEqual(body["exit_code"], 0, body)
        self.assertIn("trust", body["error"].lower(), body)
        self.assertEqual(self.model.turns("gemini"), [])


class TimeoutTests(RealCLITestCase):
    server_config: ClassVar[Config] = {"unified_flags": {"command_timeout_secs": 3}}

    @off_reactor
    def test_run_outlives_its_time(self) -> None:
        """A CLI still waiting for the model when its time is up is stopped, with its whole group."""
        for backend in BACKENDS:
            self.model.script(backend, model_server.text("Too late.", first_byte_delay=120))
            _, _, body = self.prompt(backend, "Take your time")
            self.assertNotEqual(body["exit_code"], 0, (backend, body))
            self.assertIn("timed out", body["error"], backend)


class DisconnectTests(RealCLITestCase):
    def cli_processes(self) -> set[int]:
        """The live processes the server started, but for its group reaper."""
        return {
            pid for pid in marked_processes(self.token) if pid != self.server_pid and not group_reaper(pid)
        }

    def asked(self, backend: str) -> bool:
        """Whether C{backend}'s CLI has asked the model."""
        return bool(self.model.turns(backend))

    def test_client_goes_away(self) -> Deferred[None]:
        """A client that leaves a stream mid-way stops the CLI and everything it started."""
        return Deferred.fromCoroutine(self._goes_away())

    async def _goes_away(self) -> None:
        for backend in BACKENDS:
            self.model.script(backend, model_server.text("Never seen.", first_byte_delay=120))
            client = NDJSONClient.post(
                "/api/v1/prompt",
                self.port,
                # One process per turn (tests.realcli.test_live interrupts a live one).
                {"backend": backend, "prompt": "Wait", "output_format": "stream-json", "ephemeral": True},
            )
            await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), client)
            await client.wait_for("init")
            await self.eventually(functools.partial(self.asked, backend), within=60)
            self.assertTrue(self.cli_processes(), backend)
            client.abort()
            await client.closed
            await self.eventually(lambda: not self.cli_processes(), within=30)
