# -*- test-case-name: tests.web.test_keys -*-
"""
Loading the API keys (docs/design/http.md#api-key-sources): from
C{CLINVK_API_KEYS}, else from a gopass secret, run by the process
supervisor like any child (never blocking, stopped with its whole group on
a timeout), reloaded every five minutes so that a rotated secret takes
effect without a restart.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Mapping

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from clinvk.errors import ShuttingDown
from clinvk.process.protocol import BufferedCapture
from clinvk.process.runner import ProcessSpec, StopReason
from clinvk.process.supervisor import ProcessSupervisor
from clinvk.web.auth import ApiKeys, keys_from_environment, parse_keys

log = Logger()

RELOAD_SECONDS = 300
GOPASS_TIMEOUT = 5.0
GOPASS_OUTPUT_LIMIT = 64 * 1024
_SECRET_PATH = re.compile(r"[a-zA-Z0-9/_.\-]+")


class GopassError(Exception):
    """gopass could not give the keys; the message says why."""


class KeyLoader(Service):
    """
    Keeps L{ApiKeys} filled.

    With C{CLINVK_API_KEYS} set, those keys are used.  Otherwise, with a
    gopass path configured, requests are refused (503) until gopass has
    answered; a failure at start-up is fatal (C{on_fatal}), a failure of
    a later reload keeps the keys already loaded.

    @param keys: The keys to fill.
    @param supervisor: Runs gopass.
    @param clock: Times the reloads.
    @param environ: The server's environment.
    @param gopass_path: The configured secret path (the environment's
        C{CLINVK_API_KEYS_GOPASS_PATH} already applied).
    @param on_fatal: Called with the reason when the keys cannot be loaded
        at start-up.
    """

    name = "api-keys"

    def __init__(
        self,
        keys: ApiKeys,
        supervisor: ProcessSupervisor,
        clock: IReactorTime,
        environ: Mapping[str, str],
        gopass_path: str,
        on_fatal: Callable[[str], object],
        which: Callable[[str], str | None] = shutil.which,
    ) -> None:
        self._keys = keys
        self._supervisor = supervisor
        self._clock = clock
        self._environ = dict(environ)
        self._path = gopass_path
        self._on_fatal = on_fatal
        self._which = which
        self._loop: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        from_environment = keys_from_environment(self._environ)
        if from_environment or not self._path:
            self._keys.replace(from_environment)
            if from_environment:
                log.info("API key authentication enabled keys={count}", count=self._keys.count)
            return
        self._keys.hold()
        Deferred.fromCoroutine(self._first_load()).addErrback(
            lambda failure: log.failure("Loading the API keys failed", failure)
        )

    async def _first_load(self) -> None:
        try:
            self._keys.replace(await self.read_gopass())
        except GopassError as e:
            log.critical("Error: failed to load API keys from gopass: {reason}", reason=str(e))
            self._on_fatal(str(e))
            return
        log.info("API key authentication enabled keys={count}", count=self._keys.count)
        self._loop = LoopingCall(lambda: Deferred.fromCoroutine(self._reload()))
        self._loop.clock = self._clock
        self._loop.start(RELOAD_SECONDS, now=False)

    async def _reload(self) -> None:
        try:
            self._keys.replace(await self.read_gopass())
        except GopassError as e:
            log.warn(
                "Could not reload API keys from gopass, keeping the current ones reason={reason}",
                reason=str(e),
            )

    async def read_gopass(self) -> tuple[str, ...]:
        """
        Run C{gopass show --password <path>} and parse its output.

        @raise GopassError: For an invalid path, a missing gopass, a
            failure, a timeout or no keys at all.
        """
        if not _SECRET_PATH.fullmatch(self._path):
            raise GopassError(f"invalid gopass path {self._path!r}")
        gopass = self._which("gopass")
        if gopass is None:
            raise GopassError("gopass is not on PATH")
        spec = ProcessSpec(
            argv=(gopass, "show", "--password", self._path), env=self._environ, timeout=GOPASS_TIMEOUT
        )
        capture = BufferedCapture(GOPASS_OUTPUT_LIMIT)
        try:
            run = self._supervisor.start(spec, capture, label="gopass")
        except ShuttingDown as e:
            raise GopassError(e.message) from None
        outcome = await run.wait()
        if outcome.reason is StopReason.START_FAILED:
            raise GopassError(f"gopass did not start: {outcome.start_error}")
        if outcome.reason is not StopReason.EXITED:
            raise GopassError(f"gopass did not answer within {GOPASS_TIMEOUT:g}s")
        code = outcome.reported_exit_code
        if code != 0:
            raise GopassError(f"gopass exited with status {code}: {capture.stderr_text().strip()}")
        out = capture.stdout_text()
        keys = parse_keys(out.splitlines()[0] if out.strip() else "")
        if not keys:
            raise GopassError("the gopass secret holds no keys")
        return keys

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
