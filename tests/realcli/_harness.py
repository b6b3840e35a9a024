"""
The harness of the real-CLI suite: a real clinvk server per test whose
C{PATH} holds the real C{claude}, C{codex} and C{gemini} from npm, talking
to the model server (L{clinvk.testing.model_server}) that this test process
runs on 127.0.0.1.

The CLIs come from C{CLINVK_REAL_CLIS}, the directory of their
executables that C{tests/realcli/install} printed (C{tox -e realcli} sets
it).  Without it the suite is skipped, unless C{CLINVK_REQUIRE_REAL_CLIS=1}
says that this machine must run it (CI): then it fails.

Each CLI gets what it needs to run headless against the model server, and
nothing of the user's: a throwaway C{HOME} (with Gemini's choice of API-key
authentication), a throwaway C{CODEX_HOME} whose provider points at the
model server, and API keys that only the model server sees.  Every process
of the test's server carries a marker in its environment; after the test,
no process may carry it.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from twisted.internet.defer import Deferred
from twisted.trial.unittest import FailTest, SkipTest

from clinvk.testing.model_server import ModelServer, cli_environment
from tests.integration._processes import alive, reactor
from tests.integration._sdk_server import LIVE_SERVER, SDKServerTestCase
from tests.integration._server import Config

REAL_CLIS = "CLINVK_REAL_CLIS"
REQUIRE_REAL_CLIS = "CLINVK_REQUIRE_REAL_CLIS"

# The environment variable whose value marks every process a test's
# server started.
MARKER = "CLINVK_REALCLI_TEST"

# The model each backend is asked for through the compatibility APIs.
MODELS = {"claude": "claude-sonnet-4-5", "codex": "gpt-5.1-codex", "gemini": "gemini-2.5-pro"}

# What lets each CLI run in a folder that is neither a git repository
# (codex) nor trusted (gemini): the options docs/backends.md#cli-quirks documents.
HEADLESS_CONFIG: Config = {
    "backends": {
        "codex": {"extra_flags": ["--skip-git-repo-check"]},
        "gemini": {"extra_flags": ["--skip-trust"]},
    }
}


def real_clis() -> Path:
    """
    The directory of the real CLIs' executables.

    @raise SkipTest: When C{CLINVK_REAL_CLIS} is not set.
    @raise FailTest: When it is not set, or lacks a CLI, and
        C{CLINVK_REQUIRE_REAL_CLIS=1}.
    """
    directory = os.environ.get(REAL_CLIS, "")
    problem = ""
    if not directory:
        problem = f"{REAL_CLIS} is not set (tox -e realcli installs the real CLIs and sets it)"
    else:
        missing = [name for name in MODELS if not os.access(os.path.join(directory, name), os.X_OK)]
        if missing:
            problem = f"{REAL_CLIS}={directory} lacks {', '.join(missing)}"
    if problem:
        if os.environ.get(REQUIRE_REAL_CLIS) == "1":
            raise FailTest(f"{problem}, and {REQUIRE_REAL_CLIS}=1 requires them")
        raise SkipTest(problem)
    return Path(directory)


def marked_processes(token: str) -> set[int]:
    """The live processes whose environment holds C{MARKER=token}."""
    needle = f"{MARKER}={token}".encode()
    found = set()
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0") and alive(int(entry.name)):
            found.add(int(entry.name))
    return found


class RealCLITestCase(SDKServerTestCase):
    """
    A real clinvk server per test, driving the real CLIs against
    L{model}, a model server of this process.

    @ivar model: The model server; script it before the request.
    @ivar token: The marker's value in the environment of every process
        of the test's server.
    """

    # A CLI's start costs seconds (Gemini's up to six on a busy machine);
    # a test runs several, and one request may run a few one after another
    # (a chain, a run and its session's clean-up).
    timeout = 240
    client_timeout = 120.0

    installed = ()
    server_config: ClassVar[Config] = {}

    def config_layers(self) -> list[Config]:
        # The real CLIs run as a server runs them by default: live.
        return [*super().config_layers()[:-1], LIVE_SERVER, HEADLESS_CONFIG, self.server_config]

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        self.clis = real_clis()
        self.model = ModelServer(reactor)
        self.model.listen()
        self.addCleanup(self.model.stop)
        self.token = uuid.uuid4().hex
        return super().setUp()

    def environment(self) -> dict[str, str]:
        env = super().environment()
        env.pop("CLINVK_FAKE_RECORD", None)
        for name in ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "GOOGLE_GEMINI_BASE_URL", "GEMINI_API_KEY"):
            env.pop(name, None)
        env.update(cli_environment(self.model.url, self.home.path))
        env.update(
            {
                "PATH": f"{self.clis}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
                MARKER: self.token,
            }
        )
        env.update(self.extra_environment())
        return env

    def extra_environment(self) -> Mapping[str, str]:
        """What a test class adds to the server's environment."""
        return {}

    async def check_nothing_left(self) -> None:
        """No process that the test's server started may outlive it."""
        try:
            await self.eventually(lambda: not marked_processes(self.token))
        finally:
            for pid in marked_processes(self.token):
                os.kill(pid, signal.SIGKILL)

    # -- native API helpers

    def prompt(self, backend: str, prompt: str, **fields: Any) -> tuple[int, dict[str, str], Any]:
        """POST a native prompt (blocking: call it off the reactor); the status, headers and JSON body."""
        status, headers, body = self.post_raw(
            "/api/v1/prompt", {"backend": backend, "prompt": prompt, **fields}
        )
        return status, headers, json.loads(body) if body else None

    def get_json(self, path: str) -> tuple[int, dict[str, str], Any]:
        """GET C{path} (blocking); the status, headers and JSON body."""
        status, headers, body = self.get_raw(path)
        return status, headers, json.loads(body) if body else None
