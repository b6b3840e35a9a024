# -*- test-case-name: tests.test_embed -*-
"""
clinvk inside another Twisted program (docs/design/decisions.md#d7-twisted-entry-points).

An embedding program builds one L{Clinvk} on its own reactor, starts its
L{service <Clinvk.service>} with its own services, and then may do either
or both of:

  - mount L{Clinvk.resource} anywhere in its own C{twisted.web} tree, where
    it serves every clinvk API below that path;
  - call L{Clinvk.prompt}, L{Clinvk.stream}, L{Clinvk.parallel},
    L{Clinvk.chain} and L{Clinvk.compare} directly, without HTTP.

Both ways share one configuration, one set of admission slots (so
C{server.max_concurrent_runs} bounds them together) and one process
supervisor (so stopping the service ends every CLI either way started).

This module is the public surface for embedding: the names in C{__all__}
are kept stable; everything else in C{clinvk} may change.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.application.service import IService
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.web.resource import IResource
from twisted.web.server import Site

from clinvk.assembly import build_core, configured_site
from clinvk.config import ClinvkConfig, ConfigError, config_from_mapping, load_config
from clinvk.errors import ClinvkError
from clinvk.model import RunRequest, TokenUsage, UnifiedEvent
from clinvk.orchestration import (
    ChainOutcome,
    ChainStep,
    CompareOutcome,
    Outcome,
    ParallelOutcome,
    PromptStream,
    StepOutcome,
)
from clinvk.process.supervisor import ProcessSupervisor
from clinvk.service import ClinvkService
from clinvk.types import IClinvkReactor, provides_clinvk_reactor

__all__ = [
    "ChainOutcome",
    "ChainStep",
    "Clinvk",
    "ClinvkConfig",
    "ClinvkError",
    "CompareOutcome",
    "ConfigError",
    "NotRunning",
    "Outcome",
    "ParallelOutcome",
    "PromptStream",
    "RunRequest",
    "StepOutcome",
    "TokenUsage",
    "UnifiedEvent",
    "config_from_mapping",
    "load_config",
]


class NotRunning(Exception):
    """
    A call was made while L{Clinvk.service} was not running: before it
    started, or once it began to stop.
    """


class Clinvk:
    """
    clinvk embedded in a Twisted program.

    Build it with L{Clinvk.build}.  Nothing runs until L{service} starts:
    calls made before then, or once it is stopping, fail with
    L{NotRunning}.

    @ivar config: The configuration every part uses.
    @ivar service: Start it with the program (for example with
        C{clinvk.service.setServiceParent(application)}); stopping it
        lets the HTTP requests in progress finish for up to
        C{server.shutdown_timeout_secs}, then ends every CLI still running
        and waits until they are gone.
    @ivar resource: The root of every clinvk API, to mount with
        C{putChild} under any path of the program's own C{Site}.  Paths
        below it are the server's paths: mounted at C{/clinvk}, the OpenAI
        API is at C{/clinvk/openai/v1}.
    """

    def __init__(self, service: ClinvkService, config: ClinvkConfig, reactor: IReactorTime) -> None:
        if service.root is None:
            raise ValueError("the service was built without a root resource")
        self._service = service
        self._reactor = reactor
        self.config = config
        self.service: IService = service
        self.resource: IResource = service.root

    @classmethod
    def build(
        cls,
        reactor: IClinvkReactor,
        config: ClinvkConfig | None = None,
        *,
        supervisor: ProcessSupervisor | None = None,
    ) -> Clinvk:
        """
        Build clinvk on C{reactor}.  This only creates objects; it listens
        on nothing (the embedding program serves L{resource} itself).

        @param reactor: The program's reactor.  It must run processes and
            TCP and tell the time, as every real reactor does.
        @param config: The configuration, for example from L{load_config}
            or L{config_from_mapping}; by default clinvk's defaults with the
            environment's overrides left out.
        @param supervisor: What starts and stops the CLIs; by default one
            that runs real processes in their own process groups
            (L{ProcessSupervisor.on_this_system}).  A test gives one whose
            processes, and the signals sent to them, are fakes.
        @raise TypeError: If C{reactor} lacks something clinvk needs.
        """
        if not provides_clinvk_reactor(reactor):
            raise TypeError(f"{reactor!r} lacks part of IClinvkReactor")
        if config is None:
            config = config_from_mapping(None, {}, source=None)
        # A failure of clinvk's own (its API keys cannot be loaded) must not
        # stop the program's reactor (no on_failure): requests are refused
        # with 503 instead.
        if supervisor is None:
            supervisor = ProcessSupervisor.on_this_system(reactor, float(config.server.kill_grace_secs))
        service = build_core(config, reactor, supervisor=supervisor, environ=os.environ, home=_home())
        return cls(service, config, reactor)

    def site(self, root: IResource) -> Site:
        """
        A C{Site} serving the program's own resource tree C{root} (with
        L{resource} mounted somewhere in it) the way the clinvk server
        serves its own: request bodies over C{server.max_request_body_bytes}
        are dropped as they arrive, a client too slow to send its request
        gets 408 (C{server.read_timeout_secs}), a response not written in
        time and an idle connection are closed, and form uploads are left
        for the routes to read.  These apply to every page of the site.

        A plain C{twisted.web.server.Site} works too, without those
        protections: its requests are read whole before any resource sees
        them.
        """
        return configured_site(root, self.config, self._reactor)

    @property
    def failure(self) -> str | None:
        """Why clinvk gave up after starting (its API keys could not be loaded), or L{None}."""
        return self._service.failure

    @property
    def _stopped(self) -> bool:
        return not self._service.running

    def prompt(
        self, request: RunRequest, *, metadata: Mapping[str, str] | None = None, session_id: str = ""
    ) -> Deferred[Outcome]:
        """
        Run one prompt to completion, as C{POST /api/v1/prompt} does.

        Unless C{request.ephemeral}, the prompt gets a new session, or
        continues the session C{session_id} (a full id or an unambiguous
        prefix of at least 8 characters) in the CLI's own conversation.
        Problems of the run itself (an unknown backend, a CLI that fails)
        are in the L{Outcome}, not failures.  Cancelling the Deferred stops
        the CLI.

        @raise ClinvkError: (as a failure) When C{session_id} cannot be
            continued: unknown or ambiguous (C{NotFound}), of another
            backend or workdir (C{InvalidRequest}), or busy (C{Conflict}).
        """
        if self._stopped:
            return _not_running()
        return self._service.orchestrator.prompt(request, metadata=metadata, session_id=session_id)

    def stream(
        self, request: RunRequest, *, metadata: Mapping[str, str] | None = None, session_id: str = ""
    ) -> Deferred[PromptStream]:
        """
        Start one prompt as a stream, as C{POST /api/v1/prompt} with
        C{"stream": true} does.

        The L{PromptStream} is an async iterator of L{UnifiedEvent}s, each
        delivered as the CLI produces it; iteration ends after the run's
        last event.  Its C{result()} fires with the final L{Outcome}, and
        C{cancel()} stops the CLI.  Read the stream promptly: while it is
        not read, the CLI's output waits in its pipe.
        """
        if self._stopped:
            return _not_running()
        return self._service.orchestrator.stream_prompt(request, metadata=metadata, session_id=session_id)

    def parallel(
        self,
        tasks: Sequence[RunRequest],
        *,
        max_parallel: int = 0,
        fail_fast: bool = False,
        dry_run: bool = False,
    ) -> Deferred[ParallelOutcome]:
        """
        Run ephemeral prompts concurrently, as C{POST /api/v1/parallel}
        does: at most C{max_parallel} at a time (0: the configured
        default), all stopped at the first failure with C{fail_fast}.
        """
        if self._stopped:
            return _not_running()
        return self._service.orchestrator.parallel(
            tasks, max_parallel=max_parallel, fail_fast=fail_fast, dry_run=dry_run
        )

    def chain(
        self,
        steps: Sequence[ChainStep],
        *,
        stop_on_failure: bool = False,
        pass_working_dir: bool = False,
        dry_run: bool = False,
    ) -> Deferred[ChainOutcome]:
        """
        Run ephemeral steps in order, as C{POST /api/v1/chain} does: the
        placeholder C{{{previous}}} in a step's prompt becomes the previous
        step's output.
        """
        if self._stopped:
            return _not_running()
        return self._service.orchestrator.chain(
            steps, stop_on_failure=stop_on_failure, pass_working_dir=pass_working_dir, dry_run=dry_run
        )

    def compare(
        self,
        backends: Sequence[str],
        prompt: str,
        *,
        model: str = "",
        workdir: str = "",
        sequential: bool = False,
        dry_run: bool = False,
    ) -> Deferred[CompareOutcome]:
        """Run one prompt on several backends, as C{POST /api/v1/compare} does."""
        if self._stopped:
            return _not_running()
        return self._service.orchestrator.compare(
            backends, prompt, model=model, workdir=workdir, sequential=sequential, dry_run=dry_run
        )


def _home() -> str:
    """The user's home directory, or C{""} when there is none."""
    home = os.path.expanduser("~")
    return "" if home == "~" else home


def _not_running() -> Deferred[Any]:
    return fail(NotRunning("clinvk is not running: start Clinvk.service first"))
