"""
Images of the compatibility APIs' messages (docs/design/images.md#image-parts).
"""

from __future__ import annotations

import base64
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from clinvk.compat.images import Images
from clinvk.errors import InvalidRequest

DATA = base64.b64encode(b"\x89PNG fake").decode()


class ImagesTests(SynchronousTestCase):
    def test_parts(self) -> None:
        """Each API's image part gives one image, named by its content; text parts are not images."""
        images = Images()
        markers = [
            images.part({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{DATA}"}}, "p"),
            images.part({"type": "image_url", "image_url": f"data:IMAGE/PNG;base64,{DATA}"}, "p"),
            images.part({"type": "input_image", "image_url": f"data:image/png;base64,{DATA}"}, "p"),
            images.part(
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": DATA}}, "p"
            ),
        ]
        [image] = images.found
        self.assertEqual(set(markers), {image.marker})
        self.assertRegex(image.name, "^image-[0-9a-f]{16}[.]png$")
        self.assertEqual((image.media_type, image.data), ("image/png", b"\x89PNG fake"))
        self.assertIsNone(images.part({"type": "text", "text": "x"}, "p"))

    def test_extensions(self) -> None:
        images = Images()
        for media_type in ("image/jpeg", "image/gif", "image/webp"):
            images.add(media_type, base64.b64encode(media_type.encode()).decode(), "p")
        self.assertEqual([image.name.rsplit(".", 1)[1] for image in images.found], ["jpg", "gif", "webp"])

    def test_refused(self) -> None:
        """What cannot be passed on is refused with the param of the offending member."""
        cases: list[tuple[dict[str, Any], str, str]] = [
            (
                {"type": "image_url", "image_url": {"url": "http://x/a.png"}},
                "p.image_url.url",
                "remote image URLs",
            ),
            ({"type": "image_url", "image_url": {}}, "p.image_url.url", "an image needs its URL"),
            ({"type": "input_image", "file_id": "file-1"}, "p", "image files are not supported"),
            ({"type": "image", "source": {"type": "file", "file_id": "f"}}, "p.source.type", "type file"),
            (
                {"type": "image", "source": {"type": "base64", "data": DATA}},
                "p.source",
                "unsupported image type (none)",
            ),
            (
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": ""}},
                "p.source",
                "empty",
            ),
        ]
        for part, param, message in cases:
            with self.assertRaises(InvalidRequest) as raised:
                Images().part(part, "p")
            self.assertEqual(raised.exception.param, param, part)
            self.assertIn(message, str(raised.exception))


class RemoteTests(SynchronousTestCase):
    def test_placeholders(self) -> None:
        """
        A URL stands as an unguessable placeholder until fetched; text that
        looks like one is left alone, and a request may name 16 URLs at most.
        """
        images = Images(fetch_urls=True)
        placeholder = images.part({"type": "image_url", "image_url": {"url": "https://x/a.png"}}, "p") or ""
        self.assertRegex(placeholder, r"^\[image-url: [0-9a-f]{24}\]$")
        fetched: list[str] = []

        async def fetch(url: str) -> tuple[str, bytes]:
            fetched.append(url)
            return "image/png", b"png"

        turns = [("user", f"[image-url: 1] {placeholder}")]
        [(role, text)] = self.successResultOf(Deferred.fromCoroutine(images.resolved(turns, fetch)))
        [image] = images.found
        self.assertEqual(
            (role, text, fetched), ("user", f"[image-url: 1] {image.marker}", ["https://x/a.png"])
        )
        many = Images(fetch_urls=True)
        for index in range(16):
            many.part({"type": "image_url", "image_url": {"url": f"https://x/{index}.png"}}, "p")
        with self.assertRaises(InvalidRequest):
            many.part({"type": "image_url", "image_url": {"url": "https://x/17.png"}}, "p")
