# -*- test-case-name: tests.runs.test_runtime -*-
"""
Pre-flight: the checks a request passes, in a fixed order, before any
CLI starts, and the command line it runs with (docs/design/cli-runs.md#preflight,
docs/design/cli-runs.md#command-lines).
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs
from attrs import frozen

from twisted.logger import Logger

from clinvk.backends.availability import BackendAvailability
from clinvk.backends.flags import check_extra_flags
from clinvk.backends.options import REQUESTED_FORMATS, unified_options
from clinvk.backends.workdir import check_workdir
from clinvk.config import ClinvkConfig
from clinvk.interfaces import IBackend
from clinvk.model import RunFileMaker, RunRequest, UnifiedOptions
from clinvk.runs.scratch import scratch_path

log = Logger()


class PreflightError(Exception):
    """A request failed pre-flight validation; the message is the error text."""


class UnknownBackend(PreflightError):
    """The request names no registered backend."""


class BackendNotAvailable(PreflightError):
    """The backend's CLI is not on the server's C{PATH}."""


class UnusableRequest(PreflightError):
    """The request holds a value no command line can carry."""


@frozen
class PreparedRun:
    """A request that passed pre-flight, ready to run."""

    request: RunRequest
    backend: IBackend
    options: UnifiedOptions
    command: tuple[str, ...]
    stdin: bytes
    # The files the command line names, in options.scratch (IBackend.run_files);
    # their bytes (a client's images) stay out of reprs.
    files: tuple[tuple[str, bytes | RunFileMaker], ...] = attrs.field(
        default=(), repr=lambda files: f"<{', '.join(name for name, _ in files)}>"
    )
    # The variables the run adds to the server's environment
    # (IBackend.run_environment); their values (secrets) stay out of reprs.
    environment: tuple[tuple[str, str], ...] = attrs.field(
        default=(), repr=lambda variables: f"<{', '.join(name for name, _ in variables)}>"
    )

    @property
    def description(self) -> str:
        """
        What a dry run reports (docs/design/cli-runs.md#dry-runs,
        docs/design/decisions.md#d1-prompts-on-stdin).
        """
        arguments = " ".join(self.command[1:])
        return f"Would execute: {self.command[0]} [{arguments}] < stdin ({len(self.stdin)} bytes)"


class Preflight:
    """
    Checks requests and builds their command lines.

    @param config: The server's configuration (work directory rules, defaults).
    @param backends: The registered backends by name.
    @param availability: Finds the CLIs on C{PATH}.
    @param scratch_root: Where runs' own directories go
        (L{clinvk.runs.scratch.scratch_path}); by default the system's
        temporary directory.
    """

    def __init__(
        self,
        config: ClinvkConfig,
        backends: Mapping[str, IBackend],
        availability: BackendAvailability,
        scratch_root: str = "",
    ) -> None:
        self._config = config
        self._scratch_root = scratch_root
        self._backends = dict(sorted(backends.items()))
        self._availability = availability
        self._warned_allowed_tools: set[str] = set()

    def prepare(self, request: RunRequest, *, streaming: bool = False) -> PreparedRun:
        """
        Validate C{request} in the order of docs/design/cli-runs.md#preflight and
        build its command line.

        @raise PreflightError: With the exact error text of the first
            failed check.
        """
        requested = request.output_format.strip().lower()
        if requested not in REQUESTED_FORMATS:
            raise PreflightError(
                f'invalid output_format "{request.output_format}": '
                "must be one of default, text, json, stream-json"
            )
        server = self._config.server
        problem = check_workdir(
            request.workdir, allowed=server.allowed_workdir_prefixes, blocked=server.blocked_workdir_prefixes
        )
        if problem:
            raise PreflightError(problem)
        backend = self._backends.get(request.backend)
        if backend is None:
            raise UnknownBackend(
                f'unknown backend "{request.backend}" (available: [{" ".join(self._backends)}])'
            )
        problem = check_extra_flags(backend.name, backend.allowed_flags, request.extra)
        if problem:
            raise PreflightError(problem)
        executable = self._availability.locate(backend.name)
        if executable is None:
            raise BackendNotAvailable(f'backend "{backend.name}" is not available')

        if request.client_tools is not None and not backend.client_tools:
            raise UnusableRequest(f'backend "{backend.name}" cannot call the client\'s tools')
        options = unified_options(request, self._config, streaming=streaming)
        if (
            options.allowed_tools
            and not backend.supports_allowed_tools
            and backend.name not in self._warned_allowed_tools
        ):
            self._warned_allowed_tools.add(backend.name)
            log.warn(
                "allowed_tools option is only supported by Claude backend; ignoring for this backend "
                "backend={backend}",
                backend=backend.name,
            )
        files = tuple(backend.run_files(options).items())
        if files:
            options = attrs.evolve(options, scratch=scratch_path(self._scratch_root))
        command = backend.command(executable, options, request.resume_id)
        if any("\x00" in argument for argument in command):
            # The model, system prompt or a flag: no command line can carry it.
            raise UnusableRequest("invalid request: a command-line value contains a NUL character")
        stdin = backend.stdin_text(options, request.prompt).encode("utf-8")
        environment = tuple(backend.run_environment(options).items())
        return PreparedRun(request, backend, options, tuple(command), stdin, files, environment)
