# -*- test-case-name: tests.backends.test_images -*-
"""
Images in prompts (docs/design/images.md): a prompt holds each image's
marker where the image stands; these helpers find the markers, so that
each backend can put the image there the way its CLI takes images.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from typing import Any

from clinvk.model import ImageInput


def segments(prompt: str, images: Sequence[ImageInput]) -> list[str | ImageInput]:
    """
    C{prompt} cut at the markers of C{images}: its texts (never empty)
    and its images, in order.
    """
    if not images:
        return [prompt] if prompt else []
    by_marker = {image.marker: image for image in images}
    pattern = "(" + "|".join(re.escape(marker) for marker in by_marker) + ")"
    found: list[str | ImageInput] = []
    for piece in re.split(pattern, prompt):
        if piece in by_marker:
            found.append(by_marker[piece])
        elif piece:
            found.append(piece)
    return found


def replaced(prompt: str, images: Sequence[ImageInput], text_of: Callable[[int, ImageInput], str]) -> str:
    """
    C{prompt} with the marker of each of C{images} replaced by
    C{text_of(number, image)}, numbering the images from 1 in order.
    """
    for number, image in enumerate(images, start=1):
        prompt = prompt.replace(image.marker, text_of(number, image))
    return prompt


def anthropic_blocks(prompt: str, images: Sequence[ImageInput]) -> list[dict[str, Any]]:
    """C{prompt} as Anthropic content blocks: text blocks, and base64 image blocks where the markers are."""
    blocks: list[dict[str, Any]] = []
    for piece in segments(prompt, images):
        if isinstance(piece, ImageInput):
            data = base64.b64encode(piece.data).decode("ascii")
            source = {"type": "base64", "media_type": piece.media_type, "data": data}
            blocks.append({"type": "image", "source": source})
        else:
            blocks.append({"type": "text", "text": piece})
    return blocks
