"""
Images on the compatibility APIs through the real root resource
(docs/design/images.md): each CLI gets them its own way, through files of
the run's own where it reads files.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from clinvk.compat.images import ImageFetchFailed
from clinvk.compat.models import estimate_tokens
from tests.web._native import NativeTestCase, claude_result
from tests.web.test_structured_output import codex_answer, gemini_answer

CHAT = "/openai/v1/chat/completions"
MESSAGES = "/anthropic/v1/messages"
RESPONSES = "/openai/v1/responses"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)
DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
NAME = "image-b1ff9c8ea3a780ba.png"


def chat_with_image(model: str = "claude", url: str = DATA_URL, role: str = "user") -> dict[str, Any]:
    content = [
        {"type": "text", "text": "What colour is"},
        {"type": "image_url", "image_url": {"url": url, "detail": "auto"}},
        {"type": "text", "text": "this?"},
    ]
    return {"model": model, "messages": [{"role": role, "content": content}]}


class ImagesTestCase(NativeTestCase):
    def setUp(self) -> None:
        self.scratch = self.mktemp()
        os.mkdir(self.scratch)
        self.use_server(scratch_root=self.scratch)

    def error(self, response: Any, status: int) -> dict[str, Any]:
        self.assertEqual(response.code, status, response.body)
        body = json.loads(response.body)
        error: dict[str, Any] = body["error"]
        return error

    def answered(self, path: str, body: dict[str, Any], output: bytes) -> Any:
        pending = self.start("POST", path, body)
        self.child().emit_stdout(output)
        self.child().exit(0)
        response = self.finish(pending)
        self.assertEqual(response.code, 200, response.body)
        return json.loads(response.body)


class OpenAIImageTests(ImagesTestCase):
    def test_claude(self) -> None:
        """
        claude reads the prompt as one stream-json user message whose
        blocks hold the text and the image, in order; no file is written.
        """
        pending = self.start("POST", CHAT, chat_with_image())
        child = self.child()
        self.assertEqual(os.listdir(self.scratch), [])
        argv = child.argv
        self.assertEqual(argv[argv.index("--input-format") + 1], "stream-json")
        self.assertEqual(argv[argv.index("--output-format") + 1], "stream-json")
        self.assertNotIn("--include-partial-messages", argv)
        self.assertTrue(child.stdin.endswith(b"\n"))
        message = json.loads(child.stdin)
        self.assertEqual((message["type"], message["message"]["role"]), ("user", "user"))
        image = {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()}
        self.assertEqual(
            message["message"]["content"],
            [
                {"type": "text", "text": "What colour is\n"},
                {"type": "image", "source": image},
                {"type": "text", "text": "\nthis?"},
            ],
        )
        child.emit_stdout(claude_result("Red."))
        child.exit(0)
        answer = json.loads(self.finish(pending).body)
        self.assertEqual(answer["choices"][0]["message"]["content"], "Red.")

    def test_codex(self) -> None:
        """
        codex gets the image as --image=<file> in the run's own directory,
        which is there while it runs and gone after; the prompt names it
        as codex does.
        """
        pending = self.start("POST", CHAT, chat_with_image("gpt-5"))
        child = self.child()
        [flag] = [arg for arg in child.argv if arg.startswith("--image=")]
        path = flag.removeprefix("--image=")
        self.assertEqual((os.path.basename(path), child.argv[-1]), (NAME, "-"))
        with open(path, "rb") as image:
            self.assertEqual(image.read(), PNG)
        self.assertEqual(child.stdin, b"What colour is\n[Image #1]\nthis?")
        child.emit_stdout(codex_answer("Red."))
        child.exit(0)
        self.assertEqual(self.finish(pending).code, 200)
        self.assertEqual(os.listdir(self.scratch), [])

    def test_gemini(self) -> None:
        """gemini gets an @ reference to the file, in a directory it is told to include."""
        pending = self.start("POST", CHAT, chat_with_image("gemini"))
        child = self.child()
        directory = child.argv[child.argv.index("--include-directories") + 1]
        self.assertEqual(os.path.dirname(directory), self.scratch)
        self.assertEqual(child.stdin.decode(), f"What colour is\n@{directory}/{NAME}\nthis?")
        child.emit_stdout(gemini_answer("Red."))
        child.exit(0)
        self.assertEqual(self.finish(pending).code, 200)
        self.assertFalse(os.path.exists(directory))

    def test_same_image_twice(self) -> None:
        """An image sent twice is one file, named twice."""
        body = chat_with_image("gpt-5")
        body["messages"][0]["content"].append({"type": "image_url", "image_url": {"url": DATA_URL}})
        self.start("POST", CHAT, body)
        child = self.child()
        self.assertEqual(len([arg for arg in child.argv if arg.startswith("--image=")]), 1)
        self.assertEqual(child.stdin, b"What colour is\n[Image #1]\nthis?\n[Image #1]")
        child.exit(0)

    def test_refused(self) -> None:
        """Images clinvk cannot pass on are a 400 naming where they are, and nothing runs."""
        bmp = "data:image/bmp;base64," + base64.b64encode(b"BM").decode()
        cases = [
            (
                chat_with_image(url="https://example.com/a.png"),
                "messages[0].content[1].image_url.url",
                "remote image URLs are not fetched",
            ),
            (
                chat_with_image(url=bmp),
                "messages[0].content[1].image_url.url",
                "unsupported image type image/bmp",
            ),
            (
                chat_with_image(url="data:image/png;base64,%%%"),
                "messages[0].content[1].image_url.url",
                "not valid base64",
            ),
            (
                chat_with_image(url="data:image/png,raw"),
                "messages[0].content[1].image_url.url",
                "must be base64",
            ),
            (
                chat_with_image(role="system"),
                "messages[0].content",
                "unsupported content part type: image_url",
            ),
            (
                chat_with_image(role="assistant"),
                "messages[0].content",
                "unsupported content part type: image_url",
            ),
        ]
        for body, param, message in cases:
            error = self.error(self.request("POST", CHAT, body), 400)
            self.assertEqual(error["param"], param, body)
            self.assertIn(message, error["message"])
        self.assertEqual(self.reactor.spawned, [])

    def test_responses(self) -> None:
        """The Responses API's input_image parts reach the CLI the same way."""
        content = [{"type": "input_text", "text": "Colour?"}, {"type": "input_image", "image_url": DATA_URL}]
        body = {"model": "gpt-5", "input": [{"role": "user", "content": content}]}
        answer = self.answered(RESPONSES, body, codex_answer("Red."))
        self.assertEqual(answer["output"][0]["content"][0]["text"], "Red.")
        self.assertEqual(self.child().stdin, b"Colour?\n[Image #1]")
        self.assertEqual(len([arg for arg in self.child().argv if arg.startswith("--image=")]), 1)


