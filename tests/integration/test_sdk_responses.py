"""
Wire compatibility of the Responses API (docs/design/responses-api.md)
with the official C{openai} SDK: the real server, the fake CLIs, JSON and
SSE, stored responses and C{previous_response_id}, on each backend.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

import openai

from tests.integration._sdk_server import LIVE_CONFIG, OPENAI_MODELS, SDKServerTestCase, off_reactor
from tests.integration._server import Config

RESPONSE_ID = r"^resp_[0-9a-f]{24}$"


class ResponsesTests(SDKServerTestCase):
    """C{client.responses} against a server with all three fakes, live processes on."""

    server_config: ClassVar[Config] = LIVE_CONFIG

    @off_reactor
    def test_create(self) -> None:
        """C{responses.create} on each backend: the answer as C{output_text}, usage, the id."""
        with self.openai_client() as client:
            for backend, model in OPENAI_MODELS.items():
                response = client.responses.create(
                    model=model, input=f"Say hello to {backend}", metadata={"k": backend}
                )
                self.assertRegex(response.id, RESPONSE_ID)
                self.assertEqual(
                    (response.status, response.model, response.object), ("completed", model, "response")
                )
                self.assertEqual(response.output_text, f"{backend} answers: Say hello to {backend}")
                assert response.usage is not None
                self.assertEqual(
                    response.usage.total_tokens, response.usage.input_tokens + response.usage.output_tokens
                )
                self.assertEqual(response.metadata, {"k": backend})
            response = client.responses.create(model="claude", input="Hi", instructions="Be brief.")
            self.assertEqual(response.instructions, "Be brief.")
            self.assert_system_prompt(self.run_with("claude", "Hi"), "Be brief.", "Hi")

    @off_reactor
    def test_stream(self) -> None:
        """C{stream=True}: the typed events in order; the final response is the completed one."""
        with self.openai_client() as client:
            for backend, model in OPENAI_MODELS.items():
                prompt = f"#fake chunks=3\n#fake-answer Tick Tack Tock\nCount for {backend}"
                with client.responses.stream(model=model, input=prompt) as stream:
                    kinds = [event.type for event in stream]
                    final = stream.get_final_response()
                self.assertEqual(
                    kinds[:4],
                    [
                        "response.created",
                        "response.in_progress",
                        "response.output_item.added",
                        "response.content_part.added",
                    ],
                )
                self.assertEqual(
                    kinds[-4:],
                    [
                        "response.output_text.done",
                        "response.content_part.done",
                        "response.output_item.done",
                        "response.completed",
                    ],
                )
                self.assertGreaterEqual(kinds.count("response.output_text.delta"), 1)
                self.assertEqual((final.status, final.output_text), ("completed", "Tick Tack Tock"))

    @off_reactor
    def test_conversation(self) -> None:
        """
        C{previous_response_id} three turns deep: one session per backend,
        whose CLI is given each input alone.
        """
        questions = ("Pick a number", "Double it", "Now add ten")
        with self.openai_client() as client:
            for backend, model in OPENAI_MODELS.items():
                previous = None
                sessions = set()
                for question in questions:
                    raw = client.responses.with_raw_response.create(
                        model=model, input=question, previous_response_id=previous
                    )
                    sessions.add(raw.headers["x-clinvk-session-id"])
                    response = raw.parse()
                    self.assertEqual(response.output_text, f"{backend} answers: {question}")
                    previous = response.id
                self.assertEqual(len(sessions), 1, sessions)
                runs = self.runs(backend)
                self.assertEqual(len({run["pid"] for run in runs}), 1, runs)

    @off_reactor
    def test_retrieve_and_delete(self) -> None:
        with self.openai_client() as client:
            response = client.responses.create(model="claude", input="Keep me")
            self.assertEqual(client.responses.retrieve(response.id).output_text, response.output_text)
            client.responses.delete(response.id)
            with self.assertRaises(openai.NotFoundError):
                client.responses.retrieve(response.id)
            with self.assertRaises(openai.NotFoundError):
                client.responses.create(model="claude", input="x", previous_response_id=response.id)

    @off_reactor
    def test_async_stream(self) -> None:
        async def run() -> list[str]:
            async with self.async_openai_client() as client:
                stream = await client.responses.create(
                    model="claude", input="#fake chunks=2\nHi", stream=True
                )
                return [event.type async for event in stream]

        kinds = asyncio.run(run())
        self.assertEqual((kinds[0], kinds[-1]), ("response.created", "response.completed"))

    @off_reactor
    def test_errors(self) -> None:
        """A wrong type, an item of another kind: 400s the SDK raises as BadRequestError, naming the member."""
        with self.openai_client() as client:
            with self.assertRaises(openai.BadRequestError) as raised:
                client.responses.create(model="claude", input="x", store="yes")  # type: ignore[call-overload]
            self.assertEqual(raised.exception.param, "store")
            search: Any = {"type": "file_search_call", "id": "fs", "queries": [], "status": "completed"}
            with self.assertRaises(openai.BadRequestError) as raised:
                client.responses.create(model="claude", input=[{"role": "user", "content": "x"}, search])
            self.assertIn("unsupported input item type: file_search_call", raised.exception.message)
            self.assertEqual(raised.exception.param, "input[1]")

    @off_reactor
    def test_failure_in_stream(self) -> None:
        """A CLI failure once streaming: response.failed, the SDK's final response failed."""
        with self.openai_client() as client:
            with client.responses.stream(model="claude", input="#fake fail=crash\nx") as stream:
                kinds = [event.type for event in stream]
        self.assertEqual(kinds[-1], "response.failed")
        status, _, body = self.get_raw("/api/v1/sessions")
        self.assertEqual((status, json.loads(body)["sessions"][0]["status"]), (200, "error"))
