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
import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from twisted.internet.defer import CancelledError, Deferred, FirstError, gatherResults

from clinvk.errors import InvalidRequest
from clinvk.model import ImageInput

# The image types every CLI's model takes, with their file name extensions.
MEDIA_TYPES: Mapping[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
}

# The most image URLs one request has fetched (server.fetch_image_urls).
MAX_IMAGE_URLS = 16

# What count_tokens adds for an image, without decoding its size: about the
# most an image costs Claude, which scales larger ones down to it.
IMAGE_TOKENS = 1600

_DATA_URL_HINT = "send the image inline, as a data URL such as data:image/png;base64,..."

# Fetches an image URL: its media type and bytes, or fails with the reason.
FetchImage = Callable[[str], Awaitable[tuple[str, bytes]]]


class ImageFetchFailed(Exception):
    """An image URL could not be fetched; the message says why."""


class Images:
    """
    The images of one request's messages, in the order found, each once.

    @param fetch_urls: Whether remote image URLs are fetched
        (C{server.fetch_image_urls}); they stand in the text as
        placeholders until L{resolved} has fetched them.
    """

    def __init__(self, *, fetch_urls: bool = False) -> None:
        self._found: dict[str, ImageInput] = {}
        self._fetch_urls = fetch_urls
        # The remote URLs to fetch, with where each was, by placeholder.
        self._remote: dict[str, tuple[str, str]] = {}

    @property
    def remote(self) -> int:
        """How many remote images wait to be fetched."""
        return len(self._remote)

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
        if url.startswith(("http://", "https://")) and self._fetch_urls:
            if len(self._remote) >= MAX_IMAGE_URLS:
                raise InvalidRequest(
                    f"at most {MAX_IMAGE_URLS} image URLs are fetched for a request", param=param
                )
            # Unguessable: no text a client writes stands for the image.
            placeholder = f"[image-url: {secrets.token_hex(12)}]"
            self._remote[placeholder] = (url, param)
            return placeholder
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
        if source.get("type") == "url" and self._fetch_urls:
            return self.data_url(source.get("url"), f"{param}.url")
        if source.get("type") != "base64":
            raise InvalidRequest(
                f"image source type {source.get('type')} is not supported: send the image as a base64 source",
                param=f"{param}.type",
            )
        return self.add(str(source.get("media_type") or ""), source.get("data"), param)

    def add(self, media_type: str, payload: object, param: str) -> str:
        """The marker of an image of C{media_type} whose base64 text is C{payload}."""
        try:
            data = base64.b64decode(str(payload or ""), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("the image data is not valid base64", param=param) from None
        return self.add_bytes(media_type, data, param)

    def add_bytes(self, media_type: str, data: bytes, param: str) -> str:
        """The marker of an image of C{media_type} made of C{data}."""
        media_type = media_type.strip().lower()
        extension = MEDIA_TYPES.get(media_type)
        if extension is None:
            supported = ", ".join(MEDIA_TYPES)
            raise InvalidRequest(
                f"unsupported image type {media_type or '(none)'}: use one of {supported}", param=param
            )
        if not data:
            raise InvalidRequest("the image data is empty", param=param)
        digest = hashlib.sha256(data).hexdigest()[:16]
        image = ImageInput(f"image-{digest}.{extension}", media_type, data)
        self._found.setdefault(image.name, image)
        return image.marker

    async def resolved(
        self, turns: Sequence[tuple[str, str]], fetch: FetchImage | None
    ) -> list[tuple[str, str]]:
        """
        C{turns} with each remote image's placeholder replaced by the
        marker of the image fetched from its URL (all fetched at once).

        @raise InvalidRequest: Naming the part whose image could not be
            fetched, or was no image clinvk takes.
        """
        if not self._remote:
            return list(turns)
        if fetch is None:
            raise InvalidRequest(f"remote image URLs are not fetched: {_DATA_URL_HINT}")

        async def one(url: str, param: str) -> str:
            try:
                media_type, data = await fetch(url)
            except ImageFetchFailed as e:
                raise InvalidRequest(f"could not fetch the image: {e}", param=param) from None
            return self.add_bytes(media_type, data, param)

        fetches = [Deferred.fromCoroutine(one(url, param)) for url, param in self._remote.values()]
        try:
            markers = await gatherResults(fetches, consumeErrors=True)
        except FirstError as e:
            # The others are of no use now.
            for fetching in fetches:
                fetching.cancel()
            e.subFailure.raiseException()
        except CancelledError:
            for fetching in fetches:
                fetching.cancel()
            raise
        replacements = dict(zip(self._remote, markers, strict=True))
        self._remote.clear()
        result = []
        for role, text in turns:
            for placeholder, marker in replacements.items():
                text = text.replace(placeholder, marker)
            result.append((role, text))
        return result
