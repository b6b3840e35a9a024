"""
Tests for the helpers of the real-process tests (L{tests.integration._processes}).
"""

from __future__ import annotations

import os
import shutil
import sys

from twisted.internet.defer import TimeoutError
from twisted.trial.unittest import FailTest, SkipTest, SynchronousTestCase, TestCase

from tests.integration._processes import REQUIRE_SYSTEM_TOOLS, alive, process_exit, require_tool, spawn


class SpawnTests(TestCase):
    """L{spawn} bounds the life of what it starts."""

    async def test_killed_after_timeout(self) -> None:
        """
        A command still running when its time is up is killed, and its
        C{ended} fails with a timeout, so that nothing outlives the test.
        """
        protocol, transport = spawn(
            [sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ), os.getcwd(), timeout=0.5
        )
        pid = transport.pid
        with self.assertRaises(TimeoutError):
            await protocol.ended
        await process_exit(pid)
        self.assertFalse(alive(pid))

    async def test_status(self) -> None:
        """A command that ends in time gives its exit status."""
        protocol, _ = spawn([sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ), os.getcwd())
        self.assertEqual(await protocol.ended, 3)


class RequireToolTests(SynchronousTestCase):
    """L{require_tool}: a missing tool skips a test, or fails it where tools are required."""

    def environment(self, **variables: str) -> None:
        environ = {key: value for key, value in os.environ.items() if key != REQUIRE_SYSTEM_TOOLS}
        self.patch(os, "environ", {**environ, **variables})

    def test_found(self) -> None:
        """The first of the names that is installed is found, by its path."""
        self.environment()
        self.assertEqual(require_tool(["clinvk-no-such-tool", "sh"], "never needed"), shutil.which("sh"))

    def test_missing_skips(self) -> None:
        """Without the tool the test is skipped, saying how to install it."""
        self.environment()
        with self.assertRaises(SkipTest) as raised:
            require_tool("clinvk-no-such-tool", "apt-get install it")
        self.assertEqual(str(raised.exception), "clinvk-no-such-tool is not installed (apt-get install it)")

    def test_missing_fails_where_required(self) -> None:
        """With CLINVK_REQUIRE_SYSTEM_TOOLS=1 a missing tool fails the test instead."""
        self.environment(**{REQUIRE_SYSTEM_TOOLS: "1"})
        with self.assertRaises(FailTest) as raised:
            require_tool(("clinvk-no-such-tool", "clinvk-nor-this"), "apt-get install it")
        self.assertEqual(
            str(raised.exception),
            "clinvk-no-such-tool or clinvk-nor-this is not installed (apt-get install it), "
            "and CLINVK_REQUIRE_SYSTEM_TOOLS=1 requires it",
        )
