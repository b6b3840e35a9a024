"""
The group reaper's script with a real shell (L{clinvk.process.reaper}):
once its stdin ends, it ends the process groups it was told of and still
knows, TERM first and KILL after the grace period, and only those.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys

from twisted.trial.unittest import SkipTest, TestCase

from clinvk.process.reaper import REAPER_SCRIPT
from tests.integration._processes import alive, process_exit, reactor, spawn

GRACE = 2.0

# A process group that ignores TERM in its leader but not in its member.
GROUP = "import os, signal, subprocess, sys; os.setsid(); child = subprocess.Popen(['sleep', '300']); signal.signal(signal.SIGTERM, signal.SIG_IGN); print(os.getpid(), child.pid, flush=True); signal.pause()"


class ReaperScriptTests(TestCase):
    timeout = 30

    def setUp(self) -> None:
        if shutil.which("sh") is None or shutil.which("sleep") is None:
            raise SkipTest("no sh or sleep")

    async def group(self) -> tuple[int, int]:
        """
        Start a process group; its leader's and its member's pids.  The
        group is killed after the test if it still runs.
        """
        protocol, _ = spawn([sys.executable, "-c", GROUP], dict(os.environ), os.getcwd())
        match = await protocol.wait_for(r"^(\d+) (\d+)$")
        leader = int(match.group(1))

        async def gone() -> None:
            if not protocol.ended.called:
                os.killpg(leader, signal.SIGKILL)
            await protocol.ended

        self.addCleanup(gone)
        return leader, int(match.group(2))

    async def test_ends_known_groups(self) -> None:
        """At the end of its stdin: TERM ends the member, KILL the leader; forgotten groups live on."""
        ended_leader, ended_member = await self.group()
        kept_leader, kept_member = await self.group()
        reaper, transport = spawn(
            ["/bin/sh", "-c", REAPER_SCRIPT, "clinvk-reaper", str(GRACE)], {"PATH": os.defpath}, "/"
        )
        transport.write(f"+ {ended_leader}\n+ {kept_leader}\n- {kept_leader}\n".encode())
        started = reactor.seconds()
        transport.closeStdin()
        await process_exit(ended_member)
        self.assertTrue(alive(ended_leader))
        await process_exit(ended_leader)
        self.assertGreaterEqual(reactor.seconds() - started, GRACE)
        self.assertEqual(await reaper.ended, 0)
        self.assertTrue(alive(kept_leader) and alive(kept_member))

    async def test_nothing_to_end(self) -> None:
        """With no group left, it exits at once."""
        reaper, transport = spawn(
            ["/bin/sh", "-c", REAPER_SCRIPT, "clinvk-reaper", "30"], {"PATH": os.defpath}, "/"
        )
        transport.write(b"+ 123456\n- 123456\n")
        transport.closeStdin()
        self.assertEqual(await reaper.ended, 0)
