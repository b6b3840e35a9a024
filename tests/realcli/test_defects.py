"""
The defects that only the real CLIs showed, each proven fixed against
them (issue 15): what the fakes did not print, clinvk mishandled.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import anthropic
import openai

from twisted.internet.defer import Deferred

from clinvk.testing import model_server
from tests.integration._processes import reactor
from tests.integration._sdk_server import off_reactor
from tests.integration._server import Config, NDJSONClient
from tests.realcli._harness import MODELS, RealCLITestCase

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def stream_events(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in raw.decode().splitlines() if line]


class CodexTests(RealCLITestCase):
    @off_reactor
    def test_recovered_stream_is_no_failure(self) -> None:
        """
        A stream that drops and is retried makes codex print a top-level
        C{error} ("Reconnecting... 1/5") before it answers and exits 0:
        the run succeeded, on every route.
        """
        self.model.script(
            "codex", model_server.dropped("Lost.", chunks=4, after=1), model_server.text("Kept.")
        )
        _, _, body = self.prompt("codex", "Try hard")
        self.assertEqual((body["exit_code"], body["output"], body.get("error")), (0, "Kept.", None), body)

        self.model.script(
            "codex", model_server.dropped("Lost.", chunks=4, after=1), model_server.text("Kept.")
        )
        _, _, raw = self.post_raw(
            "/api/v1/prompt", {"backend": "codex", "prompt": "Try hard", "output_format": "stream-json"}
        )
        events = stream_events(raw)
        failures = [e for e in events if e["type"] == "error" and not e["content"].get("warning")]
        self.assertEqual(failures, [], events)
        self.assertEqual(events[-1]["type"], "done", events)

        self.model.script(
            "codex", model_server.dropped("Lost.", chunks=4, after=1), model_server.text("Kept.")
        )
        completion = self.openai_client().chat.completions.create(
            model=MODELS["codex"], messages=[{"role": "user", "content": "Try hard"}]
        )
        self.assertEqual(completion.choices[0].message.content, "Kept.")

        self.model.script(
            "codex", model_server.dropped("Lost.", chunks=4, after=1), model_server.text("Kept.")
        )
        chunks = list(
            self.openai_client().chat.completions.create(
                model=MODELS["codex"], messages=[{"role": "user", "content": "Try hard"}], stream=True
            )
        )
        self.assertEqual("".join(c.choices[0].delta.content or "" for c in chunks if c.choices), "Kept.")
        self.assertEqual([c.choices[0].finish_reason for c in chunks if c.choices][-1], "stop")

    @off_reactor
    def test_resumed_thread_usage_is_not_summed_twice(self) -> None:
        """
        On a resumed thread codex reports the thread's running total: three
        turns of 20 input tokens are 60 for the session, 20 for each turn.
        """
        for number in range(3):
            self.model.script("codex", model_server.text(f"Turn {number}.", input_tokens=20))
        _, _, first = self.prompt("codex", "one")
        _, _, second = self.prompt("codex", "two", session_id=first["session_id"])
        _, _, third = self.prompt("codex", "three", session_id=first["session_id"])
        self.assertEqual(
            [turn["token_usage"]["input_tokens"] for turn in (first, second, third)], [20, 20, 20]
        )
        _, _, session = self.get_json(f"/api/v1/sessions/{first['session_id']}")
        self.assertEqual(session["token_usage"]["input_tokens"], 60, session)

    @off_reactor
    def test_model_metadata_notice_is_not_a_warning(self) -> None:
        """
        Codex says on every run with a model outside its catalogue that it
        lacks the model's metadata; that is no event of the client's.
        """
        self.model.script("codex", model_server.text("Fine."))
        _, _, raw = self.post_raw(
            "/api/v1/prompt",
            {
                "backend": "codex",
                "prompt": "Hi",
                "model": "clinvk-test-model",
                "output_format": "stream-json",
            },
        )
        events = stream_events(raw)
        self.assertEqual([e for e in events if e["type"] == "error"], [], events)
        self.assertIn("Fine.", [e["content"].get("text") for e in events if e["type"] == "message"])


class GeminiTests(RealCLITestCase):
    @off_reactor
    def test_json_failure_is_the_cli_error(self) -> None:
        """
        A failed gemini run writes warnings and a stack trace to stderr
        before its JSON error: the error is the JSON's message, nothing
        of the stack trace is the output, and the session keeps gemini's
        session id.
        """
        self.model.always("gemini", model_server.failure(400, "The request was refused."))
        _, _, body = self.prompt("gemini", "Break")
        self.assertNotEqual(body["exit_code"], 0, body)
        self.assertEqual(body["error"], "The request was refused.")
        self.assertFalse(body.get("output"), body)
        stored = json.loads(
            next((Path(self.home.path) / ".clinvk" / "sessions").glob(f"{body['session_id']}*")).read_text()
        )
        self.assertTrue(stored["backend_session_id"], stored)


class GeminiStatelessTests(RealCLITestCase):
    """The compatibility APIs made stateless (docs/design/conversations.md#conversation-header)."""

    server_config: ClassVar[Config] = {"server": {"compat_sessions": False}}

    def test_compat_answer_does_not_wait_for_cleanup(self) -> Deferred[None]:
        """
        Stateless, the compatibility routes end a gemini answer without
        waiting for the clean-up of its ephemeral session
        (C{--delete-session}), which here waits until the test has the
        whole answer.
        """
        return Deferred.fromCoroutine(self._cleanup_after_answer())

    def extra_environment(self) -> dict[str, str]:
        # A gemini first on PATH that holds --delete-session until the
        # gate file exists, and runs the real gemini otherwise.
        wrapper_dir = Path(self.mktemp()).absolute()
        wrapper_dir.mkdir()
        self.gate_file = wrapper_dir / "gate"
        self.cleaned_file = wrapper_dir / "cleaned"
        wrapper = wrapper_dir / "gemini"
        wrapper.write_text(
            textwrap.dedent(
                f"""\
                #!/bin/sh
                case " $* " in
                *" --delete-session "*)
                    while [ ! -e '{self.gate_file}' ]; do sleep 0.05; done
                    '{self.clis}/gemini' "$@"; status=$?
                    touch '{self.cleaned_file}'
                    exit $status;;
                esac
                exec '{self.clis}/gemini' "$@"
                """
            )
        )
        wrapper.chmod(0o755)
        return {"PATH": f"{wrapper_dir}{os.pathsep}{self.clis}{os.pathsep}{os.environ.get('PATH', '')}"}

    async def _cleanup_after_answer(self) -> None:
        from twisted.internet.threads import deferToThread

        self.model.script("gemini", model_server.text("All of it.", chunks=2))

        def ask() -> str:
            chunks = list(
                self.openai_client().chat.completions.create(
                    model=MODELS["gemini"], messages=[{"role": "user", "content": "Everything"}], stream=True
                )
            )
            return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)

        self.assertEqual(await deferToThread(ask), "All of it.")
        self.assertFalse(self.cleaned_file.exists())
        self.gate_file.touch()
        await self.eventually(self.cleaned_file.exists, within=60)


