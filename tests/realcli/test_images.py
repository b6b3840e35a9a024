"""
Images with the real CLIs (docs/design/images.md): an image sent through
the OpenAI SDK reaches each CLI's model request, as the vendor's own
image part: claude's image block (from its stream-json input), codex's
C{input_image} (from C{--image}), gemini's C{inlineData} (from an @
reference to a file in an included directory).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any, ClassVar

from clinvk.testing import model_server
from tests.integration._sdk_server import off_reactor
from tests.integration._server import Config
from tests.realcli._harness import MODELS, RealCLITestCase

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)
QUESTION = "What colour is this square?"


def walk(value: Any) -> Iterator[dict[str, Any]]:
    """Every object inside C{value}."""
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


class _ImageMixin:
    backend: ClassVar[str]
    server_config: ClassVar[Config] = {}

    def image_parts(self, body: Any) -> list[dict[str, Any]]:
        """The vendor's image parts in a model request."""
        raise NotImplementedError

    @off_reactor
    def test_image(self: Any) -> None:
        """The model request holds the question and one image part."""
        self.model.script(self.backend, model_server.text("Red."))
        content: list[Any] = [
            {"type": "text", "text": QUESTION},
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()},
            },
        ]
        answer = self.openai_client().chat.completions.create(
            model=MODELS[self.backend], messages=[{"role": "user", "content": content}]
        )
        self.assertEqual(answer.choices[0].message.content, "Red.")
        [request] = [
            turn for turn in self.model.turns(self.backend) if any(QUESTION in t for t in turn.user_texts())
        ]
        self.assertEqual(len(self.image_parts(request.body)), 1, request.body)


class ClaudeImageTests(_ImageMixin, RealCLITestCase):
    backend = "claude"

    def image_parts(self, body: Any) -> list[dict[str, Any]]:
        return [
            part
            for part in walk(body.get("messages"))
            if part.get("type") == "image" and part.get("source", {}).get("media_type") == "image/png"
        ]


class CodexImageTests(_ImageMixin, RealCLITestCase):
    backend = "codex"

    def image_parts(self, body: Any) -> list[dict[str, Any]]:
        return [
            part
            for part in walk(body.get("input"))
            if part.get("type") == "input_image" and str(part.get("image_url", "")).startswith("data:image/")
        ]


class GeminiImageTests(_ImageMixin, RealCLITestCase):
    backend = "gemini"

    def image_parts(self, body: Any) -> list[dict[str, Any]]:
        return [
            part
            for part in walk(body.get("contents"))
            if str(part.get("inlineData", {}).get("mimeType", "")).startswith("image/")
        ]