class AnthropicImageTests(ImagesTestCase):
    def image_block(self, **source: Any) -> dict[str, Any]:
        return {
            "type": "image",
            "source": source
            or {"type": "base64", "media_type": "image/png", "data": base64.b64encode(PNG).decode()},
        }

    def body(self, *content: Any) -> dict[str, Any]:
        return {"model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": list(content)}]}

    def test_image_block(self) -> None:
        """An image block goes on to claude as it came."""
        answer = self.answered(
            MESSAGES,
            self.body(self.image_block(), {"type": "text", "text": "Colour?"}),
            claude_result("Red."),
        )
        self.assertEqual(answer["content"][0]["text"], "Red.")
        blocks = json.loads(self.child().stdin)["message"]["content"]
        self.assertEqual([block["type"] for block in blocks], ["image", "text"])
        self.assertEqual(blocks[0], self.image_block())

    def test_refused(self) -> None:
        """A URL source is a 400 in Anthropic's shape, naming the source's type."""
        body = self.body(self.image_block(type="url", url="https://example.com/a.png"))
        error = self.error(self.request("POST", MESSAGES, body), 400)
        self.assertEqual(error["type"], "invalid_request_error")
        self.assertIn("image source type url is not supported", error["message"])
        self.assertEqual(self.reactor.spawned, [])

    def test_count_tokens(self) -> None:
        """count_tokens counts an image at a fixed estimate."""
        path = "/anthropic/v1/messages/count_tokens"
        without = self.body({"type": "text", "text": "Colour?"})
        with_image = self.body(self.image_block(), {"type": "text", "text": "Colour?"})
        counts = [
            json.loads(self.request("POST", path, body).body)["input_tokens"]
            for body in (without, with_image)
        ]
        self.assertEqual(
            counts, [estimate_tokens("Colour?"), 1600 + estimate_tokens(f"[image: {NAME}]\nColour?")]
        )


