"""
Images in prompts (docs/design/images.md): finding their markers, and the
images a prompt shows.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from clinvk.backends.images import anthropic_blocks, replaced, segments
from clinvk.backends.options import shown_images
from clinvk.model import ImageInput, RunRequest

RED = ImageInput("image-red.png", "image/png", b"red")
BLUE = ImageInput("image-blue.jpg", "image/jpeg", b"blue")


class SegmentTests(SynchronousTestCase):
    def test_segments(self) -> None:
        """Texts and images in order; no empty texts; text alone when there are no images."""
        prompt = f"{RED.marker}compare with {BLUE.marker}{RED.marker}"
        self.assertEqual(segments(prompt, [RED, BLUE]), [RED, "compare with ", BLUE, RED])
        self.assertEqual(segments("plain [image: x]", []), ["plain [image: x]"])
        self.assertEqual(segments("", []), [])

    def test_replaced(self) -> None:
        """Each image's marker, every time it appears, numbered in the order given."""
        prompt = f"a {BLUE.marker} b {RED.marker} c {BLUE.marker}"
        self.assertEqual(
            replaced(prompt, [BLUE, RED], lambda number, image: f"<{number}:{image.media_type}>"),
            "a <1:image/jpeg> b <2:image/png> c <1:image/jpeg>",
        )

    def test_anthropic_blocks(self) -> None:
        self.assertEqual(
            anthropic_blocks(f"see {RED.marker}", [RED]),
            [
                {"type": "text", "text": "see "},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "cmVk"}},
            ],
        )


class ShownImagesTests(SynchronousTestCase):
    def test_shown(self) -> None:
        """
        Only the images whose markers the prompt holds, in the order they
        first appear: a continued conversation's new input shows only its own.
        """
        request = RunRequest(backend="codex", prompt=f"{BLUE.marker} then {RED.marker}", images=[RED, BLUE])
        self.assertEqual(shown_images(request), (BLUE, RED))
        self.assertEqual(shown_images(RunRequest(backend="codex", prompt="next", images=[RED])), ())

    def test_repr(self) -> None:
        """An image's bytes stay out of logs and reprs."""
        self.assertEqual(
            repr(RED), "ImageInput(name='image-red.png', media_type='image/png', data=<3 bytes>)"
        )
