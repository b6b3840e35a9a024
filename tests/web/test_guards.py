"""
The checks before routing (docs/design/http.md#check-order): CORS, the body
size limit, rate limiting and API keys, through the real root resource.
"""

from __future__ import annotations

import json
from typing import Any, cast

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyChannel, DummyRequest

from clinvk.web.bodies import ReadLimits
from clinvk.web.clients import ClientAddresses
from clinvk.web.cors import canonical_header
from clinvk.web.ratelimit import RateLimiter
from clinvk.web.root import build_site
from tests.helpers import Server, make_root
from tests.web._native import NativeTestCase

DRY = {"backend": "claude", "prompt": "x", "dry_run": True}


class ApiKeyTests(NativeTestCase):
    def setUp(self) -> None:
        self.use_server(api_keys=("k1", "k2"))

    def family_b(self, response: Any, message: str) -> None:
        self.assertEqual(response.code, 401)
        self.assertEqual(response.header("WWW-Authenticate"), "Bearer")
        self.assertEqual(json.loads(response.body), {"error": "unauthorized", "message": message})

    def test_missing_and_invalid(self) -> None:
        self.family_b(self.request("POST", "/api/v1/prompt", DRY), "missing API key")
        self.family_b(
            self.request("POST", "/api/v1/prompt", DRY, headers={"X-Api-Key": "nope"}), "invalid API key"
        )
        self.family_b(self.request("GET", "/nope"), "missing API key")

    def test_both_header_styles(self) -> None:
        for headers in ({"X-Api-Key": " k2 "}, {"Authorization": "bearer k1"}):
            self.assertEqual(self.request("POST", "/api/v1/prompt", DRY, headers=headers).code, 200, headers)

    def test_x_api_key_wins(self) -> None:
        """A wrong X-Api-Key is not rescued by a right Authorization."""
        headers = {"X-Api-Key": "nope", "Authorization": "Bearer k1"}
        self.family_b(self.request("POST", "/api/v1/prompt", DRY, headers=headers), "invalid API key")

    def test_public_paths(self) -> None:
        for path in (
            "/health",
            "/docs",
            "/openapi.json",
            "/openapi.yaml",
            "/openapi-3.0.json",
            "/schemas/ErrorModel.json",
        ):
            self.assertEqual(self.request("GET", path).code, 200, path)

    def test_compat_dialects(self) -> None:
        """On the compatibility prefixes a 401 is the SDK's own error."""
        response = self.request("GET", "/openai/v1/models")
        self.assertEqual(
            (response.code, json.loads(response.body)["error"]["type"]), (401, "authentication_error")
        )
        response = self.request("POST", "/anthropic/v1/messages", {})
        self.assertEqual(json.loads(response.body)["error"]["type"], "authentication_error")


class RateLimitTests(NativeTestCase):
    config = {"server": {"rate_limit_enabled": True, "rate_limit_rps": 2, "rate_limit_burst": 5}}

    def test_bucket(self) -> None:
        """Five back-to-back requests pass, the sixth is 429; after a pause they pass again."""
        codes = [self.request("GET", "/health").code for _ in range(6)]
        self.assertEqual(codes, [200] * 5 + [429])
        refused = self.request("GET", "/nope")
        self.assertEqual((refused.code, refused.header("Retry-After")), (429, "1"))
        self.assertEqual(
            json.loads(refused.body),
            {"error": "too_many_requests", "message": "rate limit exceeded, please retry later"},
        )
        self.reactor.advance(2)
        self.assertEqual(self.request("GET", "/health").code, 200)

    def test_openai_dialect(self) -> None:
        for _ in range(5):
            self.request("GET", "/openai/v1/models")
        response = self.request("GET", "/openai/v1/models")
        self.assertEqual(
            (response.code, json.loads(response.body)["error"]["type"]), (429, "rate_limit_error")
        )


class RateLimiterTests(SynchronousTestCase):
    def test_refill_and_cleanup(self) -> None:
        clock = Clock()
        limiter = RateLimiter(clock, rps=1, burst=0, cleanup_secs=10)
        self.assertEqual(limiter.burst, 2)
        self.assertEqual([limiter.allow("a") for _ in range(3)], [True, True, False])
        clock.advance(1)
        self.assertTrue(limiter.allow("a"))
        self.assertTrue(limiter.allow("b"))
        clock.advance(10)
        limiter.allow("c")
        self.assertEqual(limiter.clients, 1)


class BodyLimitTests(NativeTestCase):
    config = {"server": {"max_request_body_bytes": 100}}

    def test_limit(self) -> None:
        """A body of exactly the limit passes; one byte more is 413 in each dialect."""
        exact = json.dumps({**DRY, "prompt": "x" * (100 - len(json.dumps(DRY)) + 1)}).encode()
        self.assertEqual(len(exact), 100)
        self.assertEqual(self.request("POST", "/api/v1/prompt", data=exact).code, 200)
        response = self.request("POST", "/api/v1/prompt", data=exact + b" ")
        self.assertEqual(response.code, 413)
        self.assertEqual(
            json.loads(response.body),
            {"error": "request_too_large", "message": "request body exceeds size limit (100 bytes)"},
        )
        response = self.request("POST", "/anthropic/v1/messages", data=exact + b" ")
        self.assertEqual(json.loads(response.body)["error"]["type"], "request_too_large")


