"""
Fetching image URLs (docs/design/images.md#image-urls).
"""

from __future__ import annotations

from typing import Any

from treq.testing import StubTreq
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import Request

from clinvk.compat.images import ImageFetchFailed
from clinvk.web.image_urls import ImageURLFetcher

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40


class Images(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        self.accept = request.getHeader(b"accept")
        if request.path == b"/red.png":
            request.setHeader(b"content-type", b"image/png; charset=binary")
            return PNG
        if request.path == b"/big.png":
            request.setHeader(b"content-type", b"image/png")
            return PNG * 10
        request.setResponseCode(404)
        return b"not here"


class _Stalled:
    """A response whose body never ends, and the transport it was read from."""

    code = 200
    length = 10
    headers = Headers({b"content-type": [b"image/png"]})

    def __init__(self) -> None:
        self.stopped = False

    def deliverBody(self, protocol: Any) -> None:  # noqa: N802 - IResponse naming
        protocol.makeConnection(self)
        protocol.dataReceived(b"\x89PNG")

    def stopProducing(self) -> None:
        self.stopped = True


class FetcherTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.resource = Images()
        stub: Any = StubTreq(self.resource)
        self.fetch = ImageURLFetcher(stub, self.clock, max_bytes=100, timeout=5)

    def fetched(self, url: str) -> Any:
        return self.successResultOf(Deferred.fromCoroutine(self.fetch(url)))

    def failed(self, url: str) -> str:
        failure = self.failureResultOf(Deferred.fromCoroutine(self.fetch(url)), ImageFetchFailed)
        return str(failure.value)

    def test_image(self) -> None:
        """The media type (without parameters) and the bytes; images are asked for."""
        self.assertEqual(self.fetched("https://example.com/red.png"), ("image/png", PNG))
        self.assertEqual(self.resource.accept, b"image/*")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_failures(self) -> None:
        """A status other than 200, or more bytes than the limit."""
        self.assertEqual(self.failed("https://example.com/x"), "https://example.com/x answered 404")
        self.assertEqual(
            self.failed("https://example.com/big.png"), "https://example.com/big.png is larger than 100 bytes"
        )

    def test_malformed_url(self) -> None:
        """A URL the client cannot parse is a failed fetch, its query not shown."""

        class Parsing:
            def get(self, url: str, *, headers: Headers, unbuffered: bool) -> Deferred[Any]:
                raise ValueError("bad URL")

        fetch = ImageURLFetcher(Parsing(), self.clock, max_bytes=100, timeout=5)
        failure = self.failureResultOf(Deferred.fromCoroutine(fetch("http://[::1?token=x")), ImageFetchFailed)
        self.assertEqual(str(failure.value), "http://[::1 could not be fetched: ValueError")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_too_slow_to_answer(self) -> None:
        """No answer within the time limit: the request is cancelled."""

        class Silent:
            def get(self, url: str, *, headers: Headers, unbuffered: bool) -> Deferred[Any]:
                return Deferred()

        fetch = ImageURLFetcher(Silent(), self.clock, max_bytes=100, timeout=5)
        pending = Deferred.fromCoroutine(fetch("https://example.com/slow.png"))
        self.clock.advance(5)
        self.assertEqual(
            str(self.failureResultOf(pending, ImageFetchFailed).value),
            "https://example.com/slow.png took longer than 5 seconds",
        )

    def test_stalled_body(self) -> None:
        """A body that stops coming is given up at the time limit, and its reading stopped."""
        response = _Stalled()

        class Stalling:
            def get(self, url: str, *, headers: Headers, unbuffered: bool) -> Deferred[Any]:
                return Deferred.fromCoroutine(_now(response))

        fetch = ImageURLFetcher(Stalling(), self.clock, max_bytes=100, timeout=5)
        pending = Deferred.fromCoroutine(fetch("https://example.com/stall.png"))
        self.assertNoResult(pending)
        self.clock.advance(5)
        self.failureResultOf(pending, ImageFetchFailed)
        self.assertTrue(response.stopped)


async def _now(value: Any) -> Any:
    return value
