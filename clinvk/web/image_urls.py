# -*- test-case-name: tests.web.test_image_urls -*-
"""
Fetching the images that requests name by URL, when the configuration
allows it (C{server.fetch_image_urls}; docs/design/images.md#image-urls).
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from twisted.internet import protocol
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers

from clinvk.compat.images import ImageFetchFailed

log = Logger()


class _TooLarge(Exception):
    pass


class _Body(protocol.Protocol):
    """
    Reads a response's body up to a limit; the Deferred fires with it, or
    fails when it is too large or the connection failed.  Cancelling the
    Deferred stops the reading.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._chunks: list[bytes] = []
        self._size = 0
        self.done: Deferred[bytes] = Deferred(lambda _: self._stop())

    def _stop(self) -> None:
        if self.transport is not None:
            cast("IPushProducer", self.transport).stopProducing()

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self._size += len(data)
        if self._size > self._limit:
            self._stop()
            self.done.errback(_TooLarge())
            return
        self._chunks.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self._chunks))
        else:
            self.done.errback(reason)


class HTTPGetter(Protocol):
    """What fetches a URL: C{treq.client.HTTPClient}, or C{StubTreq} in tests."""

    def get(self, url: str, /, *, headers: Headers, unbuffered: bool) -> Deferred[Any]: ...


class ImageURLFetcher:
    """
    Fetches image URLs with a size limit and a time limit.

    @param client: Makes the requests (it follows redirects).
    @param clock: Times the limit.
    @param max_bytes: The largest image taken.
    @param timeout: Seconds a fetch may take, from the request to the last
        byte.
    """

    def __init__(self, client: HTTPGetter, clock: IReactorTime, *, max_bytes: int, timeout: float) -> None:
        self._client = client
        self._clock = clock
        self._max_bytes = max_bytes
        self._timeout = timeout

    async def __call__(self, url: str) -> tuple[str, bytes]:
        """
        The media type and bytes of the image at C{url}.

        @raise ImageFetchFailed: Saying why there is none: an answer that
            is not 200, too large, too slow, or a connection that failed.
        """
        pending: list[Deferred[Any]] = []
        timer = self._clock.callLater(self._timeout, lambda: pending[-1].cancel() if pending else None)
        try:
            # treq parses the URL at once, and may raise.
            pending.append(self._client.get(url, headers=Headers({"Accept": ["image/*"]}), unbuffered=True))
            response = await pending[0]
            body = _Body(self._max_bytes)
            pending.append(body.done)
            response.deliverBody(body)
            if response.code != 200:
                _drop(body)
                raise ImageFetchFailed(f"{_shown(url)} answered {response.code}")
            length = response.length
            if isinstance(length, int) and length > self._max_bytes:
                _drop(body)
                raise ImageFetchFailed(f"{_shown(url)} is larger than {self._max_bytes} bytes")
            data = await body.done
        except CancelledError:
            raise ImageFetchFailed(f"{_shown(url)} took longer than {self._timeout:g} seconds") from None
        except _TooLarge:
            raise ImageFetchFailed(f"{_shown(url)} is larger than {self._max_bytes} bytes") from None
        except ImageFetchFailed:
            raise
        except Exception as e:
            # Debug only: a URL may carry a token in its query.
            log.debug("Could not fetch an image url={url} error={error}", url=_shown(url), error=str(e))
            raise ImageFetchFailed(f"{_shown(url)} could not be fetched: {e.__class__.__name__}") from None
        finally:
            if timer.active():
                timer.cancel()
        content_type = (response.headers.getRawHeaders(b"content-type") or [b""])[0]
        media_type = content_type.decode("latin-1").split(";", 1)[0].strip().lower()
        return media_type, data


def _shown(url: str) -> str:
    """C{url} as errors and logs show it: without its query and fragment, which may hold a token."""
    return url.split("?", 1)[0].split("#", 1)[0]


def _drop(body: _Body) -> None:
    """Stop reading C{body}, whose content is of no use: its connection closes."""
    body.done.addErrback(lambda _: None)
    body.done.cancel()