class RemoteImageTests(ImagesTestCase):
    """With C{server.fetch_image_urls} on (docs/design/images.md#image-urls)."""

    def setUp(self) -> None:
        super().setUp()
        self.fetched: list[str] = []
        self.answers: dict[str, tuple[str, bytes] | Exception] = {
            "https://example.com/red.png": ("image/png", PNG),
            "https://example.com/page": ("text/html", b"<html>"),
            "https://example.com/gone.png": ImageFetchFailed("https://example.com/gone.png answered 404"),
        }

        async def fetch(url: str) -> tuple[str, bytes]:
            self.fetched.append(url)
            answer = self.answers[url]
            if isinstance(answer, Exception):
                raise answer
            return answer

        self.use_server(scratch_root=self.scratch, fetch_image=fetch)

    def test_fetched(self) -> None:
        """A URL's image is fetched once and reaches the CLI as an inline one would."""
        body = chat_with_image("gpt-5", url="https://example.com/red.png")
        body["messages"][0]["content"].append({"type": "image_url", "image_url": {"url": DATA_URL}})
        self.start("POST", CHAT, body)
        child = self.child()
        [flag] = [arg for arg in child.argv if arg.startswith("--image=")]
        self.assertEqual(os.path.basename(flag), NAME)
        self.assertEqual(child.stdin, b"What colour is\n[Image #1]\nthis?\n[Image #1]")
        self.assertEqual(self.fetched, ["https://example.com/red.png"])
        child.exit(0)

    def test_anthropic_url_source(self) -> None:
        """Anthropic's url source is fetched too."""
        block = {"type": "image", "source": {"type": "url", "url": "https://example.com/red.png"}}
        body = {"model": "claude", "max_tokens": 64, "messages": [{"role": "user", "content": [block]}]}
        self.start("POST", MESSAGES, body)
        [image] = [
            block
            for block in json.loads(self.child().stdin)["message"]["content"]
            if block["type"] == "image"
        ]
        self.assertEqual(base64.b64decode(image["source"]["data"]), PNG)
        self.child().exit(0)

    def test_failures(self) -> None:
        """A fetch that failed, or that was no image, is a 400 naming the part; nothing runs."""
        for url, message in (
            (
                "https://example.com/gone.png",
                "could not fetch the image: https://example.com/gone.png answered 404",
            ),
            ("https://example.com/page", "unsupported image type text/html"),
        ):
            error = self.error(self.request("POST", CHAT, chat_with_image(url=url)), 400)
            self.assertEqual(error["param"], "messages[0].content[1].image_url.url")
            self.assertIn(message, error["message"])
        self.assertEqual(self.reactor.spawned, [])

    def test_count_tokens_fetches_nothing(self) -> None:
        """count_tokens counts a URL's image without fetching it."""
        block = {"type": "image", "source": {"type": "url", "url": "https://example.com/red.png"}}
        body = {"model": "claude", "messages": [{"role": "user", "content": [block]}]}
        response = self.request("POST", "/anthropic/v1/messages/count_tokens", body)
        self.assertGreaterEqual(json.loads(response.body)["input_tokens"], 1600)
        self.assertEqual(self.fetched, [])
