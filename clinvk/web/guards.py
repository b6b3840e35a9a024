# -*- test-case-name: tests.web.test_guards -*-
"""
The checks every request passes before it is routed, in the order of
docs/design/http.md#check-order: CORS first, then the body size, the rate
limit and the API key.
"""

from __future__ import annotations

from collections.abc import Sequence

from attrs import frozen

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest

from clinvk.config import ServerConfig
from clinvk.errors import PayloadTooLarge, RateLimited
from clinvk.keys import ApiKeys
from clinvk.web.auth import check_api_key
from clinvk.web.bodies import body_too_large
from clinvk.web.clients import ClientAddresses
from clinvk.web.cors import CorsPolicy
from clinvk.web.ratelimit import RateLimiter

log = Logger()


@frozen
class Guards:
    """
    @ivar clients: Finds the client address of a request.
    @ivar cors: The CORS policy.
    @ivar limiter: The rate limiter, or L{None} when rate limiting is off.
    @ivar keys: The API keys.
    @ivar max_body: The body size limit; 0 or less for none.
    """

    clients: ClientAddresses
    cors: CorsPolicy
    limiter: RateLimiter | None
    keys: ApiKeys
    max_body: int

    @classmethod
    def from_config(cls, server: ServerConfig, clock: IReactorTime, keys: Sequence[str] = ()) -> Guards:
        """The guards of the C{server} configuration, with the API keys C{keys}."""
        limiter = None
        if server.rate_limit_enabled and server.rate_limit_rps > 0:
            limiter = RateLimiter(
                clock, server.rate_limit_rps, server.rate_limit_burst, server.rate_limit_cleanup_secs
            )
        return cls(
            clients=ClientAddresses(server.trusted_proxies),
            cors=CorsPolicy(server.cors_allowed_origins, server.cors_allow_credentials, server.cors_max_age),
            limiter=limiter,
            keys=ApiKeys(keys),
            max_body=server.max_request_body_bytes,
        )

    @classmethod
    def permissive(cls) -> Guards:
        """Guards that refuse nothing (with the default CORS policy)."""
        return cls(
            clients=ClientAddresses(()),
            cors=CorsPolicy((), credentials=False, max_age=0),
            limiter=None,
            keys=ApiKeys(),
            max_body=0,
        )

    def announce(self) -> None:
        """Log, at start-up, what the guards do (keys are never logged)."""
        if self.limiter is not None:
            log.info(
                "Rate limiting enabled rps={rps} burst={burst}",
                rps=self.limiter.rps,
                burst=self.limiter.burst,
            )
        self.cors.warn_about_configuration()

    def check(self, request: IRequest, path: str, client: str) -> None:
        """
        Refuse C{request} if its body is too large, its client is over the
        rate limit, or it lacks a valid API key.

        @raise ClinvkError: The refusal (413, 429 or 401).
        """
        if body_too_large(request, self.max_body):
            raise PayloadTooLarge(f"request body exceeds size limit ({self.max_body} bytes)")
        if self.limiter is not None and not self.limiter.allow(client):
            raise RateLimited("rate limit exceeded, please retry later")
        check_api_key(self.keys, request, path)
