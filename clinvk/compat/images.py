# -*- test-case-name: tests.compat.test_images -*-
"""
Images in the messages of the compatibility APIs (docs/design/images.md):
OpenAI's C{image_url} parts, the Responses API's C{input_image} parts and
Anthropic's C{image} blocks, each decoded into an
L{clinvk.model.ImageInput} whose marker takes its place in the text.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from typing import Any

from clinvk.errors import InvalidRequest
from clinvk.model import ImageInput

# The image types every CLI's model takes, with their file name extensions.
MEDIA_TYPES: Mapping[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
}

# What count_tokens adds for an image, without decoding its size: about the
# most an image costs Claude, which scales larger ones down to it.
IMAGE_TOKENS = 1600

_DATA_URL_HINT = "send the image inline, as a data URL such as data:image/png;base64,..."


class Images:
    """
    The images of one request's messages, in the order found, each once.
    """

    def __init__(self) -> None:
        self._found: dict[str, ImageInput] = {}

    @property
    def found(self) -> tuple[ImageInput, ...]:
        """The images found so far."""
        return tuple(self._found.values())

    def part(self, part: Mapping[str, Any], param: str) -> str | None:
        """
        The marker of an image part or block (C{image_url}, C{input_image},
        C{image}); L{None} for a part of another type.

        @raise InvalidRequest: For an image clinvk cannot pass on: not
            inline, of another type, or not valid base64.
        """
        kind = part.get("type")
        if kind == "image_url":
            # {"image_url": {"url": ..., "detail": ...}}; some clients send the URL alone.
            inner = part.get("image_url")
            url = inner.get("url") if isinstance(inner, Mapping) else inner
            return self.data_url(url, f"{param}.image_url.url")
        if kind == "input_image":
            if part.get("file_id") and not part.get("image_url"):
                raise InvalidRequest(f"image files are not supported: {_DATA_URL_HINT}", param=param)
            return self.data_url(part.get("image_url"), f"{param}.image_url")
        if kind == "image":
            return self._anthropic(part.get("source"), f"{param}.source")
        return None

    def data_url(self, url: object, param: str) -> str:
        """The marker of the image of a C{data:} URL."""
        if not isinstance(url, str) or not url:
            raise InvalidRequest("an image needs its URL", param=param)
        if not url.startswith("data:"):
            raise InvalidRequest(f"remote image URLs are not fetched: {_DATA_URL_HINT}", param=param)
        header, comma, payload = url[len("data:") :].partition(",")
        media_type, _, encoding = header.partition(";")
        if not comma or encoding.lower() != "base64":
            raise InvalidRequest(f"an image data URL must be base64: {_DATA_URL_HINT}", param=param)
        return self.add(media_type, payload, param)

    def _anthropic(self, source: object, param: str) -> str:
        if not isinstance(source, Mapping) or not source.get("type"):
            raise InvalidRequest("an image block needs its source", param=param)
        if source.get("type") != "base64":
            raise InvalidRequest(
                f"image source type {source.get('type')} is not supported: send the image as a base64 source",
                param=f"{param}.type",
            )
        return self.add(str(source.get("media_type") or ""), source.get("data"), param)

    def add(self, media_type: str, payload: object, param: str) -> str:
        """The marker of an image of C{media_type} whose base64 text is C{payload}."""
        media_type = media_type.strip().lower()
        extension = MEDIA_TYPES.get(media_type)
        if extension is None:
            supported = ", ".join(MEDIA_TYPES)
            raise InvalidRequest(
                f"unsupported image type {media_type or '(none)'}: use one of {supported}", param=param
            )
        try:
            data = base64.b64decode(str(payload or ""), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("the image data is not valid base64", param=param) from None
        if not data:
            raise InvalidRequest("the image data is empty", param=param)
        digest = hashlib.sha256(data).hexdigest()[:16]
        image = ImageInput(f"image-{digest}.{extension}", media_type, data)
        self._found.setdefault(image.name, image)
        return image.marker
