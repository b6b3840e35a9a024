"""
Shared test helpers: an in-memory client over the real root resource.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import IResource

from clinvk.backends.availability import BackendAvailability
from clinvk.web.meta import Uptime
from clinvk.web.root import ClinvkRoot, build_root

BASE = "http://localhost:8080"


def fake_which(installed: Iterable[str]) -> Callable[[str], str | None]:
    """
    A C{shutil.which} that finds exactly the names in C{installed}, looked
    up on every call (so a test may change a set it passed).
    """
    return lambda name: f"/usr/local/bin/{name}" if name in installed else None


def make_root(
    clock: Clock | None = None, installed: Iterable[str] = ("claude", "codex", "gemini")
) -> tuple[ClinvkRoot, Clock]:
    """The real root resource on a fake clock, with the given CLIs installed."""
    clock = clock or Clock()
    availability = BackendAvailability(clock, which=fake_which(installed))
    return build_root(clock=clock, availability=availability, uptime=Uptime(clock)), clock


class Response:
    """A finished response: status, headers and body."""

    def __init__(self, code: int, headers: dict[bytes, list[bytes]], body: bytes) -> None:
        self.code = code
        self.headers = headers
        self.body = body

    def header(self, name: str) -> str | None:
        """The first value of header C{name} (any case), or None."""
        for key, values in self.headers.items():
            if key.lower() == name.lower().encode("ascii"):
                return values[0].decode("latin-1")
        return None


def call(
    case: SynchronousTestCase,
    resource: IResource,
    method: str,
    path: str,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
    base: str = BASE,
) -> Response:
    """Make one request to C{resource} and return the complete response."""
    stub: Any = StubTreq(resource)
    response = case.successResultOf(stub.request(method, base + path, data=data, headers=headers or {}))
    body = case.successResultOf(response.content())
    return Response(response.code, dict(response.headers.getAllRawHeaders()), body)
