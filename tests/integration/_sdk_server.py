"""
The harness of the SDK conformance suite: a real clinvk server for each
test, started as C{python -m twisted clinvk} with C{HOME} in a temporary
directory and the fake CLIs first on its C{PATH}, and the official SDK
clients pointed at it.

The SDK clients block (or run their own asyncio loop), so every test body
runs in a thread (L{off_reactor}): the reactor stays free to read the
server's log, to time the test out and to stop the server afterwards.
Async clients run with C{asyncio.run} in that thread.

Starting and stopping the server, and the checks after each test, are
L{tests.integration._server.ServerTestCase}'s, and so are the hooks with
which a test class changes the server it gets (C{installed},
C{server_config}, C{server_environment}).
"""

from __future__ import annotations

import functools
import http.client
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import anthropic
import openai

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

from clinvk.testing.fake_cli import NAMES
from tests.integration._server import SERVER_CONFIG, Config, ServerTestCase

if TYPE_CHECKING:
    # Imported when used: LangChain takes a second to import.
    from langchain_openai import ChatOpenAI

Case = TypeVar("Case", bound="SDKServerTestCase")

# How long one SDK call may take; every answer of the fakes takes well
# under a second, the slowest (keep-alive) a few.
CLIENT_TIMEOUT = 20.0

# What the SDK servers add to the harness's configuration: keep-alives
# that the keep-alive tests see within a second, a short shutdown, and
# one-shot CLIs, whose runs the fakes record one by one and which honour
# every directive (silent, hold); the conversation tests turn live
# processes back on (LIVE_CONFIG).
SDK_CONFIG: Config = {"server": {"stream_keepalive_secs": 1, "shutdown_timeout_secs": 5, "live_idle_secs": 0}}
# Live processes as a server has them by default, for a class that turns
# them back on; with gemini told to trust its folder, which it needs to run
# live (docs/backends.md).
LIVE_SERVER: Config = {"server": {"live_idle_secs": 300}}
LIVE_CONFIG: Config = {**LIVE_SERVER, "backends": {"gemini": {"extra_flags": ["--skip-trust"]}}}

# The API keys the client factories present unless told otherwise; a server
# without CLINVK_API_KEYS accepts any.
OPENAI_KEY = "sk-clinvk-test"
ANTHROPIC_KEY = "sk-ant-clinvk-test"

# The model that selects each backend through the OpenAI API
# (docs/design/openai-api.md#openai-model-mapping); the Anthropic API only maps the
# exact backend names (docs/design/anthropic-api.md#anthropic-model-mapping).
OPENAI_MODELS = {"claude": "claude", "codex": "gpt-4o", "gemini": "gemini-2.5-pro"}
ANTHROPIC_MODELS = {name: name for name in NAMES}

# The input tokens each fake reports; its output tokens are a quarter of
# the length of its answer (clinvk.testing.fake_cli).
INPUT_TOKENS = {"claude": 4, "codex": 24, "gemini": 28}

# What each fake prints when told C{#fake fail=crash} (before any answer).
CRASH_TEXT = {
    "claude": "Error: fake claude crashed",
    "codex": "thread 'main' panicked at src/main.rs:1: fake codex crashed",
    "gemini": "Error: fake gemini crashed",
}


