# -*- test-case-name: tests.test_keys -*-
"""
The API keys the server accepts (docs/design/http.md#api-key-sources): the key set, how
keys are written, and where they come from: C{CLINVK_API_KEYS}, else a
gopass secret, run by the process supervisor like any child (never
blocking, stopped with its whole group on a timeout), reloaded every five
minutes so that a rotated secret takes effect without a restart.

How a request presents a key, and which requests need one, is HTTP's
business: L{clinvk.web.auth}.  Keys are never logged.
"""

from __future__ import annotations

import hmac
import re
import shutil
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from clinvk.errors import ShuttingDown
from clinvk.process.protocol import BufferedCapture
from clinvk.process.runner import ProcessSpec, StopReason
from clinvk.process.supervisor import ProcessSupervisor

log = Logger()

RELOAD_SECONDS = 300
GOPASS_TIMEOUT = 5.0
GOPASS_OUTPUT_LIMIT = 64 * 1024
_SECRET_PATH = re.compile(r"[a-zA-Z0-9/_.\-]+")


def parse_keys(text: str) -> tuple[str, ...]:
    """Comma-separated keys, trimmed, empty ones dropped."""
    return tuple(part.strip() for part in text.strip().split(",") if part.strip())


def keys_from_environment(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The keys of C{CLINVK_API_KEYS}."""
    return parse_keys(environ.get("CLINVK_API_KEYS", ""))


class ApiKeys:
    """
    The accepted keys, replaced whenever they are loaded again.

    @param keys: The accepted keys; none disables authentication.
    """

    def __init__(self, keys: Iterable[str] = ()) -> None:
        self._keys = [key.encode("utf-8") for key in keys]
        self._held = False

    def replace(self, keys: Iterable[str]) -> None:
        """Accept exactly C{keys} from now on."""
        self._keys = [key.encode("utf-8") for key in keys]
        self._held = False

    def hold(self) -> None:
        """Accept nothing until L{replace} gives the keys."""
        self._held = True

    @property
    def held(self) -> bool:
        """Whether the keys are still to come (L{hold} without L{replace} since)."""
        return self._held

    @property
    def count(self) -> int:
        """How many keys are accepted; 0 means that none is needed."""
        return len(self._keys)

    def accepts(self, presented: str) -> bool:
        """
        Whether C{presented} is one of the keys (never while they are
        L{held}).  It is compared with every key, so that the time taken
        tells nothing.
        """
        if self._held:
            return False
        candidate = presented.encode("utf-8")
        matches = [hmac.compare_digest(candidate, key) for key in self._keys]
        return any(matches)


class GopassError(Exception):
    """gopass could not give the keys; the message says why."""


class KeyLoader(Service):
    """
    Keeps L{ApiKeys} filled.

    With C{CLINVK_API_KEYS} set, those keys are used.  Otherwise, with a
    gopass path configured, requests are refused (503) until gopass has
    answered; a failure at start-up is fatal (C{on_fatal}), a failure of
    a later reload keeps the keys already loaded.

    The service owns its work: the load in progress and the reload timer
    are stopped with it, nothing starts once it has stopped, and a load
    ended by the stop is no failure.

    @param keys: The keys to fill.
    @param supervisor: Runs gopass.
    @param clock: Times the reloads.
    @param environ: The server's environment.
    @param gopass_path: The configured secret path (the environment's
        C{CLINVK_API_KEYS_GOPASS_PATH} already applied).
    @param on_fatal: Called with the reason when the keys cannot be loaded
        at start-up (and the service was not stopped meanwhile).
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
        self._loading: Deferred[None] | None = None

    def startService(self) -> None:
        super().startService()
        from_environment = keys_from_environment(self._environ)
        if from_environment or not self._path:
            self._keys.replace(from_environment)
            if from_environment:
                log.info("API key authentication enabled keys={count}", count=self._keys.count)
            return
        self._keys.hold()
        self._load(self._first_load)

    def _load(self, load: Callable[[], Coroutine[Any, Any, None]]) -> Deferred[None]:
        """
        Run C{load} as the load in progress, which L{stopService} cancels.

        @return: A L{Deferred} that fires (never fails) once it has ended.
        """
        loading = Deferred.fromCoroutine(load())
        loading.addErrback(self._load_failed)
        if not loading.called:
            self._loading = loading

            def ended(ignored: None) -> None:
                if self._loading is loading:
                    self._loading = None

            loading.addCallback(ended)
        return loading

    def _load_failed(self, failure: Failure) -> None:
        if failure.check(CancelledError) and not self.running:
            # Cancelled by stopService: the stop, not a failure.
            return
        log.failure("Loading the API keys failed", failure)

    async def _first_load(self) -> None:
        try:
            keys = await self.read_gopass()
        except ShuttingDown:
            # The server is stopping: this service stops next.
            return
        except GopassError as e:
            if not self.running:
                return
            log.critical("Error: failed to load API keys from gopass: {reason}", reason=str(e))
            self._on_fatal(str(e))
            return
        if not self.running:
            return
        self._keys.replace(keys)
        log.info("API key authentication enabled keys={count}", count=self._keys.count)
        self._loop = LoopingCall(self._load, self._reload)
        self._loop.clock = self._clock
        # It never fails (_load does not), and stopService stops it.
        self._loop.start(RELOAD_SECONDS, now=False)

    async def _reload(self) -> None:
        try:
            keys = await self.read_gopass()
        except ShuttingDown:
            return
        except GopassError as e:
            if self.running:
                log.warn(
                    "Could not reload API keys from gopass, keeping the current ones reason={reason}",
                    reason=str(e),
                )
            return
        if self.running:
            self._keys.replace(keys)

    async def read_gopass(self) -> tuple[str, ...]:
        """
        Run C{gopass show --password <path>} and parse its output.

        @raise GopassError: For an invalid path, a missing gopass, a
            failure, a timeout or no keys at all.
        @raise ShuttingDown: When the supervisor is stopping, so that it
            refuses gopass or ends it.
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
        run = self._supervisor.start(spec, capture, label="gopass")
        outcome = await run.wait()
        if outcome.reason is StopReason.SHUTDOWN:
            raise ShuttingDown("gopass was stopped with the server")
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

    def stopService(self) -> Deferred[None]:
        """
        Stop the reloads and cancel the load in progress (which stops
        gopass).

        @return: A L{Deferred} firing once the load in progress has ended.
        """
        super().stopService()
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()
        loading, self._loading = self._loading, None
        if loading is None:
            return succeed(None)
        stopped: Deferred[None] = Deferred()
        loading.addBoth(lambda ignored: stopped.callback(None))
        loading.cancel()
        return stopped
