"""
The benchmarks' compiled fake CLI (benchmarks/fastcli.c) prints what
clinvk's own parsers read: the answer it was asked for, streamed in the
deltas it was asked for.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, TestCase

from benchmarks import fake
from benchmarks.client import now_ns
from clinvk.backends.claude import ClaudeBackend
from clinvk.backends.codex import CodexBackend
from clinvk.backends.gemini import GeminiBackend
from clinvk.interfaces import IBackend
from clinvk.model import UnifiedOptions
from tests.integration._processes import TIMEOUT, reactor


def options(output_format: str) -> UnifiedOptions:
    """The options of an ephemeral request that only chooses the output format."""
    return UnifiedOptions(
        model="",
        approval_mode="default",
        sandbox_mode="default",
        output_format=output_format,
        verbose=False,
        dry_run=False,
        max_tokens=0,
        max_turns=0,
        system_prompt="",
        allowed_tools="",
        extra=(),
        ephemeral=True,
    )


class _Output(ProcessProtocol):
    def __init__(self, stdin: bytes) -> None:
        self._stdin = stdin
        self.stdout = b""
        self.ended: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        assert self.transport is not None
        self.transport.write(self._stdin)
        self.transport.closeStdin()

    def outReceived(self, data: bytes) -> None:
        self.stdout += data

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)


class FastFakeTests(TestCase):
    timeout = 60

    async def setUp(self) -> None:  # type: ignore[override] # trial waits for it
        if not (os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")):
            raise SkipTest("no C compiler to build the benchmarks' fake with")
        self.bin = await fake.build(reactor, Path(self.mktemp()) / "bin")

    async def run_fake(self, backend: IBackend, output: str, prompt: str) -> str:
        argv = backend.command(str(self.bin / backend.name), options(output), "")
        running = _Output(backend.stdin_text(options(output), prompt).encode())
        reactor.spawnProcess(running, argv[0], argv, env={})
        await running.ended.addTimeout(TIMEOUT, reactor)
        return running.stdout.decode()

    async def test_json(self) -> None:
        """Every backend's JSON answer parses into the answer asked for."""
        prompt = fake.prompt(size=40, count=True)
        for backend in (ClaudeBackend(), CodexBackend(), GeminiBackend()):
            parsed = backend.parse_response(await self.run_fake(backend, "json", prompt))
            assert parsed is not None
            self.assertEqual(parsed.error, "", backend.name)
            self.assertEqual(len(parsed.content), 40, backend.name)
            self.assertTrue(parsed.content.startswith(f"{len(prompt)}:"), parsed.content)

    async def test_stream(self) -> None:
        """Every backend's stream parses into the deltas asked for, then the end."""
        for backend in (ClaudeBackend(), CodexBackend(), GeminiBackend()):
            raw = await self.run_fake(backend, "stream-json", fake.prompt(size=30, chunks=3))
            parser = backend.stream_parser()
            found = [
                event for number, line in enumerate(raw.splitlines()) for event in parser.feed(line, number)
            ]
            texts = [event.content.get("text") for event in found if event.type == "message"]
            self.assertEqual(len(texts), 3, backend.name)
            self.assertEqual(sum(len(text or "") for text in texts), 30, backend.name)
            self.assertEqual(found[-1].type, "done", backend.name)

    async def test_stamps(self) -> None:
        """With stamps, each delta is the clock of its writing."""
        before = fake_clock()
        raw = await self.run_fake(ClaudeBackend(), "stream-json", fake.prompt(chunks=4, stamp=True))
        stamps = fake.stamps(raw)
        self.assertEqual(len(stamps), 4)
        self.assertEqual(stamps, sorted(stamps))
        self.assertLessEqual(before, stamps[0])
        self.assertLessEqual(stamps[-1], fake_clock())


def fake_clock() -> int:
    """The clock the fake stamps its deltas with."""
    return now_ns()
