"""
Tests for L{clinvk.web._responses}.
"""

from __future__ import annotations

from typing import cast

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IRequest
from twisted.web.test.requesthelper import DummyRequest

from clinvk.web import _responses
from clinvk.web._responses import json_bytes, json_pieces, json_response, write_json


class StatusLineTests(SynchronousTestCase):
    """Every status clinvk sends has its standard reason phrase."""

    def test_reason_phrases(self) -> None:
        """Including 422 and 429, which Twisted does not know."""
        expected = {
            200: b"OK",
            400: b"Bad Request",
            404: b"Not Found",
            422: b"Unprocessable Content",
            429: b"Too Many Requests",
            503: b"Service Unavailable",
        }
        for status, phrase in expected.items():
            request = DummyRequest([b""])
            json_response(cast("IRequest", request), {"status": status}, status=status)
            self.assertEqual((request.responseCode, request.responseMessage), (status, phrase))


class JSONPiecesTests(SynchronousTestCase):
    """Bodies with large strings are encoded, and written, in pieces."""

    def setUp(self) -> None:
        self.patch(_responses, "LARGE_STRING", 4)

    def test_same_bytes(self) -> None:
        """The pieces join into exactly the bytes of json_bytes."""
        body = {
            "output": 'long "quoted"\\ text\n\u00e9\u2028\U0001f600!',
            "short": "abc",
            "nested": [{"text": "another long one"}, 1, None, True],
            "usage": {"input_tokens": 1},
        }
        pieces = json_pieces(body)
        self.assertGreater(len(pieces), 3)
        self.assertEqual(b"".join(pieces), json_bytes(body))

    def test_small_body(self) -> None:
        """A body without a large string is one piece."""
        self.assertEqual(json_pieces({"a": "abc", "b": [1]}), [json_bytes({"a": "abc", "b": [1]})])

    def test_write(self) -> None:
        """write_json writes the pieces with the length of their whole."""
        request = DummyRequest([b""])
        body = {"output": "x" * 10}
        write_json(cast("IRequest", request), body, status=200)
        self.assertEqual(b"".join(request.written), json_bytes(body))
        self.assertEqual(
            request.responseHeaders.getRawHeaders(b"content-length"), [str(len(json_bytes(body))).encode()]
        )
        self.assertEqual(request.responseHeaders.getRawHeaders(b"content-type"), [b"application/json"])
