# -*- test-case-name: tests.web.test_meta -*-
"""
The C{/docs} page: an API explorer that ships inside the package
(docs/design/decisions.md#d8-offline-docs).

The page is assembled once from C{static/explorer.{html,css,js}} with the
style and script inlined, so it is one self-contained response.  Its
Content-Security-Policy allows exactly that script and style (by hash) and
network requests to this server only, so the page cannot reach any other
host even by mistake.
"""

from __future__ import annotations

import base64
import hashlib
from importlib import resources

from attrs import frozen

from twisted.web.iweb import IRequest

from clinvk.web._responses import bytes_response


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


@frozen
class ExplorerPage:
    """
    The assembled page and the policy that goes with it.
    """

    html: bytes
    content_security_policy: bytes

    @classmethod
    def from_package(cls) -> ExplorerPage:
        """Assemble the page from the files shipped in C{clinvk.web}."""
        static = resources.files("clinvk.web").joinpath("static")
        template = static.joinpath("explorer.html").read_text("utf-8")
        style = static.joinpath("explorer.css").read_text("utf-8")
        script = static.joinpath("explorer.js").read_text("utf-8")
        html = template.replace("/*STYLE*/", style).replace("/*SCRIPT*/", script)
        policy = "; ".join(
            [
                "default-src 'none'",
                f"script-src {_csp_hash(script)}",
                f"style-src {_csp_hash(style)}",
                "connect-src 'self'",
                "img-src 'self' data:",
                "base-uri 'none'",
                "form-action 'none'",
                "frame-ancestors 'none'",
            ]
        )
        return cls(html.encode("utf-8"), policy.encode("ascii"))

    def render(self, request: IRequest) -> bytes:
        """Set the page's headers on C{request} and return its body."""
        request.setHeader(b"Content-Security-Policy", self.content_security_policy)
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        return bytes_response(request, self.html, b"text/html; charset=utf-8")
