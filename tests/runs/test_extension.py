"""
A fourth backend, made in this test: a module C{clinvk.backends.echo}
whose C{backend} provides L{IBackend}, and its name added to
L{clinvk.config.BACKEND_NAMES}.  With no other change to clinvk it has a
configuration section, passes pre-flight, runs, streams, and is known to
C{clinvk doctor}'s checks and to the compatibility APIs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.filepath import FilePath
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from clinvk import config as config_module
from clinvk.backends import build_backends, events
from clinvk.backends.availability import BackendAvailability
from clinvk.backends.headless import headless_needs
from clinvk.backends.options import prompt_with_system, resolve_model
from clinvk.compat.models import openai_backend, run_model
from clinvk.config import BackendConfig, config_from_mapping, config_schema
from clinvk.interfaces import IBackend, IStreamParser
from clinvk.model import (
    HeadlessNeed,
    ParsedResponse,
    RunFileMaker,
    RunRequest,
    TokenUsage,
    UnifiedEvent,
    UnifiedOptions,
)
from clinvk.runs.installed import InstalledCLI
from clinvk.runs.runtime import BackendRuntime, EventChannel
from clinvk.testing.reactor import FakeProcessReactor
from tests.backends.test_backends import install_module
from tests.helpers import fake_which, started_supervisor


@implementer(IStreamParser)
class EchoStreamParser:
    """One JSON object a line: C{{"text": ...}}, then C{{"done": {"in": ..., "out": ...}}}."""

    def feed(self, line: str, sequence: int) -> list[UnifiedEvent]:
        data = json.loads(line)
        if "done" in data:
            return [events.done(sequence, TokenUsage(data["done"]["in"], data["done"]["out"]))]
        return [events.message(data["text"], sequence)]


@implementer(IBackend)
class EchoBackend:
    """A CLI that answers with what it was told."""

    name = "echo"
    aliases: Mapping[str, str] = {"fast": "echo-small"}
    model_markers = ("echo",)
    default_for_compat = False
    streams_tokens = False
    supports_allowed_tools = False
    proven_version = "1.0.0"
    merges_stderr = False
    reports_running_usage = False
    structured_output = False
    client_tools = False
    allowed_flags = frozenset({"--loud"})

    def command(self, executable: str, options: UnifiedOptions, resume_id: str) -> list[str]:
        argv = [executable]
        if options.model:
            argv += ["--model", resolve_model(self, options.model)]
        if options.output_format == "stream-json":
            argv.append("--lines")
        return argv + list(options.extra)

    def stdin_text(self, options: UnifiedOptions, prompt: str) -> str:
        return prompt_with_system(options, prompt)

    def run_files(self, options: UnifiedOptions) -> Mapping[str, bytes | RunFileMaker]:
        return {}

    def run_environment(self, options: UnifiedOptions) -> Mapping[str, str]:
        return {}

    def fork_flags(self, message_id: str) -> tuple[str, ...]:
        return ()

    def parse_response(self, raw: str) -> ParsedResponse | None:
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return ParsedResponse(content=data["answer"], session_id=data["session"])

    def text_fallback(self, raw: str) -> str:
        return raw

    def stream_parser(self) -> IStreamParser:
        return EchoStreamParser()

    def cleanup_command(self, executable: str, native_id: str) -> list[str] | None:
        return None

    def session_file_roots(self, home: str) -> Sequence[str]:
        return ()

    def failure_text(self, stderr: str) -> str:
        return stderr.removeprefix("echo: ")

    def headless_needs(
        self, section: BackendConfig, cwd: str, environ: Mapping[str, str], home: str
    ) -> Sequence[HeadlessNeed]:
        return [
            HeadlessNeed(self.name, "a voice", "--loud" in section.extra_flags, "backends.echo.extra_flags")
        ]


class FourthBackendTests(SynchronousTestCase):
    """The echo backend, registered by its module and its name."""

    def setUp(self) -> None:
        install_module(self, "echo", EchoBackend())
        self.patch(config_module, "BACKEND_NAMES", (*config_module.BACKEND_NAMES, "echo"))
        self.config = config_from_mapping(
            {"backends": {"echo": {"model": "fast", "system_prompt": "Repeat.", "extra_flags": ["--loud"]}}},
            {},
            source=None,
        )
        self.backends = build_backends()
        self.reactor = FakeProcessReactor()
        self.home = FilePath(self.mktemp())
        self.home.makedirs()
        self.runtime = BackendRuntime(
            config=self.config,
            backends=self.backends,
            supervisor=started_supervisor(self.reactor),
            availability=BackendAvailability(self.reactor, which=fake_which({"echo"})),
            clock=self.reactor,
            environ={"PATH": "/usr/local/bin"},
            home=self.home.path,
        )

    def test_registered(self) -> None:
        """It is in the registry, and its configuration section is a known, validated one."""
        self.assertEqual(list(self.backends), ["claude", "codex", "echo", "gemini"])
        self.assertEqual(self.config.unknown_keys, ())
        self.assertEqual(
            self.config.backends.get("echo"),
            BackendConfig(
                model="fast",
                allowed_tools="",
                approval_mode="",
                sandbox_mode="",
                extra_flags=("--loud",),
                enabled=True,
                system_prompt="Repeat.",
                live=True,
                warm=0,
            ),
        )
        self.assertIn("echo", config_schema()["properties"]["backends"]["properties"])

    def test_preflight(self) -> None:
        """Its flags are its own; the unknown backend's message lists it."""
        problem = self.successResultOf(
            Deferred.fromCoroutine(
                self.runtime.run(RunRequest(backend="echo", prompt="p", extra=["--quiet"]))
            )
        )
        self.assertEqual(problem.error, "flag not allowed for echo: --quiet")
        unknown = self.successResultOf(
            Deferred.fromCoroutine(self.runtime.run(RunRequest(backend="nope", prompt="p")))
        )
        self.assertEqual(unknown.error, 'unknown backend "nope" (available: [claude codex echo gemini])')

    def test_run(self) -> None:
        """A run: its command line, its stdin, its parsed answer."""
        running = Deferred.fromCoroutine(self.runtime.run(RunRequest(backend="echo", prompt="hello")))
        [child] = self.reactor.spawned
        self.assertEqual(child.argv, ["/usr/local/bin/echo", "--model", "echo-small", "--loud"])
        self.assertEqual(child.stdin, b"Repeat.\n\nhello")
        child.emit_stdout(b'{"answer": "hello", "session": "s-1"}')
        child.exit(0)
        result = self.successResultOf(running)
        self.assertEqual((result.exit_code, result.output, result.native_session_id), (0, "hello", "s-1"))

    def test_failure(self) -> None:
        """A failure is told in the backend's own words (L{IBackend.failure_text})."""
        running = Deferred.fromCoroutine(self.runtime.run(RunRequest(backend="echo", prompt="hello")))
        [child] = self.reactor.spawned
        child.emit_stderr(b"echo: hoarse\n")
        child.exit(3)
        result = self.successResultOf(running)
        self.assertEqual((result.exit_code, result.error), (3, "hoarse"))

    def test_stream(self) -> None:
        """A streaming run: its events, parsed by its own parser, and its result."""
        channel: EventChannel = self.runtime.stream(
            self.runtime.prepare(RunRequest(backend="echo", prompt="hi", model="echo-big"), streaming=True)
        )
        [child] = self.reactor.spawned
        self.assertEqual(child.argv, ["/usr/local/bin/echo", "--model", "echo-big", "--lines", "--loud"])
        child.emit_stdout(b'{"text": "hi"}\n{"done": {"in": 2, "out": 1}}\n')
        child.exit(0)

        async def collect() -> list[Any]:
            return [(event.type, dict(event.content)) async for event in channel]

        self.assertEqual(
            self.successResultOf(Deferred.fromCoroutine(collect())),
            [
                ("message", {"text": "hi", "role": "assistant"}),
                ("done", {"token_usage": {"input_tokens": 2, "output_tokens": 1}}),
            ],
        )
        result = self.successResultOf(channel.result())
        self.assertEqual((result.exit_code, result.usage), (0, TokenUsage(2, 1)))

    def test_installed(self) -> None:
        """The start-up log and doctor ask its CLI for its version and compare the one it proved."""
        found = self.runtime.installed()
        echo = next(child for child in self.reactor.spawned if child.argv[0] == "/usr/local/bin/echo")
        self.assertEqual(echo.argv, ["/usr/local/bin/echo", "--version"])
        echo.emit_stdout(b"echo 1.0.0\n")
        echo.exit(0)
        clis = {cli.name: cli for cli in self.successResultOf(found)}
        self.assertEqual(
            clis["echo"], InstalledCLI("echo", "/usr/local/bin/echo", "1.0.0", proven_version="1.0.0")
        )
        self.assertTrue(clis["echo"].proven)

    def test_needs(self) -> None:
        """doctor's check of what it needs to run unattended asks it too."""
        needs = headless_needs(self.config, self.backends, self.home.path, {}, self.home.path)
        self.assertIn(HeadlessNeed("echo", "a voice", True, "backends.echo.extra_flags"), needs)

    def test_compat(self) -> None:
        """An OpenAI model name with its marker chooses it; its bare name passes no model."""
        self.assertEqual(openai_backend("echo-big", self.backends), "echo")
        self.assertEqual(openai_backend("gpt-4o", self.backends), "codex")
        self.assertEqual(run_model("echo", self.backends), "")
