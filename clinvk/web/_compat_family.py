# -*- test-case-name: tests.web.test_openai,tests.web.test_anthropic -*-
"""
What the OpenAI and Anthropic API families share: the runner of their
requests, the clock, the schemas, the keepalive and the request deadline.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from clinvk.compat.runs import CompatRunner
from clinvk.config import ClinvkConfig
from clinvk.schemas import SchemaSet
from clinvk.web.deadline import RequestDeadline


class CompatFamily:
    """
    What both compatibility API families hold.

    @param runner: Runs the requests' executions.
    @param clock: Stamps answers and paces keepalives.
    @param schemas: Validates request bodies.
    @param config: The server's configuration (keepalive, deadline).
    @ivar deadline: The request deadline of every route.
    """

    def __init__(
        self, *, runner: CompatRunner, clock: IReactorTime, schemas: SchemaSet, config: ClinvkConfig
    ) -> None:
        self._runner = runner
        self._clock = clock
        self._schemas = schemas
        self._keepalive = float(config.server.stream_keepalive_secs)
        self.deadline = RequestDeadline(clock, float(config.server.request_timeout_secs))