class CompatErrorTests(RealCLITestCase):
    @off_reactor
    def test_error_text_is_said_once(self) -> None:
        """A CLI failure reaches the SDK once, not as "X: X", and without colour codes."""
        for backend in ("claude", "codex", "gemini"):
            self.model.always(backend, model_server.failure(400, "Refused by the model."))
        for backend in ("claude", "codex", "gemini"):
            with self.assertRaises(openai.APIStatusError) as raised:
                self.openai_client().chat.completions.create(
                    model=MODELS[backend], messages=[{"role": "user", "content": "Fail"}]
                )
            message = raised.exception.message
            self.assertEqual(message.count("Refused by the model."), 1, (backend, message))
            self.assertIsNone(ANSI.search(message), (backend, message))

    @off_reactor
    def test_anthropic_error_text_is_said_once(self) -> None:
        self.model.always("claude", model_server.failure(400, "Refused by the model."))
        with self.assertRaises(anthropic.APIStatusError) as raised:
            self.anthropic_client().messages.create(
                model="claude", max_tokens=10, messages=[{"role": "user", "content": "Fail"}]
            )
        message = raised.exception.message
        self.assertEqual(message.count("Refused by the model."), 1, message)


class AdmissionTests(RealCLITestCase):
    server_config: ClassVar[Config] = {"server": {"max_concurrent_runs": 1, "max_queued_runs": 0}}

    def test_refused_stream_is_429(self) -> Deferred[None]:
        """
        An NDJSON prompt refused for want of a run slot is a 429 with
        C{Retry-After}, as every other refused request, not a 200 with
        an error in the stream.
        """
        return Deferred.fromCoroutine(self._refused())

    async def _refused(self) -> None:
        self.model.script("claude", model_server.text("Slow.", first_byte_delay=60))
        body = {"backend": "claude", "prompt": "Hold the slot", "output_format": "stream-json"}
        holder = NDJSONClient.post("/api/v1/prompt", self.port, body)
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        await connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), holder)
        await holder.wait_for("init")
        from twisted.internet.threads import deferToThread

        status, headers, raw = await deferToThread(self.post_raw, "/api/v1/prompt", body)
        self.assertEqual(status, 429, raw)
        self.assertIn("retry-after", headers)
        holder.abort()
        await holder.closed
