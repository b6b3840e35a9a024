"""
Wire compatibility with the Node clients: the official C{openai} and
C{@anthropic-ai/sdk} packages and the Vercel AI SDK's default OpenAI
provider (which speaks the Responses API), pinned in
C{tests/nodesdk/package-lock.json}, against a real server with the fake
CLIs, on each backend (docs/design/conversations.md,
docs/design/responses-api.md).

C{tox -e node-sdks} installs the packages and sets C{CLINVK_NODE_SDKS};
without it these tests skip, unless C{CLINVK_REQUIRE_NODE_SDKS=1}.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar

from twisted.trial.unittest import FailTest, SkipTest

from tests.integration._processes import spawn
from tests.integration._sdk_server import ANTHROPIC_MODELS, LIVE_CONFIG, OPENAI_MODELS, SDKServerTestCase
from tests.integration._server import Config

NODE_SDKS = "CLINVK_NODE_SDKS"
REQUIRE_NODE_SDKS = "CLINVK_REQUIRE_NODE_SDKS"
CLIENTS = Path(__file__).with_name("clients.mjs")
QUESTIONS = ["Pick a number", "Double it", "Now add ten"]
# The backends whose CLIs call the client's tools.
TOOL_BACKENDS = ("claude", "codex", "gemini")
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)


def node_modules() -> Path:
    """
    The installed Node clients.

    @raise SkipTest: When C{CLINVK_NODE_SDKS} is not set.
    @raise FailTest: When it is not set or holds no clients, and
        C{CLINVK_REQUIRE_NODE_SDKS=1}.
    """
    directory = os.environ.get(NODE_SDKS, "")
    problem = ""
    if not directory:
        problem = f"{NODE_SDKS} is not set (tox -e node-sdks installs the Node clients and sets it)"
    elif not (Path(directory) / "node_modules" / "openai").is_dir() or shutil.which("node") is None:
        problem = f"{NODE_SDKS}={directory} holds no Node clients, or node is missing"
    if problem:
        if os.environ.get(REQUIRE_NODE_SDKS) == "1":
            raise FailTest(f"{problem}, and {REQUIRE_NODE_SDKS}=1 requires them")
        raise SkipTest(problem)
    return Path(directory) / "node_modules"


class NodeClientTests(SDKServerTestCase):
    """Each scenario of C{clients.mjs}, on each backend, with live processes as a server has them."""

    server_config: ClassVar[Config] = LIVE_CONFIG

    def setUp(self) -> Any:
        modules = node_modules()
        # ESM finds packages beside the script, not through NODE_PATH.
        self.scripts = Path(self.mktemp()).absolute()
        self.scripts.mkdir(parents=True)
        (self.scripts / "node_modules").symlink_to(modules)
        shutil.copy(CLIENTS, self.scripts / CLIENTS.name)
        return super().setUp()

    async def client(self, scenario: str, backend: str, model: str) -> Any:
        """What C{clients.mjs <scenario>} got from this test's server."""
        env = {"PATH": os.environ.get("PATH", ""), "CLINVK_URL": self.base_url, "HOME": str(self.scripts)}
        command = ["node", str(self.scripts / CLIENTS.name), scenario, backend, model]
        protocol, _ = spawn(command, env, str(self.scripts))
        status = await protocol.ended
        self.assertEqual(status, 0, protocol.stderr.decode(errors="replace"))
        return json.loads(protocol.stdout)

    def assert_one_session(self, backend: str, found: dict[str, Any]) -> None:
        """Each question reached the CLI alone, in one session and one live process."""
        self.assertEqual(found["answers"], [f"{backend} answers: {question}" for question in QUESTIONS])
        self.assertEqual(len(found["sessions"]), 1, found)
        runs = [run for run in self.runs(backend) if run["stdin"] in QUESTIONS]
        self.assertEqual(sorted(run["stdin"] for run in runs), sorted(QUESTIONS))
        self.assertEqual(len({run["pid"] for run in runs}), 1, runs)

    async def test_openai_chat(self) -> None:
        """C{chat.completions.create}, as JSON and streamed."""
        for backend, model in OPENAI_MODELS.items():
            found = await self.client("chat", backend, model)
            self.assertEqual(
                (found["text"], found["finish"]), (f"{backend} answers: Say hello to {backend}", "stop")
            )
            self.assertEqual("".join(found["pieces"]), f"{backend} answers: Count for {backend}")

    async def test_openai_chat_conversation(self) -> None:
        for backend, model in OPENAI_MODELS.items():
            self.assert_one_session(backend, await self.client("chatConversation", backend, model))

    async def test_openai_responses(self) -> None:
        """C{responses}: a conversation by previous_response_id, a stream, retrieve and delete."""
        for backend, model in OPENAI_MODELS.items():
            found = await self.client("responses", backend, model)
            self.assert_one_session(backend, found)
            self.assertEqual(
                (found["kinds"][0], found["kinds"][-1]), ("response.created", "response.completed")
            )
            self.assertIn("response.output_text.delta", found["kinds"])
            self.assertEqual(
                (found["stored"], found["deleted"]), (f"{backend} answers: {QUESTIONS[-1]}", True)
            )

    async def test_anthropic_conversation(self) -> None:
        for backend, model in ANTHROPIC_MODELS.items():
            self.assert_one_session(backend, await self.client("anthropicConversation", backend, model))

    async def test_ai_sdk(self) -> None:
        """The AI SDK's C{generateText} and C{streamText} with C{createOpenAI()(model)}."""
        for backend, model in OPENAI_MODELS.items():
            found = await self.client("aiSdk", backend, model)
            self.assertEqual(
                (found["text"], found["finish"]), (f"{backend} answers: Say hello to {backend}", "stop")
            )
            self.assertEqual("".join(found["pieces"]), f"{backend} answers: Count for {backend}")

    async def test_ai_sdk_conversation(self) -> None:
        """
        C{generateText} with the growing messages, earlier answers sent as
        item references to the stored responses: one session.
        """
        for backend, model in OPENAI_MODELS.items():
            self.assert_one_session(backend, await self.client("aiSdkConversation", backend, model))

    async def test_structured(self) -> None:
        """
        A json_schema response_format with the C{openai} client, and the AI
        SDK's C{Output.object} (a Responses text.format), on the backends
        whose CLIs keep to a schema; a 400 naming response_format on gemini.
        """
        for backend, model in OPENAI_MODELS.items():
            if backend == "gemini":
                found = await self.client("structuredRefused", backend, model)
                self.assertEqual(found, {"status": 400, "param": "response_format"})
                continue
            found = await self.client("structured", backend, model)
            self.assertEqual(found["chat"], {"label": f"{backend} answers: Pick one for {backend}", "n": 1})
            self.assertEqual(
                found["aiSdk"], {"label": f"{backend} answers: Generate one for {backend}", "n": 1}
            )

    async def test_images(self) -> None:
        """An image through each client reaches each CLI: the fakes record what they were shown."""
        for backend, model in OPENAI_MODELS.items():
            found = await self.client("images", backend, model)
            prompts = {"chat": "Chat colour", "messages": "Messages colour", "aiSdk": "AI SDK colour"}
            for client, prompt in prompts.items():
                self.assertEqual(found[client], f"{backend} answers: {prompt} for {backend}")
                [run] = [run for run in self.runs(backend) if prompt in run["stdin"] + str(run.get("turns"))]
                self.assertEqual([image["size"] for image in run["images"]], [len(PNG)], run)

    async def test_tools(self) -> None:
        """
        A weather tool round trip with the C{openai} and C{anthropic}
        clients, and the AI SDK's C{generateText} with a tool it runs
        itself over several steps.
        """
        for backend, model in OPENAI_MODELS.items():
            if backend not in TOOL_BACKENDS:
                continue
            found = await self.client("tools", backend, model)
            said = f"{backend} answers: get_weather said sunny, 21 C"
            self.assertEqual(found["chat"], {"finish": "tool_calls", "name": "get_weather", "text": said})
            question = f"What is the weather in Paris (anthropic on {backend})? Use get_weather."
            self.assertEqual(
                found["anthropic"], {"stop": "tool_use", "input": {"city": question}, "text": said}
            )
            question = f"What is the weather in Paris (ai-sdk on {backend})? Use get_weather."
            self.assertEqual(found["aiSdk"], {"steps": 2, "executed": [{"city": question}], "text": said})