class CorsTests(NativeTestCase):
    def setUp(self) -> None:
        self.use_server(
            api_keys=("k",),
            config={"server": {"rate_limit_enabled": True, "rate_limit_rps": 1, "rate_limit_burst": 1}},
        )

    def test_preflight_is_never_refused(self) -> None:
        """A preflight is 200 with the Allow headers, even with keys and an empty bucket."""
        headers = {
            "Origin": "http://localhost:3000",
            "Access-Control-Request-Method": "post",
            "Access-Control-Request-Headers": "content-type, x-api-key, x-clinvk-session-id",
        }
        for _ in range(3):
            response = self.request("OPTIONS", "/api/v1/prompt", headers=headers)
            self.assertEqual(response.code, 200)
        self.assertEqual(response.header("Access-Control-Allow-Origin"), "http://localhost:3000")
        self.assertEqual(response.header("Access-Control-Allow-Methods"), "POST")
        self.assertEqual(
            response.header("Access-Control-Allow-Headers"), "Content-Type, X-Api-Key, X-Clinvk-Session-Id"
        )
        self.assertEqual(response.header("Access-Control-Max-Age"), "300")
        self.assertEqual(response.body, b"")

    def test_disallowed(self) -> None:
        """Other origins and unknown headers get no Allow headers."""
        for origin, asked in (("https://localhost:3000", ""), ("http://localhost:3000", "x-stainless-os")):
            headers = {
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": asked,
            }
            response = self.request("OPTIONS", "/api/v1/prompt", headers=headers)
            self.assertIsNone(response.header("Access-Control-Allow-Origin"))

    def test_headers_on_refusals(self) -> None:
        """A 401 and a 429 still carry the CORS headers."""
        headers = {"Origin": "http://127.0.0.1:5173"}
        unauthorized = self.request("POST", "/api/v1/prompt", DRY, headers=headers)
        self.assertEqual(unauthorized.code, 401)
        self.assertEqual(unauthorized.header("Access-Control-Allow-Origin"), "http://127.0.0.1:5173")
        self.assertEqual(unauthorized.header("Access-Control-Expose-Headers"), "Link, X-Clinvk-Session-Id")
        limited = self.request("GET", "/health", headers=headers)
        self.assertEqual(
            (limited.code, limited.header("Access-Control-Allow-Origin")), (429, "http://127.0.0.1:5173")
        )

    def test_canonical_header(self) -> None:
        self.assertEqual(canonical_header(" anthropic-version "), "Anthropic-Version")


class ClientAddressTests(SynchronousTestCase):
    def request(self, peer: str, **headers: str) -> IRequest:
        request = DummyRequest([b""])
        request.client = IPv4Address("TCP", peer, 1234)
        for name, value in headers.items():
            request.requestHeaders.setRawHeaders(name.replace("_", "-").encode(), [value.encode()])
        return cast("IRequest", request)

    def test_untrusted_peer(self) -> None:
        """Forwarding headers count only from a trusted proxy; True-Client-IP never."""
        addresses = ClientAddresses(["10.0.0.0/8", "not-an-ip"])
        self.assertEqual(addresses.of(self.request("192.0.2.7", x_forwarded_for="1.2.3.4")), "192.0.2.7")
        self.assertEqual(
            addresses.of(self.request("10.1.1.1", x_forwarded_for=" 1.2.3.4 , 5.6.7.8")), "1.2.3.4"
        )
        self.assertEqual(
            addresses.of(self.request("10.1.1.1", x_forwarded_for="junk", x_real_ip="9.9.9.9")), "9.9.9.9"
        )
        self.assertEqual(addresses.of(self.request("10.1.1.1", true_client_ip="1.1.1.1")), "10.1.1.1")
        self.assertEqual(
            ClientAddresses([]).of(self.request("10.1.1.1", x_forwarded_for="1.2.3.4")), "10.1.1.1"
        )


