# -*- test-case-name: tests.web.test_openai,tests.web.test_anthropic -*-
"""
What the OpenAI and Anthropic API families share: the runner of their
requests and their conversations, the clock, the schemas, the keepalive
and the request deadline, and the session header
(docs/design/conversations.md#conversation-header).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

from clinvk.compat.conversations import Conversations, Turn
from clinvk.compat.images import FetchImage, Images
from clinvk.compat.runs import CompatRunner
from clinvk.compat.tools import ClientTool, ToolChoice
from clinvk.config import ClinvkConfig
from clinvk.schemas import SchemaSet
from clinvk.web.deadline import RequestDeadline

SESSION_HEADER = b"X-Clinvk-Session-Id"


def pinned_session(request: IRequest) -> str:
    """The session a request names in C{X-Clinvk-Session-Id}, or C{""}."""
    given: bytes | None = request.getHeader(SESSION_HEADER)
    return given.decode("latin-1").strip() if given else ""


def announcer(request: IRequest) -> Callable[[str], None]:
    """Tells the client its conversation's session, in C{X-Clinvk-Session-Id}."""

    def announce(session_id: str) -> None:
        request.setHeader(SESSION_HEADER, session_id.encode("ascii"))

    return announce


class CompatFamily:
    """
    What both compatibility API families hold.

    @param runner: Runs the requests' executions.
    @param conversations: The conversations their requests continue.
    @param clock: Stamps answers and paces keepalives.
    @param schemas: Validates request bodies.
    @param config: The server's configuration (keepalive, deadline).
    @param fetch_image: Fetches the images requests name by URL, when
        C{server.fetch_image_urls} allows it (docs/design/images.md#image-urls).
    @ivar deadline: The request deadline of every route.
    """

    def __init__(
        self,
        *,
        runner: CompatRunner,
        conversations: Conversations,
        clock: IReactorTime,
        schemas: SchemaSet,
        config: ClinvkConfig,
        fetch_image: FetchImage | None = None,
    ) -> None:
        self._runner = runner
        self._fetch_image = fetch_image
        self._conversations = conversations
        self._clock = clock
        self._schemas = schemas
        self._keepalive = float(config.server.stream_keepalive_secs)
        self._keep_cli_tools = config.server.keep_cli_tools
        self.deadline = RequestDeadline(clock, float(config.server.request_timeout_secs))

    def _offer_tools(
        self, turn: Turn, body: Mapping[str, Any], tools: Sequence[ClientTool], choice: ToolChoice
    ) -> None:
        """
        Offer C{turn}'s CLI the client's C{tools} as C{choice} allows, with
        or without its own tools as the request's C{keep_cli_tools} or the
        configuration says (docs/design/client-tools.md#cli-tools).
        """
        keep = body.get("keep_cli_tools")
        self._conversations.offer_tools(
            turn, tools, choice, keep if isinstance(keep, bool) else self._keep_cli_tools
        )

    def _images(self) -> Images:
        """A collector of one request's images, taking URLs when they are fetched."""
        return Images(fetch_urls=self._fetch_image is not None)

    async def _resolved(self, images: Images, turns: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """C{turns} with their remote images fetched (L{Images.resolved})."""
        return await images.resolved(turns, self._fetch_image)