def output_tokens(answer: str) -> int:
    """The output tokens a fake reports for C{answer}."""
    return max(1, len(answer) // 4)


def pieces(answer: str, count: int) -> list[str]:
    """The pieces a fake told C{#fake chunks=<count>} streams C{answer} in."""
    size = max(1, -(-len(answer) // count))
    return [answer[i : i + size] for i in range(0, len(answer), size)]


def off_reactor(test: Callable[[Case], None]) -> Callable[[Case], Deferred[None]]:
    """
    Run the test method C{test} in a thread, so that the blocking SDK
    calls it makes do not block the reactor.
    """

    @functools.wraps(test)
    def run(self: Case) -> Deferred[None]:
        return deferToThread(test, self)

    return run


def sse_lines(body: bytes) -> list[str]:
    """The lines of an SSE body, without the blank lines between events."""
    return [line for line in body.decode("utf-8").split("\n") if line]


class SDKServerTestCase(ServerTestCase):
    """
    A real clinvk server per test (L{ServerTestCase}), with a short
    keep-alive interval and shutdown timeout (L{SDK_CONFIG}), and
    factories of SDK clients that talk to it.
    """

    timeout = 60

    # How long one client call may take (L{CLIENT_TIMEOUT} with the fakes).
    client_timeout: ClassVar[float] = CLIENT_TIMEOUT

    def config_layers(self) -> list[Config]:
        return [SERVER_CONFIG, SDK_CONFIG, self.server_config]

    # -- clients

    def openai_client(self, api_key: str = OPENAI_KEY, max_retries: int = 0) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.base_url}/openai/v1",
            api_key=api_key,
            max_retries=max_retries,
            timeout=self.client_timeout,
            http_client=openai.DefaultHttpxClient(trust_env=False),
        )

    def async_openai_client(self, api_key: str = OPENAI_KEY, max_retries: int = 0) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=f"{self.base_url}/openai/v1",
            api_key=api_key,
            max_retries=max_retries,
            timeout=self.client_timeout,
            http_client=openai.DefaultAsyncHttpxClient(trust_env=False),
        )

    def anthropic_client(
        self,
        api_key: str = ANTHROPIC_KEY,
        max_retries: int = 0,
        default_headers: Mapping[str, str] | None = None,
    ) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            base_url=f"{self.base_url}/anthropic",
            api_key=api_key,
            max_retries=max_retries,
            default_headers=default_headers,
            timeout=self.client_timeout,
            http_client=anthropic.DefaultHttpxClient(trust_env=False),
        )

    def async_anthropic_client(
        self, api_key: str = ANTHROPIC_KEY, max_retries: int = 0
    ) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            base_url=f"{self.base_url}/anthropic",
            api_key=api_key,
            max_retries=max_retries,
            timeout=self.client_timeout,
            http_client=anthropic.DefaultAsyncHttpxClient(trust_env=False),
        )

    def langchain_chat(self, model: str, **options: Any) -> ChatOpenAI:
        """LangChain's C{ChatOpenAI} pointed at this server's OpenAI API, with C{options}."""
        from langchain_openai import ChatOpenAI
        from pydantic import SecretStr

        return ChatOpenAI(
            base_url=f"{self.base_url}/openai/v1",
            api_key=SecretStr(OPENAI_KEY),
            model=model,
            max_retries=0,
            timeout=self.client_timeout,
            http_client=openai.DefaultHttpxClient(trust_env=False),
            **options,
        )

    def post_raw(
        self, path: str, body: Any, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """
        POST C{body} as JSON to C{path} without an SDK (blocking), with the
        extra C{headers}; return the status, the headers (lower-case names)
        and the whole body.
        """
        return self.request_raw(
            "POST", path, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})}
        )

    def get_raw(
        self, path: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """GET C{path} without an SDK (blocking), like L{post_raw}."""
        return self.request_raw("GET", path, None, headers or {})

    def request_raw(
        self, method: str, path: str, body: bytes | None, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], bytes]:
        """
        Send C{method path} with C{body} and C{headers} without an SDK
        (blocking); return the status, the headers (lower-case names) and
        the whole body.
        """
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.client_timeout)
        try:
            connection.request(method, path, body=body, headers=dict(headers))
            response = connection.getresponse()
            return (
                response.status,
                {name.lower(): value for name, value in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    # -- what the fakes recorded

    def run_with(self, name: str, marker: str) -> dict[str, Any]:
        """The one recorded run of fake C{name} whose stdin contains C{marker}."""
        found = [record for record in self.runs(name) if marker in record["stdin"]]
        self.assertEqual(len(found), 1, f"{name} runs with {marker!r}: {found}")
        return found[0]

    def assert_model_flag(self, argv: Sequence[str], model: str | None) -> None:
        """C{argv} passes C{--model <model>}, or no C{--model} when C{model} is C{None}."""
        flags = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == "--model"]
        self.assertEqual(flags, [] if model is None else [model], argv)

    def assert_system_prompt(self, record: dict[str, Any], system: str, prompt: str) -> None:
        """
        The run of C{record} was given C{system} as its system prompt and
        C{prompt} as its prompt: Claude through C{--system-prompt}, the
        others with the system text before the prompt
        (docs/design/cli-runs.md#flag-mapping).
        """
        argv = record["argv"]
        if record["name"] == "claude":
            self.assertEqual(record["stdin"], prompt)
            self.assertIn("--system-prompt", argv)
            self.assertEqual(argv[argv.index("--system-prompt") + 1], system)
        else:
            self.assertEqual(record["stdin"], f"{system}\n\n{prompt}")
            self.assertFalse(any(system in arg for arg in argv), argv)

    def assert_ephemeral(self, records: Iterable[dict[str, Any]], ephemeral: bool = True) -> None:
        """
        The Claude runs among C{records} were told not to keep the
        conversation, or with C{ephemeral} false, were not (a conversation
        turn, docs/design/conversations.md#conversation-records).
        """
        for record in records:
            if record["name"] == "claude":
                self.assertEqual("--no-session-persistence" in record["argv"], ephemeral, record["argv"])