class AdmissionApiTests(NativeTestCase):
    """
    docs/design/decisions.md#d4-admission-control through the API: two CLIs at once,
    the rest queued, overflow is 429 in each dialect.
    """

    config = {"server": {"max_concurrent_runs": 2, "max_queued_runs": 1, "queue_timeout_secs": 10}}

    def test_queue_and_overflow(self) -> None:
        first = self.start("POST", "/api/v1/prompt", {"backend": "claude", "prompt": "1"})
        self.start("POST", "/api/v1/prompt", {"backend": "claude", "prompt": "2"})
        third = self.start("POST", "/api/v1/prompt", {"backend": "claude", "prompt": "3"})
        self.assertEqual(len(self.reactor.spawned), 2)
        overflow = self.request(
            "POST", "/api/v1/prompt", {"backend": "claude", "prompt": "4", "ephemeral": True}
        )
        self.assertEqual((overflow.code, overflow.header("Retry-After")), (429, "1"))
        self.assertEqual(json.loads(overflow.body)["error"], "too_many_requests")
        response = self.request(
            "POST",
            "/openai/v1/chat/completions",
            {"model": "claude", "messages": [{"role": "user", "content": "x"}]},
        )
        self.assertEqual(
            (response.code, json.loads(response.body)["error"]["type"]), (429, "rate_limit_error")
        )
        self.reactor.spawned[0].exit(0)
        self.assertEqual(self.finish(first).code, 200)
        self.assertEqual([c.stdin for c in self.reactor.spawned], [b"1", b"2", b"3"])
        self.reactor.spawned[2].exit(0)
        self.assertEqual(self.finish(third).code, 200)

    def test_queue_timeout(self) -> None:
        for prompt in ("1", "2"):
            self.start("POST", "/api/v1/prompt", {"backend": "claude", "prompt": prompt})
        waiting = self.start(
            "POST",
            "/anthropic/v1/messages",
            {
                "model": "claude",
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x"}],
                "stream": True,
            },
        )
        self.reactor.advance(10)
        response = self.finish(waiting)
        self.assertEqual(
            (response.code, json.loads(response.body)["error"]["type"]), (429, "rate_limit_error")
        )
        for child in self.reactor.spawned:
            child.exit(0)


class LimitedRequestTests(SynchronousTestCase):
    """The site's requests drop a body past the limit as it arrives."""

    def request(self, limit: int) -> Any:
        site = build_site(Resource(), Clock(), max_body=limit, idle_timeout=120)
        self.assertEqual(site.timeOut, 120)
        return site.requestFactory(DummyChannel(), False)

    def test_declared_length(self) -> None:
        request = self.request(10)
        request.gotLength(11)
        request.handleContentChunk(b"x" * 11)
        self.assertTrue(request.body_too_large)
        self.assertEqual(request.content.getvalue(), b"")

    def test_chunked(self) -> None:
        """Chunks are kept up to the limit; past it, nothing more."""
        request = self.request(10)
        request.gotLength(None)
        request.handleContentChunk(b"x" * 10)
        self.assertFalse(request.body_too_large)
        request.handleContentChunk(b"y")
        request.handleContentChunk(b"z" * 1000)
        self.assertTrue(request.body_too_large)
        self.assertEqual(request.content.getvalue(), b"")


class ReadTimeoutTests(SynchronousTestCase):
    """
    A client that sends its request too slowly gets 408 and is
    disconnected (docs/design/http.md#connection-timeouts).
    """

    def connect(self) -> tuple[Any, StringTransport, Clock]:
        clock = Clock()
        root, _ = make_root(clock)
        site = build_site(root, clock, read_limits=ReadLimits(clock, headers=10, body=5, request=30))
        protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5555))
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport, clock

    def test_slow_headers(self) -> None:
        protocol, transport, clock = self.connect()
        protocol.dataReceived(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        clock.advance(10)
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 408 Request Timeout\r\n"))
        self.assertTrue(transport.disconnecting)

    def test_slow_body(self) -> None:
        protocol, transport, clock = self.connect()
        protocol.dataReceived(b'POST /api/v1/prompt HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{"a')
        clock.advance(5)
        self.assertIn(b'"detail":"request body read timeout"', transport.value())
        self.assertTrue(transport.disconnecting)

    def test_in_time(self) -> None:
        """A request that arrives in time is answered, and leaves no timer behind."""
        protocol, transport, clock = self.connect()
        protocol.dataReceived(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        clock.advance(9)
        protocol.dataReceived(b"\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 200 OK"))
        self.assertEqual([c for c in clock.getDelayedCalls() if "too_slow" in repr(c)], [])

    def test_form_uploads_reach_the_route(self) -> None:
        """
        A malformed multipart body is the route's to refuse (415, with a
        problem body), not Twisted's form parser's (a bare 400).
        """
        protocol, transport, _ = self.connect()
        protocol.dataReceived(
            b"POST /api/v1/prompt HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 1\r\n\r\n\x00"
        )
        head, _, body = transport.value().partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 415 "), head)
        self.assertEqual(json.loads(body)["status"], 415)

    def test_response_deadline(self) -> None:
        """A response not written within the response limit loses its connection."""
        server = Server()
        site = build_site(server.root, server.reactor, read_limits=ReadLimits(server.reactor, response=60))
        protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5555))
        transport = StringTransport()
        protocol.makeConnection(transport)
        body = b'{"backend":"claude","prompt":"x"}'
        protocol.dataReceived(
            b"POST /api/v1/prompt HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        child = server.reactor.spawned[-1]
        server.reactor.advance(60)
        self.assertTrue(transport.disconnecting or getattr(transport, "disconnected", False))
        protocol.connectionLost(Failure(ConnectionDone()))
        server.reactor.advance(5)
        self.assertTrue(child.ended)
