# -*- test-case-name: tests.test_doctor -*-
"""
C{clinvk doctor}: whether this machine can serve, and if not, why.

It checks the configuration file (unknown keys named), finds each backend
CLI with its version and whether the real-CLI suite proved it, and checks
what each needs to run unattended.  It asks the CLIs only for
C{--version}: no prompt, no tokens.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterable, Mapping
from typing import IO

from attrs import frozen

from clinvk._version import API_VERSION, __version__
from clinvk.backends import build_backends
from clinvk.backends.availability import BackendAvailability
from clinvk.backends.headless import headless_needs
from clinvk.config import (
    ClinvkConfig,
    ConfigError,
    config_from_mapping,
    default_config_path,
    load_config,
)
from clinvk.interfaces import IBackend, ILiveMode
from clinvk.model import HeadlessNeed
from clinvk.process.supervisor import ProcessSupervisor
from clinvk.runs.installed import InstalledCLI, find_installed
from clinvk.runs.live_pool import configured_status
from clinvk.types import IClinvkReactor


def try_fakes_command(python: str = sys.executable) -> str:
    """
    The one line that starts clinvk with its fake CLIs, for a machine with
    none of the real ones: the README's tour works with it.
    """
    python = shlex.quote(python)
    return (
        f"{python} -m clinvk.testing.fake_cli install fakebin && "
        f'PATH="$PWD/fakebin:$PATH" {python} -m clinvk serve'
    )


@frozen
class Diagnosis:
    """
    What C{clinvk doctor} found.

    @ivar config_file: The configuration file read, or looked for.
    @ivar config: The configuration, or L{None} when it is unusable.
    @ivar config_problems: Why it is unusable, or its unknown keys.
    @ivar clis: Each backend's CLI.
    @ivar needs: What the CLIs found need to run unattended.
    @ivar live: Per backend, whether its conversations would keep a live
        CLI (docs/design/live-sessions.md#live-fallback), with its
        long-lived mode.
    """

    config_file: str
    config_found: bool
    config: ClinvkConfig | None
    config_problems: tuple[str, ...]
    clis: tuple[InstalledCLI, ...]
    needs: tuple[HeadlessNeed, ...]
    live: Mapping[str, str]

    @property
    def serving(self) -> list[str]:
        """The backends that can serve: found, with a version known."""
        return [cli.name for cli in self.clis if cli.version is not None]

    @property
    def healthy(self) -> bool:
        """Whether the server would start and could serve anything."""
        return self.config is not None and bool(self.serving)


async def diagnose(
    reactor: IClinvkReactor,
    config_path: str | None,
    environ: Mapping[str, str],
    cwd: str,
    *,
    strict: bool = False,
) -> Diagnosis:
    """
    Check the configuration, the CLIs and their needs.

    @param config_path: The file named by C{--config}, or L{None}.
    @param strict: Whether unknown keys make the configuration unusable.
    """
    config_file = config_path or default_config_path(environ)
    problems: tuple[str, ...]
    try:
        config: ClinvkConfig | None = load_config(config_path, environ, strict=strict)
    except ConfigError as e:
        config, problems = None, (str(e),)
    else:
        assert config is not None
        problems = config.unknown_keys
    # An unusable configuration is reported; the checks go on with the defaults.
    effective = config or config_from_mapping(None, {}, source=None)
    backends = build_backends()
    clis = tuple(await _find_clis(reactor, environ, effective, backends.values()))
    found = {cli.name for cli in clis if cli.path is not None}
    home = environ.get("HOME") or os.path.expanduser("~")
    needs = tuple(
        need for need in headless_needs(effective, backends, cwd, environ, home) if need.backend in found
    )
    live = {name: _live(effective, backend) for name, backend in backends.items()}
    return Diagnosis(
        live=live,
        config_file=config_file,
        config_found=os.path.exists(config_file),
        config=config,
        config_problems=problems,
        clis=clis,
        needs=needs,
    )


def _live(config: ClinvkConfig, backend: IBackend) -> str:
    status = configured_status(config, backend)
    mode = ILiveMode(backend, None)
    return f"{status} ({mode.live_mode})" if mode is not None and status == "live" else status


async def _find_clis(
    reactor: IClinvkReactor, environ: Mapping[str, str], config: ClinvkConfig, backends: Iterable[IBackend]
) -> list[InstalledCLI]:
    """Ask each CLI on C{PATH} its version, as children of a supervisor of their own."""
    supervisor = ProcessSupervisor.on_this_system(reactor, float(config.server.kill_grace_secs))
    supervisor.startService()
    try:
        return await find_installed(backends, BackendAvailability(reactor), supervisor, environ)
    finally:
        await supervisor.stopService()


def report(diagnosis: Diagnosis, out: IO[str]) -> None:
    """Write C{diagnosis} for a person to read."""

    def say(text: str = "") -> None:
        print(text, file=out)

    say(f"clinvk {__version__} (API {API_VERSION})")
    say()
    state = "read" if diagnosis.config_found else "not found, defaults in use"
    say(f"Configuration: {diagnosis.config_file} ({state})")
    if diagnosis.config is None:
        say(f"  error: {diagnosis.config_problems[0]}")
    elif diagnosis.config_problems:
        for problem in diagnosis.config_problems:
            say(f"  warning: {problem}")
    else:
        say("  ok")
    say()
    say("Backends:")
    for cli in diagnosis.clis:
        say(f"  {cli.name}: {cli.describe()}")
        if cli.path is not None:
            say(f"    path: {cli.path}")
            say(f"    live sessions: {diagnosis.live[cli.name]}")
        for need in diagnosis.needs:
            if need.backend == cli.name:
                mark = "ok" if need.met else "missing"
                say(f"    needs {need.need}: {mark}, {need.detail}")
    say()
    if diagnosis.config is None:
        say("Not ready: the server will not start until the configuration is fixed.")
    elif diagnosis.serving:
        say(f"Ready: {', '.join(diagnosis.serving)} can serve.")
        if not all(need.met for need in diagnosis.needs):
            say("Some runs will fail until what is marked missing is given.")
    else:
        say("Not ready: no backend CLI can serve. Install and log in to claude, codex or gemini,")
        say("or try clinvk with its fake CLIs:")
        say(f"  {try_fakes_command()}")
