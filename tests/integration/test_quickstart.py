"""
The quickstart (docs/quickstart.md) as a developer's test: its files, run
as the page says, against the virtualenv running the tests.

The page works in a checkout with clinvk installed in C{.venv}. The test
builds such a directory in a temporary place: C{.venv} links to the
virtualenv of the running interpreter and C{docs} to this checkout's. Two
things differ from a person following the page, both so that the test can
run next to anything else: the server's C{HOME} holds a configuration
file that sets a free port instead of 8080, and the streaming example
gets that address through C{CLINVK_URL}. pip runs with C{PIP_NO_INDEX}:
the C{openai} package is already installed (it is a test dependency), so
C{pip install openai} is satisfied without any network.

C{.ci/quickstart} follows the same page on a fresh virtualenv.
"""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

from tests._docs import DOCS, EXAMPLES, QUICKSTART, fences
from tests.integration._processes import free_port, live_children, spawn

# The page's steps, as paths relative to docs/examples.
SERVE = "quickstart/serve-with-fakes.sh"
STREAM = "quickstart/stream.sh"
STREAM_PROGRAM = "quickstart/stream.py"

ANSWER = "claude answers: Say hello to a new user"


def client_environment(**extra: str) -> dict[str, str]:
    """The test's environment without clinvk settings or proxies, plus C{extra}."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("CLINVK_") and not key.lower().endswith("_proxy")
    }
    env.update(extra)
    return env


class QuickstartTests(TestCase):
    """Follow the quickstart: fakes, server, streamed answer, clean stop."""

    timeout = 120

    def test_page_runs_these_files(self) -> None:
        """The page includes exactly the files this test runs, in that order."""
        included = [
            fence.argument
            for fence in fences(QUICKSTART.read_text("utf-8"))
            if fence.directive == "literalinclude"
        ]
        self.assertEqual(included, [f"examples/{SERVE}", f"examples/{STREAM}", f"examples/{STREAM_PROGRAM}"])

    async def test_quickstart(self) -> None:
        """
        The fakes install, the server starts with them, the C{openai} SDK
        prints the answer streamed in several pieces, and the server stops
        with status 0 on SIGTERM.
        """
        checkout = FilePath(self.mktemp())
        checkout.makedirs()
        venv = Path(sys.prefix)
        self.assertTrue(
            (venv / "bin" / "clinvk").exists(), f"no clinvk in {venv}: run the tests from a virtualenv"
        )
        os.symlink(venv, checkout.child(".venv").path)
        os.symlink(DOCS, checkout.child("docs").path)
        home = checkout.child("home")
        home.child(".clinvk").makedirs()
        port = free_port()
        home.child(".clinvk").child("config.yaml").setContent(
            f"server:\n  host: 127.0.0.1\n  port: {port}\n".encode()
        )

        server, server_transport = spawn(
            ["bash", "-e", str(EXAMPLES / SERVE)], client_environment(HOME=home.path), checkout.path
        )
        await server.wait_for(rf"^clinvk API server starting on http://127\.0\.0\.1:{port}$")
        self.assertTrue(checkout.child("fakebin").child("claude").exists())

        client, _ = spawn(
            ["bash", "-e", str(EXAMPLES / STREAM)],
            client_environment(
                CLINVK_URL=f"http://127.0.0.1:{port}", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1"
            ),
            checkout.path,
        )
        status = await client.ended
        output = client.stdout.decode()
        self.assertEqual(status, 0, output + client.stderr.decode())
        match = re.search(rf"^{re.escape(ANSWER)}\n\((\d+) pieces\)$", output, re.M)
        self.assertIsNotNone(match, output)
        assert match is not None
        self.assertGreater(int(match.group(1)), 1)

        # The script runs clinvk serve as its child (unless bash replaced
        # itself with it). The page says Ctrl+C: SIGINT to the server.
        # (.ci/quickstart stops it with SIGTERM.)
        children = live_children(server_transport.pid)
        self.assertLessEqual(len(children), 1, children)
        os.kill(children.pop() if children else server_transport.pid, signal.SIGINT)
        self.assertEqual(await server.ended, 0, server.stdout.decode() + server.stderr.decode())
