"""
Tests for L{clinvk.web._responses}.
"""

from __future__ import annotations

from typing import cast

from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IRequest
from twisted.web.test.requesthelper import DummyRequest

from clinvk.web._responses import json_response


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
