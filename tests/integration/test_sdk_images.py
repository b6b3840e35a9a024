"""
Images (docs/design/images.md) through the official C{openai} and
C{anthropic} SDKs and LangChain: the real server and the fake CLIs, which
record the images they were shown (claude's image blocks, the files codex's
C{--image} names, the files gemini's @ references read).
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar

import openai
from langchain_core.messages import HumanMessage

from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data

from tests.integration._processes import reactor
from tests.integration._sdk_server import (
    ANTHROPIC_MODELS,
    LIVE_CONFIG,
    OPENAI_MODELS,
    SDKServerTestCase,
    off_reactor,
)
from tests.integration._server import Config

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)
BASE64 = base64.b64encode(PNG).decode()
DATA_URL = f"data:image/png;base64,{BASE64}"
HEADER = "x-clinvk-session-id"


class ImageTests(SDKServerTestCase):
    """Live processes on: a turn with images runs cold, and the conversation goes on."""

    server_config: ClassVar[Config] = LIVE_CONFIG

    def assert_shown(self, backend: str, marker: str) -> None:
        """The run of C{backend} for C{marker} was shown the image, once."""
        runs = [
            run for run in self.runs(backend) if marker in run["stdin"] or marker in str(run.get("turns"))
        ]
        self.assertEqual(len(runs), 1, runs)
        [shown] = runs[0]["images"]
        self.assertEqual(shown["size"], len(PNG), shown)

    @off_reactor
    def test_openai_chat(self) -> None:
        """An C{image_url} part reaches each CLI its own way."""
        with self.openai_client() as client:
            for backend, model in OPENAI_MODELS.items():
                question = f"What colour, {backend}?"
                content: list[Any] = [
                    {"type": "text", "text": question},
                    {"type": "image_url", "image_url": {"url": DATA_URL}},
                ]
                answer = client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": content}]
                )
                self.assertEqual(answer.choices[0].message.content, f"{backend} answers: {question}")
                self.assert_shown(backend, question)
            with self.assertRaises(openai.BadRequestError) as raised:
                client.chat.completions.create(
                    model="claude",
                    messages=[
                        {
                            "role": "user",
                            "content": [
                                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                            ],
                        }
                    ],
                )
            self.assertEqual(raised.exception.param, "messages[0].content[0].image_url.url")

    @off_reactor
    def test_responses(self) -> None:
        """An C{input_image} part reaches each CLI too."""
        with self.openai_client() as client:
            for backend, model in OPENAI_MODELS.items():
                question = f"Describe it, {backend}"
                response = client.responses.create(
                    model=model,
                    input=[
                        {
                            "role": "user",
                            "content": [
                                {"type": "input_text", "text": question},
                                {"type": "input_image", "image_url": DATA_URL, "detail": "auto"},
                            ],
                        }
                    ],
                )
                self.assertEqual(response.output_text, f"{backend} answers: {question}")
                self.assert_shown(backend, question)

    @off_reactor
    def test_anthropic(self) -> None:
        """
        An C{image} block reaches each CLI, streamed or not; the follow-up
        without an image continues the session and shows no image again.
        """
        with self.anthropic_client() as client:
            for backend, model in ANTHROPIC_MODELS.items():
                question = f"Which colour, {backend}?"
                messages: list[Any] = [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {"type": "base64", "media_type": "image/png", "data": BASE64},
                            },
                            {"type": "text", "text": question},
                        ],
                    }
                ]
                with client.messages.stream(model=model, max_tokens=100, messages=messages) as stream:
                    first = stream.get_final_message()
                    session = stream.response.headers[HEADER]
                self.assertEqual(first.content[0].type, "text")
                self.assert_shown(backend, question)
                follow_up = f"And now, {backend}?"
                messages += [
                    {"role": "assistant", "content": [block.model_dump() for block in first.content]},
                    {"role": "user", "content": follow_up},
                ]
                raw = client.messages.with_raw_response.create(model=model, max_tokens=100, messages=messages)
                self.assertEqual(raw.headers[HEADER], session)
                later = [
                    run
                    for run in self.runs(backend)
                    if follow_up in run["stdin"] or follow_up in str(run.get("turns"))
                ]
                self.assertEqual([run["images"] for run in later], [[]])

    @off_reactor
    def test_langchain(self) -> None:
        """LangChain's multimodal C{HumanMessage} (an C{image_url} part)."""
        chat = self.langchain_chat("gpt-4o")
        message = HumanMessage(
            content=[
                {"type": "text", "text": "Name the colour"},
                {"type": "image_url", "image_url": {"url": DATA_URL}},
            ]
        )
        self.assertEqual(chat.invoke([message]).content, "codex answers: Name the colour")
        self.assert_shown("codex", "Name the colour")


class RemoteImageTests(SDKServerTestCase):
    """With C{server.fetch_image_urls}: the server fetches an image URL on 127.0.0.1."""

    server_config: ClassVar[Config] = {"server": {"fetch_image_urls": True}}

    def setUp(self) -> Any:
        image = Resource()
        image.putChild(b"red.png", Data(PNG, "image/png"))
        self.images = reactor.listenTCP(0, Site(image), interface="127.0.0.1")
        self.addCleanup(self.images.stopListening)
        return super().setUp()

    @off_reactor
    def test_fetched(self) -> None:
        """An C{image_url} with an http URL reaches the CLI as the fetched image; a 404 is a 400."""
        url = f"http://127.0.0.1:{self.images.getHost().port}/red.png"
        with self.openai_client() as client:
            content: list[Any] = [
                {"type": "text", "text": "Colour of the fetched one?"},
                {"type": "image_url", "image_url": {"url": url}},
            ]
            answer = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": content}]
            )
        self.assertEqual(answer.choices[0].message.content, "codex answers: Colour of the fetched one?")
        self.assert_shown_once()

    def assert_shown_once(self) -> None:
        [run] = self.runs("codex")
        self.assertEqual([image["size"] for image in run["images"]], [len(PNG)])
