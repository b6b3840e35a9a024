# -*- test-case-name: tests.runs.test_installed -*-
"""
Which backend CLIs are installed, at which versions, and whether the
real-CLI suite has proven those versions.

The start-up log and C{clinvk doctor} both ask.  A CLI's version is what
C{<cli> --version} prints: it spends no tokens and needs no login.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import attrs
from attrs import frozen

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger

from clinvk.backends.availability import BackendAvailability
from clinvk.errors import ShuttingDown
from clinvk.interfaces import IBackend
from clinvk.process.protocol import BufferedCapture
from clinvk.process.runner import ProcessSpec, StopReason
from clinvk.process.supervisor import ProcessSupervisor

log = Logger()

# How long C{--version} may take: gemini, the slowest, answers in about 2 s.
VERSION_TIMEOUT = 20.0

# What the fake CLIs (clinvk.testing.fake_cli) add to their version line.
FAKE_MARK = "(clinvk fake)"

_VERSION = re.compile(r"\b(\d+\.\d+\.\d+(?:[-+.][0-9A-Za-z.-]+)?)")


@frozen
class InstalledCLI:
    """
    One backend's CLI as found on C{PATH}.

    @ivar name: The backend, which is also the executable's name.
    @ivar path: Where it is, or L{None} when it is not on C{PATH}.
    @ivar version: The version number it reported, or L{None}.
    @ivar problem: Why no version is known (it failed, timed out or
        printed none), or C{""}.
    @ivar fake: Whether it is one of clinvk's fake CLIs.
    @ivar proven_version: The version the real-CLI suite proved
        (L{clinvk.interfaces.IBackend.proven_version}), or C{""}.
    """

    name: str
    path: str | None
    version: str | None = None
    problem: str = ""
    fake: bool = False
    proven_version: str = ""

    @property
    def proven(self) -> bool:
        """Whether the real-CLI suite proved this version."""
        return not self.fake and self.version is not None and self.proven_version == self.version

    def describe(self) -> str:
        """One line for a person: the version and what is known of it."""
        if self.path is None:
            return "not found on PATH"
        if self.version is None:
            return f"version unknown ({self.problem})"
        if self.fake:
            return f"{self.version}, clinvk's fake CLI"
        if self.proven:
            return f"{self.version}, proven by the real-CLI suite"
        return f"{self.version}, not proven (the real-CLI suite proved {self.proven_version or 'none'})"


def parse_version(text: str) -> str | None:
    """
    The version number in what C{--version} printed: C{2.1.197 (Claude
    Code)}, C{codex-cli 0.171.0} and C{0.61.0} all have one.
    """
    found = _VERSION.search(text)
    return found.group(1) if found else None


async def find_installed(
    backends: Iterable[IBackend],
    availability: BackendAvailability,
    supervisor: ProcessSupervisor,
    environ: Mapping[str, str],
    timeout: float = VERSION_TIMEOUT,
) -> list[InstalledCLI]:
    """
    Look for each backend's CLI on C{PATH} and ask the ones found for their
    version, all at once, each as a supervised child (so that none
    outlives the server).

    @return: One L{InstalledCLI} per backend, in the order given.
    """
    probes = [
        Deferred.fromCoroutine(_examine(backend, availability, supervisor, environ, timeout))
        for backend in backends
    ]
    return await gatherResults(probes, consumeErrors=True)


async def _examine(
    backend: IBackend,
    availability: BackendAvailability,
    supervisor: ProcessSupervisor,
    environ: Mapping[str, str],
    timeout: float,
) -> InstalledCLI:
    found = await _version(backend.name, availability, supervisor, environ, timeout)
    return attrs.evolve(found, proven_version=backend.proven_version)


async def _version(
    name: str,
    availability: BackendAvailability,
    supervisor: ProcessSupervisor,
    environ: Mapping[str, str],
    timeout: float,
) -> InstalledCLI:
    path = availability.locate(name)
    if path is None:
        return InstalledCLI(name, None)
    capture = BufferedCapture(64 * 1024)
    spec = ProcessSpec(argv=(path, "--version"), env=environ, timeout=timeout)
    try:
        outcome = await supervisor.start(spec, capture, label=f"{name} --version").wait()
    except ShuttingDown as e:
        return InstalledCLI(name, path, problem=str(e))
    # The version is on stdout; warnings (codex's about PATH) on stderr.
    printed = capture.stdout_text().strip() or capture.stderr_text().strip()
    if outcome.reason is StopReason.START_FAILED:
        return InstalledCLI(name, path, problem=f"cannot start: {outcome.start_error}")
    if outcome.reason is StopReason.TIMEOUT:
        return InstalledCLI(name, path, problem=f"--version took over {timeout:g} s")
    if outcome.exit_code != 0:
        last = printed.splitlines()[-1] if printed else "no output"
        return InstalledCLI(
            name, path, problem=f"--version failed with status {outcome.reported_exit_code}: {last}"
        )
    version = parse_version(printed)
    if version is None:
        return InstalledCLI(name, path, problem=f"--version printed no version: {printed[:80]!r}")
    return InstalledCLI(name, path, version, fake=FAKE_MARK in printed)
